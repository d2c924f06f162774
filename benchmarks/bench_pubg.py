"""Benchmarks of the PUBG data: synthesizing the default 1,500,000 + 500,000 rows (target: a few
seconds on the project's 2-core machine), reading them back from the cache, and the whole
`ourdl pubg` command with cached data as a user starts it, beside `python -c "import pandas"`
(target: about a second; the ratio, which the end-of-run table and benchmarks/report.py
compute from the two medians, says how much is more than importing pandas).

Run with `pytest benchmarks/bench_pubg.py`; it is outside the default test run.
"""
import subprocess
import sys

import pandas as pd
import pytest

from ourdl.datasets import pubg


def synthesize_default_train_and_test():
    return pubg.synthesize("train"), pubg.synthesize("test")


def test_synthesize_default_train_and_test(benchmark, record):
    train, test = benchmark.pedantic(synthesize_default_train_and_test, rounds=3, iterations=1)
    record("pubg synthesize")
    assert train.shape == (1_500_000, 16) and test.shape == (500_000, 15)
    assert len(train.dropna()) == 635_716  # as many complete rows as the real file has


@pytest.fixture
def filled_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OURDL_CACHE_DIR", str(tmp_path))
    pubg.cached("train"), pubg.cached("test")


def test_read_default_train_and_test_from_cache(benchmark, record, filled_cache):
    train, test = benchmark.pedantic(lambda: (pubg.cached("train"), pubg.cached("test")),
                                     rounds=3, iterations=1)
    record("pubg cached read")
    for got, expected in zip((train, test), synthesize_default_train_and_test()):
        pd.testing.assert_frame_equal(got, expected)  # the cache gives back what was made


def run_the_main_job(folder):
    from ourdl import cli

    assert cli.main(["pubg", "--quiet", "--out", str(folder / "submission.csv")]) == 0
    return folder / "submission.csv"


def assert_a_whole_submission(path):
    submission = pd.read_csv(path)
    assert len(submission) == 500_000 and submission.notna().all().all()


def test_whole_ourdl_pubg_run_first_time(benchmark, record, tmp_path, monkeypatch):
    """`ourdl pubg` as a newcomer runs it: nothing cached yet (target: well under a minute)."""
    def fresh_cache():
        folder = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        monkeypatch.setenv("OURDL_CACHE_DIR", str(folder / "cache"))
        return (folder,), {}
    submission = benchmark.pedantic(run_the_main_job, setup=fresh_cache, rounds=3, iterations=1)
    record("pubg first run")
    assert_a_whole_submission(submission)


def test_whole_ourdl_pubg_run_with_cached_data(benchmark, record, filled_cache, tmp_path):
    submission = benchmark.pedantic(run_the_main_job, args=(tmp_path,), rounds=3, iterations=1)
    record("pubg cached run")
    assert_a_whole_submission(submission)


def run_in_a_fresh_interpreter(argv, folder):
    subprocess.run([sys.executable, *argv], cwd=folder, check=True, stdout=subprocess.DEVNULL)


@pytest.mark.parametrize("name, argv", [
    ("python -c 'import pandas'", ["-c", "import pandas"]),
    ("ourdl pubg, cached data", ["-m", "ourdl", "pubg", "--quiet"]),
])
def test_whole_command_beside_importing_pandas(benchmark, record, filled_cache, tmp_path, name,
                                               argv):
    benchmark.pedantic(run_in_a_fresh_interpreter, args=(argv, tmp_path), rounds=7,
                       iterations=1, warmup_rounds=1)
    record(name)
    if "pubg" in argv:
        assert_a_whole_submission(tmp_path / "submission.csv")
