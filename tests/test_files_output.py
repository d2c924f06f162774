"""ourdl._files: a named output is written whole or not at all, the way a shell's `>` would.

Whatever could hang (a FIFO without a reader) runs in a subprocess with a timeout.
"""
import errno
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import zipfile

import pytest

from ourdl import _files
from helpers import stopped_while_writing


def write(path, data=b"new\n"):
    with _files.open_output(path) as file:
        file.write(data)


def test_a_new_and_an_existing_regular_file(tmp_path):
    path = tmp_path / "out.csv"
    write(path, b"first\n")
    assert path.read_bytes() == b"first\n"
    path.chmod(0o640)
    before = path.stat().st_ino
    write(path, b"second\n")
    assert path.read_bytes() == b"second\n"
    assert path.stat().st_ino != before  # replaced by a rename, not rewritten in place
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # and keeps its permission bits
    assert os.listdir(tmp_path) == ["out.csv"]


def test_a_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.csv"
    path.write_bytes(b"old\n")
    with pytest.raises(RuntimeError, match="boom"):
        with _files.open_output(path) as file:
            file.write(b"half")
            raise RuntimeError("boom")
    assert path.read_bytes() == b"old\n" and os.listdir(tmp_path) == ["out.csv"]


def test_errors_name_the_users_path_not_the_temporary(tmp_path, monkeypatch):
    def full_disk(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(_files.os, "fsync", full_disk)
    with pytest.raises(OSError, match=r"could not write .*out\.csv: No space left") as raised:
        write(tmp_path / "out.csv")
    assert raised.value.errno == errno.ENOSPC and ".tmp" not in str(raised.value)
    assert os.listdir(tmp_path) == []


def test_symbolic_links_are_followed_and_stay_links(tmp_path):
    real = tmp_path / "real.csv"
    real.write_bytes(b"old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    write(link)
    assert link.is_symlink() and real.read_bytes() == b"new\n"
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to(tmp_path / "created.csv")
    write(dangling)  # like `> dangling.csv`: the file it names is created
    assert dangling.is_symlink() and (tmp_path / "created.csv").read_bytes() == b"new\n"
    assert sorted(os.listdir(tmp_path)) == ["created.csv", "dangling.csv", "link.csv", "real.csv"]


def test_a_fifo_is_written_through_and_stays_a_fifo(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    script = textwrap.dedent(f"""
        import threading
        from ourdl import _files
        received = []
        reader = threading.Thread(target=lambda: received.append(open({str(fifo)!r}, "rb").read()))
        reader.start()
        with _files.open_output({str(fifo)!r}) as file:
            file.write(b"through the pipe")
        reader.join()
        print(received[0].decode())
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "through the pipe"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert os.listdir(tmp_path) == ["fifo"]


def test_a_character_device_is_written_through(tmp_path):
    null = tmp_path / "null"  # a private /dev/null: a bug here cannot replace the real one
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, AttributeError):
        pytest.skip("making a device node needs root")
    write(null)
    assert stat.S_ISCHR(os.lstat(null).st_mode) and os.listdir(tmp_path) == ["null"]


def test_what_cannot_be_written_is_refused_up_front(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder; give a file name"):
        _files.check_output(tmp_path)
    with pytest.raises(FileNotFoundError, match="the folder .*nowhere does not exist"):
        _files.check_output(tmp_path / "nowhere" / "out.csv")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "socket"))
        with pytest.raises(OSError, match="socket is a socket; ourdl writes regular files"):
            write(tmp_path / "socket")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(OSError, match="loop: Too many levels of symbolic links"):
        _files.check_output(loop)
    assert sorted(os.listdir(tmp_path)) == ["loop", "socket"]


DROP_ROOT = """
import os
if os.geteuid() == 0:  # as root every file is writable: become user nobody, imports done
    os.setgroups([]), os.setgid(65534), os.setuid(65534)
"""


def as_unprivileged_user(imports, script, folder):
    """Run imports, then script where file permissions apply (not as root)."""
    code = textwrap.dedent(imports) + DROP_ROOT + textwrap.dedent(script)
    return subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def shared_folder():
    """A folder that user nobody can use too (pytest's own tmp_path is private to root)."""
    import tempfile
    folder = tempfile.mkdtemp(prefix="ourdl-files-")
    os.chmod(folder, 0o777)
    yield folder
    subprocess.run(["rm", "-rf", folder], check=True)


def test_a_read_only_file_and_a_locked_folder_are_refused(shared_folder):
    imports = """
        import os, pathlib
        from ourdl import _files
    """
    script = """
        pathlib.Path("read-only.csv").write_text("keep me")
        os.chmod("read-only.csv", 0o444)
        os.mkdir("locked", 0o555)
        for path in ("read-only.csv", "locked/out.csv"):
            try:
                with _files.open_output(path) as file:
                    file.write(b"lost")
            except PermissionError as error:
                print(error)
        print(pathlib.Path("read-only.csv").read_text(), os.listdir("locked"))
    """
    result = as_unprivileged_user(imports, script, shared_folder)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "read-only.csv is read-only",
        "locked/out.csv: the folder locked is not writable",
        "keep me []",
    ]


def test_a_device_is_written_as_a_stream_that_cannot_seek():
    """A device answers tell() with 0 whatever was written; zipfile trusted that."""
    with _files.open_output(os.devnull) as file:
        file.write(b"abc")
        file.write(b"de")
        assert (file.tell(), file.seekable()) == (5, False)
        with pytest.raises(OSError):
            file.seek(0)
    with _files.open_output(os.devnull) as file:
        with zipfile.ZipFile(file, "w") as archive:
            archive.writestr("a", b"x" * 100_000)
            with archive.open("b", "w", force_zip64=True) as member:
                member.write(b"y" * 100_000)


def test_stop_signals_are_caught_only_while_writing_and_only_in_place_of_the_default(tmp_path):
    if signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        pytest.skip("the test runner handles SIGTERM itself")
    with _files.open_output(tmp_path / "out.csv"):
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL

    def own(signum, frame):
        pass
    previous = signal.signal(signal.SIGHUP, own)
    try:
        with _files.open_output(tmp_path / "out.csv"):
            assert signal.getsignal(signal.SIGHUP) is own
        assert signal.getsignal(signal.SIGHUP) is own
    finally:
        signal.signal(signal.SIGHUP, previous)
    # Only the main thread may set handlers: another thread writes without them.
    errors = []

    def in_a_thread():
        try:
            write(tmp_path / "thread.csv")
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert errors == [] and (tmp_path / "thread.csv").read_bytes() == b"new\n"


STOPPED_WRITE = """
import os, sys, time
from ourdl import _files
def slow_fsync(descriptor):  # the data is written, the temporary file not yet renamed
    print("writing", flush=True)
    time.sleep(60)
os.fsync = slow_fsync
with _files.open_output(sys.argv[1]) as outer, _files.open_output(sys.argv[2]) as inner:
    outer.write(b"new outer")
    inner.write(b"new inner")
print("not stopped", flush=True)
"""


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGHUP"])
def test_a_stop_signal_mid_write_removes_the_temporaries_and_ends_the_process(tmp_path, stop):
    (tmp_path / "outer.csv").write_bytes(b"old outer")
    (tmp_path / "inner.csv").write_bytes(b"old inner")
    temporaries, returncode, out, err = stopped_while_writing(
        STOPPED_WRITE, tmp_path, stop, args=("outer.csv", "inner.csv"))
    assert len(temporaries) == 2
    assert returncode == -getattr(signal, stop), err  # ended by the signal itself
    assert "not stopped" not in out
    assert sorted(os.listdir(tmp_path)) == ["inner.csv", "outer.csv"]
    assert (tmp_path / "outer.csv").read_bytes() == b"old outer"
    assert (tmp_path / "inner.csv").read_bytes() == b"old inner"


def test_a_name_ending_in_a_slash_is_refused_not_written_without_it(tmp_path):
    for name in (f"{tmp_path}/new/", f"{tmp_path}/", f"{tmp_path}/new.csv/"):
        with pytest.raises(IsADirectoryError, match="ends in /, so it names a folder"):
            _files.check_output(name)
        with pytest.raises(IsADirectoryError, match="ends in /, so it names a folder"):
            write(name)
    assert os.listdir(tmp_path) == []
