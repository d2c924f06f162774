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
import gc
import heapq
from dataclasses import dataclass, field

import numpy as np

from ourdl._nodes import ARITY, OP_NAMES

LEAF, ADD, SUB, MUL, MAX, EXP, LN, NEG = (OP_NAMES.index(name) for name in (
    "leaf", "add", "sub", "mul", "max", "exp", "ln", "neg"))
ACTIVATIONS = {OP_NAMES.index(name) for name in ("tanh", "relu", "sigmoid")}
BINARY = {op for op, arity in enumerate(ARITY) if arity == 2}
# Rounds of sorting out which steps wait for which layers before planning gives up waiting.
WAITING_ROUNDS = 8


class _Fused:
    """What every kind of fused layer has: its nodes, and its place in the tape."""

    @property
    def last(self):
        """Where the layer runs in the tape: at its last node."""
        return max(self.nodes)


@dataclass
class Layer(_Fused):
    """One dense layer, as tape indices."""
    kind = "dense"
    inputs: list          # the nodes it reads, in the chain's order
    outputs: list         # per unit: what it hands on (the activation, else the sum)
    weights: list         # [input][unit]
    biases: list          # per unit, or empty
    activation: int       # op code of the activation, LEAF for none
    fold: list            # units in the order their gradients reach each input
    nodes: set = field(repr=False)  # every node of the layer (its inputs excluded)

    def describe(self):
        act = OP_NAMES[self.activation] if self.activation != LEAF else "linear"
        bias = " + bias" if self.biases else ""
        return (f"dense {len(self.inputs)} -> {len(self.outputs)}{bias}, {act} "
                f"({len(self.nodes)} nodes from {min(self.nodes)} to {self.last})")


@dataclass
class SharedLayer(_Fused):
    """Units whose weights are shared between them, as a convolution's are between its
    positions (``ourdl.nn.Conv2d``, or the same chains wired by hand), as tape indices. Unit u
    sums ``x * w`` over its terms ``terms[ends[u - 1]:ends[u]]`` (an (input, weight) pair
    each, in its chain's order), adds ``biases[u]`` if there are biases, then the activation.
    The weights and biases stay in the tape, where the general update steps them; the
    gradients they and the inputs receive are summed in the order the general backward pass
    visits the products (``back``, term indices) and the bias additions (``bias_back``, unit
    indices)."""
    kind = "shared"
    inputs: list          # the nodes it reads, each once
    outputs: list         # per unit: what it hands on
    terms: list           # [(input, weight)], unit after unit
    ends: list            # per unit: where its terms end
    biases: list          # per unit, or empty
    activation: int       # op code of the activation, LEAF for none
    back: list            # the terms in the order the general backward pass visits them
    bias_back: list       # the units in the order their biases receive gradients
    nodes: set = field(repr=False)  # its op nodes: products, sums, activations

    def describe(self):
        act = OP_NAMES[self.activation] if self.activation != LEAF else "linear"
        bias = " + bias" if self.biases else ""
        weights = len({w for _, w in self.terms})
        return (f"shared weights: {len(self.outputs)} units of {len(self.terms) // len(self.outputs)}"
                f" terms over {len(self.inputs)} inputs and {weights} weights{bias}, {act} "
                f"({len(self.nodes)} nodes from {min(self.nodes)} to {self.last})")


@dataclass
class MaxLayer(_Fused):
    """Windows of max-pooling (``ourdl.nn.MaxPool2d``, or the same chains by hand), as tape
    indices: unit u is the chain ``max(max(max(x0, x1), x2), ...)`` over its elements
    ``terms[ends[u - 1]:ends[u]]``, each MaxNode's Papa the chain so far and its Mama the next
    element. An element's gradient is summed over the windows that read it in the order the
    general backward pass visits their MaxNodes (``back``, term indices)."""
    kind = "max"
    inputs: list          # the nodes it reads, each once
    outputs: list         # per unit: the top of its chain
    terms: list           # the elements, unit after unit, each chain's order
    ends: list            # per unit: where its elements end
    back: list            # the terms in the order their gradients are summed
    nodes: set = field(repr=False)  # its MaxNodes

    def describe(self):
        return (f"max-pooling: {len(self.outputs)} windows of {len(self.terms) // len(self.outputs)}"
                f" over {len(self.inputs)} inputs ({len(self.nodes)} nodes from "
                f"{min(self.nodes)} to {self.last})")


@dataclass
class SoftmaxLayer(_Fused):
    """A softmax cross-entropy head, as ``ourdl.nn.cross_entropy`` wires it (or by hand in
    the same shape), as tape indices: over K logits z and targets t,
    ``-sum_k t_k * ((z_k - m) - ln(sum_k exp(z_k - m)))`` with m the chain of MaxNodes over
    z. A node read by several of its nodes sums their gradients in the order the general
    backward pass visits them: ``lp_order`` and ``d_order`` (classes, latest first) for the
    ln and the maximum, and per class whether the log-probability's subtraction reaches
    z_k - m before its exp does (``d_from_lp_first``), and whether z_k - m reaches z_k
    before the MaxNode that reads z_k does (``z_from_d_first``)."""
    kind = "softmax"
    logits: list
    targets: list
    outputs: list         # [the loss]
    lp_order: list
    d_order: list
    d_from_lp_first: list
    z_from_d_first: list
    nodes: set = field(repr=False)

    @property
    def inputs(self):
        return self.logits + self.targets

    def describe(self):
        return (f"softmax cross-entropy over {len(self.logits)} classes ({len(self.nodes)} nodes "
                f"from {min(self.nodes)} to {self.last})")


def plan(opcodes, papa, mama, flags, fed=()):
    """(layers, steps): the dense layers of a tape (given its op codes, parent indices and
    flags) that run fused, and the order to run them in with the other op nodes (a tape
    index for a node, -1 - k for layer k). ``fed`` are the leaves that data writes each row:
    never weights."""
    # Planning makes a few small containers per node and no reference cycles: the garbage
    # collector's passes over them would cost as much as the planning itself.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _plan(opcodes, papa, mama, flags, fed)
    finally:
        if collecting:
            gc.enable()


def _plan(opcodes, papa, mama, flags, fed):
    n = len(opcodes)
    op_a = np.asarray(opcodes, dtype=np.intp)
    papa_a, mama_a = np.asarray(papa, dtype=np.intp), np.asarray(mama, dtype=np.intp)
    ops, papa, mama = op_a.tolist(), papa_a.tolist(), mama_a.tolist()
    # Who reads whom, as arrays: the readers of node i are readers[first[i]:first[i + 1]].
    binary = np.isin(op_a, list(BINARY))
    reads = op_a != LEAF
    parent = np.concatenate([papa_a[reads], mama_a[binary]])
    count = np.bincount(parent, minlength=n)
    first = np.concatenate([[0], np.cumsum(count)])
    readers = np.concatenate([np.flatnonzero(reads), np.flatnonzero(binary)])[
        np.argsort(parent, kind="stable")]
    n_children = count.tolist()

    def children(i):
        return readers[first[i]:first[i + 1]].tolist()

    # Weights and biases are lone leaves: one reader each, and not fed from data.
    lone_a = (op_a == LEAF) & (count == 1)
    lone_a[list(fed)] = False
    lone = lone_a.tolist()
    # Each product's (input, weight), its weight the lone one (the trainable one if both are).
    flag_a = np.asarray(flags, dtype=bool)
    mul = np.flatnonzero(op_a == MUL)
    a, b = papa_a[mul], mama_a[mul]
    weight_first = lone_a[a] & (~lone_a[b] | (flag_a[a] & ~flag_a[b]))
    is_term = weight_first | lone_a[b]
    term_input, term_weight = np.full(n, -1, np.intp), np.full(n, -1, np.intp)
    term_input[mul] = np.where(weight_first, b, a)
    term_weight[mul] = np.where(weight_first, a, b)
    term_input[mul[~is_term]] = -1
    term_input, term_weight = term_input.tolist(), term_weight.tolist()

    def term(m):
        """(input, weight) of a product input * weight, or None."""
        return (term_input[m], term_weight[m]) if term_input[m] >= 0 else None

    broken = set()  # additions from which no chain of additions reaches a bottom of products
    walked = {}     # an addition walked from the top of its chain -> (that walk, its place)

    def chain(top):
        """[(input, weight, product)] of a chain of additions of products, bottom first, and
        the additions walked; None if top is not one, or if its products are not a unit's (a
        product that is not input * weight, an input read twice, a trainable node). A chain
        is walked once, from its top: every addition below it is the top of a shorter chain,
        whose answer that walk already holds, so planning stays linear in the tape's length."""
        if top in walked:
            walk, j = walked[top]
            return walk.below(j)
        if ops[top] == MUL:  # a lone product: a unit of one input
            found = term(top)
            return ([found + (top,)], []) if found is not None and not flags[top] else None
        adds, tail, i = [], [], top
        while ops[i] == ADD:
            if i != top and (n_children[i] != 1 or i in broken):
                broken.update(adds[1:])  # they lead here too: walk none of them again
                return None
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
        walk = _Walk(adds, tail[::-1], term, n_children, flags)
        for j, a in enumerate(adds):
            walked[a] = (walk, j)
        return walk.below(0)

    def unit(out):
        """The parts of the unit whose output is out, or None."""
        act, top = LEAF, out
        if ops[out] in ACTIVATIONS:
            act, top = ops[out], papa[out]
            if n_children[top] != 1:
                return None
        bias = None
        if ops[top] == ADD:
            for b, rest in ((mama[top], papa[top]), (papa[top], mama[top])):
                if lone[b] and ops[rest] in (ADD, MUL) and n_children[rest] == 1:
                    bias, top = b, rest
                    break
        found = chain(top) if ops[top] in (ADD, MUL) else None
        if found is None:
            return None
        terms, adds = found
        inputs = tuple(t[0] for t in terms)
        inner = {t[2] for t in terms} | set(adds) | {out, top}
        if bias is not None:
            inner.add(children(bias)[0])
        if any(flags[i] for i in inner):
            return None
        return dict(inputs=inputs, weights=[t[1] for t in terms], products=[t[2] for t in terms],
                    bias=bias, activation=act, out=out,
                    nodes=inner | {t[1] for t in terms} | ({bias} if bias is not None else set()))

    candidates = np.flatnonzero(np.isin(op_a, list(ACTIVATIONS | {ADD, MUL})))
    units = _units(candidates[::-1].tolist(), set(), unit)

    groups = {}
    for u in reversed(units):
        groups.setdefault((u["inputs"], u["bias"] is not None, u["activation"]), []).append(u)
    layers = [layer for group in groups.values() if (layer := _layer(group, n_children, flags))]
    used = set().union(*(layer.nodes for layer in layers))
    layers += _shared_layers(candidates[::-1].tolist(), used, ops, papa, mama, flags, fed,
                             n_children)
    used = set().union(used, *(layer.nodes for layer in layers))
    layers += [head for out in np.flatnonzero(op_a == NEG).tolist()
               if (head := _softmax_head(out, used, ops, papa, mama, flags, n_children))]
    used = set().union(used, *(layer.nodes for layer in layers))
    layers += _max_layers(np.flatnonzero(op_a == MAX)[::-1].tolist(), used, ops, papa, mama,
                          flags, n_children)
    if not layers:
        return [], []
    layers.sort(key=lambda layer: layer.last)
    found = (_in_tape_order(layers, op_a, papa_a, mama_a, binary)
             or _runnable(layers, ops, papa, mama, WAITING_ROUNDS))
    if found is None:  # waiting that takes many rounds to sort out: no waiting at all instead
        found = _in_tape_order(_never_waited_for(layers, op_a, papa_a, mama_a, binary),
                               op_a, papa_a, mama_a, binary)
    return found


def _units(candidates, used, unit):
    """unit(out) for each candidate output, latest in the tape first (a unit's output comes
    after its other nodes), skipping nodes that an earlier unit took; used grows with them."""
    units = []
    for out in candidates:
        if out not in used and (found := unit(out)) is not None:
            units.append(found)
            used |= found["nodes"]
    return units


class _Walk:
    """One chain of additions of products, walked once from its top: for each addition on
    it, whether the shorter chain below it (its lowest products and the additions between
    them) is a unit's."""

    def __init__(self, adds, products, term, n_children, flags):
        self.adds = adds    # top first: adds[j] sums the len(products) - j lowest products
        self.terms = []     # (input, weight, product), bottom first
        self.fits = [True]  # fits[k]: the k lowest products make a unit's chain
        seen = set()
        for k, m in enumerate(products):
            found = term(m)
            if found is None:
                break
            self.terms.append(found + (m,))
            self.fits.append(
                self.fits[k] and found[0] not in seen and not flags[m]
                and (n_children[m] == 1 or not adds)  # a lone product may have many
                and not (k and flags[adds[len(products) - 1 - k]]))  # the addition it joins
            seen.add(found[0])
        self.fits += [False] * (len(products) + 1 - len(self.fits))

    def below(self, j):
        """(terms, additions) of the chain whose top is adds[j] (the top for j = 0), or None
        if it is not a unit's."""
        k = len(self.fits) - 1 - j
        return (self.terms[:k], self.adds[j:]) if self.fits[k] else None


def _layer(units, n_children, flags):
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
    # Each unit's product reads each input once, so these readers are all it has if it has
    # exactly one per unit.
    if any(n_children[x] != len(units) for x in inputs):
        return None
    # Per input, the units by their products, latest in the tape first: the order in which
    # the general backward pass sums the input's gradient. It must be one for all inputs.
    order = np.argsort(-np.array([u["products"] for u in units]), axis=0, kind="stable")
    if not (order == order[:, :1]).all():
        return None
    fold = order[:, 0].tolist()
    return Layer(
        inputs=inputs,
        outputs=[u["out"] for u in units],
        weights=[[u["weights"][i] for u in units] for i in range(len(inputs))],
        biases=[u["bias"] for u in units] if units[0]["bias"] is not None else [],
        activation=units[0]["activation"],
        fold=fold,
        nodes=set().union(*(u["nodes"] for u in units)),
    )


def _in_tape_order(layers, op_a, papa_a, mama_a, binary):
    """(layers, steps) when no step has to wait (see _runnable): each op node outside the
    layers at its place in the tape, each layer at its last node; else None."""
    n = op_a.shape[0]
    ready = np.arange(n)  # where in the steps each node is computed, if nothing waits
    ready[op_a == LEAF] = -1
    general = op_a != LEAF
    for layer in layers:
        inside = np.fromiter(layer.nodes, np.intp, len(layer.nodes))
        ready[inside] = layer.last
        general[inside] = False
    if any(ready[layer.inputs].max() > layer.last for layer in layers):
        return None
    nodes = np.flatnonzero(general)
    latest = np.maximum(ready[papa_a[nodes]], np.where(binary[nodes], ready[mama_a[nodes]], -1))
    if (latest > nodes).any():
        return None
    where = np.concatenate([nodes, [layer.last for layer in layers]])
    steps = np.concatenate([nodes, -1 - np.arange(len(layers))])
    return layers, steps[np.argsort(where)].tolist()


def _never_waited_for(layers, op_a, papa_a, mama_a, binary):
    """The layers without those a step would wait for (see _runnable): with none left, every
    step runs at its place in the tape."""
    n = op_a.shape[0]
    while layers:
        ready, owner = np.arange(n), np.full(n, -1)
        ready[op_a == LEAF] = -1
        for k, layer in enumerate(layers):
            inside = np.fromiter(layer.nodes, np.intp, len(layer.nodes))
            ready[inside], owner[inside] = layer.last, k
        general = np.flatnonzero((op_a != LEAF) & (owner < 0))
        read = [(papa_a[general], general), (mama_a[general[binary[general]]],
                                             general[binary[general]])]
        read += [(np.asarray(layer.inputs), np.full(len(layer.inputs), layer.last))
                 for layer in layers]
        waited = set()
        for parents, reader in read:
            late = ready[parents] > reader
            waited.update(owner[parents[late]].tolist())
        waited.discard(-1)
        if not waited:
            break
        layers = [layer for k, layer in enumerate(layers) if k not in waited]
    return layers


def _runnable(layers, ops, papa, mama, rounds):
    """The layers that can run as steps, and the steps: (layers, [tape index of a general
    node, or -1 - k for layer k]).

    Forward runs the steps in order, backward in reverse. The steps follow the tape, but a
    layer runs at its last node, so a node that reads a layer's output earlier in the tape
    waits for it (and what reads that node waits too). Waiting must not change the order in
    which any node's gradient is summed: a node's readers outside the layers must run in
    tape order. Where waiting would change it, the layer waited for is not fused; repeat
    until the steps keep every order, for at most ``rounds`` rounds (None after that: each
    round walks the whole tape)."""
    for _ in range(rounds):
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
    return None


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


def _shared_layers(candidates, used, ops, papa, mama, flags, fed, n_children):
    """The SharedLayers among the nodes no dense layer took: units whose products read a
    weight that other units' products read too, grouped by the weights and inputs they
    share. A group is fused only if nothing outside it reads its weights, biases, inputs or
    inner nodes, so that every gradient it sums is summed from its own products alone, in
    the tape's order."""
    fed = set(fed)

    def is_param(i):
        return ops[i] == LEAF and i not in fed

    def product(m):
        """(input, weight) of a product of an input and a parameter leaf, or None."""
        a, b = papa[m], mama[m]
        if is_param(b) and (not is_param(a) or flags[b] or not flags[a]):
            return a, b
        return (b, a) if is_param(a) else None

    failed = set()  # additions of chains already found not to be a unit's

    def unit(out):
        act, top = LEAF, out
        if ops[out] in ACTIVATIONS:
            act, top = ops[out], papa[out]
            if n_children[top] != 1 or top in used:
                return None
        bias, bias_add = None, None
        if ops[top] == ADD:
            for b, rest in ((mama[top], papa[top]), (papa[top], mama[top])):
                if is_param(b) and ops[rest] in (ADD, MUL) and n_children[rest] == 1:
                    bias, bias_add, top = b, top, rest
                    break
        terms, products, adds, i = [], [], [], top
        while True:
            if i in used or i in failed or flags[i] or (i != top and n_children[i] != 1):
                failed.update(adds)
                return None
            if ops[i] == MUL:
                products.append(i)
                break
            if ops[i] != ADD:
                failed.update(adds)
                return None
            adds.append(i)
            left, right = papa[i], mama[i]
            if ops[right] == MUL and ops[left] in (ADD, MUL):
                products.append(right)
                i = left
            elif ops[left] == MUL and ops[right] == ADD:
                products.append(left)
                i = right
            else:
                failed.update(adds)
                return None
        products.reverse()  # bottom first: the chain's order
        for m in products:
            found = product(m)
            if found is None or flags[m] or n_children[m] != 1 or m in used:
                failed.update(adds)
                return None
            terms.append(found)
        inner = set(products) | set(adds) | {out, top}
        if bias_add is not None:
            inner.add(bias_add)
        if any(flags[i] for i in inner) or inner & used:
            return None
        return dict(out=out, terms=terms, products=products, bias=bias, bias_add=bias_add,
                    activation=act, nodes=inner)

    units = _units([out for out in candidates if ops[out] != MUL], used, unit)

    # Units sharing a weight or an input belong together: a convolution's output channels
    # share its inputs, its positions share its weights.
    groups = _grouped(units, lambda u: [i for read in u["terms"] for i in read])
    return [layer for group in groups
            if len(group) > 1 and (layer := _shared_layer(group, n_children))]


def _grouped(units, reads):
    """The units in groups: two units that read a node in common (reads(unit) lists what a
    unit reads) are in the same group (union-find)."""
    first_reader, owner = {}, list(range(len(units)))

    def root(k):
        while owner[k] != k:
            owner[k] = owner[owner[k]]
            k = owner[k]
        return k
    for k, u in enumerate(units):
        for i in reads(u):
            if i in first_reader:
                owner[root(k)] = root(first_reader[i])
            else:
                first_reader[i] = k
    groups = {}
    for k in range(len(units)):
        groups.setdefault(root(k), []).append(units[k])
    return list(groups.values())


def _shared_layer(units, n_children):
    """A SharedLayer from units that share weights, if nothing outside them reads their
    weights, biases or inputs, and they agree on the activation and on having biases."""
    units.sort(key=lambda u: u["out"])
    if (len({u["activation"] for u in units}) != 1
            or len({u["bias"] is None for u in units}) != 1):
        return None
    reads = {}
    for u in units:
        for x, w in u["terms"]:
            reads[x] = reads.get(x, 0) + 1
            reads[w] = reads.get(w, 0) + 1
        if u["bias"] is not None:
            reads[u["bias"]] = reads.get(u["bias"], 0) + 1
    inputs = list(dict.fromkeys(x for u in units for x, _ in u["terms"]))
    weights = {w for u in units for _, w in u["terms"]}
    biases = {u["bias"] for u in units} - {None}
    params = weights | biases
    nodes = set().union(*(u["nodes"] for u in units))
    # Inputs, weights and biases each get their gradient from one sum: no node may be two.
    if (any(n_children[i] != count for i, count in reads.items()) or weights & biases
            or params & set(inputs) or params & nodes or set(inputs) & nodes):
        return None
    terms = [t for u in units for t in u["terms"]]
    products = [m for u in units for m in u["products"]]
    ends = np.cumsum([len(u["terms"]) for u in units]).tolist()
    has_bias = units[0]["bias"] is not None
    return SharedLayer(
        inputs=inputs,
        outputs=[u["out"] for u in units],
        terms=terms,
        ends=ends,
        biases=[u["bias"] for u in units] if has_bias else [],
        activation=units[0]["activation"],
        back=np.argsort(-np.asarray(products), kind="stable").tolist(),
        bias_back=(np.argsort(-np.asarray([u["bias_add"] for u in units]), kind="stable").tolist()
                   if has_bias else []),
        nodes=nodes,
    )


def _max_layers(candidates, used, ops, papa, mama, flags, n_children):
    """The MaxLayers among the nodes no other layer took: chains of MaxNodes, each reading
    the chain so far as Papa and an element as Mama, grouped by the elements they share
    (overlapping windows). A group is fused only if nothing outside it reads its elements or
    its inner MaxNodes."""
    def unit(out):
        chain, i = [], out
        while (ops[i] == MAX and i not in used and not flags[i]
               and (i == out or n_children[i] == 1)):
            chain.append(i)
            i = papa[i]
        if not chain:
            return None
        elements = [i] + [mama[c] for c in reversed(chain)]
        if len(set(elements)) != len(elements) or set(elements) & set(chain):
            return None
        # The MaxNode that reads each element: the lowest reads two.
        readers = [chain[-1]] + list(reversed(chain))
        return dict(out=out, elements=elements, readers=readers, nodes=set(chain))

    # Windows that share elements (overlapping windows) go together, and so do groups at the
    # same depth (a pooling of a pooling's outputs is one deeper): one layer per depth.
    groups = [g for g in _grouped(_units(candidates, used, unit), lambda u: u["elements"])
              if _reads_alone(g, n_children)]
    depth_of = {}  # a window's output -> its group's depth
    layers = {}
    for group in sorted(groups, key=lambda g: min(u["out"] for u in g)):
        depth = 1 + max((depth_of.get(x, 0) for u in group for x in u["elements"]), default=0)
        for u in group:
            depth_of[u["out"]] = depth
        layers.setdefault(depth, []).extend(group)
    return [_max_layer(units) for units in layers.values() if len(units) > 1]


def _reads_alone(units, n_children):
    """Whether nothing outside these windows reads their elements or inner nodes."""
    reads = {}
    for u in units:
        for x in u["elements"]:
            reads[x] = reads.get(x, 0) + 1
    nodes = set().union(*(u["nodes"] for u in units))
    return all(n_children[x] == count for x, count in reads.items()) and not set(reads) & nodes


def _max_layer(units):
    units.sort(key=lambda u: u["out"])
    reads = dict.fromkeys(x for u in units for x in u["elements"])
    nodes = set().union(*(u["nodes"] for u in units))
    readers = [m for u in units for m in u["readers"]]
    return MaxLayer(
        inputs=list(reads),
        outputs=[u["out"] for u in units],
        terms=[x for u in units for x in u["elements"]],
        ends=np.cumsum([len(u["elements"]) for u in units]).tolist(),
        back=np.argsort(-np.asarray(readers), kind="stable").tolist(),
        nodes=nodes,
    )


def _softmax_head(out, used, ops, papa, mama, flags, n_children):
    """The SoftmaxLayer whose loss is the NegNode out, or None. Each node's op is checked
    before its parents are read (a leaf has none)."""
    nodes = [out]

    def chain(top, op):
        """The parts of a chain of op nodes from the lowest (its Papa) up (each one's Mama),
        every node but the top read once; None if top is not an op node."""
        if top < 0 or ops[top] != op:
            return None
        parts, i = [], top
        while ops[i] == op and (i == top or n_children[i] == 1):
            parts.append(mama[i])
            nodes.append(i)
            i = papa[i]
        parts.append(i)
        return parts[::-1]

    def all_of(items, op):
        return all(ops[i] == op for i in items)

    # The loss reads a sum that nothing else reads: each chain is walked once (planning
    # stays linear, however many NegNodes read one sum).
    if n_children[papa[out]] != 1:
        return None
    products = chain(papa[out], ADD)
    if products is None or not all_of(products, MUL):
        return None
    k = len(products)
    targets, lps = [papa[p] for p in products], [mama[p] for p in products]
    if not all_of(lps, SUB):
        return None
    ds, log_total = [papa[lp] for lp in lps], mama[lps[0]]
    if not all_of(ds, SUB) or ops[log_total] != LN or any(mama[lp] != log_total for lp in lps):
        return None
    logits, largest, total = [papa[d] for d in ds], mama[ds[0]], papa[log_total]
    exps = chain(total, ADD)
    if (exps is None or len(exps) != k or not all_of(exps, EXP) or [papa[e] for e in exps] != ds
            or any(mama[d] != largest for d in ds) or chain(largest, MAX) != logits):
        return None
    nodes += products + lps + ds + exps + [log_total]
    inner = set(nodes)
    readers = {papa[out]: 1, log_total: k, largest: k, total: 1}
    readers.update({i: 1 for i in products + lps + exps + targets})
    readers.update({i: 2 for i in ds + logits})
    if (len(inner) != len(nodes) or inner & used or any(flags[i] for i in inner)
            or any(n_children[i] != count for i, count in readers.items())
            or len(set(logits + targets)) != 2 * k or set(logits + targets) & inner):
        return None
    # The MaxNode that reads each logit (the lowest reads the first two), bottom first.
    maxima = sorted(i for i in inner if ops[i] == MAX)
    max_reader = [maxima[0]] + maxima
    return SoftmaxLayer(
        logits=logits, targets=targets, outputs=[out],
        lp_order=sorted(range(k), key=lambda c: -lps[c]),
        d_order=sorted(range(k), key=lambda c: -ds[c]),
        d_from_lp_first=[lps[c] > exps[c] for c in range(k)],
        z_from_d_first=[ds[c] > max_reader[c] for c in range(k)],
        nodes=inner,
    )
