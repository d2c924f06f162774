"""Many models trained in parallel go through joblib, so the same code runs on local
processes or on a Dask cluster, and gives the same numbers, bit for bit, as one process."""
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

import ourdl

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import make_regression  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GRID = {"hidden": [(), (8,)], "lr": [0.003, 0.01], "epochs": [1, 2]}


def example(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def data():
    X, y = make_regression(n_samples=400, n_features=5, noise=5.0, random_state=0)
    return X / np.abs(X).max(axis=0), y / np.abs(y).max()


def r2_and_process(estimator, X, y):
    """The usual score, and the process the fit ran in (as a second 'score')."""
    return {"r2": estimator.score(X, y), "pid": os.getpid()}


def search(**kwargs):
    X, y = data()
    found = GridSearchCV(ourdl.Regressor(tol=None, seed=3), GRID, cv=KFold(3),
                         scoring=r2_and_process, refit="r2", **kwargs).fit(X, y)
    return found


def assert_same_search(found, expected):
    for key in ("mean_test_r2", "split0_test_r2", "split2_test_r2"):
        assert found.cv_results_[key].tobytes() == expected.cv_results_[key].tobytes()
    assert found.best_params_ == expected.best_params_
    assert found.best_estimator_.predict(data()[0]).tobytes() == \
        expected.best_estimator_.predict(data()[0]).tobytes()


def test_a_grid_search_on_local_processes_equals_the_sequential_one():
    sequential, parallel = search(), search(n_jobs=2)
    assert_same_search(parallel, sequential)
    assert set(parallel.cv_results_["split0_test_pid"]) != {os.getpid()}  # other processes


def test_the_sweep_example_gives_the_same_table_on_one_process_and_on_two():
    sweep = example("sweep")
    prepared = sweep.prepare(4000, seed=1)
    settings = sweep.grid()[::3]
    one, two = sweep.sweep(settings, prepared, jobs=1), sweep.sweep(settings, prepared, jobs=2)
    assert [(s, mae) for s, mae, _ in one] == [(s, mae) for s, mae, _ in two]
    assert sweep.table(one).count("\n") == len(settings) + 1


@pytest.fixture(scope="module")
def cluster():
    """A Dask cluster of 2 worker processes on this machine."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=40) as local:
        with distributed.Client(local) as client:
            yield local, client


def test_a_grid_search_on_a_dask_cluster_equals_the_sequential_one_and_runs_in_its_workers(
        cluster):
    import joblib

    local, client = cluster
    with joblib.parallel_config(backend="dask"):
        on_dask = search()
    assert_same_search(on_dask, search())
    workers = set(client.run(os.getpid).values())
    ran_in = set(on_dask.cv_results_["split0_test_pid"]) | set(
        on_dask.cv_results_["split1_test_pid"])
    assert ran_in and ran_in <= workers


def test_a_classifier_search_on_a_dask_cluster_equals_the_sequential_one(cluster):
    import joblib
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    grid = {"hidden": [(), (4,)], "lr": [0.01, 0.03]}

    def search():
        return GridSearchCV(ourdl.Classifier(epochs=5, tol=None, seed=1), grid,
                            cv=KFold(3, shuffle=True, random_state=0)).fit(X / 8.0, y)
    with joblib.parallel_config(backend="dask"):
        on_dask = search()
    sequential = search()
    assert on_dask.cv_results_["mean_test_score"].tobytes() == \
        sequential.cv_results_["mean_test_score"].tobytes()
    assert on_dask.best_estimator_.predict_proba(X / 8.0).tobytes() == \
        sequential.best_estimator_.predict_proba(X / 8.0).tobytes()


def test_the_sweep_example_runs_on_a_dask_scheduler_with_the_same_table(cluster):
    local, _ = cluster
    sweep = example("sweep")
    prepared = sweep.prepare(4000, seed=1)
    settings = sweep.grid()[::4]
    on_dask = sweep.sweep(settings, prepared, scheduler=local.scheduler_address)
    assert [(s, mae) for s, mae, _ in on_dask] == \
        [(s, mae) for s, mae, _ in sweep.sweep(settings, prepared, jobs=1)]
