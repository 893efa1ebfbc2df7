"""Every CUDA kernel against its CPU twin, and the public calls through backend="cuda", bit for
bit, on inputs of a few dozen rows."""

import numpy as np
import pytest
from gpudedup.kernels import cpu
from gpudedup.kernels import cuda as gk
from gpudedup.kernels import resample as rs

import gpudedup as gd
from gpudedup import search
from gpudedup.backend import resolve


def run_both(name, items, *args, outs):
    """Run kernel `name` on copies of args with both backends; return the two output lists."""
    cpu_args = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
    gpu_args = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
    getattr(cpu, name)(*cpu_args)
    gk.launch(getattr(gk, name), name, items, *gpu_args)
    return [cpu_args[k] for k in outs], [gpu_args[k] for k in outs]


def assert_twins(name, items, *args, outs):
    cpu_out, gpu_out = run_both(name, items, *args, outs=outs)
    for c, g in zip(cpu_out, gpu_out):
        np.testing.assert_array_equal(c, g)


def test_backend_is_cuda():
    assert resolve("cuda").name == "cuda"


@pytest.mark.parametrize("nbytes", [35, 40, 16, 8, 1])
def test_digest_rows(nbytes):
    rng = np.random.default_rng(nbytes)
    rows = np.zeros((11, -(-nbytes // 8) * 8), np.uint8)
    rows[:, :nbytes] = rng.integers(0, 256, (11, nbytes))
    assert_twins("digest_rows", 11, rows.view(np.uint64), nbytes, np.uint64(987654321),
                 np.zeros((11, 2), np.uint64), outs=[3])


def test_luma_images():
    rgb = np.random.default_rng(1).integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)
    assert_twins("luma_images", 3 * 5 * 7, rgb, np.zeros((3, 5, 7), np.uint8), outs=[1])


def test_linear_scales_and_nonfinite_flags():
    imgs = np.random.default_rng(2).normal(0, 1e3, (9, 4, 6))
    imgs[1] = 0.0
    imgs[4, 2, 3] = np.nan
    imgs[6, 0, 0] = -np.inf
    imgs[7] *= 2.0**-1060  # subnormal peak: two scale factors
    assert_twins("linear_scales", 9, imgs, np.zeros((9, 2)), np.zeros(9, np.uint8), outs=[1, 2])


PHASH_CASES = [
    ((5, 12, 12), np.uint8),  # upscaling both ways
    ((3, 40, 20), np.uint8),  # vertical first (Pillow 13)
    ((3, 20, 44), np.uint8),  # horizontal first, downscaling W
    ((3, 32, 32), np.uint8),  # no resize pass at all
    ((3, 10, 10), np.float32),  # linear path with the DCT shift
    ((2, 36, 9), np.uint16),
]


@pytest.mark.parametrize("shape,dtype", PHASH_CASES)
def test_phash_images(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    imgs = rng.integers(0, 256, shape).astype(dtype)
    n, height, width = shape
    uint8 = dtype == np.uint8
    scales = np.ones((n, 2))
    if not uint8:
        cpu.linear_scales(imgs, scales, np.zeros(n, np.uint8))
    h_starts, h_weights = rs.lanczos_taps(width, exact_sum=not uint8)
    v_starts, v_weights = rs.lanczos_taps(height, exact_sum=not uint8)
    basis2t = np.ascontiguousarray(rs.dct_basis(rs.DCT_BITS_2).T)
    cpu_out, gpu_out = run_both(
        "phash_images", n, imgs, scales, h_starts, h_weights, v_starts, v_weights,
        rs.vertical_first(height, width), uint8, rs.dct_basis(rs.DCT_BITS_1), basis2t,
        0 if uint8 else rs.LINEAR_DCT_SHIFT, np.zeros(n, np.uint64), np.zeros((n, 0), np.uint64),
        outs=[11])
    np.testing.assert_array_equal(cpu_out[0], gpu_out[0])
    assert cpu_out[0].any()


def _collect(counts, oi, oj, od):
    cap = oi.shape[1]
    return sorted((int(oi[b, t]), int(oj[b, t]), int(od[b, t]))
                  for b in range(counts.size) for t in range(min(int(counts[b]), cap)))


@pytest.mark.parametrize("self_join", [False, True])
@pytest.mark.parametrize("capacity", [64, 3])
def test_hamming_range(self_join, capacity):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 2**63, 37, dtype=np.int64).astype(np.uint64)
    b = a.copy() if self_join else rng.integers(0, 2**63, 29, dtype=np.int64).astype(np.uint64)
    b[::3] = a[: b[::3].size] ^ np.uint64(0b10110)  # near pairs
    block_rows, nblocks = 16, 3
    results = []
    for twin in ("cpu", "cuda"):
        counts = np.zeros(nblocks, np.int64)
        oi = np.full((nblocks, capacity), -1, np.int64)
        oj, od = oi.copy(), np.zeros((nblocks, capacity), np.uint8)
        starts = np.array([0, 16, 32], dtype=np.int64)
        args = (a, b, 24, self_join, starts, block_rows, counts, oi, oj, od)
        if twin == "cpu":
            cpu.hamming_range(*args)
        else:
            gk.launch(gk.hamming_range, "hamming_range", nblocks * block_rows, *args)
        results.append((counts.tolist(), _collect(counts, oi, oj, od) if capacity == 64 else 0))
    assert results[0] == results[1]
    assert sum(results[0][0]) > 0


def test_mih_bucket_sort_and_range():
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 2**63, 30, dtype=np.int64).astype(np.uint64)
    shift, mask = np.uint64(4), np.uint64(0xFF)
    outs = run_both("mih_bucket_sort", 30, codes, shift, mask, np.zeros(257, np.int64),
                    np.zeros(30, np.int64), np.zeros(30, np.uint64), outs=[3, 4, 5])
    (off_c, order_c, sorted_c), (off_g, order_g, sorted_g) = outs
    np.testing.assert_array_equal(off_c, off_g)
    # inside a bucket the order may differ; the bucket contents may not
    for k in range(256):
        lo, hi = off_c[k], off_c[k + 1]
        assert sorted(order_c[lo:hi]) == sorted(order_g[lo:hi])
        np.testing.assert_array_equal(codes[order_g[lo:hi]], sorted_g[lo:hi])


@pytest.mark.parametrize("strategy", ["brute", "mih"])
@pytest.mark.parametrize("self_join", [False, True])
def test_hamming_pairs_backends_agree(strategy, self_join, monkeypatch):
    monkeypatch.setattr(search, "BLOCK_ROWS", 8)
    monkeypatch.setattr(search, "INITIAL_CAPACITY", 2)  # force overflow and retry
    rng = np.random.default_rng(5)
    centers = rng.integers(0, 2**63, 6, dtype=np.int64).astype(np.uint64)
    codes = centers[rng.integers(0, 6, 40)] ^ (np.uint64(1) << rng.integers(0, 64, 40).astype(
        np.uint64))
    a, b = codes[:24], (None if self_join else codes[24:])
    got = {name: search.hamming_pairs(a, b, 5, be=resolve(name), strategy=strategy)
           for name in ("cpu", "cuda")}
    for c, g in zip(got["cpu"], got["cuda"]):
        np.testing.assert_array_equal(c, g)
    assert got["cpu"][0].size > 2  # more pairs than the first capacity: the retry ran


def _splits():
    rng = np.random.default_rng(6)
    train = rng.integers(0, 256, (10, 12, 12), dtype=np.uint8)
    valid = rng.integers(0, 256, (6, 12, 12), dtype=np.uint8)
    valid[0] = train[2]
    valid[1] = np.clip(train[5].astype(np.int16) + 6, 0, 255)
    train[9] = train[1]
    return train, valid


def test_public_calls_agree():
    train, valid = _splits()
    for fn in (gd.phash, gd.digest):
        np.testing.assert_array_equal(fn(train, backend="cpu"),
                                      fn(train, backend="cuda", batch_size=4))
    rgb = np.random.default_rng(7).integers(0, 256, (3, 9, 11, 3), dtype=np.uint8)
    np.testing.assert_array_equal(gd.phash(rgb, backend="cpu"), gd.phash(rgb, backend="cuda"))
    cpu_ov = gd.find_overlaps(train, valid, backend="cpu")
    gpu_ov = gd.find_overlaps(train, valid, backend="cuda", batch_size=3)
    np.testing.assert_array_equal(cpu_ov.pairs, gpu_ov.pairs)
    np.testing.assert_array_equal(cpu_ov.distance, gpu_ov.distance)
    np.testing.assert_array_equal(cpu_ov.exact, gpu_ov.exact)
    assert (2, 0) in list(gpu_ov) and (5, 1) in list(gpu_ov)


def test_scan_agrees():
    train, valid = _splits()
    labels = {"train": np.arange(10) % 3, "valid": np.arange(6) % 2}
    reports = [gd.scan({"train": train, "valid": valid}, labels=labels, backend=name)
               for name in ("cpu", "cuda")]
    assert reports[0].to_dict() == reports[1].to_dict()
    assert reports[0].conflicts == reports[1].conflicts


def test_nonfinite_raises_on_cuda():
    imgs = np.zeros((4, 6, 6), np.float32)
    imgs[2, 1, 1] = np.inf
    with pytest.raises(ValueError, match=r"images: image 2 contains NaN or inf"):
        gd.phash(imgs, backend="cuda")


def test_auto_backend_is_cuda_where_cuda_runs():
    assert resolve("auto", np.zeros(3)).name == "cuda"
