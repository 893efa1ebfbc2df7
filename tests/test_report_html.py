"""The HTML report: structure, section order, per-section cap, escaping, thumbnails,
placeholders, a real browser."""

import base64
import html
import io
import re
import shutil
import subprocess

import h5py
import numpy as np
import pytest
from PIL import Image

import gpudedup as gd
from gpudedup.demo import make_demo
from gpudedup.report_html import render_html
from gpudedup.results import Overlaps, Report, SplitInfo
from gpudedup.sources import as_source

ROW = re.compile(r'<tr class="pair (\w+)( conflict)?" data-section="(\w+)">(.*?)</tr>', re.S)
CAPTION = re.compile(r"<figcaption>([^\[<]*)\[(\d+)\]")
DATA_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
SECTION_ORDER = ["exact_leak", "near_leak", "exact_duplicate", "near_duplicate"]
TAGS = {"exact_leak": "exact leak", "near_leak": "near leak",
        "exact_duplicate": "exact duplicate", "near_duplicate": "near duplicate"}


def rows_of(page: str) -> list[dict]:
    """Each pair row as {section, conflict, a, i, b, j, distance, similarity, exact}; checks
    that the row's class, data-section and tag text agree."""
    out = []
    for section, conflict, data_section, body in ROW.findall(page):
        assert data_section == section
        (a, i), (b, j) = CAPTION.findall(body)
        tag = html.unescape(re.search(r'<td class="tag">([^<]*)</td>', body).group(1))
        assert tag == TAGS[section] + (" \u00b7 label conflict" if conflict else "")
        cells = re.findall(r"<td[^>]*>([^<]*)</td>", body)
        out.append({"section": section, "conflict": bool(conflict), "a": a, "i": int(i),
                    "b": b, "j": int(j), "distance": int(cells[-3]),
                    "similarity": None if cells[-2] == "not verified" else float(cells[-2]),
                    "exact": cells[-1] == "exact"})
    return out


def section_notes(page: str) -> dict[str, str]:
    """Each section's cap note (or None), by section key, in page order."""
    out = {}
    for key, body in re.findall(r'<h2 id="(\w+)">.*?</h2>(.*?)(?=<h2 |</body>|$)', page, re.S):
        note = re.search(r'<p class="note">(.*?)</p>', body, re.S)
        out[key] = note.group(1) if note else None
    return out


def decoded_images(page: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(data))) for data in DATA_URI.findall(page)]


def make_report(images: dict, pairs: dict, labels=None, threshold: int = 8) -> Report:
    """A Report by hand: ``pairs`` maps a split name (duplicates) or a (a, b) tuple (leaks) to
    rows (i, j, distance, exact)."""
    sources = {name: as_source(arr, name) for name, arr in images.items()}
    splits = {name: SplitInfo(source=s.description, count=s.count, shape=s.image_shape,
                              dtype=str(s.dtype)) for name, s in sources.items()}

    def overlaps(rows, self_join):
        rows = sorted(rows)
        cols = [np.array([r[k] for r in rows]) for k in range(4)]
        return Overlaps(*cols, threshold=threshold, self_join=self_join)

    names = list(images)
    dups = {n: overlaps(pairs.get(n, []), True) for n in names}
    leaks = {(a, b): overlaps(pairs.get((a, b), []), False)
             for k, a in enumerate(names) for b in names[k + 1:]}
    return Report(splits=splits, overlaps=leaks, duplicates=dups,
                  labels={n: np.asarray(v) for n, v in (labels or {}).items()},
                  threshold=threshold, sources=sources)


@pytest.fixture(scope="module")
def demo_report():
    data = make_demo()
    return gd.scan(data.splits, labels=data.labels)


@pytest.fixture
def mixed_report():
    """Two splits with conflicts, exact and near pairs in every section, out of order; the near
    pairs' distances run against their index order."""
    rng = np.random.default_rng(1)
    images = {"train": rng.integers(0, 256, (12, 20, 20), dtype=np.uint8),
              "test": rng.integers(0, 256, (6, 20, 20), dtype=np.uint8)}
    labels = {"train": np.arange(12) % 3, "test": np.arange(6) % 3}
    pairs = {
        # leaks: (0, 0), (3, 3) and (5, 2) keep labels; (4, 2) and (7, 3) conflict
        ("train", "test"): [(5, 2, 6, False), (4, 2, 0, True), (0, 0, 0, True),
                            (7, 3, 3, False), (3, 3, 0, True)],
        # duplicates: (3, 6) and (0, 9) keep labels, (1, 2) conflicts
        "train": [(3, 6, 5, False), (1, 2, 0, True), (2, 8, 0, True), (0, 9, 2, False)],
    }
    return make_report(images, pairs, labels)


def test_demo_page_shows_summary_and_every_pair(demo_report):
    page = render_html(demo_report)
    rows = rows_of(page)
    shown = [(r["section"], r["a"], r["i"], r["b"], r["j"]) for r in rows]
    expected = [(p["section"], p["a"], p["i"], p["b"], p["j"])
                for p in demo_report.to_dict()["pairs"]]
    assert shown == expected and len(rows) == len(set(expected)) == 7
    # nothing capped: every section whole, no note
    assert "showing the first" not in page and '<p class="note">' not in page
    assert section_notes(page) == {"exact_leak": None, "near_leak": None,
                                   "exact_duplicate": None}
    for key, title, count in (("exact_leak", "exact leaks between splits", 3),
                              ("near_leak", "near leaks between splits", 2),
                              ("exact_duplicate", "exact duplicates inside a split", 2)):
        assert f'<h2 id="{key}">{title}: {count}</h2>' in page
    assert 'id="near_duplicate"' not in page  # an empty section is left out
    assert f"up to phash distance {demo_report.threshold} " in page
    for count in ("600", "150"):
        assert f'<td class="num">{count}</td>' in page
    assert ("train &harr; valid</td><td class=\"num\">3</td><td class=\"num\">2</td>"
            "<td class=\"num\">1</td>") in page
    assert "label conflicts: <b>1</b>" in page
    # the exact leaks come first; the planted conflict is marked inside its section
    assert rows[0] == {"section": "exact_leak", "conflict": False, "a": "train", "i": 3,
                       "b": "valid", "j": 7, "distance": 0, "similarity": 1.0, "exact": True}
    assert [r for r in rows if r["conflict"]] == [
        {"section": "exact_duplicate", "conflict": True, "a": "train", "i": 18, "b": "train",
         "j": 501, "distance": 0, "similarity": 1.0, "exact": True}]
    marked = [body for _, conflict, _, body in ROW.findall(page) if conflict]
    assert len(marked) == 1 and marked[0].count('class="label conflict"') == 2
    assert "exact duplicate &middot; label conflict" in marked[0]
    assert page.count('class="label conflict"') == 2
    assert page.count("<img ") == 2 * len(rows)


def test_page_is_self_contained(demo_report):
    page = render_html(demo_report)
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page
    assert page.count('src="') == page.count('src="data:image/png;base64,') == 14
    assert "url(" not in page and "@import" not in page


def test_order_exact_leaks_near_leaks_exact_then_near_duplicates(mixed_report):
    page = render_html(mixed_report)
    rows = rows_of(page)
    keys = [(r["section"], r["a"], r["i"], r["b"], r["j"], r["conflict"]) for r in rows]
    assert keys == [
        ("exact_leak", "train", 0, "test", 0, False),      # exact leaks by (i, j)
        ("exact_leak", "train", 3, "test", 3, False),
        ("exact_leak", "train", 4, "test", 2, True),       # a conflict, marked in place
        ("near_leak", "train", 7, "test", 3, True),        # near leaks by distance: 3
        ("near_leak", "train", 5, "test", 2, False),       # then 6
        ("exact_duplicate", "train", 1, "train", 2, True),
        ("exact_duplicate", "train", 2, "train", 8, False),
        ("near_duplicate", "train", 0, "train", 9, False),  # distance 2
        ("near_duplicate", "train", 3, "train", 6, False),  # distance 5
    ]
    assert [r["exact"] for r in rows] == [True] * 3 + [False] * 2 + [True] * 2 + [False] * 2
    assert [r["distance"] for r in rows] == [0, 0, 0, 3, 6, 0, 0, 2, 5]
    assert len(mixed_report.conflicts) == 3
    # the section headings come in the same order, with their counts
    headings = re.findall(r'<h2 id="(\w+)">[^<]*: (\d+)</h2>', page)
    assert headings == [("exact_leak", "3"), ("near_leak", "2"), ("exact_duplicate", "2"),
                        ("near_duplicate", "2")]
    assert page.count('class="label conflict"') == 2 * 3


def first_rows(rows: list[dict], n: int) -> list[dict]:
    """The first ``n`` rows of each section, in section order."""
    return [r for key in SECTION_ORDER for r in [r for r in rows if r["section"] == key][:n]]


def test_cap_is_per_section_with_a_note(mixed_report):
    full = rows_of(render_html(mixed_report))
    assert len(full) == 9
    page = render_html(mixed_report, max_rows=1)
    assert rows_of(page) == first_rows(full, 1)
    assert len(rows_of(page)) == 4 and page.count("<img ") == 8
    notes = section_notes(page)
    assert list(notes) == SECTION_ORDER
    for key, total in zip(SECTION_ORDER, (3, 2, 2, 2)):
        assert notes[key].startswith(f"showing the first 1 of {total} (max_rows=1)")
        assert "--max-rows" in notes[key] and "CSV" in notes[key] and "JSON" in notes[key]
    # a cap that only the biggest section reaches notes only that one
    page = render_html(mixed_report, max_rows=2)
    assert rows_of(page) == first_rows(full, 2)
    assert len(rows_of(page)) == 8 and page.count("<img ") == 16
    notes = section_notes(page)
    assert notes["exact_leak"].startswith("showing the first 2 of 3 (max_rows=2)")
    assert [notes[key] for key in SECTION_ORDER[1:]] == [None, None, None]
    assert page.count('<p class="note">') == 1
    assert rows_of(render_html(mixed_report, max_rows=3)) == full
    empty = render_html(mixed_report, max_rows=0)
    assert rows_of(empty) == [] and "<img" not in empty
    notes = section_notes(empty)
    for key, total in zip(SECTION_ORDER, (3, 2, 2, 2)):
        assert notes[key].startswith(f"showing the first 0 of {total} (max_rows=0)")
    nothing = render_html(make_report({"x": np.zeros((2, 4, 4), np.uint8)}, {}))
    assert "showing" not in nothing and "No pairs found." in nothing


@pytest.mark.parametrize("bad", [-1, 2.5, True, "10"])
def test_max_rows_is_checked(mixed_report, bad):
    with pytest.raises(ValueError, match="max_rows: expected a non-negative integer"):
        render_html(mixed_report, max_rows=bad)
    with pytest.raises(ValueError, match="max_rows: expected a non-negative integer"):
        mixed_report.to_html(max_rows=bad)


def test_text_from_data_is_escaped():
    hostile = "<script>alert(1)</script>"
    label = "\"&<>'"
    images = {hostile: np.zeros((3, 8, 8), np.uint8), "ok": np.ones((2, 8, 8), np.uint8)}
    report = make_report(images, {hostile: [(0, 1, 0, True)], (hostile, "ok"): [(2, 0, 5, False)]},
                         labels={hostile: np.array([label, "b", label]),
                                 "ok": np.array(["x", "y"])})
    report.splits[hostile].source = "<img src=x onerror=alert(2)>"
    report.splits["ok"].dtype = "<b>uint8</b>"
    page = render_html(report)
    for raw in (hostile, label, "<img src=x", "<b>uint8</b>", "<script"):
        assert raw not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;[0]" in page
    assert "label &quot;&amp;&lt;&gt;&#x27;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "&lt;b&gt;uint8&lt;/b&gt;" in page
    assert [(r["section"], r["conflict"]) for r in rows_of(page)] == [
        ("near_leak", True), ("exact_duplicate", True)]


@pytest.mark.parametrize("image, size, mode", [
    (np.arange(28 * 28, dtype=np.uint8).reshape(28, 28), (84, 84), "L"),   # x3, nearest
    (np.arange(20 * 10, dtype=np.uint8).reshape(10, 20), (100, 50), "L"),  # x5, aspect kept
    (np.zeros((100, 110), np.uint8), (110, 100), "L"),                     # kept as it is
    (np.zeros((300, 200), np.uint16), (85, 128), "L"),                     # reduced
    (np.zeros((6, 1000), np.float32), (128, 1), "L"),                      # at least 1 px
    (np.zeros((16, 16, 3), np.uint8), (96, 96), "RGB"),
    (np.zeros((400, 400, 3), np.uint8), (128, 128), "RGB"),
])
def test_thumbnails_decode_to_the_right_size(image, size, mode):
    report = make_report({"s": np.stack([image, image])}, {"s": [(0, 1, 0, True)]})
    pictures = decoded_images(render_html(report))
    assert len(pictures) == 2
    for picture in pictures:
        assert picture.format == "PNG" and picture.size == size and picture.mode == mode


def test_thumbnail_pixels():
    rng = np.random.default_rng(3)
    small = rng.integers(0, 256, (2, 12, 16), dtype=np.uint8)
    floats = np.stack([np.linspace(-3.0, 5.0, 64).reshape(8, 8), np.full((8, 8), 7.5)])
    ints = np.stack([np.array([[-40000, 0], [10, 2**40]]), np.zeros((2, 2), np.int64)])
    colour = rng.integers(0, 256, (2, 24, 32, 3), dtype=np.uint8)
    report = make_report({"small": small, "floats": floats, "ints": ints, "colour": colour},
                         {"small": [(0, 1, 9, False)], "floats": [(0, 1, 3, False)],
                          "ints": [(0, 1, 1, False)], "colour": [(0, 1, 2, False)]})
    # no leaks, so the rows are the near duplicates, most alike first, two images each
    p_ints, p_ints0, p_colour, _, p_floats, p_const, p_small, _ = (
        np.asarray(p) for p in decoded_images(render_html(report)))
    np.testing.assert_array_equal(p_small, np.kron(small[0], np.ones((6, 6), np.uint8)))
    assert p_floats[0, 0] == 0 and p_floats[-1, -1] == 255           # min..max stretched
    assert (p_const == 128).all()                                     # constant: mid grey
    assert p_ints[0, 0] == 0 and p_ints[-1, -1] == 255 and (p_ints0 == 128).all()
    np.testing.assert_array_equal(p_colour, np.kron(colour[0], np.ones((3, 3, 1), np.uint8)))


def test_reads_only_shown_images_once_per_split(mixed_report):
    calls = []

    def counting(name, take):
        def wrapped(indices):
            calls.append((name, np.asarray(indices).tolist()))
            return take(indices)
        return wrapped

    for name, source in mixed_report.sources.items():
        source.take = counting(name, source.take)
    render_html(mixed_report, max_rows=1)
    # rows shown, the first of each section: train0-test0, train7-test3, train1-train2,
    # train0-train9
    assert sorted(calls) == [("test", [0, 3]), ("train", [0, 1, 2, 7, 9])]


def test_hdf5_source(tmp_path):
    rng = np.random.default_rng(5)
    splits = {"train": rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
              "test": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8)}
    splits["test"][7] = splits["train"][30]
    splits["train"][12] = splits["train"][3]
    path = tmp_path / "splits.h5"
    with h5py.File(path, "w") as handle:
        for name, arr in splits.items():
            handle[name] = arr
    report = gd.scan({n: f"{path}:/{n}" for n in splits})
    page = render_html(report)
    rows = rows_of(page)
    assert [(r["a"], r["i"], r["b"], r["j"]) for r in rows] == [("train", 30, "test", 7),
                                                                ("train", 3, "train", 12)]
    assert page.count("<img ") == 4
    assert f"{path}:/train" in page
    assert all(p.size == (84, 84) for p in decoded_images(page))


def test_hashes_only_shows_placeholders():
    codes = np.array([0, 0xFF, 1 << 63, 3], dtype=np.uint64)
    report = gd.scan({"a": gd.HashSet.from_phash(codes), "b": gd.HashSet.from_phash(codes[:2])})
    assert all(s is None for s in report.sources.values())
    page = render_html(report)
    rows = rows_of(page)
    assert len(rows) == len(report.to_dict()["pairs"]) > 0
    assert "<img" not in page
    assert page.count('class="placeholder"') == 2 * len(rows)
    assert "phash codes" in page


def test_to_html_writes_the_page(demo_report, tmp_path):
    path = tmp_path / "report.html"
    text = demo_report.to_html(path, max_rows=2)
    assert path.read_text(encoding="utf-8") == text
    assert text == render_html(demo_report, max_rows=2)
    notes = section_notes(text)
    assert list(notes) == ["exact_leak", "near_leak", "exact_duplicate"]
    assert notes["exact_leak"].startswith("showing the first 2 of 3 (max_rows=2)")
    assert notes["near_leak"] is None and notes["exact_duplicate"] is None
    assert len(rows_of(text)) == 6
    assert demo_report.to_html() == render_html(demo_report, max_rows=100)


def test_to_html_max_pairs_is_a_deprecated_alias(demo_report, tmp_path):
    path = tmp_path / "report.html"
    with pytest.warns(DeprecationWarning, match="max_pairs.*max_rows"):
        text = demo_report.to_html(path, max_pairs=2)
    assert text == demo_report.to_html(max_rows=2)
    assert path.read_text(encoding="utf-8") == text
    assert "showing the first 2 of 3 (max_rows=2)" in text
    with pytest.raises(TypeError):
        render_html(demo_report, max_pairs=2)  # the page itself knows only max_rows


def _browser():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(_browser() is None, reason="no Chromium or Chrome installed")
def test_chromium_renders_the_page(demo_report, tmp_path):
    page = tmp_path / "report.html"
    demo_report.to_html(page)
    result = subprocess.run(
        [_browser(), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert [(r["section"], r["conflict"]) for r in rows_of(dom)] == (
        [("exact_leak", False)] * 3 + [("near_leak", False)] * 2
        + [("exact_duplicate", False), ("exact_duplicate", True)])
    assert dom.count("<img ") == 14
    assert "train[18]" in dom and "train[501]" in dom
