"""Classification on scikit-learn's handwritten digits, side by side: ourdl against JAX and
PyTorch, per-sample SGD, float64, softmax cross-entropy.

Two networks, both started from the same weights (ourdl's ``nn`` initialization):

- **MLP 64-32-10**, tanh, biases;
- **CNN**, the one of ``examples/digits.py``: conv 1->8 3x3 with padding 1 and relu, max-pool 2,
  dense 128->10.

Each is trained one sample at a time (lr 0.02 on every parameter) by

- ourdl ``Tape.fit``, fused (dense layers and convolutions as kernels), over every training
  image several times, with the tutorial's update rule (each node's own lr);
- ourdl with ``fuse=False`` (the general passes, node by node);
- JAX: ``jax.jit`` over ``jax.lax.scan`` of the per-sample step, timed after its compile;
- PyTorch eager, one sample per step, on a slice, with one thread (faster than the default
  on this size).

Times are per sample. Before any timing, each peer's parameters after CHECK_ROWS images must
agree with ourdl's to 1e-9 relative, and ourdl's fused and unfused tapes to the last bit.
Held-out accuracy (25% of the digits, stratified, random_state 0) is recorded for the CNN
after EPOCHS epochs, for ``ourdl.Classifier(hidden=(32,))`` when it exists and for
scikit-learn's ``MLPClassifier`` beside it.

Run with `pytest benchmarks/bench_digits.py`; it is outside the default test run.
"""
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import ourdl
from ourdl import Node, nn

sklearn = pytest.importorskip("sklearn")

LR = 0.02
CHECK_ROWS = 200
TORCH_ROWS = 300
REPEATS = 5        # passes over the training images in one timed fit
EPOCHS = 15        # for the accuracy
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import digits as example  # noqa: E402 - the example's networks


@pytest.fixture(scope="module")
def data():
    X_train, X_test, y_train, y_test = example.load(None)
    return (X_train.reshape(len(X_train), 64), X_test.reshape(len(X_test), 64),
            y_train, y_test)


def mlp(pixels):
    net = nn.MLP([64, 32, 10], activation="tanh", seed=0)
    return net(nn.flatten(pixels)), net.layers


def cnn(pixels):
    """examples/digits.py's CNN, keeping its layers."""
    conv, dense = nn.Conv2d(1, 8, 3, padding=1, activation="relu", seed=0), nn.Linear(128, 10, seed=1)
    return dense(nn.flatten(nn.MaxPool2d(2)(conv(pixels)))), [conv, dense]


NETWORKS = {"mlp 64-32-10": mlp, "cnn": cnn}


class Model:
    """An ourdl network on the digits: its loss, fused and unfused tapes, its layers."""

    def __init__(self, name):
        self.name = name
        self.pixels = [[[Node() for _ in range(8)] for _ in range(8)]]
        self.targets = [Node() for _ in range(10)]
        self.logits, self.layers = NETWORKS[name](self.pixels)
        self.loss = nn.cross_entropy(self.logits, self.targets)
        self.tape = ourdl.compile(self.loss)
        self.unfused = ourdl.compile(self.loss, fuse=False)
        self.inputs = nn.flatten(self.pixels) + self.targets
        self.params = [p for layer in self.layers for p in layer.parameters()]
        for p in self.params:
            p.lr = LR  # the tutorial's rule: each node's own lr
        self.start = [p.value for p in self.params]
        self.start_arrays = self.arrays()

    def arrays(self):
        """The parameters as the peers take them: weights and biases, layer by layer."""
        return [a for layer in self.layers for a in (layer.weights, layer.biases)]

    def reset(self):
        for p, v in zip(self.params, self.start):
            p.value = v

    @staticmethod
    def rows(X, y):
        return np.column_stack([X, np.eye(10)[y]])

    def fit(self, rows, fuse=True, epochs=1):
        """The parameter arrays after training on rows from the start."""
        self.reset()
        (self.tape if fuse else self.unfused).fit(rows, self.inputs, epochs=epochs)
        got = self.arrays()
        self.reset()
        return got


@pytest.fixture(scope="module", params=list(NETWORKS))
def model(request, data):
    m = Model(request.param)
    rows = m.rows(data[0][:CHECK_ROWS], data[2][:CHECK_ROWS])
    m.checked = m.fit(rows)
    unfused = m.fit(rows, fuse=False)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(m.checked, unfused))  # to the bit
    return m


def assert_agree(got, expected, who):
    for a, b in zip(got, expected):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-9, atol=1e-12, err_msg=who)


def test_ourdl_fit_fused(benchmark, record, model, data):
    m = model
    benchmark.group = f"digits {m.name} per-sample SGD"
    benchmark.extra_info["kernels"] = m.tape.kernels
    rows = m.rows(data[0], data[2])
    benchmark.pedantic(m.tape.fit, args=(rows, m.inputs), kwargs=dict(epochs=REPEATS),
                       setup=m.reset, rounds=3, warmup_rounds=1)  # the fit alone is timed
    record(f"digits {m.name} ourdl", 1.0 / (REPEATS * len(rows)),
           f"per sample, {REPEATS} epochs of {len(rows):,} images")


def test_ourdl_fit_unfused(benchmark, record, model, data):
    m = model
    benchmark.group = f"digits {m.name} per-sample SGD"
    rows = m.rows(data[0], data[2])
    benchmark.pedantic(m.unfused.fit, args=(rows, m.inputs), setup=m.reset, rounds=3)
    record(f"digits {m.name} ourdl unfused", 1.0 / len(rows), f"per sample, {len(rows):,} images")


def test_bare_loop(benchmark, record, model, data):
    """The floor: ourdl's operations for the MLP in a bare numba loop, nothing else."""
    if model.name != "mlp 64-32-10":
        pytest.skip("the bare loop is written for the MLP")
    bare_loops = pytest.importorskip("bare_loops", reason="numba is not installed")
    m = model
    benchmark.group = f"digits {m.name} per-sample SGD"

    def fresh(rows):
        return (rows,) + tuple(a.copy() for a in m.start_arrays) + (LR,)
    check = m.rows(data[0][:CHECK_ROWS], data[2][:CHECK_ROWS])
    assert_agree(bare_loops.bare_digits_mlp_epoch(*fresh(check)), m.checked, "bare loop")
    rows = np.tile(m.rows(data[0], data[2]), (REPEATS, 1))
    benchmark.pedantic(bare_loops.bare_digits_mlp_epoch, setup=lambda: (fresh(rows), {}),
                       rounds=3)
    record(f"digits {m.name} bare loop", 1.0 / len(rows),
           f"per sample, {REPEATS} epochs of {len(rows) // REPEATS:,} images")


# -------------------------------------------------------------------------------------- JAX
@pytest.fixture(scope="module")
def jax_fit():
    jax = pytest.importorskip(
        "jax", reason="JAX is not installed (pip install 'jax[cpu]', or ourdl[peers])")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def logits_of(name, P, x):
        if name == "cnn":
            W, b, V, c = P
            image = x.reshape(1, 1, 8, 8)
            h = jax.lax.conv_general_dilated(image, W, (1, 1), ((1, 1), (1, 1)))[0]
            h = jax.nn.relu(h + b[:, None, None])
            h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2), (1, 2, 2), "VALID")
            return h.reshape(-1) @ V + c
        W1, b1, W2, b2 = P
        return jnp.tanh(x @ W1 + b1) @ W2 + b2

    def make(name):
        def loss_of(P, x, t):
            return -jnp.sum(t * jax.nn.log_softmax(logits_of(name, P, x)))
        value_and_grad = jax.value_and_grad(loss_of)

        def step(P, row):
            loss, grads = value_and_grad(P, row[:64], row[64:])
            return tuple(p - LR * g for p, g in zip(P, grads)), loss

        @jax.jit
        def epochs(P, data):
            return jax.lax.scan(lambda P, _: jax.lax.scan(step, P, data), P, None,
                                length=REPEATS)[0]

        @jax.jit
        def once(P, data):
            return jax.lax.scan(step, P, data)[0]
        return epochs, once

    made = {}

    def run(name, P, data, repeats=True):
        if name not in made:
            made[name] = make(name)
        return jax.block_until_ready(made[name][0 if repeats else 1](P, data))

    run.put = lambda a: jax.device_put(np.asarray(a, dtype=np.float64))
    return run


def test_jax_fit(benchmark, record, model, data, jax_fit):
    m = model
    benchmark.group = f"digits {m.name} per-sample SGD"
    P = tuple(jax_fit.put(a) for a in m.start_arrays)
    check = jax_fit.put(m.rows(data[0][:CHECK_ROWS], data[2][:CHECK_ROWS]))
    assert_agree(jax_fit(m.name, P, check, repeats=False), m.checked, "JAX")
    rows = jax_fit.put(m.rows(data[0], data[2]))
    jax_fit(m.name, P, rows)  # compiles
    benchmark.pedantic(jax_fit, args=(m.name, P, rows), rounds=3, warmup_rounds=1)
    record(f"digits {m.name} jax", 1.0 / (REPEATS * rows.shape[0]),
           f"per sample, jit + lax.scan, {REPEATS} epochs of {rows.shape[0]:,} images")


# ---------------------------------------------------------------------------------- PyTorch
def torch_step_fn(torch, name):
    F = torch.nn.functional

    def logits_of(P, x):
        if name == "cnn":
            W, b, V, c = P
            h = F.max_pool2d(torch.relu(F.conv2d(x.reshape(1, 1, 8, 8), W, b, padding=1)), 2)
            return h.reshape(-1) @ V + c
        W1, b1, W2, b2 = P
        return torch.tanh(x @ W1 + b1) @ W2 + b2

    def epoch(P, X, T):
        """The usual eager loop, one sample per step: forward, backward, update."""
        for i in range(X.shape[0]):
            loss = -(T[i] * torch.log_softmax(logits_of(P, X[i]), 0)).sum()
            loss.backward()
            with torch.no_grad():
                for p in P:
                    p -= LR * p.grad
                    p.grad = None
        return P
    return epoch


def test_torch_eager_fit(benchmark, record, model, data):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    m = model
    benchmark.group = f"digits {m.name} per-sample SGD"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        epoch = torch_step_fn(torch, m.name)

        def fresh():
            return [torch.tensor(a, requires_grad=True) for a in m.start_arrays]
        rows = m.rows(data[0], data[2])
        X, T = torch.tensor(rows[:CHECK_ROWS, :64]), torch.tensor(rows[:CHECK_ROWS, 64:])
        assert_agree([p.detach().numpy() for p in epoch(fresh(), X, T)], m.checked, "PyTorch")
        X, T = torch.tensor(rows[:TORCH_ROWS, :64]), torch.tensor(rows[:TORCH_ROWS, 64:])
        benchmark.pedantic(lambda P: epoch(P, X, T), setup=lambda: ((fresh(),), {}), rounds=3)
    finally:
        torch.set_num_threads(threads)
    record(f"digits {m.name} torch eager", 1.0 / TORCH_ROWS,
           f"per sample, 1 thread, measured on {TORCH_ROWS:,} images")


# ---------------------------------------------------------------------------------- accuracy
def test_held_out_accuracy(benchmark, data):
    """Not a speed: the held-out accuracy of the CNN, ourdl.Classifier and MLPClassifier."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    X_train, X_test, y_train, y_test = data
    scores = {}
    m = Model("cnn")
    m.tape.fit(m.rows(X_train, y_train), m.inputs, epochs=EPOCHS, shuffle=True, seed=0,
               optimizer=ourdl.optim.SGD(lr=LR))
    logits = np.column_stack([m.tape.predict(X_test, m.inputs[:64], output=z) for z in m.logits])
    scores["cnn (ourdl)"] = float((logits.argmax(axis=1) == y_test).mean())
    scaler = StandardScaler().fit(X_train)
    if hasattr(ourdl, "Classifier"):
        started = time.perf_counter()
        clf = ourdl.Classifier(hidden=(32,), seed=0).fit(scaler.transform(X_train), y_train)
        scores["ourdl.Classifier(hidden=(32,))"] = clf.score(scaler.transform(X_test), y_test)
        scores["ourdl.Classifier seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    sk = MLPClassifier(hidden_layer_sizes=(32,), max_iter=500, random_state=0)
    scores["sklearn MLPClassifier(32,)"] = sk.fit(scaler.transform(X_train), y_train).score(
        scaler.transform(X_test), y_test)
    scores["sklearn MLPClassifier seconds"] = time.perf_counter() - started
    benchmark.extra_info.update(scores, name="digits accuracy")  # benchmarks/report.py shows it
    benchmark.pedantic(lambda: None, rounds=1)
    assert scores["cnn (ourdl)"] >= 0.97
    if "ourdl.Classifier(hidden=(32,))" in scores:
        assert scores["ourdl.Classifier(hidden=(32,))"] >= 0.96
