"""A sweep for contestants: many PUBG models trained in parallel, one table of held-out MAE.

Every setting of a grid (model, optimizer and learning rate, epochs) trains an
ourdl.Regressor on the same training matches and is scored on the same held-out matches, in
placements, as `ourdl pubg` scores its model. The fits go through joblib: local worker
processes by default (--jobs), or the workers of a Dask cluster with --scheduler ADDRESS
(pip install "dask[distributed]"; start one with `dask scheduler` and `dask worker ADDRESS`).
Each fit is seeded, so the table is the same whichever way it ran.

Usage: python sweep.py [--rows N] [--jobs J | --scheduler tcp://HOST:8786] [--seed S]
"""
import argparse
import itertools
import time

import joblib
import numpy as np

import ourdl
from ourdl.datasets import pubg

MODELS = {"linear": (), "mlp 16": (16,), "mlp 16-16": (16, 16)}
OPTIMIZERS = {"sgd": (0.003, 0.01), "adam": (0.001, 0.003)}
EPOCHS = (1, 3)


def grid():
    """Every setting to try: (model, optimizer, lr, epochs)."""
    return [(model, optimizer, lr, epochs)
            for model, (optimizer, rates), epochs in itertools.product(MODELS, OPTIMIZERS.items(), EPOCHS)
            for lr in rates]


def prepare(rows, seed):
    """The tutorial's pipeline on synthetic matches: (training features, training target,
    held-out features, held-out placements, the training maximum of the target)."""
    frame = pubg.synthesize("train", n_rows=rows, seed=seed)
    training, held_out = pubg.split_matches(frame, 0.1, seed=seed)
    data, maxima = pubg.normalize_train(pubg.to_array(pubg.complete_rows(training)))
    means = data.mean(axis=0)
    held_features = pubg.normalize_test(pubg.to_array(held_out)[:, :len(pubg.FEATURES)],
                                        maxima[:-1], means[:-1])
    return data[:, :-1], data[:, -1], held_features, held_out[pubg.TARGET].to_numpy(), maxima[-1]


def score(setting, data, seed):
    """Train one setting and score it: (setting, held-out MAE in placements, seconds)."""
    model, optimizer, lr, epochs = setting
    features, target, held_features, truth, top = data
    started = time.perf_counter()
    regressor = ourdl.Regressor(hidden=MODELS[model], optimizer=optimizer, lr=lr, epochs=epochs,
                                tol=None, seed=seed).fit(features, target)  # epochs, no stopping
    placements = pubg.to_placement(regressor.predict(held_features), top)
    return setting, float(np.abs(placements - truth).mean()), time.perf_counter() - started


def sweep(settings, data, seed=0, jobs=1, scheduler=None):
    """Score every setting through joblib: ``jobs`` local processes, or the Dask cluster at
    ``scheduler``. The results come back in the order of ``settings``."""
    tasks = (joblib.delayed(score)(setting, data, seed) for setting in settings)
    if scheduler is None:
        return joblib.Parallel(n_jobs=jobs)(tasks)
    from distributed import Client

    with Client(scheduler), joblib.parallel_config(backend="dask"):
        return joblib.Parallel()(tasks)


def table(results):
    """The results as Markdown, best held-out MAE first."""
    lines = ["| model | optimizer | lr | epochs | held-out MAE | seconds |",
             "|---|---|---|---|---|---|"]
    for (model, optimizer, lr, epochs), mae, seconds in sorted(results, key=lambda r: r[1]):
        lines.append(f"| {model} | {optimizer} | {lr:g} | {epochs} | {mae:.3f} | {seconds:.2f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="synthetic training rows")
    parser.add_argument("--jobs", type=int, default=-1,
                        help="local worker processes (-1: one per core)")
    parser.add_argument("--scheduler", help="address of a Dask scheduler to run the fits on")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = prepare(args.rows, args.seed)
    settings = grid()
    where = f"the Dask cluster at {args.scheduler}" if args.scheduler else \
        f"{joblib.effective_n_jobs(args.jobs)} local process(es)"
    print(f"{len(settings)} settings on {len(data[0]):,} training rows, "
          f"{len(data[3]):,} held-out rows, through {where}")
    started = time.perf_counter()
    results = sweep(settings, data, args.seed, args.jobs, args.scheduler)
    print(table(results))
    print(f"the sweep took {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
