"""ourdl's gradients against established engines (HIPS autograd, torch) and finite differences.

autograd is in the test extra and must run; torch is used when it is importable. Graphs with
shared nodes (x * x, diamonds, a node feeding several children) are the point: there the
gradient is the sum over paths, which the tutorial's recursive code got wrong.
"""
import importlib.util
import math
import pathlib

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import ourdl

try:
    import torch
except ImportError:  # torch is optional; autograd is not
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

# ----------------------------------------------------------------------------- three backends
# The same op names in ourdl, autograd and torch, so one graph spec builds in all three.


def sigmoid_np(a):
    return 1.0 / (1.0 + anp.exp(-a))


OURDL_OPS = {
    "Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b,
    "Div": lambda a, b: a / b, "Pow": lambda a, b: a ** b,
    "MSE": lambda a, b: ourdl.MSENode(a, b), "MAE": lambda a, b: ourdl.MAENode(a, b),
    "Neg": lambda a: -a, "Exp": ourdl.exp, "Ln": ourdl.ln, "Sin": ourdl.sin, "Cos": ourdl.cos,
    "Tan": ourdl.tan, "Tanh": ourdl.tanh, "Sigmoid": ourdl.sigmoid, "Relu": ourdl.relu,
    "Abs": ourdl.abs, "Sqrt": ourdl.sqrt,
}

AUTOGRAD_OPS = {
    "Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b,
    "Div": lambda a, b: a / b, "Pow": lambda a, b: a ** b,
    "MSE": lambda a, b: (a - b) ** 2, "MAE": lambda a, b: anp.abs(a - b),
    "Neg": lambda a: -a, "Exp": anp.exp, "Ln": anp.log, "Sin": anp.sin, "Cos": anp.cos,
    "Tan": anp.tan, "Tanh": anp.tanh, "Sigmoid": sigmoid_np,
    "Relu": lambda a: anp.maximum(a, 0.0), "Abs": anp.abs, "Sqrt": anp.sqrt,
}


def torch_ops():
    return {
        "Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b,
        "Div": lambda a, b: a / b, "Pow": lambda a, b: a ** b,
        "MSE": lambda a, b: (a - b) ** 2, "MAE": lambda a, b: torch.abs(a - b),
        "Neg": lambda a: -a, "Exp": torch.exp, "Ln": torch.log, "Sin": torch.sin,
        "Cos": torch.cos, "Tan": torch.tan, "Tanh": torch.tanh, "Sigmoid": torch.sigmoid,
        "Relu": torch.relu, "Abs": torch.abs, "Sqrt": torch.sqrt,
    }


BINARY = ["Add", "Sub", "Mul", "Div", "Pow", "MSE", "MAE"]
KINKED = {"Abs", "Relu", "MAE"}  # not differentiable where their argument is 0


def evaluate(ops, spec, leaves):
    """Run a graph spec: entries are ("leaf", k) or (op, papa, mama); returns every node."""
    out = []
    for entry in spec:
        if entry[0] == "leaf":
            out.append(leaves[entry[1]])
        elif entry[0] in BINARY:
            out.append(ops[entry[0]](out[entry[1]], out[entry[2]]))
        else:
            out.append(ops[entry[0]](out[entry[1]]))
    return out


def ourdl_grads(spec, values):
    """ourdl's value of the last node and its gradient for each leaf (backward without update)."""
    leaves = [ourdl.Node(Value=v, Flag=1) for v in values]
    nodes = evaluate(OURDL_OPS, spec, leaves)
    root = nodes[-1]
    value = root.forward()
    root.backward(update=False)
    assert [leaf.value for leaf in leaves] == list(values)  # update=False moved nothing
    return value, np.array([leaf.grad for leaf in leaves]), nodes


def autograd_grads(spec, values):
    f = lambda v: evaluate(AUTOGRAD_OPS, spec, [v[k] for k in range(len(values))])[-1]
    x = np.array(values, dtype=float)
    return float(f(x)), autograd.grad(f)(x)


def central_differences(spec, values, rel_step=1e-6):
    def f(vs):
        leaves = [ourdl.Node(Value=v) for v in vs]
        return evaluate(OURDL_OPS, spec, leaves)[-1].forward()

    grads = []
    for k, v in enumerate(values):
        h = rel_step * max(1.0, abs(v))
        up, down = list(values), list(values)
        up[k], down[k] = v + h, v - h
        grads.append((f(up) - f(down)) / (2.0 * h))
    return np.array(grads)


def assert_close(ours, theirs, rtol, what):
    ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    scale = max(1.0, float(np.max(np.abs(theirs))))
    assert np.allclose(ours, theirs, rtol=rtol, atol=rtol * scale), f"{what}: {ours} vs {theirs}"


# ----------------------------------------------------------------------------- every op

# Safe points (away from kinks, poles and domain edges): (a, b) for binary ops, a for unary.
POINTS = {
    "Add": [(0.3, -1.2), (2.0, 5.5)], "Sub": [(0.3, -1.2), (-4.0, 2.5)],
    "Mul": [(0.3, -1.2), (-2.5, 4.0)], "Div": [(0.3, -1.2), (-2.5, 0.7)],
    "Pow": [(1.7, 2.3), (0.4, -1.5), (2.0, 3.0), (-2.0, 3.0)],
    "MSE": [(0.3, -1.2), (2.0, 2.5)], "MAE": [(0.3, -1.2), (2.0, 2.5)],
    "Neg": [0.3, -2.0], "Exp": [0.3, -2.0, 3.5], "Ln": [0.3, 2.0, 40.0],
    "Sin": [0.3, -2.0, 4.0], "Cos": [0.3, -2.0, 4.0], "Tan": [0.3, -1.2, 2.0],
    "Tanh": [0.3, -2.0], "Sigmoid": [0.3, -2.0, 5.0], "Relu": [0.3, -2.0, 7.5],
    "Abs": [0.3, -2.0], "Sqrt": [0.3, 2.0, 50.0],
}


def single_op(op):
    return [("leaf", 0), ("leaf", 1), (op, 0, 1)] if op in BINARY else [("leaf", 0), (op, 0)]


def cases():
    return [pytest.param(op, list(point) if op in BINARY else [point], id=f"{op}-{point}")
            for op, points in POINTS.items() for point in points]


def test_every_op_has_points():
    assert set(POINTS) == set(OURDL_OPS) == set(AUTOGRAD_OPS)
    assert len(POINTS) == 18


@pytest.mark.parametrize("op, values", cases())
def test_op_gradient_matches_central_differences(op, values):
    if op == "Pow" and values[0] < 0:
        spec = [("leaf", 0), ("leaf", 1), ("Pow", 0, 1)]
        # A negative base: only the Papa gradient exists (b is an integer); check that one.
        value, grads, _ = ourdl_grads(spec, values)
        assert value == values[0] ** values[1]
        assert math.isclose(grads[0], values[1] * values[0] ** (values[1] - 1.0), rel_tol=1e-15)
        assert math.isnan(grads[1])  # d/db = a**b ln(a), and ln(-2) is nan
        return
    spec = single_op(op)
    value, grads, _ = ourdl_grads(spec, values)
    assert value == pytest.approx(autograd_grads(spec, values)[0], rel=1e-15)
    assert_close(grads, central_differences(spec, values), 1e-6, f"{op} at {values}")


@pytest.mark.parametrize("op, values", cases())
def test_op_gradient_matches_autograd(op, values):
    spec = single_op(op)
    if op == "Pow" and values[0] < 0:
        values = [-values[0], values[1]]
    value, grads, _ = ourdl_grads(spec, values)
    ag_value, ag_grads = autograd_grads(spec, values)
    assert value == pytest.approx(ag_value, rel=1e-15)
    assert_close(grads, ag_grads, 1e-13, f"{op} at {values}")


@pytest.mark.parametrize("op", sorted(POINTS))
def test_op_on_a_shared_node_matches_autograd(op):
    """op applied so that one leaf reaches it by two paths: x op sin(x), or op(x * x)."""
    if op in BINARY:
        spec = [("leaf", 0), ("Sin", 0), (op, 0, 1)]  # x op sin(x): a diamond
        values = [0.6]
    else:
        spec = [("leaf", 0), ("Mul", 0, 0), (op, 1)]  # op(x * x): x is Papa and Mama
        values = [0.7]
    value, grads, _ = ourdl_grads(spec, values)
    ag_value, ag_grads = autograd_grads(spec, values)
    assert value == pytest.approx(ag_value, rel=1e-14)
    assert_close(grads, ag_grads, 1e-12, op)
    assert_close(grads, central_differences(spec, values), 1e-6, op)


def test_gradient_sent_to_each_parent():
    """Papa_grad and Mama_grad are the partial derivatives times the node's gradient."""
    a, b = ourdl.Node(Value=1.7), ourdl.Node(Value=2.3)
    p = a ** b
    p.forward()
    p.grad = 0.5
    p.backward(update=False)
    assert math.isclose(p.Papa_grad, 0.5 * 2.3 * 1.7 ** 1.3, rel_tol=1e-15)
    assert math.isclose(p.Mama_grad, 0.5 * 1.7 ** 2.3 * math.log(1.7), rel_tol=1e-15)
    assert (a.grad, b.grad) == (p.Papa_grad, p.Mama_grad)
    d = a / b
    d.forward()
    d.backward(update=False)
    assert math.isclose(d.Papa_grad, 1 / 2.3, rel_tol=1e-15)
    assert math.isclose(d.Mama_grad, -1.7 / 2.3 ** 2, rel_tol=1e-15)


def test_pow_mama_gradient_at_zero_base():
    """d(a**b)/db at a == 0 is taken as 0 for b >= 0, where a**b is flat in b (as autograd)."""
    a, b = ourdl.Node(Value=0.0), ourdl.Node(Value=2.0)
    p = a ** b
    assert p.forward() == 0.0
    p.backward(update=False)
    assert (a.grad, b.grad) == (0.0, 0.0)
    assert_close([a.grad, b.grad], autograd_grads(single_op("Pow"), [0.0, 2.0])[1], 1e-15, "pow")


# ----------------------------------------------------------------------------- the tutorial's function

TUTORIAL_VALUES = {"x": 1.3, "k": 0.7, "g": 0.4, "h": 0.9}


def tutorial_function(x, k, g, h, sin, cos, tan, ln):
    return tan(g * sin(k * x * cos(h * ln(x) * x ** 2)))


def test_tutorial_function_is_one_expression():
    x, k, g, h = (ourdl.Node(Value=TUTORIAL_VALUES[n], Flag=1, name=n) for n in "xkgh")
    y = ourdl.tan(g * ourdl.sin(k * x * ourdl.cos(h * ourdl.ln(x) * x ** 2)))
    tape = ourdl.compile(y)
    assert tape.ops.count("leaf") == 5  # x, k, g, h and the constant 2
    assert sorted(op for op in tape.ops if op != "leaf") == sorted(
        ["tan", "mul", "sin", "mul", "mul", "cos", "mul", "mul", "ln", "pow"])
    assert type(y) is ourdl.TanNode
    expected = math.tan(0.4 * math.sin(0.7 * 1.3 * math.cos(0.9 * math.log(1.3) * 1.3 ** 2)))
    assert y.forward() == pytest.approx(expected, rel=1e-15)


def tutorial_function_grads():
    x, k, g, h = (ourdl.Node(Value=TUTORIAL_VALUES[n], Flag=1, name=n) for n in "xkgh")
    y = ourdl.tan(g * ourdl.sin(k * x * ourdl.cos(h * ourdl.ln(x) * x ** 2)))
    y.forward()
    y.backward(update=False)
    return np.array([x.grad, k.grad, g.grad, h.grad])


def test_tutorial_function_gradients_match_central_differences():
    grads = tutorial_function_grads()

    def f(vals):
        leaves = [ourdl.Node(Value=v) for v in vals]
        return tutorial_function(*leaves, ourdl.sin, ourdl.cos, ourdl.tan, ourdl.ln).forward()

    base = [TUTORIAL_VALUES[n] for n in "xkgh"]
    for i in range(4):
        h = 1e-6
        up, down = list(base), list(base)
        up[i] += h
        down[i] -= h
        fd = (f(up) - f(down)) / (2 * h)
        assert math.isclose(grads[i], fd, rel_tol=1e-7, abs_tol=1e-10), ("xkgh"[i], grads[i], fd)
    assert np.all(np.abs(grads) > 1e-3)  # every parameter matters here: not a vacuous check


def test_tutorial_function_gradients_match_autograd():
    f = lambda v: tutorial_function(v[0], v[1], v[2], v[3], anp.sin, anp.cos, anp.tan, anp.log)
    expected = autograd.grad(f)(np.array([TUTORIAL_VALUES[n] for n in "xkgh"]))
    assert_close(tutorial_function_grads(), expected, 1e-13, "the tutorial's function")


@needs_torch
def test_tutorial_function_gradients_match_torch():
    leaves = [torch.tensor(TUTORIAL_VALUES[n], dtype=torch.float64, requires_grad=True)
              for n in "xkgh"]
    y = tutorial_function(*leaves, torch.sin, torch.cos, torch.tan, torch.log)
    expected = [float(g) for g in torch.autograd.grad(y, leaves)]
    assert_close(tutorial_function_grads(), expected, 1e-13, "the tutorial's function")


def test_tutorial_function_trains():
    """Fitting k, g, h to a target with the tutorial's loop lowers the loss."""
    x, k, g, h = (ourdl.Node(Value=TUTORIAL_VALUES[n], Flag=n != "x", lr=0.1) for n in "xkgh")
    y = ourdl.tan(g * ourdl.sin(k * x * ourdl.cos(h * ourdl.ln(x) * x ** 2)))
    loss = ourdl.MSENode(y, ourdl.Node(Value=0.5))
    first = loss.forward()
    for _ in range(50):
        loss.forward()
        loss.backward()
    assert loss.forward() < 0.1 * first and x.value == TUTORIAL_VALUES["x"]


# ----------------------------------------------------------------------------- accumulation

def load_tutorial_classes():
    """The tutorial's own recursive classes, as copied in test_tutorial_programs.py."""
    path = pathlib.Path(__file__).with_name("test_tutorial_programs.py")
    spec = importlib.util.spec_from_file_location("_tutorial_oracle_for_gradients", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shared_node_receives_the_sum():
    x, a, b = ourdl.Node(Value=2.0), ourdl.Node(Value=3.0), ourdl.Node(Value=5.0)
    f = ourdl.AddNode(ourdl.MulNode(x, a), ourdl.MulNode(x, b))
    assert f.forward() == 16.0
    f.backward(update=False)
    assert x.grad == 3.0 + 5.0 and a.grad == 2.0 and b.grad == 2.0
    sq = ourdl.MulNode(x, x)
    sq.forward()
    sq.backward(update=False)
    assert x.grad == 4.0
    # autograd agrees ...
    assert autograd.grad(lambda v: v * 3.0 + v * 5.0)(2.0) == 8.0
    # ... and the tutorial's recursive code does not: each path overwrites the last.
    tutorial = load_tutorial_classes()
    sx, sa, sb = tutorial.Node(Value=2.0), tutorial.Node(Value=3.0), tutorial.Node(Value=5.0)
    sf = tutorial.AddNode(Papa=tutorial.MulNode(Papa=sx, Mama=sa),
                          Mama=tutorial.MulNode(Papa=sx, Mama=sb))
    sf.forward()
    sf.backward()
    assert sf.value == 16.0 and sx.grad == 5.0  # only the last path's share
    ssq = tutorial.MulNode(Papa=sx, Mama=sx)
    ssq.forward()
    ssq.backward()
    assert sx.grad == 2.0  # x, not 2x


def test_shared_trainable_node_steps_once_with_the_sum():
    w = ourdl.Node(Value=1.0, Flag=1, lr=0.1)
    f = w * 3.0 + w * w  # df/dw = 3 + 2w = 5
    f.forward()
    f.backward()
    assert w.grad == 5.0 and w.value == 1.0 - 0.1 * 5.0


# ----------------------------------------------------------------------------- random DAGs
# Smooth ops only, with the domain-restricted ones made safe by construction, so that every
# random graph is differentiable where it is evaluated. Shared nodes arise by reuse.

SAFE = {
    "Ln": lambda o, a: o["Ln"](o["Add"](o["Mul"](a, a), 1.0)),
    "Sqrt": lambda o, a: o["Sqrt"](o["Add"](o["Mul"](a, a), 0.5)),
    "Tan": lambda o, a: o["Tan"](o["Tanh"](a)),
    "Div": lambda o, a, b: o["Div"](a, o["Add"](o["Mul"](b, b), 1.0)),
    "Pow": lambda o, a, b: o["Pow"](o["Add"](o["Sigmoid"](a), 0.5), o["Tanh"](b)),
    "Exp": lambda o, a: o["Exp"](o["Tanh"](a)),
}
PLAIN = ["Add", "Sub", "Mul", "MSE", "MAE", "Neg", "Sin", "Cos", "Tanh", "Sigmoid", "Relu", "Abs"]


def run_random(ops, spec, leaves):
    """Evaluate a random-DAG spec in one backend; also return the kinked ops' arguments."""
    out = list(leaves)
    kinks = []
    for op, papa, mama in spec:
        args = [out[papa]] + ([out[mama]] if mama is not None else [])
        if op in SAFE:
            node = SAFE[op](ops, *args)
        else:
            node = ops[op](*args)
            if op in KINKED:
                kinks.append((op, args))
        out.append(node)
    return out, kinks


@st.composite
def random_dags(draw):
    n_leaves = draw(st.integers(1, 4))
    values = draw(st.lists(st.floats(-2.0, 2.0), min_size=n_leaves, max_size=n_leaves))
    spec = []
    for _ in range(draw(st.integers(1, 12))):
        op = draw(st.sampled_from(PLAIN + sorted(SAFE)))
        n = n_leaves + len(spec)
        papa = draw(st.integers(0, n - 1))
        binary = op in BINARY
        mama = draw(st.one_of(st.integers(0, n - 1), st.just(papa))) if binary else None
        spec.append((op, papa, mama))
    # The root combines the last node with an earlier one, so graphs branch and rejoin.
    spec.append(("Add", n_leaves + len(spec) - 1, draw(st.integers(0, n_leaves + len(spec) - 1))))
    return values, spec


def ourdl_random(values, spec):
    leaves = [ourdl.Node(Value=v) for v in values]
    nodes, kinks = run_random(OURDL_OPS, spec, leaves)
    root = nodes[-1]
    value = root.forward()
    for op, args in kinks:  # stay clear of the kinks, where engines may legitimately differ
        arg = args[0].value - args[1].value if op == "MAE" else args[0].value
        assume(abs(arg) > 1e-6)
    root.backward(update=False)
    # A leaf the root does not depend on is not visited and keeps its grad (1.0 at first):
    # its derivative is 0.
    reached = {id(node) for node in ourdl.topological_order(root)}
    return value, np.array([leaf.grad if id(leaf) in reached else 0.0 for leaf in leaves])


RANDOM_SETTINGS = settings(max_examples=150, deadline=None,
                           suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@RANDOM_SETTINGS
@given(random_dags())
def test_random_dags_match_autograd(dag):
    values, spec = dag
    value, grads = ourdl_random(values, spec)
    assume(math.isfinite(value) and abs(value) < 1e12)
    f = lambda v: run_random(AUTOGRAD_OPS, spec, [v[i] for i in range(len(values))])[0][-1]
    x = np.array(values, dtype=float)
    assert float(f(x)) == pytest.approx(value, rel=1e-12, abs=1e-12)
    assert_close(grads, autograd.grad(f)(x), 1e-9, f"spec {spec} at {values}")


@needs_torch
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(random_dags())
def test_random_dags_match_torch(dag):
    values, spec = dag
    value, grads = ourdl_random(values, spec)
    assume(math.isfinite(value) and abs(value) < 1e12)
    leaves = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    root = run_random(torch_ops(), spec, leaves)[0][-1]
    got = torch.autograd.grad(root, leaves, allow_unused=True)
    expected = np.array([0.0 if g is None else float(g) for g in got])
    assert float(root.detach()) == pytest.approx(value, rel=1e-12, abs=1e-12)
    assert_close(grads, expected, 1e-9, f"spec {spec} at {values}")


def test_a_fixed_dag_with_every_kind_of_sharing():
    """A diamond, x*x, and a node feeding three children, against autograd and torch."""
    def f(ops, x, y):
        s = ops["Sin"](x)               # s feeds three children
        d = ops["Mul"](s, s)            # s * s
        e = ops["Add"](ops["Mul"](s, y), ops["Tanh"](s))
        q = ops["Mul"](x, x)            # x * x
        return ops["Add"](ops["Sub"](d, e), ops["Div"](q, ops["Add"](ops["Exp"](y), 1.0)))

    x, y = ourdl.Node(Value=0.8), ourdl.Node(Value=-0.3)
    root = f(OURDL_OPS, x, y)
    root.forward()
    root.backward(update=False)
    ours = [x.grad, y.grad]
    expected = autograd.grad(lambda v: f(AUTOGRAD_OPS, v[0], v[1]))(np.array([0.8, -0.3]))
    assert_close(ours, expected, 1e-14, "fixed DAG")
    if torch is None:
        return
    tx, ty = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (0.8, -0.3))
    tout = f(torch_ops(), tx, ty)
    assert_close(ours, [float(g) for g in torch.autograd.grad(tout, [tx, ty])], 1e-14, "torch")
