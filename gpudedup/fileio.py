"""Writing outputs safely: under a temporary name beside the target, renamed into place."""

from __future__ import annotations

import contextlib
import os
import tempfile

from .errors import FileError


@contextlib.contextmanager
def atomic_path(path, suffix: str = ".tmp"):
    """Yield a temporary path beside ``path``; on success give it the permissions a new file
    would get (umask) and rename it to ``path``; on failure remove it."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".gpudedup-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, FileError):
            raise FileError(f"cannot write {path!r}: {exc.strerror or exc}") from exc
        raise


def same_file(a, b) -> bool:
    """Whether paths ``a`` and ``b`` name the same file (same path, symlink or hard link)."""
    a, b = os.fspath(a), os.fspath(b)
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.abspath(a) == os.path.abspath(b)
