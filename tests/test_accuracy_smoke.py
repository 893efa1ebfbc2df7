"""The real-data accuracy harness (bench/accuracy.py, bench/realdata.py) run end to end on a
few generated images: no apt data needed, seconds."""

import numpy as np
import pytest

pytest.importorskip("scipy")
accuracy = pytest.importorskip("bench.accuracy")
realdata = pytest.importorskip("bench.realdata")


def _images(n=24, side=28, seed=0):
    # smooth random blobs on a dark background: distinct images with some structure
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    out = np.zeros((n, side, side))
    for k in range(n):
        for _ in range(3):
            cy, cx, r = rng.uniform(6, side - 6, 2).tolist() + [rng.uniform(3, 7)]
            out[k] += rng.uniform(80, 200) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / r**2)
    return np.clip(out, 0, 255).astype(np.uint8)


def test_reference_score_properties():
    a = _images(6)
    b = a.copy()
    assert np.all(realdata.reference_score(a, b) == 0)
    # photometric: b = 0.8 a + 30 fits exactly up to rounding
    lin = np.clip(np.rint(a * 0.8 + 30), 0, 255).astype(np.uint8)
    assert np.all(realdata.reference_score(a, lin) < 1.0)
    # a 2 px shift (black border, content inside) is found by the shift search
    shifted = np.stack([realdata._shift(x, 2, -1) for x in a])
    assert np.all(realdata.reference_score(a, shifted) < 1e-9)
    # scale-free: the float32 and uint16 versions score as the uint8 one
    other = _images(6, seed=1)
    s8 = realdata.reference_score(a, other)
    for dt in ("float32", "uint16"):
        s = realdata.reference_score(realdata.glyphs_as(a, dt), realdata.glyphs_as(other, dt))
        np.testing.assert_allclose(s, s8, atol=1e-4)
    assert np.all(s8 > 10)


def test_numba_twin_matches_reference():
    a, b = _images(10), _images(10, seed=2)
    ia = np.arange(10)
    ib = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3])
    got = accuracy.score_pairs(a, b, ia, ib)
    np.testing.assert_allclose(got, realdata.reference_score(a[ia], b[ib]), atol=1e-5)


def test_histograms_count_every_pair():
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 2**63, 40, dtype=np.uint64) | np.uint64(1)
    h = accuracy.distance_histogram(codes)
    d = np.bitwise_count(codes[:, None] ^ codes[None, :])
    assert np.array_equal(h, np.bincount(d[np.triu_indices(40, 1)], minlength=65))
    q = codes[:5, None]
    hc = accuracy.distance_histogram(codes, q, np.arange(5))
    assert hc.sum() == 5 * 39 and hc[0] == 0


def test_edits_and_harness_end_to_end(tmp_path):
    base = _images(24)
    for name, fn in realdata.EDITS.items():
        out = fn(base[0], np.random.default_rng(0))
        assert out.shape == base[0].shape and out.dtype == np.uint8, name
    raw = np.concatenate([base, base[:2]])  # two exact duplicates for the dedup to remove
    rec = accuracy.measure_real("smoke", raw, {"raw_count": len(raw)}, per_edit=3,
                                score_radius=6, max_scored=1000,
                                rng=np.random.default_rng(0), png_dir=tmp_path)
    assert rec["dedup"]["exact_removed"] == 2
    assert rec["candidate_recall"]["exact"][0] == 1.0
    assert rec["copy_score"]["exact"]["max"] == 0.0
    assert rec["score_numba_vs_reference_max_abs_diff"] < 1e-4
    assert rec["thumbnail_phash_equals_gd_phash"].split("/")[0] == \
        rec["thumbnail_phash_equals_gd_phash"].split("/")[1]
    assert (tmp_path / "borderline-smoke.png").exists()
    assert "smoke" in accuracy.markdown_real({"sets": [rec]})
