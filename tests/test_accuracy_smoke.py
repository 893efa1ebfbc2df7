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


# ------------------------------------------------------------- the public pipeline harness

SMALL_GRID = {"threshold": (8,), "min_similarity": (0.75, 0.6875), "shifts": (0,),
              "invariant": (None,)}


def test_pipeline_harness_end_to_end(tmp_path):
    base = _images(24)
    raw = np.concatenate([base, base[:2]])
    rec, held = accuracy.measure_set("smoke", raw, {"raw_count": len(raw)}, per_edit=3,
                                     grid=SMALL_GRID, backend="cpu", budget_s=60.0,
                                     rng=np.random.default_rng(0), png_dir=tmp_path)
    assert rec["dedup"]["exact_removed"] == 2
    rows = {r["label"]: r for r in rec["pipeline"]}
    assert set(rows) == {"t8 s>=0.75 sh0", "t8 s>=0.6875 sh0"}
    for r in rows.values():
        assert r["recall"]["exact"] == 1.0  # exact copies are always found
        assert 0 <= r["precision"] <= 1
        assert r["true_pairs"] + r["false_cross"] + r["false_within"] == r["pairs_reported"]
        assert 0 <= r["false_near_identical"] <= r["false_cross"] + r["false_within"]
    # a lower min_similarity never reports fewer pairs
    assert rows["t8 s>=0.6875 sh0"]["pairs_reported"] >= rows["t8 s>=0.75 sh0"]["pairs_reported"]
    # min_similarity is a pure filter on one run's pairs (what the harness relies on)
    assert rec["runs"][-1]["min_similarity_as_filter"]["same_pairs"]
    ih = rec["imagehash"]
    if "rows" in ih:
        assert ih["rows"][0]["recall"]["exact"] == 1.0
        assert ih["same_as_gd_phash"].split("/")[0] == ih["same_as_gd_phash"].split("/")[1]
    record = {"sets": [rec], "grid": SMALL_GRID, "missing": {"fashion": "not installed"},
              "machine": {}}
    record["recommended"] = {"plain": accuracy.recommend(record["sets"], None),
                             "dihedral": accuracy.recommend(record["sets"], "dihedral")}
    assert record["recommended"]["plain"]["label"] in rows
    assert record["recommended"]["dihedral"] is None
    pngs = accuracy.render_settings_pngs("smoke", held, record["recommended"]["plain"], tmp_path)
    assert pngs["missed"] >= 0
    md = accuracy.markdown_pipeline(record)
    assert "smoke" in md and "| exact |" in md and "fashion: not measured" in md


def test_quick_skips_missing_sets(tmp_path, monkeypatch):
    # no apt data: the set is skipped with how to install it, and the run still ends well
    monkeypatch.setattr(realdata, "FASHION_DIR", tmp_path / "nowhere")
    out = tmp_path / "acc.json"
    assert accuracy.main(["--quick", "--set", "fashion", "--out", str(out)]) == 0
    import json

    record = json.loads(out.read_text())
    assert "apt-get install dataset-fashion-mnist" in record["missing"]["fashion"]
    assert record["sets"] == [] and record["quick"] is True
    assert "fashion: not measured" in out.with_suffix(".md").read_text()
