"""Bare compiled loops for the tutorial's 13 -> 1 linear model: the floor that Tape.fit is held to.

Each loop does the tutorial's floating-point operations for one row, in the tutorial's order, and
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
  generated), so the compiler can keep them in registers across rows: the physical floor of
  the dependency chain from one row's weights to the next.
``bare_mlp_epoch`` is the same idea for the tanh MLPs of bench_mlp.py.
Importing this module needs numba; the benchmarks skip the bare loops without it.
"""
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

N_FEATURES = 13
LR = 0.01
AHEAD = 16  # rows ahead that a loop over rows in random order asks of memory (as ourdl's)


@intrinsic
def prefetch_row(typingctx, data, r):
    """Ask memory for row r of the 2-d array data (all its cache lines): LLVM's prefetch."""
    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        first = cgutils.get_item_pointer(context, builder, signature.args[0], array,
                                         [args[1], context.get_constant(types.intp, 0)])
        byte = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte, i32, i32, i32]),
            "llvm.prefetch.p0i8")
        start = builder.bitcast(first, byte)
        for offset in range(0, 8 * (N_FEATURES + 1), 56):  # every line a 112-byte row touches
            line = builder.gep(start, [ir.Constant(ir.IntType(64), offset)])
            builder.call(fetch, [line, i32(0), i32(3), i32(1)])
        last = builder.gep(start, [ir.Constant(ir.IntType(64), 8 * N_FEATURES)])
        builder.call(fetch, [last, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.void(data, r), codegen


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


@numba.njit(cache=False, fastmath=False)
def bare_epoch_in_order(data, w, order):
    """bare_epoch over the rows in the given order, each row asked of memory AHEAD rows
    before it is used (with the rows in random places, each would otherwise wait for memory)."""
    n = order.shape[0]
    for i in range(n):
        if i + AHEAD < n:
            prefetch_row(data, order[i + AHEAD])
        r = order[i]
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


@numba.njit(cache=False, fastmath=False)
def bare_mlp_epoch(data, W1, W2, W3):
    """One epoch of per-sample SGD for a tanh MLP n_in-h1-h2-1 without biases, in place, in
    ourdl's order: each unit's sum over its inputs in input order; each input's gradient summed
    over the units last to first (``Layer.fold`` of an nn-built layer), from -0.0; a layer's
    input gradients from its weights before its update; tanh is libm's. The loops over units
    are independent, so the compiler may vectorize them; each input's gradient is a chain.
    bench_mlp.py asserts that the weights equal ourdl's to the last bit."""
    n_in, h1 = W1.shape
    h2 = W2.shape[1]
    a1, a2 = np.empty(h1), np.empty(h2)
    d1, d2 = np.empty(h1), np.empty(h2)
    g1, g2 = np.empty(h1), np.empty(h2)
    for r in range(data.shape[0]):
        x = data[r]
        for j in range(h1):
            a1[j] = x[0] * W1[0, j]
        for i in range(1, n_in):
            for j in range(h1):
                a1[j] = a1[j] + x[i] * W1[i, j]
        for j in range(h1):
            a1[j] = np.tanh(a1[j])
        for j in range(h2):
            a2[j] = a1[0] * W2[0, j]
        for i in range(1, h1):
            for j in range(h2):
                a2[j] = a2[j] + a1[i] * W2[i, j]
        for j in range(h2):
            a2[j] = np.tanh(a2[j])
        out = a2[0] * W3[0, 0]
        for i in range(1, h2):
            out = out + a2[i] * W3[i, 0]
        t = 2.0 * (out - x[n_in])
        # output layer: gradients to its inputs, then its update
        for i in range(h2):
            g2[i] = -0.0 + t * W3[i, 0]
            W3[i, 0] = W3[i, 0] - LR * (t * a2[i])
        # second layer
        for j in range(h2):
            d2[j] = g2[j] * (1.0 - a2[j] * a2[j])
        for i in range(h1):
            acc = -0.0
            for j in range(h2 - 1, -1, -1):
                acc = acc + d2[j] * W2[i, j]
            g1[i] = acc
        for i in range(h1):
            for j in range(h2):
                W2[i, j] = W2[i, j] - LR * (d2[j] * a1[i])
        # first layer: its inputs are data, no gradients owed to them
        for j in range(h1):
            d1[j] = g1[j] * (1.0 - a1[j] * a1[j])
        for i in range(n_in):
            for j in range(h1):
                W1[i, j] = W1[i, j] - LR * (d1[j] * x[i])
    return W1, W2, W3


@numba.njit(cache=False, fastmath=False)
def bare_digits_mlp_epoch(data, W1, b1, W2, b2, lr):
    """One epoch of per-sample SGD for the digits MLP 64-h-k (tanh, biases) with ourdl's
    softmax cross-entropy head: shifted by the largest logit, exp, sum, ln, then
    -sum t_k * (d_k - ln(total)). The same operations as ourdl's nodes and nothing else,
    the units side by side; the head's gradient sums are not in the tape's exact order, so
    bench_digits.py holds it to ourdl's weights to 1e-9, not to the bit."""
    n_in, h = W1.shape
    k = W2.shape[1]
    a1, d1, g1 = np.empty(h), np.empty(h), np.empty(h)
    z, d, e, gz = np.empty(k), np.empty(k), np.empty(k), np.empty(k)
    for r in range(data.shape[0]):
        x, t = data[r, :n_in], data[r, n_in:]
        for j in range(h):
            a1[j] = x[0] * W1[0, j]
        for i in range(1, n_in):
            for j in range(h):
                a1[j] = a1[j] + x[i] * W1[i, j]
        for j in range(h):
            a1[j] = np.tanh(a1[j] + b1[j])
        for c in range(k):
            z[c] = a1[0] * W2[0, c]
        for i in range(1, h):
            for c in range(k):
                z[c] = z[c] + a1[i] * W2[i, c]
        largest = z[0] + b2[0]
        for c in range(k):
            z[c] = z[c] + b2[c]
            largest = max(largest, z[c])
        total = 0.0
        for c in range(k):
            d[c] = z[c] - largest
            e[c] = np.exp(d[c])
            total = total + e[c]
        log_total = np.log(total)
        # backward: the loss's gradient at each logit, from the head's nodes
        g_log_total = 0.0
        for c in range(k):
            g_lp = -1.0 * t[c]
            gz[c] = g_lp
            g_log_total = g_log_total - g_lp
        g_total = g_log_total / total
        g_largest = 0.0
        for c in range(k):
            gz[c] = gz[c] + g_total * e[c]
            g_largest = g_largest - gz[c]
        top = 0
        for c in range(1, k):
            if z[c] > z[top]:
                top = c
        gz[top] = gz[top] + g_largest
        for i in range(h):
            acc = -0.0
            for c in range(k - 1, -1, -1):
                acc = acc + gz[c] * W2[i, c]
            g1[i] = acc
        for i in range(h):
            for c in range(k):
                W2[i, c] = W2[i, c] - lr * (gz[c] * a1[i])
        for c in range(k):
            b2[c] = b2[c] - lr * gz[c]
        for j in range(h):
            d1[j] = g1[j] * (1.0 - a1[j] * a1[j])
        for i in range(n_in):
            for j in range(h):
                W1[i, j] = W1[i, j] - lr * (d1[j] * x[i])
        for j in range(h):
            b1[j] = b1[j] - lr * d1[j]
    return W1, b1, W2, b2
