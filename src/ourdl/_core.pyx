"""ourdl's compiled core: the seed's nodes as typed classes, and the tape that runs them.

Data flows one way: Python ``Node`` objects -> ``Tape`` (an iterative topological sort into
flat arrays of op codes, parent indices, values and gradients) -> typed loops without the
GIL -> results copied back into the nodes. ``reference.py`` is the same semantics in plain
Python, and the tests hold the two to bit-for-bit equality.
"""

cimport cython
from cpython.exc cimport PyErr_CheckSignals
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport cos, exp, fabs, log, pow, sin, sqrt, tan, tanh
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy

import numbers
import time
from collections import namedtuple

import numpy as np

# Mirrors the Op enum in _core.pxd, in the same order.
OP_NAMES = (
    "leaf", "add", "sub", "mul", "div", "pow", "mse", "mae",
    "neg", "exp", "ln", "sin", "cos", "tan", "tanh", "sigmoid", "relu", "abs", "sqrt",
)
if len(OP_NAMES) != N_OPS:
    raise ImportError("ourdl._core: OP_NAMES and the Op enum in _core.pxd disagree")

EpochStats = namedtuple("EpochStats", "epoch loss seconds samples_per_second")
EpochStats.__doc__ = "One epoch of Tape.fit: mean root value (the training loss), wall time, speed."

cdef enum:
    # Rows per trip into compiled code: small enough that Ctrl-C and the progress bar
    # answer within milliseconds, large enough that the trips cost nothing.
    CHUNK_ROWS = 1 << 16
    CHUNK_WORK = 1 << 22   # node evaluations per trip, for graphs too large for CHUNK_ROWS
    # Doubles in the scratch of predict(): the values of every node for a block of rows.
    BLOCK_DOUBLES = 1 << 15
    # Graphs larger than this release the GIL in forward() and backward().
    NOGIL_NODES = 4096

cdef enum RunStatus:
    RUN_OK = 0
    RUN_BAD_LOSS = 1    # the root value became nan/inf: stopped before that row's update
    RUN_BAD_PARAM = 2   # an update made a parameter nan/inf: it was undone
    RUN_BAD_DATA = 3    # a row of data holds nan/inf: stopped before that row's update


# ----------------------------------------------------------------------------- the ops

cdef inline bint is_binary(int op) noexcept nogil:
    return OP_ADD <= op <= OP_MAE


cdef inline double sign(double a) noexcept nogil:
    return 1.0 if a > 0.0 else (-1.0 if a < 0.0 else 0.0)


cdef inline double squared(double d) noexcept nogil:
    """``pow(d, 2.0)`` exactly as libm computes it (and so Python's ``d ** 2``), mostly without
    calling pow().

    d * d is correctly rounded, and glibc's pow() is within 0.54 ulp of the exact square (its
    documented worst case), so the two can only differ when the exact square lies within
    0.04 ulp of a point halfway between two doubles (0.46 ulp or more from d * d). Dekker's
    exact product gives the rounding error of d * d; only near a halfway point (about one
    time in ten), or for huge, tiny or special d, is pow() asked.
    tests/test_reference_equivalence.py holds this to pow() on hundreds of thousands of values.
    """
    cdef double p = d * d, a = fabs(d), hi, lo, err, ulp
    cdef uint64_t bits
    if not (1e-140 < a < 1e140):
        return pow(d, 2.0)
    hi = 134217729.0 * d          # Veltkamp: d = hi + lo, each half fits in 26 bits
    hi = hi - (hi - d)
    lo = d - hi
    err = ((hi * hi - p) + 2.0 * hi * lo) + lo * lo   # d*d - p, exactly
    memcpy(&bits, &p, sizeof(double))
    bits &= <uint64_t>0x7ff0000000000000ULL  # 2**exponent(p), so ulp(p) = that * 2**-52
    memcpy(&ulp, &bits, sizeof(double))
    if fabs(err) >= 0.44 * 2.220446049250313e-16 * ulp:
        return pow(d, 2.0)
    return p


def _squared(double d):
    """Test shim for the compiled squared()."""
    return squared(d)


cdef inline double op_value(int op, double a, double b) noexcept nogil:
    """The value of a node from its parents' values (b is 0 for unary ops)."""
    if op == OP_ADD:
        return a + b
    elif op == OP_SUB:
        return a - b
    elif op == OP_MUL:
        return a * b
    elif op == OP_DIV:
        return a / b
    elif op == OP_POW:
        return pow(a, b)
    elif op == OP_MSE:
        return squared(a - b)
    elif op == OP_MAE:
        return fabs(a - b)
    elif op == OP_NEG:
        return -a
    elif op == OP_EXP:
        return exp(a)
    elif op == OP_LN:
        return log(a)
    elif op == OP_SIN:
        return sin(a)
    elif op == OP_COS:
        return cos(a)
    elif op == OP_TAN:
        return tan(a)
    elif op == OP_TANH:
        return tanh(a)
    elif op == OP_SIGMOID:
        return 1.0 / (1.0 + exp(-a))
    elif op == OP_RELU:
        return 0.0 if a <= 0.0 else a
    elif op == OP_ABS:
        return fabs(a)
    else:  # OP_SQRT
        return sqrt(a)


cdef inline void op_grads(int op, double a, double b, double v, double g,
                          double* to_papa, double* to_mama) noexcept nogil:
    """What a node with value v and gradient g owes its parents (written as in reference.py)."""
    cdef double t
    to_mama[0] = 0.0
    if op == OP_ADD:
        to_papa[0] = g
        to_mama[0] = g
    elif op == OP_SUB:
        to_papa[0] = g
        to_mama[0] = -g
    elif op == OP_MUL:
        to_papa[0] = g * b
        to_mama[0] = g * a
    elif op == OP_DIV:
        to_papa[0] = g / b
        to_mama[0] = (-g * a) / (b * b)
    elif op == OP_POW:
        to_papa[0] = g * b * pow(a, b - 1.0)
        to_mama[0] = 0.0 if (a == 0.0 and b >= 0.0) else g * v * log(a)
    elif op == OP_MSE:
        t = g * 2.0 * (a - b)
        to_papa[0] = t
        to_mama[0] = -t
    elif op == OP_MAE:
        t = g * sign(a - b)
        to_papa[0] = t
        to_mama[0] = -t
    elif op == OP_NEG:
        to_papa[0] = -g
    elif op == OP_EXP:
        to_papa[0] = g * v
    elif op == OP_LN:
        to_papa[0] = g / a
    elif op == OP_SIN:
        to_papa[0] = g * cos(a)
    elif op == OP_COS:
        to_papa[0] = g * -sin(a)
    elif op == OP_TAN:
        to_papa[0] = g * (1.0 + v * v)
    elif op == OP_TANH:
        to_papa[0] = g * (1.0 - v * v)
    elif op == OP_SIGMOID:
        to_papa[0] = g * (v * (1.0 - v))
    elif op == OP_RELU:
        to_papa[0] = g if a > 0.0 else 0.0
    elif op == OP_ABS:
        to_papa[0] = g * sign(a)
    else:  # OP_SQRT
        to_papa[0] = g / (2.0 * v)


# ----------------------------------------------------------------------------- the passes
# Plain loops over the flat arrays, in tape order (parents first). They trust their indices:
# the Tape built them from the graph itself.

cdef void forward_pass(const Graph* G) noexcept nogil:
    cdef Py_ssize_t i
    cdef int o
    cdef double* v = G.values
    for i in range(G.n):
        o = G.op[i]
        if o == OP_LEAF:
            continue
        if is_binary(o):
            v[i] = op_value(o, v[G.papa[i]], v[G.mama[i]])
        else:
            v[i] = op_value(o, v[G.papa[i]], 0.0)


cdef void backward_pass(const Graph* G, double seed) noexcept nogil:
    """Gradients of the root (the last node) with respect to every node, summed over paths."""
    cdef Py_ssize_t i, p, m
    cdef int o
    cdef double to_papa, to_mama
    cdef const double* v = G.values
    cdef double* g = G.grads
    for i in range(G.n - 1):
        g[i] = -0.0  # the identity of +=, to the last bit (see reference.py)
    g[G.n - 1] = seed
    for i in range(G.n - 1, -1, -1):
        o = G.op[i]
        if o == OP_LEAF:
            continue
        p = G.papa[i]
        if is_binary(o):
            m = G.mama[i]
            op_grads(o, v[p], v[m], v[i], g[i], &to_papa, &to_mama)
            G.papa_grads[i] = to_papa
            g[p] += to_papa
            G.mama_grads[i] = to_mama
            g[m] += to_mama
        else:
            op_grads(o, v[p], 0.0, v[i], g[i], &to_papa, &to_mama)
            G.papa_grads[i] = to_papa
            g[p] += to_papa


cdef void update_pass(const Graph* G) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(G.n):
        if G.flags[i]:
            G.values[i] = G.values[i] - G.lrs[i] * G.grads[i]


# ----------------------------------------------------------------------------- training
# A run over rows of data: the seed's loop (write the inputs, forward, backward, update) in
# compiled code. Indices were validated by Tape.fit before they got here.

cdef inline bint nonfinite(double x) noexcept nogil:
    return x - x != 0.0  # nan for inf and nan, 0 for every finite x


cdef inline bint all_finite(const double* x, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(n):
        if nonfinite(x[k]):
            return False
    return True


cdef inline bint all_finite_row(const Data* D, Py_ssize_t r) noexcept nogil:
    """False if row r of the data holds nan or inf."""
    cdef const double* xr = D.x + r * D.s0
    cdef Py_ssize_t j
    for j in range(D.n_inputs):
        if nonfinite(xr[j * D.s1]):
            return False
    return True


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


cdef inline bint load_row(const Data* D, Py_ssize_t r, double* values) noexcept nogil:
    """Write row r into the input nodes; False if it holds nan or inf."""
    cdef const double* xr = D.x + r * D.s0
    cdef Py_ssize_t j
    for j in range(D.n_inputs):
        values[D.slots[j]] = xr[j * D.s1]
    return all_finite_row(D, r)


@cython.final
cdef class Updates:
    """The general training step: any graph, gradients averaged over batches."""

    cdef Py_ssize_t[::1] flagged   # tape indices of the trainable nodes
    cdef double[::1] summed        # their gradients summed over the current batch
    cdef double[::1] before        # their values before the last update, to undo it
    cdef Py_ssize_t n_flagged, batch_size, count
    cdef double seed               # the root's gradient

    def __init__(self, Tape tape not None, Py_ssize_t batch_size):
        if tape.states == NULL:
            raise RuntimeError("the Tape was never built")
        flagged = np.flatnonzero(np.asarray(tape.flags)).astype(np.intp)
        self.n_flagged = flagged.shape[0]
        self.flagged = np.append(flagged, 0).astype(np.intp)  # never empty, so [0] is valid
        self.summed = np.full(self.n_flagged + 1, -0.0)
        self.before = np.empty(self.n_flagged + 1)
        self.batch_size = batch_size
        self.count = 0
        self.seed = tape.states[tape.n - 1].grad

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

    cdef Py_ssize_t n_terms
    cdef Py_ssize_t[::1] offsets    # where each term's input sits in a row of data
    cdef unsigned char[::1] lone    # 1 for a bias (a parameter alone, x = 1)
    cdef bint any_lone
    cdef Py_ssize_t[::1] params     # tape index of each term's parameter
    cdef double[::1] lrs
    cdef double[::1] w, w_before    # the parameters now and before the last update
    cdef double[::1] residuals      # loss(Papa - Mama) of each row of a chunk, summed afterwards
    cdef Py_ssize_t target          # data column of the target
    cdef bint is_mse, sum_is_papa
    cdef double seed

    def __init__(self, Tape tape not None, terms, Py_ssize_t column_step, Py_ssize_t target,
                 int loss_op, bint sum_is_papa):
        if tape.states == NULL or not terms or not all(0 <= p < tape.n for _, p in terms):
            raise ValueError("LinearModel needs a built Tape and terms naming its nodes")
        self.n_terms = len(terms)
        self.offsets, self.lone = _term_layout(terms, column_step)
        self.any_lone = any(self.lone)
        self.params = np.array([p for _, p in terms], dtype=np.intp)
        self.lrs = np.array([tape.lrs[p] for _, p in terms])
        self.w = np.empty(self.n_terms)
        self.w_before = np.empty(self.n_terms)
        self.residuals = np.empty(CHUNK_ROWS)
        self.target = target
        self.is_mse = loss_op == OP_MSE
        self.sum_is_papa = sum_is_papa
        self.seed = tape.states[tape.n - 1].grad

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
            if not all_finite(w, K):  # the chunk's last update, which no row has checked yet
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


# ----------------------------------------------------------------------------- prediction

cdef bint forward_rows(const Graph* G, const Data* D, const Py_ssize_t* program,
                       Py_ssize_t n_program, double* buf, Py_ssize_t B, Py_ssize_t start,
                       Py_ssize_t stop, Py_ssize_t out, double* result) noexcept nogil:
    """Forward over rows [start, stop), B rows at a time: node i's values for a block live in
    buf[i*B : (i+1)*B], so each op is one loop over the block and is dispatched once per
    block, not once per row. Every row sees the same operations as forward_pass. False if a
    row holds nan or inf."""
    cdef Py_ssize_t s, nb, r, j, q, i
    cdef const double* xr
    cdef double* dst
    cdef const double* a
    cdef const double* b
    cdef int o
    cdef bint bad = False
    s = start
    while s < stop:
        nb = min(B, stop - s)
        for j in range(D.n_inputs):
            dst = buf + D.slots[j] * B
            xr = D.x + s * D.s0 + j * D.s1
            for r in range(nb):
                dst[r] = xr[r * D.s0]
                bad = bad | nonfinite(dst[r])
        if bad:
            return False
        for q in range(n_program):
            i = program[q]
            o = G.op[i]
            dst = buf + i * B
            a = buf + G.papa[i] * B
            if o == OP_ADD:
                b = buf + G.mama[i] * B
                for r in range(nb):
                    dst[r] = a[r] + b[r]
            elif o == OP_MUL:
                b = buf + G.mama[i] * B
                for r in range(nb):
                    dst[r] = a[r] * b[r]
            elif o == OP_SUB:
                b = buf + G.mama[i] * B
                for r in range(nb):
                    dst[r] = a[r] - b[r]
            elif is_binary(o):
                b = buf + G.mama[i] * B
                for r in range(nb):
                    dst[r] = op_value(o, a[r], b[r])
            else:
                for r in range(nb):
                    dst[r] = op_value(o, a[r], 0.0)
        memcpy(result + s, buf + out * B, nb * sizeof(double))
        s += nb
    return True


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


# ----------------------------------------------------------------------------- nodes

cdef inline int arity_of(int op) noexcept nogil:
    return 0 if op == OP_LEAF else (2 if is_binary(op) else 1)


cdef double _real(str kind, str arg, object x) except? -1.0:
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{kind}: {arg} must be a real number, not {type(x).__name__}")
    return <double>x


cdef int _flag(str kind, object x) except -1:
    if x not in (0, 1):
        raise ValueError(f"{kind}: Flag must be 0 (fixed) or 1 (trainable), not {x!r}")
    return int(x)


cdef Node _as_node(object x):
    return x if isinstance(x, Node) else Node(Value=x)


@cython.trashcan(True)  # deallocating a long chain must not recurse once per node
cdef class Node:
    """A leaf: an input, a constant or (with ``Flag=1``) a trainable parameter.

    ``Node(Papa=None, Mama=None, Value=0, Flag=0, lr=0.01, name=None)``; the op nodes
    (``AddNode``, ``MulNode``, ...) take their parents the same way.
    """

    op_code = OP_LEAF

    def __init__(self, Papa=None, Mama=None, Value=0, Flag=0, lr=0.01, name=None):
        cdef str kind = type(self).__name__
        if self._built:
            raise TypeError(f"{kind}: a node is built once (its parents are fixed); make a new node")
        op = type(self).op_code
        if not isinstance(op, int) or not 0 <= op < N_OPS:
            raise TypeError(f"{kind}.op_code must be one of ourdl's op codes (0 to {N_OPS - 1}), "
                            f"not {op!r}")
        for arg, parent in (("Papa", Papa), ("Mama", Mama)):
            if parent is not None and not isinstance(parent, Node):
                raise TypeError(f"{kind}: {arg} must be a Node or None, not {type(parent).__name__}")
        cdef int given = (Papa is not None) + (Mama is not None)
        cdef int arity = arity_of(op)
        if arity == 2 and given < 2:
            raise ValueError(f"{kind} needs both Papa and Mama")
        if arity == 1 and (Papa is None or Mama is not None):
            raise ValueError(f"{kind} needs Papa and takes no Mama")
        if arity == 0 and given:
            raise ValueError(f"{kind} is a leaf and takes no parents; use an op node such as AddNode")
        # Everything is checked before anything is set: a failed __init__ leaves no half-node.
        cdef double value = _real(kind, "Value", Value), rate = _real(kind, "lr", lr)
        cdef int flag = _flag(kind, Flag)
        self.opcode = op
        self.Papa = Papa
        self.Mama = Mama
        self.s.value = value
        self.s.flag = flag
        self.s.lr = rate
        self.s.grad = 1.0
        self.s.papa_grad = 0.0
        self.s.mama_grad = 0.0
        self.name = name
        self._built = True

    @property
    def value(self):
        return self.s.value

    @value.setter
    def value(self, double v):
        self.s.value = v

    @property
    def grad(self):
        """The gradient from the last backward(); on the node backward() is called on, its seed."""
        return self.s.grad

    @grad.setter
    def grad(self, double g):
        self.s.grad = g

    @property
    def lr(self):
        return self.s.lr

    @lr.setter
    def lr(self, double lr):
        self.s.lr = lr

    @property
    def Flag(self):
        return self.s.flag

    @Flag.setter
    def Flag(self, Flag):
        self.s.flag = _flag(type(self).__name__, Flag)

    @property
    def Papa_grad(self):
        """What the last backward() sent to Papa."""
        return self.s.papa_grad

    @property
    def Mama_grad(self):
        """What the last backward() sent to Mama."""
        return self.s.mama_grad

    @property
    def op(self):
        return OP_NAMES[self.opcode]

    cdef Tape _cached_tape(self):
        # A node's subgraph is fixed once it exists (parents are read-only), so the tape
        # compiled for it never goes stale; it reads node values afresh on every call.
        if self._tape is None:
            self._tape = Tape(self)
        return self._tape

    def forward(self):
        """Compute every node of this node's subgraph, parents first; return this value."""
        return self._cached_tape().forward()

    def backward(self, update=True):
        """Push ``grad`` back to every ancestor, then (if ``update``) step the trainable ones."""
        self._cached_tape().backward(update)

    def updata(self):
        """One gradient step, for trainable nodes only (the seed's spelling)."""
        if self.s.flag == 1:
            self.s.value = self.s.value - self.s.lr * self.s.grad

    def update(self):
        """Same as ``updata()``."""
        self.updata()

    def __repr__(self):
        label = f"name={self.name!r}, " if self.name is not None else ""
        return f"{type(self).__name__}({label}value={self.s.value!r}, grad={self.s.grad!r})"

    def __reduce__(self):
        state = (self.s.grad, self.s.papa_grad, self.s.mama_grad)
        return (_rebuild_node, (type(self), self.Papa, self.Mama, self.s.value, self.s.flag,
                                self.s.lr, self.name, state))

    def __add__(self, other):
        return AddNode(self, _as_node(other))

    def __radd__(self, other):
        return AddNode(_as_node(other), self)

    def __sub__(self, other):
        return SubNode(self, _as_node(other))

    def __rsub__(self, other):
        return SubNode(_as_node(other), self)

    def __mul__(self, other):
        return MulNode(self, _as_node(other))

    def __rmul__(self, other):
        return MulNode(_as_node(other), self)

    def __truediv__(self, other):
        return DivNode(self, _as_node(other))

    def __rtruediv__(self, other):
        return DivNode(_as_node(other), self)

    def __pow__(self, other, modulo):
        if modulo is not None:
            return NotImplemented  # pow(a, b, m) has no node
        return PowNode(self, _as_node(other))

    def __rpow__(self, other, modulo):
        if modulo is not None:
            return NotImplemented
        return PowNode(_as_node(other), self)

    def __neg__(self):
        return NegNode(self)

    def __abs__(self):
        return AbsNode(self)


def _rebuild_node(cls, Papa, Mama, value, flag, lr, name, state):
    cdef Node node = cls(Papa, Mama, value, flag, lr, name)
    node.s.grad, node.s.papa_grad, node.s.mama_grad = state
    return node


cdef class AddNode(Node):
    op_code = OP_ADD

cdef class SubNode(Node):
    op_code = OP_SUB

cdef class MulNode(Node):
    op_code = OP_MUL

cdef class DivNode(Node):
    op_code = OP_DIV

cdef class PowNode(Node):
    op_code = OP_POW

cdef class MSENode(Node):
    """Squared error (Papa - Mama)**2, with the seed's gradient 2 * (Papa - Mama)."""
    op_code = OP_MSE

cdef class MAENode(Node):
    """Absolute error |Papa - Mama|."""
    op_code = OP_MAE

cdef class NegNode(Node):
    op_code = OP_NEG

cdef class ExpNode(Node):
    op_code = OP_EXP

cdef class LnNode(Node):
    op_code = OP_LN

cdef class SinNode(Node):
    op_code = OP_SIN

cdef class CosNode(Node):
    op_code = OP_COS

cdef class TanNode(Node):
    op_code = OP_TAN

cdef class TanhNode(Node):
    op_code = OP_TANH

cdef class SigmoidNode(Node):
    op_code = OP_SIGMOID

cdef class ReluNode(Node):
    op_code = OP_RELU

cdef class AbsNode(Node):
    op_code = OP_ABS

cdef class SqrtNode(Node):
    op_code = OP_SQRT


# ----------------------------------------------------------------------------- checking data
# Everything that reaches the compiled loops is checked here first, with messages that say
# what was wrong and what would be accepted.

def _positive_int(str name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")
    return int(value)


def _as_data(data, Py_ssize_t n_inputs):
    """``data`` as a 2-D float64 array (a view where possible, else one converted copy),
    and a name for each column."""
    columns = getattr(data, "columns", None)
    if columns is not None and hasattr(data, "dtypes"):  # a pandas DataFrame
        for name, dtype in zip(columns, data.dtypes):
            if getattr(dtype, "kind", "O") not in "biuf":
                raise TypeError(f"data column {name!r} has dtype {dtype}: every column must be numeric")
        names = [repr(name) for name in columns]
        data = data.to_numpy(dtype=np.float64)
    else:
        names = None
    X = np.asarray(data)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"data must be numeric, not an array of dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"data must be 2-D (one row per sample), not {X.ndim}-D")
    if X.shape[1] != n_inputs:
        raise ValueError(f"data has {X.shape[1]} columns but {n_inputs} inputs were given: "
                         f"one column per input node")
    if X.shape[0] == 0:
        raise ValueError("data is empty: it has no rows")
    if X.dtype != np.float64 or any(step % X.itemsize for step in X.strides):
        # The one converted copy; float64 arrays with whole-element strides are used in place.
        X = np.ascontiguousarray(X, dtype=np.float64)
    return X, names or [str(j) for j in range(n_inputs)]


def _nonfinite_error(X, names):
    """The error for data holding nan or inf, naming the first such row and its column;
    None if every value is finite."""
    bad = ~np.isfinite(X)
    rows = np.flatnonzero(bad.any(axis=1))
    if rows.size == 0:
        return None
    row = int(rows[0])
    j = int(np.flatnonzero(bad[row])[0])
    return ValueError(f"data has {X[row, j]} in column {names[j]} at row {row}: every value must "
                      f"be finite (drop or fill such rows first, e.g. DataFrame.dropna())")


cdef Data _data_view(const double[:, :] X, Py_ssize_t[::1] slots):
    """Raw pointers into X and slots; the caller keeps both alive while they are used."""
    cdef Data D
    D.x = &X[0, 0]
    D.s0 = X.strides[0] // <Py_ssize_t>sizeof(double)  # signed: strides may be negative
    D.s1 = X.strides[1] // <Py_ssize_t>sizeof(double)
    D.slots = &slots[0]
    D.n_inputs = slots.shape[0]
    D.rows = NULL
    return D


def _progress_bar(total):
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="sample", unit_scale=True, desc="training", leave=False)


# ----------------------------------------------------------------------------- the tape

cdef unsigned long _last_stamp = 0


def topological_order(Node root not None):
    """The nodes of root's subgraph, parents first, root last: exactly reference.py's order."""
    global _last_stamp
    _last_stamp += 1
    cdef unsigned long stamp = _last_stamp
    cdef list order = []
    cdef list stack = [root]
    cdef list parents_done = [False]
    cdef Node node, parent
    while stack:
        node = stack.pop()
        if not node._built:
            raise TypeError(f"{node!r} was never built (its __init__ failed or never ran)")
        if parents_done.pop():
            if node._seen != stamp:
                node._seen = stamp
                order.append(node)
            continue
        if node._seen == stamp:
            continue
        stack.append(node)
        parents_done.append(True)
        for parent in (node.Mama, node.Papa):  # Mama first so Papa is visited first
            if parent is not None and parent._seen != stamp:
                stack.append(parent)
                parents_done.append(False)
    return order


def compile(Node root):
    """Flatten root's subgraph into a Tape (the same as ``Tape(root)``)."""
    return Tape(root)


@cython.final
cdef class Tape:
    """A graph flattened for speed: op codes, parent indices and contiguous state arrays.

    ``Tape(root)`` (or ``ourdl.compile(root)``) sorts root's subgraph once. ``forward()``,
    ``backward()``, ``fit()``, ``predict()`` and ``evaluate()`` then run typed loops over
    the arrays, reading node values in and writing results back.
    """

    def __init__(self, Node root not None):
        if self.states != NULL:
            raise TypeError("a Tape is built once; compile the new root instead")
        cdef list order = topological_order(root)
        cdef Py_ssize_t n = len(order), i
        cdef Node node
        self.root = root
        self.nodes = tuple(order)  # immutable: the compiled loops trust its indices
        self.n = n
        self.opcodes = np.empty(n, dtype=np.intc)
        self.papa = np.full(n, -1, dtype=np.intp)
        self.mama = np.full(n, -1, dtype=np.intp)
        self.values = np.zeros(n)
        self.grads = np.zeros(n)
        self.papa_grads = np.zeros(n)
        self.mama_grads = np.zeros(n)
        self.lrs = np.zeros(n)
        self.flags = np.zeros(n, dtype=np.uint8)
        self.states = <NodeState**>PyMem_Malloc(n * sizeof(NodeState*))
        if self.states == NULL:
            raise MemoryError(f"cannot allocate a tape of {n} nodes")
        leaves = []
        for i in range(n):
            node = order[i]
            node._slot = i
            self.states[i] = &node.s
            self.opcodes[i] = node.opcode
            if node.Papa is not None:
                self.papa[i] = node.Papa._slot  # parents come first, so their slots are set
            if node.Mama is not None:
                self.mama[i] = node.Mama._slot
            if node.opcode == OP_LEAF:
                leaves.append(i)
        self.leaves = np.array(leaves, dtype=np.intp)
        self._pull()

    def __dealloc__(self):
        PyMem_Free(self.states)

    cdef int _claim(self) except -1:
        """Mark the tape in use by one call; its arrays are shared state."""
        if self.states == NULL:
            raise RuntimeError("this Tape was never built: make one with ourdl.compile(root)")
        if self._busy:
            raise RuntimeError("this Tape is in use by another call (another thread?): give "
                               "each thread its own tape, e.g. ourdl.compile(root) in each")
        self._busy = True
        return 0

    def __len__(self):
        return self.n

    def __repr__(self):
        return f"<Tape of {self.n} nodes, root {self.root!r}>"

    def __reduce__(self):
        return (Tape, (self.root,))

    @property
    def ops(self):
        """The op name of each node, in tape order."""
        return [OP_NAMES[self.opcodes[i]] for i in range(self.n)]

    @property
    def parents(self):
        """(Papa index, Mama index) of each node in tape order; -1 where there is none."""
        if self.states == NULL:
            return np.empty((0, 2), dtype=np.intp)
        return np.stack([np.asarray(self.papa), np.asarray(self.mama)], axis=1)

    cdef Graph _graph(self) noexcept nogil:
        cdef Graph G
        G.n = self.n
        G.op = &self.opcodes[0]
        G.papa = &self.papa[0]
        G.mama = &self.mama[0]
        G.values = &self.values[0]
        G.grads = &self.grads[0]
        G.papa_grads = &self.papa_grads[0]
        G.mama_grads = &self.mama_grads[0]
        G.lrs = &self.lrs[0]
        G.flags = &self.flags[0]
        return G

    cdef void _pull_leaves(self) noexcept nogil:
        cdef Py_ssize_t k, i
        for k in range(self.leaves.shape[0]):
            i = self.leaves[k]
            self.values[i] = self.states[i].value

    cdef void _pull(self) noexcept nogil:
        """Read every node's state (users may set any of it between calls), so that what
        _push() writes back is the node's own unless a pass has recomputed it."""
        cdef Py_ssize_t i
        cdef NodeState* s
        for i in range(self.n):
            s = self.states[i]
            self.values[i] = s.value
            self.grads[i] = s.grad
            self.papa_grads[i] = s.papa_grad
            self.mama_grads[i] = s.mama_grad
            self.lrs[i] = s.lr
            self.flags[i] = s.flag == 1

    cdef void _push(self) noexcept nogil:
        """Write values and gradients back into the nodes."""
        cdef Py_ssize_t i
        cdef NodeState* s
        for i in range(self.n):
            s = self.states[i]
            s.value = self.values[i]
            s.grad = self.grads[i]
            s.papa_grad = self.papa_grads[i]
            s.mama_grad = self.mama_grads[i]

    cdef void _forward(self) noexcept nogil:
        cdef Graph G = self._graph()
        cdef Py_ssize_t i
        self._pull_leaves()
        forward_pass(&G)
        for i in range(self.n):
            self.states[i].value = self.values[i]

    cdef void _backward(self, bint update) noexcept nogil:
        cdef Graph G = self._graph()
        self._pull()
        backward_pass(&G, self.states[self.n - 1].grad)
        if update:
            update_pass(&G)
        self._push()

    # Small graphs (the seed's) are run holding the GIL: releasing it costs more than they do.
    cpdef double forward(self):
        """Compute every node, parents first; return the root's value."""
        self._claim()
        if self.n > NOGIL_NODES:
            with nogil:
                self._forward()
        else:
            self._forward()
        self._busy = False
        return self.values[self.n - 1]

    cpdef backward(self, bint update=True):
        """Gradients of the root for every node (summed over paths), then one update step."""
        self._claim()
        if self.n > NOGIL_NODES:
            with nogil:
                self._backward(update)
        else:
            self._backward(update)
        self._busy = False

    # ------------------------------------------------------------------------- whole datasets

    cdef Py_ssize_t[::1] _input_slots(self, inputs) except *:
        """Validate the nodes that data columns feed; return their tape indices."""
        if isinstance(inputs, Node) or not hasattr(inputs, "__len__"):
            raise TypeError("inputs must be a list of Nodes, one per data column")
        if len(inputs) == 0:
            raise ValueError("inputs is empty: name the leaf that each data column feeds")
        slots = np.empty(len(inputs), dtype=np.intp)
        taken = set()
        for j, node in enumerate(inputs):
            i = self._slot_of(node, f"inputs[{j}]")
            if (<Node>node).opcode != OP_LEAF:
                raise ValueError(f"inputs[{j}] ({node!r}) is not a leaf: only leaves can be fed from data")
            if (<Node>node).s.flag == 1:
                raise ValueError(f"inputs[{j}] ({node!r}) is trainable (Flag == 1): data would overwrite it")
            if i in taken:
                raise ValueError(f"inputs[{j}] ({node!r}) is given twice")
            taken.add(i)
            slots[j] = i
        return slots

    def fit(self, data, inputs, epochs=1, shuffle=False, seed=None, batch_size=1, progress=False):
        """Train on every row of ``data``: the seed's per-sample loop, run in compiled code.

        For each row, column j is written into ``inputs[j].value``; then forward, backward
        and (every ``batch_size`` rows, with the gradients averaged) an update of every node
        with ``Flag == 1``. With ``shuffle`` the rows are visited in a new order each epoch,
        drawn from ``numpy.random.default_rng(seed)``. Returns one ``EpochStats`` per epoch.

        Bad input raises before anything changes. Divergence raises ``FloatingPointError``
        with the parameters as they were before the bad update. Ctrl-C stops within
        milliseconds, with the parameters at the last completed update.
        """
        self._claim()
        try:
            return self._fit(data, inputs, epochs, shuffle, seed, batch_size, progress)
        finally:
            self._busy = False

    def _fit(self, data, inputs, epochs, shuffle, seed, batch_size, progress):
        cdef Py_ssize_t[::1] slots = self._input_slots(inputs)
        cdef Py_ssize_t n_epochs = _positive_int("epochs", epochs)
        cdef Py_ssize_t batch = _positive_int("batch_size", batch_size)
        X, names = _as_data(data, slots.shape[0])
        cdef Py_ssize_t chunk = self._chunk_rows()

        cdef Py_ssize_t n_rows = X.shape[0], start, stop, mid, epoch = 0, at = -1, last_row = -1
        cdef RunStatus status = RUN_OK
        cdef double loss_sum = 0.0
        cdef int64_t[::1] order
        self._pull()
        cdef Graph G = self._graph()
        cdef Data D = _data_view(X, slots)
        cdef LinearModel model = self._linear_model(slots, D.s1) if batch == 1 else None
        cdef Updates U = Updates(self, batch)
        rng = np.random.default_rng(seed) if shuffle else None
        bar = _progress_bar(n_epochs * n_rows) if progress else None
        history = []
        try:
            for epoch in range(n_epochs):
                t0 = time.perf_counter()
                loss_sum = 0.0
                if rng is not None:
                    order = rng.permutation(n_rows).astype(np.int64, copy=False)
                    D.rows = &order[0]
                for start in range(0, n_rows, chunk):
                    stop = min(start + chunk, n_rows)
                    with nogil:
                        mid = start
                        if model is not None:
                            # The very last row goes through the general passes below, so
                            # every node ends exactly as the seed's loop would leave it.
                            mid = stop - 1 if (stop == n_rows and epoch == n_epochs - 1) else stop
                            status = model.train(&G, &D, start, mid, &loss_sum, &at)
                        if status == RUN_OK and mid < stop:
                            status = U.train(&G, &D, mid, stop, n_rows, &loss_sum, &at)
                    if status != RUN_OK:
                        break
                    last_row = D.rows[stop - 1] if D.rows != NULL else stop - 1
                    if bar is not None:
                        bar.update(stop - start)
                        bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / stop:.4g}", refresh=False)
                    PyErr_CheckSignals()  # Ctrl-C arrives here, between chunks
                if status != RUN_OK:
                    break
                seconds = time.perf_counter() - t0
                history.append(EpochStats(epoch + 1, loss_sum / n_rows, seconds, n_rows / seconds))
        except BaseException:
            self._settle(&D, last_row)
            raise
        finally:
            if bar is not None:
                bar.close()
        if status != RUN_OK and epoch == 0:
            # Every row is seen in the first epoch: bad data there is reported as such, even
            # where training went wrong before reaching it.
            error = _nonfinite_error(X, names)
            if error is not None:
                self._pull()  # the nodes were never written: forget what the run did
                raise error
        if status == RUN_OK:
            self._settle(&D, -1)
            return history
        row = D.rows[at] if D.rows != NULL else at
        self._settle(&D, row)
        what = "the loss" if status == RUN_BAD_LOSS else "a parameter"
        raise FloatingPointError(
            f"training diverged in epoch {epoch + 1} at row {row} of data: {what} became nan "
            f"or inf. The parameters are as they were before that update. Try a smaller lr "
            f"or normalized inputs (e.g. each column divided by its maximum).")

    def predict(self, data, inputs, output=None):
        """The value of ``output`` (the root by default) for every row of ``data``.

        Column j of ``data`` feeds ``inputs[j]``, as in ``fit``. Runs forward only, in blocks
        of rows in compiled code, and changes nothing in the graph. Returns a float64 array.
        """
        self._claim()
        try:
            return self._predict(data, inputs, output)
        finally:
            self._busy = False

    def _predict(self, data, inputs, output):
        cdef Py_ssize_t chunk = self._chunk_rows()
        cdef Py_ssize_t[::1] slots = self._input_slots(inputs)
        cdef Py_ssize_t out = self.n - 1 if output is None else self._slot_of(output, "output")
        X, names = _as_data(data, slots.shape[0])
        cdef Py_ssize_t n_rows = X.shape[0], n = self.n, i, start, stop
        self._pull()
        result = np.empty(n_rows)
        cdef double[::1] result_v = result
        cdef Data D = _data_view(X, slots)
        cdef bint ok = True
        cdef Py_ssize_t[::1] offsets
        cdef unsigned char[::1] lone
        cdef const unsigned char* lone_p
        cdef double[::1] weights
        found = self._sum_of_products(out, {slots[j]: j for j in range(slots.shape[0])})
        if found is not None and {c for c, _ in found[0]} >= set(range(slots.shape[0])):
            # A linear model reading every input column: one dot product per row.
            terms = found[0]
            offsets, lone = _term_layout(terms, D.s1)
            weights = np.array([self.values[slot] for _, slot in terms])
            lone_p = &lone[0] if np.any(lone) else NULL
            for start in range(0, n_rows, chunk):
                stop = min(start + chunk, n_rows)
                with nogil:
                    ok = dot_rows(&D, &offsets[0], lone_p, &weights[0], weights.shape[0], start,
                                  stop, &result_v[0])
                if not ok:
                    raise _nonfinite_error(X, names)
                PyErr_CheckSignals()
            return result
        # Only the nodes output depends on, in tape order.
        needed = np.zeros(n, dtype=bool)
        needed[out] = True
        for i in range(out, -1, -1):
            if needed[i] and self.opcodes[i] != OP_LEAF:
                needed[self.papa[i]] = True
                if is_binary(self.opcodes[i]):
                    needed[self.mama[i]] = True
        cdef Py_ssize_t[::1] program = np.flatnonzero(needed & (np.asarray(self.opcodes) != OP_LEAF)).astype(np.intp)
        cdef Py_ssize_t n_program = program.shape[0]
        cdef Py_ssize_t B = max(1, min(256, BLOCK_DOUBLES // n))
        cdef double[::1] buf = np.repeat(np.asarray(self.values), B)  # leaves keep their value
        cdef Graph G = self._graph()
        cdef const Py_ssize_t* program_p = &program[0] if n_program else NULL
        for start in range(0, n_rows, chunk):
            stop = min(start + chunk, n_rows)
            with nogil:
                ok = forward_rows(&G, &D, program_p, n_program, &buf[0], B, start, stop, out, &result_v[0])
            if not ok:
                raise _nonfinite_error(X, names)
            PyErr_CheckSignals()
        return result

    def evaluate(self, data, inputs):
        """The mean root value (the loss) over the rows of ``data``; changes nothing."""
        return float(np.mean(self.predict(data, inputs)))

    cdef Py_ssize_t _chunk_rows(self):
        """Rows per trip into compiled code: about the same work per trip for any graph."""
        return max(1, min(CHUNK_ROWS, CHUNK_WORK // self.n))

    cdef Py_ssize_t _slot_of(self, node, str what) except -1:
        if not isinstance(node, Node):
            raise TypeError(f"{what} must be a Node, not {type(node).__name__}")
        if self._index is None:
            self._index = {id(node): i for i, node in enumerate(self.nodes)}
        i = self._index.get(id(node), -1)
        if i < 0:
            raise ValueError(f"{what} ({node!r}) is not a node of this tape")
        return i

    cdef void _settle(self, const Data* D, Py_ssize_t row):
        """Write the run back into the nodes. After a stop part-way (``row`` of data given),
        first recompute every value and gradient from the current parameters on that row, so
        the nodes are consistent whichever path trained them."""
        cdef Graph G = self._graph()
        if row >= 0:
            load_row(D, row, G.values)
            forward_pass(&G)
            backward_pass(&G, self.states[self.n - 1].grad)
        self._push()

    cdef object _sum_of_products(self, Py_ssize_t top, dict column):
        """If ``top`` is a chain of additions of terms, each an input times a leaf or a lone
        leaf, its terms in the chain's order, as (data column or -1 for a lone leaf, leaf
        slot), and the set of nodes walked; else None. ``column`` maps input slots to data
        columns."""
        walked = set()
        # Walk down the chain of additions; addition commutes exactly, so at each step the
        # chain may continue on either side, but a tree of sums adds in another order.
        tail, i = [], top
        while True:
            if self.opcodes[i] != OP_ADD:
                bottom = [i]
                break
            walked.add(i)
            left, right = self.papa[i], self.mama[i]
            if self.opcodes[left] == OP_ADD and self.opcodes[right] == OP_ADD:
                return None
            if self.opcodes[left] == OP_ADD:
                tail.append(right)
                i = left
            elif self.opcodes[right] == OP_ADD:
                tail.append(left)
                i = right
            else:
                bottom = [left, right]
                break
        terms = []
        for i in bottom + tail[::-1]:
            walked.add(i)
            if self.opcodes[i] == OP_MUL:
                a, b = self.papa[i], self.mama[i]
                if b in column:
                    a, b = b, a
                if a not in column or b in column or self.opcodes[b] != OP_LEAF:
                    return None
                walked.update((a, b))
                terms.append((column[a], b))
            elif self.opcodes[i] == OP_LEAF and i not in column:
                terms.append((-1, i))
            else:
                return None
        return terms, walked

    cdef object _linear_model(self, Py_ssize_t[::1] slots, Py_ssize_t column_step):
        """A fused kernel for the seed's model, if this tape is one (else None).

        The shape: root = MSE or MAE of (a chain of additions of terms) and a target fed from
        data, where each term is input * parameter or a bare parameter (a bias), every node
        used once. Then one sample is a dot product, a subtraction and one axpy-like update,
        computed with the same operations in the same order as the general passes.
        """
        cdef Py_ssize_t root = self.n - 1
        cdef int root_op = self.opcodes[root]
        if root_op != OP_MSE and root_op != OP_MAE:
            return None
        column = {slots[j]: j for j in range(slots.shape[0])}
        papa, mama = self.papa[root], self.mama[root]
        if mama in column and papa not in column:
            top, target, sum_is_papa = papa, mama, True
        elif papa in column and mama not in column:
            top, target, sum_is_papa = mama, papa, False
        else:
            return None
        found = self._sum_of_products(top, column)
        if found is None:
            return None
        terms, walked = found
        params = [slot for _, slot in terms]
        if set(params) != set(np.flatnonzero(np.asarray(self.flags))) or len(set(params)) != len(params):
            return None  # a fixed or shared weight, or another trainable node: general passes
        if len(walked | {root, target}) != self.n:
            return None  # a node is shared or left over: not the simple shape
        return LinearModel(self, terms, column_step, column[target], root_op, sum_is_papa)
