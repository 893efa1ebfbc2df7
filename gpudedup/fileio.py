"""Writing outputs safely: every output of gpudedup goes through this module.

What is guaranteed about an output path:

- A symlink is resolved and its target is written; the link stays a link.
- A regular file (or a new name) is written under a temporary name beside the target,
  ``.NAME.gpudedup-<pid>-<random>.tmp``, flushed to disk, then renamed over it: readers see the
  old file or the complete new one, never a part.
- A FIFO, a device or another non-regular file is never renamed over or removed: a text report is
  streamed into it; an HDF5 output to it is refused.
- ``-`` is standard output for text reports, and refused for HDF5 outputs.
- On any failure, Ctrl-C (SIGINT) or SIGTERM included, the temporary file is removed. A
  temporary file left by a run that was killed (SIGKILL, power loss) is recognised by its process
  id and removed by the next write to the same path; one of a running process is never touched.
- Free space is checked before writing where the size can be estimated, and a full disk during
  the write is one :class:`~gpudedup.errors.FileError` naming the output (HDF5 files are written
  through a guarded file object, so the HDF5 library never sees a failed write: a failed write
  inside HDF5 has made ``File.close`` segfault).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import secrets
import shutil
import signal
import stat
import sys
import threading
from collections.abc import Iterable, Mapping

from .errors import FileError, InputError

#: space asked for beyond an estimated size: a share of it, plus room for metadata
SPACE_MARGIN = 0.05
SPACE_SLACK = 1 << 20

_TEMP_TAG = ".gpudedup-"
# the longest part of the target's name kept in a temporary name (NAME_MAX is 255 bytes)
_NAME_KEEP = 120

class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; raised by the command's signal handlers.

    A :class:`KeyboardInterrupt`, so that code which cleans up after Ctrl-C does the same
    after SIGTERM.
    """

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


# the signal that interrupted this process (set by the command's handlers), or None
_interrupted: int | None = None


# ------------------------------------------------------------------------- interrupts


def note_interrupt(signum: int) -> None:
    """Record that signal ``signum`` interrupted the process.

    The command's signal handlers call this before raising. An output is never renamed into
    place after an interrupt, even when the exception the handler raised was swallowed on the
    way (a ``__del__`` or a callback that cannot propagate it).

    Parameters
    ----------
    signum : int
        The signal received (``signal.SIGINT`` or ``signal.SIGTERM``).
    """
    global _interrupted
    _interrupted = signum


def interrupted() -> int | None:
    """The signal recorded by :func:`note_interrupt`, or None."""
    return _interrupted


def clear_interrupt() -> None:
    """Forget a recorded interrupt (the command does this when it starts and ends)."""
    global _interrupted, _deferred
    _interrupted = None
    _deferred = False


# how deep the process is inside a callback HDF5 makes into _GuardedFile: an exception raised
# there would reach HDF5 as a failed write, which leaves the file in a state that segfaults
_in_callback = 0
# an interrupt is waiting for HDF5 to return (a SIGALRM retry is armed)
_deferred = False
# seconds between tries to raise an interrupt that arrived inside such a callback
_RETRY_S = 0.005


def signal_handler(signum, frame) -> None:
    """Handler for SIGINT and SIGTERM that the command installs: raise :class:`Interrupted`.

    Every write in progress then runs its cleanup and removes its temporary file. A signal that
    arrives while HDF5 is inside a write callback is raised a moment later, once HDF5 has
    returned (SIGALRM, handled by :func:`retry_handler`).

    Parameters
    ----------
    signum : int
        The signal received.
    frame : frame
        The interrupted frame (unused).
    """
    global _deferred
    note_interrupt(signum)
    if _in_callback:
        _deferred = True
        signal.setitimer(signal.ITIMER_REAL, _RETRY_S)
        return
    raise _raising(signum)


def _raising(signum: int) -> Interrupted:
    # the interrupt is being raised: a retry still pending must not raise it a second time
    # (inside the cleanup it starts)
    global _deferred
    if _deferred:
        _deferred = False
        with contextlib.suppress(ValueError):  # not the main thread
            signal.setitimer(signal.ITIMER_REAL, 0)
    return Interrupted(signum)


def retry_handler(signum, frame) -> None:
    """SIGALRM handler paired with :func:`signal_handler`: raise a deferred interrupt now."""
    if _deferred and _interrupted is not None:
        signal_handler(_interrupted, frame)


@contextlib.contextmanager
def _signals_blocked():
    # cleanup must finish even when a second Ctrl-C arrives; a blocked signal is delivered
    # (and its handler raises) as soon as the block ends
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    masked = {signal.SIGINT, signal.SIGTERM, signal.SIGALRM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, masked)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# ------------------------------------------------------------------------ path checks


def _label(option: str | None, path) -> str:
    return f"{option}: {os.fspath(path)!r}" if option else repr(os.fspath(path))


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def _target(path, option: str | None, *, hdf5: bool) -> tuple[str, os.stat_result | None]:
    # the file a write to ``path`` really writes: symlinks resolved; its stat if it exists
    text = os.fspath(path)
    if text == "":
        raise InputError(f"{_label(option, path)}: an empty path")
    if text == "-":
        if hdf5:
            raise InputError(f"{_label(option, path)}: an HDF5 file cannot be written to "
                             "standard output; give a file path")
        return text, None
    target = os.path.realpath(text)
    try:
        info = os.stat(target)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise FileError(f"{_label(option, path)}: cannot write here: "
                        f"{exc.strerror or exc}") from None
    if info is not None:
        if stat.S_ISDIR(info.st_mode):
            raise InputError(f"{_label(option, path)} is a directory; give a file path")
        if hdf5 and not stat.S_ISREG(info.st_mode):
            raise InputError(f"{_label(option, path)} is {_kind(info.st_mode)}; an HDF5 output "
                             "must be a regular file (it is written under a temporary name and "
                             "renamed), so choose a file path")
    return target, info


def _check_folder(target: str, info, option: str | None, path) -> None:
    if info is not None and not stat.S_ISREG(info.st_mode):
        # streamed into directly: the file itself must be writable, not its folder
        if not os.access(target, os.W_OK):
            raise FileError(f"{_label(option, path)}: permission denied")
        return
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise FileError(f"{_label(option, path)}: the directory {folder!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise FileError(f"{_label(option, path)}: cannot write in the directory {folder!r} "
                        "(permission denied or a read-only file system)")


def _identity(target: str, info) -> tuple:
    return ("inode", info.st_dev, info.st_ino) if info is not None else ("path", target)


def check_outputs(outputs: Mapping[str, object], inputs: Mapping[str, object] | Iterable = (),
                  *, hdf5: Iterable[str] = ()) -> None:
    """Refuse, before any work, outputs that would fail or destroy something.

    Checked: every output's directory exists and is writable (or, for a FIFO or device, the
    file is writable); no two outputs name the same file and no output names an input (same
    path, symlink or hard link); ``-`` (standard output) is used at most once and never for an
    HDF5 output; HDF5 outputs are regular files (or new names).

    Parameters
    ----------
    outputs : mapping of str to path or None
        Option name (as the user typed it, e.g. ``"--json"``) to output path; None is skipped.
    inputs : mapping of str to path, or iterable of paths
        Files read by the run (option name to path, or just paths); None is skipped.
    hdf5 : iterable of str
        The options of ``outputs`` that write HDF5 files.

    Raises
    ------
    InputError
        A path that cannot be an output of its kind, or two that collide.
    FileError
        A missing or unwritable directory.

    Examples
    --------
    >>> check_outputs({"--json": "-", "--csv": "-"})
    Traceback (most recent call last):
    ...
    gpudedup.errors.InputError: --csv: '-': --json already writes to standard output
    """
    hdf5 = set(hdf5)
    if isinstance(inputs, Mapping):
        named_inputs = [(name, p) for name, p in inputs.items() if p is not None]
    else:
        named_inputs = [(None, p) for p in inputs if p is not None]
    input_of: dict[tuple, str | None] = {}
    for name, p in named_inputs:
        target = os.path.realpath(os.fspath(p))
        try:
            info = os.stat(target)
        except OSError:
            info = None
        input_of.setdefault(_identity(target, info), name)
    taken: dict[tuple, str] = {}
    for option, path in outputs.items():
        if path is None:
            continue
        target, info = _target(path, option, hdf5=option in hdf5)
        if target == "-":
            key = ("stdout",)
            if key in taken:
                raise InputError(f"{_label(option, path)}: {taken[key]} already writes to "
                                 "standard output")
            taken[key] = option
            continue
        key = _identity(target, info)
        if key in input_of:
            name = input_of[key]
            what = f"the input file of {name}" if name else "an input file"
            raise InputError(f"{_label(option, path)} is {what}; choose another path")
        if key in taken:
            raise InputError(f"{_label(option, path)} is the same file as {taken[key]}; "
                             "give each output its own path")
        _check_folder(target, info, option, path)
        taken[key] = option


def _temp_prefix(target: str) -> str:
    name = os.path.basename(target)[:_NAME_KEEP]
    return f".{name}{_TEMP_TAG}"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def remove_stale_temps(path) -> list[str]:
    """Remove temporary files that a dead run left beside ``path``.

    A temporary file is named ``.NAME.gpudedup-<pid>-<random><suffix>``; one whose process no
    longer exists is removed, one of a running process is left alone.

    Parameters
    ----------
    path : path
        The output (after resolving symlinks) whose leftovers to remove.

    Returns
    -------
    list of str
        The paths removed.
    """
    target = os.fspath(path)
    folder = os.path.dirname(target) or "."
    prefix = _temp_prefix(target)
    pattern = re.compile(re.escape(prefix) + r"(\d+)-[0-9a-f]+\.[\w.]*tmp$")
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = pattern.match(name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        full = os.path.join(folder, name)
        with contextlib.suppress(FileNotFoundError):  # another run may remove it first
            os.remove(full)
            removed.append(full)
    return removed


def _new_temp(target: str, suffix: str) -> str:
    folder = os.path.dirname(target)
    for _ in range(100):
        tmp = os.path.join(folder, f"{_temp_prefix(target)}{os.getpid()}-"
                                   f"{secrets.token_hex(4)}{suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileError(f"cannot create a temporary file in {folder!r}")  # pragma: no cover


def _remove_quietly(tmp: str) -> None:
    with _signals_blocked(), contextlib.suppress(FileNotFoundError):
        os.remove(tmp)


def check_free_space(path, need: int, option: str | None = None) -> None:
    """Raise :class:`FileError` when the file system of ``path`` has less than ``need`` bytes
    free (plus a margin).

    Parameters
    ----------
    path : path
        The output (its directory's file system is checked).
    need : int
        Estimated size of the output in bytes; 0 skips the check.
    option : str, optional
        The option that named the output, for the message.
    """
    if not need:
        return
    target = os.path.realpath(os.fspath(path))
    folder = os.path.dirname(target)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # cannot tell: the write itself will say
    want = int(need * (1 + SPACE_MARGIN)) + SPACE_SLACK
    if free < want:
        raise FileError(f"{_label(option, path)}: not enough free space: writing it needs about "
                        f"{_size(want)} and {folder!r} has {_size(free)} free")


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _as_file_error(exc: OSError, option: str | None, path) -> FileError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        why = "the disk is full (no space left on device)"
    else:
        why = exc.strerror or str(exc)
    return FileError(f"{_label(option, path)}: cannot write: {why}")


def _commit(tmp: str, target: str) -> None:
    # never rename a file into place after an interrupt, even one whose exception got lost
    if _interrupted is not None:
        raise _raising(_interrupted)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, target)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path, suffix: str = ".tmp", *, need: int = 0, option: str | None = None):
    """Yield a temporary path beside the file ``path`` names; rename it there on success.

    Symlinks are resolved (the target is replaced, the link stays); a FIFO, device or other
    non-regular file is refused. On success the file gets the permissions a new file would get
    (umask), is flushed to disk and renamed over the target; on any failure or interrupt it is
    removed. Leftovers of dead runs on the same path are removed first.

    Parameters
    ----------
    path : path
        The output.
    suffix : str
        Ending of the temporary name.
    need : int
        Estimated size in bytes for a free-space check before writing (0: no check).
    option : str, optional
        The option that named the output, for messages.

    Raises
    ------
    FileError
        The file cannot be written (an OSError while writing becomes one).
    """
    target, _ = _target(path, option, hdf5=True)
    remove_stale_temps(target)
    check_free_space(target, need, option)
    try:
        tmp = _new_temp(target, suffix)
    except OSError as exc:
        raise _as_file_error(exc, option, path) from None
    try:
        yield tmp
        _fsync(tmp)
        _commit(tmp, target)
    except BaseException as exc:
        _remove_quietly(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, FileError):
            raise _as_file_error(exc, option, path) from exc
        raise


# -------------------------------------------------------------------------------- text


def write_text(path, text: str, *, option: str | None = None) -> None:
    """Write a text report to ``path`` as :mod:`gpudedup.fileio` guarantees.

    ``-`` writes to standard output; a FIFO or device is written directly (no temporary file,
    never renamed over); any other path atomically (temporary file, then renamed).

    Parameters
    ----------
    path : path
        The output, or ``"-"``.
    text : str
        What to write (UTF-8).
    option : str, optional
        The option that named the output, for messages.

    Raises
    ------
    FileError
        The output cannot be written (disk full, reader gone, permission denied).
    """
    data = text.encode("utf-8")
    target, info = _target(path, option, hdf5=False)
    try:
        if target == "-":
            stream = sys.stdout
            if hasattr(stream, "buffer"):
                stream.flush()
                stream.buffer.write(data)
            else:
                stream.write(text)
            stream.flush()
            return
        if info is not None and not stat.S_ISREG(info.st_mode):
            # no O_TRUNC or O_CREAT: a FIFO or device stays what it is
            with open(os.open(target, os.O_WRONLY), "wb", closefd=True) as handle:
                handle.write(data)
            return
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise FileError(f"{_label(option, path)}: the reader closed it before the report "
                            "was written") from None
        raise _as_file_error(exc, option, path) from None
    with atomic_path(path, need=len(data), option=option) as tmp, open(tmp, "wb") as handle:
        handle.write(data)


# -------------------------------------------------------------------------------- HDF5


class _GuardedFile(io.RawIOBase):
    # The file object h5py's "fileobj" driver writes through. A failed write (disk full) is
    # recorded and later writes are dropped, and HDF5 is told each write succeeded: after a
    # failed write, HDF5 2.0 leaves the file half closed, and closing it again (or at exit)
    # segfaults. The recorded error is raised once HDF5 has closed the file.

    def __init__(self, path: str):
        super().__init__()
        self._fd = os.open(path, os.O_RDWR | os.O_TRUNC)
        self._pos = 0
        self.error: OSError | None = None
        self.interrupt: KeyboardInterrupt | None = None

    def readable(self):
        return True

    def writable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=os.SEEK_SET):
        if whence == os.SEEK_SET:
            self._pos = offset
        elif whence == os.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = os.fstat(self._fd).st_size + offset
        return self._pos

    def tell(self):
        return self._pos

    def _call(self, operation, *args):
        # run inside HDF5's callback: never let an exception reach HDF5. Ctrl-C under the
        # default handler (a Python caller, not the command) is kept and raised by h5_output
        # once the file is closed; pread, pwrite and ftruncate at an offset can be retried.
        global _in_callback
        _in_callback += 1
        try:
            while True:
                try:
                    return operation(*args)
                except KeyboardInterrupt as exc:
                    self.interrupt = exc
        finally:
            _in_callback -= 1

    def readinto(self, buffer):
        n = self._call(os.preadv, self._fd, [buffer], self._pos)
        self._pos += n
        return n

    def _write_all(self, view):
        done = 0
        try:
            while done < len(view):  # pwrite may write less than asked
                done += os.pwrite(self._fd, view[done:], self._pos + done)
        except OSError as exc:
            self.error = exc

    def write(self, buffer):
        view = memoryview(buffer).cast("B")
        # after a failure or an interrupt, the file is removed anyway: drop the rest
        if self.error is None and self.interrupt is None and _interrupted is None:
            self._call(self._write_all, view)
        self._pos += len(view)
        return len(view)

    def _truncate(self, size):
        try:
            os.ftruncate(self._fd, size)
        except OSError as exc:
            self.error = exc

    def truncate(self, size=None):
        size = self._pos if size is None else size
        if self.error is None and self.interrupt is None and _interrupted is None:
            self._call(self._truncate, size)
        return size

    def flush(self):
        pass

    def fsync(self):
        os.fsync(self._fd)

    def close(self):
        if not self.closed:
            os.close(self._fd)
        super().close()


@contextlib.contextmanager
def h5_output(path, *, need: int = 0, option: str | None = None):
    """Yield a new ``h5py.File`` that becomes ``path`` when the block ends without error.

    Written under a temporary name beside the (symlink-resolved) target, flushed to disk and
    renamed over it; ``-``, FIFOs and devices are refused; on any failure or interrupt the
    temporary file is removed. A full disk is one :class:`FileError` naming the output, and
    never leaves the HDF5 library in a state that crashes the process.

    Parameters
    ----------
    path : path
        The output.
    need : int
        Estimated size in bytes for a free-space check before writing (0: no check).
    option : str, optional
        The option that named the output, for messages.

    Raises
    ------
    FileError
        The file cannot be written, or the disk filled while writing it.
    """
    import h5py

    with atomic_path(path, ".h5.tmp", need=need, option=option) as tmp:
        guard = _GuardedFile(tmp)
        try:
            handle = h5py.File(guard, "w")
            try:
                yield handle
            except BaseException as exc:
                # no second Ctrl-C inside the close that cleans up (it would break HDF5)
                with _signals_blocked():
                    handle.close()
                # the disk filling up is what went wrong, whatever the body made of it
                if guard.error is not None and not isinstance(exc, KeyboardInterrupt):
                    raise _as_file_error(guard.error, option, path) from None
                raise
            handle.close()
            if guard.interrupt is not None:
                raise guard.interrupt
            if guard.error is not None:
                raise _as_file_error(guard.error, option, path) from None
            guard.fsync()
        finally:
            guard.close()


def estimate_h5_copy(path, fractions: Mapping[str, float] | None = None) -> int:
    """Bytes a copy of the HDF5 file ``path`` is expected to take, for a free-space check.

    Each dataset counts with the bytes it takes on disk (compressed data as stored, so the
    estimate of a recompressed copy is only an estimate); a dataset named in ``fractions``
    counts with that share of it (the rows a clean keeps).

    Parameters
    ----------
    path : path
        The HDF5 file copied.
    fractions : mapping of str to float, optional
        Dataset path (``"/train/images"``) to the share of its rows copied.

    Returns
    -------
    int
        The estimate; 0 when the file cannot be read (the check is then skipped).
    """
    import h5py

    fractions = dict(fractions or {})
    total = 0

    def visit(name, obj):
        nonlocal total
        if isinstance(obj, h5py.Dataset):
            stored = obj.id.get_storage_size() or 0
            total += int(stored * fractions.get("/" + name, 1.0))

    try:
        with h5py.File(os.fspath(path), "r") as handle:
            handle.visititems(visit)
    except (OSError, ValueError):
        return 0
    return total
