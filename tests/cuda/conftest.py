"""CUDA twins: run where the cuda backend can run (a GPU, or NUMBA_ENABLE_CUDASIM=1 set before
numba is imported: `NUMBA_ENABLE_CUDASIM=1 pytest tests/cuda`); skipped elsewhere."""

import warnings

import pytest

from gpudedup.backend import cuda_available


def pytest_collection_modifyitems(config, items):
    if cuda_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device and NUMBA_ENABLE_CUDASIM is not set")
    for item in items:
        if "tests/cuda/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def small_launches(monkeypatch):
    """Tiny thread counts and tiles, so the small inputs still span several blocks and tiles
    (and the simulator, ~5k threads/s, stays quick)."""
    from gpudedup.kernels import cuda as gk

    monkeypatch.setattr(gk, "THREADS", 8)
    monkeypatch.setattr(gk, "PHASH_THREADS", 32)
    monkeypatch.setattr(gk, "SEARCH_ROWS", 8)
    monkeypatch.setattr(gk, "SEARCH_TILE", 16)
    with warnings.catch_warnings():
        # the simulator runs uint64 arithmetic on numpy scalars, which warn on wraparound
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
