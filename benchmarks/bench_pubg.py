"""Benchmarks of the PUBG data: synthesizing the default 1,500,000 + 500,000 rows (target: a few
seconds on the project's 2-core machine), and reading them back from the cache.

Run with `pytest benchmarks/bench_pubg.py`; it is outside the default test run.
"""
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
