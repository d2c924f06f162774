"""The tutorial's PUBG placement data: load the real files, synthesize a stand-in, run the pipeline.

The contest files (`pubg_train.csv`, `pubg_test.csv`, often zipped) cannot be downloaded, so
`load` reads them when a user has them and `synthesize` makes data with the same schema and
structure otherwise (see docs/pubg-data.md in the project's shared docs for what is known about
the real files). The small functions after that are the tutorial's pipeline, step by step:

    df = complete_rows(load("pubg_train.csv"))          # df.dropna(axis=0, how='any')
    data, maxima = normalize_train(to_array(df))         # df.iloc[:, 2:].values / max
    test = normalize_test(to_array(test_df), maxima[:-1], data.mean(axis=0)[:-1])
    placements = to_placement(predictions, maxima[-1])  # int(p * max), clipped to [1, max]
    write_submission(placements, "submission.csv")

Only numpy, pandas and the standard library are imported here; `build_network` imports the
ourdl nodes when it is called.
"""
from __future__ import annotations

import bz2
import collections
import contextlib
import csv
import gzip
import io
import lzma
import math
import os
import re
import stat
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ourdl._files import open_output

TRAIN_COLUMNS = (
    "match_id", "team_id", "game_size", "party_size", "player_assists", "player_dbno",
    "player_dist_ride", "player_dist_walk", "player_dmg", "player_kills", "player_name",
    "kill_distance_x_min", "kill_distance_x_max", "kill_distance_y_min", "kill_distance_y_max",
    "team_placement",
)
TEST_COLUMNS = TRAIN_COLUMNS[:-1]
TARGET = "team_placement"
# The tutorial's df.iloc[:, 2:] minus the target: player_name stays in, as the tutorial has it.
FEATURES = TRAIN_COLUMNS[2:-1]
KILL_DISTANCE_COLUMNS = TRAIN_COLUMNS[11:15]
FLOAT_COLUMNS = ("player_dist_ride", "player_dist_walk") + KILL_DISTANCE_COLUMNS
INT_COLUMNS = tuple(name for name in TRAIN_COLUMNS if name not in FLOAT_COLUMNS)

SPLITS = ("train", "test")
DEFAULT_ROWS = {"train": 1_500_000, "test": 500_000}
# The real training file has this many rows with kills, which is what the tutorial's dropna keeps.
COMPLETE_FRACTION = 635_716 / 1_500_000
# Part of the cache key: bump it whenever synthesize() would return different data.
GENERATOR_VERSION = 1


class PubgFormatError(ValueError):
    """A file that is not a readable pubg_train.csv / pubg_test.csv; the message names it."""


# --- loading the real files -----------------------------------------------------------------

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


# --- the synthetic stand-in -------------------------------------------------------------------
#
# A match: party_size is drawn per match, 100 players minus a few no-shows queue in, and they
# form game_size = players // party_size full teams. Each team has a latent strength; strength
# plus luck orders the teams' eliminations, which gives team_placement (a permutation of
# 1..game_size) and each team's survival time. A player lives up to the team's survival time
# (one teammate always lasts that long), spends the first minute or two in the plane and the
# parachute, and then walks, drives and fights: distances grow with time on the ground, the
# rate of kills with time on the ground and skill (team strength plus the player's own).
# Knock-downs, assists and damage follow from the kills; each kill has a distance around the
# player's own engagement range and a direction, whose x and y sides give the kill distances.

# Tuned against the statistics in the data doc; changing any of them needs a new
# GENERATOR_VERSION, or caches would serve the old data.
PARTY_SIZES = (1, 2, 4)
PARTY_SHARES = (0.2, 0.3, 0.5)      # of matches: solo, duo, squad
NO_SHOW_MEAN, NO_SHOW_MAX = 15.0, 50  # players short of 100 in a match (exponential, capped)
LUCK = 0.6                          # sd of luck next to a team strength of sd 1
MATCH_MINUTES = 30.0
WALK_METRES_PER_MINUTE = 100.0
KILL_RATE = 0.8                     # with the next two: kills average ~0.89, and ~42.4% have any
SKILL_ON_KILLS = 0.65
KILL_BURST = 0.12
ENGAGEMENT_RANGE = 2000.0           # map units (1/100 m): a typical kill gap is ~20 m
MAP_SIZE = 800_000.0


def synthesize(split: str = "train", n_rows: int | None = None, seed: int = 0) -> pd.DataFrame:
    """A DataFrame with the real file's schema, from a simple model of a battle-royale match.

    split "train" gives the 16 TRAIN_COLUMNS, "test" the 15 TEST_COLUMNS; n_rows defaults to
    the real sizes, 1,500,000 and 500,000. Rows are sorted by match_id (from 0) and team_id
    (from 1); the last match is cut off at n_rows, so its teams' placements are a subset of
    1..game_size. Exactly round(n_rows * COMPLETE_FRACTION) players have kills (635,716 of
    the default 1,500,000, as in the real file), and only they have kill distances.
    player_name is even in train and odd in test, so names never repeat across the two.
    The same (split, n_rows, seed) always gives the same frame; train and test use
    different random streams.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if n_rows is None:
        n_rows = DEFAULT_ROWS[split]
    if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows < 1:
        raise ValueError(f"n_rows must be a positive integer, not {n_rows!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    n_rows = int(n_rows)
    rng = np.random.default_rng([int(seed), SPLITS.index(split)])

    party, game = _matches(rng, n_rows)
    team_match, team_id, strength, placement = _teams(rng, game)
    team_party = party[team_match]
    team_of_player = np.repeat(np.arange(len(team_match)), team_party)[:n_rows]
    player_match = team_match[team_of_player]

    columns = {
        "match_id": player_match,
        "team_id": team_id[team_of_player],
        "game_size": game[player_match],
        "party_size": team_party[team_of_player],
    }
    columns.update(_players(rng, team_of_player, team_party, strength, placement,
                            game[team_match]))
    # Twice a shuffled row number, plus one in test: unique, and disjoint between the splits.
    columns["player_name"] = 2 * rng.permutation(n_rows) + SPLITS.index(split)
    columns["team_placement"] = placement[team_of_player]

    names = TRAIN_COLUMNS if split == "train" else TEST_COLUMNS
    return pd.DataFrame({name: columns[name].astype(
        np.float64 if name in FLOAT_COLUMNS else np.int64, copy=False) for name in names})


def _matches(rng, n_rows):
    """party_size and game_size of just enough matches to seat n_rows players."""
    # Every match seats at least 100 - NO_SHOW_MAX - 3 players, so this many always suffice.
    n_drawn = n_rows // (100 - NO_SHOW_MAX - 3) + 1
    party = rng.choice(np.array(PARTY_SIZES), size=n_drawn, p=PARTY_SHARES)
    no_shows = np.minimum(rng.exponential(NO_SHOW_MEAN, n_drawn).astype(np.int64), NO_SHOW_MAX)
    game = (100 - no_shows) // party
    n_matches = int(np.searchsorted(np.cumsum(game * party), n_rows)) + 1
    return party[:n_matches], game[:n_matches]


def _teams(rng, game):
    """For each team: its match, team_id, latent strength and placement (1 = winner)."""
    team_match = np.repeat(np.arange(len(game)), game)
    first_team = (np.cumsum(game) - game)[team_match]
    n_teams = len(team_match)
    strength = rng.standard_normal(n_teams)
    fortune = strength + LUCK * rng.standard_normal(n_teams)
    by_fortune = np.lexsort((-fortune, team_match))
    placement = np.empty(n_teams, dtype=np.int64)
    placement[by_fortune] = np.arange(n_teams) - first_team[by_fortune] + 1
    return team_match, np.arange(n_teams) - first_team + 1, strength, placement


def _players(rng, team_of_player, team_party, strength, placement, team_game):
    """The per-player columns from assists to kill distances (player_name aside)."""
    n = len(team_of_player)
    team = team_of_player
    # 0 for the first team out, 1 for the winner; eliminations thin out as the zone shrinks.
    rank = (team_game - placement) / (team_game - 1)
    team_minutes = MATCH_MINUTES * (0.04 + 0.96 * rank ** 1.5)
    # One teammate (the one with the largest draw) lasts as long as the team; the rest die earlier.
    lifespan = rng.beta(2.5, 1.0, n)
    team_starts = np.flatnonzero(np.r_[True, team[1:] != team[:-1]])
    longest = np.repeat(np.maximum.reduceat(lifespan, team_starts), np.diff(np.r_[team_starts, n]))
    share_of_team_time = lifespan / longest
    minutes = team_minutes[team] * share_of_team_time
    ground = np.maximum(minutes - rng.uniform(0.3, 1.5, n), 0.0)  # minus the plane and parachute

    walk = WALK_METRES_PER_MINUTE * ground * rng.lognormal(0.0, 0.4, n)
    # Teammates share a vehicle; a team that lives longer is more likely to find one, and drives
    # further.
    drive_odds = -3.0 + 4.0 * rank + 0.5 * (team_party > 1)
    drives = rng.random(len(rank)) < 1.0 / (1.0 + np.exp(-drive_odds))
    team_ride = np.where(drives, rng.lognormal(np.log(500.0 + 4000.0 * rank), 0.6), 0.0)
    ride = team_ride[team] * share_of_team_time * rng.lognormal(0.0, 0.3, n) * (ground > 0)

    skill = 0.6 * strength[team] + 0.8 * rng.standard_normal(n)
    kill_rate = KILL_RATE * np.exp(SKILL_ON_KILLS * skill) * (0.2 + ground / 20.0) * (ground > 0)
    # A won fight can take out more than one enemy (a whole team, say).
    fights_won = rng.poisson(kill_rate)
    kills = _with_exact_killer_count(fights_won + rng.poisson(KILL_BURST * fights_won), kill_rate)

    solo = team_party[team] == 1
    # In teams most kills start as a knock-down, and some knocks are finished by a teammate.
    dbno = np.where(solo, 0, rng.binomial(kills, 0.6) + rng.poisson(0.3 * kill_rate))
    assists = rng.poisson(np.where(solo, 0.1, 0.3) * kill_rate)
    damage = (70.0 * kills * rng.lognormal(0.0, 0.4, n) + 50.0 * dbno * rng.random(n)
              + rng.gamma(0.6, 80.0, n) * (0.2 + ground / 30.0) * (ground > 0))

    columns = {
        "player_assists": assists,
        "player_dbno": dbno,
        "player_dist_ride": np.round(ride, 6),
        "player_dist_walk": np.round(walk, 6),
        "player_dmg": np.round(damage).astype(np.int64),
        "player_kills": kills,
    }
    columns.update(_kill_distances(rng, kills))
    return columns


def _with_exact_killer_count(kills, kill_rate):
    """Nudge the fewest, least likely players so exactly COMPLETE_FRACTION have kills."""
    target = round(len(kills) * COMPLETE_FRACTION)
    killers = np.flatnonzero(kills > 0)
    excess = len(killers) - target
    kills = kills.copy()
    if excess > 0:
        kills[killers[np.argpartition(kill_rate[killers], excess - 1)[:excess]]] = 0
    elif excess < 0:
        others = np.flatnonzero(kills == 0)
        kills[others[np.argpartition(-kill_rate[others], -excess - 1)[:-excess]]] = 1
    return kills


def _kill_distances(rng, kills):
    """Smallest and largest x and y gap over each player's kills; NaN for players without."""
    n = len(kills)
    killer = kills > 0
    # Each kill happens at some distance around the player's own engagement range (weapon and
    # style), in some direction; x and y are the two sides of that distance.
    engagement_range = ENGAGEMENT_RANGE * rng.lognormal(0.0, 0.9, n)
    shooter = np.repeat(np.arange(n), kills)
    distance = engagement_range[shooter] * rng.lognormal(0.0, 0.5, len(shooter))
    direction = rng.uniform(0.0, np.pi / 2, len(shooter))
    first_kill = (np.cumsum(kills) - kills)[killer]
    columns = {}
    for axis, gaps in (("x", distance * np.cos(direction)), ("y", distance * np.sin(direction))):
        gaps = np.clip(np.round(gaps, 1), 0.1, MAP_SIZE)
        for suffix, reduce in (("min", np.minimum), ("max", np.maximum)):
            column = np.full(n, np.nan)
            column[killer] = reduce.reduceat(gaps, first_kill)
            columns[f"kill_distance_{axis}_{suffix}"] = column
    return columns


# --- the cache of synthetic data ----------------------------------------------------------

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


# --- the tutorial's pipeline -------------------------------------------------------------------

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
    """(data / maxima, maxima): divide each column by its maximum, as the seed does.

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

    The seed passes max_value[:-1] and data.mean(axis=0)[:-1]: the feature columns only.
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
    the CSV (submission.zip holds submission.csv); .gz, .bz2 and .xz compress it; anything
    else is plain CSV. Written through ourdl._files.open_output: whole or not at all.
    """
    placements = np.asarray(placements)
    if placements.ndim != 1 or placements.dtype.kind not in "iu":
        raise ValueError(f"expected a 1-D integer array of placements, got {placements.dtype} "
                         f"of shape {placements.shape}")
    compression = submission_compression(path)
    text = ("\n".join([TARGET, *map(str, placements.tolist())]) + "\n").encode("ascii")
    name = Path(path).name
    csv_name = name[:-len(Path(name).suffix)] if compression else name
    with open_output(path) as file:
        if compression == "zip":
            with zipfile.ZipFile(file, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(csv_name if csv_name.lower().endswith(".csv")
                                 else csv_name + ".csv", text)
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


Network = collections.namedtuple("Network", "x w y prediction loss")


def build_network(n_features: int = len(FEATURES), lr: float = 0.01) -> Network:
    """The tutorial's n -> 1 linear network built from ourdl nodes, exactly as the tutorial wires it.

    x[i] = Node(), w[i] = Node(Flag=1, lr=lr), m[i] = MulNode(x[i], w[i]), a chain of AddNodes
    a[i] summing the m[i] into the prediction, y = Node() and result = MSENode(prediction, y).
    Each node is named as the seed names it ("x[0]", ..., "a[11]", "y", "result").
    """
    from ourdl import AddNode, MSENode, MulNode, Node

    if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
        raise ValueError(f"n_features must be a positive integer, not {n_features!r}")
    x = [Node(name=f"x[{i}]") for i in range(n_features)]
    w = [Node(Flag=1, lr=lr, name=f"w[{i}]") for i in range(n_features)]
    m = [MulNode(Papa=x_i, Mama=w_i, name=f"m[{i}]") for i, (x_i, w_i) in enumerate(zip(x, w))]
    prediction = m[0]
    for i, m_i in enumerate(m[1:]):
        prediction = AddNode(Papa=prediction, Mama=m_i, name=f"a[{i}]")
    y = Node(name="y")
    return Network(x, w, y, prediction, MSENode(Papa=prediction, Mama=y, name="result"))


# --- a trained model, kept ---------------------------------------------------------------------

MODEL_INFO = "ourdl pubg"  # the key of what save_model keeps beside the graph
# A placement ranks a team in its match, from 1 to the number of teams: at most 100 in PUBG
# (100 players a match). A model's largest placement may be up to this, for larger games.
LARGEST_PLACEMENT = 1_000


def save_model(path, loss, maxima, means):
    """Save the trained network (its loss node, MSE(prediction, y), inputs named x[0], x[1],
    ...) with ourdl.save, and beside it what predicting needs: the feature names, and the
    training maxima and means of every column (the tutorial's max_value and data.mean(axis=0),
    target last) that normalize_test applies to test rows."""
    import ourdl

    info = {"features": list(FEATURES),
            "maxima": [float(v) for v in maxima], "means": [float(v) for v in means]}
    problem = model_problem(info["maxima"], info["means"])
    if problem is not None:  # load_model would refuse the file
        where = "save_model" if hasattr(path, "write") else path
        raise ValueError(f"{where}: cannot save this PUBG model: {problem}")
    ourdl.save(path, loss, info={MODEL_INFO: info})


def load_model(path):
    """(network, maxima, means) from a file save_model wrote; ValueError naming path, and the
    field, if it is an ourdl graph of something else or its numbers are out of range (see
    model_problem)."""
    import ourdl

    info = ourdl.load_info(path)
    model = info.get(MODEL_INFO) if isinstance(info, dict) else None
    n = len(FEATURES)
    if not (isinstance(model, dict) and model.get("features") == list(FEATURES)
            and all(isinstance(model.get(key), list) and len(model[key]) == n + 1
                    and all(type(v) in (int, float) for v in model[key])
                    for key in ("maxima", "means"))):
        raise ValueError(f"{path} is an ourdl graph but not a PUBG model saved by "
                         f"`ourdl pubg --save-model` (its {MODEL_INFO!r} information is missing "
                         f"or not for the {n} features {', '.join(FEATURES[:3])}, ...)")
    problem = model_problem(model["maxima"], model["means"])
    if problem is not None:
        raise ValueError(f"{path}: {problem}")
    loss = ourdl.load(path)
    if loss.op != "mse":
        raise ValueError(f"{path}: the saved network ends in a {loss.op} node, not the MSENode "
                         f"of a PUBG model")
    nodes = ourdl.named(loss)
    try:
        x = [nodes[f"x[{i}]"] for i in range(n)]
    except KeyError as missing:
        raise ValueError(f"{path}: the saved network has no single node named {missing}") from None
    # The tutorial's weights by their names; a deeper network's are its own.
    w = [nodes[f"w[{i}]"] for i in range(n)] if all(f"w[{i}]" in nodes for i in range(n)) else []
    network = Network(x, w, loss.Mama, loss.Papa, loss)
    return network, np.array(model["maxima"], dtype=np.float64), np.array(model["means"],
                                                                           dtype=np.float64)


def model_problem(maxima, means):
    """What makes a model's maxima and means (one number per column of to_array, as
    normalize_train gives them, team_placement last) unusable, naming the field; or None.

    JSON, and so a model file, may hold NaN, Infinity and integers too large for a float."""
    for i, (maximum, mean) in enumerate(zip(maxima, means)):
        column = (*FEATURES, TARGET)[i]
        top, average = _as_float(maximum), _as_float(mean)
        if column == TARGET and not (1 <= top <= LARGEST_PLACEMENT and top == int(top)):
            return (f"maxima[{i}], the largest {column}, is {_number(maximum)}: a placement "
                    f"is a whole number from 1 to {LARGEST_PLACEMENT:,}")
        if not (math.isfinite(top) and top != 0):
            return (f"maxima[{i}], the largest {column}, is {_number(maximum)}: the "
                    f"column is divided by it, so it must be a finite number other than 0")
        # Every value divided by the column's largest is at most 1 (at least 1 if that is
        # negative), and so is their mean, exactly in floating point too.
        if not (math.isfinite(average) and (average <= 1 if top > 0 else average >= 1)):
            side = "at most" if top > 0 else "at least"
            return (f"means[{i}], the mean of {column} divided by its largest value, is "
                    f"{_number(mean)}: it must be a finite number {side} 1")
    return None


def _as_float(number):
    try:
        return float(number)
    except OverflowError:  # an integer beyond float's range
        return math.inf if number > 0 else -math.inf


def _number(value):
    """value for a message: 5000.0 whether it came from JSON or numpy; a long integer cut."""
    return _short(repr(value if isinstance(value, int) else float(value)))
