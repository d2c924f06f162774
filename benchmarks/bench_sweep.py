"""A sweep of PUBG models (examples/sweep.py) on one local worker process and on two: the
speed-up the README's scale section quotes. The two runs must give the same table.

Run with `pytest benchmarks/bench_sweep.py`; it is outside the default test run.
"""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROWS = 200_000  # synthetic training rows: each fit takes long enough to be worth a process
SPEC = importlib.util.spec_from_file_location("sweep", ROOT / "examples" / "sweep.py")
sweep = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(sweep)


@pytest.fixture(scope="module")
def prepared():
    return sweep.prepare(ROWS, seed=0)


TABLES = {}


@pytest.mark.parametrize("jobs", [1, 2])
def test_sweep_on_local_processes(benchmark, record, prepared, jobs):
    settings = sweep.grid()[::2]
    results = benchmark.pedantic(sweep.sweep, args=(settings, prepared, 0, jobs), rounds=3,
                                 iterations=1)
    TABLES[jobs] = [(setting, mae) for setting, mae, _ in results]
    if len(TABLES) == 2:
        assert TABLES[1] == TABLES[2]  # the same numbers, however many processes
    record(f"sweep, {jobs} process(es)",
           note=f"{len(settings)} Regressor fits on {ROWS:,} synthetic rows")
