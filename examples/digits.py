"""Handwritten digits, the classic first classifiers: an MLP and a small CNN, made of nodes.

scikit-learn's bundled digits (8x8 images, 1,797 of them, no download): a quarter held out
(stratified, fixed seed); each model is trained by Tape.fit one sample at a time with
softmax cross-entropy (one data column per pixel and one per class), then scored on the
held-out images with a confusion matrix. With --plot, the misclassified images are drawn.

Usage: python digits.py [--epochs E] [--limit N] [--plot FILE.png]
(N: train on the first N training images only, for a quick run)
"""
import argparse
import time

import numpy as np

import ourdl
from ourdl import Node, nn


def load(limit, seed=0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X = digits.images / 16.0  # pixels in [0, 1]
    split = train_test_split(X, digits.target, test_size=0.25, stratify=digits.target,
                             random_state=seed)
    X_train, X_test, y_train, y_test = split
    return X_train[:limit], X_test, y_train[:limit], y_test


def mlp(pixels):
    return nn.MLP([64, 32, 10], activation="tanh", seed=0)(nn.flatten(pixels))


def cnn(pixels):
    features = nn.Conv2d(1, 8, 3, padding=1, activation="relu", seed=0)(pixels)
    return nn.Linear(8 * 4 * 4, 10, seed=1)(nn.flatten(nn.MaxPool2d(2)(features)))


def train_and_score(name, model, data, epochs):
    X_train, X_test, y_train, y_test = data
    pixels = [[[Node(name=f"p{r}{c}") for c in range(8)] for r in range(8)]]
    targets = [Node(name=f"t{k}") for k in range(10)]
    logits = model(pixels)
    tape = ourdl.compile(nn.cross_entropy(logits, targets))
    inputs = nn.flatten(pixels)
    rows = np.column_stack([X_train.reshape(len(X_train), 64), np.eye(10)[y_train]])
    start = time.perf_counter()
    history = tape.fit(rows, inputs + targets, epochs=epochs, shuffle=True, seed=0,
                       optimizer=ourdl.optim.SGD(lr=0.02))
    seconds = time.perf_counter() - start
    scores = np.column_stack([tape.predict(X_test.reshape(len(X_test), 64), inputs, output=z)
                              for z in logits])
    predicted = scores.argmax(axis=1)
    accuracy = (predicted == y_test).mean()
    print(f"{name}: {len(tape):,} nodes, {epochs} epochs of {len(rows):,} images in "
          f"{seconds:.1f} s ({seconds / (epochs * len(rows)) * 1e6:.0f} us a sample), "
          f"loss {history[0].loss:.3f} -> {history[-1].loss:.3f}, "
          f"held-out accuracy {accuracy:.3f}")
    return predicted


def confusion(truth, predicted):
    matrix = np.zeros((10, 10), dtype=int)
    np.add.at(matrix, (truth, predicted), 1)
    lines = ["true\\predicted " + " ".join(f"{k:3d}" for k in range(10))]
    lines += [f"{k:14d}  " + " ".join(f"{n:3d}" for n in row) for k, row in enumerate(matrix)]
    return "\n".join(lines)


def plot_mistakes(path, images, truth, predicted):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wrong = np.flatnonzero(truth != predicted)[:24]
    columns = 8
    rows = max(1, -(-len(wrong) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.2, rows * 1.4))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, k in zip(np.ravel(axes), wrong):
        ax.imshow(images[k], cmap="gray_r")
        ax.set_title(f"{truth[k]} as {predicted[k]}", fontsize=8)
    figure.suptitle("the CNN's mistakes on held-out digits (true as predicted)")
    figure.savefig(path, dpi=100)
    print(f"wrote {path} ({len(wrong)} mistakes drawn)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--limit", type=int, default=None, help="training images used")
    parser.add_argument("--plot", metavar="FILE", help="draw the CNN's mistakes into FILE")
    args = parser.parse_args()
    data = load(args.limit)
    print(f"{len(data[0]):,} training images, {len(data[1]):,} held out")
    train_and_score("MLP 64-32-10", mlp, data, args.epochs)
    predicted = train_and_score("CNN conv 1->8 3x3, relu, max-pool 2, dense to 10", cnn, data,
                                args.epochs)
    print(confusion(data[3], predicted))
    if args.plot:
        plot_mistakes(args.plot, data[1], data[3], predicted)


if __name__ == "__main__":
    main()
