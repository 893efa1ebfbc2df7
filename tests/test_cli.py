"""The gpudedup command: layouts, reports, hash cache, bad input, and inputs left untouched."""

import csv
import hashlib
import json
import os

import h5py
import numpy as np
import pytest

from gpudedup import cli
from gpudedup.demo import make_demo
from gpudedup.schema import PAIR_COLUMNS, SCHEMA_VERSION

LAYOUTS = {
    "notmnist": {"train": ("/train_dataset", "/train_labels"),
                 "valid": ("/valid_dataset", "/valid_labels"),
                 "test": ("/test_dataset", "/test_labels")},
    "plain": {"train": ("/train", "/train_labels"), "valid": ("/validation", None),
              "test": ("/test", "/y_test")},
    "keras": {"train": ("/x_train", "/y_train"), "test": ("/x_test", "/y_test")},
    "groups": {"train": ("/train/images", "/train/labels"),
               "valid": ("/val/images", "/val/labels")},
    "named": {"train": ("/train_images", "/train_labels"), "test": ("/test_images", None)},
}


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def write_demo(path, layout="notmnist"):
    data = make_demo()
    with h5py.File(path, "w") as f:
        f.attrs["title"] = "demo set"
        for split, (images, labels) in LAYOUTS[layout].items():
            ds = f.create_dataset(images, data=data.splits[split], chunks=(64, 28, 28))
            ds.attrs["kind"] = "images"
            if labels:
                f.create_dataset(labels, data=data.labels[split])
        f.create_dataset("meta/classes", data=np.arange(10))
    return data


@pytest.fixture
def demo_file(tmp_path):
    path = str(tmp_path / "data.h5")
    write_demo(path)
    return path


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_scan_finds_the_usual_layouts(tmp_path, capsys, layout):
    path = tmp_path / "data.h5"
    write_demo(path, layout)
    before = sha256(path)
    code, out, err = run(capsys, "scan", path, "--quiet")
    assert code == 0, err
    assert sha256(path) == before
    expected = LAYOUTS[layout]
    code, out, err = run(capsys, "scan", path)
    line = next(x for x in out.splitlines() if x.startswith("found splits:"))
    for split, (images, labels) in expected.items():
        assert f"{split}={images}" in line
        if labels:
            assert f"(labels {labels})" in line
    assert "duplicate groups:" in out


def test_scan_writes_reports(demo_file, tmp_path, capsys):
    before = sha256(demo_file)
    out_json, out_csv, out_html = (tmp_path / f"r.{ext}" for ext in ("json", "csv", "html"))
    code, out, err = run(capsys, "scan", demo_file, "--json", out_json, "--csv", out_csv,
                         "--html", out_html, "--quiet")
    assert code == 0, err
    report = json.loads(out_json.read_text())
    assert set(report) == {"schema_version", "version", "mode", "threshold", "splits", "pairs",
                           "groups", "summary"}
    assert report["schema_version"] == SCHEMA_VERSION and report["mode"] == "exact+near"
    assert report["splits"]["train"]["count"] == 600
    assert report["splits"]["train"]["source"].endswith("data.h5:/train_dataset")
    pairs = {(p["a"], p["i"], p["b"], p["j"]) for p in report["pairs"]}
    assert ("train", 3, "valid", 7) in pairs and ("train", 18, "train", 501) in pairs
    assert all(list(p) == list(PAIR_COLUMNS) for p in report["pairs"])
    conflicts = [p for p in report["pairs"] if p["conflict"]]
    assert [(p["i"], p["j"]) for p in conflicts] == [(18, 501)]
    assert (conflicts[0]["label_a"], conflicts[0]["label_b"]) == (7, 8)
    assert all(p["conflict"] is False for p in report["pairs"] if p not in conflicts)
    rows = out_csv.read_text().splitlines()
    assert rows[0] == ",".join(PAIR_COLUMNS)
    assert rows[0].startswith("section,a,i,b,j,exact,distance,")
    assert len(rows) == 1 + len(report["pairs"])
    # the CSV rows are the JSON rows, in the same order, booleans as true/false, null empty
    for line, p in zip(csv.reader(rows[1:]), report["pairs"]):
        cells = dict(zip(PAIR_COLUMNS, line))
        assert cells["exact"] == ("true" if p["exact"] else "false")
        assert cells["conflict"] == ("true" if p["conflict"] else "false")
        assert (cells["section"], cells["a"], int(cells["i"]), cells["b"], int(cells["j"])) == \
            (p["section"], p["a"], p["i"], p["b"], p["j"])
        assert int(cells["group"]) == p["group"] >= 0
        assert float(cells["similarity"]) == p["similarity"]
    page = out_html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page
    assert sha256(demo_file) == before
    assert oct(os.stat(out_json).st_mode & 0o777) != oct(0o600)  # umask, not mkstemp's 0600


def test_explicit_splits_and_labels(demo_file, capsys):
    code, out, err = run(capsys, "scan", demo_file, "--split", "a=/train_dataset",
                         "--split", "b=/test_dataset", "--labels", "a=/train_labels",
                         "--quiet")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("looked for: ")
    leak = next(k for k, line in enumerate(lines) if line.startswith("a <-> b "))
    split = next(k for k, line in enumerate(lines) if line.startswith("split "))
    assert leak < split
    assert [line.split()[0] for line in lines[split + 1:split + 3]] == ["a", "b"]
    assert lines[-1].startswith("duplicate groups: ") and "label conflicts: 1" in lines[-1]
    assert "found splits" not in out


def test_hash_cache_reused_then_stale(demo_file, tmp_path, capsys):
    hashes = tmp_path / "hashes.h5"
    before = sha256(demo_file)
    code, out, err = run(capsys, "hash", demo_file, "-o", hashes)
    assert code == 0, err
    assert "hashes written" in out
    code, out, err = run(capsys, "scan", demo_file, "--hashes", hashes)
    assert code == 0, err
    assert out.count("reused from") == 3
    cached_table = out[out.index("looked for"):]
    code, out, err = run(capsys, "scan", demo_file)
    assert out[out.index("looked for"):] == cached_table  # same answer with or without cache
    assert sha256(demo_file) == before
    # change the file: the fingerprint no longer matches and the split is hashed again
    with h5py.File(demo_file, "a") as f:
        f["train_dataset"][0] = 255
    os.utime(demo_file, ns=(os.stat(demo_file).st_atime_ns, os.stat(demo_file).st_mtime_ns + 10**9))
    code, out, err = run(capsys, "scan", demo_file, "--hashes", hashes)
    assert code == 0, err
    assert "hashes of train: stale" in out


def test_progress_and_quiet(demo_file, capsys):
    code, out, err = run(capsys, "scan", demo_file, "--progress")
    assert code == 0
    assert "hashing" in err
    code, out, err = run(capsys, "scan", demo_file, "--quiet")
    assert code == 0
    assert err == ""


def test_demo_writes_html(tmp_path, capsys):
    html = tmp_path / "demo.html"
    code, out, err = run(capsys, "demo", "--html", html, "--json", tmp_path / "d.json")
    assert code == 0, err
    assert "exact leak: train[3] == valid[7]" in out
    assert "leak train[3] ~ valid[7]: exact" in out
    assert "label conflict train[18]" in out
    assert html.read_text().count("<img") >= 14


def test_not_hdf5(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    code, out, err = run(capsys, "scan", path)
    assert code == 2
    assert err.strip() == f"gpudedup: error: FILE: {str(path)!r} is not an HDF5 file"


BAD = [
    (["scan", "{missing}"], "does not exist"),
    (["scan", "{file}", "--split", "train=/nope"], "has no dataset '/nope'"),
    (["scan", "{file}", "--split", "train=/train_labels"], "--split train: expected images"),
    (["scan", "{file}", "--split", "train=/meta"], "is a group, not a dataset"),
    (["scan", "{file}", "--split", "t=/train_dataset", "--labels", "t=/valid_labels"],
     "--labels t: /valid_labels has 150 labels but /train_dataset has 600 images"),
    (["scan", "{file}", "--labels", "nope=/train_labels"], "--labels: nope is not a split"),
    (["scan", "{file}", "--split", "train"], "--split: expected NAME=/dataset"),
    (["scan", "{file}", "--threshold", "65"], "--threshold: expected an integer from 0 to 64"),
    (["scan", "{file}", "--threshold", "-1"], "--threshold: expected an integer from 0 to 64"),
    (["scan", "{file}", "--threshold", "abc"], "--threshold: expected an integer from 0 to 64"),
    (["scan", "{file}", "--backend", "tpu"], "invalid choice: 'tpu'"),
    (["clean", "{file}", "-o", "{file}"], "-o: "),
    (["hash", "{file}", "-o", "{file}"], "-o: "),
    (["scan", "{file}", "--json", "{file}"], "--json: "),
    (["clean", "{file}", "-o", "{out}", "--priority", "train,bogus"], "--priority: 'bogus'"),
    (["scan"], "the following arguments are required"),
]


@pytest.mark.parametrize("argv,message", BAD)
def test_bad_input_one_line_exit_2(demo_file, tmp_path, capsys, argv, message):
    before = sha256(demo_file)
    names = {"file": demo_file, "missing": str(tmp_path / "missing.h5"),
             "out": str(tmp_path / "out.h5")}
    code, out, err = run(capsys, *[a.format(**names) for a in argv])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gpudedup: error: ")
    assert message in lines[0]
    assert "Traceback" not in err
    assert sha256(demo_file) == before
    assert not (tmp_path / "out.h5").exists()


def test_no_splits_found(tmp_path, capsys):
    path = tmp_path / "odd.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("pictures", data=np.zeros((3, 8, 8), np.uint8))
    code, out, err = run(capsys, "scan", path)
    assert code == 2
    assert "found no splits" in err and "--split NAME=/dataset" in err
    code, out, err = run(capsys, "scan", path, "--split", "all=/pictures", "--quiet")
    assert code == 0, err


def test_loaded_hashset_reopens_its_unchanged_source(demo_file, tmp_path, recwarn):
    import gpudedup as gd
    from gpudedup.hashset import load_many, save_many

    hs = gd.hash_images(f"{demo_file}:/train_dataset")
    save_many(tmp_path / "h.h5", {"train": hs})
    loaded = load_many(tmp_path / "h.h5")["train"]
    assert loaded.source is not None and loaded.source.description == hs.description
    with h5py.File(demo_file) as f:
        batch = f["train_dataset"][:20]
    ov = gd.find_overlaps(loaded, batch, near=False)
    # the 20 copies, and train[500] == train[17], train[501] == train[18]: all byte-verified
    assert len(ov) == 22 and ov.exact.all() and not recwarn.list
    os.utime(demo_file, ns=(0, 0))  # "changed": the fingerprint no longer matches
    assert load_many(tmp_path / "h.h5")["train"].source is None
