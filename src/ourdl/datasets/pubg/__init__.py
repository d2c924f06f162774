"""The tutorial's PUBG placement data, and the `ourdl pubg` application built on it.

The contest files (`pubg_train.csv`, `pubg_test.csv`, often zipped) cannot be downloaded, so
`load` reads them when a user has them and `synthesize` makes data with the same columns,
sizes and structure otherwise (docs/pubg-data.md: what is known about the real files, and
how the synthetic data follows them). One module per job:

    schema       the columns of the two files
    loader       load: the real files, plain, compressed or zipped, checked
    synthesizer  synthesize: the synthetic stand-in
    cache        cached: synthetic data made once, memory-mapped after that
    pipeline     the tutorial's steps, from complete_rows to write_submission
    model        save_model / load_model: a trained network and its normalization in a file
    app          run(Options()) -> Report: the whole application, as `ourdl pubg` runs it

The names below are the package's public face: `from ourdl.datasets import pubg` and then
`pubg.load(...)`, `pubg.synthesize(...)`, ...
"""
import importlib

# Each public name and the module it lives in. They are imported on first use, so that
# `ourdl --help` and the app's option checks do not wait for pandas.
_HOMES = {
    "schema": ("TRAIN_COLUMNS", "TEST_COLUMNS", "TARGET", "FEATURES", "KILL_DISTANCE_COLUMNS",
               "FLOAT_COLUMNS", "INT_COLUMNS"),
    "loader": ("load", "PubgFormatError", "MAX_TEXT_BYTES", "MAX_LINE_BYTES"),
    "synthesizer": ("synthesize", "SPLITS", "DEFAULT_ROWS", "COMPLETE_FRACTION",
                    "GENERATOR_VERSION"),
    "cache": ("cached", "cache_dir", "cache_path"),
    "pipeline": ("complete_rows", "to_array", "normalize_train", "normalize_test",
                 "to_placement", "split_matches", "submission_compression", "write_submission"),
    "model": ("save_model", "load_model", "model_problem", "Network", "MODEL_INFO",
              "LARGEST_PLACEMENT"),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}
__all__ = list(_HOME)


_MODULES = (*_HOMES, "app")


def __getattr__(name):
    if name in _MODULES:  # pubg.app, pubg.loader, ...
        return importlib.import_module(f".{name}", __name__)
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_HOME) | set(_MODULES))
