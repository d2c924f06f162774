"""Recover k, g and h of y = tan(g*sin(k*x*cos(h*ln(x)*x**2))) from noisy samples.

The tutorial's example function, as one expression of ourdl nodes, fitted to data with
Tape.fit: the input x and the target y are fed from an array, k, g and h are trainable.
On x in [1.0, 1.6] the function is smooth and the start (0.5, 0.5, 0.2) leads to the true
values; other starts can end in another local minimum (try --start 0.3,0.6,0.1).

Usage: python curve_fit.py [--samples N] [--epochs E] [--lr LR] [--start K,G,H] [--plot PATH]
(--plot needs matplotlib: pip install ".[plot]")
"""
import argparse

import numpy as np

import ourdl
from ourdl import Node, MSENode, sin, cos, tan, ln

TRUE = {"k": 0.8, "g": 0.9, "h": 0.5}


def curve(x, k, g, h):
    return np.tan(g * np.sin(k * x * np.cos(h * np.log(x) * x ** 2)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--noise", type=float, default=0.01, help="std of the noise on y")
    parser.add_argument("--start", default="0.5,0.5,0.2", help="starting k,g,h")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", metavar="PATH", help="draw the samples and the fit (.png, ...)")
    args = parser.parse_args()
    start = [float(v) for v in args.start.split(",")]
    if len(start) != 3:
        parser.error(f"--start takes three numbers k,g,h, not {args.start!r}")

    rng = np.random.default_rng(args.seed)
    xs = rng.uniform(1.0, 1.6, args.samples)
    ys = curve(xs, **TRUE) + rng.normal(0.0, args.noise, args.samples)

    x, target = Node(name="x"), Node(name="y")
    k, g, h = (Node(Value=v, Flag=1, lr=args.lr, name=n) for v, n in zip(start, "kgh"))
    y = tan(g * sin(k * x * cos(h * ln(x) * x ** 2)))
    tape = ourdl.compile(MSENode(Papa=y, Mama=target))
    history = tape.fit(np.column_stack([xs, ys]), inputs=[x, target], epochs=args.epochs,
                       shuffle=True, seed=args.seed + 1)

    print(f"loss after {args.epochs} epochs: {history[-1].loss:.3g} "
          f"(the noise alone gives {args.noise ** 2:.3g})")
    for node in (k, g, h):
        print(f"{node.name} = {node.value:.4f} (true {TRUE[node.name]})")

    if args.plot:
        try:
            import matplotlib
        except ImportError:
            parser.exit(1, "--plot needs matplotlib: pip install matplotlib\n")
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        grid = np.linspace(1.0, 1.6, 300)
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(xs, ys, ".", ms=2, alpha=0.4, label="noisy samples")
        ax.plot(grid, curve(grid, **TRUE), "k--", label="true curve")
        ax.plot(grid, tape.predict(grid[:, None], inputs=[x], output=y), "r",
                label=f"fit: k={k.value:.3f} g={g.value:.3f} h={h.value:.3f}")
        ax.set_xlabel("x")
        ax.set_ylabel("tan(g sin(k x cos(h ln(x) x²)))")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot)
        print(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()
