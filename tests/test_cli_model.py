"""`ourdl pubg --save-model` and `--model-in`: a trained network kept and used again."""
import os

import pytest
from test_cli import messages, outputs, run
from test_inspect import seed_graph

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
    ourdl.save(workdir / "graph.ourdl", seed_graph())
    pubg.synthesize("test", 50).to_csv(workdir / "test.csv", index=False)
    before = outputs(workdir)
    code, out, err = run(capsys, *argv)
    assert code == 1
    [line] = messages(err)
    assert line.startswith("ourdl: error: ") and message in line, err
    assert outputs(workdir) == before


def test_build_network_names_each_node_as_the_seed_does():
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
