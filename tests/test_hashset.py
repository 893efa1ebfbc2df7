"""HashSet: attributes, save/load, from_phash, conventions, and find_overlaps over HashSets."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import perturb, planted, same_overlaps, smooth_images, write_h5
from naive import naive_exact_pairs, naive_hamming_pairs

import gpudedup as gd


def _hashsets_with_fake_collision(rng):
    a = smooth_images(rng, 6, 16, 16)
    b = smooth_images(rng, 4, 16, 16)
    ha, hb = gd.hash_images(a), gd.hash_images(b)
    hb.digests[2] = ha.digests[1]  # a digest collision between different images
    return a, b, ha, hb


def test_verify_rejects_digest_collisions():
    rng = np.random.default_rng(420)
    a, b, ha, hb = _hashsets_with_fake_collision(rng)
    assert not np.array_equal(a[1], b[2])
    checked = gd.find_overlaps(ha, hb, threshold=64)
    assert not checked.exact.any()
    trusted = gd.find_overlaps(ha, hb, threshold=64, verify=False)
    assert list(trusted.pairs[trusted.exact].tolist()) == [[1, 2]]
    exact_only = gd.find_overlaps(ha, hb, near=False)
    assert len(exact_only) == 0
    assert list(gd.find_overlaps(ha, hb, near=False, verify=False)) == [(1, 2)]


def test_hash_images_attributes():
    rng = np.random.default_rng(430)
    images = planted(rng, n=25)
    hs = gd.hash_images(images)
    assert isinstance(hs, gd.HashSet)
    assert hs.count == len(hs) == 25
    np.testing.assert_array_equal(hs.phashes, gd.phash(images))
    np.testing.assert_array_equal(hs.digests, gd.digest(images))
    assert hs.image_shape == (24, 20)
    assert hs.dtype == np.uint8
    assert isinstance(hs.description, str) and isinstance(hs.convention, str)
    assert hs.convention


def test_hashset_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(431)
    train = planted(rng, n=50, dtype=np.float32)
    batch = perturb(train[:12], rng)
    batch[4] = train[20]
    batch[9] = train[3]
    hs = gd.hash_images(train)
    path = tmp_path / "train.hashes.h5"
    hs.save(path)
    loaded = gd.HashSet.load(path)
    np.testing.assert_array_equal(loaded.phashes, hs.phashes)
    np.testing.assert_array_equal(loaded.digests, hs.digests)
    assert loaded.phashes.dtype == np.uint64 and loaded.digests.dtype == np.uint64
    assert loaded.count == hs.count
    assert loaded.image_shape == hs.image_shape == (24, 20)
    assert loaded.dtype == hs.dtype == np.float32
    assert loaded.description == hs.description
    assert loaded.convention == hs.convention
    reference = gd.find_overlaps(train, batch, threshold=8)
    assert reference.exact.sum() >= 3  # the planted copies (3 -> 10, 20) plus 20, 3
    same_overlaps(gd.find_overlaps(hs, batch, threshold=8), reference)
    # a loaded HashSet has no images to compare: exact pairs rest on the digests, with a warning
    with pytest.warns(UserWarning, match="verif|digest"):
        from_disk = gd.find_overlaps(loaded, batch, threshold=8)
    same_overlaps(from_disk, reference)
    same_overlaps(gd.find_overlaps(loaded, batch, threshold=8, verify=False), reference)
    same_overlaps(gd.find_overlaps(batch, loaded, threshold=8, verify=False),
                  gd.find_overlaps(batch, train, threshold=8))
    # and a self-join of the loaded set
    same_overlaps(gd.find_overlaps(loaded, threshold=8, verify=False),
                  gd.find_overlaps(train, threshold=8))


def test_hashset_from_phash_is_near_only():
    rng = np.random.default_rng(432)
    a = planted(rng, n=40)
    b = perturb(a[:10], rng)
    b[2] = a[2]
    codes_a, codes_b = gd.phash(a), gd.phash(b)
    ha = gd.HashSet.from_phash(codes_a)
    assert ha.digests is None and ha.count == 40
    np.testing.assert_array_equal(ha.phashes, codes_a)
    for right in (gd.HashSet.from_phash(codes_b), b):
        ov = gd.find_overlaps(ha, right, threshold=6)
        i, j, d = naive_hamming_pairs(codes_a, codes_b, 6)
        np.testing.assert_array_equal(ov.pairs, np.column_stack([i, j]).reshape(-1, 2))
        np.testing.assert_array_equal(ov.distance, d)
        assert not ov.exact.any()
    # signed codes (as an int64 column might store them) are the same bits
    same_overlaps(gd.find_overlaps(gd.HashSet.from_phash(codes_a.view(np.int64)), threshold=6),
                  gd.find_overlaps(ha, threshold=6))
    assert len(gd.find_overlaps(gd.HashSet.from_phash(np.empty(0, np.uint64)), b)) == 0


def test_hashset_from_phash_round_trip(tmp_path):
    codes = np.random.default_rng(433).integers(0, 2**64, 30, dtype=np.uint64)
    hs = gd.HashSet.from_phash(codes)
    hs.save(tmp_path / "codes.h5")
    loaded = gd.HashSet.load(tmp_path / "codes.h5")
    np.testing.assert_array_equal(loaded.phashes, codes)
    assert loaded.digests is None


def test_hashset_convention_mismatch_warns():
    rng = np.random.default_rng(434)
    a = planted(rng, n=10)
    ha = gd.hash_images(a)
    hb = gd.hash_images(a[:3])
    other = gd.HashSet(hb.phashes ^ np.uint64(0xFF), hb.digests, image_shape=hb.image_shape,
                       dtype=hb.dtype, source=hb.source, convention="some-other-pillow")
    with pytest.warns(UserWarning, match="convention|order"):
        ov = gd.find_overlaps(ha, other, threshold=0)
    # byte-identical pairs are reported even when their phashes disagree
    assert [(i, j) for (i, j), e in zip(ov, ov.exact) if e] == [(0, 0), (1, 1), (2, 2)]
    np.testing.assert_array_equal(ov.distance[ov.exact], 8)


def test_hashset_of_a_closed_hdf5_file(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(441)
    images = planted(rng, n=20)
    path = tmp_path / "closed.h5"
    write_h5(path, x=images)
    with h5py.File(path, "r") as f:
        hs = gd.hash_images(f["x"])
    try:
        with pytest.warns(UserWarning):
            ov = gd.find_overlaps(hs, images, near=False)
    except ValueError as exc:
        assert str(exc).startswith("a:")
    else:
        assert list(ov) == naive_exact_pairs(images, images)
