"""Finding dense layers in a flattened graph, so the tape can run each as one fused kernel.

A dense unit is the graph ``ourdl.nn.Linear`` builds and a learner wires by hand: a chain of
additions over products ``input * weight`` (the weight a leaf used nowhere else), then
optionally ``+ bias`` (a leaf used nowhere else), then optionally an activation (tanh, relu,
sigmoid). Units that read the same inputs in the same order form a layer.

Fusing a layer must not change a single bit of any result, so a layer is fused only where
the general passes would do the very same operations in the same order:

- every node inside a unit (products, partial sums, the pre-activation) has exactly one
  child, the next node of its unit: nothing else reads it or sends it a gradient;
- every input of the layer is used by this layer's products and by nothing else, each unit
  once, so its gradient is a sum over the units alone. The order of that sum is the order in
  which the general backward pass visits the products (latest in the tape first): it is read
  off the tape (``fold``) and must be the same for every input;
- no node inside a unit is trainable except the weights and biases;
- a layer runs as one step at the place of its last node; a node that reads its output
  earlier in the tape waits for it, unless waiting would change the order in which some
  node's gradient is summed (its readers must run in tape order).

Whatever does not fit (a shared weight, an extra edge, a tree of sums) stays with the general
passes, node by node; the rest is still fused. Values do not depend on evaluation order, and
every gradient sum keeps the tape's order, so fused and unfused tapes agree bit for bit.
"""
import heapq
from dataclasses import dataclass, field

from ourdl._nodes import ARITY, OP_NAMES

LEAF, ADD, MUL = OP_NAMES.index("leaf"), OP_NAMES.index("add"), OP_NAMES.index("mul")
ACTIVATIONS = {OP_NAMES.index(name) for name in ("tanh", "relu", "sigmoid")}
BINARY = {op for op, arity in enumerate(ARITY) if arity == 2}


@dataclass
class Layer:
    """One dense layer, as tape indices."""
    inputs: list          # the nodes it reads, in the chain's order
    outputs: list         # per unit: what it hands on (the activation, else the sum)
    weights: list         # [input][unit]
    biases: list          # per unit, or empty
    activation: int       # op code of the activation, LEAF for none
    fold: list            # units in the order their gradients reach each input
    nodes: set = field(repr=False)  # every node of the layer (its inputs excluded)

    @property
    def last(self):
        """Where the layer runs in the tape: at its last node."""
        return max(self.nodes)

    def describe(self):
        act = OP_NAMES[self.activation] if self.activation != LEAF else "linear"
        bias = " + bias" if self.biases else ""
        return (f"dense {len(self.inputs)} -> {len(self.outputs)}{bias}, {act} "
                f"({len(self.nodes)} nodes from {min(self.nodes)} to {self.last})")


def plan(opcodes, papa, mama, flags, fed=()):
    """(layers, steps): the dense layers of a tape (given its op codes, parent indices and
    flags) that run fused, and the order to run them in with the other op nodes (a tape
    index for a node, -1 - k for layer k). ``fed`` are the leaves that data writes each row:
    never weights."""
    n = len(opcodes)
    ops = [int(o) for o in opcodes]
    papa, mama = [int(p) for p in papa], [int(m) for m in mama]
    children = [[] for _ in range(n)]
    for i in range(n):
        if ops[i] != LEAF:
            children[papa[i]].append(i)
            if ops[i] in BINARY:
                children[mama[i]].append(i)
    fed = set(fed)

    def lone(i):
        """A leaf with one child, not fed from data: a weight or bias can be this."""
        return ops[i] == LEAF and len(children[i]) == 1 and i not in fed

    def term(m):
        """(input, weight) of a product input * weight, or None."""
        if ops[m] != MUL:
            return None
        a, b = papa[m], mama[m]
        weight_first = lone(a) and (not lone(b) or (flags[a] and not flags[b]))
        if weight_first:
            return b, a
        return (a, b) if lone(b) else None

    broken = set()  # additions from which no chain of additions reaches a bottom of products

    def chain(top):
        """[(input, weight, product)] of a chain of additions of products, bottom first, and
        the additions walked; None if top is not one."""
        adds, tail, i = [], [], top
        while ops[i] == ADD:
            if i != top and (len(children[i]) != 1 or i in broken):
                broken.update(adds[1:])  # they lead here too: walk none of them again, so
                return None              # that planning stays linear in the tape's length
            adds.append(i)
            left, right = papa[i], mama[i]
            if ops[left] == ADD and ops[right] == MUL:
                tail.append(right)
                i = left
            elif ops[right] == ADD and ops[left] == MUL:
                tail.append(left)
                i = right
            elif ops[left] == MUL and ops[right] == MUL:
                tail += [right, left]
                break
            else:
                broken.update(adds[1:])
                return None
        else:
            tail.append(i)
        terms = []
        for m in reversed(tail):
            found = term(m)
            if found is None or (m != top and len(children[m]) != 1):
                return None
            terms.append(found + (m,))
        return terms, adds

    def unit(out):
        """The parts of the unit whose output is out, or None."""
        act, top = LEAF, out
        if ops[out] in ACTIVATIONS:
            act, top = ops[out], papa[out]
            if len(children[top]) != 1:
                return None
        bias = None
        if ops[top] == ADD:
            for b, rest in ((mama[top], papa[top]), (papa[top], mama[top])):
                if lone(b) and ops[rest] in (ADD, MUL) and len(children[rest]) == 1:
                    bias, top = b, rest
                    break
        found = chain(top) if ops[top] in (ADD, MUL) else None
        if found is None:
            return None
        terms, adds = found
        inputs = tuple(t[0] for t in terms)
        if len(set(inputs)) != len(inputs):
            return None
        inner = {t[2] for t in terms} | set(adds) | {out, top}
        if bias is not None:
            inner.add(children[bias][0])
        if any(flags[i] for i in inner):
            return None
        return dict(inputs=inputs, weights=[t[1] for t in terms], products=[t[2] for t in terms],
                    bias=bias, activation=act, out=out,
                    nodes=inner | {t[1] for t in terms} | ({bias} if bias is not None else set()))

    units, used = [], set()
    for out in range(n - 1, -1, -1):  # a unit's output comes after its other nodes
        if out in used or (ops[out] not in ACTIVATIONS and ops[out] not in (ADD, MUL)):
            continue
        found = unit(out)
        if found is not None:
            units.append(found)
            used |= found["nodes"]

    groups = {}
    for u in reversed(units):
        groups.setdefault((u["inputs"], u["bias"] is not None, u["activation"]), []).append(u)
    layers = [layer for group in groups.values() if (layer := _layer(group, children, flags))]
    layers.sort(key=lambda layer: layer.last)
    return _runnable(layers, ops, papa, mama)


def _layer(units, children, flags):
    """A Layer from units reading the same inputs, if every input is theirs alone and its
    parameters are all trainable or all fixed. A lone product is left to the general passes:
    there is nothing to fuse."""
    if len(units) * len(units[0]["inputs"]) < 2:
        return None
    units.sort(key=lambda u: u["out"])
    params = [w for u in units for w in u["weights"]] + [u["bias"] for u in units if u["bias"] is not None]
    if len({bool(flags[p]) for p in params}) != 1:
        return None
    inputs = list(units[0]["inputs"])
    fold = None
    for i, x in enumerate(inputs):
        products = [u["products"][i] for u in units]
        if sorted(children[x]) != sorted(products):
            return None
        order = sorted(range(len(units)), key=lambda j: -products[j])
        if fold is None:
            fold = order
        elif order != fold:
            return None
    return Layer(
        inputs=inputs,
        outputs=[u["out"] for u in units],
        weights=[[u["weights"][i] for u in units] for i in range(len(inputs))],
        biases=[u["bias"] for u in units] if units[0]["bias"] is not None else [],
        activation=units[0]["activation"],
        fold=fold,
        nodes=set().union(*(u["nodes"] for u in units)),
    )


def _runnable(layers, ops, papa, mama):
    """The layers that can run as steps, and the steps: (layers, [tape index of a general
    node, or -1 - k for layer k]).

    Forward runs the steps in order, backward in reverse. The steps follow the tape, but a
    layer runs at its last node, so a node that reads a layer's output earlier in the tape
    waits for it (and what reads that node waits too). Waiting must not change the order in
    which any node's gradient is summed: a node's readers outside the layers must run in
    tape order. Where waiting would change it, the layer waited for is not fused; repeat
    until the steps keep every order."""
    while True:
        steps, blame = _steps(layers, ops, papa, mama)
        readers = {}
        for c in steps:
            if c >= 0:
                for p in _parents(c, ops, papa, mama):
                    readers.setdefault(p, []).append(c)
        unordered = [found for found in readers.values() if sorted(found) != found]
        if not unordered:
            return layers, steps
        bad = {blame[c] for found in unordered for c in found if c in blame}
        layers = [layer for k, layer in enumerate(layers) if k not in bad] if bad else []


def _parents(i, ops, papa, mama):
    if ops[i] == LEAF:
        return ()
    return (papa[i], mama[i]) if ops[i] in BINARY else (papa[i],)


def _steps(layers, ops, papa, mama):
    """The steps in tape order with waiting (see _runnable), and for each node that waited,
    the layer it waited for."""
    n = len(ops)
    owner, outputs = {}, {}
    for k, layer in enumerate(layers):
        for i in layer.nodes:
            owner[i] = k
        for i in layer.outputs:
            outputs[i] = k
    last = {layer.last: k for k, layer in enumerate(layers)}
    done = [False] * n
    steps, blame = [], {}
    lacking = {}            # a waiting item -> how many of what it needs are not done yet
    waiters = {}            # a node -> the items waiting for it
    ready = []              # waiting items that may run now, by their place in the tape

    def needs(item):
        return layers[-1 - item].inputs if item < 0 else _parents(item, ops, papa, mama)

    def run(item):
        steps.append(item)
        for i in (layers[-1 - item].nodes if item < 0 else (item,)):
            done[i] = True
            for waiter in waiters.pop(i, ()):
                lacking[waiter] -= 1
                if not lacking[waiter]:
                    heapq.heappush(ready, (layers[-1 - waiter].last if waiter < 0 else waiter,
                                           waiter))

    for i in range(n):
        if ops[i] == LEAF:
            done[i] = True
            continue
        if i in owner and i not in last:
            continue
        item = -1 - last[i] if i in last else i
        missing = [p for p in dict.fromkeys(needs(item)) if not done[p]]
        if missing:  # a layer's output not computed yet, or a node that waits itself
            p = missing[0]
            blame[item] = outputs[p] if p in outputs else blame[p]
            lacking[item] = len(missing)
            for p in missing:
                waiters.setdefault(p, []).append(item)
            continue
        run(item)
        while ready:  # what waited and may run now, earliest in the tape first
            run(heapq.heappop(ready)[1])
    if any(lacking.values()):  # never expected: every step's inputs come before it
        raise RuntimeError("ourdl._fusion: steps left waiting")
    return steps, blame
