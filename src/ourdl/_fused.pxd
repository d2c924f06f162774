# The fused kernels: dense layers run as whole loops, general nodes between them one by one.

from ourdl._dense cimport Dense, LinearLoss, MaxPool, Ordered, Runs, Shared, Softmax
from ourdl._optim cimport Optimizer
from ourdl._passes cimport Data, Graph, RunStatus

cdef class Fused:
    cdef Dense* layers
    cdef Py_ssize_t n_layers
    cdef Shared* shared             # the layers of shared weights
    cdef Py_ssize_t n_shared
    cdef MaxPool* pools             # the layers of max-pooling
    cdef Py_ssize_t n_pools
    cdef Softmax* heads             # the softmax cross-entropy heads
    cdef Py_ssize_t n_heads
    cdef Py_ssize_t[::1] kinds      # the plan's layer k is of kind kinds[k] (KIND_DENSE, ...),
    cdef Py_ssize_t[::1] index      # number index[k] among the layers of that kind
    cdef list _arrays               # what the pointers in layers point into
    cdef Py_ssize_t[::1] steps      # >= 0: a general node's tape index; < 0: layer -1 - s
    cdef Py_ssize_t[::1] zeroed     # nodes whose gradient restarts at -0.0 each row
    cdef Py_ssize_t[::1] flagged    # trainable nodes outside the layers
    cdef double[::1] summed, before, after
    cdef Py_ssize_t n_flagged, batch_size, count
    cdef double root_grad          # the root's gradient, where backward starts
    # What settle_last_update computes, and whose gradients it restarts.
    cdef Py_ssize_t[::1] inner, reset
    cdef Py_ssize_t n_inner, n_reset
    # The tutorial's model (one layer of one unit fed from data, its loss the root) runs in
    # ourdl._kernels.linear_rows, a loop that must not be vectorized.
    cdef readonly bint linear
    cdef LinearLoss loss
    cdef Py_ssize_t[::1] offsets
    cdef double[::1] residuals

    cdef int _plan_settling(self, list every, op, inside) except -1
    cdef int _find_linear(self, const int[::1] opcodes, const Py_ssize_t[::1] papa,
                          const Py_ssize_t[::1] mama, list checked, const Py_ssize_t[::1] slots,
                          Py_ssize_t column_step) except -1
    cdef double* _doubles(self, values) except NULL
    cdef Py_ssize_t* _indices(self, values) except NULL
    cdef int _build_layer(self, Dense* L, layer, values, lrs, const int[::1] opcodes,
                          const unsigned char[::1] flags) except -1
    cdef int _build_shared(self, Shared* S, layer, const int[::1] opcodes,
                           const unsigned char[::1] flags) except -1
    cdef int _build_runs(self, Runs* R, runs, Py_ssize_t n_acc, Py_ssize_t n_scalar,
                         Py_ssize_t n_vector) except -1
    cdef int _build_sums(self, Ordered* S, targets, units, factors, Py_ssize_t n_units=*,
                         Py_ssize_t n=*, key=*) except -1
    cdef int _build_max(self, MaxPool* P, layer, const int[::1] opcodes,
                        const unsigned char[::1] flags) except -1
    cdef int _build_softmax(self, Softmax* H, layer) except -1
    cdef void run_forward(self, Py_ssize_t k, const Graph* G) noexcept nogil
    cdef void run_backward(self, Py_ssize_t k, const Graph* G, bint sum_for_batch) noexcept nogil
    cdef void gather(self, const Graph* G) noexcept nogil
    cdef void scatter(self, const Graph* G, bint before=*) noexcept nogil
    cdef void forward_row(self, const Graph* G) noexcept nogil
    cdef bint prove_finite(self) noexcept nogil
    cdef RunStatus train(self, const Graph* G, const Data* D, Optimizer* O, Py_ssize_t start,
                         Py_ssize_t stop, Py_ssize_t epoch_rows, double* loss_sum,
                         Py_ssize_t* at) noexcept nogil
    cdef bint predict(self, const Graph* G, const Data* D, Py_ssize_t start, Py_ssize_t stop,
                      Py_ssize_t out, double* result) noexcept nogil
    cdef void settle_last_update(self, const Graph* G, const Data* D, Py_ssize_t row) noexcept nogil
