"""What a label is (gpudedup.labels): one rule for scan, the command and clean. One-hot rows as
class indices, NaN and "" unknown, JSON-safe values, kinds refused before hashing, HDF5 string
labels, labels found beside --split, and "file.h5:/labels" strings."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from helpers import smooth_images

import gpudedup as gd
from gpudedup import api, cli
from gpudedup.errors import InputError, InputTypeError
from gpudedup.labels import check_labels, labels_differ
from gpudedup.layout import guess_labels
from gpudedup.results import label_value


def strict_json(text):
    def refuse(constant):
        raise AssertionError(f"not strict JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def leak_set(seed=0, n_train=30, n_test=12):
    """Distinct smooth images; test[0] is an exact copy of train[3], train[20] of train[7]."""
    rng = np.random.default_rng(seed)
    images = smooth_images(rng, n_train + n_test, 16, 16)
    train, test = images[:n_train].copy(), images[n_train:].copy()
    test[0] = train[3]
    train[20] = train[7]
    return train, test


def write_file(path, **datasets):
    with h5py.File(path, "w") as f:
        for name, data in datasets.items():
            f.create_dataset(name, data=data)
    return path


def no_hashing(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("hashed before the labels were checked")
    monkeypatch.setattr(api, "hash_source", fail)


# ------------------------------------------------------------------------- through clean


def test_one_hot_train_vs_integer_test_clean_keeps_the_test_copy(tmp_path, capsys):
    train, test = leak_set()
    y_test = np.arange(test.shape[0]) % 4
    y_train = np.arange(train.shape[0]) % 4
    y_train[3] = y_test[0]  # the leak carries the same class on both sides
    y_train[20] = y_train[7]
    one_hot = np.eye(4, dtype=np.uint8)[y_train]
    path = write_file(tmp_path / "data.h5", x_train=train, y_train=one_hot, x_test=test,
                      y_test=y_test)
    out_path = tmp_path / "clean.h5"
    code, out, err = run(capsys, "clean", path, "-o", out_path, "--threshold", "0",
                         "--json", tmp_path / "r.json")
    assert code == 0, err
    report = strict_json((tmp_path / "r.json").read_text())
    assert report["summary"]["conflicts"] == 0
    assert {(r["a"], r["i"], r["b"], r["j"]) for r in report["pairs"]} == \
        {("train", 3, "test", 0), ("train", 7, "train", 20)}
    leak = next(r for r in report["pairs"] if r["b"] == "test")
    assert (leak["label_a"], leak["label_b"], leak["conflict"]) == (y_test[0], y_test[0], False)
    with h5py.File(out_path) as f:
        np.testing.assert_array_equal(f["gpudedup/kept/test"][()], np.arange(test.shape[0]))
        kept_train = f["gpudedup/kept/train"][()].tolist()
    assert 3 not in kept_train and 7 in kept_train and 20 not in kept_train
    assert len(kept_train) == train.shape[0] - 2
    assert "labels of train: one-hot rows read as class indices" in out


def test_nan_labels_never_conflict_and_the_json_stays_strict(tmp_path, capsys):
    train, test = leak_set(1)
    y_train = np.arange(train.shape[0], dtype=np.float64) % 3
    y_test = np.arange(test.shape[0], dtype=np.float64) % 3
    y_train[3] = np.nan  # leak: unknown vs known
    y_train[7] = y_train[20] = np.nan  # duplicate inside train: NaN vs NaN
    path = write_file(tmp_path / "data.h5", x_train=train, y_train=y_train, x_test=test,
                      y_test=y_test)
    out_path = tmp_path / "clean.h5"
    code, out, err = run(capsys, "clean", path, "-o", out_path, "--threshold", "0", "--quiet",
                         "--json", tmp_path / "r.json", "--csv", tmp_path / "r.csv")
    assert code == 0, err
    text = (tmp_path / "r.json").read_text()
    report = strict_json(text)
    assert "NaN" not in text and "NaN" not in (tmp_path / "r.csv").read_text()
    assert report["summary"]["conflicts"] == 0
    rows = {(r["a"], r["i"], r["b"], r["j"]): r for r in report["pairs"]}
    assert rows[("train", 3, "test", 0)]["label_a"] is None
    assert rows[("train", 7, "train", 20)]["label_a"] is None
    assert not any(r["conflict"] for r in report["pairs"])
    with h5py.File(out_path) as f:
        assert f["gpudedup/kept/test"].shape == (test.shape[0],)
        kept_train = f["gpudedup/kept/train"][()].tolist()
        labels = f["y_train"][()]
    # one of the NaN duplicates stays, the leaked train copy goes; labels stay with images
    assert 3 not in kept_train and 7 in kept_train and 20 not in kept_train
    np.testing.assert_array_equal(labels, y_train[kept_train])


# ---------------------------------------------------------------- refused before the work


@pytest.mark.parametrize("labels,error,message", [
    (np.arange(6) + 1j, InputTypeError, "complex"),
    (np.arange(6).astype("datetime64[D]"), InputTypeError, "datetime"),
    (np.arange(6).astype("timedelta64[s]"), InputTypeError, "timedelta"),
    (np.zeros(6, dtype=[("a", "i4"), ("b", "f4")]), InputTypeError, "structured"),
    (np.array([object()] * 6), InputTypeError, r"not objects \(found object\)"),
    (np.array(["a", 1, "b", 2, "c", 3], dtype=object), InputTypeError, "mix strings and num"),
    (np.array([b"\xff\xfe"] * 6), InputError, "not UTF-8"),
    (np.array([1.0, 2, np.inf, 3, 4, 5]), InputError, "label 2 is infinite"),
])
def test_labels_json_cannot_hold_are_refused_before_hashing(monkeypatch, labels, error,
                                                            message):
    no_hashing(monkeypatch)
    images = np.zeros((6, 8, 8), np.uint8)
    with pytest.raises(error, match=rf"^labels\['train'\]: .*{message}"):
        gd.scan({"train": images}, labels={"train": labels})


def test_complex_hdf5_labels_refused_by_the_command_naming_the_option(tmp_path, capsys,
                                                                       monkeypatch):
    no_hashing(monkeypatch)
    train, test = leak_set(2)
    path = write_file(tmp_path / "data.h5", x_train=train, y_train=np.ones(30) * 1j,
                      x_test=test, y_test=np.zeros(12))
    code, out, err = run(capsys, "scan", path, "--quiet")
    assert code == 2
    assert err.strip().startswith("gpudedup: error: --labels train: labels must be numbers or "
                                  "strings, got complex numbers")


# ------------------------------------------------------------------------ strings, HDF5


def test_hdf5_string_labels_through_the_command_and_the_api(tmp_path, capsys):
    train, test = leak_set(3)
    names = np.array(["cat", "dog", "eel"])
    y_train = names[np.arange(30) % 3]
    y_test = names[np.arange(12) % 3]
    y_train[3] = y_test[0]
    y_train[20] = "owl"  # train[7] == train[20] filed under two names: a conflict
    with h5py.File(tmp_path / "data.h5", "w") as f:
        f["x_train"], f["x_test"] = train, test
        f.create_dataset("y_train", data=y_train.tolist(), dtype=h5py.string_dtype())
        f.create_dataset("y_test", data=np.char.encode(y_test, "utf-8").astype("S10"))
    code, out, err = run(capsys, "scan", tmp_path / "data.h5", "--threshold", "0", "--quiet",
                         "--json", tmp_path / "r.json")
    assert code == 0, err
    report = strict_json((tmp_path / "r.json").read_text())
    rows = {(r["a"], r["i"], r["b"], r["j"]): r for r in report["pairs"]}
    assert rows[("train", 3, "test", 0)]["label_b"] == y_test[0]  # b"..." decoded as UTF-8
    assert rows[("train", 3, "test", 0)]["conflict"] is False
    assert rows[("train", 7, "train", 20)]["conflict"] is True
    assert report["summary"]["conflicts"] == 1
    with h5py.File(tmp_path / "data.h5") as f:
        rep = gd.scan({"train": f["x_train"], "test": f["x_test"]},
                      labels={"train": f["y_train"], "test": f["y_test"]}, threshold=0)
        assert [(c.a, c.i, c.b, c.j, c.label_a, c.label_b) for c in rep.conflicts] == \
            [("train", 7, "train", 20, y_train[7], "owl")]


def test_empty_strings_and_missing_objects_are_unknown():
    train, test = leak_set(4)
    y_train = np.array(["a"] * 30, dtype=object)
    y_train[3] = None  # as pandas holds a missing string
    y_train[20] = ""
    rep = gd.scan({"train": train, "test": test},
                  labels={"train": y_train, "test": np.array(["b"] * 12)}, threshold=0)
    assert rep.conflicts == []
    assert rep.labels["train"].dtype.kind == "U"
    assert label_value(rep.labels["train"][3]) is None


def test_non_utf8_vlen_bytes_in_hdf5_refused(tmp_path, capsys):
    train, test = leak_set(5)
    with h5py.File(tmp_path / "data.h5", "w") as f:
        f["x_train"], f["x_test"] = train, test
        f.create_dataset("y_train", data=[b"\xff"] * 30, dtype=h5py.string_dtype("ascii"))
    code, out, err = run(capsys, "scan", tmp_path / "data.h5", "--quiet")
    assert code == 2
    assert "--labels train: label 0 is bytes that are not UTF-8" in err


# ------------------------------------------------------------------ one rule, all splits


def test_labels_of_different_kinds_or_shapes_name_both_splits(tmp_path, capsys):
    train, test = leak_set(6)
    with pytest.raises(InputError, match=r"^labels\['train'\], labels\['test'\]: labels of "
                                         r"different kinds, numbers \(int64\) and strings"):
        gd.scan({"train": train, "test": test},
                labels={"train": np.zeros(30, np.int64), "test": np.array(["x"] * 12)})
    multi = np.zeros((30, 3), np.uint8)
    multi[:, :2] = 1  # multi-label rows: not one-hot
    with pytest.raises(InputError, match=r"^labels\['train'\], labels\['test'\]: labels of "
                                         r"different shapes per image, \(3,\) and \(\)"):
        gd.scan({"train": train, "test": test}, labels={"train": multi, "test": np.zeros(12)})
    path = write_file(tmp_path / "data.h5", x_train=train, y_train=np.zeros(30),
                      x_test=test, y_test=np.array([b"x"] * 12))
    code, out, err = run(capsys, "scan", path, "--quiet")
    assert code == 2
    assert "--labels train, --labels test: labels of different kinds" in err


def test_one_hot_rows_become_class_indices_and_all_zero_rows_unknown():
    ints = np.array([0, 2, 1, 2])
    hot = np.eye(3, dtype=bool)[ints]
    notes = {}
    out = check_labels({"a": hot, "b": ints}, {"a": 4, "b": 4}, notes=notes)
    np.testing.assert_array_equal(out["a"], ints)
    assert notes == {"a": "one-hot rows read as class indices"}
    hot = hot.astype(np.float32)
    hot[1] = 0  # no class: unknown
    out = check_labels({"a": hot}, {"a": 4})
    assert np.isnan(out["a"][1]) and out["a"][2] == 1
    assert labels_differ(out["a"], np.array([0, 1, 2, 2])).tolist() == [False, False, True,
                                                                          False]
    # beside multi-label rows, one-hot rows stay rows and compare element by element
    multi = np.array([[1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 0, 0]])
    out = check_labels({"a": np.eye(3, dtype=int)[ints], "b": multi}, {"a": 4, "b": 4})
    assert out["a"].shape == (4, 3)
    assert labels_differ(out["a"], out["b"]).tolist() == [True, False, True, True]
    assert labels_differ(out["a"], out["a"]).tolist() == [False] * 4


def test_rows_with_nan_elements_compare_only_the_known_ones():
    a = np.array([[1.0, np.nan], [1.0, 0.0], [np.nan, np.nan]])
    b = np.array([[1.0, 5.0], [1.0, 1.0], [3.0, 4.0]])
    assert labels_differ(a, b).tolist() == [False, True, False]
    assert label_value(a[0]) == [1.0, None]
    assert label_value(np.float64("nan")) is None and label_value(np.int64(3)) == 3
    assert type(label_value(np.int64(3))) is int
    assert label_value(np.str_("")) is None


def test_numbers_compare_by_value_and_no_sentinel_is_assumed():
    out = check_labels({"a": np.array([1, -1, 0]), "b": np.array([1.0, -1.0, np.nan]),
                        "c": np.array([True, False, False])}, {"a": 3, "b": 3, "c": 3})
    assert labels_differ(out["a"], out["b"]).tolist() == [False, False, False]
    # -1 is a class like any other
    assert labels_differ(out["a"], out["c"]).tolist() == [False, True, False]


# ---------------------------------------------------------------- labels as users find them


def test_split_without_labels_still_finds_them(tmp_path, capsys):
    train, test = leak_set(7)
    y_train = np.arange(30) % 3
    y_test = np.arange(12) % 3
    y_train[3] = (y_test[0] + 1) % 3  # the leak is a conflict: only seen with the labels
    y_train[20] = y_train[7]
    path = write_file(tmp_path / "data.h5", x_train=train, y_train=y_train, x_test=test,
                      y_test=y_test)
    code, out, err = run(capsys, "scan", path, "--split", "train=/x_train", "--split",
                         "test=/x_test", "--threshold", "0", "--json", tmp_path / "r.json")
    assert code == 0, err
    assert "found labels: train=/y_train, test=/y_test" in out
    report = strict_json((tmp_path / "r.json").read_text())
    assert report["summary"]["conflicts"] == 1
    # clean filters the labels it found with their images
    code, out, err = run(capsys, "clean", path, "--split", "train=/x_train", "--split",
                         "test=/x_test", "--threshold", "0", "-o", tmp_path / "c.h5",
                         "--quiet")
    assert code == 0, err
    with h5py.File(tmp_path / "c.h5") as f:
        assert f["y_train"].shape == f["x_train"].shape[:1]
        assert f["y_test"].shape == f["x_test"].shape[:1]


def test_guess_labels_by_the_usual_names(tmp_path):
    with h5py.File(tmp_path / "g.h5", "w") as f:
        for name in ("x_train", "train_images", "train/images", "mnist/x", "pics"):
            f[name] = np.zeros((4, 2, 2), np.uint8)
        for name in ("y_train", "train_labels", "train/labels", "mnist/y"):
            f[name] = np.zeros(4)
        f["pics_labels"] = np.zeros(3)  # wrong count: no guess
        f["gone_labels"] = h5py.SoftLink("/nowhere")
        assert guess_labels(f, "t", "/x_train", 4) == "/y_train"
        assert guess_labels(f, "t", "/train_images", 4) == "/train_labels"
        assert guess_labels(f, "t", "/train/images", 4) == "/train/labels"
        assert guess_labels(f, "t", "/mnist/x", 4) == "/mnist/y"
        assert guess_labels(f, "train", "/pics", 4) == "/train_labels"
        assert guess_labels(f, "gone", "/pics", 4) is None


def test_scan_labels_as_file_dataset_strings(tmp_path):
    train, test = leak_set(8)
    y_train = np.arange(30) % 3
    y_train[20] = (y_train[7] + 1) % 3
    write_file(tmp_path / "y.h5", y_train=y_train)
    rep = gd.scan({"train": train, "test": test},
                  labels={"train": f"{tmp_path / 'y.h5'}:/y_train"}, threshold=0)
    assert [(c.a, c.i, c.b, c.j) for c in rep.conflicts] == [("train", 7, "train", 20)]
    np.testing.assert_array_equal(rep.labels["train"], y_train)
    with pytest.raises(InputError, match=r"^labels\['train'\]: .* has no dataset '/nope'"):
        gd.scan({"train": train}, labels={"train": f"{tmp_path / 'y.h5'}:/nope"})
    with pytest.raises(InputError, match=r"^labels\['train'\]: .*does not exist"):
        gd.scan({"train": train}, labels={"train": f"{tmp_path / 'none.h5'}:/y"})

