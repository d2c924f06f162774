"""`ourdl pubg --out/--plot`: special files written through, unwritable ones refused before
training with the user's path in the message. Each run is a subprocess with a timeout."""
import os
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap

import pandas as pd
import pytest
from helpers import stopped_while_writing


def ourdl(folder, *argv, **kwargs):
    return subprocess.run([sys.executable, "-m", "ourdl", "pubg", "--rows", "3000", *argv],
                          cwd=folder, capture_output=True, timeout=120,
                          env={**os.environ, "OURDL_CACHE_DIR": str(folder / "cache")}, **kwargs)


def test_out_onto_a_pipe_through_a_symbolic_link(tmp_path):
    # /dev/stdout is such a link; a private one, so that a bug cannot replace the real one.
    (tmp_path / "stdout").symlink_to("/proc/self/fd/1")
    result = ourdl(tmp_path, "--quiet", "--out", "stdout")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "team_placement" and len(lines) == 1001
    assert (tmp_path / "stdout").is_symlink()
    assert sorted(os.listdir(tmp_path)) == ["cache", "stdout"]


def test_out_through_a_link_to_a_file_keeps_the_link(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "submission.csv").symlink_to(tmp_path / "results" / "latest.csv")
    result = ourdl(tmp_path, "--quiet")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "submission.csv").is_symlink()
    assert len(pd.read_csv(tmp_path / "results" / "latest.csv")) == 1000


def test_out_into_a_fifo(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE) as reader:
        result = ourdl(tmp_path, "--quiet", "--out", "fifo")
        received = reader.communicate(timeout=60)[0].decode()
    assert result.returncode == 0, result.stderr
    assert received.splitlines()[0] == "team_placement" and len(received.splitlines()) == 1001
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.fixture
def shared_folder():
    """A folder user nobody can use too (pytest's tmp_path is private to root)."""
    from pathlib import Path
    folder = Path(tempfile.mkdtemp(prefix="ourdl-cli-"))
    folder.chmod(0o777)
    yield folder
    subprocess.run(["rm", "-rf", str(folder)], check=True)


def test_unwritable_outputs_are_refused_before_training(shared_folder):
    # As root every file is writable, so the command runs as user nobody there.
    script = textwrap.dedent("""
        import os
        from ourdl import cli
        from ourdl.datasets import pubg
        cli._parser()  # argparse's lazy imports, before root's home (Python's) is out of reach
        if os.geteuid() == 0:
            os.setgroups([]), os.setgid(65534), os.setuid(65534)
        os.mkdir("locked", 0o555)
        with open("old.csv", "w") as file:
            file.write("keep me")
        os.chmod("old.csv", 0o444)
        for argv in (["--out", "locked/submission.csv"], ["--out", "old.csv"],
                     ["--plot", "locked/fit.png"]):
            print(cli.main(["pubg", "--rows", "3000", *argv]), flush=True)
        print(open("old.csv").read(), os.listdir("locked"), os.path.exists("cache"))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=shared_folder,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "OURDL_CACHE_DIR": str(shared_folder / "cache")})
    assert result.stdout.splitlines() == ["1", "1", "1", "keep me [] False"], result.stderr
    assert result.stderr.splitlines() == [
        "ourdl: error: --out locked/submission.csv: the folder locked is not writable",
        "ourdl: error: --out old.csv is read-only",
        "ourdl: error: --plot locked/fit.png: the folder locked is not writable",
    ]


STOPPED_RUN = """
import os, sys, time
from ourdl import cli
def slow_fsync(descriptor):  # the submission is written, the model and it not yet renamed
    print("writing", flush=True)
    time.sleep(60)
os.fsync = slow_fsync
cli.main(["pubg", "--rows", "3000", "--quiet", "--save-model", "model.ourdl"])
print("not stopped", flush=True)
"""


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGHUP"])
def test_a_stop_signal_while_writing_leaves_no_temporary_file(tmp_path, stop):
    assert ourdl(tmp_path, "--quiet").returncode == 0  # the data, cached
    (tmp_path / "submission.csv").write_text("old\n")
    temporaries, returncode, out, err = stopped_while_writing(
        STOPPED_RUN, tmp_path, stop, env={**os.environ, "OURDL_CACHE_DIR": str(tmp_path / "cache")})
    assert len(temporaries) == 2
    assert returncode == -getattr(signal, stop), err
    assert "not stopped" not in out
    assert sorted(os.listdir(tmp_path)) == ["cache", "submission.csv"]
    assert (tmp_path / "submission.csv").read_text() == "old\n"
