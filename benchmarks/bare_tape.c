/* The bare compiled tape, the floor of bench_tape.py: forward, then backward, over arrays of
   op codes and parent indices, with the arithmetic of src/ourdl/_ops.pxd for the ops of the
   benchmark's random graphs, and nothing else: no Python, no checks, no callbacks. Like
   ourdl, backward starts every gradient at -0.0 and the root's at 1, adds in reverse tape
   order, and keeps what each node sent its parents (a node's Papa_grad and Mama_grad), so
   its values and gradients equal ourdl's to the last bit.
   Built by bench_tape.py with ourdl's flags: -O3 -fno-tree-vectorize -ffp-contract=off. */
#include <math.h>
#include <stddef.h>

enum { LEAF, ADD, MUL, DIV, EXP, TANH, SIN, SIGMOID };  /* bench_tape.py maps ourdl's codes */

void bare_forward(ptrdiff_t n, const int *op, const ptrdiff_t *papa, const ptrdiff_t *mama,
                  double *v)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        double a, b;
        switch (op[i]) {
        case LEAF: continue;
        case ADD: a = v[papa[i]]; b = v[mama[i]]; v[i] = a + b; break;
        case MUL: a = v[papa[i]]; b = v[mama[i]]; v[i] = a * b; break;
        case DIV: a = v[papa[i]]; b = v[mama[i]]; v[i] = a / b; break;
        case EXP: v[i] = exp(v[papa[i]]); break;
        case TANH: v[i] = tanh(v[papa[i]]); break;
        case SIN: v[i] = sin(v[papa[i]]); break;
        case SIGMOID: v[i] = 1.0 / (1.0 + exp(-v[papa[i]])); break;
        }
    }
}

void bare_backward(ptrdiff_t n, const int *op, const ptrdiff_t *papa, const ptrdiff_t *mama,
                   const double *v, double *g, double *to_papa, double *to_mama)
{
    for (ptrdiff_t i = 0; i < n - 1; i++)
        g[i] = -0.0;
    g[n - 1] = 1.0;
    for (ptrdiff_t i = n - 1; i >= 0; i--) {
        ptrdiff_t p = papa[i], m = mama[i];
        double gi = g[i], a, b, tp, tm;
        switch (op[i]) {
        case LEAF: continue;
        case ADD: tp = gi; tm = gi; break;
        case MUL: a = v[p]; b = v[m]; tp = gi * b; tm = gi * a; break;
        case DIV: a = v[p]; b = v[m]; tp = gi / b; tm = (-gi * a) / (b * b); break;
        case EXP: tp = gi * v[i]; break;
        case TANH: tp = gi * (1.0 - v[i] * v[i]); break;
        case SIN: tp = gi * cos(v[p]); break;
        case SIGMOID: tp = gi * (v[i] * (1.0 - v[i])); break;
        default: continue;
        }
        to_papa[i] = tp;
        g[p] += tp;
        if (op[i] <= DIV) {
            to_mama[i] = tm;
            g[m] += tm;
        }
    }
}

/* reps forward and backward passes in a row: the time of one, without a call from Python. */
void bare_passes(ptrdiff_t reps, ptrdiff_t n, const int *op, const ptrdiff_t *papa,
                 const ptrdiff_t *mama, double *v, double *g, double *to_papa, double *to_mama)
{
    for (ptrdiff_t r = 0; r < reps; r++) {
        bare_forward(n, op, papa, mama, v);
        bare_backward(n, op, papa, mama, v, g, to_papa, to_mama);
    }
}
