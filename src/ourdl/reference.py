"""ourdl in plain Python: the tutorial's nodes, written to be read top to bottom.

This module is the specification of ourdl and the oracle its tests compare the compiled core
against, bit for bit. Everything here has a compiled twin in the core (the nodes in
``_nodes.pyx``, the passes over a tape in ``_passes.pyx``; ``_core.pyx`` maps the rest); if the
two ever disagree, this file says what ourdl means.

A graph is made of nodes. Each node has at most two parents, ``Papa`` and ``Mama``, a
``value``, a ``grad``, a trainable flag ``Flag`` and its own learning rate ``lr``:

>>> x = Node(Value=2.0)
>>> w = Node(Value=3.0, Flag=1)
>>> y = MulNode(Papa=x, Mama=w)
>>> y.forward()
6.0
>>> y.backward()            # w.grad == x.value == 2.0, then w.value -= lr * w.grad
>>> w.value
2.98

Three rules make it an autograd engine:

1. ``forward()`` visits the subgraph in topological order (parents first), so every node is
   computed exactly once, after its parents.
2. ``backward()`` walks the same order backwards. Each node adds what it owes to each parent
   (``+=``): a node used by several children receives the sum over every path. The
   tutorial's recursive code assigns (``=``) instead, which is only right on trees.
3. Then every node with ``Flag == 1`` takes one step: ``value = value - lr * grad``.

Nothing here recurses, so a chain of a million nodes works.
"""

import math
import numbers

import numpy as np

from ourdl._checks import leaf_with_parents, slopes

__all__ = [
    "Node", "AddNode", "SubNode", "MulNode", "DivNode", "PowNode", "MSENode", "MAENode",
    "HuberNode", "MaxNode", "LogLossNode", "CustomNode", "NegNode", "ExpNode", "LnNode",
    "SinNode", "CosNode", "TanNode", "TanhNode",
    "SigmoidNode", "ReluNode", "AbsNode", "SqrtNode",
    "sin", "cos", "tan", "ln", "exp", "tanh", "sigmoid", "relu", "sqrt", "topological_order",
    "SGD", "Momentum", "Adam", "fit",
]


def _ieee(math_fn, numpy_fn, *args):
    """``math_fn(*args)``, but answering inf or nan where Python would raise.

    Python raises on ``1/0``, ``log(0)`` or ``exp(1000)``; C (and so the compiled core)
    returns inf or nan. numpy answers like C, and in those cases the answer is a special
    value that every libm agrees on.
    """
    try:
        return math_fn(*args)
    except (ArithmeticError, ValueError):
        with np.errstate(all="ignore"):
            return float(numpy_fn(*args))


def _div(a, b):
    return _ieee(lambda p, q: p / q, np.divide, a, b)


def _pow(a, b):
    # math.pow, like CPython's float ** and the C core, is libm's pow().
    return _ieee(math.pow, np.power, a, b)


def _exp(a):
    return _ieee(math.exp, np.exp, a)


def _log(a):
    return _ieee(math.log, np.log, a)


def _sqrt(a):
    return _ieee(math.sqrt, np.sqrt, a)


def _sin(a):
    return _ieee(math.sin, np.sin, a)


def _cos(a):
    return _ieee(math.cos, np.cos, a)


def _tan(a):
    return _ieee(math.tan, np.tan, a)


def _sign(a):
    """1.0, -1.0 or 0.0 (also for nan): the slope of |a|."""
    return 1.0 if a > 0.0 else (-1.0 if a < 0.0 else 0.0)


class Node:
    """A leaf: an input, a constant or (with ``Flag=1``) a trainable parameter.

    ``Node(Papa=None, Mama=None, Value=0, Flag=0, lr=0.01, name=None)``. Subclasses say how
    to compute a value from the parents (``_compute``) and how much gradient each parent is
    owed (``_parent_grads``).
    """

    arity = 0  # how many parents the op needs: 0 (leaf), 1 (Papa) or 2 (Papa and Mama)

    def __init__(self, Papa=None, Mama=None, Value=0, Flag=0, lr=0.01, name=None):
        kind = type(self).__name__
        if hasattr(self, "_Papa"):
            raise TypeError(f"{kind}: a node is built once (its parents are fixed); make a new node")
        for arg, parent in (("Papa", Papa), ("Mama", Mama)):
            if parent is not None and not isinstance(parent, Node):
                raise TypeError(f"{kind}: {arg} must be a Node or None, not {type(parent).__name__}")
            if parent is not None and not hasattr(parent, "_Papa"):
                # Only built nodes can be parents: every parent is older than its child, so a
                # graph can never hold a cycle.
                raise TypeError(f"{kind}: {arg} was never built (its __init__ failed or never "
                                f"ran); make it with {type(parent).__name__}(...)")
        given = (Papa is not None) + (Mama is not None)
        if self.arity == 2 and given < 2:
            raise ValueError(f"{kind} needs both Papa and Mama")
        if self.arity == 1 and (Papa is None or Mama is not None):
            raise ValueError(f"{kind} needs Papa and takes no Mama")
        if self.arity == 0 and given:
            raise ValueError(leaf_with_parents(kind))
        value, flag, lr = _number("Value", Value, kind), _flag(Flag, kind), _number("lr", lr, kind)
        if hasattr(self, "_Papa"):  # built meanwhile, by code that the checks above ran
            raise TypeError(f"{kind}: a node is built once (its parents are fixed); make a new node")
        self._Papa = Papa  # set only once everything is checked: a failed __init__ builds nothing
        self._Mama = Mama
        self.value = value
        self.Flag = flag
        self.lr = lr
        self.grad = 1.0          # backward() starts from this on the node it is called on
        self.Papa_grad = 0.0     # what the last backward() sent to Papa ...
        self.Mama_grad = 0.0     # ... and to Mama
        self.name = name

    # Parents are fixed at construction, so a node's subgraph never changes.
    @property
    def Papa(self):
        return self._Papa

    @property
    def Mama(self):
        return self._Mama

    # Numbers are stored as float64, whatever is assigned (a numpy float32, an int, ...),
    # so every computation rounds exactly as the compiled core's does.
    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, v):
        self._value = float(v)

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, g):
        self._grad = float(g)

    @property
    def Flag(self):
        return self._Flag

    @Flag.setter
    def Flag(self, flag):
        self._Flag = _flag(flag, type(self).__name__)

    @property
    def lr(self):
        return self._lr

    @lr.setter
    def lr(self, lr):
        self._lr = float(lr)

    def _compute(self, a, b):
        return self.value  # a leaf keeps its value

    def _parent_grads(self, a, b):
        return 0.0, 0.0

    def forward(self):
        """Compute every node of this node's subgraph, parents first; return this value."""
        for node in topological_order(self):
            if node.arity:
                node.value = node._compute(*node._parent_values())
        return self.value

    def backward(self, update=True):
        """Push ``self.grad`` back to every ancestor, then (if ``update``) step the trainable ones."""
        order = topological_order(self)
        for node in order[:-1]:
            # -0.0 is the identity of +=: -0.0 + g is g to the last bit, even for g == -0.0,
            # so a node with one child gets exactly that child's gradient (as in the seed).
            node.grad = -0.0
        for node in reversed(order):  # children before parents
            if node.arity:
                to_papa, to_mama = node._parent_grads(*node._parent_values())
                node.Papa_grad = to_papa
                node.Papa.grad += to_papa
                if node.arity == 2:
                    node.Mama_grad = to_mama
                    node.Mama.grad += to_mama
        if update:
            for node in order:
                node.updata()

    def updata(self):
        """One gradient step, for trainable nodes only (the tutorial's spelling)."""
        if self.Flag == 1:
            self.value = self.value - self.lr * self.grad

    update = updata

    def _parent_values(self):
        a = self.Papa.value
        b = self.Mama.value if self.arity == 2 else 0.0
        return a, b

    def __repr__(self):
        label = f"name={self.name!r}, " if self.name is not None else ""
        return f"{type(self).__name__}({label}value={self.value!r}, grad={self.grad!r})"

    # Operators build new nodes; plain numbers become constant leaves.
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

    def __pow__(self, other):
        return PowNode(self, _as_node(other))

    def __rpow__(self, other):
        return PowNode(_as_node(other), self)

    def __neg__(self):
        return NegNode(self)

    def __abs__(self):
        return AbsNode(self)


def _number(arg, x, kind):
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{kind}: {arg} must be a real number, not {type(x).__name__}")
    return float(x)


def _flag(x, kind):
    # Compare a plain number, never x itself: an object may claim to equal anything.
    if not isinstance(x, numbers.Real) or float(x) not in (0.0, 1.0):
        raise ValueError(f"{kind}: Flag must be 0 (fixed) or 1 (trainable), not {x!r}")
    return int(float(x))


def _as_node(x):
    return x if isinstance(x, Node) else Node(Value=x)


def topological_order(root):
    """The nodes of ``root``'s subgraph, each once, parents before children, ``root`` last.

    A depth-first walk with an explicit stack (Papa before Mama), recording a node once all
    its parents are recorded. The compiled tape uses exactly this order, which fixes the
    order in which gradients are summed and so makes the two bit-for-bit equal.
    """
    order, done = [], set()
    stack = [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if id(node) in done:
            continue
        if parents_done:
            done.add(id(node))
            order.append(node)
            continue
        stack.append((node, True))
        for parent in (node.Mama, node.Papa):  # pushed Mama first so Papa is visited first
            if parent is not None and id(parent) not in done:
                stack.append((parent, False))
    return order


# Binary ops: a is Papa's value, b is Mama's, g is this node's gradient.
# Each _parent_grads returns (owed to Papa, owed to Mama).

class AddNode(Node):
    arity = 2

    def _compute(self, a, b):
        return a + b

    def _parent_grads(self, a, b):
        return self.grad, self.grad


class SubNode(Node):
    arity = 2

    def _compute(self, a, b):
        return a - b

    def _parent_grads(self, a, b):
        return self.grad, -self.grad


class MulNode(Node):
    arity = 2

    def _compute(self, a, b):
        return a * b

    def _parent_grads(self, a, b):
        return self.grad * b, self.grad * a


class DivNode(Node):
    arity = 2

    def _compute(self, a, b):
        return _div(a, b)

    def _parent_grads(self, a, b):
        g = self.grad
        return _div(g, b), _div(-g * a, b * b)


class PowNode(Node):
    arity = 2

    def _compute(self, a, b):
        return _pow(a, b)

    def _parent_grads(self, a, b):
        g = self.grad
        to_papa = g * b * _pow(a, b - 1.0)
        # d(a**b)/db = a**b * ln(a); taken as 0 at a == 0, b >= 0, where a**b is flat in b.
        to_mama = 0.0 if (a == 0.0 and b >= 0.0) else g * self.value * _log(a)
        return to_papa, to_mama


class MSENode(Node):
    """Squared error (Papa - Mama)**2, with the tutorial's gradient 2 * (Papa - Mama)."""

    arity = 2

    def _compute(self, a, b):
        return _pow(a - b, 2.0)

    def _parent_grads(self, a, b):
        t = self.grad * 2.0 * (a - b)
        return t, -t


class MAENode(Node):
    """Absolute error |Papa - Mama|."""

    arity = 2

    def _compute(self, a, b):
        return math.fabs(a - b)

    def _parent_grads(self, a, b):
        t = self.grad * _sign(a - b)
        return t, -t


class HuberNode(Node):
    """Huber loss of d = Papa - Mama: 0.5 * d * d where |d| <= delta, else
    delta * (|d| - 0.5 * delta); its slope is d clipped to [-delta, delta]."""

    arity = 2

    def __init__(self, Papa=None, Mama=None, Value=0, Flag=0, lr=0.01, name=None, *, delta=1.0):
        delta = _number("delta", delta, "HuberNode")
        if not 0.0 < delta < math.inf:
            raise ValueError(f"HuberNode: delta must be a positive number, not {delta!r}")
        super().__init__(Papa, Mama, Value, Flag, lr, name)
        self.delta = delta

    def _compute(self, a, b):
        d = a - b
        return 0.5 * d * d if math.fabs(d) <= self.delta else self.delta * (math.fabs(d) - 0.5 * self.delta)

    def _parent_grads(self, a, b):
        d = a - b
        t = self.grad * (d if math.fabs(d) <= self.delta else self.delta * _sign(d))
        return t, -t


class MaxNode(Node):
    """The larger of Papa and Mama; the gradient goes to Papa where Papa >= Mama."""
    arity = 2

    def _compute(self, a, b):
        return a if a >= b else b

    def _parent_grads(self, a, b):
        return (self.grad, 0.0) if a >= b else (0.0, self.grad)


class LogLossNode(Node):
    """Binary cross-entropy of a logit a against a target b, without overflow or ln(0)."""
    arity = 2

    def _compute(self, a, b):
        return ((a if a > 0.0 else 0.0) - a * b) + math.log1p(math.exp(-math.fabs(a)))

    def _parent_grads(self, a, b):
        t = math.exp(-math.fabs(a))
        sigmoid = 1.0 / (1.0 + t) if a >= 0.0 else t / (1.0 + t)
        return self.grad * (sigmoid - b), self.grad * -a


class CustomNode(Node):
    """An op of your own: set ``arity`` (1 or 2) and define ``compute(a, b)`` (the value) and
    ``derivatives(a, b)`` (d value / d Papa, and for arity 2 also d value / d Mama)."""

    arity = 1

    def _compute(self, a, b):
        return float(self.compute(a, b))

    def _parent_grads(self, a, b):
        d_papa, d_mama = slopes(self, self.derivatives(a, b), self.arity)
        return self.grad * d_papa, self.grad * d_mama


# Unary ops: only Papa. v is this node's own (forward) value, used where it saves work.

class NegNode(Node):
    arity = 1

    def _compute(self, a, b):
        return -a

    def _parent_grads(self, a, b):
        return -self.grad, 0.0


class ExpNode(Node):
    arity = 1

    def _compute(self, a, b):
        return _exp(a)

    def _parent_grads(self, a, b):
        return self.grad * self.value, 0.0


class LnNode(Node):
    arity = 1

    def _compute(self, a, b):
        return _log(a)

    def _parent_grads(self, a, b):
        return _div(self.grad, a), 0.0


class SinNode(Node):
    arity = 1

    def _compute(self, a, b):
        return _sin(a)

    def _parent_grads(self, a, b):
        return self.grad * _cos(a), 0.0


class CosNode(Node):
    arity = 1

    def _compute(self, a, b):
        return _cos(a)

    def _parent_grads(self, a, b):
        return self.grad * -_sin(a), 0.0


class TanNode(Node):
    arity = 1

    def _compute(self, a, b):
        return _tan(a)

    def _parent_grads(self, a, b):
        v = self.value
        return self.grad * (1.0 + v * v), 0.0


class TanhNode(Node):
    arity = 1

    def _compute(self, a, b):
        return math.tanh(a)

    def _parent_grads(self, a, b):
        v = self.value
        return self.grad * (1.0 - v * v), 0.0


class SigmoidNode(Node):
    arity = 1

    def _compute(self, a, b):
        return 1.0 / (1.0 + _exp(-a))  # the denominator is >= 1 or nan: no raise

    def _parent_grads(self, a, b):
        v = self.value
        return self.grad * (v * (1.0 - v)), 0.0


class ReluNode(Node):
    arity = 1

    def _compute(self, a, b):
        return 0.0 if a <= 0.0 else a  # keeps nan visible

    def _parent_grads(self, a, b):
        return (self.grad if a > 0.0 else 0.0), 0.0


class AbsNode(Node):
    arity = 1

    def _compute(self, a, b):
        return math.fabs(a)

    def _parent_grads(self, a, b):
        return self.grad * _sign(a), 0.0


class SqrtNode(Node):
    arity = 1

    def _compute(self, a, b):
        return _sqrt(a)

    def _parent_grads(self, a, b):
        return _div(self.grad, 2.0 * self.value), 0.0


def _unary(node_class):
    def apply(x):
        return node_class(_as_node(x))
    apply.__name__ = apply.__qualname__ = node_class.__name__[:-4].lower()
    apply.__doc__ = f"A new {node_class.__name__} on x (a node or a number)."
    return apply


sin, cos, tan = _unary(SinNode), _unary(CosNode), _unary(TanNode)
ln, exp, sqrt, abs = _unary(LnNode), _unary(ExpNode), _unary(SqrtNode), _unary(AbsNode)
tanh, sigmoid, relu = _unary(TanhNode), _unary(SigmoidNode), _unary(ReluNode)


# Training on rows of data: what Tape.fit does, written as the tutorial's loop.

class SGD:
    """``value = value - lr * g``; lr None: each node's own lr (the tutorial's rule)."""

    def __init__(self, lr=None):
        self.lr = lr
        self.t = 0  # updates taken

    def step(self, nodes, grads):
        """One update of nodes, whose gradients (averaged over the batch) are grads."""
        self.t += 1
        for node, g in zip(nodes, grads):
            lr = node.lr if self.lr is None else self.lr
            node.value = self._new_value(node, lr, g)

    def _new_value(self, node, lr, g):
        return node.value - lr * g


class Momentum(SGD):
    """torch.optim.SGD(momentum=beta): b = g at first, then b = beta * b + g."""

    def __init__(self, lr=None, beta=0.9):
        super().__init__(lr)
        self.beta = beta
        self.buffer = {}

    def _new_value(self, node, lr, g):
        b = g if self.t == 1 else self.beta * self.buffer[id(node)] + g
        self.buffer[id(node)] = b
        return node.value - lr * b


class Adam(SGD):
    """torch.optim.Adam, with bias correction."""

    def __init__(self, lr=None, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m, self.v = {}, {}

    def _new_value(self, node, lr, g):
        m = self.beta1 * self.m.get(id(node), 0.0) + (1.0 - self.beta1) * g
        v = self.beta2 * self.v.get(id(node), 0.0) + (1.0 - self.beta2) * (g * g)
        self.m[id(node)], self.v[id(node)] = m, v
        corrected_1 = 1.0 - self.beta1 ** self.t
        corrected_2 = math.sqrt(1.0 - self.beta2 ** self.t)
        return node.value - (lr / corrected_1) * (m / (math.sqrt(v) / corrected_2 + self.eps))


def fit(root, data, inputs, epochs=1, batch_size=1, optimizer=None, orders=None):
    """Train root's graph on the rows of data, as ``Tape.fit`` does; return each epoch's loss.

    For each row: column j into ``inputs[j].value``, forward, backward without the update.
    Every ``batch_size`` rows (and at the end of each epoch) the trainable nodes take one
    step with their gradients averaged over those rows. ``orders`` gives each epoch's order
    of rows (the default: in order).
    """
    optimizer = optimizer if optimizer is not None else SGD()
    trainable = [node for node in topological_order(root) if node.Flag == 1]
    losses = []
    for epoch in range(epochs):
        order = orders[epoch] if orders is not None else range(len(data))
        sums, count, total = [-0.0] * len(trainable), 0, 0.0
        for k, row in enumerate(order):
            for node, value in zip(inputs, data[row]):
                node.value = value
            total += root.forward()
            root.backward(update=False)
            sums = [s + node.grad for s, node in zip(sums, trainable)]
            count += 1
            if count == batch_size or k == len(order) - 1:
                optimizer.step(trainable, [s / count for s in sums])
                sums, count = [-0.0] * len(trainable), 0
        losses.append(total / len(order))
    return losses
