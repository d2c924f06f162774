"""One epoch of the tutorial's PUBG model, side by side: ourdl's Tape.fit, the tutorial's per-sample loop
on the reference classes and on ourdl's compiled nodes, scikit-learn's SGDRegressor (the same
math) and a bare compiled loop in numba (the same operations in the same order and nothing
else: the floor, see bare_loops.py); then Tape.predict against numpy's X @ w, and one sample's
forward + backward.

Run with `pytest benchmarks` (outside the default test run). The reference loop takes about a
minute on all 635,716 rows; OURDL_BENCH_REFERENCE_ROWS=N runs it on the first N rows and scales
its time to the whole array. The ratio table is printed at the end of the session.
"""
import os
import struct
import warnings

import numpy as np
import pytest

import ourdl
from ourdl import reference as ref

LR = 0.01
PREDICT_ROWS = 500_000


def tutorial_network(M, lr=LR):
    """The tutorial's 13 -> 1 network, wired as the tutorial wires it, from module M's classes."""
    x, w = [], []
    for i in range(13):
        x.append(M.Node())
        w.append(M.Node(Flag=1, lr=lr))
    m = [M.MulNode(Papa=x[i], Mama=w[i]) for i in range(13)]
    a = []
    for i in range(12):
        a.append(M.AddNode(Papa=m[0] if i == 0 else a[i - 1], Mama=m[i + 1]))
    y = M.Node()
    result = M.MSENode(Papa=a[11], Mama=y)
    return x, w, y, a, result


def tutorial_loop(data, x, w, y, result):
    """The tutorial's training loop, unchanged (the progress print aside)."""
    for sample in data:
        for i in range(13):
            x[i].value = sample[i]
        y.value = sample[-1]
        result.forward()
        result.backward()


def bits(values):
    return [struct.pack("<d", v) for v in values]


def plain_python_epoch(rows, batch_size=1, w=None):
    """One epoch of the tutorial's model from w (from zero) in plain Python floats, as
    ourdl.reference.fit does it (the tutorial's order; gradients summed from -0.0 over each
    batch and averaged): an oracle that shares no code with ourdl, about 2-4 s on the whole
    array."""
    w, sums, count = w or [0.0] * 13, [-0.0] * 13, 0
    for r, row in enumerate(rows):
        p = row[0] * w[0]
        for k in range(1, 13):
            p = p + row[k] * w[k]
        t = 2.0 * (p - row[13])  # MSENode's gradient; MulNode sends t * x to each weight
        sums = [s + t * x for s, x in zip(sums, row)]  # zip stops at the 13 weights
        count += 1
        if count == batch_size or r == len(rows) - 1:
            w = [w_k - LR * (s / count) for w_k, s in zip(w, sums)]
            sums, count = [-0.0] * 13, 0
    return w


@pytest.fixture(scope="module")
def fitted(pubg_train):
    """The weights every linear benchmark must end with, computed without ourdl (about 2 s)."""
    return plain_python_epoch(pubg_train.tolist())


@pytest.mark.benchmark(group="epoch")
def test_ourdl_fit(benchmark, record, pubg_train, fitted):
    x, w, y, _, result = tutorial_network(ourdl)
    tape = ourdl.compile(result)

    def from_zero():
        for node in w:
            node.value = 0.0

    history = benchmark.pedantic(tape.fit, args=(pubg_train, x + [y]), setup=from_zero,
                                 rounds=20, warmup_rounds=2)
    record("ourdl fit", rows=len(pubg_train))
    assert len(history) == 1 and np.isfinite(history[0].loss)
    assert bits(node.value for node in w) == bits(fitted)


@pytest.mark.parametrize("name, settings", [
    ("ourdl fit, no loss", dict(track_loss=False)),
    ("ourdl fit shuffled", dict(shuffle=True, seed=0)),
    ("ourdl fit shuffled, 5 epochs", dict(shuffle=True, seed=0, epochs=5)),
    ("ourdl fit batch 64", dict(batch_size=64)),
])
@pytest.mark.benchmark(group="epoch")
def test_ourdl_fit_settings(benchmark, record, pubg_train, name, settings):
    """The same epoch's arithmetic, without the loss history, the rows visited in a new
    order, or stepped on every 64. Over several epochs, each epoch's order after the first is
    drawn while the one before trains: the time recorded is per epoch."""
    x, w, y, _, result = tutorial_network(ourdl)
    tape = ourdl.compile(result)

    def from_zero():
        for node in w:
            node.value = 0.0

    benchmark.pedantic(tape.fit, args=(pubg_train, x + [y]), kwargs=settings, setup=from_zero,
                       rounds=20, warmup_rounds=2)
    epochs = settings.get("epochs", 1)
    record(name, 1.0 / epochs, "per epoch" if epochs > 1 else None)
    expected, rng = None, np.random.default_rng(settings.get("seed"))
    for _ in range(epochs):
        rows = pubg_train
        if settings.get("shuffle"):  # a shuffled fit visits the rows in numpy's permutations
            rows = pubg_train[rng.permutation(len(pubg_train))]
        expected = plain_python_epoch(rows.tolist(), settings.get("batch_size", 1), expected)
    assert bits(node.value for node in w) == bits(expected)


@pytest.mark.benchmark(group="epoch")
def test_numpy_permutation(benchmark, record, pubg_train):
    """What a shuffled epoch asks of numpy before it starts: a new order of the rows."""
    rng = np.random.default_rng(0)
    order = benchmark.pedantic(rng.permutation, args=(len(pubg_train),), rounds=20,
                               warmup_rounds=2)
    record("numpy permutation")
    assert np.array_equal(np.sort(order), np.arange(len(pubg_train)))


@pytest.mark.benchmark(group="epoch")
def test_tutorial_loop_on_reference_nodes(benchmark, record, pubg_train, fitted):
    n_rows = int(os.environ.get("OURDL_BENCH_REFERENCE_ROWS", len(pubg_train)))
    n_rows = max(1, min(n_rows, len(pubg_train)))
    subset = pubg_train[:n_rows]
    x, w, y, _, result = tutorial_network(ref)
    benchmark.pedantic(tutorial_loop, args=(subset, x, w, y, result), rounds=1, iterations=1)
    scale = len(pubg_train) / n_rows
    record("reference loop", scale,
           None if n_rows == len(pubg_train) else f"{n_rows:,} rows, scaled x{scale:.1f}",
           rows=n_rows, of=len(pubg_train))
    # Bit for bit: the reference ends with the plain-Python weights on the rows it ran.
    expected = fitted if n_rows == len(pubg_train) else plain_python_epoch(subset.tolist())
    assert bits(node.value for node in w) == bits(expected)


@pytest.mark.benchmark(group="epoch")
def test_tutorial_loop_on_compiled_nodes(benchmark, record, pubg_train, fitted):
    x, w, y, _, result = tutorial_network(ourdl)

    def from_zero():
        for node in w:
            node.value = 0.0

    benchmark.pedantic(tutorial_loop, args=(pubg_train, x, w, y, result), setup=from_zero, rounds=3)
    record("compiled loop")
    assert bits(node.value for node in w) == bits(fitted)


@pytest.mark.benchmark(group="epoch")
def test_sklearn_sgd_regressor(benchmark, record, pubg_train, fitted):
    linear_model = pytest.importorskip(
        "sklearn.linear_model", reason="scikit-learn is not installed: no peer to compare with "
        "(pip install scikit-learn, or ourdl[peers])")
    from sklearn.exceptions import ConvergenceWarning

    X = np.ascontiguousarray(pubg_train[:, :13])
    target = np.ascontiguousarray(pubg_train[:, 13])

    def one_epoch():
        model = linear_model.SGDRegressor(
            loss="squared_error", penalty=None, fit_intercept=False, learning_rate="constant",
            eta0=0.02, max_iter=1, tol=None, shuffle=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter=1 is the point
            return model.fit(X, target)

    model = benchmark.pedantic(one_epoch, rounds=20, warmup_rounds=2)
    record("sklearn")
    # The tutorial's gradient 2(p - y)x with lr 0.01 is scikit-learn's (p - y)x with eta0 0.02.
    np.testing.assert_allclose(model.coef_, fitted, rtol=0, atol=1e-12)


def bare_loop_module():
    pytest.importorskip("numba", reason="numba is not installed: no bare loop to compare with "
                        "(pip install numba, or ourdl[peers])")
    import bare_loops
    return bare_loops


def bench_bare_loop(benchmark, pubg_train, fitted, loop):
    w = np.zeros(13)

    def from_zero():
        w[:] = 0.0
        return (pubg_train, w), {}

    loop(pubg_train[:10], np.zeros(13))  # compile outside the timing
    benchmark.pedantic(loop, setup=from_zero, rounds=20, warmup_rounds=2)
    # The same operations in the same order: ourdl's fit ends with these weights, bit for bit.
    assert bits(w) == bits(fitted)


@pytest.mark.benchmark(group="epoch")
def test_bare_loop(benchmark, record, pubg_train, fitted):
    """The floor: weights in an array, the tutorial's operations in its order, nothing else."""
    bench_bare_loop(benchmark, pubg_train, fitted, bare_loop_module().bare_epoch)
    record("bare loop", note="numba, no loss history")


@pytest.mark.benchmark(group="epoch")
def test_bare_loop_in_another_order(benchmark, record, pubg_train):
    """The floor of visiting the rows in another order: the bare loop over numpy's
    permutation, given (the order is not drawn in the timing), the next rows asked of memory
    early as ourdl's loop does."""
    loops = bare_loop_module()
    order = np.random.default_rng(0).permutation(len(pubg_train))
    w = np.zeros(13)

    def from_zero():
        w[:] = 0.0
        return (pubg_train, w, order), {}

    loops.bare_epoch_in_order(pubg_train[:10], np.zeros(13), order[:0])  # compile
    benchmark.pedantic(loops.bare_epoch_in_order, setup=from_zero, rounds=20, warmup_rounds=2)
    record("bare loop shuffled", note="numba, rows in a given permutation")
    assert bits(w) == bits(plain_python_epoch(pubg_train[order].tolist()))


@pytest.mark.benchmark(group="epoch")
def test_bare_loop_in_registers(benchmark, record, pubg_train, fitted):
    """The same, the 13 weights spelled as 13 locals (to see whether registers change it)."""
    bench_bare_loop(benchmark, pubg_train, fitted, bare_loop_module().bare_epoch_in_registers)
    record("bare loop, locals", note="numba, weights as 13 local scalars")


@pytest.fixture(scope="module")
def predict_rows(pubg_train):
    return np.ascontiguousarray(pubg_train[:PREDICT_ROWS, :13])


def assert_linear_predict_is_right(got, X, w, every=997):
    """Every 997th row against the tutorial's sum in plain Python floats."""
    assert got.shape == (len(X),)
    for r in range(0, len(X), every):
        expected = sum(x * w_k for x, w_k in zip(X[r].tolist(), w))
        np.testing.assert_allclose(got[r], expected, rtol=0, atol=1e-12, err_msg=f"row {r}")


@pytest.mark.benchmark(group="predict")
def test_ourdl_predict(benchmark, record, predict_rows, fitted):
    x, w, y, a, _ = tutorial_network(ourdl)
    for node, value in zip(w, fitted):
        node.value = value
    predictor = ourdl.compile(a[-1])  # the prediction node: no target column needed
    got = benchmark(predictor.predict, predict_rows, x)
    record("ourdl predict", rows=len(predict_rows))
    np.testing.assert_allclose(got, predict_rows @ np.array(fitted), rtol=0, atol=1e-12)


@pytest.mark.benchmark(group="predict")
def test_numpy_predict(benchmark, record, predict_rows, fitted):
    w = np.array(fitted)
    got = benchmark(np.matmul, predict_rows, w)
    record("numpy predict")
    assert_linear_predict_is_right(got, predict_rows, fitted)


@pytest.mark.benchmark(group="predict")
def test_numpy_predict_one_blas_thread(benchmark, record, predict_rows, fitted):
    """The same on one core, as ourdl's predict runs: numpy's BLAS uses every core."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    w = np.array(fitted)
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        got = benchmark(np.matmul, predict_rows, w)
    record("numpy 1 thread")
    assert_linear_predict_is_right(got, predict_rows, fitted)


def one_sample_network(M, pubg_train):
    x, w, y, _, result = tutorial_network(M)
    sample = pubg_train[0].tolist()
    for i in range(13):
        x[i].value = sample[i]
    y.value = sample[-1]
    return result, w


def forward_backward(result):
    result.forward()
    result.backward()


def bench_one_sample(benchmark, M, pubg_train):
    """Time forward + backward (which updates the weights) on the first row, over and over;
    then, from zero, one more step must give the plain-Python loop's weights."""
    result, w = one_sample_network(M, pubg_train)
    benchmark(forward_backward, result)
    for node in w:
        node.value = 0.0
    forward_backward(result)
    assert bits(node.value for node in w) == bits(plain_python_epoch([pubg_train[0].tolist()]))


@pytest.mark.benchmark(group="one sample")
def test_one_sample_compiled_nodes(benchmark, record, pubg_train):
    bench_one_sample(benchmark, ourdl, pubg_train)
    record("compiled sample")


@pytest.mark.benchmark(group="one sample")
def test_one_sample_reference_nodes(benchmark, record, pubg_train):
    bench_one_sample(benchmark, ref, pubg_train)
    record("reference sample")
