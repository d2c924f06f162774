"""Reading the real pubg_train.csv and pubg_test.csv: plain, compressed or zipped, checked.

Every problem is a PubgFormatError (a ValueError) naming the file and saying what is wrong,
in a short message; the header is checked before the rest is read.
"""
from __future__ import annotations

import bz2
import contextlib
import csv
import gzip
import io
import lzma
import os
import stat
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from .schema import INT_COLUMNS, KILL_DISTANCE_COLUMNS, TARGET, TEST_COLUMNS, TRAIN_COLUMNS


class PubgFormatError(ValueError):
    """A file that is not a readable pubg_train.csv / pubg_test.csv; the message names it."""


# The real pubg_train.csv is 1.5 million lines of about 75 bytes and a 250-byte header; these
# limits are well above that, and keep a zip bomb or an endless file from filling the memory.
MAX_TEXT_BYTES = 512 << 20
MAX_LINE_BYTES = 64 << 10
_CHUNK_BYTES = 1 << 20

# What is compressed is told by its first bytes, so a renamed file reads too.
_COMPRESSED = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"),
               (b"\x28\xb5\x2f\xfd", "zstd"))
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
# Decompressors raise all of these for damaged data, zipfile also RuntimeError (a password
# is needed) and NotImplementedError (a method it lacks) when not checked first.
_READ_ERRORS = (OSError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile,
                zlib.error, lzma.LZMAError)


def load(path) -> pd.DataFrame:
    """Read pubg_train.csv or pubg_test.csv: plain, compressed (.gz, .bz2, .xz; .zst with the
    zstandard package), or the one CSV file inside a .zip.

    Train or test is told by the header: the 16 TRAIN_COLUMNS or the 15 TEST_COLUMNS, exactly,
    in order, comma-separated; every line has as many fields. Integer columns come back as
    int64, the distances as float64 (NaN only in the kill distances). Raises
    FileNotFoundError for a missing file and PubgFormatError (a ValueError) for anything else
    wrong, with the file name and the problem in a short message. The header is checked
    before the rest is read, and at most MAX_TEXT_BYTES of text are read.
    """
    path = Path(path)
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    if stat.S_ISDIR(status.st_mode):
        raise PubgFormatError(f"{path}: is a directory, not a CSV or zip file")
    if not stat.S_ISREG(status.st_mode):
        # A device or a pipe may never end (/dev/zero); a file has a size to check.
        raise PubgFormatError(f"{path}: is not a regular file; give a CSV or zip file")
    with open(path, "rb") as file:
        name = str(path)
        try:
            with _decompressed(file, path) as (name, stream):
                raw, columns = _read_text(stream, name)
        except _READ_ERRORS as error:
            problem = ("not a readable zip archive, maybe truncated"
                       if isinstance(error, zipfile.BadZipFile) else
                       "could not be read; it is damaged or truncated")
            reason = _short(str(error) or type(error).__name__)
            raise PubgFormatError(f"{name}: {problem} ({reason})") from None
    return _parse(raw, columns, name)


@contextlib.contextmanager
def _decompressed(file, path):
    """(the name for messages, a binary stream of the CSV text) of an open file."""
    magic = file.read(6)
    file.seek(0)
    if magic.startswith(b"PK") or path.suffix.lower() == ".zip":
        with zipfile.ZipFile(file) as archive:
            info = _zip_member(archive, path)
            with archive.open(info) as stream:
                yield f"{path}:{info.filename}", stream
        return
    kind = next((kind for start, kind in _COMPRESSED if magic.startswith(start)), None)
    if kind is None:
        if os.fstat(file.fileno()).st_size > MAX_TEXT_BYTES:
            raise _too_big(str(path))
        yield str(path), file
    elif kind == "zstd":
        try:
            import zstandard
        except ImportError:
            raise PubgFormatError(f"{path}: is zstd-compressed; pip install zstandard, or "
                                  f"decompress it first (zstd -d)") from None
        with zstandard.ZstdDecompressor().stream_reader(file) as stream:
            yield str(path), stream
    else:
        opener = {"gzip": gzip.GzipFile, "bzip2": bz2.BZ2File, "xz": lzma.LZMAFile}[kind]
        with opener(fileobj=file) if kind == "gzip" else opener(file) as stream:
            yield str(path), stream


def _zip_member(archive, path):
    # macOS zips carry "__MACOSX/._name.csv" resource forks next to the real file.
    members = [info for info in archive.infolist()
               if not info.is_dir() and info.filename.lower().endswith(".csv")
               and not info.filename.startswith("__MACOSX/")]
    if len(members) != 1:
        found = ", ".join(_short(info.filename) for info in members[:5]) or "none"
        more = ", ..." if len(members) > 5 else ""
        raise PubgFormatError(f"{path}: expected exactly one CSV file in the zip, "
                              f"found {len(members)} ({found}{more})")
    [info] = members
    name = f"{path}:{info.filename}"
    if info.flag_bits & 0x1:
        raise PubgFormatError(f"{name}: is encrypted; unzip it with its password and give "
                              f"the CSV file")
    if info.compress_type not in _ZIP_METHODS:
        raise PubgFormatError(f"{name}: is compressed with zip method {info.compress_type}, "
                              f"which Python cannot read; unzip it and give the CSV file")
    if info.file_size > MAX_TEXT_BYTES:  # a zip bomb says so up front (zipfile holds it to it)
        raise _too_big(name)
    return info


def _too_big(name):
    return PubgFormatError(f"{name}: holds more than {MAX_TEXT_BYTES >> 20} MiB of text, far "
                           f"more than the real pubg_train.csv (about 110 MB); not read")


def _read_text(stream, name):
    """(the whole text, the columns its header names): the header checked before the rest
    is read, the rest read up to MAX_TEXT_BYTES and without lines longer than MAX_LINE_BYTES."""
    head = stream.read(MAX_LINE_BYTES)
    line_end = _first_line_end(head)
    if line_end < 0 and len(head) == MAX_LINE_BYTES:
        raise PubgFormatError(f"{name}: the first line is longer than {MAX_LINE_BYTES >> 10} "
                              f"KiB, so it is not the header of a PUBG CSV file")
    if not head.strip():
        raise PubgFormatError(f"{name}: the file is empty")
    columns = _check_header(_header_fields(head[:line_end if line_end >= 0 else len(head)],
                                           name), name)
    chunks, size = [head], len(head)
    while chunk := stream.read(_CHUNK_BYTES):
        size += len(chunk)
        if size > MAX_TEXT_BYTES:
            raise _too_big(name)
        if b"\n" not in chunk and b"\r" not in chunk:
            raise PubgFormatError(f"{name}: has a line longer than {_CHUNK_BYTES >> 20} MiB "
                                  f"(after byte {size - len(chunk):,}); not a PUBG CSV file")
        chunks.append(chunk)
    return b"".join(chunks), columns


def _first_line_end(text: bytes) -> int:
    ends = [i for i in (text.find(b"\n"), text.find(b"\r")) if i >= 0]
    return min(ends, default=-1)


def _header_fields(line: bytes, name):
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PubgFormatError(f"{name}: not a text CSV file (it is not UTF-8)") from None
    return next(csv.reader([text]), [])


def _parse(raw: bytes, columns, name: str) -> pd.DataFrame:
    _check_field_counts(raw, len(columns), name)
    try:
        frame = pd.read_csv(io.BytesIO(raw), low_memory=False)
    except pd.errors.ParserError as err:
        reason = _short(str(err).strip().splitlines()[-1])
        raise PubgFormatError(f"{name}: not a well-formed CSV file ({reason})") from None
    except UnicodeDecodeError:
        raise PubgFormatError(f"{name}: not a text CSV file (it is not UTF-8)") from None
    if frame.empty:
        raise PubgFormatError(f"{name}: has a header but no data rows")
    return pd.DataFrame({column: _numeric(frame[column], column, name) for column in columns})


def _check_header(header, name):
    if header == list(TRAIN_COLUMNS):
        return TRAIN_COLUMNS
    if header == list(TEST_COLUMNS):
        return TEST_COLUMNS
    kinds = {TRAIN_COLUMNS: "pubg_train.csv", TEST_COLUMNS: "pubg_test.csv"}
    is_train = TARGET in header or len(header) > len(TEST_COLUMNS)
    expected = TRAIN_COLUMNS if is_train else TEST_COLUMNS
    kind = kinds[expected]
    text = ",".join(header)
    for separator, called in ((";", "semicolons"), ("\t", "tabs"), ("|", "vertical bars")):
        if len(header) == 1 and text.count(separator) >= len(TEST_COLUMNS) - 1:
            raise PubgFormatError(f"{name}: the fields are separated by {called}, not commas; "
                                  f"save it comma-separated (pandas: df.to_csv(path, index=False))")
    for columns in kinds:
        if [column.strip() for column in header] == list(columns):
            raise PubgFormatError(f"{name}: the column names have spaces around them; a "
                                  f"{kinds[columns]} header is {','.join(columns)}")
        if header[1:] == list(columns) and header[0] in ("", "Unnamed: 0", "index"):
            raise PubgFormatError(f"{name}: the first column, {header[0]!r}, looks like a "
                                  f"pandas index; save the file with df.to_csv(path, "
                                  f"index=False), or drop that column")
    missing = [column for column in expected if column not in header]
    unexpected = [column for column in header if column not in expected]
    if missing or unexpected:
        problems = []
        if missing:
            problems.append("missing column(s) " + _listed(missing))
        if unexpected:
            problems.append("unexpected column(s) " + _listed(unexpected))
        problem = "; ".join(problems)
    else:
        position = next(i for i, (got, want) in enumerate(zip(header, expected)) if got != want)
        problem = (f"columns out of order: column {position + 1} is {header[position]!r}, "
                   f"expected {expected[position]!r}")
    raise PubgFormatError(f"{name}: {problem} (a {kind} has the {len(expected)} columns "
                          f"{', '.join(expected)})")


def _listed(names, shown=5):
    listed = ", ".join(repr(_short(name)) for name in names[:shown])
    return listed + (f" and {len(names) - shown:,} more" if len(names) > shown else "")


def _short(text, limit=40):
    return text if len(text) <= limit else text[:limit] + "..."


def _check_field_counts(raw: bytes, n_columns: int, name: str):
    """Every line has n_columns fields: pandas pads a short line with NaN, and a test row cut
    short would pass as a player without kills. Blank lines are skipped, as pandas does."""
    if b'"' in raw:  # quoted fields may hold commas and line breaks: let csv count them
        lines = csv.reader(io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8", newline=""))
        try:
            bad = next(((lines.line_num, len(fields)) for fields in lines
                        if fields and len(fields) != n_columns), None)
        except (UnicodeDecodeError, csv.Error):
            return  # pandas names these
        if bad is not None:
            last = lines.line_num == bad[0] and next(lines, None) is None
            _field_count_error(name, *bad, n_columns, last)
        return
    text = np.frombuffer(raw, dtype=np.uint8)
    # CR-only files (old Mac) end lines in "\r"; "\r\n" files leave a "\r" on each line.
    newline = b"\n" if b"\n" in raw else b"\r"
    ends = np.flatnonzero(text == newline[0])
    if len(ends) == 0 or ends[-1] != len(raw) - 1:
        ends = np.append(ends, len(raw))  # the last line has no line break
    starts = np.r_[0, ends[:-1] + 1]
    commas = np.add.reduceat(text == ord(","), starts, dtype=np.int64)
    commas[starts == ends] = n_columns - 1  # reduceat gives an empty line its next byte
    for line in np.flatnonzero(commas != n_columns - 1):
        if raw[starts[line]:ends[line]].strip():  # a blank line has no fields to miss
            _field_count_error(name, int(line) + 1, int(commas[line]) + 1, n_columns,
                               line == len(ends) - 1)


def _field_count_error(name, line, n_fields, n_columns, is_last):
    where = f"line {line:,}, the last line," if is_last else f"line {line:,}"
    hint = "; the file looks truncated" if is_last and n_fields < n_columns else ""
    raise PubgFormatError(f"{name}: {where} has {n_fields} field{'s' * (n_fields != 1)} "
                          f"instead of {n_columns}{hint}")


def _numeric(column: pd.Series, column_name: str, name: str) -> np.ndarray:
    """The column as int64 (INT_COLUMNS) or float64; PubgFormatError at its first bad cell."""
    def fail(bad_rows, problem):
        row = int(np.flatnonzero(bad_rows)[0])
        value = column.iloc[row]
        shown = repr(value) if isinstance(value, str) else value
        raise PubgFormatError(f"{name}: data row {row + 1}: {problem.format(shown)} "
                              f"in column {column_name}")

    is_int_column = column_name in INT_COLUMNS
    if pd.api.types.is_integer_dtype(column):
        # Kept as integers all the way: ids beyond 2**53 would not survive a float64.
        if column.dtype == np.uint64:
            fail(column.to_numpy() > np.iinfo(np.int64).max, "{} is too large")
        values = column.to_numpy(dtype=np.int64)
        return values if is_int_column else values.astype(np.float64)
    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        # Text (pandas also turns True/False into booleans): find the first cell that is no number.
        numbers = pd.to_numeric(column.astype(str), errors="coerce")
        is_text = (numbers.isna() & column.notna()).to_numpy()
        if is_text.any():
            fail(is_text, "{} is not a number")
        values = numbers.to_numpy(dtype=np.float64)
    else:
        values = column.to_numpy(dtype=np.float64)
    if column_name not in KILL_DISTANCE_COLUMNS and np.isnan(values).any():
        fail(np.isnan(values), "no value")
    if np.isinf(values).any():
        fail(np.isinf(values), "{} is not finite")
    if not is_int_column:
        return values
    if (values != np.round(values)).any():
        fail(values != np.round(values), "{} is not a whole number")
    if (np.abs(values) >= 2.0 ** 63).any():
        fail(np.abs(values) >= 2.0 ** 63, "{} is too large")
    return values.astype(np.int64)
