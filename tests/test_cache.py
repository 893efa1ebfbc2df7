"""Hash caches that check content: stale images are rehashed, broken caches are refused."""

import json
import os

import h5py
import numpy as np
import pytest
from helpers import smooth_images

import gpudedup as gd
from gpudedup import backend as backends
from gpudedup import cli, hashing
from gpudedup.errors import InputError
from gpudedup.hashset import HashSet, fingerprint, load_many, refresh
from gpudedup.sources import as_source


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def data_file(tmp_path):
    # train and test of distinct images, test[:5] exact copies of train[:5] (contiguous, so an
    # in-place edit keeps the file's size)
    rng = np.random.default_rng(14)
    train = smooth_images(rng, 300, 28, 28)
    test = np.concatenate([train[:5], smooth_images(rng, 45, 28, 28)])
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f["train"] = train
        f["test"] = test
    return path


def edit_keeping_mtime(path, dataset, index, image):
    # as `rsync -t` or `cp -p` may: new bytes, the old size and modification time
    before = os.stat(path)
    with h5py.File(path, "a") as f:
        f[dataset][index] = image
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size


def pairs(capsys, *argv):
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    return out


def test_stale_cache_with_mtime_restored_gives_the_fresh_answer(data_file, tmp_path, capsys):
    cache = tmp_path / "h.h5"
    pairs(capsys, "hash", data_file, "-o", cache, "--quiet")
    with h5py.File(data_file) as f:
        new_copy = f["test"][20]
        fp_before = fingerprint(as_source(f["train"], "x"))
    edit_keeping_mtime(data_file, "train", 100, new_copy)  # one more leak: train[100] == test[20]
    with h5py.File(data_file) as f:
        assert fingerprint(as_source(f["train"], "x")) == fp_before  # the cache's old test passes
    fresh, cached = tmp_path / "fresh.json", tmp_path / "cached.json"
    pairs(capsys, "scan", data_file, "--json", fresh, "--quiet")
    out = pairs(capsys, "scan", data_file, "--hashes", cache, "--json", cached)
    assert "hashes of train: stale for 1 of 300 images" in out
    assert "hashes of test: reused from" in out
    fresh_pairs = json.loads(fresh.read_text())["pairs"]
    assert json.loads(cached.read_text())["pairs"] == fresh_pairs
    leaks = [p for p in fresh_pairs if p["a"] == "train" and p["b"] == "test"]
    assert {"i": 100, "j": 20} in [{"i": p["i"], "j": p["j"]} for p in leaks]
    assert len(leaks) == 6


def test_refresh_rehashes_only_the_changed_images(data_file, monkeypatch):
    be = backends.resolve("cpu")
    with h5py.File(data_file) as f:
        cached = hashing.hash_source(as_source(f["train"], "train"), be)
    edit_keeping_mtime(data_file, "train", 7, np.full((28, 28), 9, np.uint8))
    edit_keeping_mtime(data_file, "train", 250, np.full((28, 28), 200, np.uint8))
    phashed = []
    real = hashing.compute_hashes

    def spy(source, be, **kw):
        if kw.get("phashes", True):
            phashed.append(source.count)
        return real(source, be, **kw)

    monkeypatch.setattr(hashing, "compute_hashes", spy)
    with h5py.File(data_file) as f:
        source = as_source(f["train"], "train")
        hs, changed = refresh(cached, source, be)
        fresh = real(source, be)
        assert changed.tolist() == [7, 250]
        assert phashed == [2]  # the two changed images only, not all 300
        np.testing.assert_array_equal(hs.digests, fresh[0])
        np.testing.assert_array_equal(hs.phashes, fresh[1])
        assert hs.source is source
        # a cache of another size cannot be matched row by row: everything is hashed again
        hs, changed = refresh(HashSet(cached.phashes[:10], cached.digests[:10],
                                      image_shape=(28, 28), dtype=np.uint8,
                                      convention=cached.convention), source, be)
        assert changed is None
        np.testing.assert_array_equal(hs.phashes, fresh[1])


def _remove(what):
    def edit(f, root):
        if what in ("digest", "phash"):
            del f[f"{root}/{what}"]
        elif what in ("image_shape", "dtype"):
            del f[root or "/"].attrs[what]
        elif what == "format":
            del f.attrs["format"]
        elif what == "group":
            del f[root]
        elif what == "short digest":
            d = f[f"{root}/digest"][()]
            del f[f"{root}/digest"]
            f[f"{root}/digest"] = d[:-1]
        elif what == "float phash":
            p = f[f"{root}/phash"][()]
            del f[f"{root}/phash"]
            f[f"{root}/phash"] = p.astype(np.float64)
    return edit


BROKEN = [
    ("digest", "/train/digest"),
    ("phash", "/train/phash"),
    ("image_shape", "image_shape"),
    ("dtype", "dtype"),
    ("format", "not a gpudedup HashSet file"),
    ("group", "no group /train"),
    ("short digest", "shape (299, 2) but 300 phashes"),
    ("float phash", "float64, not uint64"),
]


@pytest.mark.parametrize("what,message", BROKEN)
def test_broken_cache_refused_by_the_cli(data_file, tmp_path, capsys, what, message):
    cache = tmp_path / "h.h5"
    pairs(capsys, "hash", data_file, "-o", cache, "--quiet")
    with h5py.File(cache, "a") as f:
        _remove(what)(f, "/train")
    code, out, err = run(capsys, "scan", data_file, "--hashes", cache, "--quiet")
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpudedup: error: --hashes: "), err
    assert str(cache) in lines[0] and message in lines[0]
    assert f"gpudedup hash FILE.h5 -o {cache}" in lines[0]


def test_cache_without_digests_refused_even_when_written_without_parts(data_file, tmp_path,
                                                                      capsys):
    # a file from before the parts were recorded, digest removed: the scan cannot check it
    cache = tmp_path / "h.h5"
    pairs(capsys, "hash", data_file, "-o", cache, "--quiet")
    with h5py.File(cache, "a") as f:
        del f["/train/digest"]
        del f["/train"].attrs["parts"]
    code, out, err = run(capsys, "scan", data_file, "--hashes", cache, "--quiet")
    assert code == 2
    assert "(split 'train') has no digests" in err and "gpudedup hash" in err
    assert load_many(cache)["train"].digests is None  # still a valid near-only HashSet


def test_not_a_cache_refused(data_file, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    code, out, err = run(capsys, "scan", data_file, "--hashes", notes, "--quiet")
    assert code == 2
    assert err.strip() == f"gpudedup: error: --hashes: {str(notes)!r} is not an HDF5 file"


@pytest.mark.parametrize("what,message", BROKEN)
def test_broken_hashset_refused_by_load(tmp_path, what, message):
    if what == "group":
        pytest.skip("a single HashSet lives at the root")
    rng = np.random.default_rng(1)
    path = tmp_path / "one.h5"
    gd.hash_images(smooth_images(rng, 300, 16, 16), backend="cpu").save(path)
    with h5py.File(path, "a") as f:
        _remove(what)(f, "")
    with pytest.raises(InputError) as info:
        HashSet.load(path)
    text = str(info.value)
    assert text.startswith(f"path: {str(path)!r}")
    assert message.replace("/train", "") in text
    assert "rebuild it" in text or "make one" in text
