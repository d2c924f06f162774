# The row loops that are chains of dependent operations: the tutorial's model, and the dot
# products of prediction. Compiled without vectorization.

from ourdl._dense cimport Dense, LinearLoss
from ourdl._passes cimport Data, Graph, RunStatus

cdef RunStatus linear_rows(Dense* L, const LinearLoss* S, const Graph* G, const Data* D,
                          Py_ssize_t start, Py_ssize_t stop, Py_ssize_t epoch_rows,
                          Py_ssize_t batch, Py_ssize_t* count, double* loss_sum,
                          Py_ssize_t* at) noexcept nogil


cdef bint dot_rows(const Data* D, const Py_ssize_t* offsets, const double* w, Py_ssize_t K,
                   const double* b, Py_ssize_t start, Py_ssize_t stop, double* result) noexcept nogil
