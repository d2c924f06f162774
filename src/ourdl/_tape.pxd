# The C-level interface of the tape: a graph flattened into arrays, with its state. What
# ourdl._driver uses to run fit and predict on it is declared here too.

from ourdl._nodes cimport Home, Node
from ourdl._optim cimport Optimizer
from ourdl._passes cimport Graph

cdef class Tape:
    cdef readonly tuple nodes
    cdef readonly Node root
    cdef Py_ssize_t n
    # The flattened graph: op code and parent indices (-1 for none) per node, in tape order.
    cdef int[::1] opcodes
    cdef Py_ssize_t[::1] papa
    cdef Py_ssize_t[::1] mama
    # Contiguous state, one slot per node: the nodes' own while the tape holds them (home).
    cdef double[::1] values
    cdef double[::1] grads
    cdef double[::1] papa_grads
    cdef double[::1] mama_grads
    cdef double[::1] lrs
    cdef unsigned char[::1] flags
    cdef double[::1] consts       # each node's constant (HuberNode's delta)
    cdef Home home                # the arrays, as the nodes the tape holds reach them
    cdef dict _index              # id(node) -> tape index, built on first use
    cdef bint _busy               # a call is using the arrays (see _claim)
    cdef bint _calling            # the loops are calling an op written in Python
    cdef object _error            # what an op written in Python raised in the running pass
    cdef int _aborted             # an op written in Python raised: the loops stop
    cdef readonly bint fuse       # fit and predict run dense layers as fused kernels
    cdef dict _layers             # fusion plans by (fed leaves, flags), least recently used first
    cdef frozenset _fed           # the leaves that fit has fed from data
    cdef list _opt_state          # the optimizer's kind, m, v, m and v before, steps taken

    cdef int _hold(self) except -1
    cdef list _computed(self)
    cdef int _claim(self) except -1
    cdef int _raise_custom_error(self) except -1
    cdef Graph _graph(self) noexcept nogil
    cdef void _forward(self) noexcept nogil
    cdef void _backward(self, bint update) noexcept nogil
    cpdef double forward(self)
    cpdef backward(self, bint update=*)
    cdef Py_ssize_t _slot_of(self, node, str what) except -1
    cdef Py_ssize_t[::1] _input_slots(self, inputs) except *
    cdef tuple _plan(self, slots)
    cdef Optimizer _optimizer(self, tuple settings) except *
    cdef int _set_optimizer_state(self, state) except -1
    cdef str _signature(self)
