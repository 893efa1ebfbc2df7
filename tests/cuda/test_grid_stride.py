"""Every kernel covers all its items whatever MAX_BLOCKS caps the grid at: with a grid of one or
two blocks (and the conftest's tiny blocks), results still equal the CPU twins bit for bit.
Launches also check their argument types against kernels/signatures.py."""

import numpy as np
import pytest
from gpudedup.kernels import cuda as gk

import gpudedup as gd
from gpudedup import search


@pytest.fixture(params=[1, 2], autouse=True)
def tiny_grid(request, monkeypatch):
    monkeypatch.setattr(gk, "MAX_BLOCKS", request.param)
    monkeypatch.setattr(gk, "CHECK_SIGNATURES", True)
    return request.param


def _codes(n, seed):
    # clusters of near codes, so a small threshold finds pairs in many row blocks
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, n // 4 + 1, dtype=np.uint64)
    flips = np.uint64(1) << rng.integers(0, 64, n, dtype=np.uint64)
    return base[np.arange(n) % base.size] ^ flips


@pytest.mark.parametrize("strategy", ["brute", "mih"])
def test_search_rows_past_the_grid(strategy):
    a = _codes(45, 1)
    b = a[1::2] ^ np.uint64(1 << 40)  # near codes of a, fewer rows
    for right in (None, b):
        want = search.hamming_pairs(a, right, 6, be=gd.backend.resolve("cpu"),
                                    strategy=strategy)
        got = search.hamming_pairs(a, right, 6, be=gd.backend.resolve("cuda"),
                                   strategy=strategy)
        assert want[0].size > 20  # pairs from many row blocks
        for w, g in zip(want, got):
            np.testing.assert_array_equal(w, g)


def test_hashing_images_past_the_grid():
    rng = np.random.default_rng(3)
    gray = rng.integers(0, 256, (5, 9, 11), dtype=np.uint8)
    floats = rng.normal(0, 50, (5, 9, 11)).astype(np.float32)
    rgb = rng.integers(0, 256, (3, 6, 5, 3), dtype=np.uint8)
    for x in (gray, floats, rgb):
        np.testing.assert_array_equal(gd.phash(x, backend="cpu"), gd.phash(x, backend="cuda"))
        np.testing.assert_array_equal(gd.digest(x, backend="cpu"),
                                      gd.digest(x, backend="cuda"))
