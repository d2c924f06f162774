"""`ourdl pubg --save-model` and `--model-in`: a trained network kept and used again."""
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from helpers import messages, outputs, run, tutorial_graph

import ourdl
from ourdl.datasets import pubg


pytestmark = pytest.mark.usefixtures("workdir")  # each test in its own folder (conftest.py)


def test_a_saved_model_predicts_the_same_submission_without_training(workdir, capsys):
    code, out, err = run(capsys, "--rows", "3000", "--save-model", "model.ourdl")
    assert code == 0, err
    assert out.splitlines()[-1] == "wrote submission.csv (1,000 rows) and model.ourdl"
    trained = (workdir / "submission.csv").read_bytes()
    code, out, err = run(capsys, "--rows", "3000", "--model-in", "model.ourdl",
                         "--out", "again.csv")
    assert code == 0, err
    assert "epoch" not in out and "training" not in out
    assert (workdir / "again.csv").read_bytes() == trained
    assert outputs(workdir) == ["again.csv", "model.ourdl", "submission.csv"]
    info = ourdl.load_info(workdir / "model.ourdl")[pubg.MODEL_INFO]
    assert info["features"] == list(pubg.FEATURES) and len(info["maxima"]) == 14
    root = ourdl.load(workdir / "model.ourdl")
    assert root.op == "mse" and ourdl.named(root)["x[12]"].op == "leaf"


def test_a_saved_model_predicts_a_real_test_file(workdir, capsys):
    assert run(capsys, "--rows", "3000", "--save-model", "model.ourdl", "--quiet")[0] == 0
    pubg.synthesize("test", 200, seed=5).to_csv(workdir / "test.csv", index=False)
    code, out, err = run(capsys, "--model-in", "model.ourdl", "--test", "test.csv")
    assert code == 0, err
    network, maxima, means = pubg.load_model(workdir / "model.ourdl")
    features = pubg.normalize_test(pubg.to_array(pubg.load(workdir / "test.csv")), maxima[:-1],
                                   means[:-1])
    expected = pubg.to_placement(ourdl.compile(network.prediction).predict(features, network.x),
                                 maxima[-1])
    assert (workdir / "submission.csv").read_text().split()[1:] == [str(p) for p in expected]


@pytest.mark.parametrize("argv, message", [
    (["--model-in", "missing.ourdl"], "--model-in missing.ourdl: no such file"),
    (["--model-in", "graph.ourdl"], "--model-in graph.ourdl is an ourdl graph but not a PUBG "
                                    "model saved by `ourdl pubg --save-model`"),
    (["--model-in", "test.csv"], "--model-in test.csv: it is not an ourdl graph"),
    (["--model-in", "graph.ourdl", "--epochs", "3"], "--epochs is for training; --model-in "
                                                     "predicts with a saved model"),
    (["--model-in", "graph.ourdl", "--train", "test.csv"], "--train is for training"),
    (["--model-in", "graph.ourdl", "--save-model", "m.ourdl"], "--save-model is for training"),
    (["--model-in", "graph.ourdl", "--test", "test.csv", "--rows", "5"],
     "--rows sizes the synthetic data; the real --test file is used whole"),
    (["--rows", "3000", "--save-model", "same", "--out", "same"],
     "--save-model and --out are the same file, same"),
    (["--rows", "3000", "--save-model", "no/such/model.ourdl"], "--save-model no/such/model."
                                                                "ourdl: the folder no/such"),
    (["--rows", "3000", "--lr", "1e12", "--save-model", "m.ourdl"], "training diverged"),
])
def test_model_failures_print_one_line_and_write_nothing(workdir, capsys, argv, message):
    ourdl.save(workdir / "graph.ourdl", tutorial_graph())
    pubg.synthesize("test", 50).to_csv(workdir / "test.csv", index=False)
    before = outputs(workdir)
    code, out, err = run(capsys, *argv)
    assert code == 1
    [line] = messages(err)
    assert line.startswith("ourdl: error: ") and message in line, err
    assert outputs(workdir) == before


def test_build_network_names_each_node_as_the_tutorial_does():
    network = pubg.build_network(3)
    assert [x.name for x in network.x] == ["x[0]", "x[1]", "x[2]"]
    assert [w.name for w in network.w] == ["w[0]", "w[1]", "w[2]"]
    assert network.prediction.name == "a[1]" and network.prediction.Mama.name == "m[2]"
    assert (network.y.name, network.loss.name) == ("y", "result")


def test_save_model_writes_through_a_device(workdir, capsys):
    code, out, err = run(capsys, "--rows", "3000", "--save-model", os.devnull)
    assert code == 0, err
    assert out.splitlines()[-1] == f"wrote submission.csv (1,000 rows) and {os.devnull}"
    assert outputs(workdir) == ["submission.csv"]


@pytest.mark.parametrize("option", ["--save-model", "--out", "--plot"])
def test_an_output_ending_in_a_slash_is_refused_as_a_folder(workdir, capsys, option):
    code, out, err = run(capsys, "--rows", "3000", option, "new/")
    assert code == 2 and f"argument {option}: new/ ends in /, so it names a folder; give a file " \
                          f"name" in err
    assert outputs(workdir) == [] and not (workdir / "cache").exists()


# A model as save_model writes it: the tutorial's network, its weights still 0.
MAXIMA = [100.0, 4, 6, 15, 3.2e4, 1.1e4, 3086, 19, 6e4, 1e5, 1.6e5, 5.9e4, 7.3e4, 100]
MEANS = [0.4, 0.7, 0.06, 0.09, 0.06, 0.14, 0.07, 0.11, 0.5, 0.015, 0.018, 0.027, 0.04, 0.15]


def model_with(folder, key=None, index=None, literal=None):
    """A model file in folder, with the JSON text literal (NaN, Infinity, 1e308, ...: what
    ourdl.save refuses to write) at key[index] of what save_model keeps beside the graph."""
    pubg.save_model(folder / "model.ourdl", pubg.build_network().loss, MAXIMA, MEANS)
    if key is None:
        return "model.ourdl"
    with zipfile.ZipFile(folder / "model.ourdl") as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    header = json.loads(parts["header.json"])
    header["info"][pubg.MODEL_INFO][key][index] = "@"
    parts["header.json"] = json.dumps(header).replace('"@"', literal).encode()
    with zipfile.ZipFile(folder / "bad.ourdl", "w") as archive:  # stored, as ourdl.save does
        for name, data in parts.items():
            archive.writestr(name, data)
    return "bad.ourdl"


PLACEMENT = "a placement is a whole number from 1 to 1,000"
DIVIDED = "the column is divided by it, so it must be a finite number other than 0"


@pytest.mark.parametrize("key, index, literal, message", [
    ("maxima", 13, "1e18", f"maxima[13], the largest team_placement, is 1e+18: {PLACEMENT}"),
    ("maxima", 13, "1e308", f"maxima[13], the largest team_placement, is 1e+308: {PLACEMENT}"),
    ("maxima", 13, "Infinity", f"maxima[13], the largest team_placement, is inf: {PLACEMENT}"),
    ("maxima", 13, "NaN", f"maxima[13], the largest team_placement, is nan: {PLACEMENT}"),
    ("maxima", 13, "99.5", f"maxima[13], the largest team_placement, is 99.5: {PLACEMENT}"),
    ("maxima", 13, "0", f"maxima[13], the largest team_placement, is 0: {PLACEMENT}"),
    ("maxima", 13, "1" + "0" * 400, f"maxima[13], the largest team_placement, is "
                                    f"{'1' + '0' * 39}...: {PLACEMENT}"),
    ("maxima", 4, "NaN", f"maxima[4], the largest player_dist_ride, is nan: {DIVIDED}"),
    ("maxima", 0, "-Infinity", f"maxima[0], the largest game_size, is -inf: {DIVIDED}"),
    ("maxima", 8, "0.0", f"maxima[8], the largest player_name, is 0.0: {DIVIDED}"),
    ("means", 3, "NaN", "means[3], the mean of player_dbno divided by its largest value, is nan: "
                        "it must be a finite number at most 1"),
    ("means", 12, "Infinity", "means[12], the mean of kill_distance_y_max divided by its largest "
                              "value, is inf: it must be a finite number at most 1"),
    ("means", 0, "1.5", "means[0], the mean of game_size divided by its largest value, is 1.5: "
                        "it must be a finite number at most 1"),
])
def test_a_model_with_numbers_out_of_range_is_refused_naming_file_and_field(
        workdir, capsys, key, index, literal, message):
    name = model_with(workdir, key, index, literal)
    code, out, err = run(capsys, "--rows", "3000", "--model-in", name)
    assert code == 1 and messages(err) == [f"ourdl: error: --model-in {name}: {message}"]
    assert not (workdir / "submission.csv").exists()
    with pytest.raises(ValueError, match=f"^{workdir / name}: "):
        pubg.load_model(workdir / name)


def test_save_model_refuses_what_load_model_would(workdir, capsys):
    maxima = MAXIMA[:-1] + [1e18]
    with pytest.raises(ValueError, match=r"m\.ourdl: cannot save this PUBG model: maxima\[13\], "
                                         r"the largest team_placement, is 1e\+18"):
        pubg.save_model(workdir / "m.ourdl", pubg.build_network().loss, maxima, MEANS)
    assert not (workdir / "m.ourdl").exists()
    # From the command: said before training, naming the file.
    train = pubg.synthesize("train", 3000, seed=1)
    train.loc[pubg.complete_rows(train).index[0], pubg.TARGET] = 5000
    train.to_csv(workdir / "train.csv", index=False)
    pubg.synthesize("test", 100).to_csv(workdir / "test.csv", index=False)
    code, out, err = run(capsys, "--train", "train.csv", "--test", "test.csv", "--holdout", "0",
                         "--save-model", "m.ourdl")
    assert code == 1 and messages(err) == [
        f"ourdl: error: --save-model m.ourdl: cannot save a model of this data: maxima[13], the "
        f"largest team_placement, is 5000.0: {PLACEMENT}"]
    assert "epoch" not in out and outputs(workdir) == ["test.csv", "train.csv"]


def test_a_model_that_predicts_nan_is_named(workdir, capsys):
    network = pubg.build_network()
    network.w[2].value = float("nan")
    pubg.save_model(workdir / "nan.ourdl", network.loss, MAXIMA, MEANS)
    code, out, err = run(capsys, "--rows", "3000", "--model-in", "nan.ourdl")
    assert code == 1 and messages(err) == [
        "ourdl: error: --model-in nan.ourdl: the saved network gives no finite prediction for "
        "1,000 test rows (row 0: nan), so it cannot place them"]
    assert outputs(workdir) == ["nan.ourdl"]


def test_a_model_in_that_is_no_regular_file_is_refused_without_waiting(workdir):
    os.mkfifo(workdir / "fifo")
    (workdir / "folder").mkdir()
    for name, kind in (("fifo", "a FIFO"), ("folder", "a folder")):
        done = subprocess.run([sys.executable, "-m", "ourdl", "pubg", "--model-in", name],
                              cwd=workdir, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and done.stderr == (
            f"ourdl: error: --model-in {name}: it is {kind}; ourdl reads a graph only from a "
            f"regular file\n")


def test_a_good_model_file_still_loads(workdir, capsys):
    name = model_with(workdir)
    code, out, err = run(capsys, "--rows", "3000", "--model-in", name, "--quiet")
    assert code == 0, err
    network, maxima, means = pubg.load_model(workdir / name)
    assert np.array_equal(maxima, MAXIMA) and np.array_equal(means, MEANS)
