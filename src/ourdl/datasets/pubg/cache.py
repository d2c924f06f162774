"""The cache of synthetic data: `cached` makes it once and memory-maps it afterwards."""
from __future__ import annotations

import contextlib
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ourdl._files import open_output

from .schema import FLOAT_COLUMNS, TEST_COLUMNS, TRAIN_COLUMNS
from .synthesizer import DEFAULT_ROWS, GENERATOR_VERSION, synthesize


def cache_dir() -> Path:
    """$OURDL_CACHE_DIR, else $XDG_CACHE_HOME/ourdl, else ~/.cache/ourdl."""
    if os.environ.get("OURDL_CACHE_DIR"):
        return Path(os.environ["OURDL_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "ourdl"
    return Path.home() / ".cache" / "ourdl"


def cache_path(split: str = "train", n_rows: int | None = None, seed: int = 0) -> Path:
    """Where cached(split, n_rows, seed) keeps its data."""
    if n_rows is None:
        n_rows = DEFAULT_ROWS.get(split)
    return cache_dir() / f"pubg-{split}-{n_rows}-seed{seed}-v{GENERATOR_VERSION}.npy"


# Every name the cache has ever used (.npz until the cache was memory-mapped): clean-up
# deletes these and nothing else, such as a user's pubg-my-results.npz in the same folder.
_CACHE_NAME = re.compile(r"pubg-(train|test)-[1-9][0-9]*-seed[0-9]+-v[0-9]+\.np[yz]")


def cached(split: str = "train", n_rows: int | None = None, seed: int = 0) -> pd.DataFrame:
    """synthesize(split, n_rows, seed), read from cache_path() when it was made before.

    The cache is one .npy file per (split, rows, seed, GENERATOR_VERSION), a record per row,
    memory-mapped when read; it holds no pickle, so loading it runs no code. A cache that
    cannot be written is skipped with a warning; one that cannot be read is made again.
    """
    if n_rows is None:
        n_rows = DEFAULT_ROWS.get(split)
    path = cache_path(split, n_rows, seed)
    with contextlib.suppress(OSError, ValueError):
        return _read_cache(path, split, n_rows)
    frame = synthesize(split, n_rows, seed)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open_output(path) as file:
            np.save(file, _records(frame), allow_pickle=False)
    except OSError as err:
        warnings.warn(f"could not cache the synthetic data in {path}: {err}", stacklevel=2)
        return frame
    # Data from older generators (or cache formats) is never read again.
    for entry in os.scandir(path.parent):
        if (_CACHE_NAME.fullmatch(entry.name) and entry.name != path.name
                and not entry.name.endswith(f"-v{GENERATOR_VERSION}.npy")
                and entry.is_file(follow_symlinks=False)):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
    return frame


def _records(frame):
    # Integer columns fit in 1-4 bytes; storing them narrow halves the cache.
    columns = {name: _narrowest(frame[name].to_numpy()) for name in frame.columns}
    records = np.empty(len(frame), dtype=[(name, values.dtype) for name, values in columns.items()])
    for name, values in columns.items():
        records[name] = values
    return records


def _read_cache(path, split, n_rows):
    names = TRAIN_COLUMNS if split == "train" else TEST_COLUMNS
    records = np.load(path, mmap_mode="r", allow_pickle=False)
    if records.dtype.names != names or records.shape != (n_rows,):
        raise ValueError(f"{path} does not hold {n_rows} rows of {split}")
    return pd.DataFrame({name: records[name].astype(
        np.float64 if name in FLOAT_COLUMNS else np.int64) for name in names}, copy=False)


def _narrowest(values):
    if values.dtype.kind != "i":
        return values
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= values.min() and values.max() <= info.max:
            return values.astype(dtype)
    return values
