"""The report schema, defined once: the columns of a pair, their encodings, and the display order.

JSON (``Report.to_json``), CSV (``Report.to_csv``), pandas (``Report.to_pandas``) and the HTML page
all take their rows from :func:`pair_rows`, so they cannot drift apart. Columns that later work
fills (group, file paths) are named now and are ``None`` (JSON ``null``, an empty CSV cell)
until filled; ``similarity`` and ``residual`` are null for pairs that were not verified. A
change to the columns or their meaning bumps ``SCHEMA_VERSION``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .labels import conflict_mask, label_value
from .transforms import TRANSFORMS

SCHEMA_VERSION = 2

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
    "group",       # id of the duplicate group; null until groups fill it
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
    """Every pair of ``report``, split into SECTIONS and put in display order.

    Exact pairs come in split-pair order, then by ``(i, j)``; near pairs most similar first
    (unverified ones last), then by distance, split-pair order and ``(i, j)``.
    """
    leaks = [(a, b, ov) for (a, b), ov in report.overlaps.items()]
    dups = [(n, n, ov) for n, ov in report.duplicates.items()]
    out = []
    for kind, parts in (("leak", leaks), ("duplicate", dups)):
        for exact in (True, False):
            keys = []
            for p, (_, _, ov) in enumerate(parts):
                index = np.flatnonzero(ov.exact == exact)
                dist = np.zeros(index.size, np.int64) if exact else ov.distance[index]
                # dissimilarity in millionths, NaN (unverified) after every verified pair
                unlike = np.nan_to_num(1.0 - ov.similarity[index].astype(np.float64), nan=2.0)
                keys.append(np.column_stack([
                    np.rint(unlike * 1e6).astype(np.int64),
                    dist.astype(np.int64), np.full(index.size, p, np.int64),
                    ov.left[index], ov.right[index], index]))
            table = np.concatenate(keys) if keys else np.empty((0, 6), np.int64)
            order = np.lexsort(tuple(table[:, c] for c in (4, 3, 2, 1, 0)))
            key = f"{'exact' if exact else 'near'}_{kind}"
            out.append(Section(key, SECTIONS[key], parts, table[order][:, [2, 5]]))
    return out


def pair_rows(report, section: Section, limit: int | None = None) -> Iterator[dict]:
    """The rows (dicts of PAIR_COLUMNS) of the first ``limit`` pairs of ``section``."""
    conflicts = [None] * len(section.parts)
    for p, k in section.order[:limit].tolist():
        a, b, ov = section.parts[p]
        if conflicts[p] is None:
            conflicts[p] = conflict_mask(report.labels, a, b, ov)
        la, lb = report.labels.get(a), report.labels.get(b)
        i, j = int(ov.left[k]), int(ov.right[k])
        label_a = label_value(la[i]) if la is not None else None
        label_b = label_value(lb[j]) if lb is not None else None
        known = label_a is not None and label_b is not None
        yield {
            "section": section.key, "a": a, "i": i, "b": b, "j": j,
            "exact": bool(ov.exact[k]), "distance": int(ov.distance[k]),
            "similarity": _number(ov.similarity[k], 4), "residual": _number(ov.residual[k], 3),
            "transform": TRANSFORMS[int(ov.transform[k])],
            "offset": [int(v) for v in ov.offset[k]], "group": None,
            "path_a": None, "path_b": None, "label_a": label_a, "label_b": label_b,
            "conflict": bool(conflicts[p][k]) if known else None,
        }


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
