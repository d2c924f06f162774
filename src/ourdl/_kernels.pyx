"""ourdl's row loops that are chains of dependent operations: the tutorial's model over many
rows in compiled code.

``linear_rows`` trains it (write a row into the inputs, forward, backward, update): the
one-unit case of a fused dense layer with its loss; ``dot_rows`` predicts with it. Each does the same floating-point operations in the same order as the
general passes, so results agree to the last bit. Every operation of a row waits for the
one before, so this module is compiled without vectorization (setup.py says why). Indices
were checked by the Tape before they get here.
"""

from libc.math cimport fabs, pow
from libc.stdint cimport int64_t
from libc.string cimport memcpy
from ourdl._ops cimport *
from ourdl._passes cimport RUN_BAD_DATA, RUN_BAD_LOSS, RUN_BAD_PARAM, RUN_OK, all_finite, all_finite_row

cdef extern from *:
    void __builtin_prefetch(const void* address) noexcept nogil

cdef enum:
    # In a shuffled epoch, the row this many rows ahead is asked of memory early: each row's
    # chain of updates would otherwise wait for its data to come from memory, one at a time.
    AHEAD = 16
    # The squares of a chunk's residuals are computed this many at a time, in vectors.
    SQUARES_BLOCK = 256


cdef RunStatus linear_rows(Dense* L, const LinearLoss* S, const Graph* G, const Data* D,
                          Py_ssize_t start, Py_ssize_t stop, Py_ssize_t epoch_rows,
                          Py_ssize_t batch, Py_ssize_t* count, double* loss_sum,
                          Py_ssize_t* at) noexcept nogil:
    """The tutorial's model, loss(x . w + b, y), on rows [start, stop) (at most CHUNK_ROWS) of
    an epoch of epoch_rows rows: the one-unit case of a fused dense layer (ourdl._fused), its
    loss fused in, by SGD with each weight's own lr.

    The same operations in the same order as the general passes (the bias is the last term
    of the sum; the gradient at the sum is the loss's; weight k gets that times x_k), with
    the weights in registers and the data read in place. One row a batch, each row's update
    is checked by the next row, whose residual a nan or inf parameter reaches; with larger
    batches the gradients are summed (count rows so far) and each update is checked as it
    is made."""
    cdef Py_ssize_t i, r, k, K = L.n_in, done
    cdef const Py_ssize_t* offsets = S.offsets
    cdef const double* lr = L.w_lr
    cdef double* w = L.w
    cdef double* w_before = L.w_before
    cdef double* b = L.b
    cdef double* residual = S.residuals
    cdef const double* xr
    cdef double p, d, t, total
    cdef RunStatus status = RUN_OK
    # Locals, so the compiler knows the writes through w cannot change them.
    cdef bint is_mse = S.is_mse, sum_is_papa = S.sum_is_papa
    cdef double root_grad = S.root_grad, twice_root_grad = S.root_grad * 2.0
    cdef Py_ssize_t target = S.target, s0 = D.s0
    cdef const int64_t* rows = D.rows
    cdef const double* x0 = D.x
    # Where a row's values lie, from its first to its last (prefetched when that is near).
    cdef Py_ssize_t first = target, last = target, q
    for k in range(K):
        first, last = min(first, offsets[k]), max(last, offsets[k])
    cdef bint prefetch = rows != NULL and 0 <= last - first <= 64
    for i in range(start, stop):
        r = rows[i] if rows != NULL else i
        if prefetch and i + AHEAD < stop:
            xr = x0 + rows[i + AHEAD] * s0
            for q in range(first, last + 8, 8):
                __builtin_prefetch(xr + min(q, last))
        xr = x0 + r * s0
        p = xr[offsets[0]] * w[0]
        for k in range(1, K):
            p = p + xr[offsets[k]] * w[k]
        if b != NULL:
            p = p + b[0]
        d = p - xr[target] if sum_is_papa else xr[target] - p
        # nan or inf in the data, or in a parameter after the last update, always reaches
        # d; and d * d overflows exactly when the loss pow(d, 2) does.
        if nonfinite(d * d if is_mse else d):
            status = _stopped(L, D, i, start, r, at)
            break
        residual[i - start] = d
        t = twice_root_grad * d if is_mse else root_grad * sign(d)
        if not sum_is_papa:
            t = -t  # the sum is Mama: it receives the negated gradient
        if batch == 1:
            for k in range(K):
                w_before[k] = w[k]
                w[k] = w[k] - lr[k] * (t * xr[offsets[k]])
            if b != NULL:
                L.b_before[0] = b[0]
                b[0] = b[0] - L.b_lr[0] * t
            continue
        # A batch: the gradients summed as the fused layer sums them, the mean stepped on.
        for k in range(K):
            L.w_sum[k] = L.w_sum[k] + t * xr[offsets[k]]
        if b != NULL:
            L.b_sum[0] = L.b_sum[0] + t
        count[0] += 1
        if count[0] < batch and i != epoch_rows - 1:
            continue
        for k in range(K):
            w_before[k] = w[k]
            w[k] = w[k] - lr[k] * (L.w_sum[k] / count[0])
            L.w_sum[k] = -0.0
        if b != NULL:
            L.b_before[0] = b[0]
            b[0] = b[0] - L.b_lr[0] * (L.b_sum[0] / count[0])
            L.b_sum[0] = -0.0
        count[0] = 0
        if not _params_finite(L):
            _undo(L)
            at[0] = i
            status = RUN_BAD_PARAM
            break
    else:
        # The chunk's last update, which no row has checked yet (none if it had no rows).
        if batch == 1 and stop > start and not _params_finite(L):
            _undo(L)
            at[0] = stop - 1
            status = RUN_BAD_PARAM
    # The loss of each row, summed in order, off the chain of dependent operations above.
    done = stop - start if status == RUN_OK else at[0] - start
    loss_sum[0] = _sum_of_squares(residual, done, loss_sum[0]) if is_mse else \
        _sum_of_magnitudes(residual, done, loss_sum[0])
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
