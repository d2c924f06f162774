"""MLPs on the PUBG training array, side by side: ourdl's fused tape against JAX and PyTorch.

Per-sample SGD (batch of 1, lr 0.01 on every weight), squared error, tanh MLPs without biases:
13-16-16-1 (held to targets) and 13-64-64-1 (reported). Every system starts from the same
weights, ``nn.MLP(..., seed=0).weights``:

- ourdl ``Tape.fit``, fused (the default), one epoch over all rows; its time includes the loss
  history, as it always does;
- ourdl with ``fuse=False`` (the general passes, node by node), on a slice;
- JAX: ``jax.jit`` over ``jax.lax.scan`` of the per-sample step, float64, all rows, timed
  after a warm-up compile, with ``block_until_ready``; it sums the loss as ourdl does;
- PyTorch eager, one sample per step, float64, on a slice; with one thread and with
  PyTorch's default thread count (both are shown; the ratio targets use the faster); and as
  a tutorial writes it (nn.Sequential, nn.MSELoss, optim.SGD), reported;
- a bare numba loop doing ourdl's operations in ourdl's order and nothing else
  (bare_loops.bare_mlp_epoch), equal to ourdl's weights to the last bit: the floor.

Times are per sample. Every benchmark checks its own result, whatever ran before it: ourdl's
fused and unfused tapes against the bare loop to the last bit (against PyTorch to 1e-9 when
numba is not installed), the bare loop and each peer against ourdl (a peer's weights after
the first CHECK_ROWS rows to 1e-9 relative before any timing: a wrong peer is worse than
none; the bare loop's and JAX's also after the whole epoch).

Then forward only: ``Tape.predict`` of the network's output on 500,000 rows against numpy's
batched ``tanh(tanh(X @ W1) @ W2) @ W3`` (with numpy's default BLAS threads and with one; the
target uses the faster, since OpenBLAS's threads can lose badly on a shared 2-core machine),
and against the 16 million libm ``tanh`` calls alone: the floor of a predict that keeps
reference.py's bits (numpy's ``np.tanh`` may be SIMD code that differs from libm in the last
bits).

JAX, PyTorch and numba are optional (``pytest.importorskip``): without them their rows are
skipped and the rest still runs. OURDL_BENCH_TORCH_ROWS (2,000) and OURDL_BENCH_UNFUSED_ROWS
(20,000) set the slices that PyTorch and the unfused tape are timed on.
"""
import os

import numpy as np
import pytest

import ourdl
from ourdl import MSENode, Node, nn

LR = 0.01
N_FEATURES = 13
CHECK_ROWS = 1_000                                                # peers checked on these rows
UNFUSED_ROWS = int(os.environ.get("OURDL_BENCH_UNFUSED_ROWS", 20_000))
TORCH_ROWS = int(os.environ.get("OURDL_BENCH_TORCH_ROWS", 2_000))
PREDICT_ROWS = 500_000
SIZES = {"mlp16": [13, 16, 16, 1], "mlp64": [13, 64, 64, 1]}
TORCH_MISSING = ("PyTorch is not installed (a CPU wheel: pip install torch "
                 "--index-url https://download.pytorch.org/whl/cpu, or ourdl[torch])")


class Network:
    """An ourdl MLP with its loss, fused and unfused tapes, and its starting weights."""

    def __init__(self, sizes):
        self.x = [Node() for _ in range(N_FEATURES)]
        self.y = Node()
        self.net = nn.MLP(sizes, activation="tanh", bias=False, seed=0, lr=LR)
        self.out = self.net(self.x)[0]
        self.loss = MSENode(self.out, self.y)
        self.tape = ourdl.compile(self.loss)
        self.unfused = ourdl.compile(self.loss, fuse=False)
        self.start = [w.copy() for w in self.net.weights]

    def reset(self, weights=None):
        for layer, W in zip(self.net.layers, weights or self.start):
            for i, row in enumerate(layer.W):
                for j, node in enumerate(row):
                    node.value = float(W[i, j])

    def fit(self, data, fuse=True):
        """Weights after one epoch over data from the starting weights."""
        self.reset()
        (self.tape if fuse else self.unfused).fit(data, self.x + [self.y])
        weights = [w.copy() for w in self.net.weights]
        self.reset()
        return weights

    def whole_epoch(self, data):
        """ourdl's weights after one epoch over all of data (computed once)."""
        if not hasattr(self, "epoch_weights"):
            self.epoch_weights = self.fit(data)
        return self.epoch_weights


@pytest.fixture(scope="module", params=list(SIZES))
def network(request, pubg_train):
    net = Network(SIZES[request.param])
    net.name = request.param
    # The reference every peer must meet: ourdl's weights after CHECK_ROWS rows.
    net.checked = net.fit(pubg_train[:CHECK_ROWS])
    return net


class Independent:
    """ourdl's result computed without ourdl: weights after CHECK_ROWS rows (check) and after
    the whole epoch (epoch, or None), equal to ourdl's bits (exact) or to 1e-9 relative."""

    def __init__(self, who, check, epoch, exact):
        self.who, self.check, self.epoch, self.exact = who, check, epoch, exact

    def assert_matches(self, got, rows_name):
        expected = self.check if rows_name == "check" else self.epoch
        if self.exact:
            for k, (a, b) in enumerate(zip(got, expected)):
                assert a.tobytes() == b.tobytes(), f"layer {k} differs from {self.who}'s bits"
        else:
            assert_weights_agree(got, expected, f"ourdl against {self.who}")


@pytest.fixture(scope="module")
def independent(network, pubg_train):
    """The bare numba loop (the same bits, the whole epoch too), else PyTorch (the first rows)."""
    try:
        import bare_loops
    except ImportError:
        pass
    else:
        def bare(rows):
            Ws = [w.copy() for w in network.start]
            return list(bare_loops.bare_mlp_epoch(rows, *Ws))
        return Independent("the bare loop", bare(pubg_train[:CHECK_ROWS]), bare(pubg_train),
                           exact=True)
    try:
        import torch
    except ImportError:
        pytest.skip("nothing independent of ourdl to check it against: install numba or "
                    "PyTorch (pip install '.[peers]')")
    Ws = [torch.tensor(W, dtype=torch.float64, requires_grad=True) for W in network.start]
    rows = pubg_train[:CHECK_ROWS]
    torch_epoch(torch, Ws, torch.from_numpy(np.ascontiguousarray(rows[:, :N_FEATURES])),
                torch.from_numpy(np.ascontiguousarray(rows[:, N_FEATURES])))
    return Independent("PyTorch", [W.detach().numpy() for W in Ws], None, exact=False)


def epoch_rounds(net):
    """Whole epochs timed: 5 of the small network (about a second each), 3 of the wide one."""
    return 5 if net.name == "mlp16" else 3


def assert_weights_agree(got, expected, who):
    for k, (g, e) in enumerate(zip(got, expected)):
        np.testing.assert_allclose(np.asarray(g), e, rtol=1e-9, atol=1e-12,
                                   err_msg=f"{who}: layer {k} disagrees with ourdl")


# ------------------------------------------------------------------------------------ ourdl
def test_ourdl_fit_fused(benchmark, record, network, pubg_train, independent):
    net = network
    benchmark.group = f"{net.name} per-sample SGD"
    assert any(line.startswith("dense") for line in net.tape.kernels)
    benchmark.extra_info["kernels"] = net.tape.kernels
    history = benchmark.pedantic(net.tape.fit, args=(pubg_train, net.x + [net.y]),
                                 setup=net.reset, rounds=epoch_rounds(net), warmup_rounds=1)
    record(f"{net.name} ourdl", 1.0 / len(pubg_train),
           f"per sample, fused, {len(pubg_train):,} rows", rows=len(pubg_train))
    assert np.isfinite(history[0].loss)
    if independent.epoch is not None:  # every round starts from net.start
        independent.assert_matches(net.net.weights, "epoch")
    else:
        independent.assert_matches(net.checked, "check")
    net.reset()


def test_ourdl_fit_unfused(benchmark, record, network, pubg_train, independent):
    net = network
    benchmark.group = f"{net.name} per-sample SGD"
    independent.assert_matches(net.fit(pubg_train[:CHECK_ROWS], fuse=False), "check")
    rows = pubg_train[:UNFUSED_ROWS]
    benchmark.pedantic(net.unfused.fit, args=(rows, net.x + [net.y]), setup=net.reset,
                       rounds=3, warmup_rounds=1)
    record(f"{net.name} ourdl unfused", 1.0 / len(rows),
           f"per sample, fuse=False, {len(rows):,} rows", rows=len(rows), of=len(pubg_train))
    net.reset()


def test_bare_mlp_loop(benchmark, record, network, pubg_train):
    """The floor for ourdl: a numba loop doing ourdl's operations in ourdl's order, nothing else."""
    pytest.importorskip("numba", reason="numba is not installed: no bare loop to compare with "
                        "(pip install numba, or ourdl[peers])")
    import bare_loops
    net = network
    benchmark.group = f"{net.name} per-sample SGD"
    Ws = [w.copy() for w in net.start]
    bare_loops.bare_mlp_epoch(pubg_train[:CHECK_ROWS], *Ws)  # compiles, untimed
    for a, b in zip(Ws, net.checked):
        assert a.tobytes() == b.tobytes()

    def fresh():
        Ws[:] = [w.copy() for w in net.start]
        return (pubg_train, *Ws), {}

    benchmark.pedantic(bare_loops.bare_mlp_epoch, setup=fresh, rounds=epoch_rounds(net),
                       warmup_rounds=1)
    record(f"{net.name} bare loop", 1.0 / len(pubg_train),
           f"per sample, numba, ourdl's operations and order, {len(pubg_train):,} rows",
           rows=len(pubg_train))
    for a, b in zip(Ws, net.whole_epoch(pubg_train)):  # still the same bits after the epoch
        assert a.tobytes() == b.tobytes()


# -------------------------------------------------------------------------------------- JAX
@pytest.fixture(scope="module")
def jax_epoch():
    jax = pytest.importorskip(
        "jax", reason="JAX is not installed (pip install 'jax[cpu]', or ourdl[peers])")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def loss_of(Ws, x, y):
        h = x
        for W in Ws[:-1]:
            h = jnp.tanh(h @ W)
        d = (h @ Ws[-1])[0] - y
        return d * d

    value_and_grad = jax.value_and_grad(loss_of)

    def step(carry, row):
        Ws, total = carry
        loss, grads = value_and_grad(Ws, row[:N_FEATURES], row[N_FEATURES])
        return (tuple(W - LR * g for W, g in zip(Ws, grads)), total + loss), None

    @jax.jit
    def epoch(Ws, data):
        (Ws, total), _ = jax.lax.scan(step, (Ws, jnp.float64(0.0)), data)
        return Ws, total

    def run(Ws, data):
        return jax.block_until_ready(epoch(Ws, data))

    run.asarray = lambda a: jax.device_put(np.asarray(a, dtype=np.float64))
    return run


def test_jax_fit(benchmark, record, network, pubg_train, jax_epoch):
    net = network
    benchmark.group = f"{net.name} per-sample SGD"
    Ws = tuple(jax_epoch.asarray(W) for W in net.start)  # the first call compiles (untimed)
    got, _ = jax_epoch(Ws, jax_epoch.asarray(pubg_train[:CHECK_ROWS]))
    assert got[0].dtype == np.float64
    assert_weights_agree(got, net.checked, "JAX")
    data = jax_epoch.asarray(pubg_train)
    got, _ = benchmark.pedantic(jax_epoch, args=(Ws, data), rounds=epoch_rounds(net),
                                warmup_rounds=1)
    record(f"{net.name} jax", 1.0 / len(pubg_train),
           f"per sample, jit + lax.scan, {len(pubg_train):,} rows", rows=len(pubg_train))
    # and still after the whole epoch (measured: ~5e-12 relative)
    assert_weights_agree(got, net.whole_epoch(pubg_train), "JAX, whole epoch")


# ---------------------------------------------------------------------------------- PyTorch
def torch_epoch(torch, Ws, X, Y):
    """The usual eager loop, one sample per step: forward, backward, update, zero the grads."""
    for i in range(X.shape[0]):
        h = X[i]
        for W in Ws[:-1]:
            h = torch.tanh(h @ W)
        loss = ((h @ Ws[-1])[0] - Y[i]) ** 2
        loss.backward()
        with torch.no_grad():
            for W in Ws:
                W -= LR * W.grad
                W.grad = None


@pytest.mark.parametrize("threads", ["1 thread", "default threads"])
def test_torch_eager_fit(benchmark, record, network, pubg_train, threads):
    torch = pytest.importorskip("torch", reason=TORCH_MISSING)
    net = network
    benchmark.group = f"{net.name} per-sample SGD"
    before = torch.get_num_threads()
    if threads == "1 thread":
        torch.set_num_threads(1)

    def fresh(rows):
        Ws = [torch.tensor(W, dtype=torch.float64, requires_grad=True) for W in net.start]
        X = torch.from_numpy(np.ascontiguousarray(pubg_train[:rows, :N_FEATURES]))
        Y = torch.from_numpy(np.ascontiguousarray(pubg_train[:rows, N_FEATURES]))
        return (torch, Ws, X, Y), {}

    try:
        (_, Ws, X, Y), _ = fresh(CHECK_ROWS)
        torch_epoch(torch, Ws, X, Y)
        assert_weights_agree([W.detach().numpy() for W in Ws], net.checked, "PyTorch")
        rows = min(TORCH_ROWS, len(pubg_train))
        benchmark.pedantic(torch_epoch, setup=lambda: fresh(rows), rounds=3, warmup_rounds=1)
        record(f"{net.name} torch, {threads}", 1.0 / rows,
               f"per sample, eager, {torch.get_num_threads()} thread(s), {rows:,} rows",
               rows=rows, of=len(pubg_train))
    finally:
        torch.set_num_threads(before)


def torch_modules(torch, start):
    """The same network as a tutorial writes it: nn.Sequential, nn.MSELoss, optim.SGD."""
    layers = []
    for k, W in enumerate(start):
        linear = torch.nn.Linear(*W.shape, bias=False, dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.T))  # PyTorch keeps W as (n_out, n_in)
        layers += [linear] if k == len(start) - 1 else [linear, torch.nn.Tanh()]
    model = torch.nn.Sequential(*layers)
    return model, torch.optim.SGD(model.parameters(), lr=LR), torch.nn.MSELoss()


def torch_modules_epoch(model, optimizer, loss_of, X, Y):
    for i in range(X.shape[0]):
        optimizer.zero_grad()
        loss_of(model(X[i:i + 1]), Y[i:i + 1, None]).backward()  # the mean of one: (p - y)**2
        optimizer.step()


def test_torch_modules_fit(benchmark, record, network, pubg_train):
    """Reported beside the lean loop: the usual nn.Module + optimizer code, default threads."""
    torch = pytest.importorskip("torch", reason=TORCH_MISSING)
    net = network
    benchmark.group = f"{net.name} per-sample SGD"

    def fresh(rows):
        X = torch.from_numpy(np.ascontiguousarray(pubg_train[:rows, :N_FEATURES]))
        Y = torch.from_numpy(np.ascontiguousarray(pubg_train[:rows, N_FEATURES]))
        return (*torch_modules(torch, net.start), X, Y), {}

    (model, *rest), _ = fresh(CHECK_ROWS)
    torch_modules_epoch(model, *rest)
    linears = [layer for layer in model if isinstance(layer, torch.nn.Linear)]
    assert_weights_agree([layer.weight.detach().numpy().T for layer in linears], net.checked,
                         "PyTorch nn.Sequential + optim.SGD")
    rows = min(TORCH_ROWS, len(pubg_train))
    benchmark.pedantic(torch_modules_epoch, setup=lambda: fresh(rows), rounds=3, warmup_rounds=1)
    record(f"{net.name} torch, nn + optim", 1.0 / rows,
           f"per sample, eager nn.Sequential + optim.SGD, {torch.get_num_threads()} thread(s), "
           f"{rows:,} rows", rows=rows, of=len(pubg_train))


# ---------------------------------------------------------------------------------- predict
@pytest.fixture(scope="module")
def predictor(pubg_train):
    net = Network(SIZES["mlp16"])
    X = np.ascontiguousarray(pubg_train[:PREDICT_ROWS, :N_FEATURES])
    return net, X


def numpy_forward(X, W1, W2, W3):
    return (np.tanh(np.tanh(X @ W1) @ W2) @ W3)[:, 0]


def assert_forward_is_right(got, X, Ws, every=997):
    """Every 997th row against the same network in plain Python floats and libm's tanh."""
    import math
    for r in range(0, len(X), every):
        h = X[r].tolist()
        for W in Ws:
            h = [sum(a * w for a, w in zip(h, column)) for column in W.T.tolist()]
            h = [math.tanh(a) for a in h] if W is not Ws[-1] else h
        np.testing.assert_allclose(got[r], h[0], rtol=1e-12, atol=1e-12, err_msg=f"row {r}")


@pytest.mark.benchmark(group="mlp16 predict")
def test_ourdl_mlp_predict(benchmark, record, predictor):
    net, X = predictor
    got = benchmark.pedantic(net.tape.predict, args=(X, net.x), kwargs={"output": net.out},
                             rounds=5, warmup_rounds=1)
    record("mlp16 predict ourdl", note=f"{len(X):,} rows", rows=len(X))
    np.testing.assert_allclose(got, numpy_forward(X, *net.start), rtol=0, atol=1e-12)


@pytest.mark.benchmark(group="mlp16 predict")
def test_numpy_mlp_predict(benchmark, record, predictor):
    net, X = predictor
    got = benchmark.pedantic(numpy_forward, args=(X, *net.start), rounds=5, warmup_rounds=1)
    record("mlp16 predict numpy", note=f"{len(X):,} rows, default BLAS threads")
    assert_forward_is_right(got, X, net.start)


@pytest.mark.benchmark(group="mlp16 predict")
def test_numpy_mlp_predict_one_blas_thread(benchmark, record, predictor):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    net, X = predictor
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        got = benchmark.pedantic(numpy_forward, args=(X, *net.start), rounds=5, warmup_rounds=1)
    record("mlp16 predict numpy 1t", note=f"{len(X):,} rows, 1 BLAS thread")
    assert_forward_is_right(got, X, net.start)


@pytest.mark.benchmark(group="mlp16 predict")
def test_libm_tanh_floor(benchmark, record, predictor):
    """The floor of a bit-exact predict: the 16 million tanh calls alone, each libm's tanh
    (what reference.py's math.tanh gives), one after another in a numba loop. numpy's np.tanh
    may use SIMD code that differs from libm in the last bits, so ourdl cannot use it."""
    numba = pytest.importorskip("numba", reason="numba is not installed (or ourdl[peers])")
    import math

    @numba.njit
    def tanh_each(a, out):
        for i in range(a.shape[0]):
            out[i] = math.tanh(a[i])
        return out

    net, X = predictor
    W1, W2, _ = net.start
    first = X @ W1
    arguments = np.concatenate([first.ravel(), (np.tanh(first) @ W2).ravel()])
    out = np.empty_like(arguments)
    tanh_each(arguments[:100], out[:100])  # compile outside the timing
    benchmark.pedantic(tanh_each, args=(arguments, out), rounds=5, warmup_rounds=1)
    record("mlp16 libm tanh floor", note=f"{len(arguments):,} scalar libm tanh calls, numba")
    sample = arguments[::997]
    assert out[::997].tobytes() == np.array([math.tanh(v) for v in sample]).tobytes()
