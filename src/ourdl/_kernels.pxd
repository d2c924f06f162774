# The row loops that are chains of dependent operations: the general step, the tutorial's
# model, and the dot products of prediction. Compiled without vectorization.

from ourdl._passes cimport Data, Dense, Graph, LinearLoss, Optimizer, RunStatus

cdef class Updates:
    cdef Py_ssize_t[::1] flagged   # tape indices of the trainable nodes
    cdef double[::1] summed        # their gradients summed over the current batch
    cdef double[::1] before        # their values before the last update, to undo it
    cdef Py_ssize_t n_flagged, batch_size, count
    cdef double seed               # the root's gradient

    cdef RunStatus train(self, const Graph* G, const Data* D, Optimizer* O, Py_ssize_t start,
                         Py_ssize_t stop, Py_ssize_t epoch_rows, double* loss_sum,
                         Py_ssize_t* at) noexcept nogil


cdef RunStatus linear_rows(Dense* L, const LinearLoss* S, const Graph* G, const Data* D,
                          Py_ssize_t start, Py_ssize_t stop, double* loss_sum,
                          Py_ssize_t* at) noexcept nogil


cdef bint dot_rows(const Data* D, const Py_ssize_t* offsets, const double* w, Py_ssize_t K,
                   const double* b, Py_ssize_t start, Py_ssize_t stop, double* result) noexcept nogil
