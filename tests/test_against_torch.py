"""The image layers and the classification losses give PyTorch's values and gradients.

Each test builds the same computation in ourdl (nodes, compiled to a tape) and in PyTorch
(float64), then compares the values and the gradients with respect to every input and weight
to 1e-12. The sums are taken in another order, so the last bits may differ; nothing more.
"""
import numpy as np
import pytest

import ourdl
from ourdl import AddNode, LogLossNode, MulNode, Node, nn

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOLERANCE = dict(rtol=1e-12, atol=1e-12)


def image_of(values):
    """[channel][row][column] nodes from an array of shape (C, H, W). A node's gradient starts
    at 0 here, as a tensor's does in PyTorch: pixels that no output reads (a stride that stops
    short of the last row) are not in the graph, and keep it."""
    image = [[[Node(Value=float(v)) for v in row] for row in channel] for channel in values]
    for x in nn.flatten(image):
        x.grad = 0.0
    return image


def grads_of(image):
    return np.array([[[x.grad for x in row] for row in channel] for channel in image])


def weighted_sum(outputs, weights):
    """sum_k weights[k] * outputs[k] as nodes: a scalar loss whose gradient with respect to
    each output is its weight, so every output's gradient is checked, not only their sum."""
    total = None
    for out, w in zip(outputs, weights):
        term = MulNode(out, Node(Value=float(w)))
        total = term if total is None else AddNode(total, term)
    return total


def run(loss):
    """Forward and backward on a tape, without updating anything: the loss's value."""
    tape = ourdl.compile(loss)
    value = tape.forward()
    tape.backward(update=False)
    return value


@pytest.mark.parametrize("channels, out, kernel, stride, padding, size", [
    (1, 1, 1, 1, 0, (4, 4)), (1, 3, 3, 1, 1, (5, 7)), (2, 2, 2, 2, 0, (7, 6)),
    (3, 4, 3, 2, 1, (7, 5)), (4, 2, 4, 1, 1, (6, 6)), (2, 3, 3, 1, 2, (3, 4)),
])
def test_conv2d_matches_torch_conv2d(channels, out, kernel, stride, padding, size):
    rng = np.random.default_rng(channels * 100 + kernel * 10 + stride)
    x = rng.normal(size=(channels, *size))
    conv = nn.Conv2d(channels, out, kernel, stride=stride, padding=padding, seed=1)
    for b in conv.b:
        b.value = rng.normal()
    image = image_of(x)
    result = conv(image)
    values_out = [node for plane in result for line in plane for node in line]
    coefficients = rng.normal(size=len(values_out))
    run(weighted_sum(values_out, coefficients))

    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(conv.weights, requires_grad=True)
    tb = torch.tensor(conv.biases, requires_grad=True)
    expected = F.conv2d(tx[None], tw, tb, stride=stride, padding=padding)[0]
    (expected.flatten() * torch.tensor(coefficients)).sum().backward()

    got = np.array([node.value for node in values_out]).reshape(expected.shape)
    np.testing.assert_allclose(got, expected.detach().numpy(), **TOLERANCE)
    np.testing.assert_allclose(grads_of(image), tx.grad.numpy(), **TOLERANCE)
    weight_grads = np.array([w.grad for w in conv.parameters()[:tw.numel()]])
    np.testing.assert_allclose(weight_grads.reshape(tw.shape), tw.grad.numpy(), **TOLERANCE)
    np.testing.assert_allclose([b.grad for b in conv.b], tb.grad.numpy(), **TOLERANCE)


@pytest.mark.parametrize("kernel, stride, size", [(2, None, (6, 6)), (3, 1, (5, 7)),
                                                   (2, 1, (4, 5)), (3, 2, (7, 7))])
def test_max_pool2d_matches_torch_max_pool2d(kernel, stride, size):
    x = np.random.default_rng(kernel * 10 + (stride or 0)).normal(size=(2, *size))
    image = image_of(x)
    pooled = nn.MaxPool2d(kernel, stride=stride)(image)
    outputs = nn.flatten(pooled)
    coefficients = np.random.default_rng(7).normal(size=len(outputs))
    run(weighted_sum(outputs, coefficients))

    tx = torch.tensor(x, requires_grad=True)
    expected = F.max_pool2d(tx[None], kernel, stride=stride)[0]
    (expected.flatten() * torch.tensor(coefficients)).sum().backward()

    got = np.array([node.value for node in outputs]).reshape(expected.shape)
    assert got.tolist() == expected.detach().numpy().tolist()  # a maximum is exact
    np.testing.assert_allclose(grads_of(image), tx.grad.numpy(), **TOLERANCE)


@pytest.mark.parametrize("scale", [1.0, 30.0, 1000.0])
@pytest.mark.parametrize("classes", [2, 3, 10])
def test_cross_entropy_matches_torch_cross_entropy(classes, scale):
    rng = np.random.default_rng(classes)
    for _ in range(5):
        z = rng.normal(size=classes) * scale
        target = rng.dirichlet(np.ones(classes))  # soft labels; one-hot is a special case
        logits = [Node(Value=float(v)) for v in z]
        loss = run(nn.cross_entropy(logits, [Node(Value=float(t)) for t in target]))

        tz = torch.tensor(z, requires_grad=True)
        expected = F.cross_entropy(tz[None], torch.tensor(target)[None])
        expected.backward()
        np.testing.assert_allclose(loss, expected.item(), rtol=1e-12, atol=1e-12 * scale)
        np.testing.assert_allclose([n.grad for n in logits], tz.grad.numpy(), **TOLERANCE)


def test_log_loss_node_matches_torch_binary_cross_entropy_with_logits():
    rng = np.random.default_rng(0)
    logits = np.concatenate([rng.normal(size=40) * 5, [0.0, 1e-9, 40.0, -40.0, 1000.0, -1000.0]])
    targets = np.concatenate([rng.uniform(size=40), [0.0, 1.0, 1.0, 0.0, 0.3, 1.0]])
    for z, t in zip(logits, targets):
        logit = Node(Value=float(z))
        loss = run(LogLossNode(logit, Node(Value=float(t))))

        tz = torch.tensor(z, requires_grad=True)
        expected = F.binary_cross_entropy_with_logits(tz, torch.tensor(t))
        expected.backward()
        assert np.isfinite(loss)
        np.testing.assert_allclose(loss, expected.item(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(logit.grad, tz.grad.item(), rtol=1e-12, atol=1e-12)
