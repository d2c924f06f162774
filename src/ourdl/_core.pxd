# The C-level interface of ourdl's compiled core: op codes, node state, the tape.

from libc.stdint cimport int64_t

# One code per op. The Python mirror is OP_NAMES in _core.pyx (same order).
cdef enum Op:
    OP_LEAF = 0
    OP_ADD
    OP_SUB
    OP_MUL
    OP_DIV
    OP_POW
    OP_MSE
    OP_MAE
    OP_NEG
    OP_EXP
    OP_LN
    OP_SIN
    OP_COS
    OP_TAN
    OP_TANH
    OP_SIGMOID
    OP_RELU
    OP_ABS
    OP_SQRT
    N_OPS

# What a node knows about itself; the tape copies it in and out of its flat arrays.
cdef struct NodeState:
    double value
    double grad
    double lr
    double papa_grad
    double mama_grad
    int flag

# Pointers into a Tape's arrays: what the compiled passes work on.
cdef struct Graph:
    Py_ssize_t n
    const int* op
    const Py_ssize_t* papa
    const Py_ssize_t* mama
    double* values
    double* grads
    double* papa_grads
    double* mama_grads
    const double* lrs
    const unsigned char* flags

# Rows of training data as the compiled loops see them.
cdef struct Data:
    const double* x           # element (r, j) is x[r * s0 + j * s1]
    Py_ssize_t s0
    Py_ssize_t s1
    const Py_ssize_t* slots   # the tape index that column j feeds
    Py_ssize_t n_inputs
    const int64_t* rows       # the order of the rows in this epoch; NULL for 0, 1, 2, ...

cdef class Tape


cdef class Node:
    cdef NodeState s
    cdef readonly Node Papa
    cdef readonly Node Mama
    cdef public object name
    cdef int opcode              # the Op of this node's class
    cdef bint _built             # __init__ has run: parents are fixed from then on
    cdef Tape _tape             # compiled on first forward()/backward(), then reused
    cdef unsigned long _seen    # scratch for the topological sort: the stamp of the last compile
    cdef Py_ssize_t _slot       # scratch: this node's index in the tape being compiled
    cdef Tape _cached_tape(self)


cdef class Tape:
    cdef readonly tuple nodes
    cdef readonly Node root
    cdef Py_ssize_t n
    # The flattened graph: op code and parent indices (-1 for none) per node, in tape order.
    cdef int[::1] opcodes
    cdef Py_ssize_t[::1] papa
    cdef Py_ssize_t[::1] mama
    # Contiguous state, one slot per node.
    cdef double[::1] values
    cdef double[::1] grads
    cdef double[::1] papa_grads
    cdef double[::1] mama_grads
    cdef double[::1] lrs
    cdef unsigned char[::1] flags
    cdef Py_ssize_t[::1] leaves   # indices of the leaves, read back before each forward()
    cdef NodeState** states       # each node's own state, for copying in and out
    cdef dict _index              # id(node) -> tape index, built on first use
    cdef bint _busy               # a call is using the arrays (see _claim)

    cdef int _claim(self) except -1
    cdef Py_ssize_t _chunk_rows(self)
    cdef Graph _graph(self) noexcept nogil
    cdef void _pull_leaves(self) noexcept nogil
    cdef void _pull(self) noexcept nogil
    cdef void _push(self) noexcept nogil
    cdef void _forward(self) noexcept nogil
    cdef void _backward(self, bint update) noexcept nogil
    cdef Py_ssize_t[::1] _input_slots(self, inputs) except *
    cdef object _sum_of_products(self, Py_ssize_t top, dict column)
    cdef object _linear_model(self, Py_ssize_t[::1] slots, Py_ssize_t column_step)
    cdef Py_ssize_t _slot_of(self, node, str what) except -1
    cdef void _settle(self, const Data* D, Py_ssize_t row)
    cpdef double forward(self)
    cpdef backward(self, bint update=*)
