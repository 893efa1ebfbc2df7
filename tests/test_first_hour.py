"""What a new user meets first: reports that lead with the exact leaks, a clean that says what it
will do before doing it, an exact-only mode, exit statuses for pipelines, notebooks and pandas."""

import hashlib
import json
import os
import re
import warnings

import h5py
import numpy as np
import pytest
from helpers import smooth_images

import gpudedup as gd
from gpudedup import cli

N_TRAIN, N_TEST = 60, 40
PLANTED = [(61, 31), (62, 32), (63, 33), (64, 34), (65, 35), (66, 36)]  # train -> test


def _near_flood(rng, base, n):
    # different bytes, same picture: +-1 noise keeps the phash of a smooth image
    noisy = base.astype(np.int16) + rng.integers(-1, 2, (n,) + base.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def flood():
    """60 + 6 train and 40 test images: near copies of one picture everywhere (thousands of
    near pairs), and 6 distinct train images copied exactly into test."""
    rng = np.random.default_rng(5)
    base = smooth_images(rng, 1, 28, 28)[0]
    distinct = smooth_images(rng, 6, 28, 28)
    train = np.concatenate([_near_flood(rng, base, N_TRAIN + 1), distinct])
    test = _near_flood(rng, base, N_TEST)
    planted_test = np.zeros((6,) + base.shape, np.uint8)
    for k, (i, _) in enumerate(PLANTED):
        planted_test[k] = train[i]
    test = np.concatenate([test[:31], planted_test, test[31:]])
    return {"train": train, "test": test}


@pytest.fixture
def flood_file(tmp_path, flood):
    path = tmp_path / "flood.h5"
    with h5py.File(path, "w") as f:
        for name, images in flood.items():
            f.create_dataset(f"x_{name}", data=images, chunks=(16, 28, 28))
            f.create_dataset(f"y_{name}", data=np.zeros(len(images), np.int64))
    return path


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def sha_tree(folder):
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
            for name in sorted(os.listdir(folder))}


# ------------------------------------------------------------------ reports lead with leaks


def test_html_lists_exact_leaks_first_and_says_what_it_left_out(flood_file, tmp_path, capsys):
    page_path = tmp_path / "r.html"
    code, out, err = run(capsys, "scan", flood_file, "--html", page_path, "--max-rows", "10",
                         "--quiet")
    assert code == 0, err
    page = page_path.read_text()
    sections = re.findall(r'data-section="(\w+)"', page)
    # all six exact leaks, before any near pair
    assert sections[:6] == ["exact_leak"] * 6
    shown = re.findall(r"<figcaption>(\w+)\[(\d+)\]", page)[:12]
    pairs = {(int(shown[k][1]), int(shown[k + 1][1])) for k in range(0, 12, 2)}
    assert pairs == set(PLANTED)
    # near sections are capped at 10 rows each, with a note saying how many there were
    assert sections.count("near_leak") == 10 and sections.count("near_duplicate") == 10
    # (the rows of its section: in this group of 107 near copies, the links that join it)
    rep = gd.scan({"train": flood_file.as_posix() + ":/x_train",
                   "test": flood_file.as_posix() + ":/x_test"})
    total_near_leaks = sum(row["section"] == "near_leak" for row in rep.to_dict()["pairs"])
    assert 10 < total_near_leaks < len(rep.overlaps[("train", "test")]) - 6
    assert f"showing the first 10 of {total_near_leaks}" in page
    assert "max_rows=10" in page
    # the summary's first table is the leaks, with the images that have a copy
    text = out.split("leaks", 1)[1]
    assert text.index("train <-> test") < out.index("dup pairs") - len(out.split("leaks")[0])


def test_summary_leads_with_leaks(flood):
    rep = gd.scan(flood)
    text = str(rep)
    assert text.index("leaks") < text.index("dup pairs")
    assert "no labels" in text and "label conflicts" not in text


def test_sections_order_near_pairs_most_similar_first():
    rng = np.random.default_rng(2)
    base = smooth_images(rng, 40, 28, 28)
    noise = rng.integers(-12, 13, (20, 28, 28)) * np.linspace(0, 1, 20)[:, None, None]
    test = np.clip(base[:20].astype(np.int16) + noise.astype(np.int16), 0, 255)
    rep = gd.scan({"train": base, "test": test.astype(np.uint8)}, threshold=20)
    rows = [r for r in rep.to_dict()["pairs"] if r["section"] == "near_leak"]
    assert len(rows) > 3
    similarity = [r["similarity"] for r in rows]
    assert similarity == sorted(similarity, reverse=True)


def test_to_html_max_pairs_is_a_deprecated_alias(flood):
    rep = gd.scan(flood)
    with pytest.warns(DeprecationWarning, match="max_rows"):
        old = rep.to_html(max_pairs=3)
    assert old == rep.to_html(max_rows=3)
    with pytest.raises(gd.InputError, match="max_rows"):
        rep.to_html(max_rows=-1)


# --------------------------------------------------------------------------- a safe clean


def test_dry_run_writes_nothing_and_prints_the_plan(flood_file, tmp_path, capsys):
    before = sha_tree(tmp_path)
    code, out, err = run(capsys, "clean", flood_file, "-o", tmp_path / "out.h5", "--dry-run",
                         "--json", tmp_path / "r.json")
    assert code == 0, err
    assert sha_tree(tmp_path) == before  # no cleaned file, no report: a dry run writes nothing
    plan = out.split("dry run: no file written; a real run would do this:")[1]
    lines = {line.split()[0]: line for line in plan.strip().splitlines()[1:3]}
    # one near cluster spans both splits: test keeps one image, train loses its 61 near copies
    # and the 6 exact leaks
    assert lines["train"].split()[1:4] == [str(N_TRAIN + 7), "0", str(N_TRAIN + 7)]
    assert "leak 67" in lines["train"]
    assert "near copy 39" in lines["test"]
    assert "a real run would stop" in out and "--max-removed" in out


def test_removal_guard_names_its_option(flood_file, tmp_path, capsys):
    out_path = tmp_path / "out.h5"
    code, out, err = run(capsys, "clean", flood_file, "-o", out_path, "--quiet")
    assert code == 2
    assert "--max-removed" in err and "train" in err and "%" in err
    assert not out_path.exists()
    code, out, err = run(capsys, "clean", flood_file, "-o", out_path, "--quiet",
                         "--max-removed", "1")
    assert code == 0, err
    with h5py.File(out_path) as f:
        assert f["x_train"].shape[0] < N_TRAIN


def test_plan_reasons_and_api_guard():
    rng = np.random.default_rng(1)
    x = smooth_images(rng, 30, 28, 28)
    train = np.concatenate([x, x[:2]])                # 2 exact copies inside train
    test = x[[5, 6, 7]].copy()                        # 3 leaks
    near = np.clip(x[10].astype(np.int16) + 1, 0, 255).astype(np.uint8)
    train = np.concatenate([train, near[None]])       # 1 near copy of train[10]
    plan = gd.plan_clean(gd.scan({"train": train, "test": test}))
    assert plan.reasons["train"] == {"leak": 3, "exact copy": 2, "near copy": 1,
                                     "label conflict": 0}
    assert plan.removed() == {"train": 6, "test": 0}
    assert "leak 3" in str(plan)
    with pytest.raises(gd.InputError, match=r"max_removed: cleaning would remove 6 of 33 "
                                            r"train images \(18.2%\)"):
        plan.check(0.1)
    plan.check(0.2)


# ---------------------------------------------------------------- exact only, exit statuses


def test_exact_only_finds_only_byte_identical_pairs(flood_file, capsys):
    code, out, err = run(capsys, "scan", flood_file, "--exact-only", "--json", "-", "--quiet")
    assert code == 0, err
    report = json.loads(out)
    assert report["mode"] == "exact" and report["threshold"] is None
    assert {(p["i"], p["j"]) for p in report["pairs"]} == set(PLANTED)
    assert all(p["exact"] for p in report["pairs"])
    assert "exact duplicates only" in err  # the summary goes to stderr when JSON is on stdout


def test_fail_on(flood_file, capsys):
    assert run(capsys, "scan", flood_file, "--quiet")[0] == 0
    code, out, err = run(capsys, "scan", flood_file, "--quiet", "--fail-on", "leaks")
    assert code == 1 and "--fail-on leaks" in err
    code, _, err = run(capsys, "scan", flood_file, "--quiet", "--fail-on", "conflicts")
    assert code == 0, err  # every label is 0: no conflicts
    code, _, err = run(capsys, "scan", flood_file, "--fail-on", "bogus")
    assert code == 2 and "--fail-on" in err


def test_hash_takes_no_search_options(flood_file, tmp_path, capsys):
    for option in ("--threshold", "--hashes"):
        code, _, err = run(capsys, "hash", flood_file, "-o", tmp_path / "h.h5", option, "x")
        assert code == 2 and "unrecognized arguments" in err


def test_help_has_examples(capsys):
    for command in ("scan", "clean", "hash", "demo"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert "examples:" in capsys.readouterr().out


# ------------------------------------------------------------------- notebooks and pandas


def test_repr_is_short_and_html_repr_shows_thumbnails(flood):
    rep = gd.scan(flood, labels={"train": np.zeros(len(flood["train"]), int),
                                 "test": np.zeros(len(flood["test"]), int)})
    text = repr(rep)
    assert text.startswith("<gpudedup.Report") and len(text) < 200 and "array" not in text
    page = rep._repr_html_()
    assert page.count('data-section="exact_leak"') == 5  # five rows per section
    assert "data:image/png;base64," in page and "<html" not in page


def test_to_pandas_matches_csv(flood):
    pd = pytest.importorskip("pandas")
    rep = gd.scan(flood)
    df = rep.to_pandas()
    assert list(df.columns) == list(gd.schema.PAIR_COLUMNS)
    # one row per link: a group of 107 near copies lists the 106 strongest links that join it
    assert len(df) == len(rep.to_csv().splitlines()) - 1 == 106
    assert len(df) < sum(len(ov) for ov in rep.overlaps.values()) + sum(
        len(ov) for ov in rep.duplicates.values())
    from io import StringIO
    csv = pd.read_csv(StringIO(rep.to_csv()))
    assert csv["exact"].tolist() == df["exact"].tolist()
    ov = rep.overlaps[("train", "test")].to_pandas()
    assert list(ov.columns) == ["left", "right", "distance", "exact", "similarity",
                                "residual", "transform", "verified"]


def test_json_and_csv_share_one_encoding(flood):
    labels = {"train": np.arange(len(flood["train"])) % 2, "test": np.zeros(N_TEST + 6, int)}
    rep = gd.scan(flood, labels=labels)
    data = json.loads(rep.to_json())
    assert data["schema_version"] == gd.schema.SCHEMA_VERSION
    row = data["pairs"][0]
    assert set(row) == set(gd.schema.PAIR_COLUMNS)
    assert isinstance(row["label_a"], int) and isinstance(row["conflict"], bool)
    assert row["similarity"] == 1.0 and isinstance(row["group"], int)
    header, first = rep.to_csv().splitlines()[:2]
    assert header.split(",") == list(gd.schema.PAIR_COLUMNS)
    assert first.split(",")[5] in ("true", "false")


def test_progress_names_the_split(flood, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gd.scan(flood, progress=True)
    err = capsys.readouterr().err
    assert "hashing train" in err and "splits[" not in err


def test_api_clean_plans_guards_and_writes(flood_file, tmp_path, flood):
    spec = flood_file.as_posix()
    splits = {"train": f"{spec}:/x_train", "test": f"{spec}:/x_test"}
    labels = {"train": f"{spec}:/y_train", "test": f"{spec}:/y_test"}
    out = tmp_path / "out.h5"
    before = sha_tree(tmp_path)
    plan = gd.clean(splits, out, labels=labels, dry_run=True)
    assert sha_tree(tmp_path) == before and plan.written is None
    assert plan.removed()["train"] == N_TRAIN + 7
    with pytest.raises(gd.InputError, match="max_removed"):
        gd.clean(splits, out, labels=labels)
    assert sha_tree(tmp_path) == before
    plan = gd.clean(splits, out, labels=labels, max_removed=1.0)
    assert plan.written == str(out)
    with h5py.File(out) as f:
        assert f["x_train"].shape[0] == f["y_train"].shape[0] == int(plan.keep["train"].sum())
        np.testing.assert_array_equal(f["x_test"][()], flood["test"][plan.keep["test"]])
    with pytest.raises(gd.InputError, match="output: split 'train' is not a dataset"):
        gd.clean({"train": flood["train"]}, tmp_path / "x.h5", max_removed=1.0)
