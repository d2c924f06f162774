"""Classification from nodes: ourdl.nn.softmax, log_softmax and cross_entropy (made of
MaxNode, ExpNode, LnNode and the rest), on their own and trained in a tape."""
import math
import struct

import numpy as np
import pytest

import ourdl
from ourdl import Node, nn


def bits(x):
    return struct.pack("<d", x)


def nodes(values, Flag=0):
    return [Node(Value=float(v), Flag=Flag) for v in values]


def numpy_log_softmax(z):
    z = np.asarray(z, dtype=float)
    shifted = z - z.max()
    return shifted - np.log(np.exp(shifted).sum())


@pytest.mark.parametrize("logits", [[1.0, 2.0, 3.0], [0.0], [-5.0, 5.0],
                                    [1000.0, -1000.0, 3.0], [-1000.0, -1000.0], [1e300, -1e300]])
def test_softmax_and_log_softmax_are_finite_and_right_for_any_logits(logits):
    probs = [p.forward() for p in nn.softmax(nodes(logits))]
    logs = [lp.forward() for lp in nn.log_softmax(nodes(logits))]
    expected = numpy_log_softmax(logits)
    assert all(math.isfinite(v) for v in probs + logs)
    np.testing.assert_allclose(logs, expected, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(probs, np.exp(expected), rtol=1e-15, atol=1e-300)
    assert abs(sum(probs) - 1.0) <= 1e-15


@pytest.mark.parametrize("targets", [[0.0, 1.0, 0.0], [0.2, 0.5, 0.3], [1.0, 0.0, 0.0]])
@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_cross_entropy_and_its_gradient_softmax_minus_target(targets, scale):
    values = np.array([0.3, -1.2, 2.0]) * scale
    z = nodes(values, Flag=1)
    loss = nn.cross_entropy(z, nodes(targets))
    value = loss.forward()
    loss.backward(update=False)
    log_p = numpy_log_softmax(values)
    assert math.isfinite(value)
    assert abs(value - -(np.array(targets) @ log_p)) <= 1e-12 * max(1.0, abs(value))
    np.testing.assert_allclose([n.grad for n in z], np.exp(log_p) - targets, atol=1e-12)


def test_cross_entropy_passes_gradcheck():
    z = nodes([0.4, -0.7, 1.1, 0.05], Flag=1)
    error, _ = ourdl.gradcheck(nn.cross_entropy(z, nodes([0.1, 0.6, 0.2, 0.1])))
    assert error < 1e-7


def test_bad_logits_and_targets_are_refused():
    with pytest.raises(TypeError, match="logits must be a non-empty list of Nodes"):
        nn.softmax([])
    with pytest.raises(TypeError, match="logits must be a list"):
        nn.softmax({Node()})
    with pytest.raises(ValueError, match="targets must be a list of 2 Nodes"):
        nn.cross_entropy(nodes([1.0, 2.0]), nodes([1.0]))


def three_blobs(n, seed=0):
    """Points around three centres, with one-hot labels: a first classification problem."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 3, n)
    centres = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    points = centres[label] + rng.normal(0.0, 0.6, (n, 2))
    return np.column_stack([points, np.eye(3)[label]]), label


def classifier(seed=0):
    x, t = [Node(name=f"x{i}") for i in range(2)], [Node(name=f"t{k}") for k in range(3)]
    logits = nn.MLP([2, 8, 3], activation="tanh", seed=seed)(x)
    return x, t, logits, nn.cross_entropy(logits, t)


def test_an_mlp_learns_three_classes_and_fused_equals_unfused_bit_for_bit():
    data, label = three_blobs(600)
    results = []
    for fuse in (True, False):
        x, t, logits, loss = classifier()
        tape = ourdl.compile(loss, fuse=fuse)
        history = tape.fit(data, x + t, epochs=5, shuffle=True, seed=1,
                           optimizer=ourdl.optim.SGD(lr=0.05))
        scores = np.column_stack([tape.predict(data[:, :2], x, output=z) for z in logits])
        results.append(([bits(h.loss) for h in history], scores.tobytes()))
        accuracy = (scores.argmax(axis=1) == label).mean()
        assert history[-1].loss < 0.5 * history[0].loss and accuracy > 0.9, (fuse, accuracy)
    assert results[0] == results[1]
