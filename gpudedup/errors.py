"""The project's own error classes: expected failures, each with a message a user can act on.

Bad input, hostile files and faults (disk full, permission denied, an interrupted write) raise
one of these. The command prints their message on one line and exits with status 2; anything
else is a bug and keeps its traceback. Each class also derives from the built-in exception a
caller would expect (``ValueError``, ``TypeError``, ``OSError``), so ``except ValueError`` keeps
working.
"""

from __future__ import annotations


class GpudedupError(Exception):
    """Base class of every expected failure of gpudedup."""


class InputError(GpudedupError, ValueError):
    """An argument, option or input file holds a value gpudedup cannot use."""


class InputTypeError(GpudedupError, TypeError):
    """An argument has a type gpudedup cannot use."""


class FileError(GpudedupError, OSError):
    """A file cannot be read or written: missing, unreadable, locked, or the disk is full."""


class BackendError(GpudedupError, RuntimeError):
    """The backend asked for cannot run here (no GPU, CuPy missing)."""


class MissingDependencyError(GpudedupError, ImportError):
    """An optional package a call needs is not installed (the message says how to get it)."""
