# The training kernels: the general per-row step and the fused ones, and their run status.

from ourdl._passes cimport Data, Graph

cdef enum:
    # Rows per trip into compiled code: small enough that Ctrl-C and the progress bar
    # answer within milliseconds, large enough that the trips cost nothing.
    CHUNK_ROWS = 1 << 16

cdef enum RunStatus:
    RUN_OK = 0
    RUN_BAD_LOSS = 1    # the root value became nan/inf: stopped before that row's update
    RUN_BAD_PARAM = 2   # an update made a parameter nan/inf: it was undone
    RUN_BAD_DATA = 3    # a row of data holds nan/inf: stopped before that row's update


cdef class Updates:
    cdef Py_ssize_t[::1] flagged   # tape indices of the trainable nodes
    cdef double[::1] summed        # their gradients summed over the current batch
    cdef double[::1] before        # their values before the last update, to undo it
    cdef Py_ssize_t n_flagged, batch_size, count
    cdef double seed               # the root's gradient

    cdef RunStatus train(self, const Graph* G, const Data* D, Py_ssize_t start, Py_ssize_t stop,
                         Py_ssize_t epoch_rows, double* loss_sum, Py_ssize_t* at) noexcept nogil


cdef class LinearModel:
    cdef Py_ssize_t n_terms
    cdef Py_ssize_t[::1] offsets    # where each term's input sits in a row of data
    cdef unsigned char[::1] lone    # 1 for a bias (a parameter alone, x = 1)
    cdef bint any_lone
    cdef Py_ssize_t[::1] params     # tape index of each term's parameter
    cdef double[::1] lrs
    cdef double[::1] w, w_before    # the parameters now and before the last update
    cdef double[::1] residuals      # loss(Papa - Mama) of each row of a chunk, summed afterwards
    cdef Py_ssize_t target          # data column of the target
    cdef bint is_mse, sum_is_papa
    cdef double seed

    cdef RunStatus train(self, const Graph* G, const Data* D, Py_ssize_t start, Py_ssize_t stop,
                         double* loss_sum, Py_ssize_t* at) noexcept nogil
    cdef RunStatus _stopped(self, const Data* D, Py_ssize_t i, Py_ssize_t start,
                            Py_ssize_t r, Py_ssize_t* at) noexcept nogil


cdef bint dot_rows(const Data* D, const Py_ssize_t* offsets, const unsigned char* lone,
                   const double* w, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                   double* result) noexcept nogil
