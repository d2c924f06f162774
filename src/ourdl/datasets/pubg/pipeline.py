"""The tutorial's PUBG pipeline, step by step, and the submission it ends in:

    df = complete_rows(load("pubg_train.csv"))          # df.dropna(axis=0, how='any')
    data, maxima = normalize_train(to_array(df))         # df.iloc[:, 2:].values / max
    test = normalize_test(to_array(test_df), maxima[:-1], data.mean(axis=0)[:-1])
    placements = to_placement(predictions, maxima[-1])  # int(p * max), clipped to [1, max]
    write_submission(placements, "submission.csv")
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ourdl._files import open_output

from .schema import TARGET, TEST_COLUMNS, TRAIN_COLUMNS

if TYPE_CHECKING:  # pandas is imported only where data is read, so `ourdl --help` is quick
    import pandas as pd


def complete_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows without NaN: the tutorial's df.dropna(axis=0, how='any')."""
    return frame.dropna(axis=0, how="any")


def to_array(frame: pd.DataFrame) -> np.ndarray:
    """The columns from game_size on as float64: the tutorial's df.iloc[:, 2:].values.

    13 feature columns for a test frame, 14 (team_placement last) for a training frame.
    """
    columns = list(frame.columns)
    if columns not in (list(TRAIN_COLUMNS), list(TEST_COLUMNS)):
        raise ValueError(f"expected the columns of a PUBG train or test frame, got {columns}")
    return frame.iloc[:, 2:].to_numpy(dtype=np.float64)


def normalize_train(data: np.ndarray):
    """(data / maxima, maxima): divide each column by its maximum, as the tutorial does.

    A column that is all zeros (player_dbno in a solo-only sample, say) gets a maximum of 1
    instead of 0, so it stays 0 rather than turning into NaN; the real data has none.
    """
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or len(data) == 0:
        raise ValueError(f"expected a non-empty 2-D array, got shape {data.shape}")
    if np.isnan(data).any():
        raise ValueError("the training array has NaN; drop incomplete rows (complete_rows) first")
    maxima = data.max(axis=0)
    maxima[maxima == 0] = 1.0
    return data / maxima, maxima


def normalize_test(data: np.ndarray, maxima: np.ndarray, means: np.ndarray) -> np.ndarray:
    """data / maxima with NaN replaced by means (the normalized training means), per column.

    The tutorial passes max_value[:-1] and data.mean(axis=0)[:-1]: the feature columns only.
    """
    data = np.asarray(data, dtype=np.float64)
    maxima = np.asarray(maxima, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    if data.ndim != 2 or maxima.shape != (data.shape[1],) or means.shape != (data.shape[1],):
        raise ValueError(f"expected data of shape (rows, k) and maxima and means of shape (k,), "
                         f"got {data.shape}, {maxima.shape} and {means.shape}")
    normalized = data / maxima
    return np.where(np.isnan(normalized), means, normalized)


def to_placement(predictions: np.ndarray, max_placement: float) -> np.ndarray:
    """The tutorial's int(p * max) (truncation toward zero) clipped to [1, max], as int64."""
    predictions = np.asarray(predictions, dtype=np.float64)
    if not np.isfinite(predictions).all():
        raise ValueError("the predictions contain NaN or infinity")
    if not max_placement >= 1:
        raise ValueError(f"max_placement must be at least 1, not {max_placement!r}")
    placements = np.clip(np.trunc(predictions * max_placement), 1, int(max_placement))
    return placements.astype(np.int64)


def split_matches(frame: pd.DataFrame, fraction: float, seed: int = 0):
    """(training rows, held-out rows): round(fraction * matches) whole matches are held out.

    ValueError if that would be every match, which leaves nothing to train on.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"the holdout fraction must be in [0, 1), not {fraction!r}")
    matches = frame["match_id"].unique()
    n_held_out = round(fraction * len(matches))
    if n_held_out == len(matches) > 0:
        raise ValueError(f"a holdout fraction of {fraction} holds out all "
                         f"{len(matches):,} match{'es' * (len(matches) != 1)}, leaving none to "
                         f"train on")
    held_out = np.random.default_rng(seed).permutation(matches)[:n_held_out]
    is_held_out = frame["match_id"].isin(held_out).to_numpy()
    return frame[~is_held_out], frame[is_held_out]


# How write_submission compresses, by the file name's last suffix: what contestants upload.
_SUBMISSION_COMPRESSIONS = {".zip": "zip", ".gz": "gzip", ".bz2": "bzip2", ".xz": "xz"}
# Archives it cannot write: plain text under such a name would be rejected at upload.
_UNWRITABLE_SUFFIXES = (".7z", ".rar", ".tar", ".tgz", ".zst", ".lz4", ".lzma")


def submission_compression(path) -> str | None:
    """"zip", "gzip", "bzip2", "xz" or None (plain CSV), as path's suffix asks; ValueError for
    an archive format write_submission cannot write."""
    suffix = Path(path).suffix.lower()
    if suffix in _UNWRITABLE_SUFFIXES:
        raise ValueError(f"{path}: ourdl cannot write {suffix} files; name the submission "
                         f".csv, .zip, .csv.gz, .csv.bz2 or .csv.xz")
    return _SUBMISSION_COMPRESSIONS.get(suffix)


def write_submission(placements, path="submission.csv"):
    """Write the header team_placement and one integer per row, in test-file order.

    The contest's format, which has no id column. A name ending in .zip gives a zip holding
    the CSV under the same name (submission.zip holds submission.csv, mine.zip mine.csv);
    .gz, .bz2 and .xz compress it; anything else is plain CSV. Written through
    ourdl._files.open_output: whole or not at all. path may also be a binary file open for
    writing (sys.stdout.buffer, say), which gets the plain CSV.
    """
    placements = np.asarray(placements)
    if placements.ndim != 1 or placements.dtype.kind not in "iu":
        raise ValueError(f"expected a 1-D integer array of placements, got {placements.dtype} "
                         f"of shape {placements.shape}")
    text = ("\n".join([TARGET, *map(str, placements.tolist())]) + "\n").encode("ascii")
    if hasattr(path, "write"):
        path.write(text)
        return
    compression = submission_compression(path)
    name = Path(path).name
    with open_output(path) as file:
        if compression == "zip":
            with zipfile.ZipFile(file, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(zip_member_name(path), text)
        elif compression == "gzip":
            # The name stored inside is the user's, not the temporary file's.
            with gzip.GzipFile(filename=name, mode="wb", fileobj=file) as packed:
                packed.write(text)
        elif compression is not None:
            opener = bz2.BZ2File if compression == "bzip2" else lzma.LZMAFile
            with opener(file, "wb") as packed:
                packed.write(text)
        else:
            file.write(text)


def zip_member_name(path) -> str:
    """The name of the CSV inside the zip write_submission writes to path: the zip's own
    name with .csv for .zip (submission.zip holds submission.csv, sub.csv.zip sub.csv)."""
    stem = Path(path).name[:-len(".zip")]
    return stem if stem.lower().endswith(".csv") else stem + ".csv"
