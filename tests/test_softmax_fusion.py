"""A fused softmax cross-entropy head changes no bit: fused, unfused and the reference agree.

``nn.cross_entropy`` (and the same graph wired by hand) is found by the planner and run as
one kernel; random classifiers (2-12 classes, logits straight from data or from a dense
layer, one-hot or soft targets, huge logits, ties) are trained and run twice, fused and
unfused, and every node must end bit for bit equal. Where something else reads a node of the
head, the head runs in the general passes.
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


def bits(x):
    return struct.pack("<d", x)


def state(root):
    return [(type(n).__name__, bits(n.value), bits(n.grad), bits(n.Papa_grad), bits(n.Mama_grad))
            for n in ourdl.topological_order(root)]


def classifier(spec):
    """(root, inputs) of a head over K logits: straight from data, or a dense layer's."""
    k, hidden = spec["classes"], spec["dense"]
    x = [ourdl.Node(name=f"x{i}") for i in range(3 if hidden else k)]
    logits = nn.Linear(3, k, seed=spec["seed"])(x) if hidden else x
    targets = [ourdl.Node(name=f"t{c}") for c in range(k)]
    root = nn.cross_entropy(logits, targets)
    if spec["deviation"] == "logit read elsewhere":
        root = ourdl.AddNode(root, ourdl.MulNode(logits[0], ourdl.Node(Value=0.5)))
    elif spec["deviation"] == "loss read twice":
        root = ourdl.AddNode(root, ourdl.MulNode(root, ourdl.Node(Value=0.25)))
    return root, x + targets


def data_for(spec, n_rows, seed):
    rng = np.random.default_rng(seed)
    k = spec["classes"]
    features = rng.normal(scale=spec["scale"], size=(n_rows, 3 if spec["dense"] else k))
    if spec["ties"]:
        features = np.round(features)  # equal logits: MaxNode's ties go to Papa
    targets = (np.eye(k)[rng.integers(0, k, n_rows)] if spec["one_hot"]
               else rng.dirichlet(np.ones(k), n_rows))
    return np.column_stack([features, targets])


specs = st.fixed_dictionaries({
    "classes": st.integers(2, 12),
    "dense": st.booleans(),
    "scale": st.sampled_from([1.0, 30.0, 1000.0]),
    "ties": st.booleans(),
    "one_hot": st.booleans(),
    "deviation": st.sampled_from([None, None, "logit read elsewhere", "loss read twice"]),
    "seed": st.integers(0, 2**16),
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs, batch_size=st.sampled_from([1, 1, 3]), shuffle=st.booleans())
def test_fit_predict_and_passes_fused_equal_unfused_bit_for_bit(spec, batch_size, shuffle):
    (froot, finputs), (proot, pinputs) = classifier(spec), classifier(spec)
    fused, plain = ourdl.compile(froot), ourdl.compile(proot, fuse=False)
    data = data_for(spec, 17, spec["seed"])
    fit_alike(fused, plain, data, finputs, pinputs, epochs=2, batch_size=batch_size,
              shuffle=shuffle, seed=1)
    assert state(froot) == state(proot)
    more = data_for(spec, 9, spec["seed"] + 1)
    assert fused.predict(more, finputs).tobytes() == plain.predict(more, pinputs).tobytes()
    for tape in (fused, plain):
        tape.forward()
        tape.backward()
    assert state(froot) == state(proot)


def head_kinds(root, inputs):
    return [layer.kind for layer in ourdl.compile(root).layers(inputs)]


def test_the_head_of_cross_entropy_is_one_kernel_and_falls_back_where_read_elsewhere():
    spec = dict(classes=10, dense=True, scale=1.0, ties=False, one_hot=True, deviation=None,
                seed=0)
    assert head_kinds(*classifier(spec)) == ["dense", "softmax"]
    root, inputs = classifier(spec)
    described = [layer.describe() for layer in ourdl.compile(root).layers(inputs)]
    assert described[1].startswith("softmax cross-entropy over 10 classes (69 nodes")
    assert head_kinds(*classifier({**spec, "deviation": "logit read elsewhere"})) == ["dense"]
    assert "softmax" in head_kinds(*classifier({**spec, "deviation": "loss read twice"}))


@pytest.mark.parametrize("seed", range(3))
def test_a_fused_head_trains_as_the_tutorials_loop_on_reference_nodes(seed):
    spec = dict(classes=4, dense=True, scale=3.0, ties=seed == 2, one_hot=seed != 1,
                deviation=None, seed=seed)
    root, inputs = classifier(spec)
    copy = mirror(root, ref)
    tape = ourdl.compile(root)
    assert "softmax" in [layer.kind for layer in tape.layers(inputs)]
    data = data_for(spec, 25, seed)
    tape.fit(data, inputs)
    ref_inputs, ref_root = [copy[id(n)] for n in inputs], copy[id(root)]
    for row in data:
        for node, value in zip(ref_inputs, row):
            node.value = value
        ref_root.forward()
        ref_root.backward()
    assert state(root) == [(type(n).__name__, bits(n.value), bits(n.grad), bits(n.Papa_grad),
                            bits(n.Mama_grad)) for n in ref.topological_order(ref_root)]
