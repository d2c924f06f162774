/* The inner loops of ourdl's fused dense layers (_fused.pyx), in C so that they can be
 * compiled for several instruction sets at once: the processor runs the widest version it
 * has (GCC's target_clones; one portable version elsewhere).
 *
 * Every loop runs across independent units (or inputs), so a vector does the same
 * operations side by side that the general passes do one by one, each unit's in its own
 * order; and -ffp-contract=off (setup.py) keeps every multiply and add apart. So every
 * version gives the same bits.
 */
#ifndef OURDL_DENSE_H
#define OURDL_DENSE_H

/* Included by the Cython module after Python.h, which defines Py_ssize_t. */

#include <stdint.h>
#include <string.h>

#include "clones.h"

/* acc[j] = x[0]*w[0][j] + x[1]*w[1][j] + ... (left to right), w laid out [input][unit]. */
OURDL_CLONES static void ourdl_dense_sums(const double *restrict x, const double *restrict w,
                                          double *restrict acc, Py_ssize_t n_in, Py_ssize_t n_out)
{
    Py_ssize_t i, j;
    for (j = 0; j < n_out; j++)
        acc[j] = x[0] * w[j];
    for (i = 1; i < n_in; i++) {
        const double xi = x[i];
        const double *restrict wi = w + i * n_out;
        for (j = 0; j < n_out; j++)
            acc[j] = acc[j] + xi * wi[j];
    }
}

/* gin[i] = -0.0 + d[fold[0]]*w[i][fold[0]] + d[fold[1]]*w[i][fold[1]] + ... for every input.
 * From wt, the weights transposed ([unit][input]), when it is not NULL: each term's loop then
 * reads a unit's weights side by side, not one per row of w. */
OURDL_CLONES static void ourdl_dense_input_grads(const double *restrict d,
                                                 const double *restrict w,
                                                 const double *restrict wt,
                                                 const Py_ssize_t *restrict fold,
                                                 double *restrict gin, Py_ssize_t n_in,
                                                 Py_ssize_t n_out)
{
    Py_ssize_t i, q;
    for (i = 0; i < n_in; i++)
        gin[i] = -0.0;
    for (q = 0; q < n_out; q++) {
        const Py_ssize_t j = fold[q];
        const double dj = d[j];
        if (wt != NULL) {
            const double *restrict wj = wt + j * n_in;
            for (i = 0; i < n_in; i++)
                gin[i] = gin[i] + dj * wj[i];
        } else {
            for (i = 0; i < n_in; i++)
                gin[i] = gin[i] + dj * w[i * n_out + j];
        }
    }
}

/* t[j][i] = a[i][j]: a laid out [rows][cols], t [cols][rows]. */
OURDL_CLONES static void ourdl_transpose(const double *restrict a, double *restrict t,
                                         Py_ssize_t rows, Py_ssize_t cols)
{
    Py_ssize_t i, j;
    for (i = 0; i < rows; i++)
        for (j = 0; j < cols; j++)
            t[j * rows + i] = a[i * cols + j];
}

/* new[i][j] = w[i][j] - lr[i][j] * (d[j] * x[i]); returns nonzero if a new weight is nan or
 * inf. x - x is 0 for every finite x and nan otherwise: summed per unit, the test
 * vectorizes with the update. */
OURDL_CLONES static int ourdl_dense_sgd_aside(const double *restrict x,
                                              const double *restrict d,
                                              const double *restrict w, double *restrict new_w,
                                              const double *restrict lr,
                                              double *restrict check, Py_ssize_t n_in,
                                              Py_ssize_t n_out)
{
    Py_ssize_t i, j;
    int bad = 0;
    for (j = 0; j < n_out; j++)
        check[j] = 0.0;
    for (i = 0; i < n_in; i++) {
        const double xi = x[i];
        const double *restrict wi = w + i * n_out;
        const double *restrict lri = lr + i * n_out;
        double *restrict ni = new_w + i * n_out;
        for (j = 0; j < n_out; j++) {
            ni[j] = wi[j] - lri[j] * (d[j] * xi);
            check[j] = check[j] + (ni[j] - ni[j]);
        }
    }
    for (j = 0; j < n_out; j++)
        bad |= check[j] != 0.0;
    return bad;
}

/* The same update in place, for a row whose update is known to stay finite (the caller
 * proves it from bounds first): nothing to take back. lr NULL: lr_all is every weight's lr.
 * With wt (the weights transposed, [unit][input]), the same update of it, lr_t transposed
 * too: each of its weights gets the very operations of its twin in w. */
OURDL_CLONES static void ourdl_dense_sgd_in_place(const double *restrict x,
                                                  const double *restrict d,
                                                  double *restrict w, double *restrict wt,
                                                  const double *restrict lr,
                                                  const double *restrict lr_t, double lr_all,
                                                  Py_ssize_t n_in, Py_ssize_t n_out)
{
    Py_ssize_t i, j;
    for (i = 0; i < n_in; i++) {
        const double xi = x[i];
        double *restrict wi = w + i * n_out;
        if (lr == NULL) {
            for (j = 0; j < n_out; j++)
                wi[j] = wi[j] - lr_all * (d[j] * xi);
        } else {
            const double *restrict lri = lr + i * n_out;
            for (j = 0; j < n_out; j++)
                wi[j] = wi[j] - lri[j] * (d[j] * xi);
        }
    }
    if (wt == NULL)
        return;
    for (j = 0; j < n_out; j++) {
        const double dj = d[j];
        double *restrict wj = wt + j * n_in;
        if (lr == NULL) {
            for (i = 0; i < n_in; i++)
                wj[i] = wj[i] - lr_all * (dj * x[i]);
        } else {
            const double *restrict lrj = lr_t + j * n_in;
            for (i = 0; i < n_in; i++)
                wj[i] = wj[i] - lrj[i] * (dj * x[i]);
        }
    }
}

/* The largest magnitude among v[0], ..., v[n - 1]; nan if one of them is nan. Read as
 * integers, the bits of |v| are in the order of the magnitudes, nan's above inf's. */
OURDL_CLONES static double ourdl_magnitude(const double *restrict v, Py_ssize_t n)
{
    Py_ssize_t k;
    uint64_t bits, top = 0;
    double largest;
    for (k = 0; k < n; k++) {
        memcpy(&bits, v + k, sizeof bits);
        bits &= ~((uint64_t)1 << 63);
        top = bits > top ? bits : top;
    }
    memcpy(&largest, &top, sizeof largest);
    return largest;
}

/* acc[p] = acc[p] + a[ia[p]] * b[ib[p]] for p < n: one rank of independent sums, each term
 * gathered by index (a and b may be the same array: they are only read). */
OURDL_CLONES static void ourdl_gathered_terms(double *restrict acc, const double *restrict a,
                                              const Py_ssize_t *restrict ia,
                                              const double *restrict b,
                                              const Py_ssize_t *restrict ib, Py_ssize_t n)
{
    Py_ssize_t p;
    for (p = 0; p < n; p++)
        acc[p] = acc[p] + a[ia[p]] * b[ib[p]];
}

/* Runs of terms (_dense.pxd: Runs): for each run (a, s = sc[scalar], v, length), in order,
 * acc[a + l] = acc[a + l] + s * vec[v + l] (scalar_first), else + vec[v + l] * s; the sums
 * of a run side by side. */
OURDL_CLONES static void ourdl_runs(double *restrict acc, const double *restrict sc,
                                    const double *restrict vec, const Py_ssize_t *restrict a,
                                    const Py_ssize_t *restrict scalar,
                                    const Py_ssize_t *restrict v,
                                    const Py_ssize_t *restrict length, Py_ssize_t n,
                                    int scalar_first)
{
    Py_ssize_t k, l;
    for (k = 0; k < n; k++) {
        const double s = sc[scalar[k]];
        const double *restrict x = vec + v[k];
        double *restrict y = acc + a[k];
        if (scalar_first)
            for (l = 0; l < length[k]; l++)
                y[l] = y[l] + s * x[l];
        else
            for (l = 0; l < length[k]; l++)
                y[l] = y[l] + x[l] * s;
    }
}

#endif
