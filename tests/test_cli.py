"""The `ourdl` command end to end, in-process through cli.main(argv), on small synthetic data."""
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from ourdl import cli
from ourdl.datasets import pubg

from helpers import messages, outputs, run

MAE_LINE = re.compile(r"held-out MAE: ([\d.]+) placements on [\d,]+ rows \(always predicting "
                      r"the training mean, [\d.]+: ([\d.]+)\)")


pytestmark = pytest.mark.usefixtures("workdir")  # each test in its own folder (conftest.py)


def test_run_reports_and_writes_the_submission(workdir, capsys):
    code, out, err = run(capsys, "--rows", "30000")
    assert code == 0, err
    submission = pd.read_csv(workdir / "submission.csv")
    assert list(submission.columns) == ["team_placement"] and len(submission) == 10_000
    assert submission["team_placement"].dtype == "int64"
    assert submission["team_placement"].between(1, 100).all()
    assert submission["team_placement"].nunique() > 10
    model_error, mean_error = map(float, MAE_LINE.search(out).groups())
    assert model_error < 0.8 * mean_error
    assert "epoch 1/1: training loss" in out and "samples/s" in out
    for name in pubg.FEATURES:
        assert re.search(rf"^  {name} +[+-]\d", out, re.MULTILINE), name
    assert outputs(workdir) == ["submission.csv"]
    assert len(list((workdir / "cache").glob("*.npy"))) == 2  # train and test, for next time


def learned_weights(out):
    return re.findall(r"^  \w+ +([+-][\d.]+)$", out, re.MULTILINE)


def test_each_training_option_changes_the_model(workdir, capsys):
    code, out, err = run(capsys, "--rows", "3000")
    assert code == 0, err
    plain = learned_weights(out)
    assert len(plain) == 13
    for option in (["--shuffle"], ["--lr", "0.02"], ["--batch-size", "4"], ["--epochs", "2"],
                   ["--seed", "1"], ["--holdout", "0.3"]):
        code, out, err = run(capsys, "--rows", "3000", *option)
        assert code == 0, err
        assert learned_weights(out) != plain, option


def test_quiet_prints_nothing_and_options_reach_training(workdir, capsys):
    code, out, err = run(capsys, "--rows", "3000", "--quiet", "--epochs", "2", "--shuffle",
                         "--batch-size", "4", "--lr", "0.02", "--seed", "7", "--out", "mine.csv")
    assert (code, out, err) == (0, "", "")
    assert len(pd.read_csv(workdir / "mine.csv")) == 1000
    code, out, _ = run(capsys, "--rows", "3000", "--epochs", "3", "--holdout", "0")
    assert code == 0 and "epoch 3/3" in out and "held-out MAE" not in out


def test_real_format_files_csv_and_zip(workdir, capsys):
    pubg.synthesize("train", 4000, seed=1).to_csv(workdir / "pubg_train.csv", index=False)
    test_frame = pubg.synthesize("test", 1500, seed=1)
    test_frame.to_csv(workdir / "pubg_test.csv", index=False)
    with zipfile.ZipFile(workdir / "pubg_test.csv.zip", "w") as archive:
        archive.write(workdir / "pubg_test.csv", "pubg_test.csv")
    code, out, err = run(capsys, "--train", "pubg_train.csv", "--test", "pubg_test.csv.zip")
    assert code == 0, err
    assert "train: pubg_train.csv, 4,000 rows" in out
    assert len(pd.read_csv(workdir / "submission.csv")) == 1500


def test_plot_writes_a_png(workdir, capsys):
    code, _, err = run(capsys, "--rows", "3000", "--quiet", "--plot", "fit.png")
    assert code == 0, err
    assert (workdir / "fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert outputs(workdir) == ["fit.png", "submission.csv"]


def write_bad_train(folder):
    pubg.synthesize("train", 300).to_csv(folder / "bad.csv", index=False)
    lines = (folder / "bad.csv").read_text().splitlines()
    fields = lines[5].split(",")
    fields[1] = "oops"  # text in team_id on data row 5
    lines[5] = ",".join(fields)
    (folder / "bad.csv").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("argv, message", [
    (["--train", "missing.csv", "--test", "test.csv"], "--train missing.csv: no such file"),
    (["--train", "bad.csv", "--test", "test.csv"],
     "bad.csv: data row 5: 'oops' is not a number in column team_id"),
    (["--train", "train.csv", "--test", "train.csv"],
     "--test train.csv has a team_placement column, so it is a training file, not a test file"),
    (["--train", "test.csv", "--test", "test.csv"],
     "--train test.csv has no team_placement column, so it is a test file, not a train file"),
    (["--train", "train.csv"], "--train without --test: give both real files, or neither"),
    (["--test", "test.csv"], "--test without --train: give both real files, or neither"),
    (["--train", "train.csv", "--test", "test.csv", "--rows", "5"],
     "--rows sizes the synthetic data; the real files are used whole"),
    (["--rows", "3000", "--lr", "1e12"], "training diverged"),
    (["--rows", "3000", "--out", "no/such/folder.csv"], "the folder no/such does not exist"),
    (["--rows", "3000", "--out", "."], "is a folder"),
    (["--rows", "3000", "--out", "submission.7z"], "ourdl cannot write .7z files; name the "
                                                   "submission .csv, .zip, .csv.gz"),
    (["--rows", "3000", "--plot", "fit.bmp"], "--plot fit.bmp: matplotlib does not write .bmp; "
                                              "end the name in .png, .svg, .pdf"),
    (["--rows", "3000", "--plot", "same.csv", "--out", "same.csv"],
     "--plot and --out are the same file, same.csv"),
])
def test_failures_print_one_line_and_write_nothing(workdir, capsys, argv, message):
    write_bad_train(workdir)
    pubg.synthesize("train", 300).to_csv(workdir / "train.csv", index=False)
    pubg.synthesize("test", 100).to_csv(workdir / "test.csv", index=False)
    before = outputs(workdir)
    code, out, err = run(capsys, *argv)
    assert code == 1
    [line] = messages(err)
    assert line.startswith("ourdl: error: ") and message in line, err
    assert outputs(workdir) == before  # no submission.csv, no temporary file


def test_holdout_that_takes_every_match_says_so(workdir, capsys):
    pubg.synthesize("train", 300, seed=0).to_csv(workdir / "train.csv", index=False)
    pubg.synthesize("test", 100, seed=0).to_csv(workdir / "test.csv", index=False)
    n_matches = pubg.synthesize("train", 300, seed=0)["match_id"].nunique()
    code, out, err = run(capsys, "--train", "train.csv", "--test", "test.csv", "--holdout", "0.999")
    assert code == 1 and messages(err) == [
        f"ourdl: error: a holdout fraction of 0.999 holds out all {n_matches} matches, leaving "
        f"none to train on"]
    no_kills = pubg.synthesize("train", 300, seed=0).assign(player_kills=0)
    for column in pubg.KILL_DISTANCE_COLUMNS:
        no_kills[column] = float("nan")
    no_kills.to_csv(workdir / "train.csv", index=False)
    code, out, err = run(capsys, "--train", "train.csv", "--test", "test.csv", "--holdout", "0")
    assert code == 1 and messages(err) == [
        "ourdl: error: none of the 300 training rows has kill distances (only players with "
        "kills do), so there is nothing to train on"]
    assert outputs(workdir) == ["test.csv", "train.csv"]


def test_usage_errors_exit_2(workdir, capsys):
    for argv in (["--holdout", "1"], ["--epochs", "0"], ["--lr", "-1"], ["--nonsense"]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "usage: ourdl" in err, argv
    assert cli.main([]) == 2
    assert outputs(workdir) == []


@pytest.mark.parametrize("option, low, high", [
    ("--epochs", 1, sys.maxsize), ("--batch-size", 1, sys.maxsize), ("--seed", 0, sys.maxsize),
    ("--rows", 1, cli.LARGEST_ROWS),
])
def test_counts_out_of_range_are_refused_before_any_work(workdir, capsys, option, low, high):
    for bad in (high + 1, 2 ** 64, low - 1):
        code, out, err = run(capsys, option, str(bad))
        assert code == 2 and out == ""
        assert f"argument {option}: must be from {low:,} to {high:,}, not {bad}" in err
    assert not (workdir / "cache").exists()  # refused before any data was made
    assert cli._parser().parse_args(["pubg", option, str(high)]).__dict__[
        option[2:].replace("-", "_")] == high


def test_a_pasted_megabyte_gives_a_short_message(workdir, capsys):
    code, _, err = run(capsys, "--epochs", "9" * 1_000_000)
    assert code == 2 and "is not a whole number" in err and len(err) < 1000


def test_help_explains_every_option(capsys):
    assert cli.main(["--help"]) == 0
    assert "pubg" in capsys.readouterr().out
    assert cli.main(["pubg", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--train", "--test", "--epochs", "--lr", "--batch-size", "--shuffle", "--seed",
                   "--holdout", "--out", "--quiet", "--plot", "--debug", "--rows",
                   "--max-memory"):
        assert option in text, option


def test_debug_shows_the_traceback(workdir, capsys):
    code, _, err = run(capsys, "--train", "missing.csv", "--test", "missing.csv", "--debug")
    assert code == 1 and "Traceback" in err and "FileNotFoundError" in err


def test_interrupt_writes_nothing(workdir, capsys, monkeypatch):
    def interrupted(data):
        raise KeyboardInterrupt
    monkeypatch.setattr(pubg, "normalize_train", interrupted)
    code, _, err = run(capsys, "--rows", "3000")
    assert code == 130 and "interrupted" in err
    assert outputs(workdir) == []


def test_plot_without_matplotlib_fails_before_training(workdir, capsys, monkeypatch):
    real_find_spec = cli.importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec",
                        lambda name: None if name == "matplotlib" else real_find_spec(name))
    code, out, err = run(capsys, "--rows", "3000", "--plot", "fit.png")
    assert code == 1 and "--plot needs matplotlib" in err
    assert out == "" and outputs(workdir) == []


def test_a_failure_after_training_leaves_no_partial_output(workdir, capsys, monkeypatch):
    def no_space(placements, path):
        raise OSError("No space left on device")
    monkeypatch.setattr(pubg, "write_submission", no_space)
    code, _, err = run(capsys, "--rows", "3000", "--plot", "fit.png")
    assert code == 1 and "No space left on device" in err
    assert outputs(workdir) == []  # the plot written just before is taken back


def test_python_dash_m_and_the_console_script(workdir):
    result = subprocess.run([sys.executable, "-m", "ourdl", "pubg", "--rows", "3000", "--quiet"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(workdir / "submission.csv")) == 1000
    script = Path(sys.executable).parent / "ourdl"
    if not script.exists():
        pytest.skip("the ourdl console script is not installed next to this Python")
    result = subprocess.run([str(script), "pubg", "--train", "missing.csv"],
                            capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.startswith("ourdl: error:")


def test_an_unwritable_cache_only_warns(workdir, capsys, monkeypatch):
    (workdir / "blocker").write_text("a file where the cache folder should be")
    monkeypatch.setenv("OURDL_CACHE_DIR", str(workdir / "blocker" / "cache"))
    code, _, err = run(capsys, "--rows", "3000", "--quiet")
    assert code == 0
    warnings = [line for line in messages(err) if line.startswith("ourdl: warning: ")]
    assert len(warnings) == 2 and "could not cache the synthetic data" in warnings[0]
    assert (workdir / "submission.csv").exists()
