# The general passes: a graph flattened into arrays, and plain loops over them in tape order.

from libc.stdint cimport int64_t
from ourdl._ops cimport nonfinite

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

cdef void forward_pass(const Graph* G) noexcept nogil
cdef void backward_pass(const Graph* G, double seed) noexcept nogil
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
