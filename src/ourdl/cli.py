"""The `ourdl` command. `ourdl pubg` runs the tutorial's PUBG application end to end.

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
import os
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
LARGEST_LAYER = 1024
DEFAULT_HIDDEN = (16, 16)
# What --model mlp takes per weight (biases included) to build and train: the weight's node,
# the MulNode and AddNode that use it, their places on the tape, the fused plan and the
# optimizer's state. Measured as the peak RSS (VmHWM in /proc/self/status, each run a fresh
# process) of `ourdl pubg --rows 3000 --quiet --model mlp --hidden n,n` less that of
# `--hidden 4` (79 MB), over the weights: 2,755 bytes for n = 256 (69,632 weights), 2,787 for
# n = 512 (270,336), 2,883 for n = 512 with --optimizer adam; Python 3.11, x86-64.
# --hidden 1024,1024 (1,064,960 weights) peaks at 3.04 GB, 2,780 bytes a weight.
BYTES_PER_WEIGHT = 2_900
# The network may take this share of the memory available when the command starts (the
# data, about 0.9 GB at the real files' sizes, and the rest need the other half) ...
MEMORY_SHARE = 0.5
# ... or of this much, where the system says neither what is available nor what it has.
FALLBACK_MEMORY = 4_000_000_000


def _whole_number(low, high):
    """An argparse type: a whole number from low to high, else a message with that range."""
    def parse(text):
        value = _parse(int, text, "a whole number")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be from {low:,} to {high:,}, not {_shown(text)}")
        return value
    return parse


def _positive_number(text):
    value = _parse(float, text, "a number")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {_shown(text)}")
    return value


def _output_path(text):
    """An argparse type: Path(text), once text is known not to end in a slash (Path would
    drop it, and write a file where the user named a folder)."""
    try:
        _files.check_name(text)
    except IsADirectoryError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return Path(text)


def _layer_sizes(text):
    sizes = tuple(_whole_number(1, LARGEST_LAYER)(size.strip()) for size in text.split(","))
    return sizes


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
        description="ourdl, a teaching-grade autograd framework: the tutorial's Papa/Mama "
                    "nodes, compiled. Run `ourdl COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"ourdl {ourdl.__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    pubg = commands.add_parser(
        "pubg", help="train the tutorial's PUBG placement model and write a submission",
        description="The tutorial's PUBG placement application: drop the rows without kill "
                    "distances, divide each column by its maximum, train the tutorial's model "
                    "(13 features -> 1, plain SGD, built of ourdl nodes; or with --model mlp a "
                    "deeper network, with --optimizer another rule), report the mean "
                    "absolute error on held-out matches, predict the test rows and write the "
                    "submission: the header team_placement and one whole number per test row, "
                    "in the test file's order (the contest's format has no id column). Give "
                    "both real files, or neither: without them it synthesizes data with the "
                    "real files' columns and sizes (1,500,000 + 500,000 rows) and caches it in "
                    "$OURDL_CACHE_DIR, else $XDG_CACHE_HOME/ourdl, else ~/.cache/ourdl.")
    pubg.set_defaults(run=_run_pubg)
    pubg.add_argument("--train", metavar="PATH", type=Path,
                      help="the real pubg_train.csv: plain, .zip, .gz, .bz2 or .xz")
    pubg.add_argument("--test", metavar="PATH", type=Path,
                      help="the real pubg_test.csv, in the same formats")
    pubg.add_argument("--model", choices=("linear", "mlp"), default="linear",
                      help="linear: the tutorial's model, 13 weights starting at 0 (the "
                           "default); mlp: a network with --hidden layers of tanh units")
    pubg.add_argument("--hidden", metavar="SIZES", type=_layer_sizes,
                      help=f"the hidden layers of --model mlp, comma-separated (default "
                           f"{','.join(map(str, DEFAULT_HIDDEN))}; each at most "
                           f"{LARGEST_LAYER:,}); each weight takes about "
                           f"{BYTES_PER_WEIGHT / 1000:.1f} kB, and a network that would take "
                           f"more than --max-memory is refused before anything is built")
    pubg.add_argument("--max-memory", metavar="GB", type=_positive_number,
                      help="the most memory, in GB, that the --model mlp network may take "
                           "(default: half the memory available when the command starts, "
                           "MemAvailable in /proc/meminfo)")
    pubg.add_argument("--optimizer", choices=("sgd", "momentum", "adam"), default="sgd",
                      help="how each weight steps with --lr: sgd (the tutorial's), momentum "
                           "(beta 0.9) or adam (torch.optim.Adam's rule)")
    pubg.add_argument("--epochs", metavar="N", type=_whole_number(1, LARGEST_COUNT), default=1,
                      help="passes over the training rows (default 1, as in the tutorial)")
    pubg.add_argument("--lr", metavar="RATE", type=_positive_number, default=0.01,
                      help="learning rate of every weight (default 0.01, as in the tutorial)")
    pubg.add_argument("--batch-size", metavar="N", type=_whole_number(1, LARGEST_COUNT), default=1,
                      help="samples per weight update (default 1: per-sample SGD, as in the "
                           "tutorial)")
    pubg.add_argument("--shuffle", action="store_true",
                      help="visit the training rows in a new random order each epoch "
                           "(default: file order, as in the tutorial)")
    pubg.add_argument("--seed", metavar="N", type=_whole_number(0, LARGEST_COUNT), default=0,
                      help="random seed of the synthetic data, the held-out matches and the "
                           "shuffling (default 0)")
    pubg.add_argument("--holdout", metavar="FRACTION", type=_fraction, default=0.1,
                      help="fraction of the training matches held out to measure the error "
                           "(default 0.1; 0 trains on every match and skips the measurement)")
    pubg.add_argument("--rows", metavar="N", type=_whole_number(1, LARGEST_ROWS),
                      help="synthesize N training rows and N/3 test rows instead of the real "
                           f"files' sizes, for a quick try (at most {LARGEST_ROWS:,})")
    pubg.add_argument("--out", metavar="PATH", type=_output_path,
                      default=Path("submission.csv"),
                      help="where to write the submission (default ./submission.csv); a name "
                           "ending in .zip writes a zip holding submission.csv, .gz, .bz2 or "
                           ".xz a compressed CSV")
    pubg.add_argument("--plot", metavar="PATH", type=_output_path,
                      help="also draw the training loss and predicted vs true placement on the "
                           "held-out matches, as the extension says: .png, .svg, .pdf, ... "
                           "(needs matplotlib)")
    pubg.add_argument("--save-model", metavar="PATH", type=_output_path,
                      help="also save the trained network, with the normalization it needs, "
                           "to PATH (an ourdl graph file; see ourdl.save)")
    pubg.add_argument("--model-in", metavar="PATH", type=Path,
                      help="predict the test rows with a network saved by --save-model, "
                           "without training: takes --test (or synthetic test data), not "
                           "--train or the training options")
    pubg.add_argument("--quiet", action="store_true",
                      help="print nothing but errors: no progress bar, no report")
    pubg.add_argument("--debug", action="store_true",
                      help="show the full traceback when something fails")
    return parser


# --- ourdl pubg ------------------------------------------------------------------------------

def _run_pubg(args) -> int:
    _check_before_work(args)
    from ourdl.datasets import pubg

    if args.model_in is not None:
        return _predict_with_saved_model(args)
    say = _Report(args.quiet)
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
    problem = pubg.model_problem(maxima, means) if args.save_model else None
    if problem is not None:  # a model file that --model-in would refuse: say so before training
        raise ValueError(f"--save-model {args.save_model}: cannot save a model of this data: "
                         f"{problem}")
    prepared = time.perf_counter()
    say(f"training on the {len(complete):,} complete rows (with kills) of "
        f"{len(training_matches):,}; holding out "
        f"{_count(held_out['match_id'].nunique(), 'match')} ({_count(len(held_out), 'row')})")

    model = _model(args)
    features, target = data[:, :-1], data[:, -1]
    for epoch in range(1, args.epochs + 1):
        # One epoch per call, so each line is printed as its epoch ends; the model's own
        # generator carries the shuffling on, as fit(epochs=N) would.
        stats = model.partial_fit(features, target).history_[-1]
        say(f"epoch {epoch}/{args.epochs}: training loss {stats.loss:.6g} "
            f"({stats.seconds:.3f} s, {stats.samples_per_second:,.0f} samples/s)")

    def predict(frame):
        features = pubg.to_array(frame)[:, :len(pubg.FEATURES)]
        normalized = pubg.normalize_test(features, maxima[:-1], means[:-1])
        return pubg.to_placement(model.predict(normalized), maxima[-1])

    truth = held_out[pubg.TARGET].to_numpy()
    guesses = predict(held_out) if len(held_out) else np.empty(0, dtype=np.int64)
    baseline = training_matches[pubg.TARGET].mean()
    if len(held_out):
        say(f"held-out MAE: {abs(guesses - truth).mean():.3f} placements on {len(truth):,} rows "
            f"(always predicting the training mean, {baseline:.1f}: "
            f"{abs(baseline - truth).mean():.3f})")
    if args.model == "linear":
        say("learned weights:")
        for name, weight in zip(pubg.FEATURES, model.coefs_[0][:, 0]):
            say(f"  {name:<22} {weight:+.6f}")
    else:
        sizes = [len(pubg.FEATURES), *model.hidden, 1]
        count = sum(w.size for w in model.coefs_) + sum(b.size for b in model.intercepts_)
        say(f"learned {_count(count, 'weight')} (biases included) of the "
            f"{' -> '.join(map(str, sizes))} network")

    placements = predict(test)
    picture = (_render_plot(model.history_, truth, guesses, baseline, args.plot)
               if args.plot else None)
    kept = (args.save_model, model.tape_.root, maxima, means) if args.save_model else None
    _write_outputs(placements, args.out, picture, args.plot, kept)
    total = time.perf_counter() - started
    data_seconds = prepared - started
    epoch_seconds = sum(stats.seconds for stats in model.history_)
    say(f"time: {total:.2f} s in all: data {data_seconds:.2f} s, training {epoch_seconds:.3f} s "
        f"({len(data) * args.epochs / epoch_seconds:,.0f} samples/s), prediction, output and "
        f"the rest {total - data_seconds - epoch_seconds:.2f} s")
    also = [str(path) for path in (args.plot, args.save_model) if path is not None]
    say(f"wrote {args.out} ({_count(len(placements), 'row')})"
        + (f" and {' and '.join(also)}" if also else ""))
    return 0


def _predict_with_saved_model(args) -> int:
    """ourdl pubg --model-in: the test rows through a saved network, normalized as it was."""
    from ourdl.datasets import pubg

    say = _Report(args.quiet)
    try:
        network, maxima, means = pubg.load_model(args.model_in)
    except ValueError as error:  # it names the file; say which option gave it
        raise ValueError(f"--model-in {error}") from None
    except OSError as error:  # a file it cannot read: permissions, a failing disk
        raise ValueError(f"--model-in {args.model_in}: {error.strerror or error}") from None
    say(f"model: {args.model_in}, trained on {len(network.x)} features")
    test = _frame(args.test, "test", args, say)
    features = pubg.normalize_test(pubg.to_array(test), maxima[:-1], means[:-1])
    predictions = ourdl.compile(network.prediction).predict(features, network.x)
    bad = np.flatnonzero(~np.isfinite(predictions))
    if len(bad):
        raise ValueError(f"--model-in {args.model_in}: the saved network gives no finite "
                         f"prediction for {_count(len(bad), 'test row')} (row {bad[0]:,}: "
                         f"{predictions[bad[0]]}), so it cannot place them")
    placements = pubg.to_placement(predictions, maxima[-1])
    _write_outputs(placements, args.out, None, None)
    say(f"wrote {args.out} ({_count(len(placements), 'row')})")
    return 0


def _model(args):
    """The model to train: the tutorial's (--model linear) or an MLP, as an ourdl.Regressor
    (its seed draws the MLP's initial weights, then the order of the rows with --shuffle)."""
    return ourdl.Regressor(
        hidden=(args.hidden or DEFAULT_HIDDEN) if args.model == "mlp" else (),
        optimizer=args.optimizer, lr=args.lr, batch_size=args.batch_size, shuffle=args.shuffle,
        seed=args.seed, progress=not args.quiet and sys.stderr.isatty())  # no bar into logs


class _Report:
    """print for the report: a line at a time, flushed, so that a pipe sees each epoch as it
    ends. Once the reader has gone (`ourdl pubg | head`) it falls silent and the run goes on
    to write its files: the report is a courtesy, the submission is the point."""

    def __init__(self, quiet):
        self.quiet = quiet

    def __call__(self, line):
        if self.quiet:
            return
        try:
            print(line, flush=True)
        except BrokenPipeError:
            self.quiet = True
            # What is still buffered would fail again when Python flushes stdout at exit.
            with contextlib.suppress(OSError, ValueError, AttributeError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)


def _check_before_work(args):
    """Fail in a second, not after training, on what can be known up front."""
    from ourdl.datasets import pubg

    if args.model_in is not None:
        if not args.model_in.exists():
            raise FileNotFoundError(f"--model-in {args.model_in}: no such file")
        trains = [option for option in ("train", "epochs", "lr", "batch_size", "shuffle",
                                        "holdout", "plot", "save_model", "max_memory")
                  if getattr(args, option) != _parser_defaults()[option]]
        if trains:
            flag = "--" + trains[0].replace("_", "-")
            raise ValueError(f"{flag} is for training; --model-in predicts with a saved model "
                             f"without training (give it --test, or nothing for synthetic data)")
        if args.rows is not None and args.test is not None:
            raise ValueError("--rows sizes the synthetic data; the real --test file is used whole")
    elif (args.train is None) != (args.test is None):
        given, missing = ("--train", "--test") if args.test is None else ("--test", "--train")
        raise ValueError(f"{given} without {missing}: give both real files, or neither for "
                         f"synthetic data (a real file never mixes with synthetic data)")
    if args.hidden is not None and args.model != "mlp":
        raise ValueError("--hidden sizes the layers of --model mlp; the linear model has none")
    if args.model == "mlp" and args.model_in is None:
        _check_memory(args.hidden or DEFAULT_HIDDEN, args.max_memory)
    if args.train is not None and args.rows is not None:
        raise ValueError("--rows sizes the synthetic data; the real files are used whole")
    for option, path in (("--train", args.train), ("--test", args.test)):
        if path is not None and not path.exists():
            raise FileNotFoundError(f"{option} {path}: no such file")
    outputs = {"--plot": args.plot, "--save-model": args.save_model, "--out": args.out}
    for option, path in outputs.items():
        if path is not None:
            try:
                _files.check_output(path)
            except OSError as error:
                raise ValueError(f"{option} {error}") from None
    given = [(option, path.resolve()) for option, path in outputs.items() if path is not None]
    for k, (option, path) in enumerate(given):
        for other, other_path in given[k + 1:]:
            if path == other_path:
                raise ValueError(f"{option} and {other} are the same file, {outputs[option]}")
    try:
        pubg.submission_compression(args.out)
    except ValueError as error:
        raise ValueError(f"--out {error}") from None
    if args.plot:
        _plot_format(args.plot)


def _check_memory(hidden, max_memory):
    """Refuse, before anything is built, a network that would take more than max_memory GB
    (None: MEMORY_SHARE of the memory available)."""
    from ourdl.datasets import pubg

    sizes = [len(pubg.FEATURES), *hidden, 1]
    weights = _weight_count(sizes)
    needed = weights * BYTES_PER_WEIGHT
    if max_memory is not None:
        limit, source = max_memory * 1e9, "--max-memory"
    else:
        available, where = _available_memory()
        limit = MEMORY_SHARE * available
        source = f"{MEMORY_SHARE:.0%} of the {_gigabytes(available)} {where}"
    if needed > limit:
        raise ValueError(
            f"--hidden {','.join(map(str, hidden))}: the {' -> '.join(map(str, sizes))} "
            f"network has {weights:,} weights, which take about {_gigabytes(needed)} to build "
            f"and train, more than the {_gigabytes(limit)} allowed ({source}); give smaller "
            f"layers, or --max-memory {math.ceil(needed / 1e8) / 10:g} to allow it")


def _weight_count(sizes):
    """Weights and biases of an MLP of these layer sizes (the output has no bias)."""
    return sum(n_in * n_out for n_in, n_out in zip(sizes, sizes[1:])) + sum(sizes[1:-1])


def _available_memory(meminfo="/proc/meminfo"):
    """(bytes of memory a new program can take, where that figure comes from): Linux's
    MemAvailable; else the machine's physical memory; else FALLBACK_MEMORY."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open(meminfo) as lines:
            for line in lines:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "of memory available"  # in kB
    with contextlib.suppress(AttributeError, OSError, ValueError):
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        if physical > 0:
            return physical, "of memory in this machine"
    return FALLBACK_MEMORY, "assumed (the system does not say how much memory it has)"


def _gigabytes(size):
    return f"{size / 1e9:.3g} GB"


def _parser_defaults():
    """Each option of `ourdl pubg` with its default."""
    return vars(_parser().parse_args(["pubg"]))


def _plot_format(path) -> str:
    """The file format --plot's extension names, or ValueError saying what would do."""
    if importlib.util.find_spec("matplotlib") is None:
        raise ValueError("--plot needs matplotlib, which is not installed "
                         "(pip install 'ourdl[plot]' or pip install matplotlib)")
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    kind = path.suffix[1:].lower()
    if kind not in formats:
        raise ValueError(f"--plot {path}: matplotlib does not write "
                         f"{path.suffix or 'files without an extension'}; end the name in "
                         f".png, .svg, .pdf or another of {', '.join(sorted(formats))}")
    return kind


def _frame(path, split, args, say):
    from ourdl.datasets import pubg

    if path is None:
        rows = args.rows
        if rows is not None and split == "test":
            rows = max(1, rows // 3)
        frame = pubg.cached(split, rows, args.seed)
        cache = pubg.cache_path(split, rows, args.seed)
        where = f"cached in {cache.parent}" if cache.exists() else "not cached"
        say(f"{split}: synthetic, {_rows_and_matches(frame)} (seed {args.seed}, {where})")
        return frame
    frame = pubg.load(path)
    is_train = pubg.TARGET in frame.columns
    if is_train != (split == "train"):
        has = "has a" if is_train else "has no"
        raise ValueError(f"--{split} {path} {has} {pubg.TARGET} column, so it is a "
                         f"{'training' if is_train else 'test'} file, not a {split} file")
    say(f"{split}: {path}, {_rows_and_matches(frame)}")
    return frame


def _rows_and_matches(frame):
    return f"{_count(len(frame), 'row')} in {_count(frame['match_id'].nunique(), 'match')}"


def _count(number, noun):
    plural = "es" if noun.endswith("ch") else "s"
    return f"{number:,} {noun}{'' if number == 1 else plural}"


def _render_plot(history, truth, guesses, baseline, path) -> bytes:
    """The picture in the format path's extension names, rendered in memory so that a
    plotting failure writes nothing."""
    buffer = io.BytesIO()
    _figure(history, truth, guesses, baseline).savefig(buffer, format=_plot_format(path), dpi=100)
    return buffer.getvalue()


def _figure(history, truth, guesses, baseline):
    """The training loss per epoch, and predicted vs true placement on the held-out rows."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(11, 4.5), layout="constrained")
    loss_axes, placement_axes = figure.subplots(1, 2)
    epochs = range(1, len(history) + 1)
    losses = [stats.loss for stats in history]
    loss_axes.plot(epochs, losses, marker="o")
    loss_axes.set_xlim(0.5, len(history) + 0.5)
    loss_axes.set_ylim(0, 1.1 * max(losses))  # from zero, so that a drop reads at its true size
    loss_axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    title = "Training loss" if len(history) > 1 else "Training loss (--epochs N for a curve)"
    loss_axes.set(title=title, xlabel="epoch", ylabel="mean squared error (normalized placement)")
    if len(truth):
        cells = placement_axes.hexbin(truth, guesses, gridsize=HEXBIN_GRID, bins="log", mincnt=1)
        figure.colorbar(cells, ax=placement_axes, label="players")
        top = max(truth.max(), guesses.max())
        placement_axes.plot([1, top], [1, top], color="black", linewidth=0.8,
                            label="perfect prediction")
        placement_axes.legend(loc="upper left")
        placement_axes.set_title(
            f"Held-out matches: MAE {abs(guesses - truth).mean():.2f} placements\n"
            f"(always predicting the training mean: {abs(baseline - truth).mean():.2f})")
    else:
        placement_axes.text(0.5, 0.5, "no held-out matches (--holdout 0)", ha="center",
                            transform=placement_axes.transAxes)
        placement_axes.set_title("Held-out matches")
    placement_axes.set(xlabel="true placement", ylabel="predicted placement")
    return figure


def _write_outputs(placements, out, picture, plot_path, model=None):
    """Write the plot, the model ((path, loss node, maxima, means)) and the submission; the
    plot and model are renamed into place only once the submission is written, so a failure
    leaves none of them (and deletes nothing of the user's)."""
    from ourdl.datasets import pubg

    with contextlib.ExitStack() as outputs:
        if picture is not None:
            outputs.enter_context(_files.open_output(plot_path)).write(picture)
        if model is not None:
            path, *trained = model
            pubg.save_model(outputs.enter_context(_files.open_output(path)), *trained)
        pubg.write_submission(placements, out)
