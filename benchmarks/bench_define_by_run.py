"""Graphs built anew for every sample, as micrograd's and PyTorch's users write them: build
the graph from fresh nodes, then forward and backward, every iteration.

- the 11-node graph of a public scalar-autograd benchmark (BurTorch's tiny example):
  ``a = -41, b = 2, c = a + b, d = a*b + b**3, e = c - d, f = e**2, g = f / 2``;
- a 2-16-16-1 tanh MLP called on new input nodes for every sample, its squared error,
  backward and an SGD step.

Building one node (``Node()``, ``AddNode(a, b)``) is held to building a bare Cython extension
object with a node's fields and no logic (bare_node.pyx, compiled here with Cython; skipped
without Cython or a C compiler).

micrograd (``pip install micrograd``) and PyTorch eager (``pip install torch``) are the peers,
each skipped when it is not installed. The tiny graph's value is known by hand; each MLP's
weights after its epochs are checked against the same SGD written in numpy.
"""
import importlib.util
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

import ourdl
from ourdl import nn

SAMPLES = 300  # per round of the MLP loop


@pytest.fixture(scope="session")
def bare_module(tmp_path_factory):
    """bare_node.pyx compiled with Cython into an extension module."""
    out = tmp_path_factory.mktemp("bare_node")
    source = out / "bare_node.pyx"
    source.write_text(Path(__file__).with_name("bare_node.pyx").read_text())
    done = subprocess.run([sys.executable, "-m", "cython", "-3", str(source)],
                          capture_output=True, text=True)
    if done.returncode == 0:
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        done = subprocess.run(
            ["cc", "-O3", "-shared", "-fPIC", f"-I{sysconfig.get_paths()['include']}",
             str(out / "bare_node.c"), "-o", str(out / f"bare_node{suffix}")],
            capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"no Cython or C compiler for the bare extension object: "
                    f"{done.stderr[-300:]}")
    spec = importlib.util.spec_from_file_location("bare_node", out / f"bare_node{suffix}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def bare_node(bare_module):
    return bare_module.Bare


def many_calls(*args):
    """pedantic's settings: the call with args made (and its object dropped) 5,000 times a
    round, so that the timer's own cost is spread over them."""
    return dict(args=args, iterations=5_000, rounds=40, warmup_rounds=2)


@pytest.mark.benchmark(group="building a node")
def test_bare_extension_object(benchmark, record, bare_node):
    benchmark.pedantic(bare_node, **many_calls())
    record("bare extension object", note="a Cython class with a node's fields, no logic")


@pytest.mark.benchmark(group="building a node")
def test_ourdl_node(benchmark, record):
    assert benchmark.pedantic(ourdl.Node, **many_calls()).value == 0.0
    record("Node()")


@pytest.mark.benchmark(group="building a node")
def test_ourdl_add_node(benchmark, record):
    a, b = ourdl.Node(Value=1.0), ourdl.Node(Value=2.0)
    assert benchmark.pedantic(ourdl.AddNode, **many_calls(a, b)).Papa is a
    record("AddNode(a, b)")


def tiny(M):
    a, b = M(-41.0), M(2.0)
    c = a + b
    d = a * b + b ** 3
    e = c - d
    f = e ** 2
    return f / 2.0


def ourdl_tiny():
    g = tiny(lambda v: ourdl.Node(Value=v))
    g.forward()
    g.backward(update=False)
    return g.value


@pytest.mark.benchmark(group="tiny graph, built and run")
def test_ourdl_tiny(benchmark, record):
    assert benchmark(ourdl_tiny) == 612.5  # c - d = -39 - (-82 + 8) = 35; 35**2 / 2
    record("tiny ourdl")


@pytest.mark.benchmark(group="tiny graph, built and run")
def test_bare_tiny(benchmark, record, bare_module):
    """The floor: the same program on micrograd's Value written as a Cython class, which
    computes each value as the node is built and does nothing else."""
    def step():
        g = tiny(bare_module.BareValue)
        g.backward()
        return g.value

    assert benchmark(step) == ourdl_tiny()
    record("tiny bare", note="micrograd's Value as a Cython class")
    # It does the whole job: the leaves' gradients are ourdl's.
    leaves = []
    g = tiny(lambda v: leaves.append(bare_module.BareValue(v)) or leaves[-1])
    g.backward()
    ours = []
    h = tiny(lambda v: ours.append(ourdl.Node(Value=v)) or ours[-1])
    h.forward()
    h.backward(update=False)
    assert [a.grad for a in leaves] == [b.grad for b in ours]


@pytest.mark.benchmark(group="tiny graph, built and run")
def test_micrograd_tiny(benchmark, record):
    engine = pytest.importorskip("micrograd.engine", reason="pip install micrograd")

    def step():
        g = tiny(engine.Value)
        g.backward()
        return g.data

    assert benchmark(step) == ourdl_tiny()
    record("tiny micrograd")


@pytest.mark.benchmark(group="tiny graph, built and run")
def test_torch_tiny(benchmark, record, torch_on_one_thread):
    torch = torch_on_one_thread

    def step():
        g = tiny(lambda v: torch.tensor(v, dtype=torch.float64, requires_grad=True))
        g.backward()
        return g.item()

    assert benchmark(step) == ourdl_tiny()
    record("tiny torch eager", note="1 thread")


def xor_rows(n):
    return [((k % 7) / 7.0 - 0.5, (k % 5) / 5.0 - 0.5, 1.0 if k % 3 else -1.0) for k in range(n)]


def numpy_sgd(Ws, bs, rows, epochs, activation, slope, lr=0.01):
    """Per-sample SGD on (out - target)**2 for an MLP (hidden layers activation(h @ W + b),
    a linear last layer), written in numpy: the oracle for the graphs built per sample.
    slope(a) is the activation's derivative given its output a."""
    Ws, bs = [np.array(W, dtype=float) for W in Ws], [np.array(b, dtype=float) for b in bs]
    for _ in range(epochs):
        for a, b, target in rows:
            outs = [np.array([a, b])]
            for k, (W, c) in enumerate(zip(Ws, bs)):
                z = outs[-1] @ W + c
                outs.append(activation(z) if k < len(Ws) - 1 else z)
            g = 2.0 * (outs[-1] - target)
            for k in reversed(range(len(Ws))):
                if k < len(Ws) - 1:
                    g = g * slope(outs[k + 1])
                to_inputs = Ws[k] @ g  # from the weights before their update
                Ws[k] -= lr * np.outer(outs[k], g)
                bs[k] -= lr * g
                g = to_inputs
    return Ws, bs


def assert_weights_close(got, expected, who):
    for k, (a, b) in enumerate(zip(got, expected)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=f"{who}: layer {k}")


@pytest.mark.benchmark(group="2-16-16-1 MLP, built per sample")
def test_ourdl_mlp_per_sample(benchmark, record):
    net = nn.MLP([2, 16, 16, 1], activation="tanh", seed=0)
    start = net.weights, net.biases
    rows = xor_rows(SAMPLES)

    epochs_run = []  # the warm-up round trains too

    def epoch():
        epochs_run.append(1)
        for a, b, target in rows:
            x = [ourdl.Node(Value=a), ourdl.Node(Value=b)]
            loss = ourdl.MSENode(net(x)[0], ourdl.Node(Value=target))
            loss.forward()
            loss.backward()

    benchmark.pedantic(epoch, rounds=5, warmup_rounds=1)
    record("mlp per sample ourdl", scale=1 / SAMPLES, note="per sample")
    Ws, bs = numpy_sgd(*start, rows, len(epochs_run), np.tanh, lambda a: 1.0 - a * a)
    assert_weights_close(net.weights, Ws, "ourdl weights")
    assert_weights_close(net.biases, bs, "ourdl biases")


@pytest.mark.benchmark(group="2-16-16-1 MLP, built per sample")
def test_micrograd_mlp_per_sample(benchmark, record):
    mg = pytest.importorskip("micrograd.nn", reason="pip install micrograd")
    net = mg.MLP(2, [16, 16, 1])  # ReLU hidden layers, a linear output

    def weights_and_biases():
        return ([np.array([[w.data for w in n.w] for n in layer.neurons]).T
                 for layer in net.layers],
                [np.array([n.b.data for n in layer.neurons]) for layer in net.layers])

    start = weights_and_biases()
    rows = xor_rows(SAMPLES)

    epochs_run = []  # the warm-up round trains too

    def epoch():
        epochs_run.append(1)
        for a, b, target in rows:
            loss = (net([a, b]) - target) ** 2
            net.zero_grad()
            loss.backward()
            for p in net.parameters():
                p.data -= 0.01 * p.grad

    benchmark.pedantic(epoch, rounds=3, warmup_rounds=1)
    record("mlp per sample micrograd", scale=1 / SAMPLES, note="per sample")
    for got, expected in zip(weights_and_biases(), numpy_sgd(
            *start, rows, len(epochs_run), lambda z: np.maximum(z, 0.0), lambda a: (a > 0) * 1.0)):
        assert_weights_close(got, expected, "micrograd")
