/* The tutorial's model over rows (ourdl._kernels.linear_rows): each row's loss(x . w + b, y),
 * its gradient, and the updates by each weight's own lr, the same floating-point operations
 * in the same order as the general passes. ourdl_linear_gradient is one row's arithmetic,
 * for both loops: ourdl_linear_rows (one row a batch) and ourdl_linear_batches.
 *
 * One row a batch, each row's sum waits for the row before's updates, so the loop is one
 * long chain of dependent operations, and anything on that chain shows. Weights kept in
 * memory put a store and a load on it every row; so for up to OURDL_LINEAR_IN_REGISTERS
 * inputs the loop is compiled once per count of inputs, its weights in registers, written
 * to memory when the chunk ends. The weights before each update are kept too (to take back
 * an update that went to nan or inf, and for the nodes' final state): rows take turns
 * between two sets of registers rather than copying them. Two sets of 13 need AVX-512's 32
 * registers (with 16, about half live on the stack), so the loop is also built for it
 * (OURDL_CLONES_SCALAR): benchmarks/bench_fit.py measures the epoch against a bare loop.
 * Compiled without vectorization (setup.py says why).
 */
#ifndef OURDL_LINEAR_H
#define OURDL_LINEAR_H

#include <stdint.h>

#include "clones.h"

/* Included by the Cython module after Python.h, which defines Py_ssize_t. */

#define OURDL_LINEAR_IN_REGISTERS 16

/* In a shuffled epoch, the row this many rows ahead is asked of memory early: each row's
 * chain of updates would otherwise wait for its data to come from memory, one at a time. */
#define OURDL_LINEAR_AHEAD 16

/* One chunk of rows of the tutorial's model. */
typedef struct {
    const double *x;            /* the data: row r starts at x + r * s0 */
    Py_ssize_t s0;
    const int64_t *rows;        /* the order of the rows; NULL for 0, 1, 2, ... */
    Py_ssize_t start, stop;     /* rows [start, stop) of that order */
    const Py_ssize_t *offsets;  /* where each input sits in a row */
    Py_ssize_t n_in, target;    /* how many inputs (at least 1); where the target sits */
    double *w, *w_before;       /* the weights; before the last update */
    const double *lr;           /* each weight's lr */
    double *b, *b_before;       /* the bias, before the last update; NULL without a bias */
    double b_lr;
    int is_mse, sum_is_papa;    /* MSE (else MAE); the sum is the loss's Papa (else Mama) */
    double root_grad;
    double *residuals;          /* each row's residual, the chunk's first row at 0 */
} OurdlLinear;

/* The row of a at place i of its order, its successor OURDL_LINEAR_AHEAD places on asked of
 * memory (when prefetch: a shuffled epoch whose rows' values lie within [first, last]). */
static inline __attribute__((always_inline)) const double *
ourdl_linear_row(const OurdlLinear *a, Py_ssize_t i, int prefetch, Py_ssize_t first,
                 Py_ssize_t last)
{
    Py_ssize_t q;
    if (prefetch && i + OURDL_LINEAR_AHEAD < a->stop) {
        const double *ahead = a->x + a->rows[i + OURDL_LINEAR_AHEAD] * a->s0;
        for (q = first; q < last + 8; q += 8)
            __builtin_prefetch(ahead + (q < last ? q : last));
    }
    return a->x + (a->rows != NULL ? a->rows[i] : i) * a->s0;
}

/* Whether to prefetch a's rows, and the span [*first, *last] of a row's values. */
static inline int ourdl_linear_prefetch(const OurdlLinear *a, Py_ssize_t *first, Py_ssize_t *last)
{
    Py_ssize_t k;
    *first = *last = a->target;
    for (k = 0; k < a->n_in; k++) {
        *first = a->offsets[k] < *first ? a->offsets[k] : *first;
        *last = a->offsets[k] > *last ? a->offsets[k] : *last;
    }
    return a->rows != NULL && *last - *first <= 64;
}

/* Row xr's residual *d (the sum minus the target when the sum is the loss's Papa, else the
 * target minus the sum) and the gradient *t its sum receives, from the weights w and the
 * bias b; 0 if *d (*d * *d for MSE) is nan or inf: a nan or inf in the row or in a parameter
 * always reaches it, and d * d overflows exactly when the loss pow(d, 2) does. With n_in a
 * constant where it is inlined, w may live in registers. */
static inline __attribute__((always_inline)) int
ourdl_linear_gradient(const double *restrict xr, const Py_ssize_t *restrict offsets,
                      const Py_ssize_t n_in, Py_ssize_t target, const double *w, int has_bias,
                      double b, int is_mse, int sum_is_papa, double root_grad, double *d,
                      double *t)
{
    Py_ssize_t k;
    double p = xr[offsets[0]] * w[0], loss;
#pragma GCC unroll 16
    for (k = 1; k < n_in; k++)
        p = p + xr[offsets[k]] * w[k];
    if (has_bias)
        p = p + b;
    *d = sum_is_papa ? p - xr[target] : xr[target] - p;
    loss = is_mse ? *d * *d : *d;
    if (loss - loss != 0.0)  /* nan for nan and inf, as _ops.pxd's nonfinite */
        return 0;
    /* as _ops.pxd's op_grads: MSE's 2 * d, MAE's sign(d), times the root's gradient */
    *t = is_mse ? (root_grad * 2.0) * *d
                : root_grad * (*d > 0.0 ? 1.0 : (*d < 0.0 ? -1.0 : 0.0));
    if (!sum_is_papa)
        *t = -*t;  /* the sum is Mama: it receives the negated gradient */
    return 1;
}

/* One row of ourdl_linear_run, from the weights w (bias b) to new (new_b); leaves the loop
 * before anything is written if the row's residual is nan or inf. */
#define OURDL_LINEAR_ROW(w, b, new, new_b)                                                   \
    {                                                                                        \
        const double *restrict xr = ourdl_linear_row(a, i, prefetch, first, last);           \
        double d, t;                                                                         \
        if (!ourdl_linear_gradient(xr, offsets, n_in, target, w, has_bias, b, is_mse,        \
                                   sum_is_papa, root_grad, &d, &t))                          \
            break;                                                                           \
        a->residuals[i - a->start] = d;                                                      \
        _Pragma("GCC unroll 16")                                                             \
        for (k = 0; k < n_in; k++)                                                           \
            new[k] = w[k] - lr[k] * (t * xr[offsets[k]]);                                    \
        if (has_bias)                                                                        \
            new_b = b - b_lr * t;                                                            \
        i++;                                                                                 \
    }

/* The rows of a, one row a batch, with n_in inputs (a constant where it is inlined: then w
 * and w_then live in registers), from the weights w (the bias b) and those before the last
 * update w_then (b_then). The rows take turns: one writes its new weights over w_then, the
 * next over w, so the weights before an update stay where they were, never copied; *turned
 * says whether the weights ended in w_then. Returns the first row whose residual is nan or
 * inf (nothing of it done), else stop. */
static inline __attribute__((always_inline)) Py_ssize_t
ourdl_linear_run(const OurdlLinear *a, const Py_ssize_t n_in, double *restrict w,
                 double *restrict w_then, double *b_now, double *b_then, int *turned)
{
    const Py_ssize_t *restrict offsets = a->offsets;
    const double *restrict lr = a->lr;
    const Py_ssize_t target = a->target;
    const int is_mse = a->is_mse, sum_is_papa = a->sum_is_papa, has_bias = a->b != NULL;
    const double root_grad = a->root_grad, b_lr = a->b_lr;
    double b = *b_now, b_old = *b_then;
    Py_ssize_t i = a->start, k, first, last;
    const int prefetch = ourdl_linear_prefetch(a, &first, &last);
    for (;;) {
        *turned = 0;
        if (i == a->stop)
            break;
        OURDL_LINEAR_ROW(w, b, w_then, b_old)
        *turned = 1;
        if (i == a->stop)
            break;
        OURDL_LINEAR_ROW(w_then, b_old, w, b)
    }
    *b_now = b;
    *b_then = b_old;
    return i;
}

#undef OURDL_LINEAR_ROW

/* The rows of a, one row a batch: ourdl_linear_run, in registers where the inputs are few
 * enough. Leaves the weights, and those before the last update, in a->w and a->w_before (the
 * bias in a->b and a->b_before). Returns the first row whose residual is nan or inf (nothing
 * of it done), else a->stop. */
OURDL_CLONES_SCALAR static Py_ssize_t ourdl_linear_rows(const OurdlLinear *a)
{
    double w[OURDL_LINEAR_IN_REGISTERS], w_then[OURDL_LINEAR_IN_REGISTERS], swap;
    double b = a->b != NULL ? a->b[0] : 0.0, b_then = a->b != NULL ? a->b_before[0] : 0.0;
    Py_ssize_t k, n = a->n_in, stopped;
    int turned;
    if (n < 1 || n > OURDL_LINEAR_IN_REGISTERS) {
        stopped = ourdl_linear_run(a, n, a->w, a->w_before, &b, &b_then, &turned);
        for (k = 0; turned && k < n; k++) {
            swap = a->w[k];
            a->w[k] = a->w_before[k];
            a->w_before[k] = swap;
        }
    } else {
        for (k = 0; k < n; k++) {
            w[k] = a->w[k];
            w_then[k] = a->w_before[k];
        }
        switch (n) {
#define OURDL_LINEAR_CASE(K) \
        case K: stopped = ourdl_linear_run(a, K, w, w_then, &b, &b_then, &turned); break;
        OURDL_LINEAR_CASE(1) OURDL_LINEAR_CASE(2) OURDL_LINEAR_CASE(3) OURDL_LINEAR_CASE(4)
        OURDL_LINEAR_CASE(5) OURDL_LINEAR_CASE(6) OURDL_LINEAR_CASE(7) OURDL_LINEAR_CASE(8)
        OURDL_LINEAR_CASE(9) OURDL_LINEAR_CASE(10) OURDL_LINEAR_CASE(11) OURDL_LINEAR_CASE(12)
        OURDL_LINEAR_CASE(13) OURDL_LINEAR_CASE(14) OURDL_LINEAR_CASE(15) OURDL_LINEAR_CASE(16)
#undef OURDL_LINEAR_CASE
        }
        for (k = 0; k < n; k++) {
            a->w[k] = turned ? w_then[k] : w[k];
            a->w_before[k] = turned ? w[k] : w_then[k];
        }
    }
    if (a->b != NULL) {
        a->b[0] = turned ? b_then : b;
        a->b_before[0] = turned ? b : b_then;
    }
    return stopped;
}

/* The rows of a with `batch` rows a batch (*count of them so far): each row's gradients are
 * summed into w_sum and b_sum as the fused layer sums them, and after every batch (and the
 * epoch's last row, epoch_rows - 1) the mean is stepped on, the weights before it kept in
 * a->w_before. Returns the first row not done, else a->stop: its residual was nan or inf
 * (nothing of it done), or (*bad_step) the step after it made a parameter nan or inf. */
static Py_ssize_t ourdl_linear_batches(const OurdlLinear *a, Py_ssize_t batch,
                                       Py_ssize_t epoch_rows, Py_ssize_t *count,
                                       double *restrict w_sum, double *b_sum, int *bad_step)
{
    double *restrict w = a->w;
    const Py_ssize_t n_in = a->n_in;
    double d, t, check;
    Py_ssize_t i, k, first, last;
    const int prefetch = ourdl_linear_prefetch(a, &first, &last);
    *bad_step = 0;
    for (i = a->start; i < a->stop; i++) {
        const double *restrict xr = ourdl_linear_row(a, i, prefetch, first, last);
        if (!ourdl_linear_gradient(xr, a->offsets, n_in, a->target, w, a->b != NULL,
                                   a->b != NULL ? a->b[0] : 0.0, a->is_mse, a->sum_is_papa,
                                   a->root_grad, &d, &t))
            return i;
        a->residuals[i - a->start] = d;
        for (k = 0; k < n_in; k++)
            w_sum[k] = w_sum[k] + t * xr[a->offsets[k]];
        if (a->b != NULL)
            b_sum[0] = b_sum[0] + t;
        *count += 1;
        if (*count < batch && i != epoch_rows - 1)
            continue;
        check = 0.0;
        for (k = 0; k < n_in; k++) {
            a->w_before[k] = w[k];
            w[k] = w[k] - a->lr[k] * (w_sum[k] / *count);
            w_sum[k] = -0.0;
            check = check + (w[k] - w[k]);
        }
        if (a->b != NULL) {
            a->b_before[0] = a->b[0];
            a->b[0] = a->b[0] - a->b_lr * (b_sum[0] / *count);
            b_sum[0] = -0.0;
            check = check + (a->b[0] - a->b[0]);
        }
        *count = 0;
        if (check != 0.0) {  /* nan: a parameter became nan or inf */
            *bad_step = 1;
            return i;
        }
    }
    return i;
}

#endif
