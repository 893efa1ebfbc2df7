"""The HTML report: one self-contained page with the summary and every pair side by side.

Nothing is loaded from elsewhere: the style is inline, thumbnails are PNG data URIs, and a
Content-Security-Policy forbids scripts and network access. Text from the data (split names,
labels, source descriptions) is escaped.
"""

from __future__ import annotations

import base64
import html
import io
import itertools

import numpy as np
from PIL import Image

from ._version import __version__
from .checks import check_count
from .schema import BIG_GROUP, describe_group, describe_mode, group_rows, pair_rows, sections

#: small images are enlarged (nearest neighbour, whole factor) to about this long side
SMALL_SIDE = 96
#: large images are reduced to this long side
LARGE_SIDE = 128

SECTION_TAGS = {"exact_leak": "exact leak", "near_leak": "near leak",
                "exact_duplicate": "exact duplicate", "near_duplicate": "near duplicate"}

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


def render_html(report, *, max_rows: int = 100) -> str:
    """A self-contained HTML page of a scan: the summary, then each section's pairs side by side.

    Sections come in the order of ``gpudedup.schema.SECTIONS``: exact leaks between splits,
    near leaks, exact duplicates inside a split, near duplicates; near pairs most alike first.
    Label conflicts are marked in every section. Each row shows both images as inline PNG
    thumbnails (a placeholder for a split known only by its hashes), their split names and
    indices, the phash distance, the pixel similarity (or "not verified"), exact or near (with
    the flip or rotation that matched), and the labels when known. A search whose near pairs
    could not be verified says so at the top.

    Parameters
    ----------
    report : Report
        What :func:`gpudedup.scan` returned. Only its public attributes are read.
    max_rows : int
        Most pairs shown per section; a note in each capped section says how many were left
        out and how to see them all. Only the images shown are read, one ``take`` per split.

    Returns
    -------
    str
        The page, UTF-8 text with no external references.
    """
    body = _body(report, check_count(max_rows, "max_rows"))
    return "\n".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">",
        f"<title>gpudedup report</title><style>{_STYLE}</style></head><body>",
        body,
        "</body></html>\n",
    ])


def render_fragment(report, *, max_rows: int = 5) -> str:
    """The page's body alone (summary and the first ``max_rows`` pairs of each section), with
    its style scoped to it: what a notebook shows for a Report."""
    scoped = _STYLE.replace("body {", ".gpudedup-report {")
    return (f"<div class=\"gpudedup-report\"><style>{scoped}</style>"
            f"{_body(report, max_rows)}</div>")


#: thumbnails shown per group in the groups section
GROUP_THUMBNAILS = 6


def _body(report, max_rows: int) -> str:
    chosen = [(section, list(pair_rows(report, section, max_rows)))
              for section in sections(report)]
    # the big groups, once each with a few of their images
    groups = [row for row in itertools.islice(group_rows(report), max_rows)
              if row["size"] > BIG_GROUP]
    index = report.group_index()
    names = list(report.splits)
    shown = {}
    for row in groups:
        splits, members = index.members(row["group"])
        shown[row["group"]] = [(names[s], int(k)) for s, k in
                               zip(splits[:GROUP_THUMBNAILS].tolist(),
                                   members[:GROUP_THUMBNAILS].tolist())]
    wanted = [row for _, rows in chosen for row in rows]
    wanted += [{"a": n, "i": k, "b": n, "j": k} for m in shown.values() for n, k in m]
    images = _thumbnails(report, wanted)
    return "\n".join([_summary_html(report), _sections_html(chosen, max_rows, images),
                       _groups_html(report, groups, shown, images)])


def _groups_html(report, groups: list[dict], shown: dict, images) -> str:
    if not groups:
        return ""
    out = [f"<h2 id=\"groups\">groups of more than {BIG_GROUP} images: {len(groups)}</h2>",
           "<table class=\"groups\"><tr><th>#</th><th>group</th><th>images</th></tr>"]
    for row in groups:
        cells = []
        for name, index in shown[row["group"]]:
            caption = f"{_esc(name)}[{index}]"
            cells.append(f"<figure>{_picture(images.get((name, index)), caption, 'no image')}"
                         f"<figcaption>{caption}</figcaption></figure>")
        more = row["size"] - len(cells)
        if more > 0:
            cells.append(f"<span class=\"note\">and {more:,} more</span>")
        out.append(f"<tr class=\"group\"><td class=\"num\">{row['group']}</td>"
                   f"<td>{_esc(describe_group(report, row))}</td>"
                   f"<td class=\"image\">{' '.join(cells)}</td></tr>")
    out.append("</table>")
    return "\n".join(out)


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _thumbnails(report, rows: list[dict]) -> dict[tuple[str, int], tuple[str, int, int]]:
    """``(split, index) -> (data URI, width, height)`` for each image shown; one read per split.

    Splits without a source (hashes only) are left out.
    """
    wanted: dict[str, set[int]] = {}
    for row in rows:
        wanted.setdefault(row["a"], set()).add(row["i"])
        wanted.setdefault(row["b"], set()).add(row["j"])
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
        f"<p>looked for <b>{_esc(describe_mode(report))}</b> &middot; gpudedup "
        f"{_esc(__version__)}</p>",
    ]
    for row in summary["verification"]["unverified"]:
        where = row["a"] if row["a"] == row["b"] else f"{row['a']} / {row['b']}"
        out.append(f"<p class=\"note conflict\"><b>not verified on pixels</b> "
                   f"({_esc(where)}, {row['pairs']} near pairs): {_esc(row['reason'])}</p>")
    if summary["leaks"]:
        out.append("<table class=\"leaks\"><tr><th>leak</th><th>pairs</th><th>exact</th>"
                   "<th>near</th><th>images with a copy in the other split</th></tr>")
        for leak in summary["leaks"]:
            out.append(
                f"<tr><td>{_esc(leak['a'])} &harr; {_esc(leak['b'])}</td>"
                f"<td class=\"num\">{leak['pairs']}</td>"
                f"<td class=\"num\">{leak['exact_pairs']}</td>"
                f"<td class=\"num\">{leak['pairs'] - leak['exact_pairs']}</td>"
                f"<td>{_esc(leak['a'])} {leak['a_images']}, "
                f"{_esc(leak['b'])} {leak['b_images']}</td></tr>")
        out.append("</table>")
    out.append("<table class=\"splits\"><tr><th>split</th><th>images</th><th>shape</th>"
               "<th>dtype</th><th>source</th><th>duplicate pairs</th><th>exact</th>"
               "<th>images in duplicates</th></tr>")
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
    conflicts = ("no labels" if summary["conflicts"] is None
                 else f"label conflicts: <b>{summary['conflicts']}</b>")
    out.append(f"<p class=\"counts\">{conflicts} &middot; duplicate groups: "
               f"<b>{summary['groups']}</b></p>")
    for row in itertools.islice(group_rows(report), 3):  # the big clusters, once each
        if row["size"] > BIG_GROUP:
            out.append(f"<p class=\"note\"><a href=\"#groups\">"
                       f"{_esc(describe_group(report, row))}</a></p>")
    return "\n".join(out)


def _similarity(row: dict) -> str:
    return "not verified" if row["similarity"] is None else f"{row['similarity']:.3f}"


def _match(row: dict) -> str:
    if row["exact"]:
        return "exact"
    extra = [] if row["transform"] == "identity" else [row["transform"].replace("_", " ")]
    if any(row["offset"]):
        extra.append(f"shifted hash {row['offset'][0]:+d},{row['offset'][1]:+d}")
    return "near" + (f" ({_esc(', '.join(extra))})" if extra else "")


def _picture(shown, caption: str, missing: str) -> str:
    # one thumbnail (data URI, width, height) as an <img>, or a placeholder saying ``missing``
    if shown is None:
        return f"<div class=\"placeholder\">{missing}</div>"
    uri, width, height = shown
    return f"<img src=\"{uri}\" width=\"{width}\" height=\"{height}\" alt=\"{caption}\">"


def _image_cell(row: dict, side: str, images) -> str:
    name, index = (row["a"], row["i"]) if side == "a" else (row["b"], row["j"])
    caption = f"{_esc(name)}[{index}]"
    picture = _picture(images.get((name, index)), caption, "no image<br>(hashes only)")
    label = row[f"label_{side}"]
    if label is not None:
        css = "label conflict" if row["conflict"] else "label"
        caption += f"<br><span class=\"{css}\">label {_esc(label)}</span>"
    return f"<td class=\"image\"><figure>{picture}<figcaption>{caption}</figcaption></figure></td>"


def _sections_html(chosen, max_rows: int, images) -> str:
    if not any(section.total for section, _ in chosen):
        return "<p class=\"pairs-note\">No pairs found.</p>"
    out = []
    for section, rows in chosen:
        if not section.total:
            continue
        out.append(f"<h2 id=\"{section.key}\">{_esc(section.title)}: {section.total}</h2>")
        if len(rows) < section.total:
            out.append(f"<p class=\"note\">showing the first {len(rows)} of {section.total} "
                       f"(max_rows={max_rows}); every pair is in the CSV and JSON reports "
                       f"(--csv, --json), or raise --max-rows</p>")
        if not rows:
            continue
        out.append("<table class=\"pairs\"><tr><th>#</th><th>kind</th><th>first</th>"
                   "<th>second</th><th>distance</th><th>similarity</th><th>match</th></tr>")
        for number, row in enumerate(rows, 1):
            css = f"pair {section.key}" + (" conflict" if row["conflict"] else "")
            tag = SECTION_TAGS[section.key] + (" &middot; label conflict"
                                               if row["conflict"] else "")
            out.append(
                f"<tr class=\"{css}\" data-section=\"{section.key}\">"
                f"<td class=\"num\">{number}</td><td class=\"tag\">{tag}</td>"
                f"{_image_cell(row, 'a', images)}{_image_cell(row, 'b', images)}"
                f"<td class=\"num\">{row['distance']}</td>"
                f"<td class=\"num\">{_similarity(row)}</td>"
                f"<td>{_match(row)}</td></tr>")
        out.append("</table>")
    return "\n".join(out)
