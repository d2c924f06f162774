# cython: freethreading_compatible = False
"""ourdl's compiled core: the seed's nodes as typed classes, and the tape that runs them.

Data flows one way: Python ``Node`` objects -> ``Tape`` (an iterative topological sort into
flat arrays of op codes, parent indices, values and gradients) -> typed loops without the
GIL -> results copied back into the nodes. ``reference.py`` is the same semantics in plain
Python, and the tests hold the two to bit-for-bit equality.
"""

cimport cython
from cpython.exc cimport PyErr_CheckSignals
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport cos, exp, fabs, isfinite, log, pow, sin, sqrt, tan, tanh
from libc.stdint cimport int64_t
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
assert len(OP_NAMES) == N_OPS

EpochStats = namedtuple("EpochStats", "epoch loss seconds samples_per_second")
EpochStats.__doc__ = "One epoch of Tape.fit: mean root value (the training loss), wall time, speed."

cdef enum:
    # Rows per trip into compiled code: small enough that Ctrl-C and the progress bar
    # answer within milliseconds, large enough that the trips cost nothing.
    CHUNK_ROWS = 1 << 16
    # Doubles in the scratch of predict(): the values of every node for a block of rows.
    BLOCK_DOUBLES = 1 << 15
    # Graphs larger than this release the GIL in forward() and backward().
    NOGIL_NODES = 4096

cdef enum RunStatus:
    RUN_OK = 0
    RUN_BAD_LOSS = 1    # the root value became nan/inf: stopped before that row's update
    RUN_BAD_PARAM = 2   # an update made a parameter nan/inf: it was undone


# ----------------------------------------------------------------------------- the ops

cdef inline bint is_binary(int op) noexcept nogil:
    return OP_ADD <= op <= OP_MAE


cdef inline double sign(double a) noexcept nogil:
    return 1.0 if a > 0.0 else (-1.0 if a < 0.0 else 0.0)


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
        return pow(a - b, 2.0)  # libm's pow, as Python's ** (see setup.py)
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


# ----------------------------------------------------------------------------- nodes

_ARGS = "(Papa=None, Mama=None, Value=0, Flag=0, lr=0.01, name=None)"


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
        cdef int op = type(self).op_code
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
        self.op = op
        self.Papa = Papa
        self.Mama = Mama
        self.s.value = _real(kind, "Value", Value)
        self.s.flag = _flag(kind, Flag)
        self.s.lr = _real(kind, "lr", lr)
        self.s.grad = 1.0
        self.s.papa_grad = 0.0
        self.s.mama_grad = 0.0
        self.name = name

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
        return OP_NAMES[self.op]

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
        return PowNode(self, _as_node(other))

    def __rpow__(self, other, modulo):
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


# ----------------------------------------------------------------------------- the tape

cdef unsigned long _last_stamp = 0


def topological_order(Node root):
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
        cdef list order = topological_order(root)
        cdef Py_ssize_t n = len(order), i
        cdef Node node
        self.root = root
        self.nodes = order
        self.n = n
        self.op = np.empty(n, dtype=np.intc)
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
            self.op[i] = node.op
            if node.Papa is not None:
                self.papa[i] = node.Papa._slot  # parents come first, so their slots are set
            if node.Mama is not None:
                self.mama[i] = node.Mama._slot
            if node.op == OP_LEAF:
                leaves.append(i)
        self.leaves = np.array(leaves, dtype=np.intp)
        self._pull()

    def __dealloc__(self):
        PyMem_Free(self.states)

    def __len__(self):
        return self.n

    def __repr__(self):
        return f"<Tape of {self.n} nodes, root {self.root!r}>"

    def __reduce__(self):
        return (Tape, (self.root,))

    @property
    def ops(self):
        """The op name of each node, in tape order."""
        return [OP_NAMES[self.op[i]] for i in range(self.n)]

    @property
    def parents(self):
        """(Papa index, Mama index) of each node in tape order; -1 where there is none."""
        return np.stack([np.asarray(self.papa), np.asarray(self.mama)], axis=1)

    cdef Graph _graph(self) noexcept nogil:
        cdef Graph G
        G.n = self.n
        G.op = &self.op[0]
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
        """Read every node's value, lr and Flag (users may set any of them between calls)."""
        cdef Py_ssize_t i
        for i in range(self.n):
            self.values[i] = self.states[i].value
            self.lrs[i] = self.states[i].lr
            self.flags[i] = self.states[i].flag == 1

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
        if self.n > NOGIL_NODES:
            with nogil:
                self._forward()
        else:
            self._forward()
        return self.values[self.n - 1]

    cpdef backward(self, bint update=True):
        """Gradients of the root for every node (summed over paths), then one update step."""
        if self.n > NOGIL_NODES:
            with nogil:
                self._backward(update)
        else:
            self._backward(update)
