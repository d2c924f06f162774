"""Bare compiled loops for the seed's 13 -> 1 linear model: the floor that Tape.fit is held to.

Each loop does the seed's floating-point operations for one row, in the seed's order, and
nothing else (no loss history, no checks, no buffers)::

    p = x0*w0;  p = p + x_k*w_k  (k = 1..12)   # the chain of AddNodes, left to right
    d = p - y
    t = 2.0*d                                   # MSENode: grad*2*(p - y), grad = 1.0
    w_k = w_k - 0.01*(t*x_k)                    # MulNode sends t*x_k; updata: w - lr*grad

so their weights after an epoch equal ourdl's to the last bit (bench_fit.py asserts it).
numba compiles without fastmath, so LLVM neither reorders nor fuses these into FMAs.

Two spellings of the same loop:
- ``bare_epoch``: weights in an array, as one would write it first;
- ``bare_epoch_in_registers``: the 13 weights as 13 local scalars (the loop body is
  generated), so the compiler can keep them in registers across rows; this is the loop the
  issue calls the physical floor of the dependency chain.
Importing this module needs numba; bench_fit.py skips the bare loop without it.
"""
import numba
import numpy as np

N_FEATURES = 13
LR = 0.01


@numba.njit(cache=False, fastmath=False)
def bare_epoch(data, w):
    """One epoch over data (rows x 14: 13 features, target) on the weights w, in place."""
    for r in range(data.shape[0]):
        p = data[r, 0] * w[0]
        for k in range(1, N_FEATURES):
            p = p + data[r, k] * w[k]
        d = p - data[r, N_FEATURES]
        t = 2.0 * d
        for k in range(N_FEATURES):
            w[k] = w[k] - LR * (t * data[r, k])
    return w


def _generate_in_registers():
    """The same loop with w0..w12 as locals: written out, since numba has no unroll pragma."""
    ks = range(N_FEATURES)
    lines = ["def bare_epoch_in_registers(data, w):"]
    lines += [f"    w{k} = w[{k}]" for k in ks]
    lines += ["    for r in range(data.shape[0]):"]
    lines += [f"        x{k} = data[r, {k}]" for k in ks]
    lines += ["        p = x0 * w0"]
    lines += [f"        p = p + x{k} * w{k}" for k in ks if k]
    lines += [f"        d = p - data[r, {N_FEATURES}]", "        t = 2.0 * d"]
    lines += [f"        w{k} = w{k} - {LR!r} * (t * x{k})" for k in ks]
    lines += [f"    w[{k}] = w{k}" for k in ks]
    lines += ["    return w"]
    namespace = {}
    exec(compile("\n".join(lines), "<bare_epoch_in_registers>", "exec"), namespace)
    return numba.njit(cache=False, fastmath=False)(namespace["bare_epoch_in_registers"])


bare_epoch_in_registers = _generate_in_registers()


def from_zero(loop, data):
    """Weights after one epoch of ``loop`` over ``data``, starting from zero."""
    return loop(np.ascontiguousarray(data, dtype=np.float64), np.zeros(N_FEATURES))
