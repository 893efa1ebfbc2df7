"""Results: Overlaps (pairs of one search), Report (a whole scan), groups and label conflicts."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from numba import njit

from ._version import __version__
from .errors import InputError
from .fileio import atomic_path


class Overlaps:
    """Index pairs found between two image sets, or inside one (then ``left < right``).

    Attributes
    ----------
    pairs : ndarray of int64, shape (k, 2)
        Rows ``(i, j)``, sorted lexicographically.
    left, right : ndarray of int64, shape (k,)
        The two columns of ``pairs``.
    distance : ndarray of uint8, shape (k,)
        Hamming distance of the two perceptual hashes.
    exact : ndarray of bool, shape (k,)
        Whether the two images are byte-identical (verified, not only digest-equal).
    threshold : int
        The largest distance searched for.
    self_join : bool
        True when the pairs lie inside one image set.
    """

    def __init__(self, left, right, distance, exact, *, threshold: int, self_join: bool):
        self.left = np.ascontiguousarray(left, dtype=np.int64)
        self.right = np.ascontiguousarray(right, dtype=np.int64)
        self.distance = np.ascontiguousarray(distance, dtype=np.uint8)
        self.exact = np.ascontiguousarray(exact, dtype=bool)
        self.threshold = int(threshold)
        self.self_join = bool(self_join)

    @property
    def pairs(self) -> np.ndarray:
        return np.column_stack([self.left, self.right]) if self.left.size else np.empty(
            (0, 2), dtype=np.int64)

    def __len__(self) -> int:
        return int(self.left.size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return zip(self.left.tolist(), self.right.tolist())

    def __repr__(self) -> str:
        kind = "inside one set" if self.self_join else "between two sets"
        return (f"Overlaps({len(self)} pairs {kind}, {int(self.exact.sum())} exact, "
                f"threshold={self.threshold})")

    @property
    def images_left(self) -> np.ndarray:
        """Distinct left indices that have a partner."""
        return np.unique(self.left)

    @property
    def images_right(self) -> np.ndarray:
        """Distinct right indices that have a partner."""
        return np.unique(self.right)

    def groups(self) -> list[np.ndarray]:
        """Connected groups of a self-join (images linked by pairs), each sorted, largest first
        then by first index. Only for pairs found inside one set."""
        if not self.self_join:
            raise InputError("groups() needs the pairs of one set (find_overlaps(a))")
        size = int(max(self.left.max(initial=-1), self.right.max(initial=-1))) + 1
        labels = connected_components(size, self.left, self.right)
        return _groups_from_labels(labels, np.union1d(self.left, self.right))


def connected_components(size: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Union-find over ``size`` nodes joined by edges (left[k], right[k]); returns each
    node's root (the smallest node of its component)."""
    parent = np.arange(size, dtype=np.int64)
    _union_all(parent, np.ascontiguousarray(left, dtype=np.int64),
               np.ascontiguousarray(right, dtype=np.int64))
    return parent


@njit(cache=True)
def _find(parent, x):
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:  # path compression
        parent[x], x = root, parent[x]
    return root


@njit(cache=True)
def _union_all(parent, left, right):
    for k in range(left.shape[0]):
        ra = _find(parent, left[k])
        rb = _find(parent, right[k])
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    for x in range(parent.shape[0]):
        parent[x] = _find(parent, x)


def _groups_from_labels(labels: np.ndarray, members: np.ndarray) -> list[np.ndarray]:
    if members.size == 0:
        return []
    roots = labels[members]
    order = np.lexsort((members, roots))
    members, roots = members[order], roots[order]
    cuts = np.flatnonzero(np.diff(roots)) + 1
    groups = [g for g in np.split(members, cuts) if g.size > 1]
    groups.sort(key=lambda g: (-g.size, int(g[0])))
    return groups


class Conflict(NamedTuple):
    """A pair whose two images carry different labels."""

    a: str
    i: int
    b: str
    j: int
    label_a: object
    label_b: object
    distance: int
    exact: bool


@dataclass
class SplitInfo:
    """What a scan knows of one split."""

    source: str
    count: int
    shape: tuple
    dtype: str


def label_value(value):
    """A label as a plain Python value (for JSON, CSV and HTML)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value.item() if isinstance(value, np.generic) else value


def conflict_mask(labels: dict, a: str, b: str, ov: Overlaps) -> np.ndarray:
    """Which pairs of ``ov`` (split ``a`` x split ``b``) join images with different labels;
    False everywhere unless both splits have labels. Labels may be rows (one-hot, multi-label):
    they differ when any element does."""
    la, lb = labels.get(a), labels.get(b)
    if la is None or lb is None or not len(ov):
        return np.zeros(len(ov), dtype=bool)
    differ = np.asarray(la[ov.left] != lb[ov.right])
    if differ.ndim > 1:
        differ = differ.reshape(differ.shape[0], -1).any(axis=1)
    return differ


@dataclass
class Report:
    """Everything one :func:`gpudedup.scan` found.

    Attributes
    ----------
    splits : dict of str to SplitInfo
    overlaps : dict of (str, str) to Overlaps
        Pairs between two splits, for every ordered pair ``a < b`` in mapping order.
    duplicates : dict of str to Overlaps
        Pairs inside each split.
    labels : dict of str to ndarray
        The labels given for each split (only those given).
    threshold : int
    sources : dict of str to ImageSource or None
        The images of each split, for thumbnails in the HTML report (None: hashes only).
    """

    splits: dict[str, SplitInfo]
    overlaps: dict[tuple[str, str], Overlaps]
    duplicates: dict[str, Overlaps]
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    threshold: int = 0
    sources: dict[str, object] = field(default_factory=dict, repr=False)

    def _all_pairs(self) -> Iterator[tuple[str, str, Overlaps]]:
        for name, ov in self.duplicates.items():
            yield name, name, ov
        for (a, b), ov in self.overlaps.items():
            yield a, b, ov

    @property
    def conflicts(self) -> list[Conflict]:
        """Pairs (inside a split or between two) whose labels differ; both sides need labels."""
        out = []
        for a, b, ov in self._all_pairs():
            la, lb = self.labels.get(a), self.labels.get(b)
            for k in np.flatnonzero(conflict_mask(self.labels, a, b, ov)).tolist():
                i, j = int(ov.left[k]), int(ov.right[k])
                out.append(Conflict(a, i, b, j, label_value(la[i]), label_value(lb[j]),
                                    int(ov.distance[k]), bool(ov.exact[k])))
        return out

    def groups(self) -> list[list[tuple[str, int]]]:
        """Groups of images linked by any pair (inside or across splits), by union-find.

        Each group is a list of ``(split, index)`` in split order then index order; groups come
        largest first.
        """
        names = list(self.splits)
        offsets = np.cumsum([0] + [self.splits[n].count for n in names])
        base = {n: int(offsets[k]) for k, n in enumerate(names)}
        lefts, rights = [], []
        for a, b, ov in self._all_pairs():
            lefts.append(ov.left + base[a])
            rights.append(ov.right + base[b])
        left = np.concatenate(lefts) if lefts else np.empty(0, np.int64)
        right = np.concatenate(rights) if rights else np.empty(0, np.int64)
        labels = connected_components(int(offsets[-1]), left, right)
        groups = _groups_from_labels(labels, np.union1d(left, right))
        split_of = np.searchsorted(offsets, np.arange(int(offsets[-1])), side="right") - 1
        return [[(names[split_of[g]], int(g - offsets[split_of[g]])) for g in grp.tolist()]
                for grp in groups]

    def summary(self) -> dict:
        """Counts per split, per pair of splits, and of label conflicts."""
        conflicts = self.conflicts
        splits = {}
        for name, info in self.splits.items():
            ov = self.duplicates.get(name)
            splits[name] = {
                "count": info.count,
                "duplicate_pairs": len(ov) if ov is not None else 0,
                "exact_duplicate_pairs": int(ov.exact.sum()) if ov is not None else 0,
                "images_in_duplicate_groups": int(np.union1d(ov.left, ov.right).size)
                if ov is not None else 0,
            }
        leaks = [
            {"a": a, "b": b, "pairs": len(ov), "exact_pairs": int(ov.exact.sum()),
             "a_images": int(ov.images_left.size), "b_images": int(ov.images_right.size)}
            for (a, b), ov in self.overlaps.items()
        ]
        return {
            "threshold": self.threshold,
            "splits": splits,
            "leaks": leaks,
            "groups": len(self.groups()),
            "conflicts": len(conflicts),
        }

    def to_dict(self) -> dict:
        """The report as a JSON-ready dict (the schema of ``to_json``)."""
        pairs = []
        for a, b, ov in self._all_pairs():
            la = self.labels.get(a)
            lb = self.labels.get(b)
            conflict = conflict_mask(self.labels, a, b, ov).tolist()
            for k in range(len(ov)):
                i, j = int(ov.left[k]), int(ov.right[k])
                row = {"a": a, "i": i, "b": b, "j": j, "distance": int(ov.distance[k]),
                       "exact": bool(ov.exact[k])}
                if la is not None and lb is not None:
                    row["labels"] = [label_value(la[i]), label_value(lb[j])]
                    row["conflict"] = conflict[k]
                pairs.append(row)
        return {
            "version": __version__,
            "threshold": self.threshold,
            "splits": {name: {"source": info.source, "count": info.count,
                              "shape": list(info.shape), "dtype": info.dtype}
                       for name, info in self.splits.items()},
            "pairs": pairs,
            "summary": self.summary(),
        }

    def to_json(self, path=None) -> str:
        """The report as JSON; written to ``path`` (temporary name, then renamed) if given."""
        text = json.dumps(self.to_dict(), indent=1)
        if path is not None:
            write_text_atomic(path, text)
        return text

    def to_csv(self, path=None) -> str:
        """Every pair as CSV (a, i, b, j, distance, exact, label_a, label_b, conflict); written
        to ``path`` (temporary name, then renamed) if given."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["a", "i", "b", "j", "distance", "exact", "label_a", "label_b",
                         "conflict"])
        for row in self.to_dict()["pairs"]:
            labels = row.get("labels", ["", ""])
            writer.writerow([row["a"], row["i"], row["b"], row["j"], row["distance"],
                             int(row["exact"]), labels[0], labels[1],
                             int(row["conflict"]) if "conflict" in row else ""])
        text = buffer.getvalue()
        if path is not None:
            write_text_atomic(path, text)
        return text

    def to_html(self, path=None, *, max_pairs: int = 500) -> str:
        """A self-contained HTML page showing each pair side by side (label conflicts first),
        with inline PNG thumbnails; written to ``path`` if given. At most ``max_pairs`` pairs
        are shown, with a note saying how many were left out."""
        from .report_html import render_html

        text = render_html(self, max_pairs=max_pairs)
        if path is not None:
            write_text_atomic(path, text)
        return text

    def __str__(self) -> str:
        return format_summary(self)


def write_text_atomic(path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)


def format_summary(report: Report) -> str:
    """A short plain-text table of a report."""
    summary = report.summary()
    lines = [f"threshold {summary['threshold']} (Hamming distance of 64-bit phashes)", ""]
    lines.append(f"{'split':<12}{'images':>10}{'dup pairs':>12}{'exact':>8}{'in groups':>11}")
    for name, row in summary["splits"].items():
        lines.append(f"{name:<12}{row['count']:>10}{row['duplicate_pairs']:>12}"
                     f"{row['exact_duplicate_pairs']:>8}{row['images_in_duplicate_groups']:>11}")
    if summary["leaks"]:
        lines.append("")
        lines.append(f"{'leak':<20}{'pairs':>8}{'exact':>8}  images (first / second split)")
        for row in summary["leaks"]:
            key = f"{row['a']} -> {row['b']}"
            lines.append(f"{key:<20}{row['pairs']:>8}{row['exact_pairs']:>8}  "
                         f"{row['a_images']} / {row['b_images']}")
    lines.append("")
    lines.append(f"duplicate groups: {summary['groups']}    label conflicts: "
                 f"{summary['conflicts']}")
    return "\n".join(lines)
