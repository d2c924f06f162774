"""ourdl.compile(root) -> Tape: the graph flattened into arrays, and run without recursion."""
import math
import pickle
import random
import struct

import numpy as np
import pytest

import ourdl
from ourdl import reference

BINARY = ["Add", "Sub", "Mul", "Div", "Pow", "MSE", "MAE"]
UNARY = ["Neg", "Exp", "Ln", "Sin", "Cos", "Tan", "Tanh", "Sigmoid", "Relu", "Abs", "Sqrt"]
OP_NAME = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow", "MSE": "mse",
           "MAE": "mae", "Neg": "neg", "Exp": "exp", "Ln": "ln", "Sin": "sin", "Cos": "cos",
           "Tan": "tan", "Tanh": "tanh", "Sigmoid": "sigmoid", "Relu": "relu", "Abs": "abs",
           "Sqrt": "sqrt"}


def same(a, b):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return struct.pack("<d", a) == struct.pack("<d", b)


def random_spec(seed, n_leaves=5, n_ops=30):
    """A random DAG spec (shared nodes, x*x, diamonds), as in test_reference_equivalence."""
    rng = random.Random(seed)
    spec = [("leaf", rng.uniform(-2, 2), rng.choice([0, 1]), rng.choice([0.01, 0.1]))
            for _ in range(n_leaves)]
    for _ in range(n_ops):
        op = rng.choice(BINARY + UNARY)
        n = len(spec)
        papa = rng.randrange(max(0, n - 4), n) if rng.random() < 0.7 else rng.randrange(n)
        mama = (rng.choice([papa, rng.randrange(n)]) if op in BINARY else None)
        spec.append((op, papa, mama, rng.choice([0, 0, 1]), 0.05, 0.0))
    return spec


def build(lib, spec):
    nodes = []
    for entry in spec:
        if entry[0] == "leaf":
            nodes.append(lib.Node(Value=entry[1], Flag=entry[2], lr=entry[3]))
        else:
            op, papa, mama, flag, lr, value = entry
            nodes.append(getattr(lib, op + "Node")(
                nodes[papa], nodes[mama] if mama is not None else None,
                Value=value, Flag=flag, lr=lr))
    return nodes


def state(nodes):
    return [(n.value, n.grad, n.Papa_grad, n.Mama_grad) for n in nodes]


def assert_same_states(a, b):
    for i, (sa, sb) in enumerate(zip(state(a), state(b))):
        assert all(same(x, y) for x, y in zip(sa, sb)), (i, sa, sb)


# ----------------------------------------------------------------------------- structure

def test_compile_returns_a_tape_of_the_subgraph():
    x, w, b = ourdl.Node(Value=2.0), ourdl.Node(Value=3.0, Flag=1), ourdl.Node(Value=1.0)
    unrelated = ourdl.Node(Value=9.0)
    h = x * w
    out = h + b
    tape = ourdl.compile(out)
    assert type(tape) is ourdl.Tape
    assert len(tape) == 5
    assert tape.nodes == (x, w, h, b, out)  # Papa's side first, root last; fixed (a tuple)
    assert tape.ops == ["leaf", "leaf", "mul", "leaf", "add"]
    assert tape.root is out and unrelated not in tape.nodes
    assert len(ourdl.compile(h)) == 3 and ourdl.compile(h).nodes == (x, w, h)
    assert len(ourdl.compile(x)) == 1 and ourdl.compile(x).ops == ["leaf"]
    assert repr(tape).startswith("<Tape of 5 nodes")


def test_tape_parent_indices():
    x = ourdl.Node(Value=2.0)
    sq = x * x
    y = ourdl.sin(sq) + sq
    tape = ourdl.compile(y)
    assert tape.ops == ["leaf", "mul", "sin", "add"]
    assert tape.parents.tolist() == [[-1, -1], [0, 0], [1, -1], [2, 1]]


@pytest.mark.parametrize("seed", range(25))
def test_tape_nodes_are_in_topological_order(seed):
    spec = random_spec(seed)
    nodes = build(ourdl, spec)
    root = nodes[rng_root(seed, len(nodes))]
    tape = ourdl.compile(root)
    order = tape.nodes
    assert len(tape) == len(order) == len({id(n) for n in order})  # each node once
    assert order[-1] is root
    position = {id(n): k for k, n in enumerate(order)}
    # Exactly root's ancestors ...
    seen, stack = set(), [root]
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            stack += [p for p in (node.Papa, node.Mama) if p is not None]
    assert set(position) == seen
    # ... parents before children, with op names and parent indices that match.
    index = {id(n): i for i, n in enumerate(nodes)}
    for k, node in enumerate(order):
        for parent in (node.Papa, node.Mama):
            if parent is not None:
                assert position[id(parent)] < k
        entry = spec[index[id(node)]]
        assert tape.ops[k] == ("leaf" if entry[0] == "leaf" else OP_NAME[entry[0]])
        papa = position[id(node.Papa)] if node.Papa is not None else -1
        mama = position[id(node.Mama)] if node.Mama is not None else -1
        assert tape.parents[k].tolist() == [papa, mama]
    # The same order as the reference's topological_order, position by position.
    ref = build(reference, spec)
    ref_index = {id(n): i for i, n in enumerate(ref)}
    ref_order = reference.topological_order(ref[index[id(root)]])
    assert [index[id(n)] for n in order] == [ref_index[id(n)] for n in ref_order]


def rng_root(seed, n):
    return random.Random(seed * 7919).randrange(n // 2, n)


def test_every_op_has_its_name():
    a, b = ourdl.Node(Value=0.5), ourdl.Node(Value=0.25)
    for op in BINARY + UNARY:
        cls = getattr(ourdl, op + "Node")
        node = cls(a, b) if op in BINARY else cls(a)
        assert ourdl.compile(node).ops[-1] == OP_NAME[op]
        assert node.op == OP_NAME[op]


# ----------------------------------------------------------------------------- running

@pytest.mark.parametrize("seed", range(15))
def test_tape_agrees_with_node_methods(seed):
    """tape.forward()/backward() on one copy, node.forward()/backward() on another: same bits."""
    spec = random_spec(seed)
    by_node, by_tape = build(ourdl, spec), build(ourdl, spec)
    tape = ourdl.compile(by_tape[-1])
    for round_ in range(4):
        update = round_ % 2 == 1
        a, b = by_node[-1].forward(), tape.forward()
        assert type(b) is float and same(a, b)
        assert_same_states(by_node, by_tape)
        by_node[-1].backward(update=update)
        assert tape.backward(update=update) is None
        assert_same_states(by_node, by_tape)
    # And with the reference.
    ref = build(reference, spec)
    for round_ in range(4):
        ref[-1].forward()
        ref[-1].backward(update=round_ % 2 == 1)
    assert_same_states(by_tape, ref)


def test_tape_forward_backward_values():
    x, w = ourdl.Node(Value=3.0), ourdl.Node(Value=2.0, Flag=1, lr=0.5)
    y = ourdl.Node(Value=10.0)
    loss = ourdl.MSENode(x * w, y)
    tape = ourdl.compile(loss)
    assert tape.forward() == 16.0 and loss.value == 16.0
    tape.backward(update=False)
    assert (w.grad, x.grad, y.grad, w.value) == (-24.0, -16.0, 8.0, 2.0)
    tape.backward()  # update=True by default
    assert w.value == 14.0
    assert tape.forward() == (42.0 - 10.0) ** 2


def test_assignments_between_calls_are_seen():
    x, w = ourdl.Node(Value=1.0), ourdl.Node(Value=1.0, Flag=1, lr=0.1)
    root = ourdl.MSENode(x * w, ourdl.Node(Value=0.0))
    tape = ourdl.compile(root)
    for runner in (root, tape):  # the node's own cached tape, and an explicit one
        for v in (2.0, -3.0, 0.5):
            x.value = v
            assert runner.forward() == (v * w.value) ** 2
        w.value, w.lr = 2.0, 0.25
        x.value = 1.0
        runner.forward()
        runner.backward()
        assert w.value == 2.0 - 0.25 * (2.0 * 2.0 * 1.0)
        w.Flag = 0
        runner.backward()
        assert w.value == 1.0
        w.Flag = 1
        # Without a forward in between, backward uses the values as they stand (h = 2.0),
        # and where backward starts, root.grad, is read afresh too.
        root.grad = 0.5
        runner.backward(update=False)
        assert w.grad == 0.5 * (2.0 * 2.0) * 1.0
        runner.forward()
        runner.backward(update=False)
        assert w.grad == 0.5 * (2.0 * 1.0) * 1.0
        root.grad = 1.0


def test_cached_tapes_of_overlapping_roots():
    """Node.forward caches a tape per root; tapes sharing nodes see each other's updates."""
    x, w = ourdl.Node(Value=1.0), ourdl.Node(Value=1.0, Flag=1, lr=0.5)
    h = x * w
    loss_a = ourdl.MSENode(h, ourdl.Node(Value=3.0))
    loss_b = ourdl.MSENode(h, ourdl.Node(Value=-1.0))
    assert loss_a.forward() == 4.0
    loss_a.backward()
    assert w.value == 1.0 - 0.5 * (2.0 * -2.0)  # 3.0
    assert loss_b.forward() == 16.0  # loss_b's tape sees w moved by loss_a's
    assert h.value == 3.0
    loss_b.backward()
    assert w.value == 3.0 - 0.5 * (2.0 * 4.0)  # -1.0
    assert loss_a.forward() == 16.0 and h.forward() == -1.0


def test_many_tapes_for_one_root():
    spec = random_spec(99)
    a, b = build(ourdl, spec), build(ourdl, spec)
    tapes = [ourdl.compile(b[-1]) for _ in range(3)]
    for k in range(6):
        a[-1].forward()
        a[-1].backward(update=True)
        tapes[k % 3].forward()
        tapes[(k + 1) % 3].backward(update=True)
        assert_same_states(a, b)


# ----------------------------------------------------------------------------- pickling

def test_tape_pickles_to_a_tape_of_the_copied_graph():
    x, w = ourdl.Node(Value=0.5, name="x"), ourdl.Node(Value=-1.0, Flag=1, lr=0.2, name="w")
    h = x * w
    root = ourdl.MSENode(ourdl.tanh(h) + h, ourdl.Node(Value=1.0))
    tape = ourdl.compile(root)
    tape.forward()
    tape.backward(update=False)
    copy = pickle.loads(pickle.dumps(tape))
    assert type(copy) is ourdl.Tape and len(copy) == len(tape) == 7
    assert copy.ops == tape.ops and copy.parents.tolist() == tape.parents.tolist()
    assert not {id(n) for n in copy.nodes} & {id(n) for n in tape.nodes}
    assert [n.name for n in copy.nodes] == [n.name for n in tape.nodes]
    assert copy.nodes[-1] is copy.root
    assert_same_states(tape.nodes, copy.nodes)
    for t in (tape, copy):
        for _ in range(3):
            t.forward()
            t.backward()
    assert_same_states(tape.nodes, copy.nodes)
    assert copy.nodes[1].value != -1.0  # it trained


def test_compile_rejects_non_nodes():
    with pytest.raises(TypeError):
        ourdl.compile(1.0)
    with pytest.raises(TypeError):
        ourdl.compile(reference.Node())
    with pytest.raises(TypeError):
        ourdl.compile(None)


# ----------------------------------------------------------------------------- misuse
# None of these may crash the interpreter: the compiled loops trust the tape's indices.

def test_a_tapes_nodes_cannot_be_changed():
    x = ourdl.Node(Value=1.0)
    tape = ourdl.compile(x * 2.0)
    with pytest.raises(AttributeError):
        tape.nodes.append(ourdl.Node())
    with pytest.raises(AttributeError):
        tape.nodes = ()


def test_a_tape_is_built_once_and_only_by_compile():
    blank = ourdl.Tape.__new__(ourdl.Tape)
    for call in (blank.forward, blank.backward, lambda: blank.predict([[1.0]], [ourdl.Node()]),
                 lambda: blank.fit([[1.0]], [ourdl.Node()])):
        with pytest.raises(RuntimeError, match="never built"):
            call()
    assert len(blank) == 0 and blank.parents.shape == (0, 2)
    tape = ourdl.compile(ourdl.Node(Value=1.0) + 1.0)
    with pytest.raises(TypeError, match="built once"):
        tape.__init__(ourdl.Node(Value=5.0) * 3.0)
    assert tape.forward() == 2.0


def test_sorting_none_or_a_node_that_was_never_built_is_a_type_error():
    with pytest.raises(TypeError):
        ourdl.topological_order(None)
    half = ourdl.AddNode.__new__(ourdl.AddNode)
    a, b = ourdl.Node(Value=1.0), ourdl.Node(Value=2.0)
    with pytest.raises(TypeError, match="Value"):
        half.__init__(a, b, Value="x")
    assert half.Papa is None and half.Mama is None  # a failed __init__ set nothing
    with pytest.raises(TypeError, match="never built"):
        ourdl.compile(half)
    with pytest.raises(TypeError, match="never built"):
        ourdl.compile(ourdl.NegNode.__new__(ourdl.NegNode))
    half.__init__(a, b)  # nothing was set, so building it now is fine
    assert half.forward() == 3.0


@pytest.mark.parametrize("code", [-1, 99, 2 ** 40, "add"])
def test_a_subclass_with_an_unknown_op_code_is_refused(code):
    class Odd(ourdl.Node):
        op_code = code
    with pytest.raises(TypeError, match="op_code"):
        Odd(Value=1.0)


def test_a_tape_refuses_a_second_call_while_one_is_running():
    """A data object whose conversion calls back into the tape: the re-entrant call is refused,
    and the tape works again afterwards."""
    x, w, y = ourdl.Node(), ourdl.Node(Value=0.5, Flag=1), ourdl.Node()
    tape = ourdl.compile(ourdl.MSENode(x * w, y))

    class Sneaky:
        columns, dtypes = ["x", "y"], [np.dtype(float)] * 2

        def to_numpy(self, dtype):
            tape.forward()

    with pytest.raises(RuntimeError, match="in use"):
        tape.fit(Sneaky(), [x, y])
    assert w.value == 0.5
    tape.fit(np.array([[1.0, 2.0]]), [x, y])
    assert w.value == 0.5 - 0.01 * (2.0 * (0.5 - 2.0) * 1.0)
