"""`ourdl pubg` as a contestant uses it: pipes, compressed submissions, plot formats,
the words of --help and --version. Runs that need a real pipe are subprocesses with a timeout."""
import bz2
import gzip
import lzma
import os
import signal
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest

import ourdl
from ourdl import cli
from ourdl.datasets.pubg import app

from helpers import build_network, outputs, run


def command(*argv):
    return [sys.executable, "-m", "ourdl", "pubg", "--rows", "3000", *argv]


def test_a_closed_stdout_never_costs_the_submission(workdir):
    reader, writer = os.pipe()
    os.close(reader)  # like `| head` once head has gone: every report line meets a closed pipe
    try:
        result = subprocess.run(command("--epochs", "3"), stdout=writer, stderr=subprocess.PIPE,
                                timeout=120, text=True)
    finally:
        os.close(writer)
    assert (result.returncode, result.stderr) == (0, "")
    assert len(pd.read_csv(workdir / "submission.csv")) == 1000


def test_epoch_lines_arrive_as_each_epoch_ends(workdir):
    # Ctrl-C as a terminal sends it, whatever the test runner's own SIGINT disposition (a
    # shell's background job ignores it, and a child would inherit that).
    with subprocess.Popen(command("--epochs", "200000"), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
                          ) as process:
        try:
            for line in process.stdout:
                if line.startswith("epoch 2/200000:"):
                    break
            assert process.poll() is None  # training goes on: the lines did not wait for it
        finally:
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "interrupted; no output was written" in err
    assert outputs(workdir) == []


def test_one_epoch_per_call_trains_exactly_as_epochs_n():
    """What the command's per-epoch loop relies on, with and without shuffling."""
    data = np.random.default_rng(1).random((500, 3))
    for shuffle in (False, True):
        weights = []
        for per_epoch in (False, True):
            network = build_network(2, lr=0.05)
            tape = ourdl.compile(network.loss)
            inputs = network.x + [network.y]
            if per_epoch:
                rng = np.random.default_rng(7)
                for _ in range(4):
                    tape.fit(data, inputs, epochs=1, shuffle=shuffle, seed=rng, batch_size=3)
            else:
                tape.fit(data, inputs, epochs=4, shuffle=shuffle, seed=7, batch_size=3)
            weights.append([w.value for w in network.w])
        assert weights[0] == weights[1], shuffle


@pytest.mark.parametrize("name, read", [
    ("submission.zip", lambda path: zipfile.ZipFile(path).read("submission.csv")),
    ("submission.csv.zip", lambda path: zipfile.ZipFile(path).read("submission.csv")),
    ("submission.csv.gz", lambda path: gzip.decompress(path.read_bytes())),
    ("submission.csv.bz2", lambda path: bz2.decompress(path.read_bytes())),
    ("submission.csv.xz", lambda path: lzma.decompress(path.read_bytes())),
])
def test_out_writes_the_compression_its_name_asks_for(workdir, capsys, name, read):
    assert run(capsys, "--rows", "3000", "--quiet")[0] == 0
    plain = (workdir / "submission.csv").read_bytes()
    assert run(capsys, "--rows", "3000", "--quiet", "--out", name)[0] == 0
    assert read(workdir / name) == plain
    if name.endswith(".zip"):
        assert zipfile.ZipFile(workdir / name).namelist() == ["submission.csv"]
    if name.endswith(".gz"):  # the name stored inside is the user's, not a temporary file's
        assert b"submission.csv\x00" in (workdir / name).read_bytes()[:40]


@pytest.mark.parametrize("name, start", [("fit.png", b"\x89PNG\r\n\x1a\n"), ("fit.svg", b"<?xml"),
                                         ("fit.pdf", b"%PDF-")])
def test_plot_writes_the_format_its_extension_names(workdir, capsys, name, start):
    code, _, err = run(capsys, "--rows", "3000", "--quiet", "--plot", name)
    assert code == 0, err
    assert (workdir / name).read_bytes().startswith(start)


def test_the_figure_shows_zero_the_diagonal_the_error_and_the_held_out_curve():
    history = [ourdl.EpochStats(1, 0.02, 1.0, 1.0), ourdl.EpochStats(2, 0.015, 1.0, 1.0)]
    truth, guesses = np.array([1, 5, 9]), np.array([2, 5, 7])
    loss_axes, placement_axes, mae_axes, _ = app.figure(history, [1.5, 1.0], truth, guesses,
                                                        5.0).axes
    assert loss_axes.get_ylim()[0] == 0 and mae_axes.get_ylim()[0] == 0
    assert mae_axes.get_lines()[0].get_ydata().tolist() == [1.5, 1.0]
    assert [t.get_text() for t in loss_axes.get_legend().get_texts()] == [
        "training loss", "held-out MAE"]
    assert [text.get_text() for text in placement_axes.get_legend().get_texts()] == [
        "perfect prediction"]
    assert "MAE 1.00 placements" in placement_axes.get_title()
    assert "training mean: 2.67" in placement_axes.get_title()
    assert len(app.figure(history, [], truth, guesses, 5.0).axes) == 3  # no held-out: no curve


def test_the_held_out_mae_is_said_after_every_epoch_and_ends_as_the_final_one(workdir, capsys):
    code, out, _ = run(capsys, "--rows", "3000", "--epochs", "3", "--shuffle")
    assert code == 0
    curve = [float(line.rsplit("held-out MAE ", 1)[1]) for line in out.splitlines()
             if line.startswith("epoch ")]
    final = float(out.split("held-out MAE: ", 1)[1].split()[0])
    assert len(curve) == 3 and curve[-1] == round(final, 3)


def test_help_speaks_to_a_contestant_and_version(capsys):
    with pytest.raises(SystemExit):
        cli._parser().parse_args(["--version"])
    assert capsys.readouterr().out == f"ourdl {ourdl.__version__}\n"
    assert cli.main(["--version"]) == 0
    capsys.readouterr()
    for argv in (["--help"], ["pubg", "--help"]):
        assert cli.main(argv) == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "the seed" not in text and "seed's" not in text, argv
    assert "the tutorial's model (13 features -> 1, plain SGD" in text
    assert "the contest's format has no id column" in text
    assert "NAME.zip writes a zip holding NAME.csv" in text


def test_an_unwritable_cache_is_not_reported_as_cached(workdir, capsys, monkeypatch):
    (workdir / "blocker").write_text("a file where the cache folder should be")
    monkeypatch.setenv("OURDL_CACHE_DIR", str(workdir / "blocker" / "cache"))
    code, out, err = run(capsys, "--rows", "3000")
    assert code == 0 and "could not cache" in err
    assert "train: synthetic, 3,000 rows" in out and "not cached" in out and "cached in" not in out
