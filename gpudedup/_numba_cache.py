"""Where numba caches gpudedup's compiled kernels: a per-user folder, never the package.

Left to itself numba caches a function beside its source file when that folder is writable:
for an installed package that is ``site-packages/gpudedup/.../__pycache__``, files pip does
not know of, which survive an uninstall and then shadow a later editable install. This module
puts a locator in front of numba's own, for gpudedup's functions only: with ``NUMBA_CACHE_DIR``
set it defers to numba (which honours it); otherwise it uses ``$XDG_CACHE_HOME/gpudedup/numba``
(``~/.cache`` by default), then a per-user folder under the system temporary directory. Every
other function keeps numba's own choice.
"""

from __future__ import annotations

import os
import tempfile
import warnings

from numba.core import caching, config

PACKAGE = "gpudedup"


def cache_root() -> str:
    """The folder gpudedup's kernels are cached under when NUMBA_CACHE_DIR is not set."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, PACKAGE, "numba")


def _fallback_root() -> str:
    return os.path.join(tempfile.gettempdir(), f"{PACKAGE}-numba-{os.getuid()}")


# numba's locator bases are private: if a numba release renames them, gpudedup still imports
# and numba keeps its own choice (install() then does nothing and says so)
_BASES = tuple(getattr(caching, n, None) for n in ("_SourceFileBackedLocatorMixin",
                                                   "_CacheLocator"))
_KNOWN = None not in _BASES
if not _KNOWN:  # pragma: no cover - depends on the numba release
    _BASES = (object,)


class PackageCacheLocator(*_BASES):
    """Caches gpudedup's functions in a per-user folder (see the module docstring)."""

    def __init__(self, py_func, py_file, root: str):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = os.path.join(root, self.get_suitable_cache_subpath(py_file))

    def get_cache_path(self):
        return self._cache_path

    @classmethod
    def from_function(cls, py_func, py_file):
        module = getattr(py_func, "__module__", "") or ""
        if module != PACKAGE and not module.startswith(PACKAGE + "."):
            return None  # not ours: numba's own locators decide
        if config.CACHE_DIR or not os.path.exists(py_file):
            return None  # NUMBA_CACHE_DIR set: numba's UserProvidedCacheLocator honours it
        for root in (cache_root(), _fallback_root()):
            locator = cls(py_func, py_file, root)
            try:
                locator.ensure_cache_path()
            except OSError:
                continue
            return locator
        return None


def install() -> None:
    """Put PackageCacheLocator first in numba's locator list (once)."""
    if not _KNOWN or not hasattr(caching, "CacheImpl"):  # pragma: no cover
        warnings.warn("gpudedup: this numba release has no cache locators gpudedup knows; "
                      "numba caches gpudedup's kernels where it chooses", stacklevel=2)
        return
    for impl in {caching.CacheImpl, *_subclasses(caching.CacheImpl)}:
        classes = impl.__dict__.get("_locator_classes")
        if classes is not None and PackageCacheLocator not in classes:
            impl._locator_classes = [PackageCacheLocator, *classes]


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)
