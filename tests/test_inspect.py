"""Looking inside a graph: dump, to_dot, draw, gradcheck and named (ourdl.inspect)."""
import math
import re
import shutil
import sys

import numpy as np
import pytest

import ourdl
from ourdl import nn
from ourdl.inspect import MOST_BOXES, TRAINABLE_COLOR

from helpers import chain, tutorial_graph


def mlp_loss():
    x = [ourdl.Node(name=f"x{i}") for i in range(13)]
    out = nn.MLP([13, 16, 16, 1], seed=0)(x)
    return ourdl.MSENode(out[0], ourdl.Node(name="y"), name="loss")


def boxes_of(dot):
    return [line for line in dot.splitlines() if re.match(r"  n\d+ \[", line)]


def state(root):
    return [(n.value, n.grad, n.Papa_grad, n.Mama_grad, n.Flag, n.lr)
            for n in ourdl.topological_order(root)]


# ----------------------------------------------------------------------------- dump

def test_dump_shows_every_column_of_the_tutorial_graph():
    root = tutorial_graph()
    root.forward()
    root.backward(update=False)
    lines = ourdl.dump(ourdl.compile(root)).splitlines()
    assert lines[0] == "Tape of 13 nodes, root MSENode 'result'"
    assert lines[1].split() == ["#", "op", "name", "Papa", "Mama", "value", "grad", "Flag", "lr",
                                "kernel"]
    rows = {line.split()[0]: line.split() for line in lines[2:15]}
    assert rows["0"] == ["0", "leaf", "x1", "1.1", "0.2", "0"]
    assert rows["1"] == ["1", "leaf", "w1", "1", "0.22", "1", "0.01", "dense0"]
    assert rows["2"] == ["2", "mul", "m1", "0", "1", "1.1", "0.2", "0", "dense0"]
    assert rows["12"] == ["12", "mse", "result", "10", "11", "0.01", "1", "0"]
    assert lines[15:] == ["dense0: " + ourdl.compile(root).kernels[0]]


def test_dump_names_the_fused_kernel_of_each_node():
    tape = ourdl.compile(mlp_loss())
    lines = ourdl.dump(tape, limit=None).splitlines()
    layers = tape.layers()
    assert lines[-3:] == [f"dense{k}: {layer.describe()}" for k, layer in enumerate(layers)]
    for line in lines[2:-3]:
        i = int(line.split()[0])
        owner = [k for k, layer in enumerate(layers) if i in layer.nodes]
        assert line.endswith(f"dense{owner[0]}") if owner else "dense" not in line, line


def test_a_long_tape_is_summarized_with_the_count_left_out():
    tape = ourdl.compile(chain(1000))
    lines = ourdl.dump(tape, limit=20).splitlines()
    assert len(lines) == 2 + 20 + 1
    assert lines[12] == "... 980 rows left out (dump(tape, limit=None) shows all) ..."
    assert lines[2].split()[0] == "0" and lines[11].split()[0] == "9"
    assert lines[13].split()[0] == "990" and lines[-1].split()[0] == "999"
    assert len(ourdl.dump(tape).splitlines()) == 2 + 60 + 1  # the default limit
    assert len(ourdl.dump(tape, limit=None).splitlines()) == 2 + 1000


def test_dump_rejects_what_is_not_a_tape_or_a_limit():
    with pytest.raises(TypeError, match="dump needs a Tape"):
        ourdl.dump(tutorial_graph())
    for limit in (1, 0, -5, 2.5, True, "10"):
        with pytest.raises(ValueError, match="limit must be"):
            ourdl.dump(ourdl.compile(tutorial_graph()), limit=limit)


# ----------------------------------------------------------------------------- to_dot

def test_to_dot_draws_each_node_and_tells_papa_from_mama():
    root = tutorial_graph()
    root.forward()
    text = ourdl.to_dot(root)
    boxes = boxes_of(text)
    assert len(boxes) == 13
    assert sum(TRAINABLE_COLOR in box for box in boxes) == 3
    assert '"mul m1\\nvalue 1.1\\ngrad 1"' in text
    assert '"leaf w1\\nvalue 1\\ngrad 1\\ntrainable, lr 0.01"' in text
    papa = [line for line in text.splitlines() if 'label=" Papa"' in line]
    mama = [line for line in text.splitlines() if 'label=" Mama"' in line]
    assert len(papa) == len(mama) == 6
    assert all("dashed" in line for line in mama) and not any("dashed" in line for line in papa)
    assert "  n0 -> n2 [" in text and "  n1 -> n2 [" in text  # x1 (Papa), w1 (Mama) -> m1
    assert "value" not in ourdl.to_dot(root, values=False)


def test_to_dot_draws_an_mlp_by_layer():
    text = ourdl.to_dot(mlp_loss())
    boxes = boxes_of(text)
    assert len(boxes) == 13 + 3 + 2  # the inputs, three layers, y and the loss
    assert "dense 13 -> 16 + bias, tanh\\n656 nodes" in text
    assert "dense 16 -> 1 + bias, linear" in text
    assert len([line for line in text.splitlines() if "->" in line and "dense" not in line]) \
        == 13 + 2 + 2  # 13 inputs into layer 0, layer to layer twice, loss's two parents
    by_node = ourdl.to_dot(mlp_loss(), layers=False)
    assert by_node.count("label=") > 1500


def test_to_dot_refuses_a_graph_too_large_to_see():
    with pytest.raises(ValueError, match=f"more than the {MOST_BOXES:,}"):
        ourdl.to_dot(chain(MOST_BOXES + 1))
    with pytest.raises(TypeError, match="to_dot needs the root Node"):
        ourdl.to_dot(ourdl.compile(tutorial_graph()))
    with pytest.raises(TypeError, match="layers must be"):
        ourdl.to_dot(tutorial_graph(), layers="yes")


def test_dot_quotes_names_that_would_break_the_syntax():
    node = ourdl.Node(name='a "quoted"\\ name\nover lines')
    text = ourdl.to_dot(ourdl.NegNode(node))
    assert '"leaf a \\"quoted\\"\\\\ name\\nover lines' in text


# ----------------------------------------------------------------------------- draw

def needs_graphviz():
    pytest.importorskip("graphviz")
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot program is not installed")


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"),
                                           (".pdf", b"%PDF")])
def test_draw_renders_the_picture(tmp_path, suffix, magic):
    needs_graphviz()
    path = ourdl.draw(tutorial_graph(), tmp_path / f"tutorial{suffix}")
    assert path.read_bytes().startswith(magic)
    if suffix == ".svg":
        assert path.read_text().count("<g id=\"node") == 13


def test_draw_says_which_part_of_graphviz_is_missing(tmp_path, monkeypatch):
    path = tmp_path / "tutorial.png"
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz now fails
    with pytest.raises(ImportError, match="pip install graphviz"):
        ourdl.draw(tutorial_graph(), path)
    monkeypatch.setitem(sys.modules, "graphviz", type(sys)("graphviz"))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="Graphviz's dot program, which is not on PATH"):
        ourdl.draw(tutorial_graph(), path)
    with pytest.raises(ValueError, match=r"should end in \.png, \.svg or \.pdf"):
        ourdl.draw(tutorial_graph(), tmp_path / "tutorial.jpg")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- gradcheck

UNARY = {  # op function, a point inside its domain away from kinks
    "neg": (lambda a: -a, 0.7), "exp": (ourdl.exp, 0.3), "ln": (ourdl.ln, 1.7),
    "sin": (ourdl.sin, 0.4), "cos": (ourdl.cos, 0.4), "tan": (ourdl.tan, 0.4),
    "tanh": (ourdl.tanh, 0.4), "sigmoid": (ourdl.sigmoid, -0.6), "relu": (ourdl.relu, 0.8),
    "abs": (ourdl.abs, -0.8), "sqrt": (ourdl.sqrt, 2.5),
}
BINARY = {
    "add": ourdl.AddNode, "sub": ourdl.SubNode, "mul": ourdl.MulNode, "div": ourdl.DivNode,
    "pow": ourdl.PowNode, "mse": ourdl.MSENode, "mae": ourdl.MAENode,
    "huber": lambda a, b: ourdl.HuberNode(a, b, delta=0.3), "max": ourdl.MaxNode,
    "logloss": ourdl.LogLossNode,
}


def test_every_op_is_checked():
    """Every built-in op (ops written in Python are checked in tests/test_custom_ops.py)."""
    assert set(UNARY) | set(BINARY) | {"leaf", "custom unary", "custom binary"} == \
        set(ourdl._nodes.OP_NAMES)


@pytest.mark.parametrize("op", sorted(UNARY))
def test_gradcheck_unary_ops(op):
    apply, at = UNARY[op]
    a = ourdl.Node(Value=at, Flag=1)
    root = apply(a * 1.3)  # through a product, so the chain rule is exercised too
    error, node = ourdl.gradcheck(root)
    assert node is a and error < 1e-7, (op, error)


@pytest.mark.parametrize("op", sorted(BINARY))
def test_gradcheck_binary_ops(op):
    a, b = ourdl.Node(Value=1.3, Flag=1), ourdl.Node(Value=0.6, Flag=1)
    root = BINARY[op](ourdl.sin(a), b)
    error, node = ourdl.gradcheck(root)
    assert node in (a, b) and error < 1e-7, (op, error)


def test_gradcheck_on_the_tutorials_function_and_shared_nodes():
    x = ourdl.Node(Value=1.5)
    k, g, h = (ourdl.Node(Value=v, Flag=1, name=n) for v, n in ((0.3, "k"), (0.7, "g"),
                                                                 (0.2, "h")))
    y = ourdl.tan(g * ourdl.sin(k * x * ourdl.cos(h * ourdl.ln(x) * x ** 2)))
    assert ourdl.gradcheck(y).error < 1e-7
    assert ourdl.gradcheck(y, nodes=[x]).error < 1e-7  # an input, not trainable
    assert ourdl.gradcheck(mlp_loss()).error < 1e-7


def test_gradcheck_finds_a_wrong_gradient():
    # relu's gradient at its kink is 0 by convention; the finite difference sees the 0.5 slope
    a = ourdl.Node(Value=0.0, Flag=1)
    error, node = ourdl.gradcheck(ourdl.relu(a))
    assert node is a and error == pytest.approx(0.5)
    # a pole: the gradient is finite on either side but the difference across it is not
    b = ourdl.Node(Value=0.0, Flag=1)
    assert ourdl.gradcheck(1 / b).error == math.inf


def test_gradcheck_leaves_every_value_and_gradient_as_it_was():
    root = tutorial_graph()
    root.grad = 3.0  # a user's own seed, which the check must not use and must keep
    before = state(root)
    result = ourdl.gradcheck(root)
    assert result.error < 1e-7 and result.node.name in ("w1", "w2", "w3")
    assert state(root) == before
    root.forward()
    root.backward()
    trained = state(root)
    ourdl.gradcheck(root)
    assert state(root) == trained


def test_gradcheck_checks_its_arguments():
    root = tutorial_graph()
    with pytest.raises(ValueError, match="no trainable node"):
        ourdl.gradcheck(ourdl.sin(ourdl.Node(Value=1.0)))
    with pytest.raises(ValueError, match=r"nodes\[0\] .* is a mul node"):
        ourdl.gradcheck(root, nodes=[root.Papa.Mama])
    with pytest.raises(ValueError, match=r"nodes\[0\] .* is not in root's graph"):
        ourdl.gradcheck(root, nodes=[ourdl.Node()])
    with pytest.raises(TypeError, match=r"nodes\[1\] must be a Node"):
        ourdl.gradcheck(root, nodes=[root.Mama, 3])
    for eps in (0, -1e-6, 1, "small", True):
        with pytest.raises(ValueError, match="eps must be"):
            ourdl.gradcheck(root, eps=eps)


# ----------------------------------------------------------------------------- named

def test_named_reaches_each_node_with_its_own_name():
    root = mlp_loss()
    nodes = ourdl.named(root)
    assert nodes["x3"].name == "x3" and nodes["loss"] is root and nodes["y"] is root.Mama
    # nn.MLP names each layer's weights after the layer: every one is reachable.
    assert nodes["layer1.W[15][1]"].Flag == 1 and nodes["layer2.W[0][0]"].Flag == 1
    x = ourdl.Node(name="same")
    twice = ourdl.AddNode(x, ourdl.MulNode(ourdl.Node(name="same"), ourdl.Node(name="same")))
    with pytest.raises(KeyError, match=r"'same' names 3 nodes of this graph"):
        ourdl.named(twice)["same"]
    with pytest.raises(KeyError):
        nodes["nobody"]
    with pytest.raises(TypeError, match="named needs the root Node"):
        ourdl.named("loss")


def test_named_skips_names_it_cannot_look_up():
    a = ourdl.Node(name=["a", "list"])
    b = ourdl.Node(name=np.float64(2.0))
    assert dict(ourdl.named(a + b)) == {2.0: b}
