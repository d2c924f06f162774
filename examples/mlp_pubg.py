"""A deeper model on the PUBG data: nn.MLP on a tape, and ourdl.Regressor, against the
tutorial's linear model.

All three train on the same rows (the tutorial's pipeline: complete rows, each column divided
by its training maximum) and are scored on whole held-out matches by their mean absolute
error in placements, as `ourdl pubg` scores its model.

Usage: python mlp_pubg.py [--rows N] [--epochs E] [--seed S]
(N synthetic training rows, 300,000 by default; the test suite runs it on a few thousand)
"""
import argparse
import time

import numpy as np

import ourdl
from ourdl import nn, Node, MSENode
from ourdl.datasets import pubg


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000, help="synthetic training rows")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    frame = pubg.synthesize("train", n_rows=args.rows, seed=args.seed)
    training, held_out = pubg.split_matches(frame, 0.1, seed=args.seed)
    data, maxima = pubg.normalize_train(pubg.to_array(pubg.complete_rows(training)))
    means = data.mean(axis=0)
    features, target = data[:, :-1], data[:, -1]
    held_features = pubg.normalize_test(pubg.to_array(held_out)[:, :len(pubg.FEATURES)],
                                        maxima[:-1], means[:-1])
    truth = held_out[pubg.TARGET].to_numpy()
    print(f"training on {len(data):,} complete rows, scoring on {len(truth):,} held-out rows")

    def mae(predictions):
        return abs(pubg.to_placement(predictions, maxima[-1]) - truth).mean()

    def report(name, predictions, seconds):
        print(f"{name:<34} held-out MAE {mae(predictions):6.3f}  ({seconds:.2f} s)")

    baseline = training[pubg.TARGET].mean()
    print(f"{'always the training mean':<34} held-out MAE {abs(baseline - truth).mean():6.3f}")

    # 1. The tutorial's model: 13 weights from 0, plain SGD at lr 0.01, one row at a time.
    started = time.perf_counter()
    linear = ourdl.Regressor.tutorial(epochs=args.epochs).fit(features, target)
    report("linear (the tutorial's model)", linear.predict(held_features),
           time.perf_counter() - started)

    # 2. An MLP wired from nodes by ourdl.nn and trained on its tape, as in the README.
    started = time.perf_counter()
    x, y = [Node(name=f"x{i}") for i in range(len(pubg.FEATURES))], Node(name="y")
    net = nn.MLP([len(pubg.FEATURES), 16, 16, 1], activation="tanh", seed=args.seed)
    output = net(x)[0]
    tape = ourdl.compile(MSENode(Papa=output, Mama=y))
    tape.fit(data, x + [y], epochs=args.epochs, shuffle=True, seed=args.seed,
             optimizer=ourdl.optim.Adam(lr=0.001))
    report("nn.MLP 13-16-16-1, Tape.fit, Adam", tape.predict(held_features, x, output=output),
           time.perf_counter() - started)

    # 3. The same kind of network through the estimator.
    started = time.perf_counter()
    regressor = ourdl.Regressor(hidden=(16, 16), optimizer="adam", lr=0.001,
                                epochs=args.epochs, tol=None, shuffle=True, fit_intercept=True,
                                seed=args.seed).fit(features, target)
    report("ourdl.Regressor(hidden=(16, 16))", regressor.predict(held_features),
           time.perf_counter() - started)


if __name__ == "__main__":
    main()
