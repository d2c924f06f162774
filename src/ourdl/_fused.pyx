"""ourdl's fused kernels: a tape's layers (found by ourdl._fusion) each run as a few loops
over contiguous arrays, and the nodes between them run one by one as in the general passes.

A row is the tutorial's step: write the row into the input nodes, forward, backward, update.
Forward runs the steps in tape order (a layer at the place of its last node), backward in
the reverse order. Each layer computes exactly what its nodes would, in the same order:

- forward, per unit j: ``sum = x[0]*w[0][j]``, then ``sum = sum + x[i]*w[i][j]`` for each
  further input, then ``+ b[j]``, then the activation. The loops run over the units, which
  are independent, so they are vectors without reordering any unit's sum (dense.h: the
  loops in C, built for AVX-512, AVX2 and a baseline, the widest picked at load time);
- backward: the gradient at unit j's sum is ``delta[j]`` (the output's gradient times the
  activation's slope, as the activation node computes it); every product and partial sum
  of the unit passes it on unchanged, so weight w[i][j] receives ``delta[j]*x[i]``, the
  bias ``delta[j]``, and input i the sum of ``delta[j]*w[i][j]`` over the units in the
  order the general pass would visit them (``fold``), from the weights before the update;
- update: ``w = w - lr*grad`` as update_pass does (with a batch, ``lr*(sum/count)``), after
  the whole backward. A row's SGD update that bounds prove finite is made in place; any
  other goes to a spare buffer and is checked, so that it can be taken back.

Three more kinds of layers run the same way, their parameters left in the tape's arrays for
the general update: layers of shared weights (convolutions), each unit a chain of
``x * w`` terms whose weights other units read too, and max-pooling, each window a chain of
MaxNodes: their gradient sums run rank after rank (``Ordered``), every target's terms in
the order the general backward pass sends them, the targets side by side; and the softmax
cross-entropy head, a loop over the classes with each node's own op arithmetic.
"""

cimport cython
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport INFINITY, NAN
from libc.string cimport memcmp, memcpy, memset
from ourdl._kernels cimport linear_rows
from ourdl._ops cimport *
from ourdl._optim cimport OPT_SGD, opt_begin, opt_step, opt_undo
from ourdl._passes cimport (CHUNK_ROWS, RUN_ABORTED, RUN_BAD_DATA, RUN_BAD_LOSS, RUN_BAD_PARAM,
                            RUN_OK, backward_pass, forward_pass, load_row, node_backward,
                            node_forward)

import reprlib
from collections import namedtuple

import numpy as np

cdef extern from "dense.h":
    void ourdl_dense_sums(const double* x, const double* w, double* acc, Py_ssize_t n_in,
                          Py_ssize_t n_out) noexcept nogil
    void ourdl_dense_input_grads(const double* d, const double* w, const double* wt,
                                 const Py_ssize_t* fold, double* gin, Py_ssize_t n_in,
                                 Py_ssize_t n_out) noexcept nogil
    void ourdl_transpose(const double* a, double* t, Py_ssize_t rows,
                         Py_ssize_t cols) noexcept nogil
    int ourdl_dense_sgd_aside(const double* x, const double* d, const double* w,
                              double* new_w, const double* lr, double* check, Py_ssize_t n_in,
                              Py_ssize_t n_out) noexcept nogil
    void ourdl_dense_sgd_in_place(const double* x, const double* d, double* w, double* wt,
                                  const double* lr, const double* lr_t, double lr_all,
                                  Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil
    double ourdl_magnitude(const double* v, Py_ssize_t n) noexcept nogil
    void ourdl_gathered_terms(double* acc, const double* a, const Py_ssize_t* ia,
                              const double* b, const Py_ssize_t* ib, Py_ssize_t n) noexcept nogil
    void ourdl_runs(double* acc, const double* sc, const double* vec, const Py_ssize_t* a,
                    const Py_ssize_t* scalar, const Py_ssize_t* v, const Py_ssize_t* length,
                    Py_ssize_t n, bint scalar_first) noexcept nogil


cdef inline void dense_forward(Dense* L, double* v) noexcept nogil:
    cdef Py_ssize_t i, j, n_in = L.n_in, n_out = L.n_out
    cdef double* x = L.x
    cdef double* acc = L.pre
    cdef const double* w = L.w
    for i in range(n_in):
        x[i] = v[L.inputs[i]]
    ourdl_dense_sums(x, w, acc, n_in, n_out)
    if L.b != NULL:
        for j in range(n_out):
            acc[j] = acc[j] + L.b[j]
    if L.act != OP_LEAF:
        for j in range(n_out):
            L.out[j] = op_value(L.act, acc[j], 0.0, 0.0)
    for j in range(n_out):
        v[L.outputs[j]] = L.out[j]


# A row's update is made in place when it is proven to leave every parameter within
# FINITE_ENOUGH, far enough below the largest double (1.8e308) for the bound's roundings;
# ROUNDING_ROOM (1 + 2^-48) covers them in the bound carried to the next row.
cdef double FINITE_ENOUGH = 1e300
cdef double ROUNDING_ROOM = 1.0 + 3.552713678800501e-15


cdef inline double activation_delta(int act, double grad, double pre, double out) noexcept nogil:
    """The gradient at a unit's sum from the gradient at its output, as the activation node's
    backward computes it."""
    if act == OP_TANH:
        return grad * (1.0 - out * out)
    elif act == OP_SIGMOID:
        return grad * (out * (1.0 - out))
    elif act == OP_RELU:
        return select(pre > 0.0, grad, 0.0)
    return grad


cdef inline void dense_backward(Dense* L, double* g, bint sum_for_batch) noexcept nogil:
    """Gradients from the outputs' gradients in g: at the sums (delta) and the inputs; with
    sum_for_batch, the parameters' are summed for the batch (else the row's update reads
    delta and x: dense_sgd_aside, dense_sgd_in_place)."""
    cdef Py_ssize_t i, j, n_in = L.n_in, n_out = L.n_out
    cdef double xi
    cdef double* d = L.delta
    cdef double* wsum
    for j in range(n_out):
        d[j] = activation_delta(L.act, g[L.outputs[j]], L.pre[j], L.out[j])
    if L.in_grads:  # from the weights before this row's update
        # Each input's sum runs over the units in fold's order; the inputs go side by side.
        ourdl_dense_input_grads(d, L.w, L.wt if L.wt_current else NULL, L.fold, L.gin, n_in,
                                n_out)
        for i in range(n_in):
            g[L.inputs[i]] = L.gin[i]
    if not (L.trainable and sum_for_batch):
        return
    for i in range(n_in):
        xi = L.x[i]
        wsum = L.w_sum + i * n_out
        for j in range(n_out):
            wsum[j] = wsum[j] + d[j] * xi
    if L.b != NULL:
        for j in range(n_out):
            L.b_sum[j] = L.b_sum[j] + d[j]


cdef inline bint dense_sgd_aside(Dense* L) noexcept nogil:
    """One row's update by SGD with each parameter's own lr, from delta and x, checked: the
    new weights go to the spare buffer, which then becomes the current one, so the old stay
    behind as w_before without a copy. False if a parameter became nan or inf."""
    cdef Py_ssize_t j
    cdef int bad
    if not L.trainable:
        return True
    bad = ourdl_dense_sgd_aside(L.x, L.delta, L.w, L.w_before, L.w_lr, L.check, L.n_in, L.n_out)
    L.w_before, L.w = L.w, L.w_before
    L.wt_current = False
    if L.b != NULL:
        for j in range(L.n_out):
            L.b_before[j] = L.b[j]
            L.b[j] = L.b[j] - L.b_lr[j] * L.delta[j]
            bad = bad | nonfinite(L.b[j])
    L.w_max = parameters_max(L.w, L.b, L.n_in * L.n_out, L.n_out)
    return not bad


cdef inline bint prove_sgd_finite(Dense* L) noexcept nogil:
    """Prove, before it is made, that this row's update (dense_sgd_aside) leaves every
    parameter finite; if it can, w_max becomes a bound of the parameters after it, and True.

    Each new weight w - lr*(d*x) is within w_max + step_max, step_max = lr_max*|d|*|x| at
    their largest (a bias takes x = 1), and within (w_max + step_max) * ROUNDING_ROOM with
    every rounding counted. d*x is bounded too: under a tiny lr (or 0, which makes inf nan)
    it could overflow on its own. nan anywhere fails the comparisons."""
    cdef double product_max, step_max
    if not L.trainable:
        return True
    product_max = ourdl_magnitude(L.delta, L.n_out) * larger(ourdl_magnitude(L.x, L.n_in), 1.0)
    step_max = L.lr_max * product_max
    if not (L.w_max <= FINITE_ENOUGH and product_max <= FINITE_ENOUGH
            and step_max <= FINITE_ENOUGH):
        return False
    L.w_max = (L.w_max + step_max) * ROUNDING_ROOM
    return True


cdef inline void dense_sgd_in_place(Dense* L) noexcept nogil:
    """dense_sgd_aside's update, in place: only for an update proven to stay finite. The
    weights before it are not kept (w_before still holds those before the last update made
    aside)."""
    cdef Py_ssize_t j
    if not L.trainable:
        return
    ourdl_dense_sgd_in_place(L.x, L.delta, L.w, L.wt if L.wt_current else NULL,
                             L.w_lr if L.lr_all != L.lr_all else NULL, L.lr_t, L.lr_all,
                             L.n_in, L.n_out)
    if L.b != NULL:
        for j in range(L.n_out):
            L.b[j] = L.b[j] - L.b_lr[j] * L.delta[j]


cdef inline double parameters_max(const double* w, const double* b, Py_ssize_t n_w,
                                  Py_ssize_t n_b) noexcept nogil:
    """The largest magnitude among n_w weights and n_b biases (b NULL: none); nan if one is
    nan."""
    return larger(ourdl_magnitude(w, n_w), ourdl_magnitude(b, n_b) if b != NULL else 0.0)


cdef inline double larger(double a, double b) noexcept nogil:
    """The larger of a and b; nan if either is nan."""
    return a if a > b or a != a else b


cdef inline bint same_bits(const double* v, Py_ssize_t n) noexcept nogil:
    """Whether v[0], ..., v[n - 1] are one value to the bit (0.0 and -0.0 are two): each
    equals the next."""
    return n <= 1 or memcmp(v, v + 1, (n - 1) * sizeof(double)) == 0


cdef inline void dense_ready(Dense* L) noexcept nogil:
    """What the rows' updates read, from the parameters and lrs gather() brought in: the
    bounds they are proven finite from, the lr when all weights share one, and the weights
    transposed for the inputs' gradients (kept so by updates in place)."""
    L.w_max = parameters_max(L.w, L.b, L.n_in * L.n_out, L.n_out)
    L.lr_max = parameters_max(L.w_lr, L.b_lr, L.n_in * L.n_out, L.n_out)
    L.lr_all = L.w_lr[0] if same_bits(L.w_lr, L.n_in * L.n_out) else NAN
    if L.wt != NULL:
        ourdl_transpose(L.w, L.wt, L.n_in, L.n_out)
        ourdl_transpose(L.w_lr, L.lr_t, L.n_in, L.n_out)
        L.wt_current = True


cdef inline bint dense_batch_step(Dense* L, Optimizer* O, Py_ssize_t count) noexcept nogil:
    """The update by O from the gradients summed over a batch of count rows."""
    cdef Py_ssize_t k, n = L.n_in * L.n_out
    cdef bint bad = False
    if not L.trainable:
        return True
    L.wt_current = False
    for k in range(n):
        L.w_before[k] = L.w[k]
        L.w[k] = opt_step(O, L.w_slots[k], L.w[k], L.w_lr[k], L.w_sum[k] / count)
        bad = bad | nonfinite(L.w[k])
        L.w_sum[k] = -0.0
    if L.b != NULL:
        for k in range(L.n_out):
            L.b_before[k] = L.b[k]
            L.b[k] = opt_step(O, L.b_slots[k], L.b[k], L.b_lr[k], L.b_sum[k] / count)
            bad = bad | nonfinite(L.b[k])
            L.b_sum[k] = -0.0
    return not bad


cdef inline void dense_undo(Dense* L, Optimizer* O) noexcept nogil:
    cdef Py_ssize_t k
    if L.trainable:
        memcpy(L.w, L.w_before, L.n_in * L.n_out * sizeof(double))
        L.wt_current = False
        for k in range(L.n_in * L.n_out):
            opt_undo(O, L.w_slots[k])
        if L.b != NULL:
            memcpy(L.b, L.b_before, L.n_out * sizeof(double))
            for k in range(L.n_out):
                opt_undo(O, L.b_slots[k])


cdef inline void shared_forward(Shared* S, double* v) noexcept nogil:
    """Each unit's chain, in its order: the first product, then + each further product, then
    + the bias, then the activation (products and sums commute bit for bit, so which parent
    was Papa does not matter)."""
    cdef Py_ssize_t r, p, n, o = S.n_units
    cdef double* pre = S.pre
    if S.runs.n:  # -0.0 + the first product is that product, bit for bit
        for p in range(S.n_w):
            S.w_buf[p] = v[S.w_slots[p]]
        for p in range(S.n_units):
            pre[p] = -0.0
        ourdl_runs(pre, v, S.w_buf, S.runs.acc, S.runs.scalar, S.runs.vector, S.runs.length,
                   S.runs.n, True)  # input times weight
    else:
        for p in range(S.n_units):
            pre[p] = v[S.x[p]] * v[S.w[p]]
        for r in range(1, S.n_ranks):
            n = S.count[r]
            ourdl_gathered_terms(pre, v, S.x + o, v, S.w + o, n)
            o += n
    for p in range(S.n_units):
        if S.b_slots != NULL:
            pre[p] = pre[p] + v[S.b_slots[p]]
        S.out[p] = op_value(S.act, pre[p], 0.0, 0.0) if S.act != OP_LEAF else pre[p]
        v[S.outputs[p]] = S.out[p]


cdef inline void ordered_sums(Ordered* S, const double* delta, const double* v,
                              double* g) noexcept nogil:
    """Each target's gradient: its terms (delta times factor) summed from -0.0 in order."""
    cdef Py_ssize_t r, p, n, o = 0
    cdef double* acc = S.acc
    for p in range(S.n_targets):
        acc[p] = -0.0
    if S.runs.n:
        ourdl_runs(acc, v, delta, S.runs.acc, S.runs.scalar, S.runs.vector, S.runs.length,
                   S.runs.n, False)  # delta times factor
    else:
        for r in range(S.n_ranks):
            n = S.count[r]
            if S.factor != NULL:
                ourdl_gathered_terms(acc, delta, S.unit + o, v, S.factor + o, n)
            else:
                for p in range(n):
                    acc[p] = acc[p] + delta[S.unit[o + p]]
            o += n
    for p in range(S.n_targets):
        g[S.targets[p]] = acc[p]


cdef inline void shared_backward(Shared* S, const double* v, double* g) noexcept nogil:
    """Every product and sum of a unit passes the gradient at its sum on unchanged; each
    weight, bias and input sums what its products (bias additions) send it, in the order the
    general backward pass visits them. Nothing else sends them anything, so their sums start
    from -0.0 here, as the general pass starts every gradient."""
    cdef Py_ssize_t p
    for p in range(S.n_units):
        S.delta[p] = activation_delta(S.act, g[S.outputs[p]], S.pre[p], S.out[p])
    ordered_sums(&S.weight_grads, S.delta, v, g)
    if S.b_slots != NULL:
        ordered_sums(&S.bias_grads, S.delta, v, g)
    if S.in_grads:
        ordered_sums(&S.input_grads, S.delta, v, g)


cdef inline void max_forward(MaxPool* P, double* v) noexcept nogil:
    """Each window's chain: the running maximum, ties to the chain (Papa), as MaxNode has it."""
    cdef Py_ssize_t u, t = 0, end
    cdef double top, element
    for u in range(P.n_units):
        end = P.ends[u]
        top = v[P.x[t]]
        P.running[t] = top
        t += 1
        while t < end:
            element = v[P.x[t]]
            top = select(top >= element, top, element)
            P.running[t] = top
            t += 1
        v[P.outputs[u]] = top


cdef inline void max_backward(MaxPool* P, const double* v, double* g) noexcept nogil:
    """Down each chain, as its MaxNodes' backward: the gradient goes on to the chain (Papa)
    where it was at least the element, else to the element; the other gets 0.0. Then each
    element's sum, in the order the general backward pass visits its MaxNodes."""
    cdef Py_ssize_t u, t, start = 0, end
    cdef double d
    cdef bint kept
    for u in range(P.n_units):
        end = P.ends[u]
        d = g[P.outputs[u]]
        for t in range(end - 1, start, -1):
            kept = P.running[t - 1] >= v[P.x[t]]  # (no branch: either way about as often)
            P.contrib[t] = select(kept, 0.0, d)
            d = select(kept, d, 0.0)
        P.contrib[start] = d
        start = end
    if P.in_grads:
        ordered_sums(&P.input_grads, P.contrib, v, g)


cdef inline void softmax_forward(Softmax* H, double* v) noexcept nogil:
    """The head's nodes in order, each with its own op's arithmetic (op_value)."""
    cdef Py_ssize_t c, k = H.k
    cdef double m = v[H.z[0]], acc
    H.top[0] = m
    for c in range(1, k):
        m = op_value(OP_MAX, m, v[H.z[c]], 0.0)
        H.top[c] = m
    for c in range(k):
        H.d[c] = op_value(OP_SUB, v[H.z[c]], m, 0.0)
        H.e[c] = op_value(OP_EXP, H.d[c], 0.0, 0.0)
    H.total = H.e[0]
    for c in range(1, k):
        H.total = op_value(OP_ADD, H.total, H.e[c], 0.0)
    H.log_total = op_value(OP_LN, H.total, 0.0, 0.0)
    for c in range(k):
        H.lp[c] = op_value(OP_SUB, H.d[c], H.log_total, 0.0)
    acc = op_value(OP_MUL, v[H.t[0]], H.lp[0], 0.0)
    for c in range(1, k):
        acc = op_value(OP_ADD, acc, op_value(OP_MUL, v[H.t[c]], H.lp[c], 0.0), 0.0)
    H.acc = acc
    v[H.out] = op_value(OP_NEG, acc, 0.0, 0.0)


cdef inline double sum_of_two(double first, double second) noexcept nogil:
    """A gradient that two children send, in the order they send it, from -0.0."""
    return (-0.0 + first) + second


cdef inline void softmax_backward(Softmax* H, const double* v, double* g) noexcept nogil:
    """The head's nodes latest first, each with its own op's gradients (op_grads); a node
    read by several sums what they send in the order the general backward pass visits them."""
    cdef Py_ssize_t q, c, k = H.k
    cdef double to_papa, to_mama, g_acc, g_node, g_log_total, g_total, g_m, from_exp
    op_grads(OP_NEG, H.acc, 0.0, v[H.out], g[H.out], 0.0, &to_papa, &to_mama)
    g_acc = -0.0 + to_papa
    # The chain of sums over t_k * lp_k: each product receives g_acc; then each product
    # sends t_k and lp_k their parts.
    for c in range(k):
        op_grads(OP_MUL, v[H.t[c]], H.lp[c], 0.0, -0.0 + g_acc, 0.0, &to_papa, &to_mama)
        g[H.t[c]] = -0.0 + to_papa
        H.g_lp[c] = -0.0 + to_mama
    g_log_total = -0.0
    for q in range(k):
        c = H.lp_order[q]
        op_grads(OP_SUB, H.d[c], H.log_total, 0.0, H.g_lp[c], 0.0, &to_papa, &to_mama)
        g_log_total = g_log_total + to_mama
    op_grads(OP_LN, H.total, 0.0, H.log_total, g_log_total, 0.0, &to_papa, &to_mama)
    g_total = -0.0 + to_papa
    for c in range(k):  # each exp receives g_total through the chain of sums
        op_grads(OP_EXP, H.d[c], 0.0, H.e[c], -0.0 + g_total, 0.0, &from_exp, &to_mama)
        op_grads(OP_SUB, H.d[c], H.log_total, 0.0, H.g_lp[c], 0.0, &to_papa, &to_mama)
        H.g_d[c] = (sum_of_two(to_papa, from_exp) if H.d_from_lp_first[c]
                    else sum_of_two(from_exp, to_papa))
    g_m = -0.0
    for q in range(k):
        c = H.d_order[q]
        op_grads(OP_SUB, v[H.z[c]], H.top[k - 1], 0.0, H.g_d[c], 0.0, &to_papa, &to_mama)
        g_m = g_m + to_mama
    # Down the chain of MaxNodes: the gradient goes on to the chain where it was at least
    # the logit, else to the logit.
    g_node = g_m
    for c in range(k - 1, 0, -1):
        op_grads(OP_MAX, H.top[c - 1], v[H.z[c]], H.top[c], g_node, 0.0, &to_papa, &to_mama)
        H.g_z_max[c] = to_mama
        g_node = -0.0 + to_papa
    H.g_z_max[0] = g_node
    for c in range(k):
        op_grads(OP_SUB, v[H.z[c]], H.top[k - 1], 0.0, H.g_d[c], 0.0, &to_papa, &to_mama)
        g[H.z[c]] = (sum_of_two(to_papa, H.g_z_max[c]) if H.z_from_d_first[c]
                     else sum_of_two(H.g_z_max[c], to_papa))


CheckedLayer = namedtuple("CheckedLayer", "inputs outputs weights biases fold activation nodes")
CheckedMax = namedtuple("CheckedMax", "inputs outputs x ends back nodes")
CheckedSoftmax = namedtuple("CheckedSoftmax", "inputs outputs z t lp_order d_order "
                                              "d_from_lp_first z_from_d_first nodes")
CheckedShared = namedtuple("CheckedShared",
                           "inputs outputs x w ends biases back bias_back activation nodes")


def _index_array(values, ndim=1):
    """values as an array of tape indices: whole numbers (never floats, bools or strings that
    would round or parse), of the given number of dimensions."""
    a = np.asarray(values)
    if a.ndim != ndim or (a.size and a.dtype.kind not in "iu"):
        raise TypeError("not an array of whole numbers")
    return a.astype(np.intp)


def _not_a(what, layer, Py_ssize_t n):
    """The error for a layer that is not what its kind says, on a tape of n nodes."""
    return ValueError(f"not a {what} of this tape of {n} nodes: {reprlib.repr(layer)}")


def _outside(Py_ssize_t n, *arrays):
    """Whether any index in the arrays falls outside a tape of n nodes."""
    return any(a.size and (a.min() < 0 or a.max() >= n) for a in arrays)


def checked_layer(layer, Py_ssize_t n):
    """A Layer's indices as arrays (a CheckedLayer), every index checked against a tape of n
    nodes and every shape against the others. Each user of a plan takes this snapshot before
    its loops index by it, and reads nothing else of the layer: a Layer is a plain Python
    object, and could have been changed since ourdl._fusion made it."""
    try:
        inputs, outputs = _index_array(layer.inputs), _index_array(layer.outputs)
        w_slots = _index_array(layer.weights, ndim=2)
        biases, fold = _index_array(layer.biases), _index_array(layer.fold)
        nodes = np.sort(_index_array(list(layer.nodes)))
        activation = layer.activation
    except Exception:  # whatever a changed layer's fields raise when read
        raise _not_a("dense layer", layer, n) from None
    n_in, n_out = inputs.shape[0], outputs.shape[0]
    if (n_in < 1 or n_out < 1 or w_slots.shape != (n_in, n_out)
            or biases.shape[0] not in (0, n_out)
            or sorted(fold.tolist()) != list(range(n_out))
            or type(activation) is not int
            or activation not in (OP_LEAF, OP_TANH, OP_RELU, OP_SIGMOID)
            or _outside(n, inputs, outputs, w_slots, biases, nodes)
            or not set(outputs.tolist()) | set(w_slots.ravel().tolist()) <= set(nodes.tolist())):
        raise _not_a("dense layer", layer, n)
    return CheckedLayer(inputs, outputs, w_slots, biases, fold, activation, nodes)


def checked_shared(layer, Py_ssize_t n):
    """A SharedLayer's indices as arrays (a CheckedShared), checked as checked_layer checks
    a dense layer's: every index against a tape of n nodes, every shape and order against the
    others."""
    try:
        inputs, outputs = _index_array(layer.inputs), _index_array(layer.outputs)
        terms = _index_array(layer.terms, ndim=2)
        ends, biases = _index_array(layer.ends), _index_array(layer.biases)
        back, bias_back = _index_array(layer.back), _index_array(layer.bias_back)
        nodes = np.sort(_index_array(list(layer.nodes)))
        activation = layer.activation
    except Exception:  # whatever a changed layer's fields raise when read
        raise _not_a("layer of shared weights", layer, n) from None
    n_units = outputs.shape[0]
    n_terms = terms.shape[0] if terms.ndim == 2 else 0
    if (n_units < 1 or terms.shape != (n_terms, 2) or n_terms < n_units
            or ends.shape[0] != n_units or (np.diff(ends, prepend=0) < 1).any()
            or ends[n_units - 1] != n_terms
            or sorted(back.tolist()) != list(range(n_terms))
            or biases.shape[0] not in (0, n_units)
            or sorted(bias_back.tolist()) != (list(range(n_units)) if biases.shape[0] else [])
            or type(activation) is not int
            or activation not in (OP_LEAF, OP_TANH, OP_RELU, OP_SIGMOID)
            or _outside(n, inputs, outputs, terms, biases, nodes)
            or not set(outputs.tolist()) <= set(nodes.tolist())
            or set(terms[:, 0].tolist()) != set(inputs.tolist())):
        raise _not_a("layer of shared weights", layer, n)
    return CheckedShared(inputs, outputs, np.ascontiguousarray(terms[:, 0]),
                         np.ascontiguousarray(terms[:, 1]), ends, biases, back, bias_back,
                         activation, nodes)


def checked_max(layer, Py_ssize_t n):
    """A MaxLayer's indices as arrays (a CheckedMax), checked as checked_layer checks a dense
    layer's."""
    try:
        inputs, outputs = _index_array(layer.inputs), _index_array(layer.outputs)
        x, ends, back = _index_array(layer.terms), _index_array(layer.ends), _index_array(layer.back)
        nodes = np.sort(_index_array(list(layer.nodes)))
    except Exception:  # whatever a changed layer's fields raise when read
        raise _not_a("layer of max-pooling", layer, n) from None
    n_units, n_terms = outputs.shape[0], x.shape[0]
    if (n_units < 1 or ends.shape[0] != n_units or (np.diff(ends, prepend=0) < 2).any()
            or ends[n_units - 1] != n_terms
            or sorted(back.tolist()) != list(range(n_terms))
            or _outside(n, inputs, outputs, x, nodes)
            or not set(outputs.tolist()) <= set(nodes.tolist())
            or set(x.tolist()) != set(inputs.tolist())):
        raise _not_a("layer of max-pooling", layer, n)
    return CheckedMax(inputs, outputs, x, ends, back, nodes)


def checked_softmax(layer, Py_ssize_t n):
    """A SoftmaxLayer's indices as arrays (a CheckedSoftmax), checked as checked_layer checks
    a dense layer's."""
    try:
        z, t = _index_array(layer.logits), _index_array(layer.targets)
        outputs = _index_array(layer.outputs)
        lp_order, d_order = _index_array(layer.lp_order), _index_array(layer.d_order)
        d_first = _index_array([int(bool(b)) for b in layer.d_from_lp_first])
        z_first = _index_array([int(bool(b)) for b in layer.z_from_d_first])
        nodes = np.sort(_index_array(list(layer.nodes)))
    except Exception:  # whatever a changed layer's fields raise when read
        raise _not_a("softmax head", layer, n) from None
    k = z.shape[0]
    if (k < 2 or t.shape[0] != k or outputs.shape[0] != 1
            or sorted(lp_order.tolist()) != list(range(k))
            or sorted(d_order.tolist()) != list(range(k))
            or d_first.shape[0] != k or z_first.shape[0] != k
            or _outside(n, z, t, outputs, nodes)
            or not set(outputs.tolist()) <= set(nodes.tolist())):
        raise _not_a("softmax head", layer, n)
    return CheckedSoftmax(np.concatenate([z, t]), outputs, z, t, lp_order, d_order, d_first,
                          z_first, nodes)


cdef enum:  # the kinds of fused layers
    KIND_DENSE
    KIND_SHARED
    KIND_MAX
    KIND_SOFTMAX
CHECKS = {"shared": (KIND_SHARED, checked_shared), "max": (KIND_MAX, checked_max),
          "softmax": (KIND_SOFTMAX, checked_softmax)}


def checked_any(layer, Py_ssize_t n):
    """(kind, checked layer) of a layer of any kind, by its ``kind`` (dense by default)."""
    kind, check = CHECKS.get(getattr(layer, "kind", "dense"), (KIND_DENSE, checked_layer))
    return kind, check(layer, n)


def _array(values, dtype=np.float64):
    """A contiguous array that is never empty, so that &a[0] is always valid."""
    a = np.ascontiguousarray(values, dtype=dtype).ravel()
    return a if a.size else np.zeros(1, dtype=dtype)


def _runs(acc, scalar, vector):
    """Terms (laid out rank after rank: where each one's sum is, where its two factors are)
    as runs of consecutive sums with one factor in common and the other at consecutive
    places: (first sum, shared factor, first other factor, length) per run; None where the
    runs would be short (under 4 terms on average), too short to beat gathering."""
    n = acc.shape[0]
    new = np.ones(n, dtype=bool)
    new[1:] = ((acc[1:] != acc[:-1] + 1) | (scalar[1:] != scalar[:-1])
               | (vector[1:] != vector[:-1] + 1))
    first = np.flatnonzero(new)
    if first.shape[0] * 4 > n:
        return None
    return acc[first], scalar[first], vector[first], np.diff(np.append(first, n))


@cython.final
cdef class Fused:
    """A tape's training and prediction step with its layers fused (dense layers, layers of
    shared weights such as convolutions, max-pooling, softmax cross-entropy heads).

    ``Fused(tape arrays, layers, steps, batch_size, root_grad, slots, column_step)``: ``layers``
    and ``steps`` come from ``ourdl._fusion.plan``; the arrays are the tape's op codes,
    parents, values, learning rates and flags, whose indices they name; slots are the
    tape indices that data columns feed, column_step the data's stride between columns.
    """

    def __init__(self, const int[::1] opcodes, const Py_ssize_t[::1] papa,
                 const Py_ssize_t[::1] mama, const double[::1] values, const double[::1] lrs,
                 const unsigned char[::1] flags, list layers, steps, Py_ssize_t batch_size,
                 double root_grad, const Py_ssize_t[::1] slots, Py_ssize_t column_step,
                 bint plain_sgd=True):
        cdef Py_ssize_t n = opcodes.shape[0], k, i
        if self.layers != NULL:
            raise TypeError("a Fused kernel is built once")
        if not (papa.shape[0] == mama.shape[0] == values.shape[0] == lrs.shape[0]
                == flags.shape[0] == n >= 1):
            raise ValueError("the tape's arrays must have one entry per node, all of them")
        kinds, every = zip(*[checked_any(layer, n) for layer in layers]) if layers else ((), ())
        every = list(every)
        by_kind = [[c for kind, c in zip(kinds, every) if kind == k]
                   for k in (KIND_DENSE, KIND_SHARED, KIND_MAX, KIND_SOFTMAX)]
        checked, shared, pools, heads = by_kind
        op = np.asarray(opcodes)
        inside = np.zeros(n, dtype=np.bool_)
        for c in every:
            inside[c.nodes] = True
        self.layers = <Dense*>PyMem_Malloc(max(1, len(checked)) * sizeof(Dense))
        self.shared = <Shared*>PyMem_Malloc(max(1, len(shared)) * sizeof(Shared))
        self.pools = <MaxPool*>PyMem_Malloc(max(1, len(pools)) * sizeof(MaxPool))
        self.heads = <Softmax*>PyMem_Malloc(max(1, len(heads)) * sizeof(Softmax))
        if (self.layers == NULL or self.shared == NULL or self.pools == NULL
                or self.heads == NULL):
            raise MemoryError("cannot allocate the fused layers")
        memset(self.layers, 0, max(1, len(checked)) * sizeof(Dense))
        memset(self.shared, 0, max(1, len(shared)) * sizeof(Shared))
        memset(self.pools, 0, max(1, len(pools)) * sizeof(MaxPool))
        memset(self.heads, 0, max(1, len(heads)) * sizeof(Softmax))
        self._arrays = []
        values_a, lrs_a = np.asarray(values), np.asarray(lrs)
        for k, c in enumerate(checked):
            self._build_layer(&self.layers[k], c, values_a, lrs_a, opcodes, flags)
        self.n_layers = len(checked)
        for k, c in enumerate(shared):
            self._build_shared(&self.shared[k], c, opcodes, flags)
        self.n_shared = len(shared)
        for k, c in enumerate(pools):
            self._build_max(&self.pools[k], c, opcodes, flags)
        self.n_pools = len(pools)
        for k, c in enumerate(heads):
            self._build_softmax(&self.heads[k], c)
        self.n_heads = len(heads)
        self.kinds = _array(kinds, np.intp)
        self.index = _array([kinds[:k].count(kind) for k, kind in enumerate(kinds)], np.intp)
        self._plan_settling(every, op, inside)

        # The steps, in forward order: op nodes outside the layers, and layers (-1 - k), each
        # once (prediction runs only those its output needs).
        general = ~inside & (op != OP_LEAF)
        try:
            steps_a = _index_array(steps)
        except (TypeError, ValueError, OverflowError):
            steps_a = np.array([n], dtype=np.intp)  # refused below
        nodes = steps_a[steps_a >= 0]
        if (len(np.unique(steps_a)) != len(steps_a) or (steps_a < -len(every)).any()
                or (nodes >= n).any() or not general[nodes[nodes < n]].all()):
            raise ValueError("steps must name op nodes outside the layers and layers, each once")
        self.steps = steps_a
        # Gradients that are summed with += in a row: parents of general nodes, and layer
        # outputs (which may have no reader at all, and then stay -0.0).
        binary = general & (op >= OP_ADD) & (op <= OP_CUSTOM2)
        zeroed = np.unique(np.concatenate(
            [np.asarray(papa)[general], np.asarray(mama)[binary]] + [c.outputs for c in every]))
        self.zeroed = zeroed[zeroed != n - 1]  # the root starts at root_grad
        flagged = np.flatnonzero((np.asarray(flags) != 0) & ~inside)
        self.n_flagged = len(flagged)
        self.flagged = _array(flagged, np.intp)
        self.summed = np.full(self.n_flagged + 1, -0.0)
        self.before = np.empty(self.n_flagged + 1)
        self.after = np.empty(self.n_flagged + 1)
        self.batch_size = batch_size
        self.count = 0
        self.root_grad = root_grad
        if plain_sgd and not shared:  # the tutorial's rule, each node's own lr: maybe the
            # tutorial's model
            self._find_linear(opcodes, papa, mama, checked, slots, column_step)

    cdef int _plan_settling(self, list every, op, inside) except -1:
        """What settle_last_update computes: the op nodes inside the layers, in tape order,
        and the gradients it starts again from -0.0 for that: every node of a layer but its
        outputs (whose gradients come from outside), and its inputs (whose gradients come
        from the layer alone)."""
        reset = inside.copy()
        for c in every:
            reset[c.outputs] = False
        for c in every:
            reset[c.inputs] = True
            if isinstance(c, CheckedShared):  # its weights and biases are read by it alone
                reset[c.w] = True
                reset[c.biases] = True
        inner = np.flatnonzero(inside & (op != OP_LEAF))
        self.n_inner, self.n_reset = len(inner), np.count_nonzero(reset)
        self.inner = _array(inner, np.intp)
        self.reset = _array(np.flatnonzero(reset), np.intp)
        return 0

    cdef int _find_linear(self, const int[::1] opcodes, const Py_ssize_t[::1] papa,
                          const Py_ssize_t[::1] mama, list checked, const Py_ssize_t[::1] slots,
                          Py_ssize_t column_step) except -1:
        """Is this the tutorial's model: loss(one unit over data columns, a target column),
        trained by SGD with each weight's own lr? Then train() runs it in one tight loop."""
        cdef Py_ssize_t n = opcodes.shape[0], root = n - 1
        column = {slots[k]: k for k in range(slots.shape[0])}
        self.linear = False
        if len(checked) != 1 or self.n_flagged or not self.layers[0].trainable:
            return 0
        layer = checked[0]
        if (len(layer.outputs) != 1 or layer.activation != OP_LEAF
                or opcodes[root] not in (OP_MSE, OP_MAE)
                or not all(i in column for i in layer.inputs)):
            return 0
        out = layer.outputs[0]
        if papa[root] == out and mama[root] in column:
            target, sum_is_papa = mama[root], True
        elif mama[root] == out and papa[root] in column:
            target, sum_is_papa = papa[root], False
        else:
            return 0
        if len(layer.nodes) + len(layer.inputs) + 2 != n:
            return 0  # other nodes need computing each row: the general steps do that
        self.offsets = np.array([column[i] * column_step for i in layer.inputs], dtype=np.intp)
        self.residuals = np.empty(CHUNK_ROWS)
        self.loss.offsets = &self.offsets[0]
        self.loss.target = column[target] * column_step
        self.loss.is_mse = opcodes[root] == OP_MSE
        self.loss.sum_is_papa = sum_is_papa
        self.loss.root_grad = self.root_grad
        self.loss.residuals = &self.residuals[0]
        self.linear = True
        return 0

    cdef double* _doubles(self, values) except NULL:
        """A copy of values that the layers read and write, starting on a 64-byte boundary:
        a vector that straddles two cache lines is slow to read back after it is written."""
        values = _array(values)
        cdef Py_ssize_t n = values.shape[0], skip
        room = np.zeros(n + 8)
        skip = (-room.ctypes.data % 64) // 8
        room[skip:skip + n] = values
        cdef double[::1] a = room[skip:skip + n]
        self._arrays.append(a)
        return &a[0]

    cdef Py_ssize_t* _indices(self, values) except NULL:
        cdef Py_ssize_t[::1] a = _array(values, np.intp)
        self._arrays.append(a)
        return &a[0]

    cdef int _build_layer(self, Dense* L, layer, values, lrs, const int[::1] opcodes,
                          const unsigned char[::1] flags) except -1:
        """L from a CheckedLayer."""
        inputs, outputs, w_slots, biases, fold, act = layer[:6]
        n_in, n_out = inputs.shape[0], outputs.shape[0]
        L.n_in, L.n_out = n_in, n_out
        L.inputs = self._indices(inputs)
        L.outputs = self._indices(outputs)
        L.fold = self._indices(fold)
        L.w_slots = self._indices(w_slots)
        L.act = act
        L.trainable = flags[w_slots[0, 0]] != 0
        # An input's gradient matters unless it is a fixed leaf: nothing upstream to train.
        L.in_grads = any(opcodes[i] != OP_LEAF or flags[i] for i in inputs)
        L.w = self._doubles(values[w_slots])
        L.w_before = self._doubles(values[w_slots])
        L.w_sum = self._doubles(np.full(n_in * n_out, -0.0))
        L.w_lr = self._doubles(lrs[w_slots])
        L.lr_all, L.w_max = NAN, INFINITY  # nothing proven until dense_ready() has looked
        if L.in_grads:
            L.wt = self._doubles(values[w_slots].T)
            L.lr_t = self._doubles(lrs[w_slots].T)
        if biases.shape[0]:
            L.b_slots = self._indices(biases)
            L.b = self._doubles(values[biases])
            L.b_before = self._doubles(values[biases])
            L.b_sum = self._doubles(np.full(n_out, -0.0))
            L.b_lr = self._doubles(lrs[biases])
        L.x = self._doubles(np.zeros(n_in))
        L.pre = self._doubles(np.zeros(n_out))
        L.out = L.pre if L.act == OP_LEAF else self._doubles(np.zeros(n_out))
        L.delta = self._doubles(np.zeros(n_out))
        L.gin = self._doubles(np.zeros(n_in))
        L.check = self._doubles(np.zeros(n_out))
        return 0

    cdef int _build_shared(self, Shared* S, layer, const int[::1] opcodes,
                           const unsigned char[::1] flags) except -1:
        """S from a CheckedShared: its terms and its gradient sums laid out rank after rank,
        as runs where they make long enough runs (a convolution's do)."""
        terms = np.diff(layer.ends, prepend=0)
        starts = layer.ends - terms
        S.n_units, S.n_ranks = terms.shape[0], int(terms.max())
        # Units that read the same inputs in the same order (a convolution's output channels
        # at one position) side by side, most terms first.
        inputs = np.full((S.n_units, S.n_ranks), -1, dtype=np.intp)
        unit_of = np.repeat(np.arange(S.n_units), terms)   # each term's unit
        inputs[unit_of, np.arange(unit_of.shape[0]) - starts[unit_of]] = layer.x
        same_inputs = np.unique(inputs, axis=0, return_inverse=True)[1].reshape(-1)
        units = np.lexsort((np.arange(S.n_units), same_inputs, -terms))
        place = np.empty_like(units)
        place[units] = np.arange(units.shape[0])          # a unit's place in that order
        count = (terms[units][None, :] > np.arange(S.n_ranks)[:, None]).sum(axis=1)
        order = np.concatenate([starts[units[:c]] + r for r, c in enumerate(count.tolist())])
        # The weights in the order the terms first use them: then a convolution's channels at
        # one place of its kernel lie side by side, as its runs read them.
        found, first, w_of = np.unique(layer.w[order], return_index=True, return_inverse=True)
        by_first_use = np.argsort(first)
        w_place = np.empty_like(by_first_use)
        w_place[by_first_use] = np.arange(found.shape[0])
        w_of = w_place[w_of.reshape(-1)]                    # each term's weight in w_buf
        runs = _runs(np.concatenate([np.arange(c) for c in count.tolist()]), layer.x[order], w_of)
        if runs is not None:
            self._build_runs(&S.runs, runs, S.n_units, opcodes.shape[0], found.shape[0])
            S.n_w = found.shape[0]
            S.w_slots = self._indices(found[by_first_use])
            S.w_buf = self._doubles(np.zeros(S.n_w))
        else:  # each term gathered by its tape indices
            S.count = self._indices(count)
            S.x = self._indices(layer.x[order])
            S.w = self._indices(layer.w[order])
        S.outputs = self._indices(layer.outputs[units])
        S.act = layer.activation
        S.in_grads = any(opcodes[i] != OP_LEAF or flags[i] for i in layer.inputs)
        S.pre = self._doubles(np.zeros(S.n_units))
        S.out = self._doubles(np.zeros(S.n_units))
        S.delta = self._doubles(np.zeros(S.n_units))
        back = layer.back
        # The weights' gradient sums in w_buf's order: runs like the forward's.
        self._build_sums(&S.weight_grads, layer.w[back], place[unit_of[back]], layer.x[back],
                         S.n_units, opcodes.shape[0], w_place)
        self._build_sums(&S.input_grads, layer.x[back], place[unit_of[back]], layer.w[back],
                         S.n_units, opcodes.shape[0])
        if layer.biases.shape[0]:
            S.b_slots = self._indices(layer.biases[units])
            self._build_sums(&S.bias_grads, layer.biases[layer.bias_back],
                             place[layer.bias_back], None)
        return 0

    cdef int _build_runs(self, Runs* R, runs, Py_ssize_t n_acc, Py_ssize_t n_scalar,
                         Py_ssize_t n_vector) except -1:
        """R from _runs's arrays, each run checked to lie inside its three arrays (of n_acc
        sums, n_scalar shared factors and n_vector other factors)."""
        acc, scalar, vector, length = runs
        if ((length < 1).any() or (acc < 0).any() or (acc + length > n_acc).any()
                or (vector < 0).any() or (vector + length > n_vector).any()
                or (scalar < 0).any() or (scalar >= n_scalar).any()):
            raise SystemError("ourdl: a run of terms lies outside its arrays")
        R.n = acc.shape[0]
        R.acc, R.scalar = self._indices(acc), self._indices(scalar)
        R.vector, R.length = self._indices(vector), self._indices(length)
        return 0

    cdef int _build_sums(self, Ordered* S, targets, units, factors, Py_ssize_t n_units=0,
                         Py_ssize_t n=0, key=None) except -1:
        """S from the terms in the order they are summed: each one's target (a tape index),
        the unit whose delta it carries (its place among n_units), and the tape index of its
        factor (None: 1) in a tape of n nodes. Targets with as many terms go in
        the order of key (per target, in sorted order of their tape indices), else of their
        tape indices; the terms as runs where they make long enough runs."""
        found, target_of, terms = np.unique(targets, return_inverse=True, return_counts=True)
        target_of = target_of.reshape(-1)
        # Targets with most terms first.
        ranked = np.lexsort((np.arange(found.shape[0]) if key is None else key, -terms))
        place = np.empty_like(ranked)
        place[ranked] = np.arange(ranked.shape[0])
        # Each term's rank among its target's terms: its place after grouping them by target.
        grouped = np.empty(targets.shape[0], dtype=np.intp)
        grouped[np.argsort(target_of, kind="stable")] = np.arange(targets.shape[0])
        rank = grouped - (np.cumsum(terms) - terms)[target_of]
        order = np.lexsort((place[target_of], rank))      # rank after rank, targets in place order
        S.n_targets, S.n_ranks = found.shape[0], int(terms.max())
        S.targets = self._indices(found[ranked])
        S.acc = self._doubles(np.zeros(S.n_targets))
        runs = None if factors is None else _runs(place[target_of][order], factors[order],
                                                  units[order])
        if runs is not None:
            self._build_runs(&S.runs, runs, S.n_targets, n, n_units)
        else:  # each term gathered by its indices
            S.count = self._indices(np.bincount(rank, minlength=S.n_ranks))
            S.unit = self._indices(units[order])
            S.factor = self._indices(factors[order]) if factors is not None else NULL
        return 0

    cdef int _build_max(self, MaxPool* P, layer, const int[::1] opcodes,
                        const unsigned char[::1] flags) except -1:
        """P from a CheckedMax."""
        P.n_units = layer.outputs.shape[0]
        P.ends = self._indices(layer.ends)
        P.x = self._indices(layer.x)
        P.outputs = self._indices(layer.outputs)
        P.in_grads = any(opcodes[i] != OP_LEAF or flags[i] for i in layer.inputs)
        P.running = self._doubles(np.zeros(layer.x.shape[0]))
        P.contrib = self._doubles(np.zeros(layer.x.shape[0]))
        self._build_sums(&P.input_grads, layer.x[layer.back], layer.back, None)
        return 0

    cdef int _build_softmax(self, Softmax* H, layer) except -1:
        """H from a CheckedSoftmax."""
        k = layer.z.shape[0]
        H.k = k
        H.z, H.t = self._indices(layer.z), self._indices(layer.t)
        H.out = layer.outputs[0]
        H.lp_order, H.d_order = self._indices(layer.lp_order), self._indices(layer.d_order)
        H.d_from_lp_first = self._indices(layer.d_from_lp_first)
        H.z_from_d_first = self._indices(layer.z_from_d_first)
        H.top, H.d, H.e = (self._doubles(np.zeros(k)), self._doubles(np.zeros(k)),
                           self._doubles(np.zeros(k)))
        H.lp, H.g_lp = self._doubles(np.zeros(k)), self._doubles(np.zeros(k))
        H.g_d, H.g_z_max = self._doubles(np.zeros(k)), self._doubles(np.zeros(k))
        return 0

    def __dealloc__(self):
        PyMem_Free(self.layers)
        PyMem_Free(self.shared)
        PyMem_Free(self.pools)
        PyMem_Free(self.heads)

    cdef void gather(self, const Graph* G) noexcept nogil:
        """The parameters and their lrs from the tape into the layers (a callback between
        epochs may have changed either)."""
        cdef Py_ssize_t k, i
        cdef Dense* L
        for k in range(self.n_layers):
            L = &self.layers[k]
            for i in range(L.n_in * L.n_out):
                L.w[i] = G.values[L.w_slots[i]]
                L.w_lr[i] = G.lrs[L.w_slots[i]]
            if L.b != NULL:
                for i in range(L.n_out):
                    L.b[i] = G.values[L.b_slots[i]]
                    L.b_lr[i] = G.lrs[L.b_slots[i]]

    cdef void scatter(self, const Graph* G, bint before=False) noexcept nogil:
        """The parameters from the layers back into the tape's values (with before, those
        from before the last update made aside: right after a chunk, whose last row always
        steps aside)."""
        cdef Py_ssize_t k, i
        cdef Dense* L
        for k in range(self.n_layers):
            L = &self.layers[k]
            for i in range(L.n_in * L.n_out):
                G.values[L.w_slots[i]] = L.w_before[i] if before else L.w[i]
            if L.b != NULL:
                for i in range(L.n_out):
                    G.values[L.b_slots[i]] = L.b_before[i] if before else L.b[i]

    cdef void run_forward(self, Py_ssize_t k, const Graph* G) noexcept nogil:
        """The forward of the plan's layer k."""
        cdef Py_ssize_t kind = self.kinds[k], i = self.index[k]
        if kind == KIND_DENSE:
            dense_forward(&self.layers[i], G.values)
        elif kind == KIND_SHARED:
            shared_forward(&self.shared[i], G.values)
        elif kind == KIND_MAX:
            max_forward(&self.pools[i], G.values)
        else:
            softmax_forward(&self.heads[i], G.values)

    cdef void run_backward(self, Py_ssize_t k, const Graph* G, bint sum_for_batch) noexcept nogil:
        """The backward of the plan's layer k (with sum_for_batch, a dense layer sums its
        parameters' gradients for the batch)."""
        cdef Py_ssize_t kind = self.kinds[k], i = self.index[k]
        if kind == KIND_DENSE:
            dense_backward(&self.layers[i], G.grads, sum_for_batch)
        elif kind == KIND_SHARED:
            shared_backward(&self.shared[i], G.values, G.grads)
        elif kind == KIND_MAX:
            max_backward(&self.pools[i], G.values, G.grads)
        else:
            softmax_backward(&self.heads[i], G.values, G.grads)

    cdef void forward_row(self, const Graph* G) noexcept nogil:
        cdef Py_ssize_t q, s
        for q in range(self.steps.shape[0]):
            s = self.steps[q]
            if s >= 0:
                node_forward(G, s)
            else:
                self.run_forward(-1 - s, G)

    cdef RunStatus train(self, const Graph* G, const Data* D, Optimizer* O, Py_ssize_t start,
                         Py_ssize_t stop, Py_ssize_t epoch_rows, double* loss_sum,
                         Py_ssize_t* at) noexcept nogil:
        """Rows [start, stop) of an epoch of epoch_rows rows: for each, the tutorial's step
        (the row into the inputs, forward, backward), and every batch_size rows an update by
        O from the gradients averaged over the batch. A nan or inf loss, data value or
        parameter stops the run before that row's update (a parameter's update is undone);
        at says where. The rows' losses are added to loss_sum, unless it is NULL."""
        cdef Py_ssize_t i, k, q, s, slot, root = G.n - 1, n_steps = self.steps.shape[0]
        cdef Py_ssize_t n_flagged = self.n_flagged
        cdef double loss
        # One row a batch with the nodes' own lrs: the layers step from the row's delta and x.
        cdef bint ok, in_place
        cdef bint one_row = self.batch_size == 1 and O.kind == OPT_SGD and O.lr != O.lr
        cdef double* v = G.values
        cdef double* g = G.grads
        cdef const Py_ssize_t* steps = &self.steps[0] if n_steps else NULL
        cdef const Py_ssize_t* zeroed = &self.zeroed[0] if self.zeroed.shape[0] else NULL
        cdef const Py_ssize_t* flagged = &self.flagged[0]
        cdef double* summed = &self.summed[0]
        cdef double* before = &self.before[0]
        cdef RunStatus status = RUN_OK
        self.gather(G)
        if self.linear:
            status = linear_rows(&self.layers[0], &self.loss, G, D, start, stop, epoch_rows,
                                 self.batch_size, &self.count, loss_sum, at)
            self.scatter(G)
            return status
        for k in range(self.n_layers):
            dense_ready(&self.layers[k])
        for i in range(start, stop):
            if not load_row(D, D.rows[i] if D.rows != NULL else i, v):
                at[0] = i
                status = RUN_BAD_DATA
                break
            self.forward_row(G)
            if G.aborted[0]:
                at[0] = i
                status = RUN_ABORTED
                break
            loss = v[root]
            if nonfinite(loss):
                at[0] = i
                status = RUN_BAD_LOSS
                break
            if loss_sum != NULL:
                loss_sum[0] += loss
            for q in range(self.zeroed.shape[0]):
                g[zeroed[q]] = -0.0
            g[root] = self.root_grad
            for q in range(n_steps - 1, -1, -1):
                s = steps[q]
                if s >= 0:
                    node_backward(G, s)
                else:
                    self.run_backward(-1 - s, G, not one_row)
            if G.aborted[0]:
                at[0] = i
                status = RUN_ABORTED
                break
            for k in range(n_flagged):
                summed[k] += g[flagged[k]]
            self.count += 1
            if self.count < self.batch_size and i != epoch_rows - 1:
                continue
            # The update. One row a batch, when every layer's update is proven finite, they
            # are all made in place, last, when nothing can fail any more; else all aside,
            # checked. The chunk's last row always goes aside: settle_last_update reads the
            # weights before its update (w_before), which only an update aside keeps.
            opt_begin(O)
            in_place = one_row and i != stop - 1 and self.prove_finite()
            ok = True
            if not in_place:
                for k in range(self.n_layers):
                    ok = (dense_sgd_aside(&self.layers[k]) if one_row else
                          dense_batch_step(&self.layers[k], O, self.count)) and ok
            for k in range(n_flagged):
                slot = flagged[k]
                before[k] = v[slot]
                v[slot] = opt_step(O, slot, v[slot], G.lrs[slot], summed[k] / self.count)
                ok = ok and not nonfinite(v[slot])
                summed[k] = -0.0
            self.count = 0
            if not ok:
                if not in_place:
                    for k in range(self.n_layers):
                        dense_undo(&self.layers[k], O)
                for k in range(n_flagged):
                    v[flagged[k]] = before[k]
                    opt_undo(O, flagged[k])
                O.t -= 1
                at[0] = i
                status = RUN_BAD_PARAM
                break
            if in_place:
                for k in range(self.n_layers):
                    dense_sgd_in_place(&self.layers[k])
        self.scatter(G)
        return status

    cdef bint prove_finite(self) noexcept nogil:
        """Whether every dense layer's update of this row can be proven finite beforehand."""
        cdef Py_ssize_t k
        for k in range(self.n_layers):
            if not prove_sgd_finite(&self.layers[k]):
                return False
        return True

    cdef bint predict(self, const Graph* G, const Data* D, Py_ssize_t start, Py_ssize_t stop,
                      Py_ssize_t out, double* result) noexcept nogil:
        """The value of node out for rows [start, stop); False if a row holds nan or inf."""
        cdef Py_ssize_t r
        self.gather(G)
        for r in range(start, stop):
            if not load_row(D, r, G.values):
                return False
            self.forward_row(G)
            if G.aborted[0]:
                return False
            result[r] = G.values[out]
        return True

    cdef void settle_last_update(self, const Graph* G, const Data* D, Py_ssize_t row) noexcept nogil:
        """Leave every node as the general passes would after the update on ``row``: values and
        gradients from the parameters before that update, the parameters after. The steps
        left every node outside the layers so; the nodes inside them, which the fused loops
        never write, are computed here. No op written in Python runs again (none is inside a
        layer): user code is called exactly as often as by the general passes."""
        cdef Py_ssize_t q
        self.scatter(G, True)
        if self.linear:  # linear_rows computes no node at all, and the graph has no other op
            load_row(D, row, G.values)
            forward_pass(G)
            backward_pass(G, self.root_grad)
        else:
            # The other trainable nodes too as they were before the update: a layer may read
            # one (a trainable activation, a trainable input).
            for q in range(self.n_flagged):
                self.after[q] = G.values[self.flagged[q]]
                G.values[self.flagged[q]] = self.before[q]
            for q in range(self.n_inner):
                node_forward(G, self.inner[q])
            for q in range(self.n_reset):
                G.grads[self.reset[q]] = -0.0
            for q in range(self.n_inner - 1, -1, -1):
                node_backward(G, self.inner[q])
            for q in range(self.n_flagged):
                G.values[self.flagged[q]] = self.after[q]
        self.scatter(G)
