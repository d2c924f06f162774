"""Layers made of nodes: ``Linear`` and ``MLP``; ``Conv2d``, ``MaxPool2d`` and ``flatten`` for
images; ``softmax``, ``log_softmax`` and ``cross_entropy`` for classifiers.

A layer is only a convenient way to wire the tutorial's nodes. Calling it on a list of nodes
builds, for each output unit, exactly the graph a learner would wire by hand::

    out_j = act(((x_0 * W[0][j] + x_1 * W[1][j]) + ... + x_{n-1} * W[n-1][j]) + b[j])

a chain of ``AddNode``s over ``MulNode(Papa=x_i, Mama=W[i][j])`` terms in input order, then
``AddNode(Papa=sum, Mama=b[j])`` for the bias, then the activation node. The outputs are
ordinary nodes: losses, ``Tape.fit``, ``predict`` and everything else in ourdl work on them.
``ourdl.compile`` recognizes this shape (however it was built) and runs each layer as one
fused kernel; see ``Tape.kernels``.

Weights are laid out ``[input][output]``, as numpy's ``X @ W`` and PyTorch's
``linear.weight.T``.

Initialization, from ``numpy.random.default_rng(seed)``:

- ``tanh``, ``sigmoid`` and no activation: Xavier/Glorot uniform,
  ``U(-a, a)`` with ``a = sqrt(6 / (n_in + n_out))``;
- ``relu``: He normal, ``N(0, 2 / n_in)``;
- biases start at 0.
"""
import math

import numpy as np

from ourdl import _checks
from ourdl._core import (AddNode, DivNode, ExpNode, LnNode, MaxNode, MulNode, NegNode, Node,
                         ReluNode, SigmoidNode, SubNode, TanhNode)

ACTIVATIONS = {None: None, "tanh": TanhNode, "relu": ReluNode, "sigmoid": SigmoidNode}

__all__ = ["Linear", "MLP", "Conv2d", "MaxPool2d", "flatten", "softmax", "log_softmax",
           "cross_entropy"]


def _activation(activation):
    return ACTIVATIONS[_checks.choice("activation", activation, ACTIVATIONS)]


def _initial_weights(rng, n_in, n_out, activation):
    if activation == "relu":
        return rng.normal(0.0, math.sqrt(2.0 / n_in), size=(n_in, n_out))
    limit = math.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-limit, limit, size=(n_in, n_out))


class _Layer:
    """What every layer shares: in a notebook it shows a picture of what it wires."""

    def _repr_mimebundle_(self, include=None, exclude=None):
        from ourdl import inspect  # inspect builds on this module: import it when first shown
        return inspect.mimebundle(self, include, exclude)


class Linear(_Layer):
    """``n_in`` inputs to ``n_out`` outputs: ``act(x @ W + b)``, wired from nodes.

    ``Linear(n_in, n_out, bias=True, activation=None, seed=None, lr=0.01, name="")``. ``seed``
    may be an int or a ``numpy.random.Generator`` (``MLP`` passes one to each of its layers).
    ``W[i][j]`` and ``b[j]`` are trainable nodes (``Flag=1``) with learning rate ``lr``,
    named ``"W[i][j]"`` and ``"b[j]"`` (after ``name.`` if a name is given; ``MLP`` names its
    layers ``layer0``, ``layer1``, ..., so ``ourdl.named`` reaches every weight).
    """

    def __init__(self, n_in, n_out, bias=True, activation=None, seed=None, lr=0.01, name=""):
        self.n_in, self.n_out = _checks.count("n_in", n_in), _checks.count("n_out", n_out)
        prefix = f"{name}." if name else ""
        self.activation = activation
        self._act = _activation(activation)
        rng = np.random.default_rng(seed)
        start = _initial_weights(rng, self.n_in, self.n_out, activation)
        self.W = [[Node(Value=float(start[i, j]), Flag=1, lr=lr, name=f"{prefix}W[{i}][{j}]")
                   for j in range(self.n_out)] for i in range(self.n_in)]
        self.b = [Node(Value=0.0, Flag=1, lr=lr, name=f"{prefix}b[{j}]")
                  for j in range(self.n_out)] if bias else []

    def __call__(self, inputs):
        """The output nodes of this layer on ``inputs`` (n_in nodes or numbers)."""
        inputs = [x if isinstance(x, Node) else Node(Value=x) for x in _checks.ordered("inputs", inputs, "nodes")]
        if len(inputs) != self.n_in:
            raise ValueError(f"this layer takes {self.n_in} inputs, not {len(inputs)}")
        outputs = []
        for j in range(self.n_out):
            total = MulNode(inputs[0], self.W[0][j])
            for i in range(1, self.n_in):
                total = AddNode(total, MulNode(inputs[i], self.W[i][j]))
            if self.b:
                total = AddNode(total, self.b[j])
            outputs.append(self._act(total) if self._act is not None else total)
        return outputs

    def parameters(self):
        """The trainable nodes: every weight (input by input), then the biases."""
        return [w for row in self.W for w in row] + list(self.b)

    @property
    def weights(self):
        """The weights' values as an array of shape (n_in, n_out)."""
        return np.array([[w.value for w in row] for row in self.W])

    @property
    def biases(self):
        """The biases' values as an array of shape (n_out,) (empty without a bias)."""
        return np.array([b.value for b in self.b])

    def __repr__(self):
        return (f"Linear({self.n_in}, {self.n_out}, bias={bool(self.b)}, "
                f"activation={self.activation!r})")


class MLP(_Layer):
    """A stack of ``Linear`` layers: ``sizes[0]`` inputs, ``sizes[-1]`` outputs.

    ``MLP(sizes, activation="tanh", bias=True, seed=None, lr=0.01)``: every layer but the
    last applies ``activation``; the last is linear, as for regression.
    """

    def __init__(self, sizes, activation="tanh", bias=True, seed=None, lr=0.01):
        sizes = _checks.sizes("sizes", sizes)
        if len(sizes) < 2:
            raise ValueError(f"sizes needs at least 2 entries (inputs and outputs), not {sizes}")
        _activation(activation)
        rng = np.random.default_rng(seed)
        last = len(sizes) - 2
        self.layers = [Linear(n_in, n_out, bias=bias, seed=rng, lr=lr, name=f"layer{k}",
                              activation=activation if k < last else None)
                       for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:]))]
        self.sizes = sizes
        self.activation = activation

    def __call__(self, inputs):
        """The output nodes of the network on ``inputs``."""
        for layer in self.layers:
            inputs = layer(inputs)
        return inputs

    def parameters(self):
        """Every layer's trainable nodes, first layer first."""
        return [p for layer in self.layers for p in layer.parameters()]

    @property
    def weights(self):
        """Each layer's weight values, arrays of shape (n_in, n_out)."""
        return [layer.weights for layer in self.layers]

    @property
    def biases(self):
        """Each layer's bias values."""
        return [layer.biases for layer in self.layers]

    def __repr__(self):
        return f"MLP({self.sizes}, activation={self.activation!r}, bias={bool(self.layers[0].b)})"


# ----------------------------------------------------------------------------- images
# An image is nested lists of nodes, [channel][row][column].

def _image(image, name="image"):
    """image as [channel][row][column] lists of Nodes, every channel the same size."""
    channels = [[_checks.ordered(name, row, "nodes") for row in _checks.ordered(name, channel, "rows")]
                for channel in _checks.ordered(name, image, "channels")]
    shape = (len(channels), len(channels[0]) if channels else 0,
             len(channels[0][0]) if channels and channels[0] else 0)
    if 0 in shape or any(len(ch) != shape[1] or any(len(row) != shape[2] for row in ch)
                         for ch in channels):
        raise ValueError(f"{name} must be [channel][row][column] lists of nodes, every channel "
                         f"with the same rows and every row with the same columns")
    if not all(isinstance(x, Node) for ch in channels for row in ch for x in row):
        raise TypeError(f"{name} must hold Nodes")
    return channels, shape


class Conv2d(_Layer):
    """A 2-D convolution (cross-correlation, as PyTorch's) wired from nodes.

    ``Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
    activation=None, seed=None, lr=0.01, name="")``. Called on an image
    ``[channel][row][column]`` of nodes, it returns the same layout. Each output is the
    chain a learner would wire: ``MulNode(input, weight)`` terms summed left to right over
    (input channel, kernel row, kernel column), then ``+ bias``, then the activation. One
    weight node per (out, in, kernel row, kernel column), shared by every position.
    ``padding`` adds that many rows and columns of zeros around the image; their products
    would be zero, so they are left out of the sums (the gradients are the same).
    Initialization as ``Linear``'s, with ``in_channels * kernel_size**2`` inputs a unit.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 activation=None, seed=None, lr=0.01, name=""):
        self.in_channels = _checks.count("in_channels", in_channels)
        self.out_channels = _checks.count("out_channels", out_channels)
        self.kernel_size = _checks.count("kernel_size", kernel_size)
        self.stride = _checks.count("stride", stride)
        self.padding = _checks.count("padding", padding, least=0)
        self.activation, self._act = activation, _activation(activation)
        k, prefix = self.kernel_size, f"{name}." if name else ""
        fan_in = self.in_channels * k * k
        start = _initial_weights(np.random.default_rng(seed), fan_in, self.out_channels,
                                 activation).T.reshape(self.out_channels, self.in_channels, k, k)
        self.W = [[[[Node(Value=float(start[o, c, r, s]), Flag=1, lr=lr,
                          name=f"{prefix}W[{o}][{c}][{r}][{s}]") for s in range(k)]
                    for r in range(k)] for c in range(self.in_channels)]
                  for o in range(self.out_channels)]
        self.b = [Node(Value=0.0, Flag=1, lr=lr, name=f"{prefix}b[{o}]")
                  for o in range(self.out_channels)] if bias else []

    def __call__(self, image):
        """The output image, [out_channels][rows][columns] of nodes."""
        channels, (n_channels, height, width) = _image(image)
        if n_channels != self.in_channels:
            raise ValueError(f"this layer takes {self.in_channels} channels, not {n_channels}")
        k, stride, pad = self.kernel_size, self.stride, self.padding
        rows, columns = (height + 2 * pad - k) // stride + 1, (width + 2 * pad - k) // stride + 1
        if rows < 1 or columns < 1:
            raise ValueError(f"a {height}x{width} image with padding {pad} is smaller than the "
                             f"{k}x{k} kernel")
        out = []
        for o in range(self.out_channels):
            plane = []
            for i in range(rows):
                line = []
                for j in range(columns):
                    total = None
                    for c in range(n_channels):
                        for r in range(k):
                            for s in range(k):
                                y, x = i * stride + r - pad, j * stride + s - pad
                                if 0 <= y < height and 0 <= x < width:
                                    term = MulNode(channels[c][y][x], self.W[o][c][r][s])
                                    total = term if total is None else AddNode(total, term)
                    if total is None:  # a window over padding alone: a constant zero
                        total = Node(Value=0.0)
                    if self.b:
                        total = AddNode(total, self.b[o])
                    line.append(self._act(total) if self._act is not None else total)
                plane.append(line)
            out.append(plane)
        return out

    def parameters(self):
        """The trainable nodes: every weight (out, in, row, column order), then the biases."""
        return [w for o in self.W for c in o for r in c for w in r] + list(self.b)

    @property
    def weights(self):
        """The weights' values, an array of shape (out, in, kernel, kernel) (PyTorch's)."""
        return np.array([[[[w.value for w in r] for r in c] for c in o] for o in self.W])

    @property
    def biases(self):
        """The biases' values, an array of shape (out,) (empty without a bias)."""
        return np.array([b.value for b in self.b])

    def __repr__(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, {self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={bool(self.b)}, "
                f"activation={self.activation!r})")


class MaxPool2d(_Layer):
    """``MaxPool2d(kernel_size, stride=None)``: each window's largest node, a chain of
    ``MaxNode``s over the window in row-major order (stride: kernel_size by default).
    Called on an image [channel][row][column], it returns the same layout."""

    def __init__(self, kernel_size, stride=None):
        self.kernel_size = _checks.count("kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else _checks.count("stride", stride)

    def __call__(self, image):
        channels, (_, height, width) = _image(image)
        k, stride = self.kernel_size, self.stride
        rows, columns = (height - k) // stride + 1, (width - k) // stride + 1
        if rows < 1 or columns < 1:
            raise ValueError(f"a {height}x{width} image is smaller than the {k}x{k} window")
        out = []
        for channel in channels:
            plane = []
            for i in range(rows):
                line = []
                for j in range(columns):
                    window = [channel[i * stride + r][j * stride + s]
                              for r in range(k) for s in range(k)]
                    largest = window[0]
                    for x in window[1:]:
                        largest = MaxNode(largest, x)
                    line.append(largest)
                plane.append(line)
            out.append(plane)
        return out

    def __repr__(self):
        return f"MaxPool2d({self.kernel_size}, stride={self.stride})"


def flatten(image):
    """An image [channel][row][column] as the flat list a ``Linear`` takes, channel by
    channel, row by row (PyTorch's flatten of a (C, H, W) tensor)."""
    channels, _ = _image(image)
    return [x for channel in channels for row in channel for x in row]


# ----------------------------------------------------------------------------- classifiers
# Graphs of ordinary nodes. Each shifts the logits by their largest (a chain of MaxNodes) so
# that exp never overflows: logits of 1000 or -1000 give finite losses and gradients.

def _logits(logits):
    logits = _checks.ordered("logits", logits, "Nodes, one per class")
    if not logits or not all(isinstance(z, Node) for z in logits):
        raise TypeError("logits must be a non-empty list of Nodes (one per class)")
    return logits


def _shifted(logits):
    """(z_i - max z for each i, the sum of their exps): the softmax's parts, never overflowing."""
    largest = logits[0]
    for z in logits[1:]:
        largest = MaxNode(largest, z)
    shifted = [SubNode(z, largest) for z in logits]
    total = ExpNode(shifted[0])
    for d in shifted[1:]:
        total = AddNode(total, ExpNode(d))
    return shifted, total


def softmax(logits):
    """The probability of each class, ``exp(z_i) / sum_j exp(z_j)``, as nodes.

    Parameters
    ----------
    logits : list of Node
        One node per class.

    Returns
    -------
    list of Node
        ``exp(z_i - max z) / sum_j exp(z_j - max z)`` for each class: the same numbers,
        computed without overflow.
    """
    shifted, total = _shifted(_logits(logits))
    return [DivNode(ExpNode(d), total) for d in shifted]


def log_softmax(logits):
    """The log-probability of each class, ``z_i - log(sum_j exp(z_j))``, as nodes
    (``z_i - max z - ln(sum_j exp(z_j - max z))``: finite for any finite logits).

    Parameters
    ----------
    logits : list of Node
        One node per class.

    Returns
    -------
    list of Node
    """
    shifted, total = _shifted(_logits(logits))
    log_total = LnNode(total)
    return [SubNode(d, log_total) for d in shifted]


def cross_entropy(logits, targets):
    """The cross-entropy loss ``-sum_i t_i * log_softmax(z)_i`` as a node.

    Parameters
    ----------
    logits : list of Node
        One node per class.
    targets : list of Node
        One node per class, holding a one-hot or a soft label (probabilities summing to 1);
        leaves that ``Tape.fit`` can feed from data.

    Returns
    -------
    Node
        The loss: a root for ``Tape.fit``, or a term of a larger loss.

    Raises
    ------
    TypeError, ValueError
        If logits or targets are not lists of nodes, or their lengths differ.
    """
    log_p = log_softmax(logits)
    targets = _checks.ordered("targets", targets, "Nodes, one per class")
    if len(targets) != len(log_p) or not all(isinstance(t, Node) for t in targets):
        raise ValueError(f"targets must be a list of {len(log_p)} Nodes, one per logit, not "
                         f"{len(targets)} items")
    total = MulNode(targets[0], log_p[0])
    for t, lp in zip(targets[1:], log_p[1:]):
        total = AddNode(total, MulNode(t, lp))
    return NegNode(total)
