"""Looking inside a graph: the tape as a table, the graph as a picture, a gradient check.

- ``dump(tape)`` (also ``Tape.dump()`` and ``print(tape)``): one row per node in execution
  order, with the fused kernel each node runs in.
- ``to_dot(root)`` and ``draw(root, path)``: the graph in Graphviz's DOT language, and
  rendered to a picture; large networks are drawn one box per fused layer.
- ``gradcheck(root)``: the gradients of ``backward`` against central finite differences.
- ``named(root)``: the nodes of a graph by name (after ``ourdl.load``, say).
- ``mimebundle(obj)``: what a notebook shows for a node (its graph), a tape (its table) and
  an ``nn`` layer (what it wires).

All of them call a node by its name, and an unnamed one by its op and its index in the tape
(``mul#5``), so that the table, the picture and the gradient check speak of the same node.

Nothing here changes a graph: every function leaves each node as it found it.
"""
import html
import math
import shutil
import subprocess
from collections import namedtuple
from collections.abc import Mapping
from pathlib import Path

from ourdl import _files, nn
from ourdl._core import Node, Tape, compile, topological_order

__all__ = ["GradCheck", "dump", "draw", "gradcheck", "mimebundle", "named", "to_dot"]

LEAF = "leaf"


def _number(x):
    return f"{x:.6g}"


def _name(node, width=None):
    if node.name is None:
        return ""
    text = str(node.name)
    return text if width is None or len(text) <= width else text[:width - 1] + "…"


def _label(tape, i, width=None):
    """What dump, to_dot and gradcheck call node i of tape: its name, or for an unnamed node
    its op and tape index (``mul#5``; a custom op by its class, ``Softplus#3``), the same
    for the same graph, since a graph always compiles to the same order."""
    node = tape.nodes[i]
    if node.name is not None:
        return _name(node, width)
    op = tape.ops[i]
    return f"{type(node).__name__ if op.startswith('custom') else op}#{i}"


# ----------------------------------------------------------------------------- the table

def dump(tape, limit=60):
    """The tape as a table, one row per node in execution order (the root last).

    Columns: tape index, op, name (an unnamed node's label, such as ``mul#5``: its op and
    tape index), the tape indices of Papa and Mama, value, grad, Flag, lr (shown for
    trainable nodes only: it moves nothing else), and the fused kernel the node runs in
    (``dense0``, ``shared1``, ``max2``, ... as listed under the table; blank: the general
    passes). A tape of more
    than ``limit`` nodes shows its first and last ``limit // 2`` rows and says how many it
    left out; ``limit=None`` shows every row.
    """
    title, rows, gap, notes = _table(tape, limit)
    widths = [max(len(r[c]) for r in rows if r is not None) for c in range(len(HEADER))]

    def line(r):
        cells = [cell.rjust(w) if c in RIGHT else cell.ljust(w)
                 for c, (cell, w) in enumerate(zip(r, widths))]
        return "  ".join(cells).rstrip()

    return "\n".join([title, *(line(r) if r is not None else gap for r in rows), *notes])


HEADER = ["#", "op", "name", "Papa", "Mama", "value", "grad", "Flag", "lr", "kernel"]
RIGHT = {0, 3, 4, 5, 6, 7, 8}  # numbers line up on the right


def _table(tape, limit):
    """(title, rows with None for the rows left out, the line said in their place, the
    lines under the table): dump's table, for text and for HTML alike."""
    if not isinstance(tape, Tape):
        raise TypeError(f"dump needs a Tape (ourdl.compile(root)), not {type(tape).__name__}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 2):
        raise ValueError(f"limit must be a whole number of at least 2, or None, not {limit!r}")
    n = len(tape)
    if n == 0:
        return "Tape of 0 nodes (never built)", [], "", []
    nodes, ops, parents = tape.nodes, tape.ops, tape.parents
    layers = tape.layers()
    kernel = {}
    for k, layer in enumerate(layers):
        for i in layer.nodes:
            kernel[i] = f"{layer.kind}{k}"
    shown = range(n) if limit is None or n <= limit else [
        *range(limit // 2), None, *range(n - limit // 2, n)]

    def row(i):
        node = nodes[i]
        papa, mama = (str(p) if p >= 0 else "" for p in parents[i])
        trainable = node.Flag == 1
        return [str(i), ops[i], _label(tape, i, 24), papa, mama, _number(node.value),
                _number(node.grad), str(node.Flag), _number(node.lr) if trainable else "",
                kernel.get(i, "")]

    root = nodes[-1]
    label = f"{root.name!r}" if root.name is not None else _label(tape, n - 1)
    title = f"Tape of {n:,} node{'s' * (n != 1)}, root {type(root).__name__} {label}"
    gap = f"... {n - len(shown) + 1:,} rows left out (dump(tape, limit=None) shows all) ..."
    rows = [HEADER] + [row(i) if i is not None else None for i in shown]
    return title, rows, gap, [f"{layer.kind}{k}: {layer.describe()}"
                              for k, layer in enumerate(layers)]


def _table_html(tape, limit=60):
    """dump's table as HTML (what a notebook shows for a tape): well-formed XHTML, every
    name escaped."""
    title, rows, gap, notes = _table(tape, limit)
    out = ['<div class="ourdl-tape">', f"<p><b>{html.escape(title)}</b></p>"]
    if rows:
        out.append('<table><thead><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
                   + "</tr></thead><tbody>")
        for r in rows[1:]:
            if r is None:
                out.append(f'<tr><td colspan="{len(HEADER)}"><i>{html.escape(gap)}</i></td></tr>')
                continue
            cells = (f"<td>{html.escape(cell)}</td>" if c in RIGHT else
                     f'<td style="text-align: left">{html.escape(cell)}</td>'
                     for c, cell in enumerate(r))
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</tbody></table>")
    out += [f"<p><code>{html.escape(note)}</code></p>" for note in notes]
    out.append("</div>")
    return "\n".join(out)


# ----------------------------------------------------------------------------- pictures

LAYERS_ABOVE = 100      # to_dot draws a graph by layer from this many nodes on
MOST_BOXES = 2000       # more boxes than this would not make a readable picture
TRAINABLE_COLOR = "#ffd966"
LEAF_COLOR = "#dde8f5"
LAYER_COLOR = "#c9e4c5"
EDGE_STYLES = {"Papa": 'color="#1f4e9c", fontcolor="#1f4e9c"',
               "Mama": 'color="#c0392b", fontcolor="#c0392b", style=dashed'}


DOT_HEAD = ("digraph ourdl {",
            '  graph [rankdir=TB, nodesep=0.3, ranksep=0.45, fontname="Helvetica"];',
            '  node [shape=box, style="rounded,filled", fillcolor=white, fontname="Helvetica", '
            'fontsize=11];',
            '  edge [fontname="Helvetica", fontsize=9, arrowsize=0.7];')


def _dot_string(text):
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(root, layers=None, values=True):
    """Graphviz DOT text of root's graph, parents above children.

    Each box shows the op and the name (an unnamed node's label, such as ``mul#5``: its op and
    tape index, as in ``dump``), and (with ``values``) the value and grad; trainable
    nodes (``Flag == 1``) are yellow and leaves ellipses. Edges from Papa are solid blue,
    from Mama dashed red. With ``layers`` (default: for graphs of ``LAYERS_ABOVE`` nodes or
    more) each layer the compiler fuses (see ``Tape.kernels``) is one green box and
    edges between the same two boxes are drawn once. A graph that would still need more than
    ``MOST_BOXES`` boxes is refused with a ValueError.
    """
    return _dot(root, layers, values, MOST_BOXES)


def _dot(root, layers, values, most):
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
    if len(boxes) > most:
        raise ValueError(f"the graph of {n:,} nodes would need {len(boxes):,} boxes, more than "
                         f"the {most:,} a picture can show; dump(ourdl.compile(root)) "
                         f"prints it as a table instead")
    lines = list(DOT_HEAD)
    for b in boxes:
        if b >= n:
            layer = found[b - n]
            label = f"{layer.describe().split(' (')[0]}\n{len(layer.nodes):,} nodes"
            color = _dot_string(LAYER_COLOR)
            lines.append(f"  n{b} [label={_dot_string(label)}, fillcolor={color}];")
            continue
        node = tape.nodes[b]
        trainable, leaf = node.Flag == 1, tape.ops[b] == LEAF
        label = (f"{tape.ops[b]} {_name(node, 32)}" if node.name is not None
                 else _label(tape, b))
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
    graphviz = _graphviz("draw")
    _files.check_output(path)
    picture = graphviz.Source(to_dot(root, **options)).pipe(format=kind)
    with _files.open_output(path) as file:
        file.write(picture)
    return path


def _graphviz(who):
    """The graphviz package, once both it and Graphviz's dot program are found; otherwise an
    ImportError or a RuntimeError saying which is missing and how to get it."""
    try:
        import graphviz
    except ImportError:
        raise ImportError(f"{who} needs the graphviz Python package, which is not installed: "
                          f"pip install graphviz (and Graphviz itself for its dot program)"
                          ) from None
    if shutil.which("dot") is None:
        raise RuntimeError(f"{who} needs Graphviz's dot program, which is not on PATH: install "
                           f"Graphviz (apt install graphviz, brew install graphviz, conda "
                           f"install graphviz, or https://graphviz.org/download/); "
                           f"to_dot(root) gives the text alone")
    return graphviz


# ----------------------------------------------------------------------------- notebooks

SHOWN_BOXES = 200  # a notebook draws a graph inline up to this many boxes (some 250 kB of SVG)
LAYERS = (nn.Linear, nn.MLP, nn.Conv2d, nn.MaxPool2d)


def mimebundle(obj, include=None, exclude=None):
    """What Jupyter shows for a node, a tape or an ``nn`` layer: IPython's
    ``_repr_mimebundle_``, which ``Node``, ``Tape`` and the layers hand over to this function.

    ``text/plain`` is always the object's repr, the short form shown wherever pictures are
    not. A node adds its graph as ``image/svg+xml``, drawn as ``to_dot`` draws it (an MLP one
    box per layer); a layer adds a picture of the layers it wires; a tape adds its ``dump``
    table as ``text/html``. A picture needs the graphviz package and Graphviz's dot program:
    without either, or for a graph of more than ``SHOWN_BOXES`` boxes (which would stall the
    browser), the text form stands alone, and nothing is raised. ``include`` and ``exclude``
    are IPython's: the formats wanted, and the formats not.
    """
    if not isinstance(obj, (Node, Tape, *LAYERS)):
        raise TypeError(f"mimebundle shows a Node, a Tape or an nn layer, not "
                        f"{type(obj).__name__}")

    def wanted(kind):
        return (include is None or kind in include) and not (exclude and kind in exclude)

    bundle = {"text/plain": repr(obj)}
    if isinstance(obj, Tape):
        if wanted("text/html"):
            bundle["text/html"] = _table_html(obj)
    elif wanted("image/svg+xml"):
        svg = _svg(obj)
        if svg is not None:
            bundle["image/svg+xml"] = svg
    return bundle


def _svg(obj):
    """A node's graph or a layer's picture as SVG text; None where no picture can be made."""
    try:
        graphviz = _graphviz("display")
        dot = _dot(obj, None, True, SHOWN_BOXES) if isinstance(obj, Node) else _layer_dot(obj)
        return graphviz.Source(dot).pipe(format="svg", encoding="utf-8")
    except (ImportError, RuntimeError, ValueError, OSError, subprocess.SubprocessError):
        return None  # the text form stands alone: a display must never fail


def _layer_dot(layer):
    """DOT text of an nn layer: what comes in, one green box per layer it holds (its size,
    activation and trainable nodes), what goes out."""
    stages = layer.layers if isinstance(layer, nn.MLP) else [layer]
    boxes = [_layer_label(stage) for stage in stages]
    if isinstance(layer, nn.MLP):
        boxes = [f"layer{k}: {label}" for k, label in enumerate(boxes)]
    edges = [""] * (len(boxes) + 1)  # the widths between two layers
    if isinstance(layer, (nn.Linear, nn.MLP)):
        ends = _count(stages[0].n_in, "input"), _count(stages[-1].n_out, "output")
        edges[1:-1] = [f"{stage.n_in:,}" for stage in stages[1:]]
    elif isinstance(layer, nn.Conv2d):
        ends = (f"image, {_count(layer.in_channels, 'channel')}",
                f"image, {_count(layer.out_channels, 'channel')}")
    else:
        ends = "image", "image"
    lines = list(DOT_HEAD)
    lines.append(f"  n0 [label={_dot_string(ends[0])}, shape=ellipse, "
                 f"fillcolor={_dot_string(LEAF_COLOR)}];")
    for k, label in enumerate(boxes, 1):
        lines.append(f"  n{k} [label={_dot_string(label)}, "
                     f"fillcolor={_dot_string(LAYER_COLOR)}];")
    last = len(boxes) + 1
    lines.append(f"  n{last} [label={_dot_string(ends[1])}, shape=ellipse, "
                 f"fillcolor={_dot_string(LEAF_COLOR)}];")
    for k, width in enumerate(edges):
        label = f', label=" {width}"' if width else ""
        lines.append(f'  n{k} -> n{k + 1} [color="#555555"{label}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _count(n, word):
    return f"{n:,} {word}{'s' * (n != 1)}"


def _layer_label(layer):
    if isinstance(layer, nn.MaxPool2d):
        return f"MaxPool2d {layer.kernel_size}x{layer.kernel_size}, stride {layer.stride}"
    bias = " + bias" if layer.b else ""
    act = layer.activation or "linear"
    trainable = _count(len(layer.parameters()), "trainable node")
    if isinstance(layer, nn.Conv2d):
        k = layer.kernel_size
        return (f"Conv2d {layer.in_channels} -> {_count(layer.out_channels, 'channel')}{bias}, "
                f"{act}\n"
                f"{k}x{k} kernel, stride {layer.stride}, padding {layer.padding}\n{trainable}")
    return f"Linear {layer.n_in} -> {layer.n_out}{bias}, {act}\n{trainable}"


# ----------------------------------------------------------------------------- gradient check

class GradCheck(namedtuple("GradCheck", "error node")):
    """The worst error of a gradient check, and the node where it occurs:
    |analytic - numeric| / max(1, |analytic|, |numeric|). ``label`` names that node as
    ``dump`` and ``to_dot`` do: its name, or its op and tape index (``leaf#4``), and so
    does the repr. ``error, node = gradcheck(root)`` unpacks it."""

    label = None

    def __repr__(self):
        node = self.label if self.label is not None else repr(self.node)
        return f"GradCheck(error={self.error:.3g}, node={node})"


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
            i = where[id(node)]
            if tape.ops[i] != LEAF:
                raise ValueError(f"nodes[{k}] ({_label(tape, i)}) is not a leaf but an op node "
                                 f"({tape.ops[i]}), whose value forward() recomputes: check "
                                 f"leaves only")
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
                worst.label = _label(tape, where[id(node)])
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
