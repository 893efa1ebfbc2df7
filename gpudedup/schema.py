"""The report schema, defined once: the columns of a pair, their encodings, and the display order.

JSON (``Report.to_json``), CSV (``Report.to_csv``), pandas (``Report.to_pandas``) and the HTML page
all take their rows from :func:`pair_rows`, so they cannot drift apart. Columns that later work
fills (file paths) are named now and are ``None`` (JSON ``null``, an empty CSV cell) until
filled; ``similarity`` and ``residual`` are null for pairs that were not verified. A change to
the columns or their meaning bumps ``SCHEMA_VERSION``.

The rows are the links of each search (``Overlaps.links``), linear in the images: identical
images form a class listed once as pairs from its first image (its representative) to each
other member, and pairs found between two classes are listed from each representative to the
other class's members; every other pair follows through a representative, and the summary
counts them all. The ``groups`` section (:func:`group_rows`) lists each group of linked images
once: its size, members per split, kind and widest pair. In a group of more than
``SPANNING_FROM`` images the near rows are the strongest links that join it (a maximum
spanning forest by similarity), not every near pair inside it.

Version 4: the summary of each split and of each leak gains ``unchecked_pairs``, the
candidates inside near groups of ``gpudedup.joined.SKIP_FROM`` or more images that were not
scored because the group had joined their images already (``duplicate_pairs`` and the leak's
``pairs`` count the checked pairs).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .groups import spanning_forest
from .labels import label_value, labels_differ
from .transforms import TRANSFORMS

SCHEMA_VERSION = 4

#: one row per pair; ``a``/``i`` and ``b``/``j`` are split and index of its two images
PAIR_COLUMNS = (
    "section",     # exact_leak, near_leak, exact_duplicate or near_duplicate
    "a", "i", "b", "j",
    "exact",       # byte-identical (verified)
    "distance",    # Hamming distance of the 64-bit perceptual hashes
    "similarity",  # pixel similarity in [0, 1] (1 for exact copies); null if not verified
    "residual",    # the verification residual (grey levels, 0-255 scale); null if not verified
    "transform",   # the flip or rotation that matched: a[i] is a copy of transform(b[j])
    "offset",      # [dy, dx] of the shifted hash variant that found the pair ([0, 0]: plain)
    "group",       # the duplicate group of both images (the "groups" section's id)
    "path_a", "path_b",  # image files of folder input; null for arrays and HDF5
    "label_a", "label_b",  # null where a split has no labels or the label is unknown
    "conflict",    # labels differ; null unless both images have known labels
)

#: display order: what a user acts on first comes first
SECTIONS = {
    "exact_leak": "exact leaks between splits",
    "near_leak": "near leaks between splits",
    "exact_duplicate": "exact duplicates inside a split",
    "near_duplicate": "near duplicates inside a split",
}


@dataclass
class Section:
    """The pairs of one section in display order, as (a, b, overlaps, pair index) parts.

    ``order`` holds, for each pair, the position of its part in ``parts`` and its index in that
    part's Overlaps; the first ``limit`` of them are what a capped view shows.
    """

    key: str
    title: str
    parts: list[tuple[str, str, object]]
    order: np.ndarray  # (k, 2) int64: part, pair index

    @property
    def total(self) -> int:
        return int(self.order.shape[0])


def sections(report) -> list[Section]:
    """Every link of ``report`` (``Overlaps.links``), split into SECTIONS, in display order.

    Exact pairs come in split-pair order, then by ``(i, j)``; near pairs most similar first
    (unverified ones last), then by distance, split-pair order and ``(i, j)``.
    """
    leaks = [(a, b, ov.links()) for (a, b), ov in report.overlaps.items()]
    dups = [(n, n, ov.links()) for n, ov in report.duplicates.items()]
    leaks, dups = _spanning_parts(report, leaks, dups)
    out = []
    for kind, parts in (("leak", leaks), ("duplicate", dups)):
        for exact in (True, False):
            keys = []
            for p, (_, _, cols) in enumerate(parts):
                index = np.flatnonzero(cols["exact"] == exact)
                dist = np.zeros(index.size, np.int64) if exact else cols["distance"][index]
                # dissimilarity in millionths, NaN (unverified) after every verified pair
                unlike = np.nan_to_num(1.0 - cols["similarity"][index].astype(np.float64),
                                       nan=2.0)
                keys.append(np.column_stack([
                    np.rint(unlike * 1e6).astype(np.int64),
                    dist.astype(np.int64), np.full(index.size, p, np.int64),
                    cols["i"][index], cols["j"][index], index]))
            table = np.concatenate(keys) if keys else np.empty((0, 6), np.int64)
            order = np.lexsort(tuple(table[:, c] for c in (4, 3, 2, 1, 0)))
            key = f"{'exact' if exact else 'near'}_{kind}"
            out.append(Section(key, SECTIONS[key], parts, table[order][:, [2, 5]]))
    return out


#: a group of more images than this lists the strongest near links that join it (a maximum
#: spanning forest: one row fewer than its images) instead of every near pair among them
SPANNING_FROM = 100


def _spanning_parts(report, leaks, dups):
    # near links inside big groups thinned to a maximum spanning forest by similarity (exact
    # links, already linear, join first); everything else as it is
    index = report.group_index()
    if not (index.sizes > SPANNING_FROM).any():
        return leaks, dups
    offsets = index.offsets
    base = {n: int(offsets[k]) for k, n in enumerate(report.splits)}
    parts = leaks + dups
    picks, lefts, rights, weights = [], [], [], []
    for a, b, cols in parts:
        gid = index.ids[a][cols["i"]]
        big = np.flatnonzero((gid >= 0) & (index.sizes[np.maximum(gid, 0)] > SPANNING_FROM))
        picks.append(big)
        lefts.append(cols["i"][big] + base[a])
        rights.append(cols["j"][big] + base[b])
        sim = np.nan_to_num(cols["similarity"][big].astype(np.float64), nan=-1.0)
        weights.append(np.where(cols["exact"][big], 2.0, sim))
    left, right, weight = (np.concatenate(x) for x in (lefts, rights, weights))
    keep = spanning_forest(int(offsets[-1]), left, right,
                           np.lexsort((np.arange(weight.size), -weight)))
    out, start = [], 0
    for (a, b, cols), big in zip(parts, picks):
        mask = np.ones(cols["i"].size, bool)
        mine = keep[start:start + big.size]
        start += big.size
        mask[big] = mine | cols["exact"][big]
        out.append((a, b, cols if mask.all() else {k: v[mask] for k, v in cols.items()}))
    return out[:len(leaks)], out[len(leaks):]


def pair_rows(report, section: Section, limit: int | None = None) -> Iterator[dict]:
    """The rows (dicts of PAIR_COLUMNS) of the first ``limit`` links of ``section``.

    Columns are gathered per part as arrays and turned into Python values a column at a
    time: a report of 100,000 rows is built in a fraction of a second."""
    chosen = section.order[:limit]
    if not chosen.shape[0]:
        return
    ids = report.group_index().ids
    n = chosen.shape[0]
    i, j = np.empty(n, np.int64), np.empty(n, np.int64)
    exact, distance = np.empty(n, bool), np.empty(n, np.int64)
    similarity, residual = np.empty(n, np.float64), np.empty(n, np.float64)
    transform, offset = np.empty(n, np.int64), np.empty((n, 2), np.int64)
    group = np.empty(n, np.int64)
    names_a, names_b = [None] * n, [None] * n
    label_a, label_b, conflict = [None] * n, [None] * n, [None] * n
    for p in np.unique(chosen[:, 0]).tolist():
        a, b, cols = section.parts[p]
        where = np.flatnonzero(chosen[:, 0] == p)
        k = chosen[where, 1]
        i[where], j[where] = cols["i"][k], cols["j"][k]
        exact[where], distance[where] = cols["exact"][k], cols["distance"][k]
        similarity[where], residual[where] = cols["similarity"][k], cols["residual"][k]
        transform[where], offset[where] = cols["transform"][k], cols["offset"][k]
        group[where] = ids[a][cols["i"][k]]
        la, lb = report.labels.get(a), report.labels.get(b)
        values_a = [label_value(v) for v in la[i[where]]] if la is not None else None
        values_b = [label_value(v) for v in lb[j[where]]] if lb is not None else None
        differ = (labels_differ(la[i[where]], lb[j[where]]).tolist()
                  if la is not None and lb is not None else None)
        for t, w in enumerate(where.tolist()):
            names_a[w], names_b[w] = a, b
            if values_a is not None:
                label_a[w] = values_a[t]
            if values_b is not None:
                label_b[w] = values_b[t]
            if differ is not None and label_a[w] is not None and label_b[w] is not None:
                conflict[w] = differ[t]
    columns = {
        "section": itertools.repeat(section.key, n), "a": names_a, "i": i.tolist(),
        "b": names_b, "j": j.tolist(), "exact": exact.tolist(), "distance": distance.tolist(),
        "similarity": [None if v != v else round(v, 4) for v in similarity.tolist()],
        "residual": [None if v != v else round(v, 3) for v in residual.tolist()],
        "transform": [TRANSFORMS[t] for t in transform.tolist()],
        "offset": offset.tolist(),
        "group": [g if g >= 0 else None for g in group.tolist()],
        "path_a": itertools.repeat(None, n), "path_b": itertools.repeat(None, n),
        "label_a": label_a, "label_b": label_b, "conflict": conflict,
    }
    for values in zip(*(columns[c] for c in PAIR_COLUMNS)):
        yield dict(zip(PAIR_COLUMNS, values))


#: the fields of one row of the "groups" section
GROUP_COLUMNS = (
    "group",       # id, as in the pairs' "group" column; 0 is the largest group
    "size",        # images in the group
    "members",     # per split, how many of its images it holds
    "exact",       # every link is an exact copy: a group of identical images
    "widest",      # the lowest similarity among its links (null if one was not verified)
    "first",       # [split, index] of its first image
    "indices",     # per split, its images' indices (only for groups of up to 1,000 images)
)

#: groups larger than this list their members' counts, not every index
MAX_LISTED_MEMBERS = 1000
#: groups of more images than this are described once each in the text summary and the HTML
#: page (with a few thumbnails): the clusters a user should know of before the pairs
BIG_GROUP = 10


def group_rows(report) -> Iterator[dict]:
    """One row (a dict of GROUP_COLUMNS) per duplicate group, largest first."""
    index = report.group_index()
    names = list(report.splits)
    listed = {n: None for n in names}
    small = np.flatnonzero(index.sizes <= MAX_LISTED_MEMBERS)
    if small.size:
        listed = {}
        for n in names:
            ids = index.ids[n]
            where = np.flatnonzero(np.isin(ids, small))
            order = where[np.argsort(ids[where], kind="stable")]
            listed[n] = (ids[order], order)
    for g in range(index.count):
        row = {
            "group": g, "size": int(index.sizes[g]),
            "members": {n: int(index.per_split[n][g]) for n in names
                        if index.per_split[n][g]},
            "exact": bool(index.exact[g]), "widest": _number(index.widest[g], 4),
            "first": list(index.first[g]), "indices": None,
        }
        if index.sizes[g] <= MAX_LISTED_MEMBERS:
            row["indices"] = {}
            for n in names:
                gids, order = listed[n]
                lo, hi = np.searchsorted(gids, [g, g + 1])
                if hi > lo:
                    row["indices"][n] = order[lo:hi].tolist()
        yield row


def describe_group(report, row: dict) -> str:
    """A group in words: "group of 50,000 identical images (train 49,990, test 10)"."""
    kind = "identical images" if row["exact"] else "near copies"
    where = ", ".join(f"{n} {c:,}" for n, c in row["members"].items())
    text = f"group of {row['size']:,} {kind} ({where})"
    if not row["exact"] and row["widest"] is not None:
        text += f", widest pair similarity {row['widest']:.2f}"
    return text


def _number(value, digits: int) -> float | None:
    # NaN (not verified) is null: strict JSON has no NaN
    value = float(value)
    return None if value != value else round(value, digits)


def all_rows(report) -> Iterator[dict]:
    """Every pair's row, in display order."""
    for section in sections(report):
        yield from pair_rows(report, section)


def csv_cell(value) -> str:
    """The CSV text of one value: booleans ``true``/``false`` (as in JSON), null empty, a list
    label as its JSON text, anything else as ``str``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def describe_mode(report) -> str:
    """One line saying what the scan looked for, truthfully."""
    if report.exact and not report.near:
        return "exact duplicates only (byte-identical images)"
    near = f"near duplicates up to phash distance {report.threshold} (64-bit Hamming)"
    if getattr(report, "verify", False):
        near += f", confirmed on pixels at similarity >= {report.min_similarity:g}"
    else:
        near += ", not confirmed on pixels (verify off)"
    extras = [what for what, on in (("flips and rotations", report.invariant == "dihedral"),
                                    (f"shifts up to {report.shifts} px", report.shifts))
              if on]
    if extras:
        near += f", with {' and '.join(extras)}"
    return f"exact duplicates and {near}" if report.exact else near
