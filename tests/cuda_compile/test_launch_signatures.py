"""The drivers (hashing, search) launch every kernel with argument types from the one table in
kernels/signatures.py, and every table entry is one they launch: so the compile test compiles
exactly what a GPU would. The kernels themselves do not run: a dry backend records launches."""

import types as pytypes

import numpy as np
import pytest
from gpudedup.kernels import cuda as gk
from gpudedup.kernels.signatures import IMAGE_DTYPES, SIGNATURES, signature_of

from gpudedup import grid, hashing, search, sources, verify
from gpudedup.backend import Backend


class _Recorder:
    """Stands in for a compiled kernel: ``kernel[grid, block, stream, shared](*args)``."""

    def __init__(self, name, seen):
        self.name, self.seen = name, seen

    def __getitem__(self, config):
        return self

    def __call__(self, *args):
        self.seen.setdefault(self.name, set()).add(signature_of(args))


class _DryBackend(Backend):
    # device batches pass to the kernels as they are, as CuPy input does on a GPU
    # (backend._cupy_pipeline), so strided input reaches them with its own layout
    def map_batches(self, batches, work):
        for start, batch in batches:
            yield start, {k: np.asarray(v) for k, v in work(batch).items()}


@pytest.fixture
def launched(monkeypatch):
    """Kernel name -> the signatures launched; every launch goes through gk.launch with its
    signature check on."""
    monkeypatch.setattr(gk, "CHECK_SIGNATURES", True)
    seen = {}
    shim = pytypes.SimpleNamespace(launch=gk.launch,
                                   **{n: _Recorder(n, seen) for n in gk._GEOMETRY})
    return _DryBackend("cuda", np, shim), seen


def _hash_all_dtypes(be):
    rng = np.random.default_rng(0)
    for dtype in IMAGE_DTYPES + ("float16", ">f4", "<u2"):
        x = (rng.random((3, 20, 30)) * 100).astype(dtype)
        hashing.compute_hashes(sources.as_source(x, "x"), be)
        # strided (a CuPy view passed through); digests still see contiguous words
        hashing.compute_hashes(sources.as_source(np.ones((3, 20, 60), dtype)[:, :, ::2], "x"),
                               be)
    hashing.compute_hashes(sources.as_source(np.ones((2, 9, 7, 3), np.uint8), "x"), be)
    # the variant hashes of the flipped, rotated and shifted search
    for dtype in ("uint8", "float32", "uint16"):
        x = (rng.random((3, 16, 16)) * 100).astype(dtype)
        hashing.compute_variant_hashes(sources.as_source(x, "x"), be, invariant="dihedral",
                                       shifts=1)


def _search_all(be):
    a = np.arange(40, dtype=np.uint64)
    for strategy in ("brute", "mih"):
        search.hamming_pairs(a, None, 5, be=be, strategy=strategy)
        search.hamming_pairs(a, a[:17], 5, be=be, strategy=strategy)


def _verify_all_dtypes(be):
    rng = np.random.default_rng(1)
    for dtype in IMAGE_DTYPES + ("float16", ">f4", "<u2"):
        x = sources.as_source((rng.random((4, 12, 10)) * 100).astype(dtype), "x")
        idx = np.array([0, 1, 3], np.int64)
        verify.verify_sources(x, x, idx, idx[::-1].copy(), be, batch_size=2)
    # as the search calls it: a cut, per-pair transforms, views on a common grid
    x = sources.as_source((rng.random((4, 12, 12)) * 100).astype(np.uint8), "x")
    y = sources.as_source(rng.random((4, 24, 24)).astype(np.float32), "y")
    view_x, view_y, _ = grid.common_grid(x, y)
    idx = np.array([0, 1, 3], np.int64)
    verify.verify_sources(view_x, view_y, idx, idx, be, cut=8.0,
                          transform=np.array([0, 5, 1], np.uint8))


def test_drivers_launch_only_table_signatures(launched):
    # gk.launch raises TypeError on a signature outside the table
    be, seen = launched
    _hash_all_dtypes(be)
    _search_all(be)
    _verify_all_dtypes(be)
    assert set(seen) == set(SIGNATURES)


def test_every_table_signature_is_launched(launched):
    be, seen = launched
    _hash_all_dtypes(be)
    _search_all(be)
    _verify_all_dtypes(be)
    # int64 order arrays only past 2**31 indexed codes: too big to drive, checked by type
    unreached = {(name, sig) for name, sigs in SIGNATURES.items() for sig in sigs
                 if sig not in seen.get(name, ())}
    assert {(name, str(sig[4] if name == "mih_bucket_sort" else sig[11]))
            for name, sig in unreached} == {("mih_bucket_sort", "array(int64, 1d, C)"),
                                            ("mih_range", "array(int64, 2d, C)")}


def test_check_rejects_an_unknown_signature(monkeypatch):
    monkeypatch.setattr(gk, "CHECK_SIGNATURES", True)
    words = np.zeros((2, 2), np.uint32)  # uint32 words: not how digest_rows is launched
    with pytest.raises(TypeError, match="digest_rows"):
        gk.launch(_Recorder("digest_rows", {}), "digest_rows", 2, words, 8, np.uint64(1),
                  np.zeros((2, 2), np.uint64))
