"""ourdl's row loops that are chains of dependent operations: the tutorial's model over many
rows in compiled code.

``linear_rows`` trains it (write a row into the inputs, forward, backward, update): the
one-unit case of a fused dense layer with its loss, one row a batch in linear.h (its weights
in registers); ``dot_rows`` predicts with it. Each does the same floating-point operations in
the same order as the general passes, so results agree to the last bit. Every operation of a
row waits for the one before, so this module is compiled without vectorization (setup.py
says why). Indices were checked by the Tape before they get here.
"""

from libc.math cimport fabs, pow
from libc.stdint cimport int64_t
from libc.string cimport memcpy
from ourdl._ops cimport *
from ourdl._passes cimport RUN_BAD_DATA, RUN_BAD_LOSS, RUN_BAD_PARAM, RUN_OK, all_finite, all_finite_row

cdef extern from "linear.h":
    ctypedef struct OurdlLinear:
        const double* x
        Py_ssize_t s0
        const int64_t* rows
        Py_ssize_t start, stop
        const Py_ssize_t* offsets
        Py_ssize_t n_in, target
        double* w
        double* w_before
        const double* lr
        double* b
        double* b_before
        double b_lr
        bint is_mse, sum_is_papa
        double root_grad
        double* residuals
    Py_ssize_t ourdl_linear_rows(const OurdlLinear* a) noexcept nogil
    Py_ssize_t ourdl_linear_batches(const OurdlLinear* a, Py_ssize_t batch,
                                    Py_ssize_t epoch_rows, Py_ssize_t* count, double* w_sum,
                                    double* b_sum, int* bad_step) noexcept nogil

cdef enum:
    # The squares of a chunk's residuals are computed this many at a time, in vectors.
    SQUARES_BLOCK = 256


cdef RunStatus linear_rows(Dense* L, const LinearLoss* S, const Graph* G, const Data* D,
                          Py_ssize_t start, Py_ssize_t stop, Py_ssize_t epoch_rows,
                          Py_ssize_t batch, Py_ssize_t* count, double* loss_sum,
                          Py_ssize_t* at) noexcept nogil:
    """The tutorial's model, loss(x . w + b, y), on rows [start, stop) (at most CHUNK_ROWS) of
    an epoch of epoch_rows rows: the one-unit case of a fused dense layer (ourdl._fused), its
    loss fused in, by SGD with each weight's own lr (linear.h); the rows' losses added to
    loss_sum unless it is NULL.

    The same operations in the same order as the general passes (the bias is the last term
    of the sum; the gradient at the sum is the loss's; weight k gets that times x_k), the
    data read in place. One row a batch, each row's update is checked by the next row, whose
    residual a nan or inf parameter reaches; with larger batches the gradients are summed
    (count rows so far) and each update is checked as it is made."""
    cdef Py_ssize_t i, done
    cdef RunStatus status = RUN_OK
    cdef OurdlLinear run
    cdef int bad_step = 0
    run.x, run.s0, run.rows, run.start, run.stop = D.x, D.s0, D.rows, start, stop
    run.offsets, run.n_in, run.target = S.offsets, L.n_in, S.target
    run.w, run.w_before, run.lr = L.w, L.w_before, L.w_lr
    run.b, run.b_before, run.b_lr = L.b, L.b_before, L.b_lr[0] if L.b != NULL else 0.0
    run.is_mse, run.sum_is_papa, run.root_grad = S.is_mse, S.sum_is_papa, S.root_grad
    run.residuals = S.residuals
    if batch == 1:
        i = ourdl_linear_rows(&run)
        if i == stop and stop > start and not _params_finite(L):
            # The chunk's last update, which no row has checked yet.
            _undo(L)
            at[0] = stop - 1
            status = RUN_BAD_PARAM
    else:
        i = ourdl_linear_batches(&run, batch, epoch_rows, count, L.w_sum, L.b_sum, &bad_step)
        if bad_step:
            _undo(L)
            at[0] = i
            status = RUN_BAD_PARAM
    if i < stop and not bad_step:
        status = _stopped(L, D, i, start, D.rows[i] if D.rows != NULL else i, at)
    # The loss of each row (unless nobody asked), summed in order, off the chain of
    # dependent operations above.
    if loss_sum != NULL:
        done = stop - start if status == RUN_OK else at[0] - start
        loss_sum[0] = _sum_of_squares(S.residuals, done, loss_sum[0]) if S.is_mse else \
            _sum_of_magnitudes(S.residuals, done, loss_sum[0])
    return status


cdef double _sum_of_squares(const double* d, Py_ssize_t n, double total) noexcept nogil:
    """total + pow(d[0], 2) + pow(d[1], 2) + ... in order: the squares a block at a time side
    by side (squares.h), pow() only where they say so."""
    cdef double sq[SQUARES_BLOCK]
    cdef Py_ssize_t b = 0, k, m
    while b < n:
        m = min(<Py_ssize_t>SQUARES_BLOCK, n - b)
        ourdl_sure_squares(d + b, sq, m)
        for k in range(m):
            total += sq[k] if sq[k] == sq[k] else pow(d[b + k], 2.0)
        b += m
    return total


cdef double _sum_of_magnitudes(const double* d, Py_ssize_t n, double total) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(n):
        total += fabs(d[k])
    return total


cdef inline bint _params_finite(const Dense* L) noexcept nogil:
    return all_finite(L.w, L.n_in) and (L.b == NULL or all_finite(L.b, 1))


cdef inline void _undo(Dense* L) noexcept nogil:
    memcpy(L.w, L.w_before, L.n_in * sizeof(double))
    if L.b != NULL:
        L.b[0] = L.b_before[0]


cdef RunStatus _stopped(Dense* L, const Data* D, Py_ssize_t i, Py_ssize_t start, Py_ssize_t r,
                        Py_ssize_t* at) noexcept nogil:
    """Why row i could not be trained on. A bad parameter comes from the update of the row
    before (parameters enter a chunk finite): that update is undone."""
    if i > start and not _params_finite(L):
        _undo(L)
        at[0] = i - 1
        return RUN_BAD_PARAM
    at[0] = i
    return RUN_BAD_LOSS if all_finite_row(D, r) else RUN_BAD_DATA


cdef bint dot_rows(const Data* D, const Py_ssize_t* offsets, const double* w, Py_ssize_t K,
                   const double* b, Py_ssize_t start, Py_ssize_t stop, double* result) noexcept nogil:
    """x . w (+ b) for each row, summed as the unit's chain; rows are independent, so the
    processor overlaps them. False if a row holds nan or inf."""
    cdef Py_ssize_t r, k
    cdef const double* xr
    cdef double p
    for r in range(start, stop):
        xr = D.x + r * D.s0
        p = xr[offsets[0]] * w[0]
        for k in range(1, K):
            p = p + xr[offsets[k]] * w[k]
        if b != NULL:
            p = p + b[0]
        result[r] = p
        if nonfinite(p) and not all_finite_row(D, r):
            return False
    return True
