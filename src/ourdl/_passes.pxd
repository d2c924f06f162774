# The general passes: a graph flattened into arrays, and plain loops over them in tape order.

from libc.stdint cimport int64_t
from ourdl._ops cimport OP_CUSTOM1, OP_CUSTOM2, OP_LEAF, is_binary, nonfinite, op_grads, op_value

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
    const double* consts          # each node's constant (HuberNode's delta)
    # Ops written in Python (ourdl.CustomNode): the tape's callbacks, which take the GIL.
    void* tape
    const int* aborted            # set by a callback that raised: the loops stop at once
    double (*custom_value)(void* tape, Py_ssize_t i, double a, double b) noexcept nogil
    void (*custom_grads)(void* tape, Py_ssize_t i, double a, double b, double g,
                         double* to_papa, double* to_mama) noexcept nogil

# Rows of training data as the compiled loops see them.
cdef struct Data:
    const double* x           # element (r, j) is x[r * s0 + j * s1]
    Py_ssize_t s0
    Py_ssize_t s1
    const Py_ssize_t* slots   # the tape index that column j feeds
    Py_ssize_t n_inputs
    const int64_t* rows       # the order of the rows in this epoch; NULL for 0, 1, 2, ...

cdef enum:
    # Rows per trip into compiled code: small enough that Ctrl-C and the progress bar
    # answer within milliseconds, large enough that the trips cost nothing.
    CHUNK_ROWS = 1 << 16

# How a run over rows of data ended.
cdef enum RunStatus:
    RUN_OK = 0
    RUN_BAD_LOSS = 1    # the root value became nan/inf: stopped before that row's update
    RUN_BAD_PARAM = 2   # an update made a parameter nan/inf: it was undone
    RUN_BAD_DATA = 3    # a row of data holds nan/inf: stopped before that row's update
    RUN_ABORTED = 4     # an op written in Python raised: stopped before that row's update

cdef inline double node_value(const Graph* G, Py_ssize_t i, int o, double a,
                              double b) noexcept nogil:
    """The value of node i (op o) from its parents' values a and b."""
    if o == OP_CUSTOM1 or o == OP_CUSTOM2:
        return G.custom_value(G.tape, i, a, b)
    return op_value(o, a, b, G.consts[i])


cdef inline void node_grads(const Graph* G, Py_ssize_t i, int o, double a, double b, double v,
                            double g, double* to_papa, double* to_mama) noexcept nogil:
    """What node i (op o, value v, gradient g) owes its parents."""
    if o == OP_CUSTOM1 or o == OP_CUSTOM2:
        G.custom_grads(G.tape, i, a, b, g, to_papa, to_mama)
    else:
        op_grads(o, a, b, v, g, G.consts[i], to_papa, to_mama)


cdef inline void node_forward(const Graph* G, Py_ssize_t i) noexcept nogil:
    """Node i's value from its parents' (nothing for a leaf)."""
    cdef int o = G.op[i]
    if o == OP_LEAF:
        return
    G.values[i] = node_value(G, i, o, G.values[G.papa[i]],
                             G.values[G.mama[i]] if is_binary(o) else 0.0)


cdef inline void node_backward(const Graph* G, Py_ssize_t i) noexcept nogil:
    """Node i sends its parents what it owes them, added to their gradients."""
    cdef int o = G.op[i]
    cdef Py_ssize_t p, m
    cdef double to_papa, to_mama
    cdef const double* v = G.values
    if o == OP_LEAF:
        return
    p = G.papa[i]
    if is_binary(o):
        m = G.mama[i]
        node_grads(G, i, o, v[p], v[m], v[i], G.grads[i], &to_papa, &to_mama)
        G.papa_grads[i] = to_papa
        G.grads[p] += to_papa
        G.mama_grads[i] = to_mama
        G.grads[m] += to_mama
    else:
        node_grads(G, i, o, v[p], 0.0, v[i], G.grads[i], &to_papa, &to_mama)
        G.papa_grads[i] = to_papa
        G.grads[p] += to_papa


cdef void forward_pass(const Graph* G) noexcept nogil
cdef void backward_pass(const Graph* G, double root_grad) noexcept nogil
cdef void update_pass(const Graph* G) noexcept nogil
cdef bint forward_rows(const Graph* G, const Data* D, const Py_ssize_t* program,
                       Py_ssize_t n_program, double* buf, Py_ssize_t B, Py_ssize_t start,
                       Py_ssize_t stop, Py_ssize_t out, double* result) noexcept nogil


cdef inline bint all_finite(const double* x, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(n):
        if nonfinite(x[k]):
            return False
    return True


cdef inline bint all_finite_row(const Data* D, Py_ssize_t r) noexcept nogil:
    """False if row r of the data holds nan or inf."""
    cdef const double* xr = D.x + r * D.s0
    cdef Py_ssize_t j
    for j in range(D.n_inputs):
        if nonfinite(xr[j * D.s1]):
            return False
    return True


cdef inline bint load_row(const Data* D, Py_ssize_t r, double* values) noexcept nogil:
    """Write row r into the input nodes; False if it holds nan or inf."""
    cdef const double* xr = D.x + r * D.s0
    cdef Py_ssize_t j
    for j in range(D.n_inputs):
        values[D.slots[j]] = xr[j * D.s1]
    return all_finite_row(D, r)
