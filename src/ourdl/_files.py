"""Writing a file the user named: whole or not at all, and the way a shell's `>` would.

`open_output(path)` is the one way ourdl writes such a file (the `ourdl pubg` submission and
plot; later `ourdl.save`); `check_output(path)` tells, before any long work, whether it can.

- A regular file, or a new one, is written to a hidden temporary file beside it that is renamed
  over it only when the with-block succeeds, so a failure never leaves a half-written file.
  A file that existed keeps its permission bits.
- A FIFO or a character device (/dev/null, a terminal, /dev/stdout on a pipe) is written
  through: renaming over it would replace the device with a regular file. It is handed out as
  a stream that cannot seek and counts the bytes written as its position: a device answers
  tell() with 0, and zipfile, trusting that, would write offsets that cannot be packed.
- While an output is open, SIGTERM and SIGHUP unwind the program as Ctrl-C does, so that the
  temporary file is removed; then the signal takes its default effect and ends the process.
- A name ending in a slash names a folder, as it does for `>`: it is refused, never written as
  a file without the slash.
- Symbolic links are followed, as a shell redirection follows them: the file they point to is
  written, and the link stays a link.

Errors are OSErrors whose message names the path the user gave, never the temporary file.
"""
from __future__ import annotations

import contextlib
import io
import os
import signal
import stat
import threading
import uuid
from pathlib import Path

__all__ = ["check_name", "check_output", "open_output", "unseekable"]


def check_output(path) -> None:
    """Raise an OSError naming path if open_output(path) would fail for want of permission,
    a folder, or a writable kind of file. Creates nothing."""
    _target(path)


@contextlib.contextmanager
def open_output(path):
    """A binary file for writing to path (see the module docstring for what that means)."""
    target, status = _target(path)
    with _stop_signals_unwind():
        if status is not None and not stat.S_ISREG(status.st_mode):
            # open() follows the link itself: /dev/stdout -> /proc/self/fd/1 -> pipe:[...] has
            # no name a rename could use.
            with _named_errors(path, None), open(path, "wb") as file:
                yield unseekable(file)
            return
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        with _named_errors(path, temporary):
            # os.open rather than tempfile: mode 0o666 minus the umask, like any file a user
            # writes.
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                                 0o666)
        try:
            with _named_errors(path, temporary):
                with os.fdopen(descriptor, "wb") as file:
                    if status is not None:
                        os.fchmod(file.fileno(), stat.S_IMODE(status.st_mode))
                    yield file
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        _sync_folder(target.parent)


def unseekable(file):
    """file itself if it is a regular file (or has no descriptor, as io.BytesIO), else a
    stream writing through to it that cannot seek and tells the bytes written as its position:
    what zipfile needs to write a FIFO or a device, whose tell() may say 0 whatever was written.
    """
    try:
        regular = stat.S_ISREG(os.fstat(file.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):  # no descriptor: the stream knows its place
        return file
    return file if regular else _Unseekable(file)


class _Unseekable(io.RawIOBase):
    def __init__(self, file):
        super().__init__()
        self._file, self._written = file, 0

    def writable(self):
        return True

    def write(self, data):
        written = self._file.write(data)
        self._written += written
        return written

    def tell(self):
        return self._written

    def flush(self):
        self._file.flush()

    def fileno(self):
        return self._file.fileno()


# The signals that end a process by default and that a user sends to stop a program: `kill`,
# a closed terminal, a service manager. SIGINT is Python's own KeyboardInterrupt already.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


class _Stopped(BaseException):
    """A stop signal arrived while an output was open: unwinds to its cleanup, past any
    `except Exception`, as KeyboardInterrupt does."""


@contextlib.contextmanager
def _stop_signals_unwind():
    """Within the block, SIGTERM and SIGHUP raise _Stopped; after it, the first that arrived
    is sent again with its default action, which ends the process as the signal would have
    (status 128 + its number in a shell). Only the main thread may set handlers, and only
    default ones are replaced: a program's own handling of these signals is left alone (and
    a nested output finds this one's handler in place and leaves it too)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []

    def stop(signum, frame):
        if not received:  # a second signal must not break off the cleanup of the first
            received.append(signum)
            raise _Stopped(signal.Signals(signum).name)

    replaced = [number for number in STOP_SIGNALS if signal.getsignal(number) == signal.SIG_DFL]
    for number in replaced:
        signal.signal(number, stop)
    try:
        yield
    finally:
        for number in replaced:
            signal.signal(number, signal.SIG_DFL)
        if received:
            os.kill(os.getpid(), received[0])


def check_name(path) -> None:
    """Raise IsADirectoryError if path ends in a slash: `> out/` means a folder, and a Path
    would drop the slash and write a file named out."""
    name = os.fsdecode(path)
    if name.endswith(tuple(sep for sep in (os.sep, os.altsep) if sep)):
        raise IsADirectoryError(f"{name} ends in {name[-1]}, so it names a folder; give a file "
                                f"name")


def _target(path):
    """(the file a write to path lands in, its stat or None if new); OSError if unwritable."""
    check_name(path)
    path = Path(path)
    try:
        status = os.stat(path)  # follows symbolic links
    except FileNotFoundError:
        status = None
    except OSError as error:  # a loop of links, a name too long, a file as a folder, ...
        raise _renamed(error, f"{path}: {error.strerror}") from None
    if status is not None and not stat.S_ISREG(status.st_mode):
        if stat.S_ISDIR(status.st_mode):
            raise IsADirectoryError(f"{path} is a folder; give a file name")
        if not (stat.S_ISFIFO(status.st_mode) or stat.S_ISCHR(status.st_mode)):
            raise OSError(f"{path} is {_kind(status.st_mode)}; ourdl writes regular files, "
                          f"FIFOs and character devices such as /dev/null")
        if not os.access(path, os.W_OK):
            raise PermissionError(f"{path} is not writable")
        return path, status
    # Renaming onto a link would replace the link, so write where it points; a dangling link
    # names the file to create, as it does for `>`.
    target = Path(os.path.realpath(path)) if os.path.islink(path) else path
    folder = target.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"{path}: the folder {folder} does not exist")
    if status is not None and not os.access(target, os.W_OK):
        raise PermissionError(f"{path} is read-only")
    # Replacing a file means creating a temporary one beside it.
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{path}: the folder {folder} is not writable")
    return target, status


@contextlib.contextmanager
def _named_errors(path, temporary):
    """Re-raise an OSError about the temporary file, or about no file (a full disk during
    write), as one about path; errors about other files pass unchanged."""
    try:
        yield
    except OSError as error:
        if error.filename not in (None, str(temporary)) or error.strerror is None:
            raise
        raise _renamed(error, f"could not write {path}: {error.strerror}") from None


def _renamed(error: OSError, message: str) -> OSError:
    # The same subclass (PermissionError, ...), and errno, with a message for the user.
    renamed = type(error)(message)
    renamed.errno = error.errno
    return renamed


def _kind(mode) -> str:
    for test, kind in ((stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def _sync_folder(folder):
    # Makes the rename itself durable; a file system without folder fsync loses nothing else.
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
