/* ourdl_select(c, a, b): c ? a : b, bit for bit, without a branch.
 *
 * The choices of relu and of MaxNode (and of the max-pooling and relu layers built from
 * them) depend on the data, about half one way and half the other: as branches, the
 * processor guesses them wrong about every other time (measured: most of a small CNN's
 * time). As masks over the bits, the choice costs three integer operations.
 */
#ifndef OURDL_SELECT_H
#define OURDL_SELECT_H

#include <stdint.h>
#include <string.h>

static inline double ourdl_select(int c, double a, double b)
{
    uint64_t ua, ub, m = (uint64_t)0 - (uint64_t)(c != 0), r;
    double out;
    memcpy(&ua, &a, sizeof ua);
    memcpy(&ub, &b, sizeof ub);
    r = (ua & m) | (ub & ~m);
    memcpy(&out, &r, sizeof out);
    return out;
}

#endif
