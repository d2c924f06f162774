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


# ----------------------------------------------------------------------------- images

def image_of(values):
    """[channel][row][column] nodes from an array of shape (C, H, W)."""
    return [[[Node(Value=float(v)) for v in row] for row in channel] for channel in values]


def values_of(image):
    return np.array([[[x.forward() for x in row] for row in channel] for channel in image])


def conv_by_hand(x, w, b, stride, pad):
    """The chain Conv2d wires, in its order: over (channel, kernel row, kernel column), the
    padding's terms left out, then the bias."""
    C, H, W = x.shape
    O, _, k, _ = w.shape
    rows, cols = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    out = np.zeros((O, rows, cols))
    for o in range(O):
        for i in range(rows):
            for j in range(cols):
                total = None
                for c in range(C):
                    for r in range(k):
                        for s in range(k):
                            y, z = i * stride + r - pad, j * stride + s - pad
                            if 0 <= y < H and 0 <= z < W:
                                term = x[c, y, z] * w[o, c, r, s]
                                total = term if total is None else total + term
                out[o, i, j] = (0.0 if total is None else total) + (b[o] if len(b) else 0.0)
    return out


@pytest.mark.parametrize("stride, padding, bias", [(1, 0, True), (1, 1, False), (2, 1, True),
                                                    (3, 2, True)])
def test_conv2d_computes_the_chain_a_learner_wires_bit_for_bit(stride, padding, bias):
    x = np.random.default_rng(3).normal(size=(2, 6, 5))
    conv = nn.Conv2d(2, 3, 3, stride=stride, padding=padding, bias=bias, seed=1)
    for bias_node in conv.b:
        bias_node.value = 0.25
    got = values_of(conv(image_of(x)))
    expected = conv_by_hand(x, conv.weights, conv.biases, stride, padding)
    assert got.shape == expected.shape and got.tobytes() == expected.tobytes()
    assert conv.weights.shape == (3, 2, 3, 3) and len(conv.parameters()) == 54 + 3 * bias
    if padding == 0:  # cross-correlation, as numpy computes it in another order
        windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))
        numpy = np.einsum("chwrs,ocrs->ohw", windows[:, ::stride, ::stride], conv.weights)
        np.testing.assert_allclose(got, numpy + conv.biases[:, None, None], atol=1e-12)


def test_max_pooling_and_flatten():
    x = np.arange(2 * 4 * 6, dtype=float).reshape(2, 4, 6) % 7
    pooled = nn.MaxPool2d(2)(image_of(x))
    expected = x.reshape(2, 2, 2, 3, 2).max(axis=(2, 4))
    assert values_of(pooled).tolist() == expected.tolist()
    flat = nn.flatten(pooled)
    assert [n.forward() for n in flat] == expected.ravel().tolist()
    assert len(nn.MaxPool2d(3, stride=1)(image_of(x))[0]) == 2


def test_image_layers_refuse_what_is_not_an_image():
    conv = nn.Conv2d(1, 1, 3)
    with pytest.raises(ValueError, match="takes 1 channels, not 2"):
        conv(image_of(np.zeros((2, 4, 4))))
    with pytest.raises(ValueError, match="smaller than the 3x3 kernel"):
        conv(image_of(np.zeros((1, 2, 2))))
    with pytest.raises(ValueError, match=r"\[channel\]\[row\]\[column\]"):
        conv([[[Node(), Node()], [Node()]]])
    with pytest.raises(ValueError, match="padding must be at least 0, not -1"):
        nn.Conv2d(1, 1, 3, padding=-1)


def test_a_small_cnn_passes_gradcheck():
    rng = np.random.default_rng(5)
    image = image_of(rng.normal(size=(1, 5, 5)))
    conv = nn.Conv2d(1, 2, 3, padding=1, activation="tanh", seed=2)
    logits = nn.Linear(8, 3, seed=3)(nn.flatten(nn.MaxPool2d(2)(conv(image))))
    loss = nn.cross_entropy(logits, nodes([0.0, 1.0, 0.0]))
    error, _ = ourdl.gradcheck(loss)
    assert error < 1e-6


def test_a_cnn_learns_digits():
    """The classic first CNN: 8x8 handwritten digits (scikit-learn's), conv, pool, linear,
    cross-entropy, trained by Tape.fit on one column per pixel and one per class."""
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    keep = digits.target < 3  # three classes keep the test quick
    X, y = digits.images[keep][:240] / 16.0, digits.target[keep][:240]
    pixels = [[[Node(name=f"p{r}{c}") for c in range(8)] for r in range(8)]]
    targets = [Node(name=f"t{k}") for k in range(3)]
    features = nn.MaxPool2d(2)(nn.Conv2d(1, 4, 3, padding=1, activation="relu", seed=0)(pixels))
    logits = nn.Linear(64, 3, seed=1)(nn.flatten(features))
    tape = ourdl.compile(nn.cross_entropy(logits, targets))
    data = np.column_stack([X.reshape(len(X), 64), np.eye(3)[y]])
    train, test = data[:180], data[180:]
    history = tape.fit(train, nn.flatten(pixels) + targets, epochs=4, shuffle=True, seed=0,
                       optimizer=ourdl.optim.SGD(lr=0.05))
    scores = np.column_stack([tape.predict(test[:, :64], nn.flatten(pixels), output=z)
                              for z in logits])
    assert history[-1].loss < 0.5 * history[0].loss
    assert (scores.argmax(axis=1) == y[180:]).mean() > 0.9
