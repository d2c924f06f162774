/* The tutorial's model trained one row a batch (ourdl._kernels.linear_rows): each row's
 * loss(x . w + b, y), its gradient, and every weight's update by its own lr, the same
 * floating-point operations in the same order as the general passes.
 *
 * Each row's sum waits for the row before's updates, so the loop is one long chain of
 * dependent operations, and anything on that chain shows. Weights kept in memory put a
 * store and a load on it every row; so for up to OURDL_LINEAR_IN_REGISTERS inputs the loop
 * is compiled once per count of inputs, its weights in registers, written to memory when
 * the chunk ends. The weights before each update are kept too (to take back an update that
 * went to nan or inf, and for the nodes' final state): rows take turns between two sets of
 * registers rather than copying them: two sets of 13 need AVX-512's 32 registers (with
 * 16, half of them live on the stack), so the loop is also built for it (OURDL_CLONES_SCALAR).
 * Measured on the tutorial's 13 inputs over 635,716 rows, fit without the loss history:
 * 9.2-9.4 ms in 16 registers, 8.1-8.3 in 32; the bare numba loop 7.2-7.4 in the same run.
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
    Py_ssize_t n_in, target;    /* how many inputs; where the target sits */
    double *w, *w_before;       /* the weights; before the last update */
    const double *lr;           /* each weight's lr */
    double *b, *b_before;       /* the bias, before the last update; NULL without a bias */
    double b_lr;
    int is_mse, sum_is_papa;    /* MSE (else MAE); the sum is the loss's Papa (else Mama) */
    double root_grad;
    double *residuals;          /* each row's residual, the chunk's first row at 0 */
} OurdlLinear;

static inline __attribute__((always_inline)) double ourdl_sign(double a)
{
    return a > 0.0 ? 1.0 : (a < 0.0 ? -1.0 : 0.0);
}

/* One row of ourdl_linear_run, from the weights w (bias b) to new (new_b); leaves the loop
 * before anything is written if the row's residual is nan or inf. */
#define OURDL_LINEAR_ROW(w, b, new, new_b)                                                   \
    {                                                                                        \
        const double *restrict xr;                                                           \
        double p, d, t;                                                                      \
        if (prefetch && i + OURDL_LINEAR_AHEAD < a->stop) {                                  \
            xr = x0 + rows[i + OURDL_LINEAR_AHEAD] * s0;                                     \
            for (q = first; q < last + 8; q += 8)                                            \
                __builtin_prefetch(xr + (q < last ? q : last));                              \
        }                                                                                    \
        xr = x0 + (rows != NULL ? rows[i] : i) * s0;                                         \
        p = xr[offsets[0]] * w[0];                                                           \
        _Pragma("GCC unroll 16")                                                             \
        for (k = 1; k < n_in; k++)                                                           \
            p = p + xr[offsets[k]] * w[k];                                                   \
        if (has_bias)                                                                        \
            p = p + b;                                                                       \
        d = sum_is_papa ? p - xr[target] : xr[target] - p;                                   \
        /* nan or inf in the data, or in a parameter after the last update, always reaches   \
         * d; and d * d overflows exactly when the loss pow(d, 2) does. */                   \
        if ((is_mse ? d * d : d) - (is_mse ? d * d : d) != 0.0)                              \
            break;                                                                           \
        a->residuals[i - a->start] = d;                                                      \
        t = is_mse ? twice_root_grad * d : root_grad * ourdl_sign(d);                        \
        if (!sum_is_papa)                                                                    \
            t = -t; /* the sum is Mama: it receives the negated gradient */                  \
        _Pragma("GCC unroll 16")                                                             \
        for (k = 0; k < n_in; k++)                                                           \
            new[k] = w[k] - lr[k] * (t * xr[offsets[k]]);                                    \
        if (has_bias)                                                                        \
            new_b = b - b_lr * t;                                                            \
        i++;                                                                                 \
    }

/* The rows of a, with n_in inputs (a constant where it is inlined: then w and old live in
 * registers), from the weights in w (before the last update: old; the bias likewise). The
 * rows take turns: one writes its new weights over old, the next over w, so the weights
 * before an update stay where they were, never copied; *turned says whether the weights
 * ended in old. Returns the first row whose residual is nan or inf (nothing of it done),
 * else stop. */
static inline __attribute__((always_inline)) Py_ssize_t
ourdl_linear_run(const OurdlLinear *a, const Py_ssize_t n_in, double *restrict w,
                 double *restrict old, double *bias_now, double *bias_then, int *turned)
{
    const double *restrict x0 = a->x;
    const Py_ssize_t *restrict offsets = a->offsets;
    const double *restrict lr = a->lr;
    const int64_t *rows = a->rows;
    const Py_ssize_t s0 = a->s0, target = a->target;
    const int is_mse = a->is_mse, sum_is_papa = a->sum_is_papa, has_bias = a->b != NULL;
    const double root_grad = a->root_grad, twice_root_grad = a->root_grad * 2.0;
    const double b_lr = a->b_lr;
    double bias = *bias_now, bias_old = *bias_then;
    Py_ssize_t i = a->start, k, q, first = target, last = target;
    int prefetch;
    for (k = 0; k < n_in; k++) {
        first = offsets[k] < first ? offsets[k] : first;
        last = offsets[k] > last ? offsets[k] : last;
    }
    prefetch = rows != NULL && last - first <= 64;
    for (;;) {
        *turned = 0;
        if (i == a->stop)
            break;
        OURDL_LINEAR_ROW(w, bias, old, bias_old)
        *turned = 1;
        if (i == a->stop)
            break;
        OURDL_LINEAR_ROW(old, bias_old, w, bias)
    }
    *bias_now = bias;
    *bias_then = bias_old;
    return i;
}

#undef OURDL_LINEAR_ROW

/* The rows of a: ourdl_linear_run, in registers where the inputs are few enough. Leaves
 * the weights, and those before the last update, in a->w and a->w_before (the bias in a->b
 * and a->b_before). */
OURDL_CLONES_SCALAR static Py_ssize_t ourdl_linear_rows(const OurdlLinear *a)
{
    double w[OURDL_LINEAR_IN_REGISTERS], old[OURDL_LINEAR_IN_REGISTERS], swap;
    double bias = a->b != NULL ? a->b[0] : 0.0, bias_old = a->b != NULL ? a->b_before[0] : 0.0;
    Py_ssize_t k, n = a->n_in, stopped;
    int turned;
    if (n > OURDL_LINEAR_IN_REGISTERS) {
        stopped = ourdl_linear_run(a, n, a->w, a->w_before, &bias, &bias_old, &turned);
        for (k = 0; turned && k < n; k++) {
            swap = a->w[k];
            a->w[k] = a->w_before[k];
            a->w_before[k] = swap;
        }
    } else {
        for (k = 0; k < n; k++) {
            w[k] = a->w[k];
            old[k] = a->w_before[k];
        }
        switch (n) {
#define OURDL_LINEAR_CASE(K) \
        case K: stopped = ourdl_linear_run(a, K, w, old, &bias, &bias_old, &turned); break;
        OURDL_LINEAR_CASE(1) OURDL_LINEAR_CASE(2) OURDL_LINEAR_CASE(3) OURDL_LINEAR_CASE(4)
        OURDL_LINEAR_CASE(5) OURDL_LINEAR_CASE(6) OURDL_LINEAR_CASE(7) OURDL_LINEAR_CASE(8)
        OURDL_LINEAR_CASE(9) OURDL_LINEAR_CASE(10) OURDL_LINEAR_CASE(11) OURDL_LINEAR_CASE(12)
        OURDL_LINEAR_CASE(13) OURDL_LINEAR_CASE(14) OURDL_LINEAR_CASE(15)
#undef OURDL_LINEAR_CASE
        default:
            stopped = ourdl_linear_run(a, OURDL_LINEAR_IN_REGISTERS, w, old, &bias, &bias_old,
                                       &turned);
        }
        for (k = 0; k < n; k++) {
            a->w[k] = turned ? old[k] : w[k];
            a->w_before[k] = turned ? w[k] : old[k];
        }
    }
    if (a->b != NULL) {
        a->b[0] = turned ? bias_old : bias;
        a->b_before[0] = turned ? bias : bias_old;
    }
    return stopped;
}

#endif
