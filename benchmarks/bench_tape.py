"""The general tape on random scalar graphs of about 1k, 10k, 100k and 1M nodes, side by side
with its floor: ``Tape.forward()`` then ``Tape.backward(update=False)``, against a bare C loop
over the same op codes and parent indices doing the same arithmetic and nothing else
(bare_tape.c, built here with ourdl's compiler flags). Their values and gradients are equal
to the last bit (asserted by each of the two benchmarks), so the ratio is what ourdl's own
work costs.

The graphs are what public autograd benchmarks use: unary transcendental ops, 4-term sums,
products and 4-way softmax groups, each reading recent nodes, and a root summing the last.
PyTorch eager runs the same graphs on the smaller sizes when torch is installed
(``pip install torch``); its figure is reported, not held to a target, and its root's value is checked against ourdl's.
"""
import ctypes
import subprocess
from pathlib import Path

import numpy as np
import pytest

import ourdl

SIZES = {"1k": 1_000, "10k": 10_000, "100k": 100_000, "1M": 1_000_000}
BARE_OPS = ["leaf", "add", "mul", "div", "exp", "tanh", "sin", "sigmoid"]  # bare_tape.c's enum
FLAGS = ["-O3", "-fno-tree-vectorize", "-ffp-contract=off", "-fno-builtin-pow"]  # setup.py's


def random_graph(M, size, seed=0):
    """The root of a random graph of about ``size`` nodes, from module M's node classes."""
    rng = np.random.default_rng(seed)
    nodes = [M.Node(Value=float(v), Flag=1) for v in rng.uniform(-1.0, 1.0, 64)]
    unary = [M.TanhNode, M.SinNode, M.SigmoidNode]
    count = len(nodes)

    def recent():
        return nodes[len(nodes) - 1 - int(rng.integers(min(len(nodes), 256)))]

    while count < size:
        kind = int(rng.integers(4))
        if kind == 0:
            nodes.append(unary[int(rng.integers(3))](recent()))
            count += 1
        elif kind == 1:  # a 4-term sum, squashed
            total = recent()
            for _ in range(3):
                total = M.AddNode(total, recent())
            nodes.append(M.TanhNode(total))
            count += 4
        elif kind == 2:
            nodes.append(M.MulNode(recent(), recent()))
            count += 1
        else:  # a 4-way softmax
            e = [M.ExpNode(M.TanhNode(recent())) for _ in range(4)]
            total = M.AddNode(M.AddNode(M.AddNode(e[0], e[1]), e[2]), e[3])
            nodes += [M.DivNode(x, total) for x in e]
            count += 15
    root = nodes[-1]
    for x in nodes[-64:-1]:
        root = M.AddNode(root, x)
    return root


@pytest.fixture(scope="session")
def bare(tmp_path_factory):
    """bare_tape.c, compiled into a shared library and loaded."""
    out = tmp_path_factory.mktemp("bare") / "bare_tape.so"
    source = Path(__file__).with_name("bare_tape.c")
    done = subprocess.run(["cc", *FLAGS, "-shared", "-fPIC", str(source), "-o", str(out), "-lm"],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"no C compiler for the bare tape: {done.stderr[-300:]}")
    lib = ctypes.CDLL(str(out))
    lib.bare_passes.restype = None
    return lib


class Graph:
    """One random graph: ourdl's tape, and the same graph as the bare loop's arrays."""

    def __init__(self, size):
        self.root = random_graph(ourdl, size)
        self.tape = ourdl.compile(self.root)
        self.n = len(self.tape)
        code = {name: BARE_OPS.index(name) for name in BARE_OPS}
        self.op = np.array([code[name] for name in self.tape.ops], dtype=np.intc)
        parents = self.tape.parents
        self.papa = np.ascontiguousarray(parents[:, 0], dtype=np.intp)
        self.mama = np.ascontiguousarray(parents[:, 1], dtype=np.intp)
        self.values = np.array([node.value for node in self.tape.nodes])
        self.grads = np.empty(self.n)
        self.to_papa, self.to_mama = np.zeros(self.n), np.zeros(self.n)

    def ourdl_pass(self):
        self.tape.forward()
        self.tape.backward(update=False)

    def bare_passes(self, lib, reps):
        """reps forward + backward passes in C (one call from Python for all of them)."""
        p = ctypes.c_void_p
        lib.bare_passes(ctypes.c_ssize_t(reps), ctypes.c_ssize_t(self.n),
                        p(self.op.ctypes.data), p(self.papa.ctypes.data),
                        p(self.mama.ctypes.data), p(self.values.ctypes.data),
                        p(self.grads.ctypes.data), p(self.to_papa.ctypes.data),
                        p(self.to_mama.ctypes.data))


GRAPHS = {}


def graph(size):
    if size not in GRAPHS:
        GRAPHS[size] = Graph(SIZES[size])
    return GRAPHS[size]


def rounds(n):
    return max(5, min(200, 20_000_000 // (50 * n)))


def assert_same_bits(g, lib):
    """ourdl's values and gradients after one pass equal the bare C loop's after one pass."""
    g.ourdl_pass()
    g.bare_passes(lib, 1)
    nodes = g.tape.nodes
    assert np.array_equal(g.values, [node.value for node in nodes], equal_nan=True)
    assert np.array_equal(g.grads, [node.grad for node in nodes], equal_nan=True)


@pytest.mark.parametrize("size", SIZES)
def test_ourdl_tape(benchmark, record, bare, size):
    g = graph(size)
    benchmark.group = f"general tape, {size} nodes: forward + backward"
    benchmark.pedantic(g.ourdl_pass, rounds=rounds(g.n), warmup_rounds=1)
    record(f"tape {size} ourdl", note=f"{g.n:,} nodes")
    assert_same_bits(g, bare)


@pytest.mark.parametrize("size", SIZES)
def test_bare_tape(benchmark, record, bare, size):
    g = graph(size)
    benchmark.group = f"general tape, {size} nodes: forward + backward"
    reps = max(1, 100_000 // g.n)  # so that a call from Python costs nothing beside them
    benchmark.pedantic(g.bare_passes, args=(bare, reps), rounds=rounds(g.n), warmup_rounds=1)
    record(f"tape {size} bare C", scale=1 / reps, note=f"{reps} passes a call")
    assert_same_bits(g, bare)


@pytest.mark.parametrize("size", ["1k", "10k"])
def test_torch_eager_tape(benchmark, record, torch_on_one_thread, size):
    torch = torch_on_one_thread
    leaves = []

    class Torch:  # random_graph's node classes, as scalar torch tensors
        @staticmethod
        def Node(Value, Flag):
            leaves.append(torch.tensor(Value, dtype=torch.float64, requires_grad=True))
            return leaves[-1]
        AddNode, MulNode, DivNode = staticmethod(torch.add), staticmethod(torch.mul), staticmethod(torch.div)
        TanhNode, SinNode = staticmethod(torch.tanh), staticmethod(torch.sin)
        SigmoidNode, ExpNode = staticmethod(torch.sigmoid), staticmethod(torch.exp)

    def step():  # PyTorch records the graph anew on every forward
        leaves.clear()
        root = random_graph(Torch, SIZES[size])
        root.backward()
        return root

    benchmark.group = f"general tape, {size} nodes: forward + backward"
    root = benchmark.pedantic(step, rounds=5, warmup_rounds=1)
    record(f"tape {size} torch eager", note="graph built and run each time, 1 thread")
    g = graph(size)
    g.ourdl_pass()
    np.testing.assert_allclose(root.item(), g.root.value, rtol=1e-9)
