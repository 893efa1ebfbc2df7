"""Near pairs as a user gets them: hash candidates confirmed on pixels, inside the search."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import smooth_images

import gpudedup as gd
from gpudedup import cli
from gpudedup import search as search_mod
from gpudedup.verify import score_pairs


def silhouettes(rng, n: int, side: int = 28) -> np.ndarray:
    """``n`` different items of one silhouette: a dark background and one shirt-like shape,
    each filled with its own texture (what Fashion-MNIST and font glyphs are full of)."""
    yy, xx = np.mgrid[:side, :side]
    body = (abs(xx - side / 2) < side * 0.28) & (yy > side * 0.2) & (yy < side * 0.9)
    sleeves = (abs(yy - side * 0.35) < side * 0.1) & (abs(xx - side / 2) < side * 0.45)
    shape = body | sleeves
    textures = smooth_images(rng, n, side, side).astype(np.float64)
    fine = rng.integers(0, 60, (n, side, side))
    out = np.where(shape, 90 + 0.5 * textures + fine, 0)
    return np.clip(out, 0, 255).astype(np.uint8)


def edited(rng, images: np.ndarray) -> np.ndarray:
    """Copies a person calls copies: brighter, noisier, lower contrast, in turn."""
    x = images.astype(np.float64)
    edits = [x + 15, x + rng.normal(0, 4, x.shape), 0.85 * x + 10]
    return np.clip(np.rint(np.concatenate([e[k::3] for k, e in enumerate(edits)])), 0, 255
                   ).astype(np.uint8), np.concatenate([np.arange(len(x))[k::3]
                                                       for k in range(3)])


def test_same_silhouette_different_texture_is_not_reported():
    rng = np.random.default_rng(11)
    items = silhouettes(rng, 40)
    # the hash alone calls many of them copies: that is the flood verification stops
    flood = gd.find_overlaps(items, verify=False)
    assert len(flood) > 20
    assert np.isnan(flood.similarity).all()
    assert len(gd.find_overlaps(items)) == 0
    # the real copies among them still come through, each with its original
    copies, origin = edited(rng, items[:12])
    ov = gd.find_overlaps(items, copies)
    assert sorted(zip(ov.right.tolist(), ov.left.tolist())) == sorted(
        zip(range(12), origin.tolist()))
    assert (ov.similarity >= gd.DEFAULT_MIN_SIMILARITY).all() and ov.verified.all()
    page = gd.scan({"train": items, "test": copies}).to_html()
    assert f'<td class="num">{ov.similarity.max():.3f}</td>' in page
    # and each reported pair carries the verification score that decided it
    residual, similarity, _ = score_pairs(items, copies, ov.left, ov.right, backend="cpu")
    np.testing.assert_array_equal(ov.residual, residual)
    np.testing.assert_array_equal(ov.similarity, similarity)


def test_min_similarity_is_the_cut():
    rng = np.random.default_rng(12)
    base = smooth_images(rng, 30, 28, 28)
    noisy = np.clip(base + rng.normal(0, 1, base.shape) * np.linspace(0, 14, 30)[:, None, None],
                    0, 255).astype(np.uint8)
    loose = gd.find_overlaps(base, noisy, min_similarity=0.0, threshold=20)
    for cut in (0.9, 0.75, 0.6):
        ov = gd.find_overlaps(base, noisy, min_similarity=cut, threshold=20)
        want = loose.similarity >= np.float32(cut)
        np.testing.assert_array_equal(ov.pairs, loose.pairs[want])
    assert 0 < len(gd.find_overlaps(base, noisy, min_similarity=0.9, threshold=20)) < len(loose)
    for bad in (-0.1, 1.5, "high", True):
        with pytest.raises(gd.InputError, match="min_similarity"):
            gd.find_overlaps(base, min_similarity=bad)


def test_float32_and_uint16_give_the_pairs_of_uint8():
    rng = np.random.default_rng(13)
    items = silhouettes(rng, 30)
    copies, _ = edited(rng, items[:9])
    want = gd.find_overlaps(items, copies)
    assert len(want) >= 9
    for convert in (lambda x: x.astype(np.float32) / 255 - 0.5,
                    lambda x: x.astype(np.uint16) * 257):
        ov = gd.find_overlaps(convert(items), convert(copies))
        np.testing.assert_array_equal(ov.pairs, want.pairs)
        np.testing.assert_allclose(ov.similarity, want.similarity, atol=1e-3)


def test_saved_hashsets_are_verified(tmp_path):
    rng = np.random.default_rng(14)
    items = silhouettes(rng, 30)
    copies, _ = edited(rng, items[:6])
    want = gd.find_overlaps(items, copies)
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    gd.hash_images(items).save(a)
    gd.hash_images(copies).save(b)
    ha, hb = gd.HashSet.load(a), gd.HashSet.load(b)
    assert ha.pixels is not None and ha.images is not None  # 784-byte images travel along
    ov = gd.find_overlaps(ha, hb)
    np.testing.assert_array_equal(ov.pairs, want.pairs)
    np.testing.assert_array_equal(ov.similarity, want.similarity)
    assert ov.verified.all() and ov.unverified is None


def test_hashsets_without_pixels_say_so(tmp_path):
    rng = np.random.default_rng(15)
    big = smooth_images(rng, 6, 80, 80)  # 6,400 bytes each: not saved with the hashes
    path = tmp_path / "big.h5"
    gd.hash_images(big).save(path)
    loaded = gd.HashSet.load(path)
    assert loaded.pixels is None and loaded.images is None
    other = big + 1  # no exact copies: every pair is a near one
    with pytest.warns(UserWarning, match="not verified on pixels"):
        ov = gd.find_overlaps(loaded, other, threshold=64)
    assert len(ov) == 36 and ov.unverified and not ov.verified.any()
    assert np.isnan(ov.similarity).all()
    with pytest.warns(UserWarning):
        rep = gd.scan({"train": loaded, "test": other}, threshold=64)
    text = str(rep)
    assert "NOT VERIFIED" in text
    page = rep.to_html()
    assert "<b>not verified on pixels</b>" in page and ">not verified</td>" in page
    skipped = rep.summary()["verification"]["unverified"]
    assert skipped and skipped[0]["a"] == "train"
    # a clean never acts on unconfirmed pairs
    plan = gd.plan_clean(rep)
    assert plan.removed()["train"] == 0 and plan.left_alone > 0
    assert "left alone" in str(plan)


def test_clean_acts_on_confirmed_pairs_only():
    rng = np.random.default_rng(16)
    items = silhouettes(rng, 40)
    copies, origin = edited(rng, items[:9])
    test = np.concatenate([copies, items[30:]])  # 9 copies and 10 exact copies
    rep = gd.scan({"train": items[:30], "test": test})
    plan = gd.plan_clean(rep)
    # the look-alikes of one silhouette stay; copies of test images leave train
    assert plan.removed() == {"train": 9, "test": 0}
    assert not plan.keep["train"][np.unique(origin)].any()
    # stricter: only the copies at least that similar
    leaks = rep.overlaps[("train", "test")]
    strict = float(np.median(leaks.similarity[~leaks.exact]))
    fewer = gd.plan_clean(rep, min_similarity=strict)
    assert 0 < fewer.removed()["train"] < 9 and fewer.left_alone > 0
    assert gd.clean(rep, min_similarity=strict, dry_run=True).removed() == fewer.removed()
    with pytest.raises(gd.InputError, match="min_similarity"):
        gd.plan_clean(rep, min_similarity=2)
    # unverified (trusting the hashes): near pairs are reported but a clean leaves them
    loose = gd.scan({"train": items[:30], "test": test}, verify=False)
    assert sum(len(o) for o in loose.duplicates.values()) > 0
    plan = gd.plan_clean(loose)
    assert plan.removed()["train"] <= 9 and plan.left_alone > 0


def test_candidates_are_verified_launch_by_launch(monkeypatch):
    # a small output buffer: many launches, and only what each launch keeps accumulates
    monkeypatch.setattr(search_mod, "BLOCK_ROWS", 4)
    monkeypatch.setattr(search_mod, "CALIBRATION_BLOCKS", 2)
    monkeypatch.setattr(search_mod, "OUTPUT_SLOTS", 64)
    monkeypatch.setattr(search_mod, "INITIAL_CAPACITY", 8)
    rng = np.random.default_rng(17)
    items = silhouettes(rng, 60)
    seen = []
    original = search_mod._run_blocks

    def spy(run, n_rows, xp, bar=None, refine=None):
        def counted(i, j, d):
            seen.append(i.size)
            return refine(i, j, d)
        return original(run, n_rows, xp, bar, counted if refine else None)

    monkeypatch.setattr(search_mod, "_run_blocks", spy)
    flood = gd.find_overlaps(items, verify=False)
    seen.clear()
    ov = gd.find_overlaps(items)
    assert len(seen) > 3 and sum(seen) == len(flood) and max(seen) <= 4 * 64
    assert len(ov) < len(flood)


def test_cli_search_options(tmp_path, capsys):
    import h5py

    rng = np.random.default_rng(18)
    items = silhouettes(rng, 30)
    copies, _ = edited(rng, items[:6])
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f["train"], f["test"] = items, copies
    args = [str(path), "--split", "train=/train", "--split", "test=/test", "--quiet"]
    assert cli.main(["scan", *args, "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "confirmed on pixels at similarity >= 0.75" in out
    import json

    rows = json.loads((tmp_path / "r.json").read_text())["pairs"]
    assert len(rows) == 6 and all(r["similarity"] >= 0.75 for r in rows)
    assert cli.main(["scan", *args, "--min-similarity", "0.99"]) == 0
    assert "confirmed on pixels at similarity >= 0.99" in capsys.readouterr().out
    assert cli.main(["scan", *args, "--no-verify"]) == 0
    assert "not confirmed on pixels" in capsys.readouterr().out
    assert cli.main(["scan", *args, "--min-similarity", "2"]) == 2
    assert "--min-similarity" in capsys.readouterr().err


def photo_crops(rng, n: int, side: int = 28) -> np.ndarray:
    """``n`` real photograph crops (scikit-image's camera and coins), resized to side x side."""
    from helpers import photo
    from PIL import Image

    out = []
    for k in range(n):
        pic = photo("camera" if k % 2 else "coins")
        y, x = rng.integers(0, min(pic.shape) - 96, 2)
        window = Image.fromarray(pic[y:y + 96, x:x + 96])
        out.append(np.asarray(window.resize((side, side), Image.Resampling.LANCZOS)))
    return np.stack(out)


def test_dihedral_finds_every_flip_and_rotation_and_names_it():
    from gpudedup.transforms import INVERSE, TRANSFORMS, apply

    rng = np.random.default_rng(19)
    base = photo_crops(rng, 40)
    codes = np.arange(16) % 8
    turned = np.stack([apply(base[k], t) for k, t in enumerate(codes)])
    plain = gd.find_overlaps(base, turned)
    assert set(plain.right.tolist()) <= set(np.flatnonzero(codes == 0).tolist())
    ov = gd.find_overlaps(base, turned, invariant="dihedral")
    found = {(int(i), int(j)): TRANSFORMS[t] for i, j, t in zip(ov.left, ov.right, ov.transform)}
    # base[k] is a copy of T(turned[k]) with T the inverse of the turn that made turned[k]
    for k, t in enumerate(codes):
        assert found.get((k, k)) == TRANSFORMS[INVERSE[t]], (k, TRANSFORMS[t])
    assert ov.similarity[ov.left == ov.right].min() == 1.0
    # inside one set: each pair once (i < j), its transform read from i's side
    both = np.concatenate([base[:16], turned])
    inside = gd.find_overlaps(both, invariant="dihedral")
    pairs = {(int(i), int(j)): int(t) for i, j, t in zip(inside.left, inside.right,
                                                         inside.transform)}
    for k, t in enumerate(codes):
        assert pairs.get((k, 16 + k)) == INVERSE[t]
    assert (inside.left < inside.right).all()
    for i, j, t in zip(inside.left, inside.right, inside.transform):
        np.testing.assert_array_equal(both[i], apply(both[j], t))
    # non-square images: flips and the half turn only
    wide = photo_crops(rng, 8, 32)[:, :24, :]
    ov = gd.find_overlaps(wide, wide[:, ::-1, ::-1].copy(), invariant="dihedral")
    assert {TRANSFORMS[t] for t in ov.transform[ov.left == ov.right]} == {"rot180"}


def test_shifted_hashes_find_shifted_copies():
    rng = np.random.default_rng(20)
    base = photo_crops(rng, 40)
    shifted = np.stack([np.pad(base[k], 1, mode="edge")[2:30, 0:28] for k in range(20)])
    plain = gd.find_overlaps(base, shifted, threshold=4)
    ov = gd.find_overlaps(base, shifted, threshold=4, shifts=1)
    own = ov.left == ov.right
    assert own.sum() > plain.left.size and own.sum() >= 16
    # the verification shift undoes the move; the hash variant that matched is recorded
    assert (ov.shift[own] == [-1, 1]).all()  # shifted[y, x] = base[y + 1, x - 1]
    assert (ov.offset[own] != 0).any()
    with pytest.raises(gd.InputError, match="shifts"):
        gd.find_overlaps(base, shifts=3)
    with pytest.raises(gd.InputError, match="invariant"):
        gd.find_overlaps(base, invariant="affine")


def copies_in_every_variant(rng, n: int = 60) -> np.ndarray:
    """Photo crops, with flipped, turned and 1 px shifted copies of some (variant ties)."""
    from gpudedup.transforms import apply

    base = photo_crops(rng, n)
    turned = np.stack([apply(base[k], 1 + k % 7) for k in range(12)])
    moved = np.stack([np.pad(base[k], 1, mode="edge")[2:30, 1:29] for k in range(12, 24)])
    return np.concatenate([base, turned, moved, base[30:36] // 2 + 40])


@pytest.mark.parametrize("options", [{"invariant": "dihedral"}, {"shifts": 1},
                                     {"invariant": "dihedral", "shifts": 1, "threshold": 10}])
def test_variant_search_in_blocks_equals_the_whole(options, monkeypatch):
    # the parts a Dask run splits a search into give the whole search's rows: the plain hashes
    # in blocks of first images (lead=), the variant hashes in blocks of the rows their search
    # queries with, each pair's pick among its candidates by a total order (best_per_pair)
    from gpudedup import backend, distributed
    from gpudedup.api import _overlaps

    monkeypatch.setattr(search_mod, "BLOCK_ROWS", 16)  # several blocks of variant rows
    x = copies_in_every_variant(np.random.default_rng(23))
    kwargs = {"threshold": 8, **options}
    whole = gd.find_overlaps(x, **kwargs)
    assert len(whole) >= 12 and ((whole.transform > 0) | (whole.offset != 0).any(axis=1)).any()
    threshold = kwargs.pop("threshold")
    be = backend.resolve("cpu")
    names = ("left", "right", "distance", "similarity", "residual", "shift", "transform",
             "offset", "verified", "exact")
    plain = {name: [] for name in names}
    for start, stop in ((0, 7), (7, 40), (40, 41), (41, x.shape[0])):
        rest = gd.hash_images(x[start:], **kwargs)
        ov = _overlaps(rest, None, ("a", "a"), threshold=threshold, exact=True, near=True,
                       verify=True, be=be, strategy="auto", lead=stop - start, part="plain")
        assert (ov.left < stop - start).all() and (ov.transform == 0).all()
        for name, got in plain.items():
            value = getattr(ov, name)
            got.append(value + start if name in ("left", "right") else value)
    plain = {name: np.concatenate(got) for name, got in plain.items()}
    hs = gd.hash_images(x, **kwargs)
    side = distributed.WorkerSide(hs.phashes, hs.digests, x.shape[1:], x.dtype, "x",
                                  hs.convention, pixels=x, variants=hs.variants,
                                  variant_table=hs.variant_table, backend="cpu")
    rows = np.arange(x.shape[0])
    total = distributed._variant_rows(hs, None, rows, None, threshold, "auto", be)
    edges = [0, 16, 48, 64, *range(128, total, 96), total]
    options = {"threshold": threshold, "verify": True, "strategy": "auto", "backend": "cpu",
               "min_similarity": gd.DEFAULT_MIN_SIMILARITY}
    variants = [distributed.variant_block(side, None, lo, hi, ("a", "a"), options, rows,
                                          None)["columns"]
                for lo, hi in zip(edges[:-1], edges[1:])]
    got = distributed._with_variants(plain, variants, verify=True)
    for name in names:
        np.testing.assert_array_equal(got[name], getattr(whole, name), err_msg=name)


def test_best_variant_does_not_depend_on_the_order_candidates_come_in():
    # ties on similarity, transform and distance: the smallest hash shift, then the lowest
    # rank, wins whatever order the launches or tasks gave the rows in
    from gpudedup.matching import best_per_pair

    offsets = np.array([[1, 1], [0, 1], [-1, 0], [0, 0], [1, 0], [0, -1]], np.int8)
    cols = {"i": np.array([0, 0, 0, 2, 2, 2]), "j": np.array([1, 1, 1, 5, 5, 5]),
            "distance": np.array([3, 3, 3, 4, 4, 2], np.uint8),
            "similarity": np.full(6, 0.9, np.float32), "residual": np.full(6, 3.2),
            "shift": np.zeros((6, 2), np.int8), "transform": np.array([1, 1, 1, 0, 0, 0],
                                                                      np.uint8),
            "offset": offsets, "verified": np.ones(6, bool),
            "rank": np.array([9, 4, 2, 7, 8, 1])}
    picks = set()
    for seed in range(12):
        order = np.random.default_rng(seed).permutation(6)
        best = best_per_pair({key: value[order] for key, value in cols.items()})
        assert "rank" not in best and best["i"].tolist() == [0, 2]
        picks.add(tuple(map(tuple, best["offset"].tolist())))
    # pair (0, 1): shifts of size 1 tie, rank 2 beats 4; pair (2, 5): the nearest hash first
    assert picks == {((-1, 0), (0, -1))}


def test_variants_need_images_or_saved_variants(tmp_path):
    rng = np.random.default_rng(21)
    big = smooth_images(rng, 4, 80, 80)
    path = tmp_path / "big.h5"
    gd.hash_images(big).save(path)
    with pytest.raises(gd.InputError, match="invariant, shifts"):
        gd.find_overlaps(big, gd.HashSet.load(path), invariant="dihedral")


def test_rgb_sizes_and_dtypes_meet_on_a_common_grid():
    import warnings

    from PIL import Image

    rng = np.random.default_rng(22)
    small = photo_crops(rng, 20, 28)
    # the same pictures at twice the size (Pillow), as float32 in [0, 1], and as RGB
    double = np.stack([np.asarray(Image.fromarray(x).resize((56, 56), Image.Resampling.LANCZOS))
                       for x in small])
    rgb = np.repeat(small[..., None], 3, axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # verified, so no "not verified" warning
        for other in (double, small.astype(np.float32) / 255, rgb):
            ov = gd.find_overlaps(small, other)
            own = ov.left == ov.right
            assert own.sum() >= 18, other.shape
            assert ov.verified.all() and ov.unverified is None
            assert ov.left[~own].size <= 2


def test_saved_variants_serve_a_search_without_images(tmp_path):
    from gpudedup.transforms import apply

    rng = np.random.default_rng(23)
    base = photo_crops(rng, 12, 72)  # 5,184 bytes: saved without pixels
    turned = np.stack([apply(x, 1) for x in base[:6]])
    path = tmp_path / "turned.h5"
    gd.hash_images(turned, invariant="dihedral").save(path)
    loaded = gd.HashSet.load(path)
    assert loaded.pixels is None and loaded.variant_table.shape == (8, 3)
    with pytest.warns(UserWarning, match="not verified"):
        ov = gd.find_overlaps(base, loaded, invariant="dihedral")
    own = ov.left == ov.right
    assert own.sum() == 6 and (ov.transform[own] == 1).all()
    # with the images at hand the same pairs are verified
    ov = gd.find_overlaps(base, turned, invariant="dihedral")
    assert (ov.left == ov.right).sum() == 6 and ov.verified.all()
