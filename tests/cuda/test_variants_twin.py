"""phash_images with the eight dihedral variant hashes (out_variants (N, 8)): the CUDA twin
against the CPU kernel bit for bit, and compute_variant_hashes through backend="cuda"."""

import numpy as np
import pytest
from gpudedup.kernels import cpu
from gpudedup.kernels import cuda as gk
from gpudedup.kernels import resample as rs

import gpudedup as gd
from gpudedup import hashing, sources
from gpudedup.backend import resolve

CASES = [
    ((4, 12, 12), np.uint8),  # upscaling, square
    ((3, 40, 20), np.uint8),  # vertical first, non-square (codes 4-7 computed all the same)
    ((3, 32, 32), np.uint8),  # no resize pass
    ((3, 10, 10), np.float32),  # linear path with the DCT shift
]


def _args(imgs, width):
    n, height, w = imgs.shape
    uint8 = imgs.dtype == np.uint8
    scales = np.ones((n, 2))
    if not uint8:
        cpu.linear_scales(imgs, scales, np.zeros(n, np.uint8))
    h_starts, h_weights = rs.lanczos_taps(w, exact_sum=not uint8)
    v_starts, v_weights = rs.lanczos_taps(height, exact_sum=not uint8)
    basis2t = np.ascontiguousarray(rs.dct_basis(rs.DCT_BITS_2).T)
    # copies: the simulator writes every argument back, and the taps are cached read-only
    args = [imgs, scales, h_starts, h_weights, v_starts, v_weights, rs.vertical_first(height, w),
            uint8, rs.dct_basis(rs.DCT_BITS_1), basis2t, 0 if uint8 else rs.LINEAR_DCT_SHIFT,
            np.zeros(n, np.uint64), np.zeros((n, width), np.uint64)]
    return [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]


def _both(imgs, width):
    cpu_args = _args(imgs, width)
    gpu_args = _args(imgs, width)
    cpu.phash_images(*cpu_args)
    gk.launch(gk.phash_images, "phash_images", imgs.shape[0], *gpu_args)
    return cpu_args[-2:], gpu_args[-2:]


@pytest.mark.parametrize("shape,dtype", CASES)
def test_phash_images_variants_twin(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    imgs = rng.integers(0, 256, shape).astype(dtype)
    imgs[0] //= 64  # few levels: ties at the medians
    (c_out, c_var), (g_out, g_var) = _both(imgs, 8)
    np.testing.assert_array_equal(c_out, g_out)
    np.testing.assert_array_equal(c_var, g_var)
    np.testing.assert_array_equal(c_var[:, 0], c_out)
    assert len(np.unique(c_var[1])) > 1  # the variants differ from each other


def test_phash_images_without_variants_twin():
    imgs = np.random.default_rng(9).integers(0, 256, (3, 12, 12), dtype=np.uint8)
    (c_out, c_var), (g_out, g_var) = _both(imgs, 0)
    np.testing.assert_array_equal(c_out, g_out)
    assert c_var.shape == g_var.shape == (3, 0)
    (_, c_var8), _ = _both(imgs, 8)
    np.testing.assert_array_equal(c_var8[:, 0], g_out)


@pytest.mark.parametrize("threads", [1, 3])
def test_phash_images_variants_few_threads(threads, monkeypatch):
    # fewer threads than median jobs (8) and block hashes (4): the strided loops cover them
    monkeypatch.setattr(gk, "PHASH_THREADS", threads)
    imgs = np.random.default_rng(10).integers(0, 256, (2, 9, 9), dtype=np.uint8)
    (c_out, c_var), (g_out, g_var) = _both(imgs, 8)
    np.testing.assert_array_equal(c_out, g_out)
    np.testing.assert_array_equal(c_var, g_var)


def test_compute_variant_hashes_backends_agree():
    rng = np.random.default_rng(11)
    imgs = rng.integers(0, 256, (5, 12, 12), dtype=np.uint8)
    got = [hashing.compute_variant_hashes(sources.as_source(imgs, "x"), resolve(name),
                                          invariant="dihedral", shifts=1, batch_size=3)
           for name in ("cpu", "cuda")]
    np.testing.assert_array_equal(got[0][0], got[1][0])
    np.testing.assert_array_equal(got[0][1], got[1][1])
    np.testing.assert_array_equal(got[1][0][:, 0], gd.phash(imgs, backend="cuda"))


@pytest.mark.parametrize("dtype", ["uint8", "float32", ">f4", "bool"])
def test_variant_launches_are_in_the_signature_table(dtype, monkeypatch):
    # gk.launch raises TypeError on argument types missing from kernels/signatures.py
    monkeypatch.setattr(gk, "CHECK_SIGNATURES", True)
    imgs = (np.random.default_rng(12).random((2, 8, 8)) * 100).astype(dtype)
    codes, table = hashing.compute_variant_hashes(sources.as_source(imgs, "x"), resolve("cuda"),
                                                  invariant="dihedral", shifts=1)
    assert codes.shape == (2, 72)
    np.testing.assert_array_equal(codes[:, 0], gd.phash(imgs, backend="cpu"))
