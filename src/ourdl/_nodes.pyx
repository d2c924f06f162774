"""ourdl's nodes: the tutorial's graph of Papa/Mama nodes as typed classes.

A node's state (value, grad, Flag, lr and what it last sent each parent) is a C struct of
its own until a Tape (ourdl._tape) holds the node; from then on it lives in that tape's
arrays, where the compiled passes use it, and the node reads and writes it there (Home).
Parents are fixed at construction, so a graph is always a DAG and a node's subgraph never
changes.
"""

cimport cython
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.ref cimport PyObject
from libc.string cimport memcpy
from ourdl._ops cimport *

import numbers
import threading
import weakref

from ourdl._checks import leaf_with_parents

# How forward() and backward() reach a tape: set by ourdl._tape, the layer above this one.
_tape_forward = None
_tape_backward = None


cdef inline double _real(Node node, str arg, object x) except? -1.0:
    if type(x) is float:  # the common cases first: a node is built in a fraction of a microsecond
        return <double>x
    if type(x) is int:
        return <double>x
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{type(node).__name__}: {arg} must be a real number, not {type(x).__name__}")
    return <double>x


cdef inline int _flag(Node node, object x) except -1:
    if type(x) is int and (x == 0 or x == 1):
        return x == 1
    # Compare a plain number, never x itself: an object may claim to equal anything.
    if not isinstance(x, numbers.Real) or float(x) not in (0.0, 1.0):
        raise ValueError(f"{type(node).__name__}: Flag must be 0 (fixed) or 1 (trainable), not {x!r}")
    return 1 if float(x) == 1.0 else 0


cdef dict _codes = {}  # the op code of each class of the registry, once it is built


cdef int _op_code(type cls) except -1:
    """The class's op code as a plain int, checked against the range of the Op enum."""
    code = _codes.get(cls)
    if code is not None:
        return code
    return _checked_op_code(cls)


cdef int _checked_op_code(type cls) except -1:
    if issubclass(cls, CustomNode):
        arity = cls.arity
        if isinstance(arity, bool) or arity not in (1, 2) or type(arity) is not int:
            raise TypeError(f"{cls.__name__}.arity must be 1 (Papa only) or 2 (Papa and Mama), "
                            f"not {arity!r}")
        return OP_CUSTOM1 if arity == 1 else OP_CUSTOM2
    op = cls.op_code
    cdef long long code = -1
    try:
        code = op  # to a C integer: an int subclass's own comparisons never decide the range
    except (TypeError, OverflowError):
        pass
    if isinstance(op, bool) or not isinstance(op, numbers.Integral) or not 0 <= code < N_OPS:
        raise TypeError(f"{cls.__name__}.op_code must be one of ourdl's op codes "
                        f"(0 to {N_OPS - 1}), not {op!r}")
    return code


cdef inline int _check_parent(Node node, str arg, object parent) except -1:
    if not isinstance(parent, Node):
        raise TypeError(f"{type(node).__name__}: {arg} must be a Node or None, not "
                        f"{type(parent).__name__}")
    if not (<Node>parent)._built:
        # Only built nodes can be parents, so every parent is older than its child and no
        # graph can hold a cycle.
        raise TypeError(f"{type(node).__name__}: {arg} was never built (its __init__ failed or "
                        f"never ran); make it with {type(parent).__name__}(...)")
    return 0


cdef int _wrong_parents(Node node, int arity, int given) except -1:
    cdef str kind = type(node).__name__
    if arity == 2:
        raise ValueError(f"{kind} needs both Papa and Mama")
    if arity == 1:
        raise ValueError(f"{kind} needs Papa and takes no Mama")
    raise ValueError(leaf_with_parents(kind))


cdef Node _as_node(object x):
    return x if isinstance(x, Node) else Node(Value=x)


@cython.trashcan(True)  # deallocating a long chain must not recurse once per node
cdef class Node:
    """A leaf: an input, a constant or (with ``Flag=1``) a trainable parameter.

    ``Node(Papa=None, Mama=None, Value=0, Flag=0, lr=0.01, name=None)``; the op nodes
    (``AddNode``, ``MulNode``, ...) take their parents the same way.

    Attributes: ``value``, ``grad``, ``Flag``, ``lr``, ``Papa_grad``, ``Mama_grad``, ``op``
    (see each), and

    - ``Papa``: the node's first parent (the left operand: a in a - b), or None for a leaf;
    - ``Mama``: its second parent (the right operand: b in a - b), or None for a leaf and
      for one-parent ops. Both are fixed at construction, so a graph is always a DAG;
    - ``name``: any label you choose (None by default); shown by repr, ``Tape.dump`` and
      ``ourdl.to_dot``, and saved by ``ourdl.save`` when it is a str.

    ``forward()`` computes the node's subgraph; ``backward()`` sends gradients back to every
    ancestor and steps the trainable ones.
    """

    op_code = OP_LEAF
    op_name = "leaf"

    def __init__(self, Papa=None, Mama=None, Value=0, Flag=0, lr=0.01, name=None):
        if self._built:
            raise TypeError(f"{type(self).__name__}: a node is built once (its parents are "
                            f"fixed); make a new node")
        cdef int op = _op_code(type(self))
        if Papa is not None:
            _check_parent(self, "Papa", Papa)
        if Mama is not None:
            _check_parent(self, "Mama", Mama)
        cdef int given = (Papa is not None) + (Mama is not None)
        cdef int arity = arity_of(op)
        if arity != given or (arity == 1 and Papa is None):
            _wrong_parents(self, arity, given)
        # Everything is checked before anything is set: a failed __init__ leaves no half-node.
        cdef double value = _real(self, "Value", Value), rate = _real(self, "lr", lr)
        cdef int flag = _flag(self, Flag)
        if self._built:  # built meanwhile, by code that the checks above ran (a __float__)
            raise TypeError(f"{type(self).__name__}: a node is built once (its parents are "
                            f"fixed); make a new node")
        self.opcode = op
        self.Papa = Papa
        self.Mama = Mama
        self.s.value = value
        self.s.flag = flag
        self.s.lr = rate
        self.s.grad = 1.0
        self.s.papa_grad = 0.0
        self.s.mama_grad = 0.0
        self.name = name
        self._built = True

    @property
    def value(self):
        """The node's number. A leaf keeps what it is given (an input, a constant or a
        parameter); forward() overwrites an op node's with the op applied to its parents'
        values."""
        return self.home.values[self.home_slot] if self.home != NULL else self.s.value

    @value.setter
    def value(self, double v):
        if self.home != NULL:
            _writable(self, "value")
            self.home.values[self.home_slot] = v
        else:
            self.s.value = v

    @property
    def grad(self):
        """d(root)/d(this node) from the last backward(), summed over every path to the root.
        On the node backward() is called on it is the root gradient (1 unless you set it); update
        steps use it."""
        return self.home.grads[self.home_slot] if self.home != NULL else self.s.grad

    @grad.setter
    def grad(self, double g):
        if self.home != NULL:
            _writable(self, "grad")
            self.home.grads[self.home_slot] = g
        else:
            self.s.grad = g

    @property
    def lr(self):
        """The node's own learning rate: the size of the step backward() takes on it when
        Flag == 1. Ignored when Flag == 0."""
        return self.home.lrs[self.home_slot] if self.home != NULL else self.s.lr

    @lr.setter
    def lr(self, double lr):
        if self.home != NULL:
            _writable(self, "lr")
            self.home.lrs[self.home_slot] = lr
        else:
            self.s.lr = lr

    @property
    def Flag(self):
        """1 if the node is trainable (backward() then steps it: value -= lr * grad), 0 if it
        is fixed (an input or a constant)."""
        return self.home.flags[self.home_slot] if self.home != NULL else self.s.flag

    @Flag.setter
    def Flag(self, Flag):
        cdef int flag = _flag(self, Flag)
        if self.home != NULL:
            _writable(self, "Flag")
            self.home.flags[self.home_slot] = flag
        else:
            self.s.flag = flag

    @property
    def Papa_grad(self):
        """What the last backward() sent to Papa from this node: this node's grad times
        d(this)/d(Papa). Papa.grad is the sum of these over all its children."""
        return self.home.papa_grads[self.home_slot] if self.home != NULL else self.s.papa_grad

    @property
    def Mama_grad(self):
        """What the last backward() sent to Mama, as Papa_grad for Papa; 0 if there is no
        Mama."""
        return self.home.mama_grads[self.home_slot] if self.home != NULL else self.s.mama_grad

    @property
    def op(self):
        """The op name ('leaf', 'add', 'mul', ...): what Tape.ops lists and ourdl.save
        stores."""
        return OP_NAMES[self.opcode]

    def forward(self):
        """Compute every node of this node's subgraph, parents first; return this value."""
        return _tape_forward(self)

    def backward(self, update=True):
        """Push ``grad`` back to every ancestor, then (if ``update``) step the trainable ones."""
        _tape_backward(self, update)

    def updata(self):
        """One gradient step, for trainable nodes only (the tutorial's spelling)."""
        if self.Flag == 1:
            self.value = self.value - self.lr * self.grad

    def update(self):
        """Same as ``updata()``."""
        self.updata()

    def __repr__(self):
        label = f"name={self.name!r}, " if self.name is not None else ""
        return f"{type(self).__name__}({label}value={self.value!r}, grad={self.grad!r})"

    def _repr_mimebundle_(self, **formats):  # include=, exclude=: a Cython keyword
        """In a notebook, the graph as a picture (see ourdl.inspect.mimebundle)."""
        from ourdl import inspect
        return inspect.mimebundle(self, **formats)

    def __reduce__(self):
        # Pickle (and deepcopy) recurse into a node's parents before the node itself, so a
        # deep graph would exhaust the stack. The node pickled first lists its ancestors,
        # parents first, ahead of its own fields: each of them then finds its parents
        # already saved, and is saved without such a list (see _Ancestors).
        # The name and the gradients come as state, after the node exists: a name may refer
        # to the node itself.
        ancestors = None if _Ancestors.being_saved(self) else _Ancestors(self)
        return (_rebuild_node,
                (ancestors, type(self), self.Papa, self.Mama, self.value, self.Flag, self.lr),
                self.__getstate__())

    def __getstate__(self):
        return (self.name, self.grad, self.Papa_grad, self.Mama_grad, self.s.param)

    def __setstate__(self, state):
        name, grad, papa_grad, mama_grad, param = state
        if not (0.0 < param < float("inf") if self.opcode == OP_HUBER else param == 0.0):
            raise ValueError(f"{type(self).__name__}: no such op constant {param!r}")
        cdef double g = grad, to_papa = papa_grad, to_mama = mama_grad
        self.name, self.grad, self.s.param = name, g, param
        if self.home != NULL:
            self.home.papa_grads[self.home_slot] = to_papa
            self.home.mama_grads[self.home_slot] = to_mama
        else:
            self.s.papa_grad, self.s.mama_grad = to_papa, to_mama

    def __copy__(self):
        """A new node with the same parents and state (the parents are shared, not copied)."""
        node = _rebuild_node(None, type(self), self.Papa, self.Mama, self.value, self.Flag,
                             self.lr)
        node.__setstate__(self.__getstate__())
        return node

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
        if modulo is not None:
            return NotImplemented  # pow(a, b, m) has no node
        return PowNode(self, _as_node(other))

    def __rpow__(self, other, modulo):
        if modulo is not None:
            return NotImplemented
        return PowNode(_as_node(other), self)

    def __neg__(self):
        return NegNode(self)

    def __abs__(self):
        return AbsNode(self)


def _rebuild_node(ancestors, cls, Papa, Mama, value, flag, lr):
    """Unpickle a node; ``ancestors`` were unpickled before it only to keep the recursion flat."""
    return cls(Papa, Mama, value, flag, lr)


# Ancestors listed ahead of the node pickled first: one entry per such node, innermost last,
# each the list's _Ancestors (weakly: a failed pickle drops it) and the ids of the ancestors
# not saved yet. Per thread, as picklers are.
_saving = threading.local()


def _pending():
    """The thread's stack of lists of ancestors being saved, without those of failed pickles."""
    stack = getattr(_saving, "stack", None)
    if stack is None:
        stack = _saving.stack = []
    while stack and stack[len(stack) - 1][0]() is None:
        stack.pop()
    return stack


class _Ancestors:
    """The ancestors of a node (parents first) as pickle and deepcopy see them: a list whose
    items are saved while this object's id set is on top of the thread's stack, then a
    marker that takes it off."""

    def __init__(self, node):
        self.node = node

    @staticmethod
    def being_saved(node):
        """True (once) if node is saved as an item of the innermost list of ancestors."""
        stack = _pending()
        if not stack:
            return False
        pending = stack[len(stack) - 1][1]  # (no negative indices: wraparound is off here)
        if id(node) in pending:
            pending.discard(id(node))
            return True
        return False

    def __reduce__(self):
        nodes = topological_order(self.node)
        nodes.pop()  # the node itself
        _pending().append((weakref.ref(self), {id(node) for node in nodes}))
        return (list, (), None, iter(nodes + [_EndOfAncestors()]))


class _EndOfAncestors:
    def __reduce__(self):
        stack = _pending()
        if stack:
            stack.pop()
        return (_nothing, ())


def _nothing():
    return None


cdef int _writable(Node node, str what) except -1:
    """Refuse a change to the node's state from an op written in Python that its tape's
    loops are calling: the loops own that state until the pass is over (a fused layer works
    on copies of its weights), so the change would count in some passes and not in others."""
    if node.home.calling[0]:
        raise RuntimeError(f"{node!r}: its {what} cannot change while its tape's loops call an "
                           f"op of yours; change it before or after the call (between epochs: "
                           f"from fit's callback)")
    return 0


cdef unsigned long _last_stamp = 0


cdef struct _Visit:
    PyObject* node       # borrowed: the root's graph holds every node while the sort runs
    bint parents_done    # its parents were visited: the node goes next into the order


cpdef list topological_order(Node root):
    """The nodes of root's subgraph, parents first, root last: exactly reference.py's order."""
    if root is None:
        raise TypeError("topological_order needs a Node, not None")
    global _last_stamp
    _last_stamp += 1
    cdef unsigned long stamp = _last_stamp
    cdef list order = []
    # A depth-first walk with its stack in C: no Python object is made meanwhile, so nothing
    # (no garbage collection) can free a node it points to.
    cdef _Visit small[64]
    cdef _Visit* stack = small
    cdef _Visit* grown
    cdef Py_ssize_t top = 1, size = 64
    cdef Node node
    cdef int arity
    stack[0].node, stack[0].parents_done = <PyObject*>root, False
    try:
        while top:
            top -= 1
            node = <Node>stack[top].node
            if not node._built:
                raise TypeError(f"{node!r} was never built (its __init__ failed or never ran)")
            if stack[top].parents_done:
                if node._seen != stamp:
                    node._seen = stamp
                    order.append(node)
                continue
            if node._seen == stamp:
                continue
            arity = arity_of(node.opcode)
            if (arity >= 1 and node.Papa is None) or (arity == 2 and node.Mama is None):
                # Only the garbage collector unsets parents, while it frees a reference cycle.
                raise RuntimeError(f"{node!r} lost its parents to the garbage collector (it is "
                                   f"being freed) and cannot be computed")
            if top + 3 > size:
                grown = <_Visit*>PyMem_Malloc(2 * size * sizeof(_Visit))
                if grown == NULL:
                    raise MemoryError()
                memcpy(grown, stack, top * sizeof(_Visit))
                if stack != small:
                    PyMem_Free(stack)
                stack, size = grown, 2 * size
            stack[top].node, stack[top].parents_done = <PyObject*>node, True
            top += 1
            # Mama first so Papa is visited first.
            if node.Mama is not None and node.Mama._seen != stamp:
                stack[top].node, stack[top].parents_done = <PyObject*>node.Mama, False
                top += 1
            if node.Papa is not None and node.Papa._seen != stamp:
                stack[top].node, stack[top].parents_done = <PyObject*>node.Papa, False
                top += 1
        return order
    finally:
        if stack != small:
            PyMem_Free(stack)


cdef class AddNode(Node):
    """Papa + Mama; sends its grad unchanged to both."""
    op_code = OP_ADD
    op_name = "add"

cdef class SubNode(Node):
    """Papa - Mama; sends grad to Papa and -grad to Mama."""
    op_code = OP_SUB
    op_name = "sub"

cdef class MulNode(Node):
    """Papa * Mama; sends grad * Mama to Papa and grad * Papa to Mama."""
    op_code = OP_MUL
    op_name = "mul"

cdef class DivNode(Node):
    """Papa / Mama (IEEE: x/0 is +-inf or nan); sends grad / Mama to Papa and
    -grad * Papa / Mama**2 to Mama."""
    op_code = OP_DIV
    op_name = "div"

cdef class PowNode(Node):
    """Papa ** Mama; sends grad * Mama * Papa**(Mama - 1) to Papa and
    grad * value * ln(Papa) to Mama (0 where Papa == 0 and Mama >= 0)."""
    op_code = OP_POW
    op_name = "pow"

cdef class MSENode(Node):
    """Squared error (Papa - Mama)**2; sends 2 * (Papa - Mama) * grad to Papa and its
    negative to Mama."""
    op_code = OP_MSE
    op_name = "mse"

cdef class MAENode(Node):
    """Absolute error |Papa - Mama|; sends sign(Papa - Mama) * grad to Papa and its negative
    to Mama (0 where they are equal)."""
    op_code = OP_MAE
    op_name = "mae"

cdef class HuberNode(Node):
    """Huber loss of d = Papa - Mama: ``0.5 * d * d`` where ``|d| <= delta``, else
    ``delta * (|d| - 0.5 * delta)``; its slope is d, clipped to [-delta, delta].

    ``HuberNode(Papa, Mama, delta=1.0)`` (delta a positive number, fixed once built)."""
    op_code = OP_HUBER
    op_name = "huber"

    def __init__(self, Papa=None, Mama=None, Value=0, Flag=0, lr=0.01, name=None, *, delta=1.0):
        cdef double d = _real(self, "delta", delta)
        if not 0.0 < d < float("inf"):
            raise ValueError(f"HuberNode: delta must be a positive number, not {delta!r}")
        Node.__init__(self, Papa, Mama, Value, Flag, lr, name)
        self.s.param = d

    @property
    def delta(self):
        return self.s.param

cdef class MaxNode(Node):
    """The larger of Papa and Mama; sends grad to Papa where Papa >= Mama (ties go to Papa),
    else to Mama. Pooling and a softmax shifted by its largest logit are made of it."""
    op_code = OP_MAX
    op_name = "max"

cdef class LogLossNode(Node):
    """Binary cross-entropy of a logit z (Papa) against a target t in [0, 1] (Mama):
    ``max(z, 0) - z*t + log1p(exp(-|z|))``, which never overflows nor takes ln(0); sends
    grad * (sigmoid(z) - t) to Papa and grad * -z to Mama. Like MSENode, the prediction is
    Papa and the target Mama."""
    op_code = OP_LOGLOSS
    op_name = "logloss"

cdef class NegNode(Node):
    """-Papa; sends -grad."""
    op_code = OP_NEG
    op_name = "neg"

cdef class ExpNode(Node):
    """e ** Papa; sends grad * value."""
    op_code = OP_EXP
    op_name = "exp"

cdef class LnNode(Node):
    """Natural log of Papa (nan below 0, -inf at 0); sends grad / Papa."""
    op_code = OP_LN
    op_name = "ln"

cdef class SinNode(Node):
    """sin(Papa); sends grad * cos(Papa)."""
    op_code = OP_SIN
    op_name = "sin"

cdef class CosNode(Node):
    """cos(Papa); sends -grad * sin(Papa)."""
    op_code = OP_COS
    op_name = "cos"

cdef class TanNode(Node):
    """tan(Papa); sends grad * (1 + value**2)."""
    op_code = OP_TAN
    op_name = "tan"

cdef class TanhNode(Node):
    """tanh(Papa), an activation; sends grad * (1 - value**2)."""
    op_code = OP_TANH
    op_name = "tanh"

cdef class SigmoidNode(Node):
    """1 / (1 + e ** -Papa), an activation; sends grad * value * (1 - value)."""
    op_code = OP_SIGMOID
    op_name = "sigmoid"

cdef class ReluNode(Node):
    """max(Papa, 0), an activation; sends grad where Papa > 0, else 0."""
    op_code = OP_RELU
    op_name = "relu"

cdef class AbsNode(Node):
    """|Papa|; sends grad * sign(Papa) (0 at 0)."""
    op_code = OP_ABS
    op_name = "abs"

cdef class SqrtNode(Node):
    """Square root of Papa (nan below 0); sends grad / (2 * value)."""
    op_code = OP_SQRT
    op_name = "sqrt"


cdef class CustomNode(Node):
    """An op of your own, written in Python: subclass it, say how many parents it takes, and
    define its value and its derivatives::

        class Softplus(ourdl.CustomNode):
            arity = 1                                  # Papa only (2: Papa and Mama)
            def compute(self, a, b):                   # a: Papa's value, b: Mama's (0.0)
                return math.log1p(math.exp(a))
            def derivatives(self, a, b):               # d value / d a (and / d b if binary)
                return 1.0 / (1.0 + math.exp(-a))

    ``derivatives`` returns one number for a unary op, a pair for a binary one; backward
    multiplies them by the node's gradient. Such nodes work everywhere: graphs, tapes,
    ``fit`` and ``predict``. The compiled loops call them back holding the GIL, so each
    costs a Python call a row (about a microsecond) where a built-in op costs nanoseconds.
    An exception they raise stops the pass and comes out of forward, backward, fit or
    predict as it was raised.
    """
    op_code = -1   # set from arity
    op_name = None  # "custom unary" or "custom binary", by arity
    arity = 1

    def compute(self, a, b):
        raise NotImplementedError(f"{type(self).__name__} must define compute(self, a, b)")

    def derivatives(self, a, b):
        raise NotImplementedError(f"{type(self).__name__} must define derivatives(self, a, b)")




# ----------------------------------------------------------------------------- the op registry

def _registry():
    """Every op's class, by op code: this module's node classes, each naming its op_code
    and op_name, checked against the Op enum of _ops.pxd (one class per code).

    This is the one list of ops. Adding an op takes its code and arithmetic in _ops.pxd,
    its class here and its twin in ourdl.reference; its Python name, arity, ourdl's
    exports, persistence and drawing all follow from this table."""
    by_code = {}
    for cls in list(globals().values()):
        if isinstance(cls, type) and issubclass(cls, Node) and cls.__module__ == __name__:
            for code in (OP_CUSTOM1, OP_CUSTOM2) if cls is CustomNode else (cls.op_code,):
                if code in by_code:
                    raise ImportError(f"ourdl._nodes: {by_code[code].__name__} and "
                                      f"{cls.__name__} both claim op code {code}")
                by_code[code] = cls
    if sorted(by_code) != list(range(N_OPS)):
        raise ImportError("ourdl._nodes: the node classes do not cover the Op enum of _ops.pxd")
    return tuple(by_code[code] for code in range(N_OPS))


OP_CLASSES = _registry()
_codes.update({cls: code for code, cls in enumerate(OP_CLASSES) if cls is not CustomNode})
OP_NAMES = tuple({OP_CUSTOM1: "custom unary", OP_CUSTOM2: "custom binary"}.get(code, cls.op_name)
                 for code, cls in enumerate(OP_CLASSES))
if len(set(OP_NAMES)) != N_OPS:
    raise ImportError("ourdl._nodes: two ops share a name")
# How many parents each op takes, by op code.
ARITY = tuple(arity_of(op) for op in range(N_OPS))
__all__ = [cls.__name__ for cls in dict.fromkeys(OP_CLASSES)] + ["topological_order"]
