"""The `ourdl` command end to end, in-process through cli.main(argv), on small synthetic data."""
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from ourdl import cli
from ourdl.datasets import pubg
from ourdl.datasets.pubg import app, pipeline

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


def write_real_files(folder, train="pubg_train.csv", test="pubg_test.csv"):
    """Small files in the real files' format, under the names given (None: not written)."""
    if train is not None:
        pubg.synthesize("train", 4000, seed=1).to_csv(folder / train, index=False)
    if test is not None:
        pubg.synthesize("test", 1500, seed=1).to_csv(folder / test, index=False)


def test_the_tutorials_files_in_the_folder_are_used(workdir, capsys):
    write_real_files(workdir, "pubg_train.csv", "pubg_test.csv.gz")
    code, out, err = run(capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == ("using pubg_train.csv and pubg_test.csv.gz from this folder (--train "
                        "and --test name other files)")
    assert lines[1].startswith("train: pubg_train.csv, 4,000 rows in ")
    assert lines[2].startswith("test: pubg_test.csv.gz, 1,500 rows in ")
    assert len(pd.read_csv(workdir / "submission.csv")) == 1500
    assert not (workdir / "cache").exists()  # nothing synthetic was made


@pytest.mark.parametrize("present, missing", [("pubg_train.csv", "pubg_test.csv"),
                                              ("pubg_test.csv.zip", "pubg_train.csv")])
def test_one_of_the_tutorials_files_alone_is_refused(workdir, capsys, present, missing):
    if present.endswith(".zip"):
        write_real_files(workdir, None, "pubg_test.csv")
        with zipfile.ZipFile(workdir / present, "w") as archive:
            archive.write(workdir / "pubg_test.csv", "pubg_test.csv")
        (workdir / "pubg_test.csv").unlink()
    else:
        write_real_files(workdir, present, None)
    code, out, err = run(capsys)
    assert code == 2 and out == ""
    assert messages(err) == [
        f"ourdl: error: {present} is in this folder but {missing} is not: put {missing} (plain "
        f"or .zip, .gz, .bz2, .xz) beside it, name both with --train and --test, or run where "
        f"neither is for synthetic data"]
    assert outputs(workdir) == [present] and not (workdir / "cache").exists()


@pytest.mark.parametrize("argv, given, missing", [(["--train", "train.csv"], "--train", "--test"),
                                                  (["--test", "test.csv"], "--test", "--train")])
def test_one_real_file_named_alone_is_refused(workdir, capsys, argv, given, missing):
    write_real_files(workdir, "train.csv", "test.csv")
    code, out, err = run(capsys, *argv)
    assert code == 2 and messages(err) == [
        f"ourdl: error: {given} without {missing}: give both real files, or neither for "
        f"synthetic data (a real file never mixes with synthetic data)"]
    assert outputs(workdir) == ["test.csv", "train.csv"]


def test_without_the_tutorials_files_the_data_is_synthetic(workdir, capsys):
    write_real_files(workdir, "train.csv", "test.csv")  # other names: not the tutorial's files
    code, out, err = run(capsys, "--rows", "3000")
    assert code == 0, err
    assert out.startswith("train: synthetic, 3,000 rows")
    # Named files win over the folder's, and --rows asks for synthetic data.
    write_real_files(workdir)
    code, out, err = run(capsys, "--train", "train.csv", "--test", "test.csv")
    assert code == 0 and out.startswith("train: train.csv, 4,000 rows"), err
    code, out, err = run(capsys, "--rows", "3000")
    assert code == 0 and out.splitlines()[0] == (
        "--rows: synthetic data; pubg_train.csv and pubg_test.csv in this folder are not used")
    assert out.splitlines()[1].startswith("train: synthetic, 3,000 rows")


def test_out_dash_writes_the_submission_alone_to_stdout(workdir, capsys):
    code, out, err = run(capsys, "--rows", "3000", "--out", "-")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "team_placement" and len(lines) == 1001
    assert all(line.isdigit() for line in lines[1:])
    assert "held-out MAE" in err and "wrote the standard output (1,000 rows)" in err
    assert outputs(workdir) == []  # no file named -
    result = subprocess.run([sys.executable, "-m", "ourdl", "pubg", "--rows", "3000", "--out", "-"],
                            capture_output=True, cwd=workdir)
    assert result.returncode == 0 and result.stdout.decode().splitlines() == lines


def test_out_dash_into_a_closed_pipe_says_so(workdir):
    assert cli.main(["pubg", "--rows", "3000", "--quiet"]) == 0  # the data, cached
    read_end, write_end = os.pipe()
    os.close(read_end)  # a reader that has gone before the first line
    result = subprocess.run([sys.executable, "-m", "ourdl", "pubg", "--rows", "3000", "--out", "-",
                             "--quiet"], stdout=write_end, stderr=subprocess.PIPE, text=True,
                            cwd=workdir)
    os.close(write_end)
    assert result.returncode == 1 and result.stderr == (
        "ourdl: error: the standard output was closed before the whole submission was written\n")


def test_the_zip_holds_the_csv_the_help_names(workdir, capsys):
    assert cli.main(["pubg", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "NAME.zip writes a zip holding NAME.csv (submission.zip holds submission.csv)" in text
    for out, inside in (("sub.zip", "sub.csv"), ("submission.zip", "submission.csv"),
                        ("mine.csv.zip", "mine.csv")):
        assert run(capsys, "--rows", "3000", "--quiet", "--out", out)[0] == 0
        assert zipfile.ZipFile(workdir / out).namelist() == [inside]


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
    assert outputs(workdir) == []


def test_ourdl_alone_lists_the_commands(capsys):
    assert cli.main([]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: ourdl")
    assert re.search(r"^ +pubg +train the tutorial's PUBG placement model", err, re.MULTILINE)
    done = subprocess.run([sys.executable, "-m", "ourdl"], capture_output=True, text=True)
    assert done.returncode == 2 and "commands:" in done.stderr and "pubg" in done.stderr


@pytest.mark.parametrize("option, low, high", [
    ("--epochs", 1, sys.maxsize), ("--batch-size", 1, sys.maxsize), ("--seed", 0, sys.maxsize),
    ("--rows", 1, cli.LARGEST_ROWS), ("--hidden", 1, cli.LARGEST_LAYER),
])
def test_counts_out_of_range_are_refused_before_any_work(workdir, capsys, option, low, high):
    for bad in (high + 1, 2 ** 64):
        code, out, err = run(capsys, option, str(bad))
        assert code == 2 and out == ""
        assert f"argument {option}: must be at most {high:,}, not {bad}\n" in err
    code, out, err = run(capsys, option, str(low - 1))
    assert code == 2 and out == ""
    assert f"argument {option}: must be at least {low}, not {low - 1}\n" in err
    assert not (workdir / "cache").exists()  # refused before any data was made
    parsed = vars(cli._parser().parse_args(["pubg", option, str(high)]))[option[2:]
                                                                         .replace("-", "_")]
    assert parsed == ((high,) if option == "--hidden" else high)


def test_epochs_0_says_at_least_1(workdir, capsys):
    code, out, err = run(capsys, "--epochs", "0")
    assert code == 2 and out == ""
    assert err.splitlines()[-1] == ("ourdl pubg: error: argument --epochs: must be at least 1, "
                                    "not 0")
    for argv, message in ((["--lr", "0"], "argument --lr: must be a positive number, not 0.0"),
                          (["--max-memory", "-1"], "argument --max-memory: must be a positive "
                                                   "number, not -1.0"),
                          (["--holdout", "1"], "argument --holdout: must be a number from 0 "
                                               "up to (not including) 1, not 1.0")):
        code, out, err = run(capsys, *argv)
        assert code == 2 and err.splitlines()[-1] == f"ourdl pubg: error: {message}", argv


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
    monkeypatch.setattr(pipeline, "normalize_train", interrupted)
    code, _, err = run(capsys, "--rows", "3000")
    assert code == 130 and "interrupted" in err
    assert outputs(workdir) == []


def test_plot_without_matplotlib_fails_before_training(workdir, capsys, monkeypatch):
    real_find_spec = app.importlib.util.find_spec
    monkeypatch.setattr(app.importlib.util, "find_spec",
                        lambda name: None if name == "matplotlib" else real_find_spec(name))
    code, out, err = run(capsys, "--rows", "3000", "--plot", "fit.png")
    assert code == 1 and "--plot needs matplotlib" in err
    assert out == "" and outputs(workdir) == []


def test_a_failure_after_training_leaves_no_partial_output(workdir, capsys, monkeypatch):
    def no_space(placements, path):
        raise OSError("No space left on device")
    monkeypatch.setattr(pipeline, "write_submission", no_space)
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
    result = subprocess.run([str(script), "pubg", "--train", "missing.csv", "--test", "x.csv"],
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


def test_the_application_runs_from_python_as_the_command_does(workdir, capsys):
    said = []
    report = app.run(app.Options(rows=3000, out=workdir / "mine.csv", epochs=2), said.append)
    assert report.lines == said and said[4].startswith("epoch 2/2: training loss")
    assert report.held_out_mae < report.baseline_mae
    assert len(report.held_out_curve) == 2 and report.held_out_curve[-1] == report.held_out_mae
    assert pd.read_csv(workdir / "mine.csv")["team_placement"].tolist() == \
        report.placements.tolist()
    code, out, _ = run(capsys, "--rows", "3000", "--epochs", "2", "--out", "mine.csv")
    def untimed(lines):
        return [re.sub(r"\([\d.]+ s, [\d,]+ samples/s\)", "", line) for line in lines[:-2]]
    assert code == 0 and untimed(out.splitlines()) == untimed(said)  # the same report
    with pytest.raises(app.OptionsError, match="--test without --train"):
        app.run(app.Options(test=workdir / "mine.csv"))
