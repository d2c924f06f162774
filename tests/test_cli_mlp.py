"""`ourdl pubg --model mlp --hidden ... --optimizer ...`: a deeper network, or another rule,
with the same report, held-out MAE and submission; --model linear stays the tutorial's."""
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import ourdl
from ourdl import cli
from ourdl.datasets import pubg
from ourdl.datasets.pubg import app

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
    """The command's MLP is ourdl.Regressor on the tutorial's normalized columns: its held-out
    placements are that model's, to the bit."""
    code, out, err = run(capsys, "--model", "mlp", "--hidden", "5", "--seed", "3",
                         "--holdout", "0")
    assert code == 0, err
    train, test = pubg.cached("train", int(ROWS), 3), pubg.cached("test", int(ROWS) // 3, 3)
    data, maxima = pubg.normalize_train(pubg.to_array(pubg.complete_rows(train)))
    model = ourdl.Regressor.tutorial(hidden=(5,), seed=3).fit(data[:, :-1], data[:, -1])
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
    (["--model", "mlp", "--hidden", "4,0"], 2, "argument --hidden: must be at least 1, not 0"),
    (["--model", "mlp", "--hidden", "4,x"], 2, "argument --hidden: 'x' is not a whole number"),
    (["--model", "mlp", "--hidden", "2000"], 2, "must be at most 1,024, not 2000"),
    (["--hidden", "8"], 1, "ourdl: error: --hidden sizes the layers of --model mlp; the linear "
                           "model has none"),
    (["--optimizer", "rmsprop"], 2, "argument --optimizer: invalid choice: 'rmsprop'"),
    (["--model", "cnn"], 2, "argument --model: invalid choice: 'cnn'"),
    (["--model", "mlp", "--max-memory", "0"], 2, "argument --max-memory: must be a positive "
                                                 "number, not 0"),
    (["--model", "mlp", "--hidden", "64,64", "--max-memory", "0.001"], 1,
     "ourdl: error: --hidden 64,64: the 13 -> 64 -> 64 -> 1 network has 5,120 weights, which "
     "take about 0.0148 GB to build and train, more than the 0.001 GB allowed (--max-memory); "
     "give smaller layers, or --max-memory 0.1 to allow it"),
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


def test_a_network_beyond_the_memory_available_is_refused_before_any_work(
        workdir, capsys, monkeypatch):
    monkeypatch.setattr(app, "available_memory", lambda: (2_000_000, "of memory available"))
    code, out, err = run(capsys, "--model", "mlp")  # 16,16: 512 weights, about 1.5 MB
    assert code == 1 and err == (
        "ourdl: error: --hidden 16,16: the 13 -> 16 -> 16 -> 1 network has 512 weights, which "
        "take about 0.00148 GB to build and train, more than the 0.001 GB allowed (50% of the "
        "0.002 GB of memory available); give smaller layers, or --max-memory 0.1 to allow it\n")
    assert out == "" and not (workdir / "cache").exists()
    code, out, err = run(capsys, "--model", "mlp", "--max-memory", "0.002", "--quiet")
    assert code == 0, err  # the limit raised


def test_the_memory_available_is_read_from_the_system(tmp_path, monkeypatch):
    available, where = app.available_memory()
    if sys.platform == "linux":
        with open("/proc/meminfo") as lines:
            listed = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in lines}
        assert where == "of memory available" and abs(available - listed["MemAvailable"]) < 5e8
    physical, where = app.available_memory(tmp_path / "no-meminfo")
    if hasattr(app.os, "sysconf"):
        assert where == "of memory in this machine" and physical >= available

    def no_sysconf(name):
        raise ValueError(name)
    monkeypatch.setattr(app.os, "sysconf", no_sysconf, raising=False)
    assert app.available_memory(tmp_path / "no-meminfo")[0] == app.FALLBACK_MEMORY


# VmHWM, not getrusage's ru_maxrss: a child started by vfork inherits its parent's, and the
# parent here is pytest, which may be bigger than either run.
PEAK_MEMORY = """
import sys
from ourdl import cli
argv = ["pubg", "--rows", "3000", "--quiet", "--model", "mlp", "--hidden", sys.argv[1]]
assert cli.main(argv) == 0
with open("/proc/self/status") as status:
    print(next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:")))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads the peak from /proc/self/status")
def test_the_memory_estimate_is_what_a_network_takes(workdir):
    """BYTES_PER_WEIGHT against the peak memory of the command itself, each run in a fresh
    process: a network of 43,200 weights (about 120 MB) against one of 74."""
    assert cli.main(["pubg", "--rows", "3000", "--quiet"]) == 0  # the data, cached for both
    peaks = {}
    for hidden in ("4", "200,200"):
        done = subprocess.run([sys.executable, "-c", PEAK_MEMORY, hidden], cwd=workdir,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        peaks[hidden] = int(done.stdout)
    weights = app.weight_count([13, 200, 200, 1]) - app.weight_count([13, 4, 1])
    measured = (peaks["200,200"] - peaks["4"]) / weights
    assert 0.7 * app.BYTES_PER_WEIGHT < measured < 1.3 * app.BYTES_PER_WEIGHT, measured
