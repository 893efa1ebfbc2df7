"""The HTML report: one self-contained page with the summary and every pair side by side.

Nothing is loaded from elsewhere: the style is inline, thumbnails are PNG data URIs, and a
Content-Security-Policy forbids scripts and network access. Text from the data (split names,
labels, source descriptions) is escaped.
"""

from __future__ import annotations

import base64
import html
import io
from typing import NamedTuple

import numpy as np
from PIL import Image

from ._version import __version__
from .checks import check_count
from .results import conflict_mask, label_value

#: small images are enlarged (nearest neighbour, whole factor) to about this long side
SMALL_SIDE = 96
#: large images are reduced to this long side
LARGE_SIDE = 128

SECTIONS = {"conflict": "label conflict", "leak": "leak", "duplicate": "duplicate"}

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.5em; margin: 0 0 .3em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: middle; }
th { background: #f2f2f2; }
td.num { text-align: right; }
.note { background: #fff3cd; border: 1px solid #e0c36a; padding: .4em .8em; display: inline-block; }
tr.conflict { background: #fdecea; }
.tag { font-weight: 600; }
tr.conflict .tag, .label.conflict { color: #b00020; font-weight: 700; }
figure { margin: 0; display: inline-block; text-align: center; }
img, .placeholder { border: 1px solid #999; background: #888; display: block; margin: auto; }
.placeholder { width: 96px; height: 96px; color: #eee; font-size: 11px; display: flex;
  align-items: center; justify-content: center; text-align: center; }
figcaption { font-family: ui-monospace, monospace; font-size: 12px; }
"""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


class _Row(NamedTuple):
    section: str
    a: str
    i: int
    b: str
    j: int
    distance: int
    exact: bool


def render_html(report, *, max_pairs: int = 500) -> str:
    """A self-contained HTML page of a scan: the summary, then each pair side by side.

    Pairs come in this order: label conflicts, leaks between splits (in the report's split-pair
    order), duplicates inside splits; inside each split pair, exact before near, then by
    ``(i, j)``. Each row shows both images as inline PNG thumbnails (a placeholder for a split
    known only by its hashes), their split names and indices, the distance, exact or near, and
    the labels when known.

    Parameters
    ----------
    report : Report
        What :func:`gpudedup.scan` returned.
    max_pairs : int
        Most pairs shown; a note says how many there were. Only the images shown are read, one
        ``take`` per split.

    Returns
    -------
    str
        The page, UTF-8 text with no external references.
    """
    rows, total = _select_rows(report, check_count(max_pairs, "max_pairs"))
    images = _thumbnails(report, rows)
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">",
        f"<title>gpudedup report</title><style>{_STYLE}</style></head><body>",
        _summary_html(report),
        _pairs_html(report, rows, total, images),
        "</body></html>\n",
    ]
    return "\n".join(parts)


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _select_rows(report, max_pairs: int) -> tuple[list[_Row], int]:
    """The first ``max_pairs`` rows in display order, and how many pairs there are in all."""
    groups = [(a, b, ov) for (a, b), ov in report.overlaps.items()]
    groups += [(name, name, ov) for name, ov in report.duplicates.items()]
    # exact first (~exact sorts False first), then (i, j)
    orders = [np.lexsort((ov.right, ov.left, ~ov.exact)) for _, _, ov in groups]
    conflicts = [conflict_mask(report.labels, a, b, ov) for a, b, ov in groups]
    rows, total = [], 0
    for conflict_pass in (True, False):  # conflicts first, then everything else
        for (a, b, ov), order, conflict in zip(groups, orders, conflicts):
            chosen = order[(conflict if conflict_pass else ~conflict)[order]]
            total += chosen.size
            section = "conflict" if conflict_pass else ("leak" if a != b else "duplicate")
            for k in chosen[:max(0, max_pairs - len(rows))].tolist():
                rows.append(_Row(section, a, int(ov.left[k]), b, int(ov.right[k]),
                                 int(ov.distance[k]), bool(ov.exact[k])))
    return rows, total


def _thumbnails(report, rows: list[_Row]) -> dict[tuple[str, int], tuple[str, int, int]]:
    """``(split, index) -> (data URI, width, height)`` for each image shown; one read per split.

    Splits without a source (hashes only) are left out.
    """
    wanted: dict[str, set[int]] = {}
    for row in rows:
        wanted.setdefault(row.a, set()).add(row.i)
        wanted.setdefault(row.b, set()).add(row.j)
    out = {}
    for name, indices in wanted.items():
        source = report.sources.get(name)
        if source is None:
            continue
        indices = np.array(sorted(indices), dtype=np.int64)
        for index, image in zip(indices.tolist(), source.take(indices)):
            out[(name, index)] = _png_data_uri(image)
    return out


def _display_uint8(image: np.ndarray) -> np.ndarray:
    """uint8 images as they are; anything else stretched from its min..max to 0..255."""
    if image.dtype == np.uint8:
        return image
    values = image.astype(np.float64) / 2  # halved so hi - lo cannot overflow to inf
    lo, hi = values.min(), values.max()
    if not hi > lo:
        return np.full(image.shape, 128, np.uint8)
    return np.rint((values - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _png_data_uri(image) -> tuple[str, int, int]:
    pixels = np.ascontiguousarray(_display_uint8(np.asarray(image)))
    picture = Image.fromarray(pixels)  # (H, W) -> L, (H, W, 3) uint8 -> RGB
    width, height = picture.size
    longest = max(width, height)
    if longest < SMALL_SIDE:
        # a whole factor keeps every pixel a crisp square
        factor = max(1, round(SMALL_SIDE / longest))
        picture = picture.resize((width * factor, height * factor), Image.Resampling.NEAREST)
    elif longest > LARGE_SIDE:
        scale = LARGE_SIDE / longest
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        picture = picture.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:image/png;base64,{encoded}", picture.size[0], picture.size[1]


def _summary_html(report) -> str:
    summary = report.summary()
    out = [
        "<h1>gpudedup report</h1>",
        f"<p>threshold <b>{summary['threshold']}</b> (largest Hamming distance between 64-bit "
        f"perceptual hashes of a near pair) &middot; gpudedup {_esc(__version__)}</p>",
        "<table class=\"splits\"><tr><th>split</th><th>images</th><th>shape</th><th>dtype</th>"
        "<th>source</th><th>duplicate pairs</th><th>exact</th><th>images in duplicates</th>"
        "</tr>",
    ]
    for name, info in report.splits.items():
        row = summary["splits"][name]
        shape = " &times; ".join(str(int(s)) for s in info.shape) or "&ndash;"
        source = _esc(info.source) if info.source else "hashes only"
        out.append(
            f"<tr><td>{_esc(name)}</td><td class=\"num\">{info.count}</td><td>{shape}</td>"
            f"<td>{_esc(info.dtype) or '&ndash;'}</td><td>{source}</td>"
            f"<td class=\"num\">{row['duplicate_pairs']}</td>"
            f"<td class=\"num\">{row['exact_duplicate_pairs']}</td>"
            f"<td class=\"num\">{row['images_in_duplicate_groups']}</td></tr>")
    out.append("</table>")
    if summary["leaks"]:
        out.append("<table class=\"leaks\"><tr><th>leak</th><th>pairs</th><th>exact</th>"
                   "<th>near</th><th>images (first / second split)</th></tr>")
        for leak in summary["leaks"]:
            out.append(
                f"<tr><td>{_esc(leak['a'])} &rarr; {_esc(leak['b'])}</td>"
                f"<td class=\"num\">{leak['pairs']}</td>"
                f"<td class=\"num\">{leak['exact_pairs']}</td>"
                f"<td class=\"num\">{leak['pairs'] - leak['exact_pairs']}</td>"
                f"<td class=\"num\">{leak['a_images']} / {leak['b_images']}</td></tr>")
        out.append("</table>")
    out.append(f"<p class=\"counts\">label conflicts: <b>{summary['conflicts']}</b> &middot; "
               f"duplicate groups: <b>{summary['groups']}</b></p>")
    return "\n".join(out)


def _image_cell(report, name: str, index: int, images, conflict: bool) -> str:
    caption = f"{_esc(name)}[{index}]"
    shown = images.get((name, index))
    if shown is None:
        picture = "<div class=\"placeholder\">no image<br>(hashes only)</div>"
    else:
        uri, width, height = shown
        picture = (f"<img src=\"{uri}\" width=\"{width}\" height=\"{height}\" "
                   f"alt=\"{caption}\">")
    labels = report.labels.get(name)
    if labels is not None:
        css = "label conflict" if conflict else "label"
        caption += (f"<br><span class=\"{css}\">label "
                    f"{_esc(label_value(labels[index]))}</span>")
    return f"<td class=\"image\"><figure>{picture}<figcaption>{caption}</figcaption></figure></td>"


def _pairs_html(report, rows: list[_Row], total: int, images) -> str:
    if total == 0:
        return "<p class=\"pairs-note\">No pairs found.</p>"
    if len(rows) < total:
        note = (f"<p class=\"note\">showing {len(rows)} of {total} pairs "
                f"(max_pairs={len(rows)})</p>")
    else:
        note = f"<p class=\"pairs-note\">showing all {total} pairs</p>"
    out = [note, "<table class=\"pairs\"><tr><th>#</th><th>kind</th><th>first</th>"
           "<th>second</th><th>distance</th><th>match</th></tr>"]
    for number, row in enumerate(rows, 1):
        conflict = row.section == "conflict"
        out.append(
            f"<tr class=\"pair {row.section}\"><td class=\"num\">{number}</td>"
            f"<td class=\"tag\">{SECTIONS[row.section]}</td>"
            f"{_image_cell(report, row.a, row.i, images, conflict)}"
            f"{_image_cell(report, row.b, row.j, images, conflict)}"
            f"<td class=\"num\">{row.distance}</td>"
            f"<td>{'exact' if row.exact else 'near'}</td></tr>")
    out.append("</table>")
    return "\n".join(out)
