"""gpudedup clean: leaks leave the lower-priority split, duplicates shrink to one, conflicting
groups go, labels stay with their images, and the result scans clean."""

import hashlib
import os

import h5py
import numpy as np
import pytest

import gpudedup as gd
from gpudedup import cli
from gpudedup.cleaning import keep_masks, split_priority
from gpudedup.demo import make_demo


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def demo_file(tmp_path):
    data = make_demo()
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f.attrs["title"] = "demo set"
        for split in data.splits:
            ds = f.create_dataset(f"{split}_dataset", data=data.splits[split],
                                  chunks=(50, 28, 28), compression="gzip")
            ds.attrs["note"] = f"{split} images"
            f.create_dataset(f"{split}_labels", data=data.labels[split])
        f.create_dataset("meta/classes", data=np.arange(10))
        f["meta"].attrs["source"] = "synthetic"
    return path


def clean(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_clean_output_scans_clean_and_keeps_labels_with_images(demo_file, tmp_path, capsys):
    before = sha256(demo_file)
    out_path = tmp_path / "clean.h5"
    out = clean(capsys, "clean", demo_file, "-o", out_path, "--quiet")
    assert sha256(demo_file) == before
    assert "cleaned file written" in out
    with h5py.File(demo_file) as fin, h5py.File(out_path) as fout:
        assert dict(fout.attrs) == dict(fin.attrs)
        assert fout["meta"].attrs["source"] == "synthetic"
        np.testing.assert_array_equal(fout["meta/classes"][()], fin["meta/classes"][()])
        kept = {}
        for split in ("train", "valid", "test"):
            kept[split] = fout[f"gpudedup/kept/{split}"][()]
            images = fout[f"{split}_dataset"]
            assert images.attrs["note"] == f"{split} images"
            assert images.compression == "gzip"
            np.testing.assert_array_equal(images[()], fin[f"{split}_dataset"][()][kept[split]])
            np.testing.assert_array_equal(fout[f"{split}_labels"][()],
                                          fin[f"{split}_labels"][()][kept[split]])
        splits = {s: fout[f"{s}_dataset"][()] for s in kept}
        labels = {s: fout[f"{s}_labels"][()] for s in kept}
    # the planted train copies of leaks went, valid and test kept theirs
    removed_train = set(range(600)) - set(kept["train"].tolist())
    assert {3, 10, 42, 100, 200} <= removed_train
    assert kept["valid"].size == 150 and kept["test"].size == 150
    assert 17 in kept["train"] and 500 not in kept["train"]  # one of a duplicate pair
    assert 18 not in kept["train"] and 501 not in kept["train"]  # conflicting group dropped
    report = gd.scan(splits, labels=labels)
    assert all(len(ov) == 0 for ov in report.overlaps.values())
    assert all(len(ov) == 0 for ov in report.duplicates.values())
    assert report.conflicts == []


def test_priority_and_keep_conflicts(demo_file, tmp_path, capsys):
    out_path = tmp_path / "clean.h5"
    clean(capsys, "clean", demo_file, "-o", out_path, "--priority", "train,valid,test",
          "--keep-conflicts", "--quiet")
    with h5py.File(out_path) as f:
        kept = {s: set(f[f"gpudedup/kept/{s}"][()].tolist()) for s in ("train", "valid", "test")}
    assert {3, 10, 42, 100, 200} <= kept["train"]
    assert 7 not in kept["valid"] and 30 not in kept["valid"] and 5 not in kept["test"]
    assert 18 in kept["train"] and 501 not in kept["train"]  # conflict kept, deduplicated


def test_cleaning_a_cleaned_file(demo_file, tmp_path, capsys):
    once, twice = tmp_path / "once.h5", tmp_path / "twice.h5"
    clean(capsys, "clean", demo_file, "-o", once, "--quiet")
    out = clean(capsys, "clean", once, "-o", twice)
    assert "found splits: train=/train_dataset" in out
    with h5py.File(once) as a, h5py.File(twice) as b:
        for split in ("train", "valid", "test"):
            np.testing.assert_array_equal(a[f"{split}_dataset"][()], b[f"{split}_dataset"][()])
            assert b[f"gpudedup/kept/{split}"].shape == a[f"{split}_dataset"].shape[:1]


def test_failed_clean_leaves_no_file(demo_file, tmp_path, capsys, monkeypatch):
    from gpudedup import cleaning as clean_module

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(clean_module, "_copy_filtered", broken)
    code = cli.main(["clean", str(demo_file), "-o", str(tmp_path / "out.h5"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "disk full" in err
    assert os.listdir(tmp_path) == ["data.h5"]


def test_keep_masks_rules():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (6, 16, 16), dtype=np.uint8)
    test = rng.integers(0, 256, (3, 16, 16), dtype=np.uint8)
    test[0] = train[1]  # leak
    train[4] = train[2]  # duplicate
    train[5] = train[0]  # duplicate with another label
    report = gd.scan({"train": train, "test": test},
                     labels={"train": np.array([0, 1, 2, 3, 2, 9]), "test": np.array([1, 0, 0])})
    masks = keep_masks(report)
    np.testing.assert_array_equal(masks["train"], [False, False, True, True, False, False])
    np.testing.assert_array_equal(masks["test"], [True, True, True])
    masks = keep_masks(report, ["train", "test"], keep_conflicts=True)
    np.testing.assert_array_equal(masks["train"], [True, True, True, True, False, False])
    np.testing.assert_array_equal(masks["test"], [False, True, True])


def test_split_priority():
    assert split_priority(["train", "extra", "test"], None) == ["test", "train", "extra"]
    assert split_priority(["a", "b"], ["b"]) == ["b", "a"]
    with pytest.raises(ValueError, match="priority: 'c' not among the splits"):
        split_priority(["a", "b"], ["c"])
