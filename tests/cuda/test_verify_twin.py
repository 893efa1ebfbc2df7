"""The CUDA twin of pair_residuals against the CPU kernel, bit for bit (residuals and shifts),
and score_pairs through backend="cuda" against backend="cpu"; a few dozen pairs each."""

import numpy as np
import pytest
from gpudedup.kernels import cpu
from gpudedup.kernels import cuda as gk
from numba import cuda

from gpudedup import verify


def _twins(a, b, i, j, max_shift=2, cut=-1.0):
    i = np.asarray(i, np.int64)
    j = np.asarray(j, np.int64)
    out = []
    for run in ("cpu", "cuda"):
        residual = np.full(i.size, -1.0)
        shift = np.full((i.size, 2), 99, np.int8)
        if run == "cpu":
            cpu.pair_residuals(a, b, i, j, max_shift, float(cut), residual, shift)
        else:
            gk.launch(gk.pair_residuals, "pair_residuals", i.size, a, b, i, j,
                      np.int64(max_shift), np.float64(cut), residual, shift)
        out.append((residual, shift))
    return out


def _pictures(n, shape, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:shape[0], :shape[1]]
    base = np.sin(x[None] * rng.uniform(0.1, 0.6, (n, 1, 1))) + np.cos(
        y[None] * rng.uniform(0.1, 0.6, (n, 1, 1)))
    return base + rng.normal(0, 0.2, (n,) + shape)


@pytest.mark.parametrize("dtype,shape", [(np.uint8, (12, 12)), (np.uint16, (9, 17)),
                                         (np.int64, (16, 16)), (np.float32, (12, 20)),
                                         (np.float64, (8, 8)), (np.int8, (28, 28))])
def test_pair_residuals_twin(dtype, shape):
    n = 3 if shape == (28, 28) else 6
    pics = _pictures(n, shape, shape[0] + shape[1])
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        top = min(info.max, 2**40)
        lo = info.min if info.min < 0 else 0
        pics = (pics - pics.min()) / np.ptp(pics) * (top - lo) + lo
        pics = np.clip(np.round(pics), lo, top).astype(dtype)
    else:
        pics = pics.astype(dtype)
    other = pics[::-1].copy()
    other[0] = np.roll(pics[0], (1, -1), (0, 1))  # a shifted copy
    other[1] = pics[1]  # an exact copy
    rng = np.random.default_rng(1)
    i = np.r_[0, 1, rng.integers(0, n, 2 * n)]
    j = np.r_[0, 1, rng.integers(0, n, 2 * n)]
    (rc, sc), (rg, sg) = _twins(pics, other, i, j)
    np.testing.assert_array_equal(rg, rc)
    np.testing.assert_array_equal(sg, sc)
    assert rc[1] == 0.0 and (rc >= 0).all()


def test_constant_and_tiny_images_twin():
    imgs = np.zeros((4, 6, 5), np.float32)
    imgs[1] = 3.5
    imgs[2] = np.arange(30, dtype=np.float32).reshape(6, 5)
    imgs[3] = -1e-300  # a float32 zero after the cast: one level
    (rc, sc), (rg, sg) = _twins(imgs, imgs, [0, 0, 2, 0, 3, 2], [0, 1, 0, 2, 3, 2])
    np.testing.assert_array_equal(rg, rc)
    np.testing.assert_array_equal(sg, sc)


def test_max_shift_and_tiny_ranges_twin():
    rng = np.random.default_rng(5)
    a = rng.normal(0, 1e-12, (4, 16, 24))  # a tiny value range: scaled up exactly
    for max_shift in (0, 1, 3):
        (rc, sc), (rg, sg) = _twins(a, a[::-1].copy(), [0, 1, 2, 3], [0, 1, 2, 3], max_shift)
        np.testing.assert_array_equal(rg, rc)
        np.testing.assert_array_equal(sg, sc)


def test_score_pairs_cuda_equals_cpu():
    pics = np.round((_pictures(8, (14, 14), 9) + 3) * 40).astype(np.uint8)
    rng = np.random.default_rng(9)
    i, j = rng.integers(0, 8, 20), rng.integers(0, 8, 20)
    cpu_out = verify.score_pairs(pics, None, i, j, backend="cpu")
    for batch in (None, 7):
        gpu_out = verify.score_pairs(pics, None, i, j, backend="cuda", batch_size=batch)
        for g, c in zip(gpu_out, cpu_out):
            assert g.dtype == c.dtype
            np.testing.assert_array_equal(g, c)


@pytest.mark.parametrize("dtype,shape", [(np.uint8, (28, 28)), (np.float32, (16, 16)),
                                         (np.uint16, (12, 20))])
def test_pair_residuals_twin_with_cut(dtype, shape):
    # block levels 8-4-2 at 28x28, 4-2 at 16x16, 2 at 12x20 (shift limits 2, 2, 1 and 2)
    n = 4
    pics = _pictures(n, shape, 7 + shape[1])
    pics = (pics - pics.min()) / np.ptp(pics)
    rng = np.random.default_rng(3)
    other = pics[::-1] + rng.normal(0, 0.3, pics.shape)
    other[0] = pics[0] * 0.8 + 0.1 + rng.normal(0, 0.01, shape)  # a copy within the cut
    other[1] = np.roll(pics[1], (1, 1), (0, 1))
    if dtype == np.float32:
        pics, other = pics.astype(dtype), other.astype(dtype)
    else:
        top = 255 if dtype == np.uint8 else 60000
        pics = np.round(pics * top).astype(dtype)
        other = np.round(np.clip(other, 0, 1) * top).astype(dtype)
    i = np.r_[0, 1, np.sort(rng.integers(0, n, 10))]
    j = np.r_[0, 1, rng.integers(0, n, 10)]
    (full, full_shift), _ = _twins(pics, other, i, j)
    for cut in (0.0, 3.0, 8.0, float(np.median(full))):
        (rc, sc), (rg, sg) = _twins(pics, other, i, j, cut=cut)
        np.testing.assert_array_equal(rg, rc)
        np.testing.assert_array_equal(sg, sc)
        keep = full <= cut
        np.testing.assert_array_equal(rc[keep], full[keep])
        np.testing.assert_array_equal(sc[keep], full_shift[keep])
        assert np.isinf(rc[~keep]).all()
    assert 0 < (full <= 8).sum() < full.size


def test_score_pairs_cuda_equals_cpu_with_transform_and_cut():
    pics = np.round((_pictures(6, (16, 16), 4) + 3) * 40).astype(np.uint8)
    rng = np.random.default_rng(4)
    turned = np.stack([np.rot90(p, -1) for p in pics])  # transform 5 (rot90) brings it back
    i = np.r_[np.arange(6), rng.integers(0, 6, 14)]
    j = np.r_[np.arange(6), rng.integers(0, 6, 14)]
    t = np.r_[np.full(6, 5), rng.integers(0, 8, 14)].astype(np.uint8)
    cpu_out = verify.score_pairs(pics, turned, i, j, backend="cpu", transform=t, cut=8)
    assert cpu_out[0][:6].tolist() == [0.0] * 6
    for batch in (None, 5):
        gpu_out = verify.score_pairs(pics, turned, i, j, backend="cuda", transform=t, cut=8,
                                     batch_size=batch)
        for g, c in zip(gpu_out, cpu_out):
            assert g.dtype == c.dtype
            np.testing.assert_array_equal(g, c)


def _cpu_bounds(a, b, max_shift=2):
    # the CPU kernel's bounds of one pair, per shift and level (coarse to fine), from its own
    # helpers: a's block tables, b's grid sums built up from 2 x 2 blocks
    from gpudedup.kernels import _common as c

    height, width = a.shape
    lo, hi = c.pair_range(a, b)
    e = c.level_exponent(hi - lo, c.level_bits(height * width))
    scale = 2.0 ** e
    sy, sx = c.shift_limit(height, max_shift), c.shift_limit(width, max_shift)
    top = c.coarsest_block(height - 2 * sy, width - 2 * sx)
    levels = top.bit_length() - 1
    gy, ny_top = c.block_grid(sy, height - sy, top)
    gx, nx_top = c.block_grid(sx, width - sx, top)
    boxes = np.empty((levels + 1, height, width))
    cpu._quantise_into(a, lo, scale, boxes[0])
    cpu._block_sums(boxes, levels)
    grids = np.empty((levels + 1, height, width))
    cpu._grid_sums(b, lo, scale, gy, gx, ny_top << (levels - 1), nx_top << (levels - 1),
                   np.empty(width), grids[1])
    for lev in range(2, levels + 1):
        cpu._grid_up(grids[lev - 1], ny_top << (levels - lev), nx_top << (levels - lev),
                     grids[lev])
    out = np.zeros(((2 * sy + 1) * (2 * sx + 1), levels))
    for k in range(out.shape[0]):
        dy, dx = c.shift_of(k, sy, sx)
        n = (height - abs(dy)) * (width - abs(dx))
        for col, lev in enumerate(range(levels, 0, -1)):
            ny, nx = ny_top << (levels - lev), nx_top << (levels - lev)
            va = np.empty(ny * nx, np.int64)
            vb = np.empty(ny * nx, np.int64)
            cpu._grid_gather(boxes[lev], gy - dy, gx - dx, 1 << lev, ny, nx, va)
            cpu._grid_gather(grids[lev], 0, 0, 1, ny, nx, vb)
            s_a, s_aa = cpu._moments(va)
            s_b, s_bb = cpu._moments(vb)
            out[k, col] = c.block_bound(c.bound_scale(ny * nx, n, 1 << lev), ny * nx, s_a, s_b,
                                        s_aa, s_bb, cpu._dot_int(va, vb))
    return out, (gy, gx, ny_top, nx_top, levels, lo, e)


@cuda.jit
def _bounds_kernel(a, b, gy, gx, ny_top, nx_top, levels, lo, e, sy, sx, out):
    # each shift's bounds, coarse to fine, through the twin's device function
    k = cuda.grid(1)
    if k < out.shape[0]:
        dy, dx = gk.shift_of(k, sy, sx)
        n = (a.shape[0] - abs(dy)) * (a.shape[1] - abs(dx))
        for col in range(levels):
            lev = levels - col
            ny = ny_top << (levels - lev)
            nx = nx_top << (levels - lev)
            scale = gk.bound_scale(ny * nx, n, 1 << lev)
            out[k, col] = gk._shift_bound(a, b, 1 << lev, gy, gx, ny, nx, dy, dx, scale, lo, e)


def test_bounds_twin():
    # the CUDA twin's bound (its device function) against the CPU's, value for value
    rng = np.random.default_rng(8)
    for dtype, shape in ((np.uint8, (28, 28)), (np.float32, (16, 20))):
        pics = _pictures(2, shape, shape[1])
        pics = (pics - pics.min()) / np.ptp(pics) * 200 + rng.normal(0, 5, pics.shape)
        pics = pics.astype(dtype) if dtype == np.float32 else np.clip(pics, 0, 255).astype(dtype)
        ref, (gy, gx, ny, nx, levels, lo, e) = _cpu_bounds(pics[0], pics[1])
        got = np.full_like(ref, -1.0)
        sy, sx = min(2, shape[0] // 8), min(2, shape[1] // 8)
        _bounds_kernel[1, ref.shape[0]](pics[0], pics[1], gy, gx, ny, nx, levels, lo, e, sy, sx,
                                        got)
        np.testing.assert_array_equal(got, ref)
        assert (ref > 0).all()


@pytest.mark.parametrize("background, dtype", [(0, np.uint8), (255, np.uint8),
                                               (0, np.float32)])
def test_pair_residuals_twin_on_low_content_images(background, dtype):
    # the CPU kernel scores a blank-with-specks a from its few pixels, without the bounds
    rng = np.random.default_rng(11)
    a = np.full((4, 16, 16), background, np.uint8)
    for k in range(4):
        a[k].flat[rng.integers(0, 256, 3)] = rng.integers(1, 255, 3)
    assert ((a != background).sum(axis=(1, 2)) * cpu.SPARSE_FRACTION <= 256).all()
    if dtype == np.float32:  # and a speck below one level, found on raw values
        a = a.astype(np.float32) / 255
        a[:, 9, 2] = 1e-7
    b = np.roll(a, 1, axis=1)
    b[2] = a[3]
    i = np.array([0, 1, 2, 3, 0, 1])
    j = np.array([0, 1, 2, 3, 2, 3])
    for cut in (-1.0, 8.0):
        (rc, sc), (rg, sg) = _twins(a, b, i, j, cut=cut)
        np.testing.assert_array_equal(rg, rc)
        np.testing.assert_array_equal(sg, sc)
