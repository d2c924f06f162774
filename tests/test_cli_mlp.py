"""`ourdl pubg --model mlp --hidden ... --optimizer ...`: a deeper network, or another rule,
with the same report, held-out MAE and submission; --model linear stays the tutorial's."""
import re

import numpy as np
import pandas as pd
import pytest

import ourdl
from ourdl import cli
from ourdl.datasets import pubg

MAE_LINE = re.compile(r"held-out MAE: ([\d.]+) placements on [\d,]+ rows \(always predicting "
                      r"the training mean, [\d.]+: ([\d.]+)\)")
ROWS = "20000"


pytestmark = pytest.mark.usefixtures("workdir")  # each test in its own folder (conftest.py)


def run(capsys, *argv):
    code = cli.main(["pubg", "--rows", ROWS, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def without_times(out):
    return re.sub(r"\(?[\d.,]+ (s|samples/s)\b\)?", "", out)


def test_mlp_trains_reports_and_writes_the_submission(workdir, capsys):
    code, out, err = run(capsys, "--model", "mlp", "--hidden", "4,3", "--epochs", "2")
    assert code == 0, err
    model_error, mean_error = map(float, MAE_LINE.search(out).groups())
    assert model_error < 0.8 * mean_error
    assert "epoch 2/2: training loss" in out
    # 13*4 + 4 + 4*3 + 3 + 3*1 (the output has no bias, as the tutorial's model has none)
    assert "learned 74 weights (biases included) of the 13 -> 4 -> 3 -> 1 network" in out
    submission = pd.read_csv(workdir / "submission.csv")["team_placement"]
    assert len(submission) == int(ROWS) // 3 and submission.between(1, 100).all()


def test_mlp_is_the_estimators_on_the_tutorials_pipeline(workdir, capsys):
    """The command's MLP is ourdl.Regressor on the seed's normalized columns: its held-out
    placements are that model's, to the bit."""
    code, out, err = run(capsys, "--model", "mlp", "--hidden", "5", "--seed", "3",
                         "--holdout", "0")
    assert code == 0, err
    train, test = pubg.cached("train", int(ROWS), 3), pubg.cached("test", int(ROWS) // 3, 3)
    data, maxima = pubg.normalize_train(pubg.to_array(pubg.complete_rows(train)))
    model = ourdl.Regressor(hidden=(5,), seed=3).fit(data[:, :-1], data[:, -1])
    normalized = pubg.normalize_test(pubg.to_array(test), maxima[:-1], data.mean(axis=0)[:-1])
    expected = pubg.to_placement(model.predict(normalized), maxima[-1])
    assert np.array_equal(pd.read_csv(workdir / "submission.csv")["team_placement"], expected)


def test_linear_is_the_default_and_sgd_the_default_rule(workdir, capsys):
    code, default, err = run(capsys)
    assert code == 0, err
    first = (workdir / "submission.csv").read_bytes()
    code, explicit, err = run(capsys, "--model", "linear", "--optimizer", "sgd")
    assert code == 0, err
    assert without_times(explicit) == without_times(default)
    assert (workdir / "submission.csv").read_bytes() == first
    assert "learned weights:" in default and "network" not in default


def test_the_seed_draws_the_mlps_start(workdir, capsys):
    submissions = []
    for seed in ("1", "1", "2"):
        code, out, err = run(capsys, "--model", "mlp", "--hidden", "4", "--seed", seed)
        assert code == 0, err
        submissions.append(MAE_LINE.search(out).group(1))
    assert submissions[0] == submissions[1] != submissions[2]


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_other_optimizers_train(optimizer, workdir, capsys):
    """Needs Tape.fit(optimizer=) in the core."""
    code, out, err = run(capsys, "--model", "mlp", "--hidden", "16,16", "--optimizer", optimizer,
                         "--lr", "0.001")
    assert code == 0, err
    model_error, mean_error = map(float, MAE_LINE.search(out).groups())
    assert model_error < 0.8 * mean_error


@pytest.mark.parametrize("argv, code, message", [
    (["--model", "mlp", "--hidden", "4,0"], 2, "argument --hidden: must be from 1 to 1,024, not 0"),
    (["--model", "mlp", "--hidden", "4,x"], 2, "argument --hidden: 'x' is not a whole number"),
    (["--model", "mlp", "--hidden", "2000"], 2, "must be from 1 to 1,024, not 2000"),
    (["--hidden", "8"], 1, "ourdl: error: --hidden sizes the layers of --model mlp; the linear "
                           "model has none"),
    (["--optimizer", "rmsprop"], 2, "argument --optimizer: invalid choice: 'rmsprop'"),
    (["--model", "cnn"], 2, "argument --model: invalid choice: 'cnn'"),
])
def test_bad_options_fail_before_any_work(argv, code, message, workdir, capsys):
    got, out, err = run(capsys, *argv)
    assert got == code and message in err
    assert not (workdir / "submission.csv").exists() and not (workdir / "cache").exists()


def test_a_saved_mlp_predicts_the_same_submission_without_training(workdir):
    assert cli.main(["pubg", "--rows", "3000", "--model", "mlp", "--hidden", "8",
                     "--optimizer", "adam", "--save-model", "m.ourdl", "--quiet"]) == 0
    assert cli.main(["pubg", "--rows", "3000", "--model-in", "m.ourdl", "--out", "again.csv",
                     "--quiet"]) == 0
    assert (workdir / "again.csv").read_bytes() == (workdir / "submission.csv").read_bytes()
