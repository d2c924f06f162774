"""Fused dense layers change no bit: fused and unfused tapes, and the reference, agree exactly.

Random networks (depths 1-4, widths 1-40, every activation, with and without biases,
nn-built and hand-wired in either operand order) with deviations mixed in (a shared weight,
an extra edge, a second loss term, a tree of sums) are trained and run twice, once with the
fused kernels and once with the general passes, and every node must end bit for bit equal.
"""
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ourdl
from ourdl import nn
from ourdl import reference as ref

from helpers import mirror

ACTIVATIONS = [None, "tanh", "relu", "sigmoid"]
ACT_NODE = {None: None, "tanh": "TanhNode", "relu": "ReluNode", "sigmoid": "SigmoidNode"}
DEVIATIONS = [None, "shared weight", "extra edge from an output", "extra edge from an input",
              "second loss term", "tree of sums"]


def bits(x):
    return struct.pack("<d", x)


def state(root):
    return [(type(n).__name__, bits(n.value), bits(n.grad), bits(n.Papa_grad), bits(n.Mama_grad))
            for n in ourdl.topological_order(root)]


def layer_by_hand(M, inputs, n_out, act, bias, rng, swap_mul, swap_add, lr, tree_unit=None,
                  shared=None):
    """A dense layer wired from M's nodes, each unit a chain of additions (or, for unit
    tree_unit, a balanced tree of them); shared=(i, j, node) puts node in place of W[i][j]."""
    n_in = len(inputs)
    W = [[M.Node(Value=float(rng.uniform(-0.8, 0.8)), Flag=1, lr=lr) for _ in range(n_out)]
         for _ in range(n_in)]
    if shared is not None:
        i, j, node = shared
        W[i % n_in][j % n_out] = node
    outs = []
    for j in range(n_out):
        terms = [M.MulNode(W[i][j], inputs[i]) if swap_mul else M.MulNode(inputs[i], W[i][j])
                 for i in range(n_in)]
        if j == tree_unit and n_in >= 4:
            while len(terms) > 1:
                terms = [M.AddNode(terms[k], terms[k + 1]) if k + 1 < len(terms) else terms[k]
                         for k in range(0, len(terms), 2)]
            total = terms[0]
        else:
            total = terms[0]
            for t in terms[1:]:
                total = M.AddNode(t, total) if swap_add else M.AddNode(total, t)
        if bias:
            b = M.Node(Value=float(rng.uniform(-0.1, 0.1)), Flag=1, lr=lr)
            total = M.AddNode(b, total) if swap_add else M.AddNode(total, b)
        outs.append(getattr(M, ACT_NODE[act])(total) if act else total)
    return outs, W


def network(spec, M=ourdl):
    """(root, inputs) of the network that spec describes, built from M's nodes."""
    rng = np.random.default_rng(spec["seed"])
    sizes, act, deviation = spec["sizes"], spec["act"], spec["deviation"]
    lr = 0.01
    x = [M.Node(name=f"x{i}") for i in range(sizes[0])]
    targets = [M.Node(name="y")]
    n_layers = len(sizes) - 1
    if spec["by_nn"] and M is ourdl and deviation in (None, "second loss term",
                                                       "extra edge from an output"):
        mlp = nn.MLP(sizes, activation=act, bias=spec["bias"], seed=spec["seed"], lr=lr)
        hidden, outs = [], x
        for layer in mlp.layers:
            outs = layer(outs)
            hidden.append(outs)
    else:
        hidden, outs = [], x
        for k in range(n_layers):
            shared = None
            if deviation == "shared weight" and k == 0 and sizes[1] > 1:
                shared = (1, 1, None)
            outs, W = layer_by_hand(M, outs, sizes[k + 1], act if k < n_layers - 1 else None,
                                    spec["bias"], rng, spec["swap_mul"], spec["swap_add"], lr,
                                    tree_unit=0 if deviation == "tree of sums" and k == 0 else None,
                                    shared=None)
            if shared is not None:  # wire one more unit reusing the first weight: shared
                extra = M.MulNode(hidden[-1][0] if hidden else x[0], W[0][0])
                outs = [M.AddNode(outs[0], extra)] + outs[1:]
            hidden.append(outs)
    loss = M.MSENode(outs[0], targets[0])
    if deviation == "second loss term":
        targets.append(M.Node(name="y2"))
        other = outs[1] if len(outs) > 1 else hidden[0][-1]
        loss = M.AddNode(loss, M.MSENode(other, targets[1]))
    elif deviation == "extra edge from an output":
        k = M.Node(Value=0.3, Flag=1, lr=lr)
        loss = M.AddNode(loss, M.MulNode(hidden[0][0], k))
    elif deviation == "extra edge from an input":
        k = M.Node(Value=0.2, Flag=1, lr=lr)
        loss = M.AddNode(loss, M.MulNode(x[0], k))
    return loss, x + targets


specs = st.fixed_dictionaries({
    "sizes": st.lists(st.integers(1, 40), min_size=2, max_size=5).map(
        lambda s: [min(s[0], 8)] + s[1:]),
    "act": st.sampled_from(ACTIVATIONS),
    "bias": st.booleans(),
    "by_nn": st.booleans(),
    "swap_mul": st.booleans(),
    "swap_add": st.booleans(),
    "deviation": st.sampled_from(DEVIATIONS),
    "seed": st.integers(0, 2**16),
})

settings.register_profile("fusion", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])


def twins(spec):
    fused_root, fused_inputs = network(spec)
    plain_root, plain_inputs = network(spec)
    return (ourdl.compile(fused_root), fused_root, fused_inputs,
            ourdl.compile(plain_root, fuse=False), plain_root, plain_inputs)


def data_for(inputs, rows, seed):
    return np.random.default_rng(seed).normal(0.0, 1.0, size=(rows, len(inputs)))


@settings(settings.get_profile("fusion"))
@given(spec=specs, batch_size=st.sampled_from([1, 1, 3]), shuffle=st.booleans())
def test_fit_fused_equals_unfused_bit_for_bit(spec, batch_size, shuffle):
    fused, froot, finputs, plain, proot, pinputs = twins(spec)
    data = data_for(finputs, 23, spec["seed"])
    try:
        plain_history = plain.fit(data, pinputs, epochs=2, batch_size=batch_size,
                                  shuffle=shuffle, seed=1)
    except FloatingPointError as error:
        with pytest.raises(FloatingPointError, match=str(error)[:60]):
            fused.fit(data, finputs, epochs=2, batch_size=batch_size, shuffle=shuffle, seed=1)
    else:
        fused_history = fused.fit(data, finputs, epochs=2, batch_size=batch_size,
                                  shuffle=shuffle, seed=1)
        assert [bits(h.loss) for h in fused_history] == [bits(h.loss) for h in plain_history]
    assert state(froot) == state(proot)


@settings(settings.get_profile("fusion"))
@given(spec=specs)
def test_predict_and_passes_fused_equal_unfused_bit_for_bit(spec):
    fused, froot, finputs, plain, proot, pinputs = twins(spec)
    data = data_for(finputs, 37, spec["seed"] + 1)
    assert np.array_equal(fused.predict(data, finputs), plain.predict(data, pinputs))
    # Any node as the output, a layer's output or inside a layer.
    k = spec["seed"] % len(fused.nodes)
    assert np.array_equal(fused.predict(data, finputs, output=fused.nodes[k]),
                          plain.predict(data, pinputs, output=plain.nodes[k]))
    for tape in (fused, plain):
        for node, value in zip(tape.nodes, data_for(tape.nodes, 1, 3)[0]):
            if node.op == "leaf" and not node.Flag:
                node.value = value
        tape.forward()
        tape.backward()
    assert state(froot) == state(proot)


def test_an_mlp_is_fused_layer_by_layer():
    x, y = [ourdl.Node() for _ in range(13)], ourdl.Node()
    net = nn.MLP([13, 16, 16, 1], bias=False, seed=0)
    tape = ourdl.compile(ourdl.MSENode(net(x)[0], y))
    assert tape.kernels[:3] == [
        "dense 13 -> 16, tanh (624 nodes from 1 to 680)",
        "dense 16 -> 16, tanh (768 nodes from 52 to 1448)",
        "dense 16 -> 1, linear (47 nodes from 685 to 1451)",
    ]
    assert tape.kernels[3] == f"general passes: {len(tape) - 624 - 768 - 47} nodes, one by one"
    assert ourdl.compile(tape.root, fuse=False).kernels == [
        f"general passes: {len(tape)} nodes, one by one"]


@pytest.mark.parametrize("deviation, fused_layers", [
    (None, 3), ("shared weight", 2), ("extra edge from an input", 2), ("tree of sums", 2),
    ("extra edge from an output", 2), ("second loss term", 3),
])
def test_deviations_fall_back_where_they_are_and_the_rest_stays_fused(deviation, fused_layers):
    spec = dict(sizes=[5, 6, 6, 2], act="tanh", bias=True, by_nn=False, swap_mul=False,
                swap_add=False, deviation=deviation, seed=3)
    root, inputs = network(spec)
    tape = ourdl.compile(root)
    assert len(tape.layers(inputs)) == fused_layers, tape.kernels


def test_the_tutorials_model_is_the_one_unit_case():
    x, w = [ourdl.Node() for _ in range(13)], [ourdl.Node(Flag=1) for _ in range(13)]
    total = ourdl.MulNode(x[0], w[0])
    for i in range(1, 13):
        total = ourdl.AddNode(total, ourdl.MulNode(x[i], w[i]))
    tape = ourdl.compile(ourdl.MSENode(total, ourdl.Node()))
    assert tape.kernels[0] == "dense 13 -> 1, linear (38 nodes from 1 to 50)"


def test_an_mlp_epoch_equals_the_reference_loop_bit_for_bit():
    """13-16-16-1 tanh, no biases: Tape.fit against the tutorial's loop on ourdl.reference nodes."""
    x, y = [ourdl.Node() for _ in range(13)], ourdl.Node()
    net = nn.MLP([13, 16, 16, 1], bias=False, seed=0)
    root = ourdl.MSENode(net(x)[0], y)
    copy = mirror(root, ref)
    data = np.random.default_rng(5).random((2000, 14))
    tape = ourdl.compile(root)
    assert len(tape.layers(x + [y])) == 3
    tape.fit(data, x + [y])
    rx, ry, rroot = [copy[id(n)] for n in x], copy[id(y)], copy[id(root)]
    for row in data:
        for node, value in zip(rx, row):
            node.value = value
        ry.value = row[-1]
        rroot.forward()
        rroot.backward()
    for layer in net.layers:
        for row in layer.W:
            for w in row:
                assert bits(w.value) == bits(copy[id(w)].value)
    assert [bits(n.value) for n in ourdl.topological_order(root)] == \
        [bits(n.value) for n in ref.topological_order(rroot)]
    assert [bits(n.grad) for n in ourdl.topological_order(root)] == \
        [bits(n.grad) for n in ref.topological_order(rroot)]


def mlp_twins(adjust):
    """Two 4-8-8-1 tanh MLPs with biases (the same weights), each adjusted by adjust(nodes of
    its layers' weights and biases), then compiled fused and unfused."""
    tapes = []
    for fuse in (True, False):
        x, y = [ourdl.Node() for _ in range(4)], ourdl.Node()
        net = nn.MLP([4, 8, 8, 1], activation="tanh", seed=7, lr=0.01)
        root = ourdl.MSENode(net(x)[0], y)
        adjust([w for layer in net.layers for row in layer.W for w in row] +
               [b for layer in net.layers for b in layer.b])
        tapes.append((ourdl.compile(root, fuse=fuse), root, x + [y]))
    return tapes


def as_built(params):
    pass  # every weight's lr 0.01: one lr for the whole layer


def spread_lrs(params):
    for k, p in enumerate(params):
        p.lr = 0.01 * (1 + k % 3)


def zeros_of_both_signs(params):
    for k, p in enumerate(params[::3]):
        p.value, p.lr = -0.0, (0.0 if k % 2 else -0.0)


def weight_near_the_largest_double(params):
    params[40].value = 1e301  # its unit saturates; the update stays finite, the bound cannot


def lr_near_the_largest_double(params):
    params[-1].lr = 1.7e308  # the output's bias overflows on the first row: taken back


@pytest.mark.parametrize("adjust, diverges", [
    (as_built, False), (spread_lrs, False), (zeros_of_both_signs, False),
    (weight_near_the_largest_double, False),
    (lr_near_the_largest_double, True)])
def test_a_rows_update_in_place_or_checked_aside_changes_no_bit(adjust, diverges):
    """A layer's update that bounds prove finite is made in place (one lr for all weights, or
    each its own); any other is made aside and checked, so that it can be taken back. Which
    one a row takes changes nothing: fused and unfused end bit for bit equal."""
    (fused, froot, finputs), (plain, proot, pinputs) = mlp_twins(adjust)
    data = np.random.default_rng(4).normal(0.0, 1.0, size=(50, 5))
    if diverges:
        for tape, inputs in ((plain, pinputs), (fused, finputs)):
            with pytest.raises(FloatingPointError, match="row 0 of data: a parameter became"):
                tape.fit(data, inputs, epochs=3)
    else:
        fused_history = fused.fit(data, finputs, epochs=3)
        plain_history = plain.fit(data, pinputs, epochs=3)
        assert [bits(h.loss) for h in fused_history] == [bits(h.loss) for h in plain_history]
    assert state(froot) == state(proot)


def frozen_by_lr_zero():
    """One input to two units whose weights have lr 0: with x near 1e160 each weight's
    gradient d*x overflows while the loss (about 1e300) stays finite, and 0 * inf is nan."""
    x, ys = ourdl.Node(), [ourdl.Node(), ourdl.Node()]
    W = [ourdl.Node(Value=1.0, Flag=1, lr=0.0) for _ in range(2)]
    outs = [ourdl.MulNode(x, w) for w in W]
    root = ourdl.AddNode(ourdl.MSENode(outs[0], ys[0]), ourdl.MSENode(outs[1], ys[1]))
    return root, [x] + ys, W, np.array([[1e160, 1e160 - 1e150, 1e160 - 1e150]] * 3)


def a_tiny_lr_under_relu():
    """A relu layer with lr 1e-300 under weights of 1e200: on the first row its gradient
    overflows to inf and the update to -inf, while relu's 0 keeps every later loss finite."""
    x, y = ourdl.Node(), ourdl.Node()
    l1 = nn.Linear(1, 2, bias=False, activation="relu", lr=1e-300)
    l2 = nn.Linear(2, 1, bias=False, lr=0.01)
    for w in l1.W[0]:
        w.value = 1e-200
    for row in l2.W:
        row[0].value = 1e200
    data = np.zeros((70_000, 2))
    data[:, 0], data[0, 0] = 1.0, 1e200
    return ourdl.MAENode(l2(l1([x]))[0], y), [x, y], l1.W[0], data


@pytest.mark.parametrize("build", [frozen_by_lr_zero, a_tiny_lr_under_relu])
def test_a_gradient_that_overflows_under_a_tiny_lr_is_caught_where_it_happens(build):
    """A bound on lr*|d|*|x| alone would let d*x overflow under a tiny lr: the update is
    checked, taken back at its own row, fused or not."""
    errors, left = [], []
    for fuse in (True, False):
        root, inputs, W, data = build()
        with pytest.raises(FloatingPointError) as error:
            ourdl.compile(root, fuse=fuse).fit(data, inputs)
        errors.append(str(error.value))
        left.append([bits(w.value) for w in W])
    assert "at row 0 of data: a parameter became nan or inf" in errors[0]
    assert errors[0] == errors[1] and left[0] == left[1]


def test_a_row_made_aside_among_rows_made_in_place_changes_no_bit():
    """Row 20 holds 1e301 in input 0, whose first-layer weights are 0 and stay so (lr 0):
    its gradient there is too large for the bound, so that row's updates are made aside
    (which leaves the layers' transposed weights stale), and the rows after it in place
    again. Fused and unfused end bit for bit equal."""
    def zero_weights_of_input_0(params):
        for w in params[:8]:
            w.value, w.lr = 0.0, 0.0
    (fused, froot, finputs), (plain, proot, pinputs) = mlp_twins(zero_weights_of_input_0)
    data = np.random.default_rng(6).normal(0.0, 1.0, size=(60, 5))
    data[20, 0] = 1e301
    fused_history = fused.fit(data, finputs, epochs=2)
    plain_history = plain.fit(data, pinputs, epochs=2)
    assert [bits(h.loss) for h in fused_history] == [bits(h.loss) for h in plain_history]
    assert state(froot) == state(proot)
