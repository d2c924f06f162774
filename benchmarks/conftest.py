"""Benchmark plumbing: collect bench_*.py, load the PUBG training array once, print ratios.

`pytest benchmarks` collects every bench_*.py here (the default `pytest` run only looks in
tests/). The benchmarks record their medians through the `record` fixture, which also writes
the name, scale and rows measured into the benchmark's extra_info: `--benchmark-json=FILE`
keeps them, and benchmarks/report.py makes the README's tables from that file. At the end of
the session a table puts side by side the ratios that the targets are stated in.
"""
import os
from pathlib import Path

import numpy as np
import pytest

N_ROWS, N_COLUMNS = 635_716, 14  # the tutorial's training array: 13 features + the target
TORCH = {size: (f"{size} torch, 1 thread", f"{size} torch, default threads")
         for size in ("mlp16", "mlp64")}  # PyTorch eager is timed both ways; the faster counts

RESULTS = {}  # name -> median seconds (already scaled to the whole array where noted)
NOTES = {}    # name -> how it was measured, when not plainly
SOURCE = []   # which data the run used


def pytest_collect_file(file_path, parent):
    """bench_*.py are test modules here; a file named on the command line is collected anyway."""
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def tutorial_pipeline(frame):
    """The tutorial's preprocessing: drop incomplete rows, columns from the third on, / max."""
    data = frame.dropna(axis=0, how="any").iloc[:, 2:].values.astype(np.float64)
    return data / data.max(axis=0)


def load_training_array():
    """(array, description): the real file if present, else synthetic PUBG, else uniform."""
    import pandas as pd

    path = Path(os.environ.get("OURDL_PUBG_TRAIN", "pubg_train.csv"))
    if path.exists():
        return tutorial_pipeline(pd.read_csv(path)), f"the real PUBG training file ({path})"
    try:
        from ourdl.datasets import pubg
        frame = pubg.synthesize("train")
    except (ImportError, AttributeError):
        pass
    else:
        return tutorial_pipeline(frame), "synthetic PUBG data (ourdl.datasets.pubg.synthesize)"
    rng = np.random.default_rng(0)
    return rng.random((N_ROWS, N_COLUMNS)), "uniform random data in [0, 1) (no PUBG data found)"


@pytest.fixture(scope="session")
def pubg_train():
    data, source = load_training_array()
    data = np.ascontiguousarray(data)
    SOURCE.append(f"{source}: {data.shape[0]:,} rows x {data.shape[1]} columns")
    print(f"\nbenchmark data: {SOURCE[-1]}")
    assert data.shape[1] == N_COLUMNS and np.isfinite(data).all()
    return data


@pytest.fixture
def record(benchmark, request):
    """record(name, scale=1.0, note=None, rows=None, of=None): keep this benchmark's median
    (times scale), and put the same into its extra_info for the JSON report; rows is how many
    rows were timed, of how many the whole array has (when a peer ran a slice)."""
    def keep(name, scale=1.0, note=None, rows=None, of=None):
        info = dict(name=name, scale=scale, note=note, rows=rows, of=of,
                    data=SOURCE[-1] if "pubg_train" in request.fixturenames else None)
        benchmark.extra_info.update({key: value for key, value in info.items()
                                     if value is not None})
        if benchmark.disabled or benchmark.stats is None:
            return
        RESULTS[name] = benchmark.stats.stats.median * scale
        if note:
            NOTES[name] = note
    return keep


@pytest.fixture
def torch_on_one_thread():
    """PyTorch, set to one thread for the test and set back after it (or the test skipped)."""
    torch = pytest.importorskip("torch", reason="PyTorch is optional: pip install torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(before)


def blas_threads():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown"
    pools = {f"{pool['internal_api']} {pool['num_threads']}" for pool in threadpool_info()
             if pool["user_api"] == "blas"}
    return ", ".join(sorted(pools)) or "unknown"


RATIOS = [
    # (label, numerator, denominator, target); a tuple of names means the fastest of them
    ("ourdl fit / scikit-learn SGDRegressor", "ourdl fit", "sklearn", "<= 0.4"),
    ("ourdl fit / bare loop (numba)", "ourdl fit", "bare loop", "<= 1.2"),
    ("ourdl fit without the loss history / bare loop", "ourdl fit, no loss", "bare loop",
     "<= 1.2"),
    ("ourdl fit / bare loop, weights as locals", "ourdl fit", "bare loop, locals", ""),
    ("ourdl fit: shuffled / plain epoch", "ourdl fit shuffled", "ourdl fit", "<= 1.5"),
    ("ourdl fit: shuffled, per epoch of 5 / plain epoch", "ourdl fit shuffled, 5 epochs",
     "ourdl fit", "<= 1.5"),
    ("numpy's permutation of the rows / plain epoch", "numpy permutation", "ourdl fit", ""),
    ("bare loop: rows in a given permutation / in order", "bare loop shuffled", "bare loop", ""),
    ("ourdl fit: batch_size=64 / plain epoch", "ourdl fit batch 64", "ourdl fit", "<= 1.2"),
    ("reference loop / ourdl fit", "reference loop", "ourdl fit", ">= 500"),
    ("reference loop / tutorial loop on compiled nodes", "reference loop", "compiled loop", ">= 6"),
    ("ourdl predict / numpy X @ w", "ourdl predict", "numpy predict", "<= 2"),
    ("ourdl predict / numpy X @ w on 1 BLAS thread", "ourdl predict", "numpy 1 thread", ""),
    ("one sample: reference / compiled nodes", "reference sample", "compiled sample", ""),
    ("MLP 13-16-16-1: ourdl / JAX, per sample", "mlp16 ourdl", "mlp16 jax", "<= 1"),
    ("MLP 13-16-16-1: ourdl / bare loop, same bits", "mlp16 ourdl", "mlp16 bare loop", ""),
    ("MLP 13-16-16-1: JAX / bare loop", "mlp16 jax", "mlp16 bare loop", ""),
    ("MLP 13-16-16-1: PyTorch eager (faster) / ourdl", TORCH["mlp16"], "mlp16 ourdl", ">= 200"),
    ("MLP 13-16-16-1: PyTorch 1 thread / ourdl", "mlp16 torch, 1 thread", "mlp16 ourdl", ""),
    ("MLP 13-16-16-1: PyTorch nn + optim / ourdl", "mlp16 torch, nn + optim", "mlp16 ourdl",
     ""),
    ("MLP 13-16-16-1: unfused / fused ourdl", "mlp16 ourdl unfused", "mlp16 ourdl", ""),
    ("MLP 13-64-64-1: ourdl / JAX, per sample", "mlp64 ourdl", "mlp64 jax", "reported"),
    ("MLP 13-64-64-1: ourdl / bare loop, same bits", "mlp64 ourdl", "mlp64 bare loop", ""),
    ("MLP 13-64-64-1: JAX / bare loop", "mlp64 jax", "mlp64 bare loop", ""),
    ("MLP 13-64-64-1: PyTorch eager (faster) / ourdl", TORCH["mlp64"], "mlp64 ourdl",
     "reported"),
    ("MLP 13-64-64-1: unfused / fused ourdl", "mlp64 ourdl unfused", "mlp64 ourdl", ""),
    ("MLP predict: ourdl / numpy (faster BLAS setting)", "mlp16 predict ourdl",
     ("mlp16 predict numpy", "mlp16 predict numpy 1t"), "<= 1"),
    ("MLP predict: ourdl / numpy, default BLAS threads", "mlp16 predict ourdl",
     "mlp16 predict numpy", ""),
    ("MLP predict: ourdl / its libm tanh calls alone", "mlp16 predict ourdl",
     "mlp16 libm tanh floor", ""),
] + [(f"general tape, {size} nodes: ourdl / bare C loop", f"tape {size} ourdl",
      f"tape {size} bare C", "<= 1.3") for size in ("1k", "10k", "100k", "1M")] + [
    (f"general tape, {size} nodes: PyTorch eager / ourdl", f"tape {size} torch eager",
     f"tape {size} ourdl", "reported") for size in ("1k", "10k")] + [
    ("Node() / a bare extension object", "Node()", "bare extension object", "<= 3"),
    ("AddNode(a, b) / a bare extension object", "AddNode(a, b)", "bare extension object",
     "<= 3"),
    ("tiny graph built and run: micrograd / ourdl", "tiny micrograd", "tiny ourdl", ">= 10"),
    ("tiny graph built and run: PyTorch eager / ourdl", "tiny torch eager", "tiny ourdl",
     ">= 50"),
    ("tiny graph built and run: micrograd / its floor (Value in Cython)", "tiny micrograd",
     "tiny bare", ""),
    ("tiny graph built and run: PyTorch eager / the floor", "tiny torch eager", "tiny bare",
     ""),
    ("tiny graph built and run: ourdl / the floor", "tiny ourdl", "tiny bare", ""),
    ("MLP built per sample: micrograd / ourdl", "mlp per sample micrograd",
     "mlp per sample ourdl", ">= 30"),
    ("ourdl pubg, cached data / python -c 'import pandas'", "ourdl pubg, cached data",
     "python -c 'import pandas'", ""),
]


def median_of(names):
    """RESULTS[names], or the fastest of several names that were measured (None if none)."""
    names = (names,) if isinstance(names, str) else names
    measured = [RESULTS[name] for name in names if name in RESULTS]
    return min(measured) if measured else None


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own tables
def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("ourdl fit/predict: medians and ratios (same run)")
    for line in SOURCE:
        write(f"data: {line}")
    write(f"numpy's BLAS (X @ w) threads: {blas_threads()}; ourdl fit uses one, predict one "
          f"per core over 65,536 rows or more")
    for name, seconds in RESULTS.items():
        note = f"  ({NOTES[name]})" if name in NOTES else ""
        shown = f"{seconds * 1e3:12.3f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:12.3f} us"
        write(f"  {name:<32} {shown}{note}")
    write("")
    write(f"  {'ratio':<50} {'measured':>10}   target")
    for label, top, bottom, target in RATIOS:
        top, bottom = median_of(top), median_of(bottom)
        if top is not None and bottom is not None:
            write(f"  {label:<50} {top / bottom:10.3f}   {target}")
