"""Pixel verification of near pairs (gpudedup.verify, kernels pair_residuals) against the naive
least-squares reference in tests/naive.py, and the score's documented properties."""

import re

import h5py
import numpy as np
import pytest
from gpudedup.kernels import _common, cpu
from naive import (
    naive_block_bounds,
    naive_bound_sides,
    naive_pair_score,
    naive_shift_mses,
    naive_transform,
)

from gpudedup import transforms, verify
from gpudedup.errors import InputError


def kernel_scores(a, b, i, j, max_shift=2, cut=-1.0):
    residual = np.full(len(i), -1.0)
    shift = np.full((len(i), 2), 99, np.int8)
    cpu.pair_residuals(a, b, np.asarray(i, np.int64), np.asarray(j, np.int64), max_shift,
                       float(cut), residual, shift)
    return residual, shift


def smooth_images(n, side, seed):
    # structured pictures: a few Gaussian blobs on a gradient, uint8 over the full range
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:side, :side] / side
    out = np.empty((n, side, side))
    for k in range(n):
        img = rng.uniform(-1, 1) * x + rng.uniform(-1, 1) * y
        for _ in range(4):
            cy, cx, w = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3)
            img += rng.uniform(-2, 2) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / w ** 2)
        out[k] = img
    lo = out.min(axis=(1, 2), keepdims=True)
    hi = out.max(axis=(1, 2), keepdims=True)
    return np.round((out - lo) / (hi - lo) * 255).astype(np.uint8)


def silhouette_pair(side=28, seed=0):
    # two product-photo-like images: one shape on black, filled with different textures
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:side, :side]
    mask = ((y - side / 2) / (side * 0.42)) ** 2 + ((x - side / 2) / (side * 0.3)) ** 2 < 1
    pair = []
    for _ in range(2):
        texture = smooth_images(1, side, int(rng.integers(1 << 30)))[0].astype(float)
        pair.append(np.where(mask, 60 + texture * 0.75, 0).astype(np.uint8))
    return np.stack(pair)


@pytest.mark.parametrize("shape", [(28, 28), (16, 20), (64, 64), (7, 9), (9, 33)])
def test_kernel_matches_naive_on_random_images(shape):
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    n = 4 if shape == (64, 64) else 12
    a = rng.integers(0, 256, (n,) + shape).astype(np.uint8)
    b = rng.integers(0, 256, (n,) + shape).astype(np.uint8)
    i = rng.integers(0, n, 2 * n)
    j = rng.integers(0, n, 2 * n)
    residual, shift = kernel_scores(a, b, i, j)
    for p in range(i.size):
        ref, ref_shift = naive_pair_score(a[i[p]], b[j[p]])
        assert residual[p] == pytest.approx(ref, rel=1e-9, abs=1e-9)
        assert tuple(shift[p]) == ref_shift


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int64, np.float32,
                                   np.float64])
def test_kernel_matches_naive_on_structured_images_and_edits(dtype):
    rng = np.random.default_rng(3)
    base = smooth_images(6, 28, 3).astype(np.float64)
    edits = np.stack([base[0] * 0.8 + 20, base[1] + rng.normal(0, 6, base[1].shape),
                      np.roll(base[2], (1, -1), (0, 1)), base[4], base[3], base[5] * 1.1])
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        scale = min(257.0, info.max / 300.0)
        a = np.clip(np.round(base * scale), info.min, info.max).astype(dtype)
        b = np.clip(np.round(edits * scale), info.min, info.max).astype(dtype)
    else:
        a, b = (base / 255 - 0.5).astype(dtype), (edits / 255 - 0.5).astype(dtype)
    i = np.arange(6)
    residual, shift = kernel_scores(a, b, i, i)
    for p in range(6):
        ref, ref_shift = naive_pair_score(a[p], b[p])
        # the kernel quantises to 16-bit levels of the pair's range: far below 0.01 grey levels
        assert residual[p] == pytest.approx(ref, abs=0.01)
        assert tuple(shift[p]) == ref_shift


def test_scale_free_across_dtypes():
    # the same pictures as uint8, uint16 (x 257), float32 in [-0.5, 0.5] and float64 in [0, 1]
    pics = smooth_images(8, 28, 11)
    rng = np.random.default_rng(11)
    other = np.clip(pics[::-1].astype(float) * 0.9 + rng.normal(0, 5, pics.shape), 0, 255)
    other = np.round(other).astype(np.uint8)
    i = np.arange(8)
    results = []
    for convert in (lambda x: x, lambda x: x.astype(np.uint16) * 257,
                    lambda x: (x / 255.0 - 0.5).astype(np.float32),
                    lambda x: x / 255.0):
        residual, sim, shift = verify.score_pairs(convert(pics), convert(other), i, i,
                                                  backend="cpu")
        results.append((residual, shift))
    ref, ref_shift = results[0]
    assert ref.max() > 10  # distinct pictures in there, not only copies
    for residual, shift in results[1:]:
        np.testing.assert_allclose(residual, ref, atol=0.01)
        np.testing.assert_array_equal(shift, ref_shift)
    # uint8 and uint16 are both quantised without loss (levels 256 v and 257 v): equal but
    # for the last float roundings
    np.testing.assert_allclose(results[1][0], ref, rtol=1e-13)


def test_exact_copies_score_zero_and_similarity_one():
    pics = smooth_images(5, 28, 1)
    residual, similarity, shift = verify.score_pairs(pics, pics.copy(), np.arange(5),
                                                     np.arange(5), backend="cpu")
    assert residual.tolist() == [0.0] * 5
    assert similarity.dtype == np.float32 and similarity.tolist() == [1.0] * 5
    assert shift.tolist() == [[0, 0]] * 5


def test_constant_images():
    imgs = np.zeros((4, 12, 12), np.uint8)
    imgs[1] = 200  # another constant: a pure brightness change of imgs[0]
    imgs[2] = smooth_images(1, 12, 5)[0]
    imgs[3] = 7
    residual, shift = kernel_scores(imgs, imgs, [0, 0, 2, 0, 3], [0, 1, 0, 2, 3])
    assert residual[0] == 0.0 and residual[1] == 0.0 and residual[4] == 0.0
    # a constant image explains nothing of a textured one, in either order
    assert residual[2] > 20 and residual[3] == residual[2]
    for p, (ia, jb) in enumerate([(0, 0), (0, 1), (2, 0), (0, 2), (3, 3)]):
        assert residual[p] == pytest.approx(naive_pair_score(imgs[ia], imgs[jb])[0], abs=1e-9)


@pytest.mark.parametrize("dy,dx", [(1, 0), (0, -1), (2, 2), (-2, 1), (-1, -2)])
def test_shifted_copy_found_at_its_shift(dy, dx):
    big = smooth_images(1, 40, 8)[0]
    a = big[6:34, 6:34]
    b = big[6 - dy:34 - dy, 6 - dx:34 - dx]  # b[y + dy, x + dx] == a[y, x]
    residual, similarity, shift = verify.score_pairs(a[None], b[None], [0], [0],
                                                     backend="cpu")
    assert residual[0] == 0.0 and similarity[0] == 1.0
    assert shift[0].tolist() == [dy, dx]


def test_photometric_edits_score_low():
    pics = smooth_images(4, 28, 21).astype(float)
    rng = np.random.default_rng(21)
    edited = np.stack([pics[0] + 20, pics[1] * 0.8 + 10, (pics[2] - 128) * 1.2 + 128,
                       pics[3] + rng.normal(0, 6, pics[3].shape)])
    edited = np.clip(np.round(edited), 0, 255).astype(np.uint8)
    residual, similarity, _ = verify.score_pairs(pics.astype(np.uint8), edited, np.arange(4),
                                                 np.arange(4), backend="cpu")
    # full-range pictures: +20 and x1.2 clip at 255, which no affine fit undoes; still far
    # below the copies' bound of 8, and the unclipped contrast change is rounding only
    assert residual[:3].max() < 4
    assert residual[1] < 0.5
    assert residual[3] < 8.5
    assert similarity.min() > 0.7


def test_same_silhouette_different_texture_scores_high():
    for seed in range(5):
        pair = silhouette_pair(seed=seed)
        residual, similarity, _ = verify.score_pairs(pair, None, [0], [1], backend="cpu")
        assert residual[0] > 14, seed
        assert similarity[0] < 0.6


def test_score_is_symmetric():
    pics = smooth_images(6, 28, 31)
    rng = np.random.default_rng(31)
    i, j = rng.integers(0, 6, 20), rng.integers(0, 6, 20)
    r_ab, s_ab = kernel_scores(pics, pics, i, j)
    r_ba, s_ba = kernel_scores(pics, pics, j, i)
    np.testing.assert_array_equal(r_ab, r_ba)


def test_tiny_images_are_not_shifted():
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (3, 5, 7)).astype(np.uint8)
    residual, shift = kernel_scores(a, a[::-1].copy(), [0, 1, 2], [0, 1, 2], max_shift=2)
    assert shift.tolist() == [[0, 0]] * 3
    assert residual[1] == 0.0


def test_similarity_mapping():
    sim = verify.similarity_of([0.0, 8.0, 16.0, 32.0, 100.0])
    assert sim.dtype == np.float32
    assert sim.tolist() == [1.0, 0.75, 0.5, 0.0, 0.0]


def test_batches_sources_and_mixed_dtypes(tmp_path):
    pics = smooth_images(10, 20, 41)
    rng = np.random.default_rng(41)
    i, j = rng.integers(0, 10, 37), rng.integers(0, 10, 37)
    ref = verify.score_pairs(pics, None, i, j, backend="cpu")
    for batch in (1, 5, 36, 1000):
        got = verify.score_pairs(pics, pics, i, j, backend="cpu", batch_size=batch)
        for g, r in zip(got, ref):
            np.testing.assert_array_equal(g, r)
    path = tmp_path / "p.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=pics, chunks=(3, 20, 20))
    got = verify.score_pairs(f"{path}:/x", pics, i, j, backend="cpu", batch_size=7)
    for g, r in zip(got, ref):
        np.testing.assert_array_equal(g, r)
    with pytest.raises(InputError, match="dtype float32 differs"):
        verify.score_pairs(pics, (pics / 255.0).astype(np.float32), i, j, backend="cpu")
    boolean = verify.score_pairs(pics > 128, None, i, j, backend="cpu")
    assert boolean[0].shape == (37,)
    empty = verify.score_pairs(pics, pics, [], [], backend="cpu")
    assert [e.shape for e in empty] == [(0,), (0,), (0, 2)]


def test_errors():
    a = np.zeros((3, 28, 28), np.uint8)
    with pytest.raises(InputError, match="different sizes"):
        verify.score_pairs(a, np.zeros((3, 32, 32), np.uint8), [0], [0])
    with pytest.raises(InputError, match="i: image indices"):
        verify.score_pairs(a, a, [3], [0])
    with pytest.raises(InputError, match="j: image indices"):
        verify.score_pairs(a, a, [0], [-1])
    with pytest.raises(InputError, match="same number"):
        verify.score_pairs(a, a, [0, 1], [0])
    with pytest.raises(InputError, match="integer image indices"):
        verify.score_pairs(a, a, [0.5], [0])
    with pytest.raises(InputError, match="max_shift"):
        verify.score_pairs(a, a, [0], [0], max_shift=-1)
    with pytest.raises(InputError, match="batch_size"):
        verify.score_pairs(a, a, [0], [0], batch_size=0)
    with pytest.raises(InputError, match="grayscale"):
        verify.score_pairs(np.zeros((2, 8, 8, 3), np.uint8), None, [0], [1])
    bad = np.zeros((2, 8, 8), np.float32)
    bad[1, 2, 2] = np.nan
    with pytest.raises(InputError, match="image 1 holds NaN"):
        verify.score_pairs(bad, None, [0], [1])
    with pytest.raises(InputError, match="backend"):
        verify.score_pairs(a, a, [0], [0], backend="gpu")


# ------------------------------------------------------------------------ transform and cut


def mixed_pairs(side=28, seed=0):
    # structured pictures, their edits (copies within the cut) and look-alikes: a, b, i, j
    rng = np.random.default_rng(seed)
    base = smooth_images(8, side, seed).astype(float)
    edits = np.stack([base[0], base[1] * 0.8 + 20, base[2] + rng.normal(0, 6, base[2].shape),
                      np.roll(base[3], (1, -1), (0, 1)), base[4] + rng.normal(0, 3, base[4].shape),
                      base[6], base[5], rng.uniform(0, 255, base[7].shape)])
    a = base.astype(np.uint8)
    b = np.clip(np.round(edits), 0, 255).astype(np.uint8)
    i = np.r_[np.arange(8), rng.integers(0, 8, 24)]
    j = np.r_[np.arange(8), rng.integers(0, 8, 24)]
    order = np.lexsort((j, i))  # the search's order: runs of one a, as the kernel reuses a
    return a, b, i[order], j[order]


@pytest.mark.parametrize("shape", [(28, 28), (16, 16), (12, 20)])
def test_transform_matches_naive(shape):
    rng = np.random.default_rng(shape[0])
    a = smooth_images(6, max(shape), shape[0])[:, :shape[0], :shape[1]].copy()
    square = shape[0] == shape[1]
    codes = np.arange(8) if square else np.arange(4)
    # b[k] holds the inverse transform of a picture, so transform t brings it back
    b = np.stack([naive_transform(a[k % 6], transforms.INVERSE[codes[k % codes.size]])
                  for k in range(12)])
    i = np.r_[np.arange(12) % 6, rng.integers(0, 6, 20)]
    j = np.r_[np.arange(12), rng.integers(0, 12, 20)]
    t = np.r_[codes[np.arange(12) % codes.size], rng.choice(codes, 20)].astype(np.uint8)
    residual, similarity, shift = verify.score_pairs(a, b, i, j, backend="cpu", transform=t)
    assert residual[:12].tolist() == [0.0] * 12 and similarity[:12].min() == 1.0
    for p in range(i.size):
        ref, ref_shift = naive_pair_score(a[i[p]], naive_transform(b[j[p]], t[p]))
        assert residual[p] == pytest.approx(ref, rel=1e-9, abs=1e-9)
        assert tuple(shift[p]) == ref_shift
    # the identity code changes nothing; batches, in-place and gathered sources agree
    plain = verify.score_pairs(a, b, i, j, backend="cpu")
    zeros = verify.score_pairs(a, b, i, j, backend="cpu", transform=np.zeros(i.size, np.uint8))
    for x, y in zip(plain, zeros):
        np.testing.assert_array_equal(x, y)
    strided = np.concatenate([b, b], axis=2)[:, :, :shape[1]]  # not contiguous: gathered
    for batch in (1, 7, None):
        got = verify.score_pairs(a, strided, i, j, backend="cpu", transform=t,
                                 batch_size=batch, cut=8)
        ref = verify.score_pairs(a, b, i, j, backend="cpu", transform=t, cut=8)
        for x, y in zip(got, ref):
            np.testing.assert_array_equal(x, y)


def test_transform_and_cut_errors():
    a = np.zeros((3, 12, 16), np.uint8)
    square = np.zeros((3, 12, 12), np.uint8)
    for bad, match in [([8], "codes must lie in 0..7"), ([-1], "codes must lie"),
                       ([0.0], "integer transform codes"), ([0, 1], "1-d array of 1"),
                       ([4], "square images"), ([7], "square images")]:
        with pytest.raises(InputError, match="^transform: .*" + re.escape(match)):
            verify.score_pairs(a, a, [0], [1], backend="cpu", transform=np.asarray(bad))
    verify.score_pairs(square, None, [0], [1], backend="cpu", transform=[5])
    for bad in (-1, -0.5, float("nan"), "8", True, [8]):
        with pytest.raises(InputError, match="cut"):
            verify.score_pairs(a, a, [0], [1], backend="cpu", cut=bad)
    inf = verify.score_pairs(a, a, [0], [1], backend="cpu", cut=float("inf"))
    assert inf[0].tolist() == [0.0]


@pytest.mark.parametrize("side", [28, 20, 40])
def test_cut_keeps_pairs_within_it_exactly(side):
    a, b, i, j = mixed_pairs(side, side)
    residual, shift = kernel_scores(a, b, i, j)
    assert (residual <= 8).sum() >= 5 and (residual > 20).sum() >= 5  # both kinds in there
    for cut in (0.0, 0.5, 2.0, 8.0, 14.0, 40.0, 1e9):
        got, got_shift = kernel_scores(a, b, i, j, cut=cut)
        keep = residual <= cut
        np.testing.assert_array_equal(got[keep], residual[keep])
        np.testing.assert_array_equal(got_shift[keep], shift[keep])
        assert np.isinf(got[~keep]).all() and (got_shift[~keep] == 0).all()
    for p in range(i.size):
        ref, ref_shift = naive_pair_score(a[i[p]], b[j[p]])
        assert residual[p] == pytest.approx(ref, rel=1e-9, abs=1e-9)


def test_cut_at_each_pairs_own_residual():
    # a cut exactly at a pair's residual keeps it, the float below rejects it: the bound never
    # rejects the best shift of a pair within the cut, even at the edge
    a, b, i, j = mixed_pairs(28, 5)
    rng = np.random.default_rng(5)
    noise = rng.integers(0, 256, (6, 28, 28)).astype(np.uint8)
    a = np.concatenate([a, noise])
    b = np.concatenate([b, np.clip(noise + rng.normal(0, 40, noise.shape), 0, 255)
                        .astype(np.uint8)])
    i = np.r_[i, 8 + np.arange(6)]
    j = np.r_[j, 8 + np.arange(6)]
    residual, shift = kernel_scores(a, b, i, j)
    for p in range(i.size):
        got, got_shift = kernel_scores(a, b, [i[p]], [j[p]], cut=residual[p])
        assert got[0] == residual[p] and tuple(got_shift[0]) == tuple(shift[p])
        below = np.nextafter(residual[p], -1.0)
        if below >= 0:
            got, got_shift = kernel_scores(a, b, [i[p]], [j[p]], cut=below)
            assert np.isinf(got[0]) and got_shift[0].tolist() == [0, 0]


def test_cut_in_order_and_shuffled_agree():
    # the kernel reuses a's tables over runs of one a: any pair order gives the same bits
    a, b, i, j = mixed_pairs(28, 9)
    perm = np.random.default_rng(9).permutation(i.size)
    for cut in (-1.0, 8.0):
        r1, s1 = kernel_scores(a, b, i, j, cut=cut)
        r2, s2 = kernel_scores(a, b, i[perm], j[perm], cut=cut)
        np.testing.assert_array_equal(r2, r1[perm])
        np.testing.assert_array_equal(s2, s1[perm])


def _helper_bounds(a, b, max_shift=2):
    # the kernels' bound, through the _common helpers, on the pair's integer levels: per shift,
    # (full fit_mse, [block_bound per level, coarse to fine])
    height, width = a.shape
    lo, hi = _common.pair_range(a, b)
    bits = _common.level_bits(height * width)
    e = _common.level_exponent(hi - lo, bits)
    qa = np.array([[_common.quantise(v, lo, e) for v in r] for r in a], dtype=object)
    qb = np.array([[_common.quantise(v, lo, e) for v in r] for r in b], dtype=object)
    sy, sx = _common.shift_limit(height, max_shift), _common.shift_limit(width, max_shift)
    top = _common.coarsest_block(height - 2 * sy, width - 2 * sx)
    gy, ny_top = _common.block_grid(sy, height - sy, top)
    gx, nx_top = _common.block_grid(sx, width - sx, top)
    out = []
    for k in range((2 * sy + 1) * (2 * sx + 1)):
        dy, dx = _common.shift_of(k, sy, sx)
        y0, y1 = _common.overlap(height, dy)
        x0, x1 = _common.overlap(width, dx)
        ov_a = qa[y0:y1, x0:x1]
        ov_b = qb[y0 + dy:y1 + dy, x0 + dx:x1 + dx]
        n = ov_a.size
        full = _common.fit_mse(n, int(ov_a.sum()), int(ov_b.sum()), int((ov_a * ov_a).sum()),
                               int((ov_b * ov_b).sum()), int((ov_a * ov_b).sum()))
        row = []
        s = top
        while s >= 2:
            ny, nx = ny_top * top // s, nx_top * top // s
            blk_b = qb[gy:gy + ny * s, gx:gx + nx * s].reshape(ny, s, nx, s).sum(axis=(1, 3))
            blk_a = qa[gy - dy:gy - dy + ny * s, gx - dx:gx - dx + nx * s].reshape(
                ny, s, nx, s).sum(axis=(1, 3))
            scale = _common.bound_scale(ny * nx, n, s)
            row.append(_common.block_bound(scale, ny * nx, int(blk_a.sum()), int(blk_b.sum()),
                                           int((blk_a * blk_a).sum()),
                                           int((blk_b * blk_b).sum()),
                                           int((blk_a * blk_b).sum())))
            s //= 2
        out.append((full, row))
    return out


@pytest.mark.parametrize("kind", ["noise", "smooth", "copies", "silhouette"])
def test_block_bound_is_below_the_full_mse(kind):
    rng = np.random.default_rng(len(kind))
    if kind == "noise":
        a = rng.integers(0, 256, (4, 28, 28)).astype(np.uint8)
        b = rng.integers(0, 256, (4, 28, 28)).astype(np.uint8)
    elif kind == "smooth":
        a, b = smooth_images(4, 28, 1), smooth_images(4, 28, 2)
    elif kind == "copies":  # bound and mse both small: the margin matters here
        a = smooth_images(4, 28, 3)
        b = np.clip(a * 0.9 + rng.normal(0, 1, a.shape) + 7, 0, 255).astype(np.uint8)
    else:
        a, b = silhouette_pair(seed=4)[:1].repeat(4, 0), silhouette_pair(seed=5)[1:].repeat(4, 0)
    for p in range(4):
        with np.errstate(over="ignore"):  # exact_det's uint64 words wrap by design
            helper = _helper_bounds(a[p], b[p])
        naive = naive_block_bounds(a[p], b[p])
        mses = naive_shift_mses(a[p], b[p])
        assert len(helper) == 25 and len(naive_bound_sides(28, 28)) == len(helper[0][1]) == 3
        lo, hi = min(a[p].min(), b[p].min()), max(a[p].max(), b[p].max())
        # uint8 levels are the pixels times 2**e exactly: mse scales by 4**e
        to_levels = 4.0 ** _common.level_exponent(float(hi) - float(lo), 16)
        for (full, bounds), (_, ref_bounds), (_, m_ba, m_ab) in zip(helper, naive, mses):
            assert full == pytest.approx(max(m_ba, m_ab) * to_levels, rel=1e-9, abs=1e-6)
            for bound, ref in zip(bounds, ref_bounds):
                assert bound <= full  # the kernel's bound, as computed
                assert ref <= max(m_ba, m_ab) * (1 + 1e-12) + 1e-12  # the mathematics
                assert bound == pytest.approx(ref * to_levels, rel=1e-6, abs=1e-6)
        if kind == "noise":  # block sums average white noise away: 1/s^2 of it is left
            assert min(bounds[-1] / full for full, bounds in helper) > 0.15
        if kind == "smooth":  # smooth pictures keep much of it even in 8 px blocks
            assert min(bounds[0] / full for full, bounds in helper) > 0.2


def test_bound_rejects_most_look_alikes():
    # random look-alikes far beyond the cut: every shift bounded, nothing scored in full; the
    # kept copies unchanged (the speed itself is measured in the benchmarks, not here)
    a, b, i, j = mixed_pairs(28, 13)
    residual, _ = kernel_scores(a, b, i, j)
    got, _ = kernel_scores(a, b, i, j, cut=8.0)
    assert ((residual <= 8) == np.isfinite(got)).all()


def test_block_bound_is_exact_on_blockwise_constant_images():
    # images constant on the 8 x 8 blocks, unshifted: every level's bound is the full mse but
    # for the margin, so the bound has no slack to give and the margin keeps it below
    rng = np.random.default_rng(17)
    a = np.kron(rng.integers(0, 256, (3, 3)), np.ones((8, 8))).astype(np.uint8)
    b = np.kron(rng.integers(0, 256, (3, 3)), np.ones((8, 8))).astype(np.uint8)
    with np.errstate(over="ignore"):
        [(full, bounds)] = _helper_bounds(a, b, max_shift=0)
    assert len(bounds) == 3 and full > 0
    for bound in bounds:
        assert full * (1 - 1e-8) <= bound < full
    residual, _ = kernel_scores(a[None], b[None], [0], [0], max_shift=0)
    got, _ = kernel_scores(a[None], b[None], [0], [0], max_shift=0, cut=residual[0])
    assert got[0] == residual[0]


def test_kernel_cut_edge_values():
    # no cut (negative, inf, NaN) scores every pair; a pair of one level (a range far below
    # 2**-1000, e capped) scores 0 within any cut; all terminate
    a, b, i, j = mixed_pairs(28, 21)
    residual, shift = kernel_scores(a, b, i, j)
    for none in (-1.0, np.inf, np.nan):
        got, got_shift = kernel_scores(a, b, i, j, cut=none)
        np.testing.assert_array_equal(got, residual)
        np.testing.assert_array_equal(got_shift, shift)
    tiny = np.zeros((2, 28, 28))
    tiny[1, 3, 4] = 1e-310
    for cut in (0.0, 8.0):
        got, _ = kernel_scores(tiny, tiny, [0, 1], [1, 1], cut=cut)
        assert got.tolist() == [0.0, 0.0]


def low_content_images(n, side, seed, background=0):
    # blank pages with a few specks (white on black, or black on white): the kernel scores an
    # image a with few pixels off its background from those pixels, without the bounds
    rng = np.random.default_rng(seed)
    out = np.full((n, side, side), background, np.uint8)
    for k in range(n):
        count = int(rng.integers(1, 5))
        out[k].flat[rng.integers(0, side * side, count)] = rng.integers(1, 255, count)
    return out


@pytest.mark.parametrize("background", [0, 255])
def test_low_content_images_match_naive_with_and_without_cut(background):
    a = low_content_images(10, 28, 5, background)
    b = np.roll(a, 1, axis=2)  # specks one pixel over: residual 0 at shift (0, 1) when inside
    b[3:6] = low_content_images(3, 28, 6, background)  # other specks
    b[6] = np.roll(a[6], 2, axis=1)
    b[7] = a[7]
    b[8] = np.where(a[8] == background, background, 128)  # the same specks, one level
    b[9] = smooth_images(1, 28, 9)[0]  # a picture: b dense, a sparse
    assert ((a != background).sum(axis=(1, 2)) * cpu.SPARSE_FRACTION <= 28 * 28).all()
    i = np.r_[np.arange(10), np.zeros(5, int)]
    j = np.r_[np.arange(10), np.arange(3, 8)]
    full, full_shift = kernel_scores(a, b, i, j)
    for p in range(i.size):
        ref, ref_shift = naive_pair_score(a[i[p]], b[j[p]])
        assert full[p] == pytest.approx(ref, rel=1e-9, abs=1e-9)
        assert tuple(full_shift[p]) == ref_shift
    for cut in (0.0, 8.0, float(np.median(full))):
        residual, shift = kernel_scores(a, b, i, j, cut=cut)
        keep = full <= cut
        np.testing.assert_array_equal(residual[keep], full[keep])
        np.testing.assert_array_equal(shift[keep], full_shift[keep])
        assert np.isinf(residual[~keep]).all()
    assert 0 < (full <= 8).sum() < full.size
    # the dense side first (a picture against specks) gets the same score: the fit is symmetric
    back, _ = kernel_scores(b, a, j, i)
    np.testing.assert_allclose(back, full, rtol=1e-9, atol=1e-9)


def test_low_content_float_images_with_specks_below_one_level_score_as_without_them():
    # the sparse path finds a's few pixels on raw values, once per image: a speck far below one
    # level of the pair's range shares the background's level and must add nothing, bit for bit
    plain = low_content_images(6, 28, 12).astype(np.float64) / 255.0
    plain[:, 20, 3] = 0.5
    a = plain.copy()
    a[:, 5, 7] = 1e-9  # off the background value, on its level
    a[:, 20, 3] = 0.5 + 1e-12  # off 0.5, on its level
    b = np.roll(plain, 1, axis=1)
    b[2:4] = low_content_images(2, 28, 13).astype(np.float64) / 255.0
    i = np.arange(6)
    for cut in (-1.0, 8.0):
        got, got_shift = kernel_scores(a, b, i, i, cut=cut)
        want, want_shift = kernel_scores(plain, b, i, i, cut=cut)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got_shift, want_shift)
    for p in range(i.size):  # and both are the naive score, to the levels' precision
        ref, ref_shift = naive_pair_score(a[p], b[p])
        assert got[p] == pytest.approx(ref, rel=1e-4, abs=1e-6) or np.isinf(got[p])
        if np.isfinite(got[p]):
            assert tuple(got_shift[p]) == ref_shift


@pytest.mark.parametrize("dtype, side", [(np.uint8, 28), (np.uint16, 28), (np.uint16, 192)])
def test_whole_pixels_as_their_own_levels_score_as_the_pairs_quantisation(dtype, side):
    # integer pixels within the levels' bits are scored on their own values (pair_levels), an
    # exact affine map of the pair's quantisation: the float copy of the same images (quantised
    # per pair) gets the same shifts and residuals; 192 px uint16 (14-bit levels) past 2**14
    # are quantised per pair as before
    rng = np.random.default_rng(side + np.dtype(dtype).itemsize)
    top = 255 if dtype == np.uint8 else 60_000
    a = smooth_images(6, side, 21).astype(np.float64) / 255 * top
    b = np.clip(a * 0.8 + rng.normal(0, top / 100, a.shape) + top / 20, 0, top)
    b[3:] = smooth_images(3, side, 22).astype(np.float64) / 255 * top
    a, b = a.astype(dtype), b.astype(dtype)
    a[1] //= 64  # a narrow pair: few levels, a large exponent for the float copy
    b[1] = np.roll(a[1], 1, axis=0)
    bits = _common.level_bits(side * side)
    assert (int(a.max()) <= 2 ** bits - 1) == (side == 28)
    i = np.r_[np.arange(6), [0, 0]]
    j = np.r_[np.arange(6), [4, 5]]
    for cut in (-1.0, 8.0):
        got, got_shift = kernel_scores(a, b, i, j, cut=cut)
        want, want_shift = kernel_scores(a.astype(np.float64), b.astype(np.float64), i, j,
                                         cut=cut)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(got_shift, want_shift)
        assert 0 < np.isfinite(got).sum() < (got.size if cut >= 0 else got.size + 1)
