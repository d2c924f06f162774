"""The `ourdl` command: parse the arguments, call the application, print what it says.

`ourdl pubg` runs the tutorial's PUBG application (`ourdl.datasets.pubg.app.run`). Every
failure ends in one line on stderr and a non-zero exit code (2 for options that cannot go
together, a traceback only with --debug), and no output file is written unless the whole run
succeeded. `main(argv)` returns the exit code, so tests call it in-process. Heavy imports
(pandas, matplotlib) wait until a command runs, so `ourdl --help` answers at once.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import traceback
import warnings
from pathlib import Path

import ourdl
from ourdl import _checks, _files
from ourdl.datasets.pubg import app

# --rows bounds the memory of the synthetic data, ten times the real training file being
# plenty for a quick try.
LARGEST_ROWS = 15_000_000
LARGEST_LAYER = 1024


def main(argv=None) -> int:
    """Run the `ourdl` command with argv (default sys.argv[1:]); return the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # --help, or a usage error argparse already reported
        return exit_request.code if isinstance(exit_request.code, int) else 1
    if args.command is None:  # a bare `ourdl`: what it can do
        parser.print_help(sys.stderr)
        return 2
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return args.run(args)
        except KeyboardInterrupt:
            print("ourdl: interrupted; no output was written", file=sys.stderr)
            return 130
        except app.OptionsError as error:
            print(f"ourdl: error: {error}", file=sys.stderr)
            return 2
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


def _run_pubg(args) -> int:
    fields = {field.name for field in dataclasses.fields(app.Options)}
    options = app.Options(**{name: value for name, value in vars(args).items() if name in fields})
    to_stdout = options.out == app.STDOUT
    # With --out - the submission alone goes to standard output, and the report to stderr.
    say = _Printer(args.quiet, sys.stderr if to_stdout else sys.stdout)
    # No progress bar into logs, nor beside a submission on the terminal.
    options.progress = not args.quiet and sys.stderr.isatty() and not to_stdout
    try:
        app.run(options, say)
    except BrokenPipeError:
        if not to_stdout:
            raise
        _silence(sys.stdout)
        raise ValueError("the standard output was closed before the whole submission was "
                         "written") from None
    return 0


class _Printer:
    """print for the report: a line at a time, flushed, so that a pipe sees each epoch as it
    ends. Once the reader has gone (`ourdl pubg | head`) it falls silent and the run goes on
    to write its files: the report is a courtesy, the submission is the point."""

    def __init__(self, quiet, stream):
        self.quiet = quiet
        self.stream = stream

    def __call__(self, line):
        if self.quiet:
            return
        try:
            print(line, file=self.stream, flush=True)
        except BrokenPipeError:
            self.quiet = True
            _silence(self.stream)


def _silence(stream):
    """Send what is still buffered for a closed pipe to /dev/null: it would fail again when
    Python flushes the stream at exit."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


# --- arguments ---------------------------------------------------------------------------

def _checked(check, kind=int, description="a whole number", **limits):
    """An argparse type: text parsed as kind, then held to check (a _checks validator),
    whose message loses the option's name, since argparse puts it in front."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:  # also int()'s limit of 4,300 digits
            raise argparse.ArgumentTypeError(f"{_shown(text)!r} is not {description}") from None
        try:
            return check("value", value, **limits)
        except (TypeError, ValueError) as error:
            raise argparse.ArgumentTypeError(str(error).removeprefix("value ")) from None
    return parse


_count = _checked(_checks.count, most=_checks.LARGEST_COUNT)
_seed = _checked(_checks.count, least=0, most=_checks.LARGEST_COUNT)
_rows = _checked(_checks.count, most=LARGEST_ROWS)
_layer = _checked(_checks.count, most=LARGEST_LAYER)
_positive_number = _checked(_checks.positive_number, float, "a number")
_fraction = _checked(_checks.fraction, float, "a number")


def _layer_sizes(text):
    return tuple(_layer(size.strip()) for size in text.split(","))


def _output_path(text):
    """An argparse type: Path(text), once text is known not to end in a slash (Path would
    drop it, and write a file where the user named a folder)."""
    try:
        _files.check_name(text)
    except IsADirectoryError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return Path(text)


def _shown(text, limit=30):
    """text, cut short so that a pasted megabyte does not become a megabyte of message."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _parser():
    parser = argparse.ArgumentParser(
        prog="ourdl",
        description="ourdl, a teaching-grade autograd framework: the tutorial's Papa/Mama "
                    "nodes, compiled. Run `ourdl COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"ourdl {ourdl.__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    pubg = commands.add_parser(
        "pubg", help="train the tutorial's PUBG placement model and write a submission",
        description="The tutorial's PUBG placement application: drop the rows without kill "
                    "distances, divide each column by its maximum, train the tutorial's model "
                    "(13 features -> 1, plain SGD, built of ourdl nodes; or with --model mlp a "
                    "deeper network, with --optimizer another rule), report the mean "
                    "absolute error on held-out matches, predict the test rows and write the "
                    "submission: the header team_placement and one whole number per test row, "
                    "in the test file's order (the contest's format has no id column). The "
                    "real files are --train and --test (both, or neither), else "
                    "pubg_train.csv and pubg_test.csv (plain, .zip, .gz, .bz2 or .xz) in the "
                    "current folder, where the tutorial unzips them; without them it "
                    "synthesizes data with the real files' columns and sizes (1,500,000 + "
                    "500,000 rows) and caches it in $OURDL_CACHE_DIR, else "
                    "$XDG_CACHE_HOME/ourdl, else ~/.cache/ourdl.")
    pubg.set_defaults(run=_run_pubg)
    pubg.add_argument("--train", metavar="PATH", type=Path,
                      help="the real pubg_train.csv: plain, .zip, .gz, .bz2 or .xz (default: "
                           "pubg_train.csv, zipped or not, if it is in the current folder)")
    pubg.add_argument("--test", metavar="PATH", type=Path,
                      help="the real pubg_test.csv, in the same formats")
    pubg.add_argument("--model", choices=("linear", "mlp"), default="linear",
                      help="linear: the tutorial's model, 13 weights starting at 0 (the "
                           "default); mlp: a network with --hidden layers of tanh units")
    pubg.add_argument("--hidden", metavar="SIZES", type=_layer_sizes,
                      help=f"the hidden layers of --model mlp, comma-separated (default "
                           f"{','.join(map(str, app.DEFAULT_HIDDEN))}; each at most "
                           f"{LARGEST_LAYER:,}); each weight takes about "
                           f"{app.BYTES_PER_WEIGHT / 1000:.1f} kB, and a network that would take "
                           f"more than --max-memory is refused before anything is built")
    pubg.add_argument("--max-memory", metavar="GB", type=_positive_number,
                      help="the most memory, in GB, that the --model mlp network may take "
                           "(default: half the memory available when the command starts, "
                           "MemAvailable in /proc/meminfo)")
    pubg.add_argument("--optimizer", choices=("sgd", "momentum", "adam"), default="sgd",
                      help="how each weight steps with --lr: sgd (the tutorial's), momentum "
                           "(beta 0.9) or adam (torch.optim.Adam's rule)")
    pubg.add_argument("--epochs", metavar="N", type=_count, default=1,
                      help="passes over the training rows (default 1, as in the tutorial)")
    pubg.add_argument("--lr", metavar="RATE", type=_positive_number, default=0.01,
                      help="learning rate of every weight (default 0.01, as in the tutorial)")
    pubg.add_argument("--batch-size", metavar="N", type=_count, default=1,
                      help="samples per weight update (default 1: per-sample SGD, as in the "
                           "tutorial)")
    pubg.add_argument("--shuffle", action="store_true",
                      help="visit the training rows in a new random order each epoch "
                           "(default: file order, as in the tutorial)")
    pubg.add_argument("--seed", metavar="N", type=_seed, default=0,
                      help="random seed of the synthetic data, the held-out matches and the "
                           "shuffling (default 0)")
    pubg.add_argument("--holdout", metavar="FRACTION", type=_fraction, default=0.1,
                      help="fraction of the training matches held out to measure the error "
                           "(default 0.1; 0 trains on every match and skips the measurement)")
    pubg.add_argument("--rows", metavar="N", type=_rows,
                      help="synthesize N training rows and N/3 test rows instead of the real "
                           f"files' sizes, for a quick try (at most {LARGEST_ROWS:,})")
    pubg.add_argument("--out", metavar="PATH", type=_output_path,
                      default=Path("submission.csv"),
                      help="where to write the submission (default ./submission.csv); "
                           "NAME.zip writes a zip holding NAME.csv (submission.zip holds "
                           "submission.csv), .gz, .bz2 or .xz a compressed CSV; - writes the "
                           "CSV to standard output, and the report to stderr")
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


