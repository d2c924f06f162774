# The C-level interface of ourdl's nodes: what a node knows about itself.

cdef struct NodeState:
    double value
    double grad
    double lr
    double papa_grad
    double mama_grad
    double param        # the op's constant: HuberNode's delta (0 for other ops)
    int flag


# A tape's state arrays, one slot per node, as the nodes it holds reach them: while a tape
# holds a node, the node's value, grad, lr, Flag, Papa_grad and Mama_grad live there, where
# the compiled passes use them, and the node reads and writes them through its slot.
cdef struct Home:
    double* values
    double* grads
    double* papa_grads
    double* mama_grads
    double* lrs
    unsigned char* flags
    Py_ssize_t lost     # how many of its nodes another tape has taken since it last held them
    const bint* busy    # the tape is running a call: its nodes may not be taken meanwhile
    const bint* calling # the tape's compiled loops are calling an op written in Python: the
                        # state of its nodes is the loops' (a fused layer holds copies)


cdef class Node:
    cdef NodeState s             # the node's state while no tape holds it (home is NULL)
    cdef Home* home              # the arrays of the tape that holds the node, or NULL
    cdef Py_ssize_t home_slot    # the node's slot in them
    cdef readonly Node Papa
    cdef readonly Node Mama
    cdef public object name
    cdef int opcode              # the Op of this node's class
    cdef bint _built             # __init__ has run: parents are fixed from then on
    cdef object _tape            # the tape of forward()/backward(), kept by ourdl._tape
    cdef object _turn            # the lock threads take turns on for them (ourdl._tape)
    cdef unsigned long _seen     # scratch for the topological sort: the stamp of the last sort
    cdef Py_ssize_t _slot        # scratch: this node's index in the tape being compiled
    cdef object __weakref__      # so ourdl._tape can forget tapes of nodes that are gone


cpdef list topological_order(Node root)
