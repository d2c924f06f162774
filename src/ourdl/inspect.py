"""Looking inside a graph: the tape as a table, the graph as a picture, a gradient check.

- ``dump(tape)`` (also ``Tape.dump()`` and ``print(tape)``): one row per node in execution
  order, with the fused kernel each node runs in.
- ``to_dot(root)`` and ``draw(root, path)``: the graph in Graphviz's DOT language, and
  rendered to a picture; large networks are drawn one box per dense layer.
- ``gradcheck(root)``: the gradients of ``backward`` against central finite differences.
- ``named(root)``: the nodes of a graph by name (after ``ourdl.load``, say).

Nothing here changes a graph: every function leaves each node as it found it.
"""
import math
import shutil
from collections import namedtuple
from collections.abc import Mapping
from pathlib import Path

from ourdl import _files
from ourdl._core import Node, Tape, compile, topological_order

__all__ = ["GradCheck", "dump", "draw", "gradcheck", "named", "to_dot"]

LEAF = "leaf"


def _number(x):
    return f"{x:.6g}"


def _name(node, width=None):
    if node.name is None:
        return ""
    text = str(node.name)
    return text if width is None or len(text) <= width else text[:width - 1] + "…"


# ----------------------------------------------------------------------------- the table

def dump(tape, limit=60):
    """The tape as a table, one row per node in execution order (the root last).

    Columns: tape index, op, name, the tape indices of Papa and Mama, value, grad, Flag, lr
    (shown for trainable nodes only: it moves nothing else), and the fused kernel the node
    runs in (``dense0``, ... as listed under the table; blank: the general passes). A tape of
    more than ``limit`` nodes shows its first and last ``limit // 2`` rows and says how many
    it left out; ``limit=None`` shows every row.
    """
    if not isinstance(tape, Tape):
        raise TypeError(f"dump needs a Tape (ourdl.compile(root)), not {type(tape).__name__}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 2):
        raise ValueError(f"limit must be a whole number of at least 2, or None, not {limit!r}")
    n = len(tape)
    if n == 0:
        return "Tape of 0 nodes (never built)"
    nodes, ops, parents = tape.nodes, tape.ops, tape.parents
    layers = tape.layers()
    kernel = {}
    for k, layer in enumerate(layers):
        for i in layer.nodes:
            kernel[i] = f"dense{k}"
    shown = range(n) if limit is None or n <= limit else [
        *range(limit // 2), None, *range(n - limit // 2, n)]

    def row(i):
        node = nodes[i]
        papa, mama = (str(p) if p >= 0 else "" for p in parents[i])
        trainable = node.Flag == 1
        return [str(i), ops[i], _name(node, 24), papa, mama, _number(node.value),
                _number(node.grad), str(node.Flag), _number(node.lr) if trainable else "",
                kernel.get(i, "")]

    header = ["#", "op", "name", "Papa", "Mama", "value", "grad", "Flag", "lr", "kernel"]
    rows = [header] + [row(i) if i is not None else None for i in shown]
    widths = [max(len(r[c]) for r in rows if r is not None) for c in range(len(header))]
    right = {0, 3, 4, 5, 6, 7, 8}  # numbers line up on the right

    def line(r):
        cells = [cell.rjust(w) if c in right else cell.ljust(w)
                 for c, (cell, w) in enumerate(zip(r, widths))]
        return "  ".join(cells).rstrip()

    root = nodes[-1]
    label = f" {root.name!r}" if root.name is not None else ""
    out = [f"Tape of {n:,} node{'s' * (n != 1)}, root {type(root).__name__}{label}"]
    for r in rows:
        out.append(line(r) if r is not None else f"... {n - len(shown) + 1:,} rows left out "
                                                 f"(dump(tape, limit=None) shows all) ...")
    for k, layer in enumerate(layers):
        out.append(f"dense{k}: {layer.describe()}")
    return "\n".join(out)


# ----------------------------------------------------------------------------- pictures

LAYERS_ABOVE = 100      # to_dot draws a graph by layer from this many nodes on
MOST_BOXES = 2000       # more boxes than this would not make a readable picture
TRAINABLE_COLOR = "#ffd966"
LEAF_COLOR = "#dde8f5"
LAYER_COLOR = "#c9e4c5"
EDGE_STYLES = {"Papa": 'color="#1f4e9c", fontcolor="#1f4e9c"',
               "Mama": 'color="#c0392b", fontcolor="#c0392b", style=dashed'}


def _dot_string(text):
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(root, layers=None, values=True):
    """Graphviz DOT text of root's graph, parents above children.

    Each box shows the op and the name, and (with ``values``) the value and grad; trainable
    nodes (``Flag == 1``) are yellow and leaves ellipses. Edges from Papa are solid blue,
    from Mama dashed red. With ``layers`` (default: for graphs of ``LAYERS_ABOVE`` nodes or
    more) each dense layer the compiler fuses (see ``Tape.kernels``) is one green box and
    edges between the same two boxes are drawn once. A graph that would still need more than
    ``MOST_BOXES`` boxes is refused with a ValueError.
    """
    if not isinstance(root, Node):
        raise TypeError(f"to_dot needs the root Node of a graph, not {type(root).__name__}")
    if not isinstance(values, bool):
        raise TypeError(f"values must be True or False, not {values!r}")
    if layers is not None and not isinstance(layers, bool):
        raise TypeError(f"layers must be True, False or None (by size), not {layers!r}")
    tape = compile(root)
    n = len(tape)
    if layers is None:
        layers = n >= LAYERS_ABOVE
    found = tape.layers() if layers else []
    box = list(range(n))  # the box each node is drawn in: its own, or its layer's
    for k, layer in enumerate(found):
        for i in layer.nodes:
            box[i] = n + k
    boxes = sorted(set(box))
    if len(boxes) > MOST_BOXES:
        raise ValueError(f"the graph of {n:,} nodes would need {len(boxes):,} boxes, more than "
                         f"the {MOST_BOXES:,} a picture can show; dump(ourdl.compile(root)) "
                         f"prints it as a table instead")
    lines = ["digraph ourdl {",
             '  graph [rankdir=TB, nodesep=0.3, ranksep=0.45, fontname="Helvetica"];',
             '  node [shape=box, style="rounded,filled", fillcolor=white, fontname="Helvetica", '
             'fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=9, arrowsize=0.7];']
    for b in boxes:
        if b >= n:
            layer = found[b - n]
            label = f"{layer.describe().split(' (')[0]}\n{len(layer.nodes):,} nodes"
            color = _dot_string(LAYER_COLOR)
            lines.append(f"  n{b} [label={_dot_string(label)}, fillcolor={color}];")
            continue
        node = tape.nodes[b]
        trainable, leaf = node.Flag == 1, tape.ops[b] == LEAF
        label = " ".join(part for part in (tape.ops[b], _name(node, 32)) if part)
        if values:
            label += f"\nvalue {_number(node.value)}\ngrad {_number(node.grad)}"
        if trainable:
            label += f"\ntrainable, lr {_number(node.lr)}"
        color = TRAINABLE_COLOR if trainable else LEAF_COLOR if leaf else "white"
        attributes = [f"label={_dot_string(label)}", f"fillcolor={_dot_string(color)}"]
        if leaf:
            attributes.append("shape=ellipse")
        if trainable:
            attributes.append("penwidth=2")
        lines.append(f"  n{b} [{', '.join(attributes)}];")
    drawn = set()
    for i, (papa, mama) in enumerate(tape.parents):
        for parent, role in ((papa, "Papa"), (mama, "Mama")):
            if parent < 0 or box[parent] == box[i]:
                continue
            edge = (box[parent], box[i], role if box[i] < n else "")
            if edge in drawn:
                continue
            drawn.add(edge)
            style = f'{EDGE_STYLES[role]}, label=" {role}"' if box[i] < n else 'color="#555555"'
            lines.append(f"  n{edge[0]} -> n{edge[1]} [{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


FORMATS = ("png", "svg", "pdf")


def draw(root, path, **options):
    """Render ``to_dot(root, **options)`` to ``path``, in the format its extension names
    (.png, .svg or .pdf). Needs the ``graphviz`` Python package (``pip install graphviz``)
    and Graphviz's ``dot`` program; an ImportError or a RuntimeError says which is missing.
    The file is written whole or not at all; returns its path."""
    path = Path(path)
    kind = path.suffix[1:].lower()
    if kind not in FORMATS:
        raise ValueError(f"draw: {path} should end in .png, .svg or .pdf (the format of the "
                         f"picture), not {path.suffix or 'no extension'}")
    try:
        import graphviz
    except ImportError:
        raise ImportError("draw needs the graphviz Python package, which is not installed: pip "
                          "install graphviz (and Graphviz itself for its dot program)") from None
    if shutil.which("dot") is None:
        raise RuntimeError("draw needs Graphviz's dot program, which is not on PATH: install "
                           "Graphviz (apt install graphviz, brew install graphviz, or "
                           "https://graphviz.org/download/); to_dot(root) gives the text alone")
    _files.check_output(path)
    picture = graphviz.Source(to_dot(root, **options)).pipe(format=kind)
    with _files.open_output(path) as file:
        file.write(picture)
    return path


# ----------------------------------------------------------------------------- gradient check

GradCheck = namedtuple("GradCheck", "error node")
GradCheck.__doc__ = ("The worst error of a gradient check, and the node where it occurs: "
                     "|analytic - numeric| / max(1, |analytic|, |numeric|).")


def gradcheck(root, nodes=None, eps=1e-6):
    """Check ``backward`` against central finite differences; return the worst ``GradCheck``.

    For each of ``nodes`` (leaves of root's graph; default: every trainable one) the
    gradient of root's value that ``backward(update=False)`` computes is compared with
    ``(f(v + h) - f(v - h)) / 2h``, ``h = eps * max(1, |v|)``. The error is relative where
    gradients are large and absolute where they are below 1:
    ``|analytic - numeric| / max(1, |analytic|, |numeric|)``; a non-finite gradient that
    the other does not match is an infinite error. Every value, grad, Papa_grad and
    Mama_grad of the graph is left as it was, even after an error or Ctrl-C.
    """
    if not isinstance(root, Node):
        raise TypeError(f"gradcheck needs the root Node of a graph, not {type(root).__name__}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
        raise ValueError(f"eps must be a number between 0 and 1, not {eps!r}")
    tape = compile(root)
    where = {id(node): i for i, node in enumerate(tape.nodes)}
    if nodes is None:
        nodes = [node for node in tape.nodes if node.Flag == 1]
        if not nodes:
            raise ValueError("gradcheck: the graph has no trainable node (Flag == 1); name the "
                             "leaves to check with nodes=[...]")
    else:
        if isinstance(nodes, Node) or not hasattr(nodes, "__iter__"):
            raise TypeError(f"nodes must be a list of nodes, not {type(nodes).__name__}")
        nodes = list(nodes)
        for k, node in enumerate(nodes):
            if not isinstance(node, Node):
                raise TypeError(f"nodes[{k}] must be a Node, not {type(node).__name__}")
            if id(node) not in where:
                raise ValueError(f"nodes[{k}] ({node!r}) is not in root's graph")
            if tape.ops[where[id(node)]] != LEAF:
                raise ValueError(f"nodes[{k}] ({node!r}) is a {tape.ops[where[id(node)]]} node, "
                                 f"whose value forward() recomputes: check leaves only")
        if not nodes:
            raise ValueError("nodes is empty: name at least one leaf to check")
    saved = [(node.value, node.__getstate__()) for node in tape.nodes]
    worst = GradCheck(-1.0, None)
    try:
        root.grad = 1.0  # d root / d root: where backward starts
        tape.forward()
        tape.backward(update=False)
        analytic = [node.grad for node in nodes]
        for node, a in zip(nodes, analytic):
            v = node.value
            h = eps * max(1.0, abs(v))
            node.value = v + h
            above = tape.forward()
            node.value = v - h
            below = tape.forward()
            node.value = v
            error = _error(a, (above - below) / (2 * h))
            if error > worst.error or worst.node is None:
                worst = GradCheck(error, node)
    finally:
        for node, (value, state) in zip(tape.nodes, saved):
            node.value = value
            node.__setstate__(state)
    return worst


def _error(analytic, numeric):
    if analytic == numeric:
        return 0.0
    if not (math.isfinite(analytic) and math.isfinite(numeric)):
        return math.inf
    return abs(analytic - numeric) / max(1.0, abs(analytic), abs(numeric))


# ----------------------------------------------------------------------------- names

class Named(Mapping):
    """The nodes of a graph by name (see ``named``)."""

    def __init__(self, root):
        if not isinstance(root, Node):
            raise TypeError(f"named needs the root Node of a graph, not {type(root).__name__}")
        self._nodes, self._shared = {}, {}
        for i, node in enumerate(topological_order(root)):
            name = node.name
            if name is None:
                continue
            try:
                if name in self._shared:
                    self._shared[name].append(i)
                elif name in self._nodes:
                    self._shared[name] = [self._nodes.pop(name)[0], i]
                else:
                    self._nodes[name] = (i, node)
            except TypeError:  # an unhashable name cannot be looked up: skip it
                continue

    def __getitem__(self, name):
        if name in self._shared:
            where = ", ".join(map(str, self._shared[name][:5]))
            raise KeyError(f"{name!r} names {len(self._shared[name])} nodes of this graph (tape "
                           f"indices {where}{', ...' if len(self._shared[name]) > 5 else ''}); "
                           f"only a name given to one node reaches it")
        return self._nodes[name][1]

    def __iter__(self):
        return iter(self._nodes)

    def __len__(self):
        return len(self._nodes)

    def __repr__(self):
        shown = ", ".join(map(repr, list(self)[:8])) + ", ..." * (len(self) > 8)
        return f"<{len(self)} named nodes: {shown}>"


def named(root):
    """The nodes of root's graph by name: ``named(root)["w1"]`` is the node named ``"w1"``.

    A read-only mapping of every name given to exactly one node; a name given to several
    (each ``nn.Linear`` names its weights ``W[i][j]``) is not in it, and looking it up raises
    a KeyError saying so.
    """
    return Named(root)
