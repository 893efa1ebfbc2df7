"""Argument checks shared by the public calls, in one place so that every call words them alike."""

from __future__ import annotations

import numpy as np

from .errors import InputError

STRATEGIES = ("auto", "brute", "mih")


def is_int(value) -> bool:
    """Whether ``value`` is an integer (a Python or numpy int, not a bool)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_threshold(threshold) -> int:
    """``threshold`` as an int in 0..64, or InputError naming it."""
    if not is_int(threshold) or not 0 <= int(threshold) <= 64:
        raise InputError(f"threshold: expected an integer from 0 to 64, got {threshold!r}")
    return int(threshold)


def check_strategy(strategy) -> str:
    """``strategy`` if it is one of STRATEGIES, or InputError naming it."""
    if strategy not in STRATEGIES:
        raise InputError(f"strategy: expected one of {', '.join(STRATEGIES)}, got {strategy!r}")
    return strategy


def check_batch_size(batch_size) -> int | None:
    """``batch_size`` if it is None or a positive integer, or InputError naming it."""
    if batch_size is not None and (not is_int(batch_size) or batch_size < 1):
        raise InputError(f"batch_size: expected a positive integer or None, got {batch_size!r}")
    return batch_size


def check_count(value, name: str) -> int:
    """``value`` as a non-negative int, or InputError naming ``name``."""
    if not is_int(value) or value < 0:
        raise InputError(f"{name}: expected a non-negative integer, got {value!r}")
    return int(value)


def check_share(value, name: str) -> float:
    """``value`` as a float in [0, 1], or InputError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 <= float(value) <= 1:
        raise InputError(f"{name}: expected a number from 0 to 1, got {value!r}")
    return float(value)


def is_cupy(obj) -> bool:
    """Whether ``obj`` is a CuPy array (without importing CuPy)."""
    return type(obj).__module__.split(".")[0] == "cupy"


INVARIANTS = (None, "dihedral")
#: largest shift (px) of the candidate hashes of shifted copies
MAX_CANDIDATE_SHIFT = 2


def check_invariant(invariant) -> str | None:
    """``invariant`` as None or "dihedral" ("none" reads as None), or InputError naming it."""
    if invariant == "none":
        return None
    if invariant not in INVARIANTS:
        raise InputError(f"invariant: expected None or 'dihedral', got {invariant!r}")
    return invariant


def check_shifts(shifts) -> int:
    """``shifts`` as an int in 0..MAX_CANDIDATE_SHIFT, or InputError naming it."""
    if not is_int(shifts) or not 0 <= int(shifts) <= MAX_CANDIDATE_SHIFT:
        raise InputError(f"shifts: expected an integer from 0 to {MAX_CANDIDATE_SHIFT}, got "
                         f"{shifts!r}")
    return int(shifts)
