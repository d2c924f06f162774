"""The `ourdl pubg` application: the tutorial's PUBG program, from the data to the submission.

    report = run(Options(epochs=5, out=Path("submission.zip")), say=print)

`run` reads the data (the files named, else pubg_train.csv and pubg_test.csv where the
tutorial leaves them, in the current folder, else synthetic data), holds out whole matches,
keeps the complete rows, divides each column by its maximum, trains the tutorial's model (or
an MLP) as an ourdl.Regressor, measures the error on the held-out matches against always
predicting the mean, predicts the test rows and writes the submission, with the plot and the
model file asked for. Each line of the report goes to `say` as soon as it is known. Options
that cannot work are refused before any data is read; no output is written unless the whole
run succeeded.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from ourdl import _core, _files
from ourdl.estimator import Regressor

from . import model as model_files
from . import pipeline
from .schema import FEATURES, TARGET

STDOUT = Path("-")  # --out -: the submission to standard output
DEFAULT_HIDDEN = (16, 16)
# The tutorial leaves its files in the working folder under these names, zipped or not.
REAL_FILES = {"train": "pubg_train.csv", "test": "pubg_test.csv"}
REAL_SUFFIXES = ("", ".zip", ".gz", ".bz2", ".xz", ".zst")
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
HEXBIN_GRID = 50  # hexagons across the predicted-vs-true panel: readable at 100 placements


@dataclasses.dataclass
class Options:
    """What `ourdl pubg` is asked to do: one field per option of the command, with its
    default (`ourdl pubg --help` says what each does). Paths are pathlib.Path; `out` is
    STDOUT for standard output; `hidden` None is DEFAULT_HIDDEN."""
    train: Path | None = None
    test: Path | None = None
    model: str = "linear"
    hidden: tuple | None = None
    max_memory: float | None = None
    optimizer: str = "sgd"
    epochs: int = 1
    lr: float = 0.01
    batch_size: int = 1
    shuffle: bool = False
    seed: int = 0
    holdout: float = 0.1
    rows: int | None = None
    out: Path = Path("submission.csv")
    plot: Path | None = None
    save_model: Path | None = None
    model_in: Path | None = None
    progress: bool = False  # a progress bar while training


@dataclasses.dataclass
class Report:
    """What a run found and did: the lines said, the placements written, and the held-out
    mean absolute error of the model and of always predicting the training mean (None
    without held-out matches or training), and the model's after each epoch."""
    lines: list
    placements: np.ndarray
    held_out_mae: float | None = None
    baseline_mae: float | None = None
    held_out_curve: list = dataclasses.field(default_factory=list)  # the MAE after each epoch


class OptionsError(ValueError):
    """Options, or files in the folder, that cannot make a run: the command's usage error."""


def run(options: Options, say=None) -> Report:
    """Run the application (see the module docstring); `say(line)` gets each line of the
    report as it is made. Raises OptionsError or ValueError, saying what to change."""
    lines = []

    def tell(line):
        lines.append(line)
        if say is not None:
            say(line)

    train_path, test_path = _data_files(options, tell)
    check(options, train_path, test_path)
    if options.model_in is not None:
        return _predict_with_saved_model(options, test_path, tell, lines)
    started = time.perf_counter()
    train = _frame(train_path, "train", options, tell)
    test = _frame(test_path, "test", options, tell)

    training_matches, held_out = pipeline.split_matches(train, options.holdout, options.seed)
    complete = pipeline.complete_rows(training_matches)
    if complete.empty:
        raise ValueError(f"none of the {_count(len(training_matches), 'training row')} has kill "
                         f"distances (only players with kills do), so there is nothing to train "
                         f"on" + ("; a smaller --holdout leaves more" if options.holdout else ""))
    data, maxima = pipeline.normalize_train(pipeline.to_array(complete))
    means = data.mean(axis=0)
    problem = model_files.model_problem(maxima, means) if options.save_model else None
    if problem is not None:  # a model file that --model-in would refuse: say so before training
        raise ValueError(f"--save-model {options.save_model}: cannot save a model of this data: "
                         f"{problem}")
    prepared = time.perf_counter()
    tell(f"training on the {len(complete):,} complete rows (with kills) of "
         f"{len(training_matches):,}; holding out "
         f"{_count(held_out['match_id'].nunique(), 'match')} ({_count(len(held_out), 'row')})")

    model = _model(options)
    features, target = data[:, :-1], data[:, -1]
    truth = held_out[TARGET].to_numpy()
    guesses = np.empty(0, dtype=np.int64)
    report = Report(lines, None)
    for epoch in range(1, options.epochs + 1):
        # One epoch per call, so each line is said as its epoch ends; the model's own
        # generator carries the shuffling on, as fit(epochs=N) would.
        stats = model.partial_fit(features, target).history_[-1]
        line = (f"epoch {epoch}/{options.epochs}: training loss {stats.loss:.6g} "
                f"({stats.seconds:.3f} s, {stats.samples_per_second:,.0f} samples/s)")
        if len(held_out):  # the held-out error after every epoch: how training is going
            guesses = placements(model.predict, held_out, maxima, means)
            report.held_out_curve.append(float(abs(guesses - truth).mean()))
            line += f", held-out MAE {report.held_out_curve[-1]:.3f}"
        tell(line)

    baseline = training_matches[TARGET].mean()
    if len(held_out):
        report.held_out_mae = float(abs(guesses - truth).mean())
        report.baseline_mae = float(abs(baseline - truth).mean())
        tell(f"held-out MAE: {report.held_out_mae:.3f} placements on {len(truth):,} rows "
             f"(always predicting the training mean, {baseline:.1f}: "
             f"{report.baseline_mae:.3f})")
    if options.model == "linear":
        tell("learned weights:")
        for name, weight in zip(FEATURES, model.coefs_[0][:, 0]):
            tell(f"  {name:<22} {weight:+.6f}")
    else:
        sizes = [len(FEATURES), *model.hidden, 1]
        count = sum(w.size for w in model.coefs_) + sum(b.size for b in model.intercepts_)
        tell(f"learned {_count(count, 'weight')} (biases included) of the "
             f"{' -> '.join(map(str, sizes))} network")

    report.placements = placements(model.predict, test, maxima, means)
    picture = (_render_plot(model.history_, report.held_out_curve, truth, guesses, baseline,
                            options.plot) if options.plot else None)
    kept = ((options.save_model, model.tape_.root, model.inputs_, maxima, means)
            if options.save_model else None)
    _write_outputs(report.placements, options.out, picture, options.plot, kept)
    total = time.perf_counter() - started
    data_seconds = prepared - started
    epoch_seconds = sum(stats.seconds for stats in model.history_)
    tell(f"time: {total:.2f} s in all: data {data_seconds:.2f} s, training {epoch_seconds:.3f} s "
         f"({len(data) * options.epochs / epoch_seconds:,.0f} samples/s), prediction, output and "
         f"the rest {total - data_seconds - epoch_seconds:.2f} s")
    tell(_wrote(options, len(report.placements)))
    return report


def placements(predict, frame, maxima, means):
    """The placements a model gives the rows of a train or test frame: their features
    normalized as the training data was, through predict (a function of that array), then
    the tutorial's int(p * max) clipped to [1, max]."""
    features = pipeline.to_array(frame)[:, :len(FEATURES)]
    predictions = predict(pipeline.normalize_test(features, maxima[:-1], means[:-1]))
    bad = np.flatnonzero(~np.isfinite(predictions))
    if len(bad):
        rows = "held-out row" if TARGET in frame.columns else "test row"
        raise ValueError(f"the network gives no finite prediction for "
                         f"{_count(len(bad), rows)} (row {bad[0]:,}: {predictions[bad[0]]}), "
                         f"so it cannot place them")
    return pipeline.to_placement(predictions, maxima[-1])


def _predict_with_saved_model(options, test_path, tell, lines) -> Report:
    """--model-in: the test rows through a saved network, normalized as it was."""
    try:
        network, maxima, means = model_files.load_model(options.model_in)
    except ValueError as error:  # it names the file; say which option gave it
        raise ValueError(f"--model-in {error}") from None
    except OSError as error:  # a file it cannot read: permissions, a failing disk
        raise ValueError(f"--model-in {options.model_in}: {error.strerror or error}") from None
    tell(f"model: {options.model_in}, trained on {len(network.x)} features")
    test = _frame(test_path, "test", options, tell)
    tape = _core.compile(network.prediction)
    try:
        result = placements(lambda features: tape.predict(features, network.x), test, maxima,
                            means)
    except ValueError as error:
        raise ValueError(f"--model-in {options.model_in}: "
                         f"{str(error).replace('the network', 'the saved network', 1)}") from None
    _write_outputs(result, options.out, None, None)
    tell(_wrote(options, len(result)))
    return Report(lines, result)


def _wrote(options, n_rows):
    out = "the standard output" if options.out == STDOUT else str(options.out)
    also = [str(path) for path in (options.plot, options.save_model) if path is not None]
    return (f"wrote {out} ({_count(n_rows, 'row')})"
            + (f" and {' and '.join(also)}" if also else ""))


def _model(options):
    """The model to train: the tutorial's (--model linear) or an MLP, as an ourdl.Regressor
    (its seed draws the MLP's initial weights, then the order of the rows with --shuffle)."""
    return Regressor.tutorial(
        hidden=(options.hidden or DEFAULT_HIDDEN) if options.model == "mlp" else (),
        optimizer=options.optimizer, lr=options.lr,
        batch_size=options.batch_size, shuffle=options.shuffle, seed=options.seed,
        progress=options.progress)


# --- the data -----------------------------------------------------------------------------

def _real_file_here(split):
    """The tutorial's file of split in the current folder (pubg_train.csv, plain or
    compressed, the plain one first), or None."""
    for suffix in REAL_SUFFIXES:
        path = Path(REAL_FILES[split] + suffix)
        if path.is_file():
            return path
    return None


def _data_files(options, tell):
    """(train path, test path): as given, else the tutorial's files in the current folder,
    else None for synthetic data. OptionsError for half a pair."""
    needed = ("test",) if options.model_in is not None else ("train", "test")
    if options.model_in is None and (options.train is None) != (options.test is None):
        given, missing = ("--train", "--test") if options.test is None else ("--test", "--train")
        raise OptionsError(f"{given} without {missing}: give both real files, or neither for "
                           f"synthetic data (a real file never mixes with synthetic data)")
    if options.train is not None or options.test is not None:
        return options.train, options.test
    here = {split: _real_file_here(split) for split in needed}
    found = [str(path) for path in here.values() if path is not None]
    if not found:
        return None, None
    if options.rows is not None:
        tell(f"--rows: synthetic data; {' and '.join(found)} in this folder "
             f"{'is' if len(found) == 1 else 'are'} not used")
        return None, None
    if len(found) < len(needed):
        [missing] = [REAL_FILES[split] for split, path in here.items() if path is None]
        raise OptionsError(f"{found[0]} is in this folder but {missing} is not: put {missing} "
                           f"(plain or .zip, .gz, .bz2, .xz) beside it, name both with --train "
                           f"and --test, or run where neither is for synthetic data")
    tell(f"using {' and '.join(found)} from this folder (--train and --test name other files)")
    return here.get("train"), here["test"]


def _frame(path, split, options, tell):
    from . import cache, loader  # pandas, only once data is read

    if path is None:
        rows = options.rows
        if rows is not None and split == "test":
            rows = max(1, rows // 3)
        frame = cache.cached(split, rows, options.seed)
        where = cache.cache_path(split, rows, options.seed)
        where = f"cached in {where.parent}" if where.exists() else "not cached"
        tell(f"{split}: synthetic, {_rows_and_matches(frame)} (seed {options.seed}, {where})")
        return frame
    frame = loader.load(path)
    is_train = TARGET in frame.columns
    if is_train != (split == "train"):
        has = "has a" if is_train else "has no"
        raise ValueError(f"--{split} {path} {has} {TARGET} column, so it is a "
                         f"{'training' if is_train else 'test'} file, not a {split} file")
    tell(f"{split}: {path}, {_rows_and_matches(frame)}")
    return frame


def _rows_and_matches(frame):
    return f"{_count(len(frame), 'row')} in {_count(frame['match_id'].nunique(), 'match')}"


def _count(number, noun):
    plural = "es" if noun.endswith("ch") else "s"
    return f"{number:,} {noun}{'' if number == 1 else plural}"


# --- what can be known before any work ---------------------------------------------------------

def check(options, train_path=None, test_path=None):
    """Fail in a second, not after training, on what can be known up front: options that
    do not go together, files that are missing, outputs that cannot be written, a network
    too large for the memory."""
    if options.model_in is not None:
        if not options.model_in.exists():
            raise FileNotFoundError(f"--model-in {options.model_in}: no such file")
        defaults = Options()
        trains = [option for option in ("train", "epochs", "lr", "batch_size", "shuffle",
                                        "holdout", "plot", "save_model", "max_memory")
                  if getattr(options, option) != getattr(defaults, option)]
        if trains:
            flag = "--" + trains[0].replace("_", "-")
            raise ValueError(f"{flag} is for training; --model-in predicts with a saved model "
                             f"without training (give it --test, or nothing for synthetic data)")
        if options.rows is not None and options.test is not None:
            raise ValueError("--rows sizes the synthetic data; the real --test file is used whole")
    if options.hidden is not None and options.model != "mlp":
        raise ValueError("--hidden sizes the layers of --model mlp; the linear model has none")
    if options.model == "mlp" and options.model_in is None:
        check_memory(options.hidden or DEFAULT_HIDDEN, options.max_memory)
    if options.train is not None and options.rows is not None:
        raise ValueError("--rows sizes the synthetic data; the real files are used whole")
    for option, path in (("--train", train_path), ("--test", test_path)):
        if path is not None and not path.exists():
            raise FileNotFoundError(f"{option} {path}: no such file")
    outputs = {"--plot": options.plot, "--save-model": options.save_model,
               "--out": None if options.out == STDOUT else options.out}
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
        pipeline.submission_compression(options.out)
    except ValueError as error:
        raise ValueError(f"--out {error}") from None
    if options.plot:
        plot_format(options.plot)


def check_memory(hidden, max_memory):
    """Refuse, before anything is built, a network that would take more than max_memory GB
    (None: MEMORY_SHARE of the memory available)."""
    sizes = [len(FEATURES), *hidden, 1]
    weights = weight_count(sizes)
    needed = weights * BYTES_PER_WEIGHT
    if max_memory is not None:
        limit, source = max_memory * 1e9, "--max-memory"
    else:
        available, where = available_memory()
        limit = MEMORY_SHARE * available
        source = f"{MEMORY_SHARE:.0%} of the {_gigabytes(available)} {where}"
    if needed > limit:
        raise ValueError(
            f"--hidden {','.join(map(str, hidden))}: the {' -> '.join(map(str, sizes))} "
            f"network has {weights:,} weights, which take about {_gigabytes(needed)} to build "
            f"and train, more than the {_gigabytes(limit)} allowed ({source}); give smaller "
            f"layers, or --max-memory {math.ceil(needed / 1e8) / 10:g} to allow it")


def weight_count(sizes):
    """Weights and biases of an MLP of these layer sizes (the output has no bias)."""
    return sum(n_in * n_out for n_in, n_out in zip(sizes, sizes[1:])) + sum(sizes[1:-1])


def available_memory(meminfo="/proc/meminfo"):
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


def plot_format(path) -> str:
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


# --- the outputs ------------------------------------------------------------------------------

def _render_plot(history, curve, truth, guesses, baseline, path) -> bytes:
    """The picture in the format path's extension names, rendered in memory so that a
    plotting failure writes nothing."""
    buffer = io.BytesIO()
    figure(history, curve, truth, guesses, baseline).savefig(buffer, format=plot_format(path),
                                                             dpi=100)
    return buffer.getvalue()


def figure(history, curve, truth, guesses, baseline):
    """The training loss and the held-out MAE (curve) per epoch, and predicted vs true
    placement on the held-out rows."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    drawing = Figure(figsize=(11, 4.5), layout="constrained")
    loss_axes, placement_axes = drawing.subplots(1, 2)
    epochs = range(1, len(history) + 1)
    losses = [stats.loss for stats in history]
    loss_axes.plot(epochs, losses, marker="o", label="training loss")
    loss_axes.set_xlim(0.5, len(history) + 0.5)
    loss_axes.set_ylim(0, 1.1 * max(losses))  # from zero, so that a drop reads at its true size
    loss_axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    title = "Training loss" if len(history) > 1 else "Training loss (--epochs N for a curve)"
    loss_axes.set(title=title, xlabel="epoch", ylabel="mean squared error (normalized placement)")
    if curve:  # in placements, on an axis of its own
        mae_axes = loss_axes.twinx()
        mae_axes.plot(epochs, curve, marker="s", color="tab:orange", label="held-out MAE")
        mae_axes.set_ylim(0, 1.1 * max(curve))
        mae_axes.set_ylabel("held-out MAE (placements)")
        loss_axes.legend(handles=loss_axes.get_lines() + mae_axes.get_lines(), loc="lower left")
        loss_axes.set_title(title.replace("Training loss", "Training loss and held-out MAE"))
    if len(truth):
        cells = placement_axes.hexbin(truth, guesses, gridsize=HEXBIN_GRID, bins="log", mincnt=1)
        drawing.colorbar(cells, ax=placement_axes, label="players")
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
    return drawing


def _write_outputs(placements, out, picture, plot_path, model=None):
    """Write the plot, the model ((path, loss node, input nodes, maxima, means)) and the
    submission; the plot and model are renamed into place only once the submission is
    written, so a failure leaves none of them (and deletes nothing of the user's)."""
    with contextlib.ExitStack() as outputs:
        if picture is not None:
            outputs.enter_context(_files.open_output(plot_path)).write(picture)
        if model is not None:
            path, *trained = model
            model_files.save_model(outputs.enter_context(_files.open_output(path)), *trained)
        if out == STDOUT:
            pipeline.write_submission(placements, sys.stdout.buffer)
            sys.stdout.flush()
        else:
            pipeline.write_submission(placements, out)
