"""Two moons: a small MLP learns a curved boundary between two classes, made of nodes.

scikit-learn's make_moons (noisy, 1,000 points, a quarter held out); a 2-16-16-1 tanh MLP
with one logit and LogLossNode (binary cross-entropy on the logit), trained by Tape.fit one
sample at a time. With --plot, the decision boundary is drawn over the points.

Usage: python moons.py [--epochs E] [--plot FILE.png]
"""
import argparse
import time

import numpy as np

import ourdl
from ourdl import Node, nn


def main():
    from sklearn.datasets import make_moons
    from sklearn.model_selection import train_test_split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--plot", metavar="FILE", help="draw the decision boundary into FILE")
    args = parser.parse_args()

    X, y = make_moons(n_samples=1000, noise=0.2, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    x, target = [Node(name="x0"), Node(name="x1")], Node(name="y")
    logit = nn.MLP([2, 16, 16, 1], activation="tanh", seed=0)(x)[0]
    tape = ourdl.compile(ourdl.LogLossNode(logit, target))
    start = time.perf_counter()
    history = tape.fit(np.column_stack([X_train, y_train]), x + [target], epochs=args.epochs,
                       shuffle=True, seed=0, optimizer=ourdl.optim.SGD(lr=0.05))
    seconds = time.perf_counter() - start
    accuracy = ((tape.predict(X_test, x, output=logit) > 0) == y_test).mean()
    print(f"{len(X_train)} training points, {args.epochs} epochs in {seconds:.2f} s, loss "
          f"{history[0].loss:.3f} -> {history[-1].loss:.3f}, held-out accuracy {accuracy:.3f}")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        a, b = np.meshgrid(np.linspace(-2, 3, 200), np.linspace(-1.5, 2, 150))
        grid = np.column_stack([a.ravel(), b.ravel()])
        logits = tape.predict(grid, x, output=logit).reshape(a.shape)
        figure, ax = plt.subplots(figsize=(6, 4.2))
        ax.contourf(a, b, logits > 0, alpha=0.25, cmap="coolwarm")
        ax.contour(a, b, logits, levels=[0.0], colors="k", linewidths=1)
        ax.scatter(X_test[:, 0], X_test[:, 1], c=y_test, cmap="coolwarm", s=12, edgecolors="k",
                   linewidths=0.3)
        ax.set_title(f"two moons: the MLP's boundary, held-out accuracy {accuracy:.3f}")
        figure.savefig(args.plot, dpi=100)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
