"""Bad inputs raise ValueError/TypeError naming the argument; good inputs are never modified."""

from __future__ import annotations

import numpy as np
import pytest

import gpudedup as gd

ERRORS = (ValueError, TypeError)
GOOD = np.zeros((3, 8, 8), np.uint8)


def _calls(bad):
    """(call, argument name) for every public entry point given ``bad`` images."""
    return [
        (lambda: gd.phash(bad), "images"),
        (lambda: gd.digest(bad), "images"),
        (lambda: gd.hash_images(bad), "images"),
        (lambda: gd.find_overlaps(bad), "a"),
        (lambda: gd.find_overlaps(bad, GOOD), "a"),
        (lambda: gd.find_overlaps(GOOD, bad), "b"),
        (lambda: gd.find_duplicates(bad), "a"),
        (lambda: gd.scan({"train": GOOD, "valid": bad}), r"splits\['valid'\]"),
    ]


BAD_IMAGES = {
    "1-d": (np.zeros(8, np.uint8), ValueError),
    "2-d": (np.zeros((8, 8), np.uint8), ValueError),
    "5-d": (np.zeros((2, 8, 8, 3, 1), np.uint8), ValueError),
    "0-d": (np.uint8(3), ValueError),
    "zero height": (np.zeros((2, 0, 8), np.uint8), ValueError),
    "zero width": (np.zeros((2, 8, 0), np.uint8), ValueError),
    "zero rgb": (np.zeros((2, 0, 8, 3), np.uint8), ValueError),
    "rgba": (np.zeros((2, 8, 8, 4), np.uint8), ValueError),
    "one channel": (np.zeros((2, 8, 8, 1), np.uint8), ValueError),
    "float rgb": (np.zeros((2, 8, 8, 3), np.float32), TypeError),
    "uint16 rgb": (np.zeros((2, 8, 8, 3), np.uint16), TypeError),
    "object": (np.empty((2, 8, 8), object), TypeError),
    "complex": (np.zeros((2, 8, 8), np.complex64), TypeError),
    "strings": (np.full((2, 8, 8), "a"), TypeError),
    "datetime": (np.zeros((2, 8, 8), "datetime64[s]"), TypeError),
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_images_name_the_argument(case):
    bad, kind = BAD_IMAGES[case]
    for call, name in _calls(bad):
        with pytest.raises(kind, match=rf"^{name}:"):
            call()


def test_not_an_array():
    for bad in (object(), 3, {"x": 1}, None):
        for call, name in _calls(bad):
            if bad is None and name == "b":
                continue  # b=None means a self-join
            with pytest.raises(ERRORS, match=rf"^{name}:"):
                call()


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_float_images(value, dtype):
    bad = np.zeros((5, 8, 8), dtype)
    bad[3, 2, 1] = value
    for call, name in _calls(bad):
        with pytest.raises(ValueError, match=rf"^{name}:.*\b3\b.*(NaN|inf)"):
            call()
    # also when only digests (near=False) or only phashes (exact=False) are computed
    for options in ({"near": False}, {"exact": False}):
        with pytest.raises(ValueError, match=r"^a:.*(NaN|inf)"):
            gd.find_overlaps(bad, **options)
        with pytest.raises(ValueError, match=r"^b:.*(NaN|inf)"):
            gd.find_overlaps(GOOD.astype(dtype), bad, **options)


def test_non_finite_in_a_later_batch():
    bad = np.zeros((20, 8, 8), np.float32)
    bad[17, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"^images:.*17"):
        gd.phash(bad, batch_size=4)
    with pytest.raises(ValueError, match=r"^images:.*17"):
        gd.digest(bad, batch_size=4)


def test_float16_nan():
    bad = np.zeros((2, 8, 8), np.float16)
    bad[1, 1, 1] = np.nan
    with pytest.raises(ValueError, match=r"^images:"):
        gd.phash(bad)


@pytest.mark.parametrize("threshold", [-1, 65, 1000, 8.0, 8.5, "8", None, True, False,
                                       np.float64(3)])
def test_bad_threshold(threshold):
    with pytest.raises(ERRORS, match=r"^threshold:"):
        gd.find_overlaps(GOOD, threshold=threshold)
    with pytest.raises(ERRORS, match=r"^threshold:"):
        gd.scan({"train": GOOD}, threshold=threshold)


def test_bad_backend_and_strategy():
    for backend in ("gpu", "CPU", "", None, 1):
        for call in (lambda b=backend: gd.phash(GOOD, backend=b),
                     lambda b=backend: gd.digest(GOOD, backend=b),
                     lambda b=backend: gd.hash_images(GOOD, backend=b),
                     lambda b=backend: gd.find_overlaps(GOOD, backend=b),
                     lambda b=backend: gd.scan({"x": GOOD}, backend=b)):
            with pytest.raises(ERRORS, match=r"^backend:"):
                call()
    for strategy in ("faiss", "MIH", None):
        with pytest.raises(ERRORS, match=r"^strategy:"):
            gd.find_overlaps(GOOD, strategy=strategy)
        with pytest.raises(ERRORS, match=r"^strategy:"):
            gd.scan({"x": GOOD}, strategy=strategy)


def test_mih_with_a_large_threshold_is_refused():
    images = np.random.default_rng(500).integers(0, 256, (5, 8, 8), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"^strategy:"):
        gd.find_overlaps(images, threshold=60, strategy="mih")


def test_bad_batch_size():
    for batch_size in (0, -1, 1.5, True, "4"):
        for call in (lambda b=batch_size: gd.phash(GOOD, batch_size=b),
                     lambda b=batch_size: gd.digest(GOOD, batch_size=b),
                     lambda b=batch_size: gd.find_overlaps(GOOD, batch_size=b),
                     lambda b=batch_size: gd.scan({"x": GOOD}, batch_size=b)):
            with pytest.raises(ERRORS, match=r"^batch_size:"):
                call()


def test_exact_and_near_both_false():
    with pytest.raises(ValueError, match=r"exact.*near|near.*exact"):
        gd.find_overlaps(GOOD, exact=False, near=False)
    with pytest.raises(ValueError, match=r"exact.*near|near.*exact"):
        gd.scan({"x": GOOD}, exact=False, near=False)


def test_bad_splits():
    for splits in ({}, [GOOD], GOOD, None):
        with pytest.raises(ERRORS, match=r"^splits"):
            gd.scan(splits)
    for key in (1, "", None):
        with pytest.raises(ERRORS, match=r"^splits"):
            gd.scan({key: GOOD})


def test_bad_labels():
    splits = {"train": GOOD, "valid": np.zeros((2, 8, 8), np.uint8)}
    with pytest.raises(ValueError, match=r"^labels\['valid'\]:.*2"):
        gd.scan(splits, labels={"valid": [1, 2, 3]})
    with pytest.raises(ValueError, match=r"^labels\['train'\]:"):
        gd.scan(splits, labels={"train": [1, 2]})
    with pytest.raises(ValueError, match=r"^labels\['train'\]:"):
        gd.scan(splits, labels={"train": 5})
    with pytest.raises(ValueError, match=r"^labels.*'test'"):
        gd.scan(splits, labels={"test": [1, 2]})
    with pytest.raises(TypeError, match=r"^labels"):
        gd.scan(splits, labels=[np.zeros(3), np.zeros(2)])
    with pytest.raises(TypeError, match=r"^labels\['train'\]:"):
        gd.scan(splits, labels={"train": np.array([object(), object(), object()])})


def test_hashset_load_errors(tmp_path):
    with pytest.raises(ValueError, match=r"^path:.*exist"):
        gd.HashSet.load(tmp_path / "missing.h5")
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(ValueError, match=r"^path:"):
        gd.HashSet.load(text)
    h5py = pytest.importorskip("h5py")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(ValueError, match=r"^path:.*HashSet"):
        gd.HashSet.load(other)


def test_hashset_constructor_errors():
    with pytest.raises(ValueError, match=r"^phashes:"):
        gd.HashSet(np.zeros((2, 2), np.uint64))
    with pytest.raises(ValueError, match=r"^phashes:"):
        gd.HashSet.from_phash(np.zeros(3, np.float64))
    with pytest.raises(ValueError, match=r"^digests:"):
        gd.HashSet(np.zeros(3, np.uint64), np.zeros((2, 2), np.uint64))


# --------------------------------------------------------------- inputs never modified


def _snapshot(x):
    return x.copy(), x.flags.writeable, x.flags.c_contiguous, x.strides


def _assert_untouched(x, snap):
    copy, writeable, contiguous, strides = snap
    assert x.flags.writeable == writeable
    assert x.flags.c_contiguous == contiguous and x.strides == strides
    np.testing.assert_array_equal(x, copy)
    assert x.tobytes() == copy.tobytes()


def _inputs():
    rng = np.random.default_rng(510)
    base = rng.integers(0, 256, (12, 20, 18), dtype=np.uint8)
    base[7] = base[2]
    frozen = base.copy()
    frozen.setflags(write=False)
    floats = (base / 255 - 0.5).astype(np.float32)
    rgb = rng.integers(0, 256, (5, 10, 9, 3), dtype=np.uint8)
    return {"uint8": base, "frozen": frozen, "float32": floats, "strided": base[:, ::2, 1:],
            "transposed": base.transpose(0, 2, 1), "rgb": rgb,
            "big_endian": base.astype(">u2"), "float16": floats.astype(np.float16)}


@pytest.mark.parametrize("name", sorted(_inputs()))
def test_inputs_are_never_modified(name):
    x = _inputs()[name]
    snap = _snapshot(x)
    gd.phash(x)
    gd.digest(x)
    gd.hash_images(x)
    gd.find_overlaps(x, threshold=10)
    gd.find_overlaps(x, x[:4], threshold=10, strategy="mih")
    gd.find_overlaps(x, exact=False)
    gd.find_overlaps(x, near=False, batch_size=3)
    labels = np.arange(x.shape[0]) % 3
    label_snap = _snapshot(labels)
    rep = gd.scan({"a": x, "b": x[3:9]}, labels={"a": labels, "b": labels[3:9]})
    rep.to_json()
    rep.summary()
    rep.groups()
    _assert_untouched(x, snap)
    _assert_untouched(labels, label_snap)


def test_hashset_inputs_are_not_modified():
    codes = np.random.default_rng(511).integers(0, 2**64, 20, dtype=np.uint64)
    snap = _snapshot(codes)
    hs = gd.HashSet.from_phash(codes)
    gd.find_overlaps(hs, threshold=30)
    _assert_untouched(codes, snap)
    images = _inputs()["uint8"]
    hs = gd.hash_images(images)
    phash_snap, digest_snap = _snapshot(hs.phashes), _snapshot(hs.digests)
    gd.find_overlaps(hs, images, threshold=10)
    gd.scan({"a": hs, "b": images})
    _assert_untouched(hs.phashes, phash_snap)
    _assert_untouched(hs.digests, digest_snap)


def test_hdf5_input_is_not_modified(tmp_path):
    h5py = pytest.importorskip("h5py")
    images = _inputs()["uint8"]
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=images)
    before = path.read_bytes()
    gd.find_overlaps(f"{path}:/x", images, threshold=10)
    gd.scan({"a": f"{path}:/x"})
    assert path.read_bytes() == before


def test_ragged_list_names_the_argument():
    ragged = [np.zeros((3, 3), np.uint8), np.zeros((4, 4), np.uint8)]
    with pytest.raises(ValueError, match=r"^images:"):
        gd.phash(ragged)


def test_non_finite_in_a_later_hdf5_batch(tmp_path):
    h5py = pytest.importorskip("h5py")
    import threading

    bad = np.zeros((20, 8, 8), np.float32)
    bad[17, 0, 0] = np.inf
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=bad, chunks=(2, 8, 8))
    threads = threading.active_count()
    for call in (lambda: gd.phash(f"{path}:/x", batch_size=4),
                 lambda: gd.find_overlaps(np.zeros((2, 8, 8), np.float32), f"{path}:/x",
                                          near=False, batch_size=4)):
        with pytest.raises(ValueError, match=r"^(images|b):.*17"):
            call()
    assert threading.active_count() == threads  # the background reader has stopped
