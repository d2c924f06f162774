"""ourdl's training kernels: the seed's loop (write a row into the inputs, forward, backward,
update) run over many rows in compiled code.

``Updates`` is the general step for any graph, built on the general passes; ``LinearModel``
is the fused step for the tutorial's model. Each does the same floating-point operations in
the same order as the general passes, so results agree to the last bit. Indices were checked
by the Tape before they get here.
"""

cimport cython
from libc.math cimport fabs
from libc.stdint cimport int64_t
from libc.string cimport memcpy
from ourdl._ops cimport *
from ourdl._passes cimport all_finite, all_finite_row, backward_pass, forward_pass, load_row

import numpy as np


cdef inline double term_input(const double* xr, const Py_ssize_t* offsets,
                              const unsigned char* lone, Py_ssize_t k) noexcept nogil:
    """The input of term k of a sum of products: the row's element at offsets[k], or 1 where
    the term is a weight alone (a bias: 1 * b is b exactly). lone is NULL when no term is;
    that test is the same for every row, so the compiler takes it out of the loops."""
    return 1.0 if (lone != NULL and lone[k]) else xr[offsets[k]]


cdef inline double dot(const double* xr, const Py_ssize_t* offsets, const unsigned char* lone,
                       const double* w, Py_ssize_t K) noexcept nogil:
    """Sum of term_input * w over the terms, added left to right as the chain of AddNodes."""
    cdef double p = term_input(xr, offsets, lone, 0) * w[0]
    cdef Py_ssize_t k
    for k in range(1, K):
        p = p + term_input(xr, offsets, lone, k) * w[k]
    return p


@cython.final
cdef class Updates:
    """The general training step: any graph, gradients averaged over batches."""


    def __init__(self, const unsigned char[::1] flags, Py_ssize_t batch_size, double seed):
        flagged = np.flatnonzero(np.asarray(flags)).astype(np.intp)
        self.n_flagged = flagged.shape[0]
        self.flagged = np.append(flagged, 0).astype(np.intp)  # never empty, so [0] is valid
        self.summed = np.full(self.n_flagged + 1, -0.0)
        self.before = np.empty(self.n_flagged + 1)
        self.batch_size = batch_size
        self.count = 0
        self.seed = seed

    cdef RunStatus train(self, const Graph* G, const Data* D, Py_ssize_t start, Py_ssize_t stop,
                         Py_ssize_t epoch_rows, double* loss_sum, Py_ssize_t* at) noexcept nogil:
        cdef Py_ssize_t i, k, slot, n_flagged = self.n_flagged
        cdef double loss
        cdef bint bad
        cdef double* v = G.values
        cdef const Py_ssize_t* flagged = &self.flagged[0]
        cdef double* summed = &self.summed[0]
        cdef double* before = &self.before[0]
        for i in range(start, stop):
            if not load_row(D, D.rows[i] if D.rows != NULL else i, v):
                at[0] = i
                return RUN_BAD_DATA
            forward_pass(G)
            loss = v[G.n - 1]
            if nonfinite(loss):
                at[0] = i
                return RUN_BAD_LOSS
            loss_sum[0] += loss
            backward_pass(G, self.seed)
            for k in range(n_flagged):
                summed[k] += G.grads[flagged[k]]
            self.count += 1
            if self.count < self.batch_size and i != epoch_rows - 1:
                continue
            # With one row per batch, -0.0 + g and g / 1 are g: exactly the seed's step.
            bad = False
            for k in range(n_flagged):
                slot = flagged[k]
                before[k] = v[slot]
                v[slot] = v[slot] - G.lrs[slot] * (summed[k] / self.count)
                bad = bad | nonfinite(v[slot])
                summed[k] = -0.0
            self.count = 0
            if bad:
                for k in range(n_flagged):
                    v[flagged[k]] = before[k]
                at[0] = i
                return RUN_BAD_PARAM
        return RUN_OK


@cython.final
cdef class LinearModel:
    """The fused step for the seed's model: loss(sum_k x_k * w_k, y), one row at a time.

    Every floating-point operation is the one the general passes do, in the same order
    (x * w commutes exactly, the sum is the same left-to-right chain, the gradient reaching
    w_k is (the loss gradient) * x_k), so the results are the same to the last bit.
    """


    def __init__(self, terms, const double[::1] lrs, Py_ssize_t column_step, Py_ssize_t target,
                 int loss_op, bint sum_is_papa, double seed):
        """terms: (data column or -1 for a bias, tape index of the parameter) in the order of
        the sum; lrs: the tape's learning rates; seed: the root's gradient."""
        if not terms or not all(0 <= p < lrs.shape[0] for _, p in terms):
            raise ValueError("LinearModel needs terms naming nodes of the tape")
        self.n_terms = len(terms)
        self.offsets, self.lone = _term_layout(terms, column_step)
        self.any_lone = any(self.lone)
        self.params = np.array([p for _, p in terms], dtype=np.intp)
        self.lrs = np.array([lrs[p] for _, p in terms])
        self.w = np.empty(self.n_terms)
        self.w_before = np.empty(self.n_terms)
        self.residuals = np.empty(CHUNK_ROWS)
        self.target = target
        self.is_mse = loss_op == OP_MSE
        self.sum_is_papa = sum_is_papa
        self.seed = seed

    cdef RunStatus train(self, const Graph* G, const Data* D, Py_ssize_t start, Py_ssize_t stop,
                         double* loss_sum, Py_ssize_t* at) noexcept nogil:
        """Rows [start, stop) of one epoch, at most CHUNK_ROWS of them."""
        cdef Py_ssize_t i, r, k, K = self.n_terms, done
        cdef const Py_ssize_t* offsets = &self.offsets[0]
        cdef const unsigned char* lone = &self.lone[0] if self.any_lone else NULL
        cdef const double* lr = &self.lrs[0]
        cdef double* w = &self.w[0]
        cdef double* w_before = &self.w_before[0]
        cdef double* residual = &self.residuals[0]
        cdef const double* xr
        cdef double p, d, t, x, total
        cdef double twice_seed = self.seed * 2.0
        cdef Py_ssize_t target = self.target * D.s1
        cdef RunStatus status = RUN_OK
        # Locals, so the compiler knows the writes through w cannot change them.
        cdef bint is_mse = self.is_mse, sum_is_papa = self.sum_is_papa
        cdef double seed = self.seed
        cdef const int64_t* rows = D.rows
        cdef const double* x0 = D.x
        cdef Py_ssize_t s0 = D.s0
        for k in range(K):
            w[k] = G.values[self.params[k]]
        for i in range(start, stop):
            r = rows[i] if rows != NULL else i
            xr = x0 + r * s0
            p = dot(xr, offsets, lone, w, K)
            d = p - xr[target] if sum_is_papa else xr[target] - p
            # nan or inf in the data, or in a parameter after the last update, always reaches
            # d; and d * d overflows exactly when the loss pow(d, 2) does.
            if nonfinite(d * d if is_mse else d):
                status = self._stopped(D, i, start, r, at)
                break
            residual[i - start] = d
            t = twice_seed * d if is_mse else seed * sign(d)
            if not sum_is_papa:
                t = -t  # the sum is Mama: it receives the negated gradient
            for k in range(K):
                x = term_input(xr, offsets, lone, k)
                w_before[k] = w[k]
                w[k] = w[k] - lr[k] * (t * x)
        else:
            # The chunk's last update, which no row has checked yet (none if it had no rows).
            if stop > start and not all_finite(w, K):
                memcpy(w, w_before, K * sizeof(double))
                at[0] = stop - 1
                status = RUN_BAD_PARAM
        # The loss of each row, summed in order, off the chain of dependent operations above.
        done = stop - start if status == RUN_OK else at[0] - start
        total = loss_sum[0]
        for k in range(done):
            total += squared(residual[k]) if is_mse else fabs(residual[k])
        loss_sum[0] = total
        for k in range(K):
            G.values[self.params[k]] = w[k]
        return status

    cdef RunStatus _stopped(self, const Data* D, Py_ssize_t i, Py_ssize_t start,
                            Py_ssize_t r, Py_ssize_t* at) noexcept nogil:
        """Why row i could not be trained on. A bad parameter comes from the update of the row
        before (parameters enter a chunk finite): that update is undone."""
        cdef double* w = &self.w[0]
        if i > start and not all_finite(w, self.n_terms):
            memcpy(w, &self.w_before[0], self.n_terms * sizeof(double))
            at[0] = i - 1
            return RUN_BAD_PARAM
        at[0] = i
        return RUN_BAD_LOSS if all_finite_row(D, r) else RUN_BAD_DATA


def _term_layout(terms, Py_ssize_t column_step):
    """Where each term's input sits in a row (element offsets) and which terms are lone."""
    offsets = np.array([max(c, 0) * column_step for c, _ in terms], dtype=np.intp)
    lone = np.array([c < 0 for c, _ in terms], dtype=np.uint8)
    return offsets, lone


cdef bint dot_rows(const Data* D, const Py_ssize_t* offsets, const unsigned char* lone,
                   const double* w, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                   double* result) noexcept nogil:
    """A sum of products for each row; rows are independent, so the processor overlaps
    them. False if a row holds nan or inf."""
    cdef Py_ssize_t r
    cdef double p
    for r in range(start, stop):
        p = dot(D.x + r * D.s0, offsets, lone, w, K)
        result[r] = p
        if nonfinite(p) and not all_finite_row(D, r):
            return False
    return True


