"""Pixel verification of near pairs (gpudedup.verify, kernels pair_residuals) against the naive
least-squares reference in tests/naive.py, and the score's documented properties."""

import h5py
import numpy as np
import pytest
from gpudedup.kernels import cpu
from naive import naive_pair_score

from gpudedup import verify
from gpudedup.errors import InputError


def kernel_scores(a, b, i, j, max_shift=2):
    residual = np.full(len(i), -1.0)
    shift = np.full((len(i), 2), 99, np.int8)
    cpu.pair_residuals(a, b, np.asarray(i, np.int64), np.asarray(j, np.int64), max_shift,
                       residual, shift)
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
