# The C-level interface of ourdl's nodes: what a node knows about itself.

cdef struct NodeState:
    double value
    double grad
    double lr
    double papa_grad
    double mama_grad
    double param        # the op's constant: HuberNode's delta (0 for other ops)
    int flag


cdef class Node:
    cdef NodeState s
    cdef readonly Node Papa
    cdef readonly Node Mama
    cdef public object name
    cdef int opcode              # the Op of this node's class
    cdef bint _built             # __init__ has run: parents are fixed from then on
    cdef object _tape            # the tape of forward()/backward(), kept by ourdl._tape
    cdef unsigned long _seen     # scratch for the topological sort: the stamp of the last sort
    cdef Py_ssize_t _slot        # scratch: this node's index in the tape being compiled
    cdef object __weakref__      # so ourdl._tape can forget tapes of nodes that are gone


cpdef list topological_order(Node root)
