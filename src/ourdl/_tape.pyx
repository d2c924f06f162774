"""ourdl's tape: a graph flattened into arrays, and the drivers that run the compiled loops.

Data flows one way: Python ``Node`` objects -> ``Tape`` (an iterative topological sort into
flat arrays of op codes, parent indices, values and gradients) -> typed loops without the
GIL (ourdl._passes, ourdl._kernels) -> results copied back into the nodes.
"""

cimport cython
from libc.math cimport NAN
from ourdl._nodes cimport Home, Node, topological_order
from ourdl._ops cimport *
from ourdl._optim cimport N_OPTIMIZERS, OPT_ADAM, OPT_MOMENTUM, OPT_SGD, Optimizer
from ourdl._passes cimport Graph, backward_pass, forward_pass, update_pass

import copy
import hashlib
import numbers
import threading
import weakref

import numpy as np

from ourdl import _checks as checks
from ourdl import _nodes
from ourdl._nodes import OP_NAMES

# The update rules of fit, by code: the Python mirror of the enum in _optim.pxd.
OPTIMIZERS = ("sgd", "momentum", "adam")
if (len(OPTIMIZERS) != N_OPTIMIZERS or OPTIMIZERS.index("sgd") != OPT_SGD
        or OPTIMIZERS.index("momentum") != OPT_MOMENTUM or OPTIMIZERS.index("adam") != OPT_ADAM):
    raise ImportError("ourdl._tape: OPTIMIZERS and the enum in _optim.pxd disagree")

cdef enum:
    # Graphs larger than this release the GIL in forward() and backward().
    NOGIL_NODES = 4096
    # Fusion plans a tape keeps, one per pattern of fed leaves and flags.
    KEPT_PLANS = 4

# The most updates an optimizer's state may count: far from where its C counter overflows.
LARGEST_STEPS = 1 << 62


cdef Py_ssize_t _slot_before(Node parent, Py_ssize_t i, list order) except -1:
    """The tape index of a parent of node i, which the sort placed before i. Read from the
    node's scratch, and checked: code run meanwhile (a finaliser) may have compiled another
    tape through the same node."""
    cdef Py_ssize_t p = parent._slot
    if 0 <= p < i and order[p] is parent:
        return p
    for p in range(i):
        if order[p] is parent:
            return p
    raise RuntimeError(f"{parent!r} is not before its child in the tape")


cdef double _custom_value(void* tape, Py_ssize_t i, double a, double b) noexcept with gil:
    """Node i's value, by its own Python code (a CustomNode); nan after an exception, which
    the tape keeps to raise once the pass is over."""
    cdef Tape t = <Tape>tape
    if t._error is not None:
        return NAN
    t._calling = True
    try:
        value = t.nodes[i].compute(a, b)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{type(t.nodes[i]).__name__}.compute must return a number, "
                            f"not {type(value).__name__}")
        return float(value)
    except BaseException as error:
        t._error, t._aborted = error, 1
        return NAN
    finally:
        t._calling = False


cdef void _custom_grads(void* tape, Py_ssize_t i, double a, double b, double g,
                        double* to_papa, double* to_mama) noexcept with gil:
    """What node i (a CustomNode) owes its parents: g times its derivatives."""
    cdef Tape t = <Tape>tape
    to_papa[0] = to_mama[0] = NAN
    if t._error is not None:
        return
    t._calling = True
    try:
        node = t.nodes[i]
        d_papa, d_mama = checks.slopes(node, node.derivatives(a, b), arity_of(t.opcodes[i]))
        to_papa[0], to_mama[0] = g * d_papa, g * d_mama
    except BaseException as error:
        t._error, t._aborted = error, 1
    finally:
        t._calling = False


def compile(Node root not None, fuse=True):
    """Flatten root's subgraph into a Tape (the same as ``Tape(root, fuse)``).

    With ``fuse`` (the default), ``fit`` and ``predict`` run each dense layer of the graph as
    one fused kernel (see ``Tape.kernels``); the results are the same to the last bit."""
    return Tape(root, fuse)


# ----------------------------------------------------------------------------- a node's own tape
# Node.forward() and Node.backward() compile the node's subgraph once and keep the tape on the
# node (parents are fixed, so it never goes stale; values are read afresh on every call). So
# that a graph grown step by step (an RNN-style loop calling forward() on each new node) does
# not keep one tape per step, only the most recent tapes are kept, within a budget of nodes.

cdef enum:
    KEPT_TAPES = 8            # at most this many nodes keep their tape ...
    KEPT_NODES = 1 << 20      # ... and together at most this many tape slots (beyond the newest)

# Module-level C variables, out of Python's reach: _own_tape casts what it finds here.
cdef list _kept = []          # (weak reference to a node, its tape's length), oldest first
cdef Py_ssize_t _kept_nodes = 0  # their lengths, added up
# Makes each node's turn lock (Node._turn) once; re-entrant, as a finaliser run by the
# garbage collector meanwhile may call forward() too.
cdef object _turn_maker = threading.RLock()


cdef Tape _own_tape(Node node):
    """The node's own tape, made on first use. Called holding the node's turn lock, so one
    thread at a time; the kept list is consistent before anything is let go (letting go of
    a tape may run finalisers, which may come back here)."""
    global _kept_nodes
    cdef Tape tape = node._tape
    if tape is not None:
        return tape
    tape = Tape(node)
    node._tape = tape
    _kept.append((weakref.ref(node), tape.n))
    _kept_nodes += tape.n
    evicted = []
    while len(_kept) > 1 and (len(_kept) > KEPT_TAPES or _kept_nodes - tape.n > KEPT_NODES):
        ref, n = _kept.pop(0)
        _kept_nodes -= n
        evicted.append(ref)
    for ref in evicted:
        old = ref()
        if old is not None and old is not node:
            (<Node>old)._tape = None
    return tape


cdef object _turn(Node node):
    """The lock threads take turns on for node.forward() and node.backward(): the node's
    own, so it outlives a tape dropped from the kept ones while a thread still runs it."""
    if node._turn is None:
        with _turn_maker:
            if node._turn is None:
                node._turn = threading.RLock()
    return node._turn


# Threads take turns on a node's tape rather than fail, whatever its size: an op written in
# Python may release the GIL in the middle of a pass (I/O, a sleep).
def _node_forward(Node node):
    with _turn(node):
        return _own_tape(node).forward()


def _node_backward(Node node, update):
    with _turn(node):
        _own_tape(node).backward(update)


_nodes._tape_forward = _node_forward
_nodes._tape_backward = _node_backward


# ----------------------------------------------------------------------------- the tape

@cython.final
@cython.no_gc_clear  # the nodes it holds point into its arrays: it lets go of them first
cdef class Tape:
    """A graph flattened for speed: op codes, parent indices and contiguous state arrays.

    ``Tape(root)`` (or ``ourdl.compile(root)``) sorts root's subgraph once. ``forward()``,
    ``backward()``, ``fit()``, ``predict()`` and ``evaluate()`` then run typed loops over
    the arrays. While the tape runs, its nodes' state lives in those arrays (the nodes read
    and write it there), so no call copies anything in or out of the nodes; another tape
    that runs the same nodes takes them over, and hands them back when it goes.
    """

    def __init__(self, Node root not None, fuse=True):
        if self.nodes is not None:
            raise TypeError("a Tape is built once; compile the new root instead")
        # Everything is built in locals first: numpy calls may run the garbage collector,
        # and so finalisers or another thread, which may call __init__ on this tape too.
        cdef list order = topological_order(root)
        cdef Py_ssize_t n = len(order), i
        cdef Node node
        # Few allocations, sliced: a small graph built anew for every sample is flattened
        # in a few microseconds.
        cdef int[::1] opcodes = np.empty(n, dtype=np.intc)
        cdef Py_ssize_t[::1] parents = np.empty(2 * n, dtype=np.intp)  # each set below
        cdef Py_ssize_t[::1] papa = parents[:n], mama = parents[n:]
        cdef double[::1] state = np.zeros(6 * n)
        cdef double[::1] values = state[:n], grads = state[n:2 * n]
        cdef double[::1] papa_grads = state[2 * n:3 * n], mama_grads = state[3 * n:4 * n]
        cdef double[::1] lrs = state[4 * n:5 * n], consts = state[5 * n:]
        cdef unsigned char[::1] flags = np.zeros(n, dtype=np.uint8)
        for i in range(n):
            node = order[i]
            node._slot = i
            opcodes[i] = node.opcode
            consts[i] = node.s.param
            papa[i] = -1 if node.Papa is None else _slot_before(node.Papa, i, order)
            mama[i] = -1 if node.Mama is None else _slot_before(node.Mama, i, order)
        nodes = tuple(order)  # immutable: the compiled loops trust its indices
        if self.nodes is not None:  # built meanwhile, from elsewhere
            raise TypeError("a Tape is built once; compile the new root instead")
        # From here on no Python code runs until every field is set; nodes last, since a
        # tape counts as built once it has them.
        self.n = n
        self.opcodes, self.papa, self.mama = opcodes, papa, mama
        self.values, self.grads, self.lrs, self.flags = values, grads, lrs, flags
        self.papa_grads, self.mama_grads = papa_grads, mama_grads
        self.consts = consts
        self.home.values, self.home.grads, self.home.lrs = &values[0], &grads[0], &lrs[0]
        self.home.papa_grads, self.home.mama_grads = &papa_grads[0], &mama_grads[0]
        self.home.flags = &flags[0]
        self.home.lost = 1  # holds no node yet
        self.home.busy = &self._busy
        self.home.calling = &self._calling
        self.fuse = bool(fuse)
        self.root = root
        self._fed = frozenset()
        self.nodes = nodes

    def __dealloc__(self):
        # Give every node it holds its state back, into the node's own struct.
        cdef Node node
        cdef Py_ssize_t i
        if self.nodes is None:
            return
        for i in range(self.n):
            node = <Node>self.nodes[i]
            if node.home == &self.home:
                node.s.value, node.s.grad = self.values[i], self.grads[i]
                node.s.papa_grad, node.s.mama_grad = self.papa_grads[i], self.mama_grads[i]
                node.s.lr, node.s.flag = self.lrs[i], self.flags[i]
                node.home = NULL

    cdef int _hold(self) except -1:
        """Take every node's state into this tape's arrays, where the passes use it: from
        the node's own struct, or from the tape that held it last (which then counts the
        node as lost, and takes it back when it runs again). After the first call, only
        when another tape took some of them meanwhile."""
        cdef Node node
        cdef Home* other
        cdef Py_ssize_t i, k
        if self.home.lost == 0:
            return 0
        for i in range(self.n):  # all or nothing: a running call's nodes stay where it writes
            other = (<Node>self.nodes[i]).home
            if other != NULL and other != &self.home and other.busy[0]:
                raise RuntimeError(
                    f"{self.nodes[i]!r} is in use by a call running on another tape (another "
                    f"thread, a signal handler, or an op of your own calling back into its "
                    f"graph): wait until that call returns")
        for i in range(self.n):
            node = <Node>self.nodes[i]
            other = node.home
            if other == &self.home:
                continue
            if other == NULL:
                self.values[i], self.grads[i] = node.s.value, node.s.grad
                self.papa_grads[i], self.mama_grads[i] = node.s.papa_grad, node.s.mama_grad
                self.lrs[i], self.flags[i] = node.s.lr, node.s.flag
            else:
                k = node.home_slot
                self.values[i], self.grads[i] = other.values[k], other.grads[k]
                self.papa_grads[i], self.mama_grads[i] = other.papa_grads[k], other.mama_grads[k]
                self.lrs[i], self.flags[i] = other.lrs[k], other.flags[k]
                other.lost += 1
            node.home, node.home_slot = &self.home, i
        self.home.lost = 0
        return 0

    cdef list _computed(self):
        """The arrays the passes write: values, grads, Papa_grads and Mama_grads."""
        return [np.asarray(self.values), np.asarray(self.grads), np.asarray(self.papa_grads),
                np.asarray(self.mama_grads)]

    cdef int _claim(self) except -1:
        """Mark the tape in use by one call (its arrays are shared state), holding its
        nodes."""
        if self.nodes is None:
            raise RuntimeError("this Tape was never built: make one with ourdl.compile(root)")
        if self._busy:
            raise RuntimeError("this Tape is in use by another call (another thread?): give "
                               "each thread its own tape, e.g. ourdl.compile(root) in each")
        self._busy = True
        self._error, self._aborted = None, 0  # nothing from an earlier call carries over
        try:
            self._hold()
        except BaseException:
            self._busy = False
            raise
        return 0

    def __len__(self):
        return self.n if self.nodes is not None else 0

    def dump(self, limit=60):
        """The tape as a table in execution order (see ourdl.inspect.dump)."""
        from ourdl import inspect
        return inspect.dump(self, limit)

    def __str__(self):
        return self.dump()

    def __repr__(self):
        return f"<Tape of {self.n} nodes, root {self.root!r}>"

    def _repr_mimebundle_(self, **formats):  # include=, exclude=: a Cython keyword
        """In a notebook, the table as HTML (see ourdl.inspect.mimebundle)."""
        from ourdl import inspect
        return inspect.mimebundle(self, **formats)

    def __reduce__(self):
        if self.nodes is None:
            raise TypeError("a Tape that was never built cannot be pickled")
        if self._busy:  # its state is being written: a copy now would mix two moments
            raise RuntimeError("this Tape is in use by a call (fit, predict, forward...): "
                               "pickle it when the call has returned")
        state = self._opt_state
        if state is not None:  # a copy: the compiled loops write into the tape's own arrays
            state = (state[0], *(np.array(a) for a in state[1:5]), state[5], self._signature())
        return (Tape, (self.root, self.fuse), state)

    def __setstate__(self, state):
        """The optimizer's state, as pickled with the tape (None: none yet)."""
        self._claim()  # the compiled loops hold pointers into the state while they run
        try:
            self._set_optimizer_state(state)
        finally:
            self._busy = False

    cdef str _signature(self):
        """A digest of the graph's structure: optimizer state is only taken by the graph it
        was made on (another graph of the same size would index it just as well)."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(np.asarray(self.opcodes).tobytes())
        digest.update(np.asarray(self.papa).tobytes())
        digest.update(np.asarray(self.mama).tobytes())
        return digest.hexdigest()

    cdef int _set_optimizer_state(self, state) except -1:
        """Take state (from __setstate__) as the optimizer's, after checking every part: the
        compiled loops index its arrays by tape index."""
        if state is not None:
            problem = "it is not (kind, m, v, m before, v before, steps, graph)"
            if type(state) is tuple and len(state) == 7:
                kind, *arrays, t, signature = state
                # Plain copies first, then checked: what is checked is what is kept.
                arrays = [np.array(a, copy=True, subok=False) if isinstance(a, np.ndarray)
                          else None for a in arrays]
                problem = (
                    "kind is no optimizer's" if type(kind) is not int or not 0 <= kind < N_OPTIMIZERS else
                    "steps is not a count" if type(t) is not int or not 0 <= t < LARGEST_STEPS else
                    "it was made on another graph"
                    if type(signature) is not str or signature != self._signature() else
                    "its arrays are not finite float64 arrays of one value per node" if any(
                        a is None or a.dtype != np.float64
                        or a.shape != (self.n if kind != OPT_SGD else 1,)
                        or not np.isfinite(a).all() for a in arrays) else None)
            if problem is not None:
                raise ValueError(f"a pickled Tape's optimizer state does not fit its graph: "
                                 f"{problem}")
            state = [kind] + arrays + [t]
        self._opt_state = state
        return 0

    @property
    def ops(self):
        """The op name of each node, in tape order."""
        if self.nodes is None:
            return []
        return [OP_NAMES[self.opcodes[i]] for i in range(self.n)]

    @property
    def parents(self):
        """(Papa index, Mama index) of each node in tape order; -1 where there is none."""
        if self.nodes is None:
            return np.empty((0, 2), dtype=np.intp)
        return np.stack([np.asarray(self.papa), np.asarray(self.mama)], axis=1)

    cdef Graph _graph(self) noexcept nogil:
        cdef Graph G
        G.n = self.n
        G.op = &self.opcodes[0]
        G.papa = &self.papa[0]
        G.mama = &self.mama[0]
        G.values = &self.values[0]
        G.grads = &self.grads[0]
        G.papa_grads = &self.papa_grads[0]
        G.mama_grads = &self.mama_grads[0]
        G.lrs = &self.lrs[0]
        G.flags = &self.flags[0]
        G.consts = &self.consts[0]
        G.tape = <void*>self
        G.aborted = &self._aborted
        G.custom_value = _custom_value
        G.custom_grads = _custom_grads
        return G

    cdef int _raise_custom_error(self) except -1:
        """Raise what an op written in Python raised during the last pass, if it did."""
        error, self._error, self._aborted = self._error, None, 0
        if error is not None:
            raise error
        return 0

    cdef void _forward(self) noexcept nogil:
        cdef Graph G = self._graph()
        forward_pass(&G)

    cdef void _backward(self, bint update) noexcept nogil:
        cdef Graph G = self._graph()
        backward_pass(&G, self.grads[self.n - 1])  # the root's own grad: 1 unless set
        if update and not self._aborted:  # an op written in Python failed: no step on nan
            update_pass(&G)

    # Small graphs (the tutorial's) are run holding the GIL: releasing it costs more than they do.
    cpdef double forward(self):
        """Compute every node, parents first; return the root's value."""
        self._claim()
        if self.n > NOGIL_NODES:
            with nogil:
                self._forward()
        else:
            self._forward()
        self._busy = False
        self._raise_custom_error()
        return self.values[self.n - 1]

    cpdef backward(self, bint update=True):
        """Gradients of the root for every node (summed over paths), then one update step."""
        self._claim()
        if self.n > NOGIL_NODES:
            with nogil:
                self._backward(update)
        else:
            self._backward(update)
        self._busy = False
        self._raise_custom_error()

    # ------------------------------------------------------------------------- whole datasets

    cdef Py_ssize_t[::1] _input_slots(self, inputs) except *:
        """Validate the nodes that data columns feed; return their tape indices."""
        inputs = checks.node_list("inputs", inputs, "one per data column")
        if len(inputs) == 0:
            raise ValueError("inputs is empty: name the leaf that each data column feeds")
        slots = np.empty(len(inputs), dtype=np.intp)
        taken = set()
        for j, node in enumerate(inputs):
            i = self._slot_of(node, f"inputs[{j}]")
            if (<Node>node).opcode != OP_LEAF:
                raise ValueError(f"inputs[{j}] ({node!r}) is not a leaf: only leaves can be fed from data")
            if node.Flag == 1:
                raise ValueError(f"inputs[{j}] ({node!r}) is trainable (Flag == 1): data would overwrite it")
            if i in taken:
                raise ValueError(f"inputs[{j}] ({node!r}) is given twice")
            taken.add(i)
            slots[j] = i
        return slots

    def fit(self, data, inputs, epochs=1, shuffle=False, seed=None, batch_size=1, progress=False,
            optimizer=None, validation=None, callback=None, track_loss=True):
        """Train on every row of ``data``: the tutorial's per-sample loop, run in compiled code.

        For each row, column j is written into ``inputs[j].value``; then forward, backward
        and (every ``batch_size`` rows, with the gradients averaged) an update of every node
        with ``Flag == 1``, by ``optimizer`` (``ourdl.optim``; the default ``SGD()`` is the
        tutorial's ``value - lr * grad`` with each node's own lr). With ``shuffle`` the rows
        are visited in a new order each epoch, drawn from ``numpy.random.default_rng(seed)``.
        Returns one ``EpochStats`` per epoch.

        ``validation``: held-out data, ``(data, inputs)`` or data laid out as ``data``; after
        every epoch the mean root value over its rows (the held-out loss, computed as
        ``predict`` would) goes into that epoch's ``EpochStats.validation_loss``.
        ``callback(stats)`` is called after every epoch with its ``EpochStats`` and every
        node as the general passes leave it; returning True stops training there, as if
        that epoch were the last. Values and lrs it sets are used from the next epoch on; a
        Flag it changes, from the next fit. ``track_loss=False`` leaves the training loss out
        (``EpochStats.loss`` is None): the tutorial's linear model then skips computing it,
        about a tenth of its epoch; other graphs compute it anyway, to check it.

        Bad input raises before anything changes. Divergence raises ``FloatingPointError``
        with the parameters (and the optimizer's state) as they were before the bad update.
        Ctrl-C stops within milliseconds, with both at the last completed update.
        """
        from ourdl import _driver
        return _driver.fit(self, data, inputs, epochs, shuffle, seed, batch_size, progress,
                           optimizer, validation, callback, track_loss)

    def reset_optimizer(self):
        """Forget the optimizer's state (momentum, moments, step count): the next fit starts
        it afresh. A fit with another kind of optimizer does this by itself."""
        self._claim()
        try:
            self._opt_state = None
        finally:
            self._busy = False

    cdef Optimizer _optimizer(self, tuple settings) except *:
        """The optimizer (settings checked by checks.optimizer_settings) as the compiled loops
        take it, with the state this tape keeps for it."""
        cdef int kind = settings[0]
        cdef Py_ssize_t size = self.n if kind != OPT_SGD else 1  # SGD keeps no state
        lr, beta1, beta2, eps = settings[1:]
        if self._opt_state is None or self._opt_state[0] != kind:
            # m, v, m before, v before (one slot per node), and the steps taken
            self._opt_state = [kind] + [np.zeros(size) for _ in range(4)] + [0]
        cdef double[::1] m = self._opt_state[1], v = self._opt_state[2]
        cdef double[::1] m_before = self._opt_state[3], v_before = self._opt_state[4]
        if not m.shape[0] == v.shape[0] == m_before.shape[0] == v_before.shape[0] == size:
            raise SystemError("ourdl: the optimizer's state does not fit the tape")  # never expected
        cdef Optimizer O
        O.kind, O.lr, O.beta1, O.beta2, O.eps = kind, lr, beta1, beta2, eps
        O.m, O.v, O.m_before, O.v_before = &m[0], &v[0], &m_before[0], &v_before[0]
        O.t = self._opt_state[5]
        O.bc1 = O.sqrt_bc2 = 1.0
        return O

    def predict(self, data, inputs, output=None):
        """The value of ``output`` for every row of ``data``.

        Column j of ``data`` feeds ``inputs[j]``, as in ``fit``. ``output`` defaults to the
        root; but when the root is a loss (MSE, MAE, Huber) and ``inputs`` leave out its target (a
        leaf that fit fed from data), to the prediction: the loss's other parent. An output
        that depends on a leaf that fit fed from data must be given that leaf's column: its
        value would be whatever the last row left there. Runs forward only, a row or a block
        of rows at a time in compiled code, and changes nothing in the graph. Returns a
        float64 array.
        """
        from ourdl import _driver
        return _driver.predict(self, data, inputs, output)

    def evaluate(self, data, inputs):
        """The mean root value (the loss) over the rows of ``data``; changes nothing."""
        return float(np.mean(self.predict(data, inputs)))

    cdef Py_ssize_t _slot_of(self, node, str what) except -1:
        if not isinstance(node, Node):
            raise TypeError(f"{what} must be a Node, not {type(node).__name__}")
        if self._index is None:
            self._index = {id(node): i for i, node in enumerate(self.nodes)}
        i = self._index.get(id(node), -1)
        if i < 0:
            raise ValueError(f"{what} ({node!r}) is not a node of this tape: the root's graph "
                             f"never reads it")
        return i

    def layers(self, inputs=()):
        """The layers that run as fused kernels when ``inputs`` are fed from data (a layer's
        weights are never fed), as ``ourdl._fusion`` layers of tape indices: ``Layer`` (dense),
        ``SharedLayer`` (shared weights: convolutions), ``MaxLayer`` (max-pooling) and
        ``SoftmaxLayer`` (a softmax cross-entropy head), each with its ``kind``."""
        if self.nodes is None:
            return []
        inputs = checks.node_list("inputs", inputs, "the leaves data feeds")
        self._claim()
        try:
            layers = self._plan(self._input_slots(inputs) if len(inputs) else ())[0]
        finally:
            self._busy = False
        return copy.deepcopy(layers)  # the tape's own stay as ourdl._fusion made them

    cdef tuple _plan(self, slots):
        """(layers, steps) of ourdl._fusion.plan with the leaves at slots fed from data. Kept
        for the last few (fed leaves, flags) seen: which nodes train decides what can be fused,
        and a loop that freezes and unfreezes parameters must not grow the tape without end.
        Every consumer checks a plan's indices again before its loops use them."""
        if not self.fuse:
            return [], []
        fed = frozenset(int(i) for i in slots)
        key = (fed, bytes(self.flags))
        if self._layers is None:
            self._layers = {}
        plan = self._layers.pop(key, None)  # and put back last: the most recently used
        if plan is None:
            from ourdl import _fusion
            # Copies: the planner is Python, and must not reach the tape's own arrays.
            plan = _fusion.plan(np.array(self.opcodes), np.array(self.papa),
                                np.array(self.mama), np.array(self.flags), fed)
            while len(self._layers) >= KEPT_PLANS:
                del self._layers[next(iter(self._layers))]
        self._layers[key] = plan
        return plan

    @property
    def kernels(self):
        """What the compiler made of this tape: one line per fused layer (which nodes, which
        kernel); every other node runs one by one in the general passes."""
        layers = self.layers()
        inside = sum(len(layer.nodes) for layer in layers)
        return [layer.describe() for layer in layers] + [
            f"general passes: {self.n - inside} nodes, one by one"]
