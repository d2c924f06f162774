"""The `ourdl` command. `ourdl pubg` runs the seed's PUBG application end to end.

Every failure ends in one line on stderr and a non-zero exit code (a traceback only with
--debug), and no output file is written unless the whole run succeeded. `main(argv)` returns
the exit code, so tests call it in-process. Heavy imports (pandas, matplotlib) wait until
a command runs, so `ourdl --help` answers at once.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import math
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

import ourdl
from ourdl import _files

HEXBIN_GRID = 50  # hexagons across the predicted-vs-true panel: readable at 100 placements


def main(argv=None) -> int:
    """Run the `ourdl` command with argv (default sys.argv[1:]); return the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # --help, or a usage error argparse already reported
        return exit_request.code if isinstance(exit_request.code, int) else 1
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return args.run(args)
        except KeyboardInterrupt:
            print("ourdl: interrupted; no output was written", file=sys.stderr)
            return 130
        except Exception as error:  # the command's contract: one readable line, not a traceback
            if args.debug:
                traceback.print_exc()
            else:
                print(f"ourdl: error: {_describe(error)}", file=sys.stderr)
            return 1


def _describe(error: Exception) -> str:
    if isinstance(error, MemoryError):
        return "out of memory" + (f": {error}" if str(error) else "")
    return str(error) or type(error).__name__


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"ourdl: warning: {message}", file=sys.stderr)


# --- arguments ---------------------------------------------------------------------------

# The counts reach the compiled core as C integers (Py_ssize_t); --rows bounds the memory of
# the synthetic data, ten times the real training file being plenty for a quick try.
LARGEST_COUNT = sys.maxsize
LARGEST_ROWS = 15_000_000


def _whole_number(low, high):
    """An argparse type: a whole number from low to high, else a message with that range."""
    def parse(text):
        value = _parse(int, text, "a whole number")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be from {low:,} to {high:,}, not {_shown(text)}")
        return value
    return parse


def _learning_rate(text):
    value = _parse(float, text, "a number")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {_shown(text)}")
    return value


def _fraction(text):
    value = _parse(float, text, "a number")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, not {_shown(text)}")
    return value


def _parse(kind, text, description):
    try:
        return kind(text)
    except ValueError:  # also int()'s limit of 4,300 digits
        raise argparse.ArgumentTypeError(f"{_shown(text)!r} is not {description}") from None


def _shown(text, limit=30):
    """text, cut short so that a pasted megabyte does not become a megabyte of message."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _parser():
    parser = argparse.ArgumentParser(
        prog="ourdl",
        description="ourdl, a teaching-grade autograd framework: the seed's Papa/Mama nodes, "
                    "compiled. Run `ourdl COMMAND --help` for a command's options.")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    pubg = commands.add_parser(
        "pubg", help="train the seed's PUBG placement model and write submission.csv",
        description="The seed's PUBG application: drop the rows without kill distances, divide "
                    "by the column maxima, train the 13 -> 1 linear network of ourdl nodes one "
                    "sample at a time, report the mean absolute error on held-out matches, "
                    "predict the test rows and write submission.csv. Without --train/--test "
                    "it synthesizes data with the real files' schema (1,500,000 + 500,000 rows) "
                    "and caches it in $OURDL_CACHE_DIR, else $XDG_CACHE_HOME/ourdl, "
                    "else ~/.cache/ourdl.")
    pubg.set_defaults(run=_run_pubg)
    pubg.add_argument("--train", metavar="PATH", type=Path,
                      help="the real pubg_train.csv, or a .zip holding it (default: synthetic)")
    pubg.add_argument("--test", metavar="PATH", type=Path,
                      help="the real pubg_test.csv, or a .zip holding it (default: synthetic)")
    pubg.add_argument("--epochs", metavar="N", type=_whole_number(1, LARGEST_COUNT), default=1,
                      help="passes over the training rows (default 1, as the seed)")
    pubg.add_argument("--lr", metavar="RATE", type=_learning_rate, default=0.01,
                      help="learning rate of every weight node (default 0.01, as the seed)")
    pubg.add_argument("--batch-size", metavar="N", type=_whole_number(1, LARGEST_COUNT), default=1,
                      help="samples per weight update (default 1: per-sample SGD, as the seed)")
    pubg.add_argument("--shuffle", action="store_true",
                      help="visit the training rows in a new random order each epoch "
                           "(default: file order, as the seed)")
    pubg.add_argument("--seed", metavar="N", type=_whole_number(0, LARGEST_COUNT), default=0,
                      help="seed of the synthetic data, the held-out matches and the shuffling "
                           "(default 0)")
    pubg.add_argument("--holdout", metavar="FRACTION", type=_fraction, default=0.1,
                      help="fraction of the training matches held out to measure the error "
                           "(default 0.1; 0 trains on every match and skips the measurement)")
    pubg.add_argument("--rows", metavar="N", type=_whole_number(1, LARGEST_ROWS),
                      help="synthesize N training rows and N/3 test rows instead of the real "
                           "files' sizes, for a quick try")
    pubg.add_argument("--out", metavar="PATH", type=Path, default=Path("submission.csv"),
                      help="where to write the submission (default ./submission.csv)")
    pubg.add_argument("--plot", metavar="PATH", type=Path,
                      help="also write a PNG of the training loss and of predicted vs true "
                           "placement on the held-out matches (needs matplotlib)")
    pubg.add_argument("--quiet", action="store_true",
                      help="print nothing but errors: no progress bar, no report")
    pubg.add_argument("--debug", action="store_true",
                      help="show the full traceback when something fails")
    return parser


# --- ourdl pubg ------------------------------------------------------------------------------

def _run_pubg(args) -> int:
    _check_before_work(args)
    from ourdl.datasets import pubg

    say = (lambda *lines: None) if args.quiet else print
    started = time.perf_counter()
    train = _frame(args.train, "train", args, say)
    test = _frame(args.test, "test", args, say)

    training_matches, held_out = pubg.split_matches(train, args.holdout, args.seed)
    complete = pubg.complete_rows(training_matches)
    if complete.empty:
        raise ValueError(f"none of the {_count(len(training_matches), 'training row')} has kill "
                         f"distances (only players with kills do), so there is nothing to train "
                         f"on" + ("; a smaller --holdout leaves more" if args.holdout else ""))
    data, maxima = pubg.normalize_train(pubg.to_array(complete))
    means = data.mean(axis=0)
    prepared = time.perf_counter()
    say(f"training on the {len(complete):,} complete rows (with kills) of "
        f"{len(training_matches):,}; holding out "
        f"{_count(held_out['match_id'].nunique(), 'match')} ({_count(len(held_out), 'row')})")

    network = pubg.build_network(len(pubg.FEATURES), args.lr)
    history = ourdl.compile(network.loss).fit(
        data, network.x + [network.y], epochs=args.epochs, shuffle=args.shuffle,
        seed=args.seed, batch_size=args.batch_size,
        progress=not args.quiet and sys.stderr.isatty())  # a bar in a terminal, not in a log
    for number, stats in enumerate(history, start=1):
        say(f"epoch {number}/{len(history)}: training loss {stats.loss:.6g} "
            f"({stats.seconds:.3f} s, {stats.samples_per_second:,.0f} samples/s)")

    # The prediction node alone, so the target column is not needed to predict.
    predictor = ourdl.compile(network.prediction)

    def predict(frame):
        features = pubg.to_array(frame)[:, :len(pubg.FEATURES)]
        normalized = pubg.normalize_test(features, maxima[:-1], means[:-1])
        return pubg.to_placement(predictor.predict(normalized, network.x), maxima[-1])

    truth = held_out[pubg.TARGET].to_numpy()
    guesses = predict(held_out) if len(held_out) else np.empty(0, dtype=np.int64)
    if len(held_out):
        mean_placement = training_matches[pubg.TARGET].mean()
        say(f"held-out MAE: {abs(guesses - truth).mean():.3f} placements on {len(truth):,} rows "
            f"(always predicting the training mean, {mean_placement:.1f}: "
            f"{abs(mean_placement - truth).mean():.3f})")
    say("learned weights:")
    for name, weight in zip(pubg.FEATURES, network.w):
        say(f"  {name:<22} {weight.value:+.6f}")

    placements = predict(test)
    png = _render_plot(history, truth, guesses) if args.plot else None
    _write_outputs(placements, args.out, png, args.plot)
    total = time.perf_counter() - started
    data_seconds = prepared - started
    epoch_seconds = sum(stats.seconds for stats in history)
    say(f"time: {total:.2f} s in all: data {data_seconds:.2f} s, training {epoch_seconds:.3f} s "
        f"({len(data) * len(history) / epoch_seconds:,.0f} samples/s), prediction, output and "
        f"the rest {total - data_seconds - epoch_seconds:.2f} s")
    say(f"wrote {args.out} ({_count(len(placements), 'row')})"
        + (f" and {args.plot}" if png else ""))
    return 0


def _check_before_work(args):
    """Fail in a second, not after training, on what can be known up front."""
    for option, path in (("--out", args.out), ("--plot", args.plot)):
        if path is not None:
            try:
                _files.check_output(path)
            except OSError as error:
                raise ValueError(f"{option} {error}") from None
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        raise ValueError("--plot needs matplotlib, which is not installed "
                         "(pip install 'ourdl[plot]' or pip install matplotlib)")
    for option, path in (("--train", args.train), ("--test", args.test)):
        if path is not None and not path.exists():
            raise FileNotFoundError(f"{option} {path}: no such file")


def _frame(path, split, args, say):
    from ourdl.datasets import pubg

    if path is None:
        rows = args.rows
        if rows is not None and split == "test":
            rows = max(1, rows // 3)
        frame = pubg.cached(split, rows, args.seed)
        say(f"{split}: synthetic, {_rows_and_matches(frame)} (seed {args.seed}, cached in "
            f"{pubg.cache_dir()})")
        return frame
    frame = pubg.load(path)
    is_train = pubg.TARGET in frame.columns
    if is_train != (split == "train"):
        has = "has" if is_train else "has no"
        raise ValueError(f"--{split} {path} {has} a {pubg.TARGET} column, so it is a "
                         f"{'training' if is_train else 'test'} file, not a {split} file")
    say(f"{split}: {path}, {_rows_and_matches(frame)}")
    return frame


def _rows_and_matches(frame):
    return f"{_count(len(frame), 'row')} in {_count(frame['match_id'].nunique(), 'match')}"


def _count(number, noun):
    plural = "es" if noun.endswith("ch") else "s"
    return f"{number:,} {noun}{'' if number == 1 else plural}"


def _render_plot(history, truth, guesses) -> bytes:
    """The PNG, rendered in memory so that a plotting failure writes nothing."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(11, 4.5), layout="constrained")
    loss_axes, placement_axes = figure.subplots(1, 2)
    epochs = range(1, len(history) + 1)
    loss_axes.plot(epochs, [stats.loss for stats in history], marker="o")
    loss_axes.set_xlim(0.5, len(history) + 0.5)
    loss_axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    title = "Training loss" if len(history) > 1 else "Training loss (--epochs N for a curve)"
    loss_axes.set(title=title, xlabel="epoch", ylabel="mean squared error (normalized placement)")
    if len(truth):
        cells = placement_axes.hexbin(truth, guesses, gridsize=HEXBIN_GRID, bins="log", mincnt=1)
        figure.colorbar(cells, ax=placement_axes, label="players")
        top = max(truth.max(), guesses.max())
        placement_axes.plot([1, top], [1, top], color="black", linewidth=0.8)
    else:
        placement_axes.text(0.5, 0.5, "no held-out matches (--holdout 0)", ha="center",
                            transform=placement_axes.transAxes)
    placement_axes.set(title="Held-out matches", xlabel="true placement",
                       ylabel="predicted placement")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _write_outputs(placements, out, png, plot_path):
    """Write the plot and the submission; the plot is renamed into place only once the
    submission is written, so a failure leaves neither (and deletes nothing of the user's)."""
    from ourdl.datasets import pubg

    with contextlib.ExitStack() as outputs:
        if png is not None:
            outputs.enter_context(_files.open_output(plot_path)).write(png)
        pubg.write_submission(placements, out)
