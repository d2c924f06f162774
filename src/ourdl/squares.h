/* Squares exactly as libm's pow(d, 2.0) computes them (and so Python's d ** 2, which
 * reference.py's MSENode uses), mostly without calling pow(): ourdl's MSE losses.
 *
 * d * d is correctly rounded. glibc's pow() is within 0.509 ulp + 1.3 * 2**-68 * |y ln x| *
 * 2**53 ulp of the exact power (the error analysis in its source: its exp's error, plus its
 * log's relative error scaled by the size of y ln x): 0.54 ulp at worst, 0.5125 ulp for
 * 2**-64 < |d| < 2**64. So pow(d, 2.0) can differ from d * d only when the exact square lies
 * 0.46 ulp (0.4875 ulp in that range) or more from d * d, i.e. near a point halfway between
 * two doubles. Dekker's exact product gives d * d's rounding error: in the rest of the cases
 * (about 96 in 100 in that range) d * d is pow's answer. tests/test_reference_equivalence.py
 * holds this to pow() on hundreds of thousands of values, most of them near halfway points.
 */
#ifndef OURDL_SQUARES_H
#define OURDL_SQUARES_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#include "clones.h"

/* d * d where that is certainly pow(d, 2.0); NAN where pow() must be asked (never a
 * square's value: d is finite wherever the answer is d * d). */
static inline double ourdl_sure_square(double d)
{
    double p = d * d, a = fabs(d), hi = 134217729.0 * d, lo, err, ulp, bound;
    uint64_t bits;
    hi = hi - (hi - d);           /* Veltkamp: d = hi + lo, each half fits in 26 bits */
    lo = d - hi;
    err = ((hi * hi - p) + 2.0 * hi * lo) + lo * lo;   /* d*d - p, exactly */
    memcpy(&bits, &p, sizeof bits);
    bits &= 0x7ff0000000000000ULL;  /* 2**exponent(p), so ulp(p) = that * 2**-52 */
    memcpy(&ulp, &bits, sizeof ulp);
    bound = (a > 0x1p-64 && a < 0x1p64) ? 0.48 : 0.44;
    if (a == 0.0 || (a > 1e-140 && a < 1e140 && fabs(err) < bound * 0x1p-52 * ulp))
        return p;
    return NAN;
}

/* sq[k] = ourdl_sure_square(d[k]) for k < n: the squares side by side, in vectors. */
OURDL_CLONES __attribute__((unused)) static void ourdl_sure_squares(const double *restrict d,
                                                                   double *restrict sq,
                                                                   Py_ssize_t n)
{
    Py_ssize_t k;
    for (k = 0; k < n; k++)
        sq[k] = ourdl_sure_square(d[k]);
}

#endif
