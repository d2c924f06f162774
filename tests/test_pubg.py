"""ourdl.datasets.pubg: the synthetic data's structure, the loader, and the tutorial's pipeline."""
import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from ourdl import _files
from ourdl.datasets import pubg

from helpers import REAL_CSV, REAL_ROWS, REAL_TEST_CSV

@pytest.fixture(scope="module")
def train():
    return pubg.synthesize("train", 30_000, seed=3)


@pytest.fixture(scope="module")
def test_frame():
    return pubg.synthesize("test", 10_000, seed=3)


def whole_matches(frame):
    """Drop the last match, which synthesize cuts off at n_rows."""
    return frame[frame["match_id"] < frame["match_id"].max()]


# --- the synthetic data ------------------------------------------------------------------

def test_schema_and_dtypes(train, test_frame):
    assert list(train.columns) == list(pubg.TRAIN_COLUMNS) and len(train.columns) == 16
    assert list(test_frame.columns) == list(pubg.TEST_COLUMNS) and len(test_frame.columns) == 15
    assert train.shape == (30_000, 16) and test_frame.shape == (10_000, 15)
    for frame in (train, test_frame):
        for name in frame.columns:
            expected = np.float64 if name in pubg.FLOAT_COLUMNS else np.int64
            assert frame[name].dtype == expected, name
    assert pubg.FEATURES == pubg.TRAIN_COLUMNS[2:15] and pubg.FEATURES[0] == "game_size"
    assert "player_name" in pubg.FEATURES and pubg.TARGET == "team_placement"


def test_default_sizes_give_the_tutorials_array():
    frame = pubg.synthesize("train")
    assert frame.shape == (1_500_000, 16)
    # The tutorial prints (635716, 14) after dropna and iloc[:, 2:].
    assert pubg.to_array(pubg.complete_rows(frame)).shape == (635_716, 14)
    assert frame["player_kills"].mean() == pytest.approx(0.89, abs=0.05)


def test_nan_exactly_in_kill_distances_of_players_without_kills(train, test_frame):
    for frame in (train, test_frame):
        killer = frame["player_kills"].to_numpy() > 0
        for name in frame.columns:
            missing = frame[name].isna().to_numpy()
            if name in pubg.KILL_DISTANCE_COLUMNS:
                np.testing.assert_array_equal(missing, ~killer, err_msg=name)
            else:
                assert not missing.any(), name
        killers = frame[killer]
        for axis in "xy":
            smallest = killers[f"kill_distance_{axis}_min"].to_numpy()
            largest = killers[f"kill_distance_{axis}_max"].to_numpy()
            assert (smallest > 0).all() and (smallest <= largest).all()
            assert (largest > smallest).any()  # two kills rarely share a distance
            # one decimal, and right-skewed
            np.testing.assert_allclose(np.round(largest * 10), largest * 10, rtol=0, atol=1e-6)
            assert largest.mean() > 1.3 * np.median(largest)
        single = killers[killers["player_kills"] == 1]
        np.testing.assert_array_equal(single["kill_distance_x_min"], single["kill_distance_x_max"])


def test_complete_fraction_matches_the_real_file(train):
    assert len(pubg.complete_rows(train)) == round(30_000 * 635_716 / 1_500_000)
    for n_rows in (1, 2, 3, 7):
        frame = pubg.synthesize("train", n_rows)
        assert len(frame) == n_rows
        assert len(frame.dropna()) == round(n_rows * pubg.COMPLETE_FRACTION)


def test_rows_sorted_by_match_then_team(train):
    match = train["match_id"].to_numpy()
    team = train["team_id"].to_numpy()
    assert match[0] == 0 and team[0] == 1
    assert set(np.diff(match)) <= {0, 1}
    same_match = np.diff(match) == 0
    # inside a match team_id counts up by one; a new match starts at team 1
    assert set(np.diff(team)[same_match]) <= {0, 1}
    assert (team[1:][~same_match] == 1).all()


def test_placement_rules(train):
    frame = whole_matches(train)
    teams = frame.groupby(["match_id", "team_id"])
    assert (teams["team_placement"].nunique() == 1).all()  # teammates share a placement
    assert (teams.size() == teams["party_size"].first()).all()  # full teams of party_size
    assert set(frame["party_size"].unique()) == {1, 2, 4}
    by_match = teams.first().groupby("match_id")
    for match_id, match in by_match:
        game_size = match["game_size"].iloc[0]
        assert (match["game_size"] == game_size).all()
        assert sorted(match["team_placement"]) == list(range(1, game_size + 1)), match_id
    placement = train["team_placement"]
    assert ((placement >= 1) & (placement <= train["game_size"])).all()


def test_knock_downs_only_outside_solo(train):
    assert (train.loc[train["party_size"] == 1, "player_dbno"] == 0).all()
    assert train.loc[train["party_size"] > 1, "player_dbno"].max() > 0


def test_player_names_unique_across_train_and_test(train, test_frame):
    names = np.concatenate([train["player_name"], test_frame["player_name"]])
    assert len(np.unique(names)) == len(names)


def test_deterministic_per_seed_and_split():
    pd.testing.assert_frame_equal(pubg.synthesize("train", 2_000, seed=5),
                                  pubg.synthesize("train", 2_000, seed=5))
    other_seed = pubg.synthesize("train", 2_000, seed=6)
    assert not pubg.synthesize("train", 2_000, seed=5).equals(other_seed)
    train_walk = pubg.synthesize("train", 2_000, seed=5)["player_dist_walk"].to_numpy()
    test_walk = pubg.synthesize("test", 2_000, seed=5)["player_dist_walk"].to_numpy()
    assert not np.array_equal(train_walk, test_walk)  # different random streams


def test_distributions_and_correlations_are_realistic():
    frame = pubg.synthesize("train", 200_000, seed=1)
    kills = frame["player_kills"]
    assert kills.median() == 0 and kills.quantile(0.75) == 1
    assert 0.8 < kills.mean() < 1.0 and 1.3 < kills.std() < 1.8
    assert 80 < frame["player_dmg"].mean() < 140
    correlation = frame.drop(columns=["match_id", "team_id", "player_name"]).corr()
    assert correlation.loc["player_kills", "player_dmg"] > 0.8
    assert correlation.loc["player_kills", "player_dbno"] > 0.6
    assert correlation.loc["game_size", "party_size"] < -0.8
    for name in ("player_dist_walk", "player_dist_ride", "player_kills", "player_dmg"):
        assert correlation.loc[name, "team_placement"] < -0.2, name  # more of it, better rank
    assert correlation.loc["game_size", "team_placement"] > 0.3
    assert correlation.loc["kill_distance_x_min", "kill_distance_y_min"] > 0.3


def test_features_carry_signal_for_the_tutorials_linear_model():
    frame = pubg.synthesize("train", 100_000, seed=2)
    training, held_out = pubg.split_matches(frame, 0.2, seed=0)
    data, maxima = pubg.normalize_train(pubg.to_array(pubg.complete_rows(training)))
    weights = np.linalg.lstsq(data[:, :-1], data[:, -1], rcond=None)[0]  # no intercept, as the tutorial
    features = pubg.normalize_test(pubg.to_array(held_out)[:, :-1], maxima[:-1],
                                   data.mean(axis=0)[:-1])
    truth = held_out[pubg.TARGET].to_numpy()
    model_error = np.abs(pubg.to_placement(features @ weights, maxima[-1]) - truth).mean()
    mean_error = np.abs(training[pubg.TARGET].mean() - truth).mean()
    assert model_error < 0.7 * mean_error, (model_error, mean_error)


@pytest.mark.parametrize("split, n_rows, seed", [
    ("valid", None, 0), ("train", 0, 0), ("train", 2.5, 0), ("train", 10, -1), ("test", True, 0),
])
def test_synthesize_rejects_bad_arguments(split, n_rows, seed):
    with pytest.raises(ValueError):
        pubg.synthesize(split, n_rows, seed)


# --- the loader ------------------------------------------------------------------------------

def write(path, text):
    path.write_text(text)
    return path


def write_zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def test_load_the_real_rows(tmp_path):
    frame = pubg.load(write(tmp_path / "pubg_train.csv", REAL_CSV))
    assert list(frame.columns) == list(pubg.TRAIN_COLUMNS)
    assert frame.shape == (5, 16)
    assert frame["player_dist_ride"].iloc[0] == 4984.549
    assert frame["player_name"].tolist() == [101, 102, 103, 104, 105]
    assert frame["team_placement"].tolist() == [5, 5, 49, 49, 34]
    assert frame.loc[0, list(pubg.KILL_DISTANCE_COLUMNS)].tolist() == [1689.9, 3992.9, 137.0, 819.8]
    assert frame[list(pubg.KILL_DISTANCE_COLUMNS)].iloc[1:].isna().all().all()
    assert frame.dtypes.to_dict() == pubg.synthesize("train", 10).dtypes.to_dict()
    # The tutorial's pipeline on them: one complete row.
    assert pubg.to_array(pubg.complete_rows(frame)).shape == (1, 14)


def test_load_a_test_file_and_zips(tmp_path):
    test_frame = pubg.load(write(tmp_path / "pubg_test.csv", REAL_TEST_CSV))
    assert list(test_frame.columns) == list(pubg.TEST_COLUMNS)
    from_csv = pubg.load(write(tmp_path / "pubg_train.csv", REAL_CSV))
    zipped = write_zip(tmp_path / "pubg_train.csv.zip", {"pubg_train.csv": REAL_CSV})
    pd.testing.assert_frame_equal(pubg.load(zipped), from_csv)
    # macOS's resource forks are not a second CSV
    mac = write_zip(tmp_path / "mac.zip", {"pubg_train.csv": REAL_CSV,
                                           "__MACOSX/._pubg_train.csv": "junk"})
    pd.testing.assert_frame_equal(pubg.load(mac), from_csv)


def test_load_round_trips_synthetic_data(tmp_path):
    frame = pubg.synthesize("train", 500, seed=4)
    frame.to_csv(tmp_path / "train.csv", index=False)
    pd.testing.assert_frame_equal(pubg.load(tmp_path / "train.csv"), frame)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv: no such file"):
        pubg.load(tmp_path / "nope.csv")


def cells():
    """REAL_CSV as rows of cells, the header first."""
    return [line.split(",") for line in REAL_CSV.splitlines()]


def as_csv(rows):
    return "\n".join(",".join(row) for row in rows) + "\n"


def with_cell(data_row, column, value):
    rows = cells()
    rows[data_row][pubg.TRAIN_COLUMNS.index(column)] = value
    return as_csv(rows)


def with_header(header):
    return as_csv([header] + cells()[1:])


def without_column(column):
    i = pubg.TRAIN_COLUMNS.index(column)
    return as_csv([row[:i] + row[i + 1:] for row in cells()])


def bad_file_cases():
    header = list(pubg.TRAIN_COLUMNS)
    renamed = ["kills" if name == "player_kills" else name for name in header]
    swapped = header[:2] + [header[3], header[2]] + header[4:]
    assists_as_booleans = [row[:4] + [str(row[4] != "0")] + row[5:] for row in cells()[1:]]
    return {
        "empty": ("", "is empty"),
        "header only": (",".join(header) + "\n", "no data rows"),
        "renamed column": (with_header(renamed),
                           "missing column.*'player_kills'.*unexpected column.*'kills'"),
        "missing column": (without_column("player_dmg"), "missing column.*'player_dmg'"),
        "swapped columns": (with_header(swapped),
                            "out of order: column 3 is 'party_size', expected 'game_size'"),
        "text in a number column": (with_cell(1, "player_dmg", "lots"),
                                    "data row 1: 'lots' is not a number in column player_dmg"),
        "unknown player names": (REAL_ROWS.format(*"?????"),
                                 "data row 1: '\\?' is not a number in column player_name"),
        "fraction in an int column": (with_cell(1, "player_kills", "2.5"),
                                      "data row 1: 2.5 is not a whole number in column player_kills"),
        "empty int cell": (with_cell(2, "player_kills", ""),
                           "data row 2: no value in column player_kills"),
        "infinite distance": (with_cell(1, "kill_distance_x_max", "inf"),
                              "data row 1: inf is not finite in column kill_distance_x_max"),
        "true and false": (as_csv([header] + assists_as_booleans),
                           "data row 1: False is not a number in column player_assists"),
        "huge id": (with_cell(1, "player_name", "99999999999999999999"),
                    "is too large in column player_name"),
        "truncated": (REAL_CSV[:-12], "line 6, the last line, has 10 fields instead of 16; "
                                      "the file looks truncated"),
        "extra field": (REAL_CSV.replace(",34\n", ",34,1\n"), "line 6, the last line, has 17 "
                                                              "fields instead of 16$"),
        "short row inside": (REAL_CSV.replace(",5\n", "\n", 1), "line 2 has 15 fields instead of "
                                                                "16$"),
        "binary": ("\x00\xff\xfe garbage", "not a text CSV file"),
    }


@pytest.mark.parametrize("case", list(bad_file_cases()))
def test_load_rejects_bad_files_naming_file_and_problem(tmp_path, case):
    text, problem = bad_file_cases()[case]
    path = tmp_path / "pubg_train.csv"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(pubg.PubgFormatError, match=problem) as raised:
        pubg.load(path)
    assert str(path) in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_load_rejects_bad_zips(tmp_path):
    empty = write_zip(tmp_path / "empty.zip", {"readme.txt": "no csv here"})
    with pytest.raises(pubg.PubgFormatError, match="empty.zip: expected exactly one CSV.*found 0"):
        pubg.load(empty)
    two = write_zip(tmp_path / "two.zip", {"a.csv": REAL_CSV, "b.csv": REAL_CSV})
    with pytest.raises(pubg.PubgFormatError, match="two.zip: .*found 2 \\(a.csv, b.csv\\)"):
        pubg.load(two)
    good = write_zip(tmp_path / "good.zip", {"pubg_train.csv": REAL_CSV * 50})
    cut = tmp_path / "cut.zip"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(pubg.PubgFormatError, match="cut.zip: not a readable zip"):
        pubg.load(cut)
    bad_member = write_zip(tmp_path / "bad.zip", {"pubg_train.csv": REAL_CSV[:-12]})
    with pytest.raises(pubg.PubgFormatError, match="bad.zip:pubg_train.csv: .*truncated"):
        pubg.load(bad_member)


# --- the tutorial's pipeline -------------------------------------------------------------------

def test_complete_rows_and_to_array():
    frame = pd.read_csv(io.StringIO(REAL_CSV))
    complete = pubg.complete_rows(frame)
    assert complete.index.tolist() == [0]
    array = pubg.to_array(complete)
    assert array.dtype == np.float64
    np.testing.assert_array_equal(array[0], [50, 2, 0, 1, 4984.549, 2054.03149, 218, 2, 101,
                                             1689.9, 3992.9, 137.0, 819.8, 5])
    assert pubg.to_array(frame.drop(columns=pubg.TARGET)).shape == (5, 13)
    with pytest.raises(ValueError, match="columns"):
        pubg.to_array(frame.drop(columns="player_dmg"))


def test_normalize_train_divides_by_column_maxima():
    normalized, maxima = pubg.normalize_train(np.array([[2.0, 0.0, 10.0], [4.0, 0.0, 5.0]]))
    np.testing.assert_array_equal(maxima, [4.0, 1.0, 10.0])  # an all-zero column keeps 0
    np.testing.assert_array_equal(normalized, [[0.5, 0.0, 1.0], [1.0, 0.0, 0.5]])
    with pytest.raises(ValueError, match="NaN"):
        pubg.normalize_train(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="non-empty"):
        pubg.normalize_train(np.empty((0, 3)))


def test_normalize_test_fills_nan_with_normalized_training_means():
    data = np.array([[2.0, np.nan], [8.0, 3.0]])
    normalized = pubg.normalize_test(data, np.array([4.0, 6.0]), np.array([0.25, 0.7]))
    np.testing.assert_array_equal(normalized, [[0.5, 0.7], [2.0, 0.5]])
    assert np.isnan(data[0, 1])  # the caller's array is left alone
    with pytest.raises(ValueError, match="shape"):
        pubg.normalize_test(data, np.array([4.0, 6.0, 1.0]), np.array([0.25, 0.7]))


def tutorial_placement(prediction, max_value):
    """The tutorial's own lines, as the oracle."""
    out = int(prediction * max_value)
    if out <= 0:
        out = 1
    if out >= max_value:
        out = max_value
    return out


def test_to_placement_truncates_and_clips_like_the_tutorial():
    predictions = np.array([-0.5, -0.01, 0.0, 0.019, 0.03, 0.05, 0.5, 0.999, 1.0, 1.2])
    placements = pubg.to_placement(predictions, 50.0)
    assert placements.dtype == np.int64
    assert placements.tolist() == [1, 1, 1, 1, 1, 2, 25, 49, 50, 50]
    assert placements.tolist() == [tutorial_placement(p, 50.0) for p in predictions]
    with pytest.raises(ValueError, match="NaN"):
        pubg.to_placement(np.array([0.5, np.nan]), 50.0)


def test_split_matches_holds_out_whole_matches():
    frame = pd.DataFrame({"match_id": np.repeat(np.arange(8), 3), "value": np.arange(24)})
    training, held_out = pubg.split_matches(frame, 0.25, seed=1)
    assert held_out["match_id"].nunique() == 2 and len(held_out) == 6
    assert not set(training["match_id"]) & set(held_out["match_id"])
    assert sorted(training["value"].tolist() + held_out["value"].tolist()) == list(range(24))
    again_training, again_held_out = pubg.split_matches(frame, 0.25, seed=1)
    pd.testing.assert_frame_equal(again_held_out, held_out)
    assert len(pubg.split_matches(frame, 0.0)[1]) == 0
    with pytest.raises(ValueError, match="holdout fraction"):
        pubg.split_matches(frame, 1.0)
    with pytest.raises(ValueError, match="of 0.95 holds out all 8 matches, leaving none"):
        pubg.split_matches(frame, 0.95)


def test_write_submission_writes_header_and_integers(tmp_path):
    path = tmp_path / "submission.csv"
    pubg.write_submission(np.array([3, 1, 50]), path)
    assert path.read_text() == "team_placement\n3\n1\n50\n"
    assert [p.name for p in tmp_path.iterdir()] == ["submission.csv"]
    assert pd.read_csv(path)["team_placement"].tolist() == [3, 1, 50]


def test_write_submission_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "submission.csv"
    path.write_text("team_placement\n7\n")
    with pytest.raises(ValueError, match="integer"):
        pubg.write_submission(np.array([1.5]), path)

    def failing_replace(source, target):
        raise OSError("disk full")
    monkeypatch.setattr(_files.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        pubg.write_submission(np.array([1, 2]), path)
    assert path.read_text() == "team_placement\n7\n"  # the old file, untouched
    assert [p.name for p in tmp_path.iterdir()] == ["submission.csv"]  # no temporary left


def test_build_network_wires_the_tutorial_graph():
    import ourdl

    network = pubg.build_network()
    assert len(network.x) == len(network.w) == 13
    assert all(w.Flag == 1 and w.lr == 0.01 and w.value == 0 for w in network.w)
    assert all(x.Flag == 0 for x in network.x)
    assert isinstance(network.prediction, ourdl.AddNode)
    assert isinstance(network.loss, ourdl.MSENode)
    assert network.loss.Papa is network.prediction and network.loss.Mama is network.y
    # the chain a[11] = (...((m0 + m1) + m2) ... + m12), m[i] = x[i] * w[i]
    node, multiplies = network.prediction, []
    while isinstance(node, ourdl.AddNode):
        multiplies.append(node.Mama)
        node = node.Papa
    multiplies.append(node)
    multiplies.reverse()
    assert [(m.Papa, m.Mama) for m in multiplies] == list(zip(network.x, network.w))
    for i, (x, w) in enumerate(zip(network.x, network.w)):
        x.value, w.value = i + 1, 0.5
    network.y.value = 40.0
    network.loss.forward()
    assert network.prediction.value == 45.5 and network.loss.value == 30.25
    assert pubg.build_network(1, lr=0.1).prediction.Papa is not None  # a lone MulNode
    with pytest.raises(ValueError):
        pubg.build_network(0)


# --- the cache ---------------------------------------------------------------------------------

def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("OURDL_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert pubg.cache_dir() == tmp_path / ".cache" / "ourdl"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert pubg.cache_dir() == tmp_path / "xdg" / "ourdl"
    monkeypatch.setenv("OURDL_CACHE_DIR", str(tmp_path / "mine"))
    assert pubg.cache_dir() == tmp_path / "mine"


def test_cached_stores_reads_and_repairs(monkeypatch, tmp_path):
    monkeypatch.setenv("OURDL_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    stale = tmp_path / "cache" / f"pubg-test-700-seed9-v{pubg.GENERATOR_VERSION - 1}.npz"
    stale.write_bytes(b"from an older generator")
    expected = pubg.synthesize("test", 700, seed=9)
    pd.testing.assert_frame_equal(pubg.cached("test", 700, seed=9), expected)
    [stored] = (tmp_path / "cache").iterdir()
    assert stored == pubg.cache_path("test", 700, seed=9)
    assert stored.name == f"pubg-test-700-seed9-v{pubg.GENERATOR_VERSION}.npy"

    real_synthesize = pubg.synthesize

    def no_synthesis(*args):
        raise AssertionError("should have come from the cache")
    monkeypatch.setattr(pubg, "synthesize", no_synthesis)
    pd.testing.assert_frame_equal(pubg.cached("test", 700, seed=9), expected)

    stored.write_bytes(b"not an npz")  # a damaged cache is made again
    monkeypatch.setattr(pubg, "synthesize", real_synthesize)
    pd.testing.assert_frame_equal(pubg.cached("test", 700, seed=9), expected)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [stored.name]


def test_cached_warns_when_the_cache_cannot_be_written(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("OURDL_CACHE_DIR", str(blocker / "cache"))
    with pytest.warns(UserWarning, match="could not cache"):
        frame = pubg.cached("train", 50, seed=0)
    pd.testing.assert_frame_equal(frame, pubg.synthesize("train", 50, seed=0))


def test_cache_clean_up_deletes_only_what_ourdl_wrote(monkeypatch, tmp_path):
    folder = tmp_path / "cache"
    monkeypatch.setenv("OURDL_CACHE_DIR", str(folder))
    folder.mkdir()
    old = pubg.GENERATOR_VERSION - 1
    ours = [f"pubg-train-50-seed0-v{old}.npz", f"pubg-test-9-seed12-v{old}.npy",
            f"pubg-train-50-seed0-v{pubg.GENERATOR_VERSION}.npz"]  # the format before .npy
    users = ["pubg-my-experiment-results.npz", f"pubg-train-50-seed0-v{old}.npz.bak",
             "pubg-train-50-seed0-v0-mine.npz", "notes.txt", f"pubg-valid-5-seed0-v{old}.npz"]
    for name in ours + users:
        (folder / name).write_bytes(b"data")
    (folder / f"pubg-train-1-seed0-v{old}.npy").mkdir()  # a folder is not a cache file either
    pubg.cached("test", 700, seed=9)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        users + [f"pubg-train-1-seed0-v{old}.npy", pubg.cache_path("test", 700, 9).name])
