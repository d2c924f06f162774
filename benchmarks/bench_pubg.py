"""Benchmarks of the PUBG data: synthesizing the default 1,500,000 + 500,000 rows (target: a few
seconds on the project's 2-core machine), reading them back from the cache, and the whole
`ourdl pubg` command with cached data as a user starts it, beside `python -c "import pandas"`
(target: about a second; the ratio says how much is more than importing pandas).

Run with `pytest benchmarks/bench_pubg.py`; it is outside the default test run.
"""
import subprocess
import sys

import pytest

from ourdl.datasets import pubg


def synthesize_default_train_and_test():
    return pubg.synthesize("train"), pubg.synthesize("test")


def test_synthesize_default_train_and_test(benchmark):
    train, test = benchmark.pedantic(synthesize_default_train_and_test, rounds=3, iterations=1)
    assert train.shape == (1_500_000, 16) and test.shape == (500_000, 15)


@pytest.fixture
def filled_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OURDL_CACHE_DIR", str(tmp_path))
    pubg.cached("train"), pubg.cached("test")


def test_read_default_train_and_test_from_cache(benchmark, filled_cache):
    train, test = benchmark.pedantic(lambda: (pubg.cached("train"), pubg.cached("test")),
                                     rounds=3, iterations=1)
    assert train.shape == (1_500_000, 16) and test.shape == (500_000, 15)


def run_the_main_job(folder):
    from ourdl import cli

    assert cli.main(["pubg", "--quiet", "--out", str(folder / "submission.csv")]) == 0


def test_whole_ourdl_pubg_run_first_time(benchmark, tmp_path, monkeypatch):
    """`ourdl pubg` as a newcomer runs it: nothing cached yet (target: well under a minute)."""
    def fresh_cache():
        folder = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        monkeypatch.setenv("OURDL_CACHE_DIR", str(folder / "cache"))
        return (folder,), {}
    benchmark.pedantic(run_the_main_job, setup=fresh_cache, rounds=3, iterations=1)


def test_whole_ourdl_pubg_run_with_cached_data(benchmark, filled_cache, tmp_path):
    benchmark.pedantic(run_the_main_job, args=(tmp_path,), rounds=3, iterations=1)


COMMAND_MEDIANS = {}  # name -> median seconds of a fresh interpreter, for the ratio below


def run_in_a_fresh_interpreter(argv, folder):
    subprocess.run([sys.executable, *argv], cwd=folder, check=True, stdout=subprocess.DEVNULL)


@pytest.mark.parametrize("name, argv", [
    ("python -c 'import pandas'", ["-c", "import pandas"]),
    ("ourdl pubg, cached data", ["-m", "ourdl", "pubg", "--quiet"]),
])
def test_whole_command_beside_importing_pandas(benchmark, filled_cache, tmp_path, name, argv):
    benchmark.pedantic(run_in_a_fresh_interpreter, args=(argv, tmp_path), rounds=7,
                       iterations=1, warmup_rounds=1)
    COMMAND_MEDIANS[name] = benchmark.stats.stats.median


def test_print_the_ratio_of_the_command_to_importing_pandas():
    if len(COMMAND_MEDIANS) < 2:
        pytest.skip("run with the two benchmarks above")
    (base_name, base), (name, seconds) = COMMAND_MEDIANS.items()
    print(f"\n{name}: median {seconds:.3f} s; {base_name}: median {base:.3f} s; "
          f"ratio {seconds / base:.2f}")
