"""gpudedup: find leaked, duplicated and near-duplicated images in array datasets, fast."""

from . import _numba_cache

# before any kernel is defined: numba caches gpudedup's kernels per user, never in the package
_numba_cache.install()

from ._version import __version__  # noqa: E402
from .api import (  # noqa: E402
    DEFAULT_MIN_SIMILARITY,
    DEFAULT_THRESHOLD,
    clean,
    find_duplicates,
    find_overlaps,
    scan,
)
from .cleaning import CleanPlan, keep_masks, plan_clean  # noqa: E402
from .diagnostics import info  # noqa: E402
from .distributed import dask_from_hdf5  # noqa: E402
from .errors import GpudedupError, InputError, InputTypeError  # noqa: E402
from .hashing import digest, hash_images, phash  # noqa: E402
from .hashset import HashSet  # noqa: E402
from .results import Conflict, Overlaps, Report  # noqa: E402

__all__ = [
    "DEFAULT_MIN_SIMILARITY",
    "DEFAULT_THRESHOLD",
    "CleanPlan",
    "Conflict",
    "GpudedupError",
    "HashSet",
    "InputError",
    "InputTypeError",
    "Overlaps",
    "Report",
    "__version__",
    "clean",
    "dask_from_hdf5",
    "digest",
    "find_duplicates",
    "find_overlaps",
    "hash_images",
    "info",
    "keep_masks",
    "phash",
    "plan_clean",
    "scan",
]
