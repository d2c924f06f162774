"""What a notebook shows for a node (its graph as SVG), a tape (its table as HTML) and an nn
layer (a picture of what it wires), and the text alone where no picture can be made."""
import shutil
import sys
import xml.etree.ElementTree as ET

import pytest

import ourdl
from ourdl import nn
from ourdl.inspect import SHOWN_BOXES, mimebundle

SVG = "{http://www.w3.org/2000/svg}"


def needs_graphviz():
    pytest.importorskip("graphviz")
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot program is not installed")


def tutorial_graph():
    """The tutorial's first graph, as its program writes it (no names)."""
    x = [ourdl.Node(Value=v) for v in (1.1, 2, 3)]
    w = [ourdl.Node(Value=1, Flag=1) for _ in range(3)]
    m = [ourdl.MulNode(Papa=x[i], Mama=w[i]) for i in range(3)]
    a2 = ourdl.AddNode(Papa=ourdl.AddNode(Papa=m[0], Mama=m[1]), Mama=m[2])
    return ourdl.MSENode(Papa=a2, Mama=ourdl.Node(Value=6), Value=20)


def svg_texts(svg):
    """The SVG parsed as XML (which fails on anything malformed), and its lines of text."""
    tree = ET.fromstring(svg)
    assert tree.tag == f"{SVG}svg"
    return tree, [t.text.strip() for t in tree.iter(f"{SVG}text")]


def boxes(tree):
    return [g for g in tree.iter(f"{SVG}g") if g.get("class") == "node"]


LAYERS = [nn.Linear(13, 16, activation="tanh"), nn.MLP([13, 16, 16, 1], seed=0),
          nn.Conv2d(1, 8, 3, activation="relu"), nn.MaxPool2d(2)]


# ----------------------------------------------------------------------------- pictures

def test_a_node_shows_its_graph_as_svg():
    needs_graphviz()
    root = tutorial_graph()
    root.forward()
    bundle = root._repr_mimebundle_(include=None, exclude=None)
    assert set(bundle) == {"text/plain", "image/svg+xml"}
    assert bundle["text/plain"] == repr(root)
    tree, texts = svg_texts(bundle["image/svg+xml"])
    assert len(boxes(tree)) == 13
    assert {"mul#2", "leaf#1", "mse#12", "value 0.01"} <= set(texts)


def test_a_layer_shows_what_it_wires():
    needs_graphviz()
    expected = [["13 inputs", "Linear 13 -> 16 + bias, tanh", "224 trainable nodes",
                 "16 outputs"],
                ["13 inputs", "layer0: Linear 13 -> 16 + bias, tanh", "224 trainable nodes",
                 "16", "layer1: Linear 16 -> 16 + bias, tanh", "272 trainable nodes", "16",
                 "layer2: Linear 16 -> 1 + bias, linear", "17 trainable nodes", "1 output"],
                ["image, 1 channel", "Conv2d 1 -> 8 channels + bias, relu",
                 "3x3 kernel, stride 1, padding 0", "80 trainable nodes", "image, 8 channels"],
                ["image", "MaxPool2d 2x2, stride 2", "image"]]
    for layer, lines in zip(LAYERS, expected):
        bundle = layer._repr_mimebundle_()
        assert set(bundle) == {"text/plain", "image/svg+xml"}
        assert bundle["text/plain"] == repr(layer)
        _, texts = svg_texts(bundle["image/svg+xml"])
        assert sorted(texts) == sorted(lines), layer


def test_an_mlp_graph_is_shown_one_box_per_layer():
    needs_graphviz()
    x = [ourdl.Node(name=f"x{i}") for i in range(13)]
    loss = ourdl.MSENode(nn.MLP([13, 16, 16, 1], seed=0)(x)[0], ourdl.Node(name="y"))
    assert len(ourdl.compile(loss)) > 1500
    tree, texts = svg_texts(mimebundle(loss)["image/svg+xml"])
    assert len(boxes(tree)) == 13 + 3 + 2  # the inputs, three layers, y and the loss
    assert "dense 13 -> 16 + bias, tanh" in texts


def test_a_graph_too_large_to_see_is_shown_as_text():
    needs_graphviz()
    node = ourdl.Node(Value=0.5, Flag=1)
    for _ in range(SHOWN_BOXES - 1):
        node = ourdl.sin(node)
    assert "image/svg+xml" in mimebundle(node)  # SHOWN_BOXES boxes: still drawn
    node = ourdl.sin(node)
    assert mimebundle(node) == {"text/plain": repr(node)}


# ----------------------------------------------------------------------------- the table

def test_a_tape_shows_its_table_as_html():
    root = tutorial_graph()
    root.forward()
    tape = ourdl.compile(root)
    bundle = tape._repr_mimebundle_(include=None, exclude=None)
    assert set(bundle) == {"text/plain", "text/html"}
    assert bundle["text/plain"] == repr(tape)
    page = ET.fromstring(bundle["text/html"])  # well-formed: parses as XML
    assert page.find("p/b").text == "Tape of 13 nodes, root MSENode mse#12"
    assert [th.text for th in page.iter("th")] == ["#", "op", "name", "Papa", "Mama", "value",
                                                    "grad", "Flag", "lr", "kernel"]
    rows = [[td.text or "" for td in tr.iter("td")] for tr in page.find("table/tbody")]
    assert len(rows) == 13
    assert rows[2] == ["2", "mul", "mul#2", "0", "1", "1.1", "1", "0", "", "dense0"]
    assert page.find("p/code").text == "dense0: " + tape.kernels[0]


def test_a_long_tape_is_summarized_and_names_are_escaped():
    node = ourdl.Node(Value=0.5, Flag=1, name='<b>"x" & y</b>')
    for _ in range(999):
        node = ourdl.sin(node)
    page = ET.fromstring(mimebundle(ourdl.compile(node))["text/html"])
    rows = list(page.find("table/tbody"))
    assert len(rows) == 60 + 1
    assert rows[30].find("td/i").text == ("... 940 rows left out (dump(tape, limit=None) shows "
                                          "all) ...")
    assert rows[0].findall("td")[2].text == '<b>"x" & y</b>'


# ----------------------------------------------------------------------------- without Graphviz

def test_without_the_dot_program_a_node_and_a_layer_show_text(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no dot on PATH
    assert shutil.which("dot") is None
    root = tutorial_graph()
    assert root._repr_mimebundle_() == {"text/plain": repr(root)}
    for layer in LAYERS:
        assert layer._repr_mimebundle_() == {"text/plain": repr(layer)}
    assert "text/html" in ourdl.compile(root)._repr_mimebundle_()  # a table needs no dot


def test_without_the_graphviz_package_a_node_and_a_layer_show_text(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz now fails
    root = tutorial_graph()
    assert root._repr_mimebundle_() == {"text/plain": repr(root)}
    for layer in LAYERS:
        assert layer._repr_mimebundle_() == {"text/plain": repr(layer)}


def test_dot_failing_leaves_the_text(monkeypatch):
    graphviz = pytest.importorskip("graphviz")
    needs_graphviz()

    def broken(self, *args, **kwargs):
        raise graphviz.CalledProcessError(1, ["dot"], stderr=b"dot: out of memory")
    monkeypatch.setattr(graphviz.Source, "pipe", broken)
    root = tutorial_graph()
    assert root._repr_mimebundle_() == {"text/plain": repr(root)}


# ----------------------------------------------------------------------------- IPython's side

def test_only_the_formats_asked_for_are_made(monkeypatch):
    root = tutorial_graph()
    monkeypatch.setattr(ourdl.inspect, "_svg", lambda obj: pytest.fail("drew a picture"))
    assert root._repr_mimebundle_(include={"text/plain"}) == {"text/plain": repr(root)}
    assert root._repr_mimebundle_(exclude={"image/svg+xml"}) == {"text/plain": repr(root)}
    tape = ourdl.compile(root)
    assert set(tape._repr_mimebundle_(exclude={"text/html"})) == {"text/plain"}


def test_ipython_finds_the_pictures_and_the_table():
    formatters = pytest.importorskip("IPython.core.formatters")
    needs_graphviz()
    shown = formatters.DisplayFormatter()
    root = tutorial_graph()
    data, _ = shown.format(root)
    assert data["text/plain"] == repr(root) and data["image/svg+xml"].lstrip().startswith("<")
    data, _ = shown.format(ourdl.compile(root))
    assert data["text/html"].startswith('<div class="ourdl-tape">')
    data, _ = shown.format(LAYERS[1])
    assert "layer2: Linear 16 &#45;&gt; 1 + bias, linear" in data["image/svg+xml"]


def test_mimebundle_says_what_it_shows():
    with pytest.raises(TypeError, match="mimebundle shows a Node, a Tape or an nn layer, not int"):
        mimebundle(3)
