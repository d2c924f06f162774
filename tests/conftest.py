"""Fixtures and helpers shared by the test files."""
import os
import signal
import subprocess
import sys

import pytest


def stopped_while_writing(code, folder, stop, args=(), env=None):
    """Run ``code`` (which prints "writing" once its temporary files exist, then waits) in a
    new interpreter in ``folder``, send it signal ``stop`` then; return (the .tmp files it
    had made, its return code, stdout, stderr)."""
    process = subprocess.Popen([sys.executable, "-c", code, *args], cwd=folder, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "writing\n", process.stderr.read()
        temporaries = [name for name in os.listdir(folder) if name.endswith(".tmp")]
        process.send_signal(getattr(signal, stop))
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    return temporaries, process.returncode, out, err


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Each test in its own folder, with its own cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OURDL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path
