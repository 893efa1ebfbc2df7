"""find_overlaps, HDF5 inputs and scan, against the naive references."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import perturb, planted, same_overlaps, smooth_images, write_h5
from naive import naive_exact_pairs, naive_groups, naive_hamming_pairs

import gpudedup as gd
from gpudedup.schema import PAIR_COLUMNS, SCHEMA_VERSION, SECTIONS


def expected_overlaps(a, b, threshold, *, exact=True, near=True):
    """(pairs, distance, exact) the way find_overlaps should report them, from the naive
    references and the phashes (themselves checked against imagehash in test_phash)."""
    pa = gd.phash(a)
    pb = None if b is None else gd.phash(b)
    exact_pairs = set(naive_exact_pairs(a, b)) if exact else set()
    rows = {}
    if near:
        i, j, d = naive_hamming_pairs(pa, pb, threshold)
        for ii, jj, dd in zip(i.tolist(), j.tolist(), d.tolist()):
            rows[ii, jj] = (dd, (ii, jj) in exact_pairs)
    else:
        for pair in exact_pairs:
            rows[pair] = (0, True)
    keys = sorted(rows)
    return (np.array(keys, dtype=np.int64).reshape(-1, 2),
            np.array([rows[k][0] for k in keys], dtype=np.uint8),
            np.array([rows[k][1] for k in keys], dtype=bool))


def assert_overlaps(ov, expected):
    pairs, distance, exact = expected
    assert isinstance(ov, gd.Overlaps)
    assert ov.pairs.dtype == np.int64 and ov.pairs.shape == (len(ov), 2)
    assert ov.distance.dtype == np.uint8 and ov.exact.dtype == bool
    np.testing.assert_array_equal(ov.pairs, pairs)
    np.testing.assert_array_equal(ov.left, pairs[:, 0])
    np.testing.assert_array_equal(ov.right, pairs[:, 1])
    np.testing.assert_array_equal(ov.distance, distance)
    np.testing.assert_array_equal(ov.exact, exact)


# ------------------------------------------------------------------------ find_overlaps


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_exact_pairs_match_naive(dtype):
    rng = np.random.default_rng(400)
    a = planted(rng, dtype=dtype)
    b = smooth_images(rng, 30, 24, 20, dtype=dtype)
    b[0], b[5], b[29] = a[3], a[59], a[3]
    for left, right in ((a, None), (a, b), (b, a), (b, None)):
        ov = gd.find_overlaps(left, right, threshold=0, near=False)
        assert list(ov) == naive_exact_pairs(left, right)
        assert ov.exact.all() and (ov.distance == 0).all()
        full = gd.find_overlaps(left, right, threshold=6)
        assert_overlaps(full, expected_overlaps(left, right, 6))
        # every byte-identical pair is there and flagged, no other pair is flagged
        assert sorted(zip(full.left[full.exact].tolist(), full.right[full.exact].tolist())) \
            == naive_exact_pairs(left, right)


def test_self_join_pairs_are_ordered_and_sorted():
    rng = np.random.default_rng(401)
    images = planted(rng, n=60)
    images[50:] = images[0]  # a group of eleven identical images
    ov = gd.find_overlaps(images, threshold=10)
    assert (ov.left < ov.right).all()
    keys = ov.left * 1000 + ov.right
    assert (np.diff(keys) > 0).all()
    assert list(ov) == [tuple(p) for p in ov.pairs.tolist()]
    assert all(type(i) is int and type(j) is int for i, j in ov)
    assert len(ov) == ov.pairs.shape[0]
    assert_overlaps(ov, expected_overlaps(images, None, 10))


def test_near_pairs_for_small_perturbations():
    rng = np.random.default_rng(402)
    a = smooth_images(rng, 40, 48, 40)
    b = perturb(a[:15], rng)  # +-1 on three pixels: never byte-identical
    ov = gd.find_overlaps(a, b, threshold=8)
    found = set(ov)
    for k in range(15):
        assert (k, k) in found
    assert not ov.exact.any()
    assert_overlaps(ov, expected_overlaps(a, b, 8))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_exact_false_and_near_false(dtype):
    rng = np.random.default_rng(403)
    a = planted(rng, dtype=dtype)
    b = perturb(a[:10], rng)
    b[3] = a[30]
    both = gd.find_overlaps(a, b, threshold=5)
    near_only = gd.find_overlaps(a, b, threshold=5, exact=False)
    exact_only = gd.find_overlaps(a, b, threshold=5, near=False)
    # exact=False: the same near pairs, nothing flagged exact
    np.testing.assert_array_equal(near_only.pairs, both.pairs)
    np.testing.assert_array_equal(near_only.distance, both.distance)
    assert not near_only.exact.any()
    # near=False: only the byte-identical pairs
    assert_overlaps(exact_only, expected_overlaps(a, b, 5, near=False))
    assert list(exact_only) == [(30, 3), (40, 3)]  # a[40] is a planted copy of a[30]
    with pytest.raises(ValueError, match="exact|near"):
        gd.find_overlaps(a, b, exact=False, near=False)


def test_find_duplicates_is_find_overlaps_of_one_set():
    rng = np.random.default_rng(404)
    images = planted(rng)
    same_overlaps(gd.find_duplicates(images, threshold=4), gd.find_overlaps(images, threshold=4))


def test_threshold_bounds():
    rng = np.random.default_rng(405)
    images = planted(rng, n=30)
    codes = gd.phash(images)
    for threshold in (0, 1, 32, 64, np.int64(7), np.uint8(3)):
        # verify=False: every candidate of the hash search, unconfirmed
        ov = gd.find_overlaps(images, threshold=threshold, verify=False)
        i, j, d = naive_hamming_pairs(codes, None, int(threshold))
        np.testing.assert_array_equal(ov.pairs, np.column_stack([i, j]).reshape(-1, 2))
        assert ov.threshold == int(threshold)
        assert np.isnan(ov.similarity[~ov.exact]).all() and not ov.verified.any()
    assert len(gd.find_overlaps(images, threshold=64, verify=False)) == 30 * 29 // 2
    # verified, the random images stay apart: only the planted copies remain
    verified = gd.find_overlaps(images, threshold=64)
    assert verified.verified.all() and (verified.similarity >= gd.DEFAULT_MIN_SIMILARITY).all()
    assert len(verified) < 30
    assert gd.find_overlaps(images).threshold == gd.DEFAULT_THRESHOLD


@pytest.mark.parametrize("strategy", ["auto", "brute", "mih"])
def test_strategies_agree(strategy):
    rng = np.random.default_rng(406)
    a = planted(rng, n=120)
    b = perturb(a[::3], rng)
    same_overlaps(gd.find_overlaps(a, b, strategy=strategy, threshold=10),
                  gd.find_overlaps(a, b, strategy="brute", threshold=10))


def test_batch_size_does_not_change_pairs():
    rng = np.random.default_rng(407)
    a = planted(rng, n=50)
    b = perturb(a[:20], rng)
    b[7] = a[40]
    reference = gd.find_overlaps(a, b, threshold=8)
    for batch_size in (1, 3, 49, 1000):
        same_overlaps(gd.find_overlaps(a, b, threshold=8, batch_size=batch_size), reference)
    same_overlaps(gd.find_overlaps(a, b, threshold=8, progress=True, backend="cpu"), reference)


def test_different_image_shapes():
    # near matching across shapes works; exact matching finds nothing
    rng = np.random.default_rng(408)
    a = smooth_images(rng, 20, 30, 30)
    b = np.repeat(np.repeat(a[:8], 2, axis=1), 2, axis=2)  # nearest-neighbour 2x
    c = a.reshape(20, 15, 60)  # the same bytes in another shape
    ov = gd.find_overlaps(a, b, threshold=10)
    assert not ov.exact.any()
    assert_overlaps(ov, expected_overlaps(a, b, 10))
    assert {(k, k) for k in range(8)} <= set(ov)
    assert len(gd.find_overlaps(a, c, near=False)) == 0


def test_exact_means_byte_identical_not_equal_values():
    images = np.zeros((3, 8, 8), np.float32)
    images[:, 2, 2] = 1.0
    images[1, 0, 0] = -0.0  # equal values, different bytes
    ov = gd.find_overlaps(images, threshold=0)
    assert list(ov) == [(0, 1), (0, 2), (1, 2)]
    np.testing.assert_array_equal(ov.exact, [False, True, False])
    np.testing.assert_array_equal(ov.distance, [0, 0, 0])


def test_rgb_inputs():
    rng = np.random.default_rng(409)
    rgb = rng.integers(0, 256, (12, 20, 16, 3), dtype=np.uint8)
    rgb[5] = rgb[2]
    ov = gd.find_overlaps(rgb, threshold=0)
    assert (2, 5) in set(ov)
    assert ov.exact[list(ov).index((2, 5))]
    assert list(gd.find_overlaps(rgb, near=False)) == [(2, 5)]


def test_empty_inputs():
    rng = np.random.default_rng(410)
    a = planted(rng, n=20)
    empty = np.zeros((0, 24, 20), np.uint8)
    for left, right in ((empty, None), (empty, a), (a, empty), (empty, empty)):
        ov = gd.find_overlaps(left, right)
        assert len(ov) == 0 and list(ov) == [] and ov.pairs.shape == (0, 2)
        assert ov.pairs.dtype == np.int64 and ov.distance.dtype == np.uint8
    assert gd.find_overlaps(a[:1]).groups() == []
    assert len(gd.find_overlaps(a[:1], a[:1])) == 1


def test_overlaps_groups():
    rng = np.random.default_rng(411)
    images = smooth_images(rng, 60, 20, 20)
    for src, dst in ((0, 7), (7, 9), (3, 50), (50, 51), (51, 52), (11, 12)):
        images[dst] = images[src]
    ov = gd.find_overlaps(images, near=False)
    groups = ov.groups()
    assert all(isinstance(g, np.ndarray) for g in groups)
    assert sorted(g.tolist() for g in groups) == naive_groups(60, list(ov))
    sizes = [g.size for g in groups]
    assert sizes == sorted(sizes, reverse=True)
    near = gd.find_overlaps(images, threshold=12)
    assert sorted(g.tolist() for g in near.groups()) == naive_groups(60, list(near))
    with pytest.raises(ValueError):
        gd.find_overlaps(images, images[:5]).groups()


# ----------------------------------------------------------------------------- verify


def test_verify_confirms_true_duplicates():
    rng = np.random.default_rng(421)
    a = planted(rng, n=40)
    for verify in (True, False):
        ov = gd.find_overlaps(a, threshold=0, near=False, verify=verify)
        assert list(ov) == naive_exact_pairs(a)


# ------------------------------------------------------------------------------ HDF5


def test_hdf5_dataset_and_path_inputs(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(440)
    train = planted(rng, n=40)
    valid = perturb(train[:10], rng)
    valid[6] = train[30]
    path = tmp_path / "data.h5"
    write_h5(path, g__train=train, valid=valid)
    reference = gd.find_overlaps(train, valid, threshold=8)
    same_overlaps(gd.find_overlaps(f"{path}:/g/train", f"{path}:/valid", threshold=8),
                  reference)
    same_overlaps(gd.find_overlaps(f"{path}:g/train", f"{path}:valid", threshold=8), reference)
    with h5py.File(path, "r") as f:
        same_overlaps(gd.find_overlaps(f["g/train"], f["valid"], threshold=8), reference)
        same_overlaps(gd.find_overlaps(f["g/train"], valid, threshold=8, batch_size=3),
                      reference)
        same_overlaps(gd.find_overlaps(f["g/train"], threshold=8),
                      gd.find_overlaps(train, threshold=8))
        np.testing.assert_array_equal(gd.phash(f["valid"]), gd.phash(valid))
        hs = gd.hash_images(f["g/train"])
        same_overlaps(gd.find_overlaps(hs, valid, threshold=8), reference)
    np.testing.assert_array_equal(gd.phash(f"{path}:/g/train", batch_size=7), gd.phash(train))


def test_hdf5_errors_name_the_argument(tmp_path):
    path = tmp_path / "data.h5"
    write_h5(path, g__train=np.zeros((4, 5, 5), np.uint8))
    with pytest.raises(ValueError, match=r"^b:.*nope"):
        gd.find_overlaps(np.zeros((2, 5, 5), np.uint8), f"{path}:/nope")
    with pytest.raises(ValueError, match=r"^a:.*(group|dataset)"):
        gd.find_overlaps(f"{path}:/g")
    with pytest.raises(ValueError, match=r"^a:.*(exist|missing)"):
        gd.find_overlaps(f"{tmp_path / 'missing.h5'}:/x")
    not_h5 = tmp_path / "plain.txt"
    not_h5.write_text("hello")
    with pytest.raises(ValueError, match=r"^images:.*HDF5"):
        gd.phash(f"{not_h5}:/x")
    with pytest.raises(ValueError, match=r"^splits\['valid'\]:"):
        gd.scan({"train": np.zeros((2, 5, 5), np.uint8), "valid": f"{path}:/nope"})


# ------------------------------------------------------------------------------- scan


def _three_splits(rng):
    train = planted(rng, n=70, copies=((3, 10), (30, 40)))
    valid = smooth_images(rng, 25, 24, 20)
    test = smooth_images(rng, 20, 24, 20)
    valid[0] = train[3]  # leak, exact
    valid[4] = perturb(train[50:51], rng)[0]  # leak, near
    valid[8] = valid[9]  # duplicate inside valid
    test[1] = train[30]  # leak, exact
    test[2] = valid[12]
    test[5] = perturb(valid[20:21], rng)[0]
    labels = {"train": rng.integers(0, 3, 70), "valid": rng.integers(0, 3, 25),
              "test": rng.integers(0, 3, 20)}
    labels["valid"][0] = (labels["train"][3] + 1) % 3  # a conflict across splits
    labels["train"][10] = labels["train"][3]  # no conflict inside train for this pair
    labels["train"][40] = (labels["train"][30] + 1) % 3  # a conflict inside train
    return {"train": train, "valid": valid, "test": test}, labels


def test_scan_overlaps_and_duplicates():
    rng = np.random.default_rng(450)
    splits, labels = _three_splits(rng)
    rep = gd.scan(splits, labels=labels, threshold=8)
    assert isinstance(rep, gd.Report)
    assert list(rep.overlaps) == [("train", "valid"), ("train", "test"), ("valid", "test")]
    assert list(rep.duplicates) == ["train", "valid", "test"]
    for (a, b), ov in rep.overlaps.items():
        same_overlaps(ov, gd.find_overlaps(splits[a], splits[b], threshold=8))
        assert_overlaps(ov, expected_overlaps(splits[a], splits[b], 8))
    for name, ov in rep.duplicates.items():
        same_overlaps(ov, gd.find_overlaps(splits[name], threshold=8))
    assert (0, 3) not in set(rep.overlaps[("train", "valid")])
    assert (3, 0) in set(rep.overlaps[("train", "valid")])
    assert (50, 4) in set(rep.overlaps[("train", "valid")])
    assert (8, 9) in set(rep.duplicates["valid"])
    assert (30, 1) in set(rep.overlaps[("train", "test")])
    assert (12, 2) in set(rep.overlaps[("valid", "test")])
    assert (20, 5) in set(rep.overlaps[("valid", "test")])


def _all_pairs(rep):
    for name, ov in rep.duplicates.items():
        for (i, j), d, e in zip(ov, ov.distance.tolist(), ov.exact.tolist()):
            yield name, i, name, j, d, e
    for (a, b), ov in rep.overlaps.items():
        for (i, j), d, e in zip(ov, ov.distance.tolist(), ov.exact.tolist()):
            yield a, i, b, j, d, e


def test_scan_conflicts_are_exactly_the_label_differing_pairs():
    rng = np.random.default_rng(451)
    splits, labels = _three_splits(rng)
    rep = gd.scan(splits, labels=labels, threshold=8)
    expected = {(a, i, b, j) for a, i, b, j, _, _ in _all_pairs(rep)
                if labels[a][i] != labels[b][j]}
    got = {(c.a, c.i, c.b, c.j) for c in rep.conflicts}
    assert got == expected
    assert len(rep.conflicts) == len(got)
    assert ("train", 3, "valid", 0) in got and ("train", 30, "train", 40) in got
    assert ("train", 3, "train", 10) not in got
    for c in rep.conflicts:
        assert isinstance(c, gd.Conflict)
        assert c.label_a == labels[c.a][c.i] and c.label_b == labels[c.b][c.j]
        assert c.label_a != c.label_b
        ov = rep.duplicates[c.a] if c.a == c.b else rep.overlaps[(c.a, c.b)]
        k = list(ov).index((c.i, c.j))
        assert c.distance == int(ov.distance[k]) and c.exact == bool(ov.exact[k])


def test_scan_conflicts_need_labels_on_both_sides():
    rng = np.random.default_rng(452)
    splits, labels = _three_splits(rng)
    rep = gd.scan(splits, labels={"train": labels["train"], "valid": None}, threshold=8)
    assert {(c.a, c.b) for c in rep.conflicts} <= {("train", "train")}
    assert gd.scan(splits, threshold=8).conflicts == []


def test_scan_string_and_one_hot_labels():
    rng = np.random.default_rng(453)
    splits, labels = _three_splits(rng)
    names = np.array(["cat", "dog", "eel"])
    as_strings = {k: names[v] for k, v in labels.items()}
    as_one_hot = {k: np.eye(3, dtype=np.uint8)[v] for k, v in labels.items()}
    base = gd.scan(splits, labels=labels, threshold=8).conflicts
    for other in (as_strings, as_one_hot):
        rep = gd.scan(splits, labels=other, threshold=8)
        assert [(c.a, c.i, c.b, c.j) for c in rep.conflicts] == \
            [(c.a, c.i, c.b, c.j) for c in base]
        json.loads(rep.to_json())


def test_scan_groups_union_find_over_all_pairs():
    rng = np.random.default_rng(454)
    splits, labels = _three_splits(rng)
    rep = gd.scan(splits, labels=labels, threshold=8)
    offsets = {"train": 0, "valid": 70, "test": 95}
    edges = [(offsets[a] + i, offsets[b] + j) for a, i, b, j, _, _ in _all_pairs(rep)]
    expected = naive_groups(115, edges)
    names = list(offsets)

    def node(split, index):
        return offsets[split] + index

    groups = rep.groups()
    assert sorted(sorted(node(s, i) for s, i in g) for g in groups) == expected
    for g in groups:
        # split order, then index order, inside each group
        assert g == sorted(g, key=lambda si: (names.index(si[0]), si[1]))
        assert all(isinstance(s, str) and type(i) is int for s, i in g)
    assert [len(g) for g in groups] == sorted((len(g) for g in groups), reverse=True)
    assert any({("train", 3), ("train", 10), ("valid", 0)} <= set(g) for g in groups)


def test_scan_summary():
    rng = np.random.default_rng(455)
    splits, labels = _three_splits(rng)
    rep = gd.scan(splits, labels=labels, threshold=8)
    summary = rep.summary()
    assert summary["threshold"] == 8
    assert summary["conflicts"] == len(rep.conflicts)
    assert summary["groups"] == len(rep.groups())
    for name, row in summary["splits"].items():
        ov = rep.duplicates[name]
        assert row["count"] == len(splits[name])
        assert row["duplicate_pairs"] == len(ov)
        assert row["exact_duplicate_pairs"] == int(ov.exact.sum())
    leaks = {(row["a"], row["b"]): row for row in summary["leaks"]}
    for key, ov in rep.overlaps.items():
        assert leaks[key]["pairs"] == len(ov)
        assert leaks[key]["exact_pairs"] == int(ov.exact.sum())
        assert leaks[key]["a_images"] == np.unique(ov.left).size
        assert leaks[key]["b_images"] == np.unique(ov.right).size
    assert isinstance(str(rep), str)


def test_scan_to_json_schema(tmp_path):
    rng = np.random.default_rng(456)
    splits, labels = _three_splits(rng)
    labels.pop("test")
    rep = gd.scan(splits, labels=labels, threshold=8)
    text = rep.to_json()
    data = json.loads(text)
    assert set(data) >= {"schema_version", "version", "mode", "threshold", "splits", "pairs",
                         "summary"}
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["version"] == gd.__version__
    assert data["mode"] == "exact+near"
    assert data["threshold"] == 8
    assert list(data["splits"]) == ["train", "valid", "test"]
    for name, info in data["splits"].items():
        assert set(info) >= {"source", "count", "shape", "dtype"}
        assert info["count"] == len(splits[name])
        assert list(info["shape"]) == list(splits[name].shape[1:])
        assert info["dtype"] == str(splits[name].dtype)
    expected = {(a, i, b, j): (d, e) for a, i, b, j, d, e in _all_pairs(rep)}
    # the rows are links (classes of identical images from their first member): a subset of
    # the pairs whose components are the report's groups
    assert 0 < len(data["pairs"]) <= len(expected)
    ids = rep.group_index().ids
    conflicts = {(c.a, c.i, c.b, c.j) for c in rep.conflicts}
    sections = []
    for row in data["pairs"]:
        assert list(row) == list(PAIR_COLUMNS)
        key = (row["a"], row["i"], row["b"], row["j"])
        assert expected[key] == (row["distance"], row["exact"])
        assert isinstance(row["exact"], bool)  # a JSON boolean, not 0/1
        kind = "duplicate" if row["a"] == row["b"] else "leak"
        assert row["section"] == f"{'exact' if row['exact'] else 'near'}_{kind}"
        sections.append(row["section"])
        if row["a"] == row["b"]:
            assert row["i"] < row["j"]
        for side, name, index in (("a", row["a"], row["i"]), ("b", row["b"], row["j"])):
            want = int(labels[name][index]) if name in labels else None
            assert row[f"label_{side}"] == want
        if row["a"] in labels and row["b"] in labels:
            assert row["conflict"] is (key in conflicts)
        else:
            assert row["conflict"] is None and key not in conflicts
        assert row["group"] == ids[row["a"]][row["i"]] == ids[row["b"]][row["j"]] >= 0
        for column in ("path_a", "path_b"):
            assert row[column] is None
        # every reported pair was confirmed on pixels; exact copies are similarity 1
        assert row["similarity"] >= gd.DEFAULT_MIN_SIMILARITY and row["residual"] >= 0
        assert (row["similarity"] == 1.0) if row["exact"] else row["similarity"] <= 1.0
        assert row["transform"] == "identity" and row["offset"] == [0, 0]
    # rows come in display order: exact leaks, near leaks, exact duplicates, near duplicates
    assert sections == sorted(sections, key=list(SECTIONS).index)
    assert {"exact_leak", "near_leak", "exact_duplicate"} <= set(sections)
    for key in ("near_leak", "near_duplicate"):  # near pairs most alike first
        distances = [row["distance"] for row in data["pairs"] if row["section"] == key]
        assert distances == sorted(distances)
    assert any(row["conflict"] is None for row in data["pairs"])  # test has no labels
    assert data["summary"] == json.loads(json.dumps(rep.summary()))
    path = tmp_path / "report.json"
    assert rep.to_json(path) == text
    assert json.loads(path.read_text()) == data


def test_scan_with_hashsets_and_empty_split(tmp_path):
    rng = np.random.default_rng(457)
    splits, labels = _three_splits(rng)
    hs = gd.hash_images(splits["train"])
    empty = np.zeros((0, 24, 20), np.uint8)
    rep = gd.scan({"train": hs, "empty": empty, "test": splits["test"]},
                  labels={"train": labels["train"], "empty": np.array([], int)}, threshold=8)
    same_overlaps(rep.overlaps[("train", "test")],
                  gd.find_overlaps(splits["train"], splits["test"], threshold=8))
    assert len(rep.overlaps[("train", "empty")]) == 0
    assert len(rep.duplicates["empty"]) == 0
    assert rep.summary()["splits"]["empty"]["count"] == 0
    json.loads(rep.to_json())
    offsets = {"train": 0, "empty": 70, "test": 70}
    edges = [(offsets[a] + i, offsets[b] + j) for a, i, b, j, _, _ in _all_pairs(rep)]
    assert sorted(sorted(offsets[s] + i for s, i in g) for g in rep.groups()) == \
        naive_groups(90, edges)
    assert all(s != "empty" for g in rep.groups() for s, _ in g)


def test_scan_options_pass_through():
    rng = np.random.default_rng(458)
    splits, labels = _three_splits(rng)
    for options in ({"exact": False}, {"near": False}, {"threshold": 0}, {"strategy": "mih"},
                    {"batch_size": 5}, {"verify": False}):
        rep = gd.scan(splits, **options)
        for (a, b), ov in rep.overlaps.items():
            same_overlaps(ov, gd.find_overlaps(splits[a], splits[b], **options))
        for name, ov in rep.duplicates.items():
            same_overlaps(ov, gd.find_overlaps(splits[name], **options))


def test_scan_of_one_split():
    rng = np.random.default_rng(459)
    images = planted(rng, n=30)
    labels = np.arange(30) % 2
    rep = gd.scan({"only": images}, labels={"only": labels}, threshold=5)
    assert rep.overlaps == {}
    same_overlaps(rep.duplicates["only"], gd.find_overlaps(images, threshold=5))
    assert {(c.i, c.j) for c in rep.conflicts} == {
        (i, j) for i, j in rep.duplicates["only"] if labels[i] != labels[j]}
    data = json.loads(rep.to_json())
    assert data["summary"]["leaks"] == [] and list(data["splits"]) == ["only"]


@pytest.mark.parametrize("chunks", [None, (1, 24, 20), (3, 24, 20), (7, 12, 10)])
def test_hdf5_layouts_and_batches_give_the_same_hashes(tmp_path, chunks):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(442)
    images = planted(rng, n=37)
    path = tmp_path / "layout.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=images, chunks=chunks,
                         compression="gzip" if chunks else None)
        f.create_dataset("f", data=images.astype(np.float32) / 7, chunks=chunks)
    for name, reference in (("x", images), ("f", images.astype(np.float32) / 7)):
        phashes, digests = gd.phash(reference), gd.digest(reference)
        for batch_size in (None, 2, 5, 64):
            np.testing.assert_array_equal(gd.phash(f"{path}:/{name}", batch_size=batch_size),
                                          phashes)
            np.testing.assert_array_equal(gd.digest(f"{path}:/{name}", batch_size=batch_size),
                                          digests)
        hs = gd.hash_images(f"{path}:/{name}", batch_size=4)
        np.testing.assert_array_equal(hs.phashes, phashes)
        np.testing.assert_array_equal(hs.digests, digests)
        same_overlaps(gd.find_overlaps(f"{path}:/{name}", batch_size=3),
                      gd.find_overlaps(reference))


def test_scan_checks_labels_before_hashing(monkeypatch):
    import gpudedup.api as api

    def no_hashing(*args, **kwargs):
        raise AssertionError("hashed before the labels were checked")

    monkeypatch.setattr(api, "hash_source", no_hashing)
    images = np.zeros((4, 8, 8), np.uint8)
    with pytest.raises(ValueError, match=r"labels\['b'\]: expected 4 labels"):
        gd.scan({"a": images, "b": images}, labels={"b": np.zeros(3)})
