"""Fused convolutions change no bit: fused and unfused tapes, and the reference, agree exactly.

Random small CNNs (1-4 channels, kernels 1-4, strides 1-2, padding 0-1, odd image sizes,
one or two convolutions, every activation, with and without biases,
built by ``nn.Conv2d`` or wired by hand in either operand order) end in a softmax
cross-entropy head, with max-pooling by chains of MaxNodes (side by side or overlapping) or
by a tree of them. Deviations are mixed in (a convolution weight or an input pixel read
elsewhere too, an output read twice). Each network is trained and run twice, once with the
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

from helpers import fit_alike, mirror

ACTIVATIONS = [None, "tanh", "relu", "sigmoid"]
ACT_NODE = {"tanh": "TanhNode", "relu": "ReluNode", "sigmoid": "SigmoidNode"}
DEVIATIONS = [None, None, "weight read elsewhere", "pixel read elsewhere", "output read twice",
              "pooled feature read elsewhere"]


def bits(x):
    return struct.pack("<d", x)


def state(root):
    return [(type(n).__name__, bits(n.value), bits(n.grad), bits(n.Papa_grad), bits(n.Mama_grad))
            for n in ourdl.topological_order(root)]


def conv_by_hand(M, image, W, b, stride, pad, act, swap_mul, swap_add):
    """The chain nn.Conv2d wires, from M's nodes, with the operands of each product and
    each sum in either order."""
    C, H, Wd = len(image), len(image[0]), len(image[0][0])
    k = len(W[0][0])
    rows, cols = (H + 2 * pad - k) // stride + 1, (Wd + 2 * pad - k) // stride + 1
    out = []
    for o in range(len(W)):
        plane = []
        for i in range(rows):
            line = []
            for j in range(cols):
                total = None
                for c in range(C):
                    for r in range(k):
                        for s in range(k):
                            y, x = i * stride + r - pad, j * stride + s - pad
                            if 0 <= y < H and 0 <= x < Wd:
                                a, w = image[c][y][x], W[o][c][r][s]
                                term = M.MulNode(w, a) if swap_mul else M.MulNode(a, w)
                                total = term if total is None else (
                                    M.AddNode(term, total) if swap_add else M.AddNode(total, term))
                total = total if total is not None else M.Node(Value=0.0)
                if b:
                    total = M.AddNode(b[o], total) if swap_add else M.AddNode(total, b[o])
                line.append(getattr(M, ACT_NODE[act])(total) if act else total)
            plane.append(line)
        out.append(plane)
    return out


def conv(M, spec, image, n_out, k, stride, pad, act, rng, index):
    if spec["by_nn"] and M is ourdl:
        layer = nn.Conv2d(len(image), n_out, k, stride=stride, padding=pad, bias=spec["bias"],
                          activation=act, seed=spec["seed"] + index)
        for bias in layer.b:
            bias.value = float(rng.uniform(-0.5, 0.5))
        return layer(image), layer.parameters()
    W = [[[[M.Node(Value=float(rng.uniform(-0.8, 0.8)), Flag=1, lr=0.02) for _ in range(k)]
           for _ in range(k)] for _ in range(len(image))] for _ in range(n_out)]
    b = [M.Node(Value=float(rng.uniform(-0.5, 0.5)), Flag=1, lr=0.02)
         for _ in range(n_out)] if spec["bias"] else []
    params = [w for o in W for c in o for r in c for w in r] + b
    return conv_by_hand(M, image, W, b, stride, pad, act, spec["swap_mul"], spec["swap_add"]), params


def network(spec, M=ourdl):
    """(root, inputs) of the CNN that spec describes."""
    rng = np.random.default_rng(spec["seed"])
    C, H, W = spec["image"]
    pixels = [[[M.Node(name=f"p{c}.{y}.{x}") for x in range(W)] for y in range(H)]
              for c in range(C)]
    features, params = conv(M, spec, pixels, spec["out"], spec["kernel"], spec["stride"],
                            spec["padding"], spec["act"], rng, 0)
    if spec["second"] and len(features[0]) >= 2 and len(features[0][0]) >= 2:
        features, more = conv(M, spec, features, 2, 2, 1, 0, "tanh", rng, 1)
        params += more
    convolved = features
    if spec["pool"] and len(features[0]) >= 2 and len(features[0][0]) >= 2:
        if spec["pool"] == "tree":  # not a chain: the general passes run it
            features = [[[M.MaxNode(M.MaxNode(plane[i][j], plane[i][j + 1]),
                                    M.MaxNode(plane[i + 1][j], plane[i + 1][j + 1]))
                          for j in range(0, len(plane[0]) - 1, 2)]
                         for i in range(0, len(plane) - 1, 2)] for plane in features]
        else:  # chains of MaxNodes, side by side or overlapping
            features = nn.MaxPool2d(2, stride=1 if spec["pool"] == "overlapping" else None)(
                features)
    flat = [x for plane in features for line in plane for x in line]
    classes = 3
    logits = []
    for c in range(classes):
        total = None
        for x in flat:
            term = M.MulNode(x, M.Node(Value=float(rng.uniform(-0.5, 0.5)), Flag=1, lr=0.02))
            total = term if total is None else M.AddNode(total, term)
        logits.append(total)
    targets = [M.Node(name=f"t{c}") for c in range(classes)]
    shifted = [M.SubNode(z, logits[0]) for z in logits]
    total = M.ExpNode(shifted[0])
    for d in shifted[1:]:
        total = M.AddNode(total, M.ExpNode(d))
    log_total = M.LnNode(total)
    loss = M.MulNode(targets[0], M.SubNode(shifted[0], log_total))
    for t, d in zip(targets[1:], shifted[1:]):
        loss = M.AddNode(loss, M.MulNode(t, M.SubNode(d, log_total)))
    loss = M.NegNode(loss)
    deviation = spec["deviation"]
    if deviation == "weight read elsewhere":
        loss = M.AddNode(loss, M.MulNode(params[0], M.Node(Value=0.1)))
    elif deviation == "pixel read elsewhere":
        loss = M.AddNode(loss, M.MulNode(pixels[0][0][0], M.Node(Value=0.1, Flag=1)))
    elif deviation == "output read twice":
        loss = M.AddNode(loss, M.MulNode(flat[0], flat[-1]))
    elif deviation == "pooled feature read elsewhere":
        loss = M.AddNode(loss, M.MulNode(convolved[0][0][0], M.Node(Value=0.1)))
    in_graph = {id(node) for node in ourdl.topological_order(loss)} if M is ourdl else None
    inputs = [x for plane in pixels for line in plane for x in line
              if in_graph is None or id(x) in in_graph]  # a stride may skip some pixels
    return loss, inputs + targets


specs = st.fixed_dictionaries({
    "image": st.tuples(st.integers(1, 4), st.integers(3, 7), st.integers(3, 7)),
    "out": st.sampled_from([1, 2, 3, 4, 5, 8]),  # 4 and more: the terms run as runs
    "kernel": st.integers(1, 4),
    "stride": st.integers(1, 2),
    "padding": st.integers(0, 1),
    "act": st.sampled_from(ACTIVATIONS),
    "bias": st.booleans(),
    "by_nn": st.booleans(),
    "swap_mul": st.booleans(),
    "swap_add": st.booleans(),
    "second": st.booleans(),
    "pool": st.sampled_from([None, "tree", "chains", "overlapping"]),
    "deviation": st.sampled_from(DEVIATIONS),
    "seed": st.integers(0, 2**16),
}).filter(lambda s: s["kernel"] <= min(s["image"][1:]) + 2 * s["padding"])

settings.register_profile("conv fusion", max_examples=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def data_for(inputs, rows, seed):
    rng = np.random.default_rng(seed)
    data = rng.uniform(0.0, 1.0, size=(rows, len(inputs)))
    data[:, -3:] = np.eye(3)[rng.integers(0, 3, rows)]
    return data


def twins(spec):
    fused_root, fused_inputs = network(spec)
    plain_root, plain_inputs = network(spec)
    return (ourdl.compile(fused_root), fused_root, fused_inputs,
            ourdl.compile(plain_root, fuse=False), plain_root, plain_inputs)


def shared_layers(tape, inputs):
    return [layer for layer in tape.layers(inputs) if layer.kind == "shared"]


@settings(settings.get_profile("conv fusion"))
@given(spec=specs, batch_size=st.sampled_from([1, 1, 3]), shuffle=st.booleans())
def test_fit_fused_equals_unfused_bit_for_bit(spec, batch_size, shuffle):
    fused, froot, finputs, plain, proot, pinputs = twins(spec)
    data = data_for(finputs, 11, spec["seed"])
    fit_alike(fused, plain, data, finputs, pinputs, epochs=2, batch_size=batch_size,
              shuffle=shuffle, seed=1)
    assert state(froot) == state(proot)


@settings(settings.get_profile("conv fusion"))
@given(spec=specs)
def test_predict_and_passes_fused_equal_unfused_bit_for_bit(spec):
    fused, froot, finputs, plain, proot, pinputs = twins(spec)
    data = data_for(finputs, 13, spec["seed"] + 1)
    assert np.array_equal(fused.predict(data, finputs), plain.predict(data, pinputs))
    k = spec["seed"] % len(fused.nodes)  # any node as the output, inside a layer or not
    assert np.array_equal(fused.predict(data, finputs, output=fused.nodes[k]),
                          plain.predict(data, pinputs, output=plain.nodes[k]))
    for tape in (fused, plain):
        tape.forward()
        tape.backward()
    assert state(froot) == state(proot)


@pytest.mark.parametrize("seed", range(4))
def test_a_fused_cnn_epoch_equals_the_reference_loop_bit_for_bit(seed):
    spec = dict(image=(2, 5, 6), out=[3, 4, 5, 8][seed], kernel=3, stride=1, padding=1,
                act="relu", bias=True,
                by_nn=seed % 2 == 0, swap_mul=seed == 1, swap_add=seed == 3, second=seed >= 2,
                pool=["chains", "overlapping", "tree", "chains"][seed], deviation=None, seed=seed)
    root, inputs = network(spec)
    copy = mirror(root, ref)
    tape = ourdl.compile(root)
    assert shared_layers(tape, inputs), tape.kernels
    data = data_for(inputs, 30, seed)
    tape.fit(data, inputs)
    ref_inputs, ref_root = [copy[id(n)] for n in inputs], copy[id(root)]
    for row in data:  # the tutorial's loop
        for node, value in zip(ref_inputs, row):
            node.value = value
        ref_root.forward()
        ref_root.backward()
    assert state(root) == [(type(n).__name__, bits(n.value), bits(n.grad), bits(n.Papa_grad),
                            bits(n.Mama_grad)) for n in ref.topological_order(ref_root)]


def test_conv2d_and_max_pooling_run_as_kernels_and_deviations_fall_back():
    spec = dict(image=(1, 8, 8), out=8, kernel=3, stride=1, padding=1, act="relu", bias=True,
                by_nn=True, swap_mul=False, swap_add=False, second=False, pool="chains",
                deviation=None, seed=0)
    root, inputs = network(spec)
    kernels = ourdl.compile(root).kernels
    assert kernels[0].startswith("shared weights: 512 units of 7 terms over 64 inputs and "
                                 "72 weights + bias, relu"), kernels
    assert kernels[1].startswith("max-pooling: 128 windows of 4 over 512 inputs"), kernels
    root, inputs = network({**spec, "pool": "overlapping"})
    assert "max-pooling: 392 windows of 4 over 512 inputs" in " ".join(
        ourdl.compile(root).kernels)
    for deviation in ("weight read elsewhere", "pixel read elsewhere"):
        root, inputs = network({**spec, "deviation": deviation})
        assert not shared_layers(ourdl.compile(root), inputs)
    root, inputs = network({**spec, "deviation": "pooled feature read elsewhere"})
    layers = ourdl.compile(root).layers(inputs)  # the window that reads it alone falls back
    assert [layer.kind for layer in layers] == ["shared", "max", "dense"]
    assert len(layers[1].outputs) == 127
    root, inputs = network({**spec, "deviation": "output read twice"})
    assert shared_layers(ourdl.compile(root), inputs)  # an output may have many readers


def test_a_bias_that_is_also_a_weight_is_left_to_the_general_passes():
    def build():
        x, w = [ourdl.Node() for _ in range(4)], [ourdl.Node(Value=0.1 * k, Flag=1) for k in (1, 2)]
        outs = [ourdl.AddNode(ourdl.AddNode(ourdl.MulNode(x[j], w[0]), ourdl.MulNode(x[j + 1], w[1])),
                              w[0]) for j in range(3)]  # w[0] is also every unit's bias
        total = ourdl.AddNode(ourdl.AddNode(outs[0], outs[1]), outs[2])
        y = ourdl.Node()
        return ourdl.MSENode(total, y), x + [y]
    (fused_root, fused_inputs), (plain_root, plain_inputs) = build(), build()
    fused = ourdl.compile(fused_root)
    assert fused.kernels == ["general passes: 22 nodes, one by one"]
    data = np.random.default_rng(0).random((20, 5))
    fused.fit(data, fused_inputs)
    ourdl.compile(plain_root, fuse=False).fit(data, plain_inputs)
    assert state(fused_root) == state(plain_root)
