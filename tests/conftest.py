"""Fixtures shared by the test files (helpers.py holds the shared functions and values)."""
import pytest


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Each test in its own folder, with its own cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OURDL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path
