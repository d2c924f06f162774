"""The compiled core against ourdl.reference, bit for bit, on random graphs (hypothesis).

The same random DAG (shared nodes, x*x, diamonds, every op, values including negatives, zero,
huge and non-finite ones, random Flag and lr) is built with both implementations and driven by
the same random script of forward / backward / update / assignments. After every step every
node's value, grad, Papa_grad and Mama_grad must have the same bits (any nan equals any nan;
-0.0 and 0.0 differ).
"""
import gc
import math
import pickle
import random
import struct
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import ourdl
from ourdl import _core, reference

BINARY = ["Add", "Sub", "Mul", "Div", "Pow", "MSE", "MAE", "Huber", "Max", "LogLoss"]
UNARY = ["Neg", "Exp", "Ln", "Sin", "Cos", "Tan", "Tanh", "Sigmoid", "Relu", "Abs", "Sqrt"]
ALL_OPS = BINARY + UNARY


def same(a, b):
    """Bit-for-bit equality of two floats, with every nan equal to every nan."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return struct.pack("<d", a) == struct.pack("<d", b)


def test_same():
    assert same(1.0, 1.0) and same(math.nan, -math.nan) and same(math.inf, math.inf)
    assert not same(0.0, -0.0) and not same(1.0, math.nextafter(1.0, 2.0))
    assert not same(math.nan, 0.0) and not same(1.0, math.nan)


# ----------------------------------------------------------------------------- random graphs
# A graph spec is a list of entries, one per node, parents referring to earlier entries:
#   ("leaf", value, flag, lr)  or  (op, papa, mama or None, flag, lr, value)

nice = st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, 0.1, 1e-3, 10.0])
finite = st.floats(min_value=-12.0, max_value=12.0, allow_nan=False, allow_infinity=False)
wild = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                 st.sampled_from([math.inf, -math.inf, math.nan, 1e300, -1e300, 5e-324, 1e-200]))
values = st.one_of(nice, finite, finite, finite, wild)
flags = st.sampled_from([0, 0, 1])
lrs = st.one_of(st.just(0.01), st.floats(min_value=0.0, max_value=0.5), st.sampled_from([1.0, -0.25]))


@st.composite
def graphs(draw, max_leaves=5, max_ops=14):
    spec = []
    for _ in range(draw(st.integers(1, max_leaves))):
        spec.append(("leaf", draw(values), draw(flags), draw(lrs)))
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(ALL_OPS))
        n = len(spec)
        # Favour recent nodes (deep graphs) but reach back too (shared nodes, diamonds);
        # Papa and Mama may be the same node (x * x).
        pick = st.one_of(st.integers(max(0, n - 3), n - 1), st.integers(0, n - 1))
        papa = draw(pick)
        mama = draw(st.one_of(pick, st.just(papa))) if op in BINARY else None
        spec.append((op, papa, mama, draw(flags), draw(lrs), draw(values)))
    return spec


def build(lib, spec):
    nodes = []
    for entry in spec:
        if entry[0] == "leaf":
            _, value, flag, lr = entry
            nodes.append(lib.Node(Value=value, Flag=flag, lr=lr))
        else:
            op, papa, mama, flag, lr, value = entry
            cls = getattr(lib, op + "Node")
            mama_node = nodes[mama] if mama is not None else None
            nodes.append(cls(Papa=nodes[papa], Mama=mama_node, Value=value, Flag=flag, lr=lr))
    return nodes


STATE = ("value", "grad", "Papa_grad", "Mama_grad")


def assert_same_state(compiled, ref, when):
    for i, (c, r) in enumerate(zip(compiled, ref)):
        for attr in STATE:
            a, b = getattr(c, attr), getattr(r, attr)
            assert same(a, b), f"{when}: node {i} ({type(c).__name__}).{attr}: {a!r} != {b!r}"


# A script: steps applied to both graphs. The node index is taken modulo the graph size;
# "root" steps use that node as the root of forward/backward.
steps = st.one_of(
    st.tuples(st.just("forward"), st.integers(0, 99)),
    st.tuples(st.just("backward"), st.integers(0, 99)),
    st.tuples(st.just("backward_no_update"), st.integers(0, 99)),
    st.tuples(st.just("set_value"), st.integers(0, 99), values),
    st.tuples(st.just("set_grad"), st.integers(0, 99), values),
    st.tuples(st.just("set_lr"), st.integers(0, 99), lrs),
    st.tuples(st.just("set_flag"), st.integers(0, 99), flags),
    st.tuples(st.just("updata"), st.integers(0, 99)),
)


def apply(step, nodes):
    kind, index = step[0], step[1] % len(nodes)
    node = nodes[index]
    if kind == "forward":
        return node.forward()
    if kind == "backward":
        return node.backward()
    if kind == "backward_no_update":
        return node.backward(update=False)
    if kind == "updata":
        return node.updata()
    attr = {"set_value": "value", "set_grad": "grad", "set_lr": "lr", "set_flag": "Flag"}[kind]
    setattr(node, attr, step[2])
    return None


SETTINGS = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(graphs(), st.lists(steps, max_size=12), st.integers(1, 3))
def test_compiled_equals_reference(spec, script, rounds):
    compiled, ref = build(ourdl, spec), build(reference, spec)
    assert_same_state(compiled, ref, "construction")
    # The tutorial's loop on the last node first: forward, backward with and without update.
    for r in range(rounds):
        a, b = compiled[-1].forward(), ref[-1].forward()
        assert same(a, b), f"forward round {r}: {a!r} != {b!r}"
        assert_same_state(compiled, ref, f"forward round {r}")
        compiled[-1].backward(update=r % 2 == 1)
        ref[-1].backward(update=r % 2 == 1)
        assert_same_state(compiled, ref, f"backward round {r}")
    for k, step in enumerate(script):
        a, b = apply(step, compiled), apply(step, ref)
        assert (a is None) == (b is None)
        if a is not None:
            assert type(a) is float and same(a, b), f"step {k} {step}: {a!r} != {b!r}"
        assert_same_state(compiled, ref, f"step {k} {step}")


@SETTINGS
@given(graphs(max_leaves=6, max_ops=25), st.data())
def test_topological_order_is_the_references(spec, data):
    compiled, ref = build(ourdl, spec), build(reference, spec)
    root = data.draw(st.integers(0, len(spec) - 1))
    index_c = {id(n): i for i, n in enumerate(compiled)}
    index_r = {id(n): i for i, n in enumerate(ref)}
    order_c = [index_c[id(n)] for n in ourdl.topological_order(compiled[root])]
    order_r = [index_r[id(n)] for n in reference.topological_order(ref[root])]
    assert order_c == order_r
    # And it is a topological order of exactly root's ancestors, root last, each once.
    assert order_c[-1] == root and len(set(order_c)) == len(order_c)
    position = {i: k for k, i in enumerate(order_c)}
    ancestors, stack = set(), [root]
    while stack:
        i = stack.pop()
        if i not in ancestors:
            ancestors.add(i)
            stack += [p for p in spec[i][1:3] if spec[i][0] != "leaf" and p is not None]
    assert set(order_c) == ancestors
    for i in order_c:
        if spec[i][0] != "leaf":
            for p in spec[i][1:3]:
                if p is not None:
                    assert position[p] < position[i]


def test_every_op_is_generated_and_compared():
    """The strategy above really covers every op class the package exports (CustomNode is
    the base class of ops written in Python: tests/test_custom_ops.py)."""
    exported = {name[:-4] for name in ourdl.__all__
                if name.endswith("Node") and name not in ("Node", "CustomNode")}
    assert exported == set(ALL_OPS)
    assert {name[:-4] for name in reference.__all__
            if name.endswith("Node") and name not in ("Node", "CustomNode")} == set(ALL_OPS)


def test_every_op_of_the_registry_has_its_class_its_function_and_its_reference_twin():
    """The op registry (ourdl._nodes.OP_CLASSES) is where ourdl's names come from; each op
    must also have a twin of the same name and arity in ourdl.reference. Its gradcheck is
    tests/test_inspect.py's, which covers every name of the registry."""
    from ourdl import _nodes
    for code, (name, cls) in enumerate(zip(_nodes.OP_NAMES, _nodes.OP_CLASSES)):
        assert cls.op_code == code or cls is ourdl.CustomNode
        assert getattr(ourdl, cls.__name__) is cls and cls.__name__ in ourdl.__all__
        twin = getattr(reference, cls.__name__)
        assert twin.arity == _nodes.ARITY[code] or cls is ourdl.CustomNode, name
        if _nodes.ARITY[code] == 1 and cls is not ourdl.CustomNode:
            assert type(getattr(ourdl, name)(0.5)) is cls  # ourdl.sin(x) is SinNode(x)
        assert ourdl.Node().op == "leaf" and cls.op_name in (name, None)


# Deterministic cases hypothesis might take long to find: special values at each op.
SPECIALS = [0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, math.inf, -math.inf, math.nan, 1e300,
            -1e300, 1e-300, 5e-324, 710.0, -745.5, math.pi / 2]


@pytest.mark.parametrize("op", ALL_OPS)
def test_each_op_on_special_values(op):
    for a in SPECIALS:
        for b in SPECIALS if op in BINARY else [None]:
            leaves = [("leaf", a, 1, 0.5)] + ([("leaf", b, 0, 0.01)] if b is not None else [])
            spec = leaves + [(op, 0, 1 if b is not None else None, 0, 0.01, 0.0)]
            compiled, ref = build(ourdl, spec), build(reference, spec)
            for r in range(2):
                assert same(compiled[-1].forward(), ref[-1].forward()), (op, a, b)
                compiled[-1].backward(update=r == 1)
                ref[-1].backward(update=r == 1)
                assert_same_state(compiled, ref, f"{op}({a}, {b}) round {r}")
    # x op x: both parents the same node.
    for a in SPECIALS:
        if op in BINARY:
            spec = [("leaf", a, 1, 0.5), (op, 0, 0, 0, 0.01, 0.0)]
            compiled, ref = build(ourdl, spec), build(reference, spec)
            assert same(compiled[-1].forward(), ref[-1].forward())
            compiled[-1].backward()
            ref[-1].backward()
            assert_same_state(compiled, ref, f"{op}(x, x) at {a}")


def test_a_large_graph():
    """Beyond a few thousand nodes the compiled passes run without the GIL: same bits."""
    rng = random.Random(5)
    spec = [("leaf", rng.uniform(-1.5, 1.5), rng.choice([0, 1]), 0.01) for _ in range(40)]
    while len(spec) < 9000:
        n = len(spec)
        op = rng.choice(ALL_OPS)
        papa = n - 1 if rng.random() < 0.8 else rng.randrange(max(0, n - 50), n)
        mama = rng.randrange(n) if op in BINARY else None
        spec.append((op, papa, mama, rng.choice([0, 0, 0, 1]), 0.01, 0.0))
    compiled, ref = build(ourdl, spec), build(reference, spec)
    assert len(ourdl.compile(compiled[-1])) > 5000
    for r in range(3):
        assert same(compiled[-1].forward(), ref[-1].forward())
        compiled[-1].backward(update=r > 0)
        ref[-1].backward(update=r > 0)
        assert_same_state(compiled, ref, f"round {r}")
    finite = sum(math.isfinite(n.value) and math.isfinite(n.grad) for n in compiled)
    assert finite > 1000  # not a graph of nans compared with nans


@pytest.mark.parametrize("assigned", [
    pytest.param(np.float32(0.1), id="float32"),
    pytest.param(np.float16(0.3), id="float16"),
    pytest.param(2 ** 53 + 1, id="int-2**53+1"),
    pytest.param(np.int64(7), id="int64"), pytest.param(3, id="int"),
    pytest.param(np.float64(0.7), id="float64"),
])
def test_assigned_numbers_act_as_float64_in_both(assigned):
    """The tutorial's loop assigns whatever its data holds (x[i].value = sample[i]). The compiled
    node stores a float64; the reference must compute with the same float64, not in float32
    or in exact integer arithmetic."""
    results = []
    for lib in (ourdl, reference):
        x, w = lib.Node(), lib.Node(Value=0.3, Flag=1)
        y = lib.MSENode(x * w + x * x, lib.Node(Value=1.0))
        x.value = assigned
        first = y.forward()
        y.backward()
        results.append([first, y.forward(), w.value, w.grad, x.grad])
    assert all(same(a, b) for a, b in zip(*results)), results


# ----------------------------------------------------------------------------- squared()

def random_doubles(rng, n):
    out = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.6:  # across magnitudes, up to overflow and down to subnormals
            out.append(math.ldexp(rng.uniform(-1.0, 1.0), rng.randint(-1080, 1024)))
        elif kind < 0.8:  # arbitrary bit patterns
            out.append(struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0])
        else:  # near the fast path's bounds (1e-140, 1e140)
            out.append(rng.choice([1e-140, 1e140, -1e-140, -1e140]) * rng.uniform(0.5, 2.0))
    return out


def squared_oracle(d):
    """libm's pow(d, 2.0), as Python's ** and math.pow compute it; inf/nan where Python raises."""
    try:
        return math.pow(d, 2.0)
    except OverflowError:
        return math.inf


def test_squared_equals_libm_pow():
    rng = random.Random(20251126)
    doubles = random_doubles(rng, 400_000)
    doubles += [0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, -5e-324, 1.7976931348623157e308,
                1.3407807929942596e154, 1.3407807929942597e154, 1.4916681462400413e-154]
    mismatched = [d for d in doubles if not same(_core._squared(d), squared_oracle(d))]
    assert mismatched == []
    # The vector loop that squares a chunk's residuals: nan means "ask pow()".
    fast = _core._sure_squares(np.array(doubles))
    assert [d for d, p in zip(doubles, fast) if p == p and not same(p, squared_oracle(d))] == []
    # The test is not vacuous: libm's pow(d, 2) is not always d * d, and such d were tried.
    assert any(not same(squared_oracle(d), d * d) for d in doubles
               if math.isfinite(d) and abs(d) < 1e150)


def test_squared_near_halfway_points():
    """Where d*d lies closest to a rounding boundary, the fast path must defer to pow()."""
    rng = random.Random(7)
    close = []
    while len(close) < 3000:
        d = rng.uniform(1.0, 2.0) * 2.0 ** rng.randint(-400, 400)
        if abs(halfway_distance(d) - 0.5) < 0.08:
            close.append(d)
    assert all(same(_core._squared(d), squared_oracle(d)) for d in close)
    assert any(squared_oracle(d) != d * d for d in close)


def test_squares_near_halfway_points_in_the_tight_range():
    """For 2**-64 < |d| < 2**64, d*d is taken up to 0.48 ulp from the exact square (pow's error
    bound is smaller there): held to pow() where d*d is 0.44 to 0.5 ulp off, the cases that
    bound decides, both in the scalar and the vector code."""
    rng = random.Random(11)
    close, taken = [], 0
    while len(close) < 20_000:
        d = rng.uniform(1.0, 2.0) * 2.0 ** rng.randint(-63, 62) * rng.choice([1.0, -1.0])
        if 0.44 <= halfway_distance(d) < 0.5:
            close.append(d)
    fast = _core._sure_squares(np.array(close))
    for d, p in zip(close, fast):
        assert same(_core._squared(d), squared_oracle(d)), d
        if p == p:
            taken += 1
            assert same(p, squared_oracle(d)), d
    assert taken > 5_000  # d*d was the answer between 0.44 and 0.48 ulp, and was checked
    assert any(squared_oracle(d) != d * d for d in close)


def halfway_distance(d):
    """How far d*d is from the exact square, in units of ulp(d*d) (Veltkamp/Dekker)."""
    p = d * d
    hi = 134217729.0 * d
    hi = hi - (hi - d)
    lo = d - hi
    return abs(((hi * hi - p) + 2.0 * hi * lo) + lo * lo) / math.ulp(p)


# Where a node's state lives moves between tapes: a node's own tape, tapes of the user's that
# share its nodes, and none at all once those are gone. Whatever runs, every node must read
# what ourdl.reference gives.
tape_steps = st.one_of(
    steps,
    st.tuples(st.just("tape_forward"), st.integers(0, 99)),
    st.tuples(st.just("tape_backward"), st.integers(0, 99), st.booleans()),
    st.tuples(st.just("drop_tapes"), st.integers(0, 99)),
    st.tuples(st.just("pickle"), st.integers(0, 99)),
    st.tuples(st.just("thread_backward"), st.integers(0, 99)),
)


@SETTINGS
@given(graphs(), st.lists(tape_steps, max_size=16))
def test_nodes_read_as_the_reference_whichever_tapes_ran_them(spec, script):
    compiled, ref = build(ourdl, spec), build(reference, spec)
    tapes = {}
    for k, step in enumerate(script):
        kind, index = step[0], step[1] % len(compiled)
        if kind == "tape_forward":
            tape = tapes.setdefault(index, ourdl.compile(compiled[index]))
            a, b = tape.forward(), ref[index].forward()
            assert same(a, b), f"step {k} {step}: {a!r} != {b!r}"
        elif kind == "tape_backward":
            tapes.setdefault(index, ourdl.compile(compiled[index])).backward(update=step[2])
            ref[index].backward(update=step[2])
        elif kind == "drop_tapes":  # the state goes back into the nodes
            tapes.clear()
            gc.collect()
        elif kind == "pickle":  # the whole graph, copied: the copies go on instead
            compiled = pickle.loads(pickle.dumps(compiled))
            tapes.clear()
        elif kind == "thread_backward":
            worker = threading.Thread(target=compiled[index].backward)
            worker.start()
            worker.join()
            ref[index].backward()
        else:
            a, b = apply(step, compiled), apply(step, ref)
            assert (a is None) == (b is None)
            if a is not None:
                assert same(a, b), f"step {k} {step}: {a!r} != {b!r}"
        assert_same_state(compiled, ref, f"step {k} {step}")
        for c, r in zip(compiled, ref):
            assert same(c.lr, r.lr) and c.Flag == r.Flag, f"step {k} {step}"
