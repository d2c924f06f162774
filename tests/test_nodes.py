"""The tutorial's node API: construction, attributes, forward/backward/updata, errors, operators.

Most tests run against both the compiled core (``ourdl``) and the plain-Python spec
(``ourdl.reference``): the two promise the same behaviour.
"""
import builtins
import math
import pickle
import struct
import warnings
from fractions import Fraction

import numpy as np
import pytest

import ourdl
from ourdl import reference

LIBS = pytest.mark.parametrize("lib", [ourdl, reference], ids=["ourdl", "reference"])

BINARY = ["AddNode", "SubNode", "MulNode", "DivNode", "PowNode", "MSENode", "MAENode"]
UNARY = ["NegNode", "ExpNode", "LnNode", "SinNode", "CosNode", "TanNode", "TanhNode",
         "SigmoidNode", "ReluNode", "AbsNode", "SqrtNode"]
FUNCTIONS = {  # ourdl.<name>: (node class, what it computes)
    "sin": ("SinNode", math.sin), "cos": ("CosNode", math.cos), "tan": ("TanNode", math.tan),
    "ln": ("LnNode", math.log), "exp": ("ExpNode", math.exp), "tanh": ("TanhNode", math.tanh),
    "sigmoid": ("SigmoidNode", lambda a: 1.0 / (1.0 + math.exp(-a))),
    "relu": ("ReluNode", lambda a: max(a, 0.0)), "abs": ("AbsNode", math.fabs),
    "sqrt": ("SqrtNode", math.sqrt),
}


def bits(x):
    return struct.pack("<d", x)


# ----------------------------------------------------------------------------- construction

@LIBS
def test_defaults(lib):
    n = lib.Node()
    assert type(n.value) is float and n.value == 0.0
    assert type(n.grad) is float and n.grad == 1.0  # the root gradient, 1 by default
    assert n.Flag == 0 and n.lr == 0.01 and n.name is None
    assert n.Papa is None and n.Mama is None
    assert n.Papa_grad == 0.0 and n.Mama_grad == 0.0


@LIBS
def test_signature_order_and_keywords(lib):
    # Node(Papa=None, Mama=None, Value=0, Flag=0, lr=0.01, name=None), positionally ...
    w = lib.Node(None, None, 2.5, 1, 0.5, "w")
    assert (w.value, w.Flag, w.lr, w.name) == (2.5, 1, 0.5, "w")
    x = lib.Node(None, None, -1)
    s = lib.AddNode(x, w, 7, 0, 0.125, "s")
    assert s.Papa is x and s.Mama is w
    assert (s.value, s.Flag, s.lr, s.name) == (7.0, 0, 0.125, "s")
    # ... and by keyword, in any order.
    m = lib.MulNode(name="m", lr=0.3, Flag=1, Value=4, Mama=x, Papa=w)
    assert m.Papa is w and m.Mama is x
    assert (m.value, m.Flag, m.lr, m.name) == (4.0, 1, 0.3, "m")
    with pytest.raises(TypeError):
        lib.Node(None, None, 1.0, 0, 0.01, "n", "too many")
    with pytest.raises(TypeError):
        lib.Node(Valeu=1.0)  # a misspelt keyword is not silently ignored


@LIBS
@pytest.mark.parametrize("given, stored", [
    (3, 3.0), (-2, -2.0), (0.1, 0.1), (np.float32(1.5), 1.5), (np.int64(-7), -7.0),
    (np.float64(2.25), 2.25), (Fraction(1, 4), 0.25), (float("inf"), float("inf")),
])
def test_numeric_values_become_floats(lib, given, stored):
    n = lib.Node(Value=given, lr=given)
    assert type(n.value) is float and n.value == stored
    assert type(n.lr) is float and n.lr == stored


@LIBS
def test_unary_and_binary_classes_take_the_tutorials_names(lib):
    x, y = lib.Node(Value=0.5), lib.Node(Value=0.25)
    for name in BINARY:
        node = getattr(lib, name)(Papa=x, Mama=y)
        assert node.Papa is x and node.Mama is y and isinstance(node, lib.Node)
    for name in UNARY:
        node = getattr(lib, name)(Papa=x)
        assert node.Papa is x and node.Mama is None and isinstance(node, lib.Node)


# ----------------------------------------------------------------------------- attributes

@LIBS
def test_papa_and_mama_are_read_only(lib):
    x, y, z = lib.Node(), lib.Node(), lib.Node()
    s = lib.AddNode(x, y)
    for attr in ("Papa", "Mama"):
        with pytest.raises(AttributeError):
            setattr(s, attr, z)
        with pytest.raises(AttributeError):
            setattr(x, attr, z)  # a leaf cannot grow parents either
        with pytest.raises(AttributeError):
            delattr(s, attr)
    assert s.Papa is x and s.Mama is y and x.Papa is None


def test_compiled_parent_grads_and_flag_are_guarded():
    n = ourdl.MulNode(ourdl.Node(), ourdl.Node())
    with pytest.raises(AttributeError):
        n.Papa_grad = 1.0
    with pytest.raises(AttributeError):
        n.Mama_grad = 1.0
    with pytest.raises(ValueError, match="Flag"):
        n.Flag = 2
    assert n.Flag == 0
    n.Flag = 1
    assert n.Flag == 1
    with pytest.raises(TypeError):
        n.value = "1.0"


@LIBS
def test_value_grad_lr_flag_name_are_assignable(lib):
    n = lib.Node(Value=1.0)
    n.value, n.grad, n.lr, n.Flag, n.name = 4.0, -2.0, 0.5, 1, "k"
    assert (n.value, n.grad, n.lr, n.Flag, n.name) == (4.0, -2.0, 0.5, 1, "k")
    n.updata()
    assert n.value == 4.0 - 0.5 * -2.0


# ----------------------------------------------------------------------------- forward/backward

@LIBS
def test_forward_returns_the_value_and_computes_the_subgraph(lib):
    x, w, b = lib.Node(Value=1.5), lib.Node(Value=-2.0, Flag=1), lib.Node(Value=0.25)
    h = lib.MulNode(x, w)
    out = lib.AddNode(h, b, Value=99.0)
    assert out.value == 99.0 and h.value == 0.0  # nothing computed at construction
    result = out.forward()
    assert type(result) is float and result == 1.5 * -2.0 + 0.25 == out.value
    assert h.value == -3.0
    assert h.forward() == -3.0  # forward works on any node, not just the last one


@LIBS
def test_backward_update_false_computes_gradients_only(lib):
    x, w = lib.Node(Value=3.0), lib.Node(Value=2.0, Flag=1, lr=0.5)
    y = lib.Node(Value=10.0)
    loss = lib.MSENode(lib.MulNode(x, w), y)
    assert loss.forward() == (6.0 - 10.0) ** 2
    loss.backward(update=False)
    m = loss.Papa
    assert loss.grad == 1.0
    assert (loss.Papa_grad, loss.Mama_grad) == (2.0 * -4.0, 8.0)
    assert (m.grad, y.grad) == (-8.0, 8.0)
    assert (m.Papa_grad, m.Mama_grad) == (-8.0 * 2.0, -8.0 * 3.0)
    assert (x.grad, w.grad) == (-16.0, -24.0)
    assert (x.value, w.value, y.value) == (3.0, 2.0, 10.0)  # nothing moved
    loss.backward()  # the default updates the trainable node, with its own lr
    assert w.value == 2.0 - 0.5 * -24.0 and (x.value, y.value) == (3.0, 10.0)
    assert loss.value == 16.0  # the update does not recompute the forward


@LIBS
def test_backward_starts_from_the_nodes_grad(lib):
    x = lib.Node(Value=3.0, Flag=1, lr=0.1)
    y = lib.MulNode(x, lib.Node(Value=5.0))
    y.forward()
    y.grad = -2.0
    y.backward()
    assert y.grad == -2.0 and x.grad == -10.0 and x.value == 3.0 - 0.1 * -10.0


@LIBS
def test_updata_and_update(lib):
    for method in ("updata", "update"):
        w = lib.Node(Value=1.0, Flag=1, lr=0.25)
        w.grad = 2.0
        assert getattr(w, method)() is None
        assert w.value == 0.5
        getattr(w, method)()
        assert w.value == 0.0
        fixed = lib.Node(Value=1.0, Flag=0, lr=0.25)
        fixed.grad = 2.0
        getattr(fixed, method)()
        assert fixed.value == 1.0


@LIBS
def test_shared_parent_gets_both_gradients(lib):
    x = lib.Node(Value=3.0)
    sq = lib.MulNode(x, x)
    assert sq.forward() == 9.0
    sq.backward(update=False)
    assert sq.Papa_grad == 3.0 and sq.Mama_grad == 3.0 and x.grad == 6.0


@LIBS
def test_assignments_between_calls_are_seen(lib):
    x, w = lib.Node(Value=1.0), lib.Node(Value=2.0, Flag=1, lr=0.5)
    f = lib.MulNode(x, w) + 1.0
    assert f.forward() == 3.0
    x.value = 4.0
    assert f.forward() == 9.0
    w.value = -1.0
    assert f.forward() == -3.0
    f.Papa.value = 1000.0  # an op node's value is recomputed, not read
    assert f.forward() == -3.0
    # lr, Flag and the root gradient, between backward calls.
    f.backward()
    assert w.value == -1.0 - 0.5 * 4.0
    w.lr = 0.25
    f.backward(update=True)
    assert w.value == -3.0 - 0.25 * 4.0
    w.Flag = 0
    f.backward()
    assert w.value == -4.0
    f.grad = 3.0
    x.Flag, x.lr = 1, 1.0
    f.backward()
    assert x.grad == 3.0 * -4.0 and x.value == 4.0 + 12.0
    assert f.forward() == 16.0 * -4.0 + 1.0


@LIBS
def test_a_single_leaf(lib):
    w = lib.Node(Value=2.0, Flag=1, lr=0.5)
    assert w.forward() == 2.0
    w.backward()
    assert w.grad == 1.0 and w.value == 1.5


# ----------------------------------------------------------------------------- errors

@LIBS
@pytest.mark.parametrize("name", BINARY)
def test_binary_op_without_both_parents(lib, name):
    cls, x = getattr(lib, name), lib.Node()
    for kwargs in ({}, {"Papa": x}, {"Mama": x}):
        with pytest.raises(ValueError, match=name):
            cls(**kwargs)


@LIBS
@pytest.mark.parametrize("name", UNARY)
def test_unary_op_takes_papa_only(lib, name):
    cls, x, y = getattr(lib, name), lib.Node(), lib.Node()
    for kwargs in ({}, {"Mama": y}, {"Papa": x, "Mama": y}):
        with pytest.raises(ValueError, match=name):
            cls(**kwargs)


@LIBS
def test_leaf_with_parents(lib):
    x = lib.Node()
    for kwargs in ({"Papa": x}, {"Mama": x}, {"Papa": x, "Mama": x}):
        with pytest.raises(ValueError, match="leaf"):
            lib.Node(**kwargs)


@LIBS
@pytest.mark.parametrize("bad", ["1.0", None, [1.0], 1 + 2j, True, object()])
@pytest.mark.parametrize("arg", ["Value", "lr"])
def test_non_numeric_value_or_lr(lib, arg, bad):
    with pytest.raises(TypeError, match=arg):
        lib.Node(**{arg: bad})
    with pytest.raises(TypeError, match=arg):
        lib.AddNode(lib.Node(), lib.Node(), **{arg: bad})


@LIBS
@pytest.mark.parametrize("bad", [1.0, "x", object(), [0]])
def test_parent_not_a_node(lib, bad):
    x = lib.Node()
    with pytest.raises(TypeError, match="Papa"):
        lib.AddNode(Papa=bad, Mama=x)
    with pytest.raises(TypeError, match="Mama"):
        lib.AddNode(Papa=x, Mama=bad)
    with pytest.raises(TypeError, match="Papa"):
        lib.SinNode(Papa=bad)


def test_nodes_of_the_two_implementations_do_not_mix():
    with pytest.raises(TypeError, match="Papa"):
        ourdl.SinNode(reference.Node())
    with pytest.raises(TypeError, match="Mama"):
        reference.AddNode(reference.Node(), ourdl.Node())


@LIBS
@pytest.mark.parametrize("bad", [2, -1, 0.5, "1", None])
def test_flag_must_be_0_or_1(lib, bad):
    with pytest.raises(ValueError, match="Flag"):
        lib.Node(Flag=bad)
    assert lib.Node(Flag=1.0).Flag == 1 and lib.Node(Flag=0).Flag == 0


# ----------------------------------------------------------------------------- operators

@LIBS
def test_operators_with_numbers_on_either_side(lib):
    x = lib.Node(Value=3.0, name="x")
    cases = [
        (x + 2, "AddNode", 5.0, False), (2 + x, "AddNode", 5.0, True),
        (x - 2, "SubNode", 1.0, False), (2 - x, "SubNode", -1.0, True),
        (x * 2, "MulNode", 6.0, False), (2 * x, "MulNode", 6.0, True),
        (x / 2, "DivNode", 1.5, False), (2 / x, "DivNode", 2 / 3, True),
        (x ** 2, "PowNode", 9.0, False), (2 ** x, "PowNode", 8.0, True),
        (x + 0.5, "AddNode", 3.5, False), (np.float64(0.5) * x, "MulNode", 1.5, True),
    ]
    for node, kind, value, number_first in cases:
        assert type(node) is getattr(lib, kind)
        const, other = (node.Papa, node.Mama) if number_first else (node.Mama, node.Papa)
        assert other is x
        assert type(const) is lib.Node and const.Flag == 0 and const.Papa is None
        assert node.forward() == value
    neg = -x
    assert type(neg) is lib.NegNode and neg.Papa is x and neg.forward() == -3.0


@LIBS
def test_operators_between_nodes(lib):
    a, b = lib.Node(Value=6.0), lib.Node(Value=-4.0)
    for node, kind, value in [(a + b, "AddNode", 2.0), (a - b, "SubNode", 10.0),
                              (a * b, "MulNode", -24.0), (a / b, "DivNode", -1.5),
                              (b ** lib.Node(Value=2.0), "PowNode", 16.0)]:
        assert type(node) is getattr(lib, kind) and node.Papa is (a if kind != "PowNode" else b)
        assert node.forward() == value
    expr = (a - 2.0) * b / (1.0 + a) ** 2.0
    assert expr.forward() == (6.0 - 2.0) * -4.0 / (1.0 + 6.0) ** 2.0


@pytest.mark.parametrize("lib", [ourdl, reference], ids=["ourdl", "reference"])
def test_builtin_abs_makes_an_abs_node(lib):
    x = lib.Node(Value=-2.5)
    node = abs(x)
    assert type(node) is lib.AbsNode and node.Papa is x and node.forward() == 2.5


def test_pow_with_a_modulus_is_refused():
    # pow(node, 3, 5) has no meaning for nodes; the reference refuses it (TypeError).
    with pytest.raises(TypeError):
        pow(reference.Node(Value=2.0), 3, 5)
    with pytest.raises(TypeError):
        pow(ourdl.Node(Value=2.0), 3, 5)


@LIBS
@pytest.mark.parametrize("fname", sorted(FUNCTIONS))
def test_functions(lib, fname):
    kind, expect = FUNCTIONS[fname]
    fn = getattr(lib, fname)
    for a in (0.3, 1.7, -0.4):
        if fname in ("ln", "sqrt") and a < 0:
            continue
        x = lib.Node(Value=a)
        node = fn(x)
        assert type(node) is getattr(lib, kind) and node.Papa is x and node.Mama is None
        assert node.forward() == expect(a)
        from_number = fn(a)  # a plain number becomes a constant leaf
        assert type(from_number.Papa) is lib.Node and from_number.Papa.value == a
        assert from_number.forward() == expect(a)
    assert fn.__name__ == fname


# ----------------------------------------------------------------------------- IEEE domains

IEEE_CASES = [  # (build from a leaf x, x's value, expected value)
    (lambda lib, x: lib.ln(x), -1.0, math.nan),
    (lambda lib, x: lib.ln(x), 0.0, -math.inf),
    (lambda lib, x: 1.0 / x, 0.0, math.inf),
    (lambda lib, x: -1.0 / x, 0.0, -math.inf),
    (lambda lib, x: x / x, 0.0, math.nan),
    (lambda lib, x: lib.sqrt(x), -1.0, math.nan),
    (lambda lib, x: lib.exp(x), 1000.0, math.inf),
    (lambda lib, x: lib.exp(x), -1000.0, 0.0),
    (lambda lib, x: lib.sigmoid(x), -1000.0, 0.0),
    (lambda lib, x: x ** (1.0 / 3.0), -8.0, math.nan),
    (lambda lib, x: x ** -1.0, 0.0, math.inf),
    (lambda lib, x: x ** 1000.0, 10.0, math.inf),
    (lambda lib, x: lib.sin(x), math.inf, math.nan),
    (lambda lib, x: lib.ln(lib.ln(x)), 0.5, math.nan),
    (lambda lib, x: lib.MSENode(x, lib.Node(Value=0.0)), 1e200, math.inf),
]


@LIBS
@pytest.mark.parametrize("case", range(len(IEEE_CASES)))
def test_ieee_domain_behaviour(lib, case):
    build, a, expected = IEEE_CASES[case]
    x = lib.Node(Value=a, Flag=1)
    y = build(lib, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a RuntimeWarning
        value = y.forward()
        y.backward(update=False)
        y.backward()
    if math.isnan(expected):
        assert math.isnan(value)
    else:
        assert value == expected
    assert isinstance(x.grad, float)


@LIBS
def test_ieee_gradients(lib):
    x = lib.Node(Value=0.0)
    y = lib.ln(x)
    assert y.forward() == -math.inf
    y.backward(update=False)
    assert x.grad == math.inf  # 1 / 0
    x.value = -1.0
    y = lib.sqrt(x)
    assert math.isnan(y.forward())
    y.backward(update=False)
    assert math.isnan(x.grad)
    y = 1.0 / x
    x.value = 0.0
    assert y.forward() == math.inf
    y.backward(update=False)
    assert y.Mama_grad == -math.inf and x.grad == -math.inf


# ----------------------------------------------------------------------------- repr and pickle

@LIBS
def test_repr(lib):
    x = lib.Node(Value=2.0, name="x")
    assert repr(x) == "Node(name='x', value=2.0, grad=1.0)"
    s = lib.AddNode(x, lib.Node(Value=-0.5))
    s.forward()
    assert repr(s) == "AddNode(value=1.5, grad=1.0)"
    assert repr(lib.sigmoid(x)) == "SigmoidNode(value=0.0, grad=1.0)"


def test_repr_is_the_references():
    def reprs(lib):
        x = lib.Node(Value=0.1, name="in")
        y = lib.tanh(x * 3.0)
        y.forward()
        y.backward(update=False)
        return [repr(n) for n in (x, y, y.Papa, y.Papa.Mama)]

    assert reprs(ourdl) == reprs(reference)
    assert reprs(ourdl)[1].startswith("TanhNode(value=0.29")


def test_pickle_round_trip_of_a_small_graph():
    x = ourdl.Node(Value=0.5, name="x")
    w = ourdl.Node(Value=-1.5, Flag=1, lr=0.125, name="w")
    h = x * w
    out = ourdl.MSENode(ourdl.tanh(h) + h, ourdl.Node(Value=2.0), name="loss")  # h shared
    out.forward()
    out.backward(update=False)
    copy = pickle.loads(pickle.dumps(out))
    # The same structure, shared node included, and the same state, node by node.
    originals, copies = ourdl.topological_order(out), ourdl.topological_order(copy)
    assert len(copies) == len(originals) == 7
    assert not set(map(id, copies)) & set(map(id, originals))
    for a, b in zip(originals, copies):
        assert type(a) is type(b)
        assert (a.value, a.grad, a.Flag, a.lr, a.name) == (b.value, b.grad, b.Flag, b.lr, b.name)
        assert (a.Papa_grad, a.Mama_grad) == (b.Papa_grad, b.Mama_grad)
    add = copy.Papa
    assert add.Papa.Papa is add.Mama  # tanh(h) + h still shares h
    # The copy trains exactly as the original, and independently of it.
    for root in (out, copy):
        root.backward()
        root.forward()
    assert [n.value for n in copies] == [n.value for n in originals]
    assert copies[1].value != -1.5 and copies[1].name == "w"
    copies[0].value = 100.0
    assert copy.forward() != out.forward()


def test_pickled_node_keeps_its_grads():
    x, y = ourdl.Node(Value=2.0), ourdl.Node(Value=5.0)
    m = x * y
    m.forward()
    m.grad = 3.0
    m.backward(update=False)
    back = pickle.loads(pickle.dumps(m, protocol=pickle.HIGHEST_PROTOCOL))
    assert (back.grad, back.Papa_grad, back.Mama_grad) == (3.0, 15.0, 6.0)
    assert (back.Papa.grad, back.Mama.grad, back.value) == (15.0, 6.0, 10.0)


# ----------------------------------------------------------------------------- the namespace

def test_star_import_keeps_the_builtins():
    namespace = {}
    exec("from ourdl import *\nfound = (compile, abs)", namespace)
    assert namespace["found"] == (builtins.compile, builtins.abs)
    assert "compile" not in namespace and "abs" not in namespace
    for name in ["Node", "AddNode", "MulNode", "MSENode", "SubNode", "DivNode", "PowNode",
                 "MAENode", "Tape", "sin", "cos", "tan", "ln", "exp", "tanh", "sigmoid",
                 "relu", "sqrt"] + UNARY:
        assert namespace[name] is getattr(ourdl, name)
    # Python's abs still works on nodes, through Node.__abs__; ourdl.abs is the function.
    assert type(namespace["found"][1](ourdl.Node(Value=-1.0))) is ourdl.AbsNode
    assert ourdl.abs(-2.0).forward() == 2.0
    assert ourdl.compile(ourdl.Node()).__class__ is ourdl.Tape
