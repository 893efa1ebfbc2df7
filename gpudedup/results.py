"""Results: Overlaps (pairs of one search), Report (a whole scan), groups and label conflicts."""

from __future__ import annotations

import csv
import io
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from numba import njit

from ._version import __version__
from .errors import InputError, MissingDependencyError
from .fileio import write_text
from .labels import conflict_mask, label_value  # noqa: F401 - the public home of both
from .schema import PAIR_COLUMNS, SCHEMA_VERSION, all_rows, csv_cell, describe_mode


class Overlaps:
    """Index pairs found between two image sets, or inside one (then ``left < right``).

    Attributes
    ----------
    pairs : ndarray of int64, shape (k, 2)
        Rows ``(i, j)``, sorted lexicographically.
    left, right : ndarray of int64, shape (k,)
        The two columns of ``pairs``.
    distance : ndarray of uint8, shape (k,)
        Hamming distance of the two perceptual hashes (of the variant that matched, see
        ``transform`` and ``offset``).
    exact : ndarray of bool, shape (k,)
        Whether the two images are byte-identical (verified, not only digest-equal).
    similarity : ndarray of float32, shape (k,)
        Pixel similarity in [0, 1], ``max(0, 1 - residual / 32)``: 1.0 for exact copies, NaN
        where the pair was not verified (see ``unverified``).
    residual : ndarray of float64, shape (k,)
        The verification residual in grey levels of the pair's range mapped to 0-255
        (``gpudedup.verify``); 0 for exact copies, NaN where not verified.
    shift : ndarray of int8, shape (k, 2)
        The pixel shift ``(dy, dx)`` at which the pair matched best.
    transform : ndarray of uint8, shape (k,)
        The flip or rotation that matched (codes of ``gpudedup.transforms.TRANSFORMS``; 0, the
        identity, unless ``invariant="dihedral"``): ``a[i]`` is a copy of ``T(b[j])``.
    offset : ndarray of int8, shape (k, 2)
        The shift ``(dy, dx)`` of the candidate hash variant that matched (``shifts=``).
    verified : ndarray of bool, shape (k,)
        Whether the pair was confirmed on the pixels (byte comparison or pixel score).
    threshold : int
        The largest distance searched for.
    self_join : bool
        True when the pairs lie inside one image set.
    unverified : str or None
        Why near pairs were reported without a pixel check (None: they were checked, or
        verification was turned off).
    """

    def __init__(self, left, right, distance, exact, *, threshold: int, self_join: bool,
                 similarity=None, residual=None, shift=None, transform=None, offset=None,
                 verified=None, unverified: str | None = None):
        self.left = np.ascontiguousarray(left, dtype=np.int64)
        self.right = np.ascontiguousarray(right, dtype=np.int64)
        self.distance = np.ascontiguousarray(distance, dtype=np.uint8)
        self.exact = np.ascontiguousarray(exact, dtype=bool)
        count = self.left.size
        self.similarity = np.ascontiguousarray(
            np.where(self.exact, 1.0, np.nan) if similarity is None else similarity,
            dtype=np.float32)
        self.residual = np.ascontiguousarray(
            np.where(self.exact, 0.0, np.nan) if residual is None else residual,
            dtype=np.float64)
        self.shift = np.ascontiguousarray(np.zeros((count, 2)) if shift is None else shift,
                                          dtype=np.int8).reshape(count, 2)
        self.transform = np.ascontiguousarray(np.zeros(count) if transform is None
                                              else transform, dtype=np.uint8)
        self.offset = np.ascontiguousarray(np.zeros((count, 2)) if offset is None else offset,
                                           dtype=np.int8).reshape(count, 2)
        self.verified = np.ascontiguousarray(self.exact if verified is None else verified,
                                             dtype=bool)
        self.threshold = int(threshold)
        self.self_join = bool(self_join)
        self.unverified = unverified

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

    def to_pandas(self):
        """The pairs as a pandas DataFrame (needs pandas): columns left, right, distance,
        exact, similarity, residual, transform (its name), verified.

        Examples
        --------
        >>> import numpy as np, gpudedup as gd
        >>> x = np.zeros((3, 8, 8), np.uint8)
        >>> gd.find_overlaps(x).to_pandas().shape
        (3, 8)
        """
        from .transforms import name_of

        return _pandas().DataFrame({"left": self.left, "right": self.right,
                                    "distance": self.distance, "exact": self.exact,
                                    "similarity": self.similarity, "residual": self.residual,
                                    "transform": name_of(self.transform),
                                    "verified": self.verified})

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
        then by first index. Only for pairs found inside one set.

        Examples
        --------
        >>> import numpy as np, gpudedup as gd
        >>> x = np.random.default_rng(0).integers(0, 256, (6, 16, 16), dtype=np.uint8)
        >>> x[4] = x[1]; x[5] = x[1]
        >>> [g.tolist() for g in gd.find_overlaps(x).groups()]
        [[1, 4, 5]]
        """
        if not self.self_join:
            raise InputError("groups() needs the pairs of one set (find_overlaps(a))")
        size = int(max(self.left.max(initial=-1), self.right.max(initial=-1))) + 1
        labels = connected_components(size, self.left, self.right)
        return _groups_from_labels(labels, np.union1d(self.left, self.right))


def _confirmed(ov: Overlaps, min_similarity: float | None) -> Overlaps:
    # the pairs a clean may act on: exact, or verified on pixels at min_similarity or more
    if min_similarity is None:
        return ov
    keep = ov.exact | (ov.verified & (ov.similarity >= np.float32(min_similarity)))
    if keep.all():
        return ov
    return Overlaps(ov.left[keep], ov.right[keep], ov.distance[keep], ov.exact[keep],
                    threshold=ov.threshold, self_join=ov.self_join,
                    similarity=ov.similarity[keep], residual=ov.residual[keep],
                    shift=ov.shift[keep], transform=ov.transform[keep],
                    offset=ov.offset[keep], verified=ov.verified[keep],
                    unverified=ov.unverified)


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
        The largest phash distance of a near pair (unused when ``near`` is False).
    sources : dict of str to ImageSource or None
        The images of each split, for thumbnails in the HTML report (None: hashes only).
    exact, near : bool
        What the scan looked for: exact (byte-identical) pairs, near pairs, or both.
    verify : bool
        Whether pairs were confirmed on the pixels.
    min_similarity : float
        The lowest similarity of a reported near pair.
    invariant : str or None
        "dihedral" when flips and rotations were searched for.
    shifts : int
        Largest shift of the candidate hashes of shifted variants.
    """

    splits: dict[str, SplitInfo]
    overlaps: dict[tuple[str, str], Overlaps]
    duplicates: dict[str, Overlaps]
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    threshold: int = 0
    sources: dict[str, object] = field(default_factory=dict, repr=False)
    exact: bool = True
    near: bool = True
    verify: bool = True
    min_similarity: float = 0.0
    invariant: str | None = None
    shifts: int = 0

    def _all_pairs(self, min_similarity: float | None = None
                   ) -> Iterator[tuple[str, str, Overlaps]]:
        for name, ov in self.duplicates.items():
            yield name, name, _confirmed(ov, min_similarity)
        for (a, b), ov in self.overlaps.items():
            yield a, b, _confirmed(ov, min_similarity)

    @property
    def conflicts(self) -> list[Conflict]:
        """Pairs (inside a split or between two) whose labels differ; both sides need labels.
        (``conflicts_at(min_similarity)``: only among confirmed pairs.)

        Examples
        --------
        >>> import numpy as np, gpudedup as gd
        >>> x = np.zeros((2, 8, 8), np.uint8)
        >>> gd.scan({"train": x}, labels={"train": ["cat", "dog"]}).conflicts[0][:4]
        ('train', 0, 'train', 1)
        """
        return self.conflicts_at(None)

    def conflicts_at(self, min_similarity: float | None) -> list[Conflict]:
        """:attr:`conflicts` among the pairs ``groups(min_similarity)`` links."""
        out = []
        for a, b, ov in self._all_pairs(min_similarity):
            la, lb = self.labels.get(a), self.labels.get(b)
            for k in np.flatnonzero(conflict_mask(self.labels, a, b, ov)).tolist():
                i, j = int(ov.left[k]), int(ov.right[k])
                out.append(Conflict(a, i, b, j, label_value(la[i]), label_value(lb[j]),
                                    int(ov.distance[k]), bool(ov.exact[k])))
        return out

    def groups(self, min_similarity: float | None = None) -> list[list[tuple[str, int]]]:
        """Groups of images linked by any pair (inside or across splits), by union-find.

        Each group is a list of ``(split, index)`` in split order then index order; groups come
        largest first. With ``min_similarity``, only confirmed pairs link images: exact ones
        and near ones verified on pixels at that similarity or more (what ``clean`` acts on).

        Examples
        --------
        >>> import numpy as np, gpudedup as gd
        >>> x = np.random.default_rng(0).integers(0, 256, (4, 16, 16), dtype=np.uint8)
        >>> gd.scan({"train": x, "test": x[[2, 2]]}).groups()
        [[('train', 2), ('test', 0), ('test', 1)]]
        """
        names = list(self.splits)
        offsets = np.cumsum([0] + [self.splits[n].count for n in names])
        base = {n: int(offsets[k]) for k, n in enumerate(names)}
        lefts, rights = [], []
        for a, b, ov in self._all_pairs(min_similarity):
            lefts.append(ov.left + base[a])
            rights.append(ov.right + base[b])
        left = np.concatenate(lefts) if lefts else np.empty(0, np.int64)
        right = np.concatenate(rights) if rights else np.empty(0, np.int64)
        labels = connected_components(int(offsets[-1]), left, right)
        groups = _groups_from_labels(labels, np.union1d(left, right))
        split_of = np.searchsorted(offsets, np.arange(int(offsets[-1])), side="right") - 1
        return [[(names[split_of[g]], int(g - offsets[split_of[g]])) for g in grp.tolist()]
                for grp in groups]

    @property
    def mode(self) -> str:
        """What the scan looked for: ``"exact+near"`` or ``"exact"`` (or ``"near"``)."""
        return "+".join(m for m, on in (("exact", self.exact), ("near", self.near)) if on)

    def verification(self) -> dict:
        """How pairs were confirmed: ``verified`` (pixel check on), ``min_similarity``, and
        ``unverified``, a list of ``{"a", "b", "pairs", "reason"}`` for every search whose
        near pairs could not be checked on pixels (reported with similarity null)."""
        skipped = [{"a": a, "b": b, "pairs": int((~ov.verified & ~ov.exact).sum()),
                    "reason": ov.unverified}
                   for a, b, ov in self._all_pairs() if ov.unverified]
        return {"verified": self.verify,
                "min_similarity": self.min_similarity if self.verify and self.near else None,
                "invariant": self.invariant, "shifts": self.shifts, "unverified": skipped}

    def summary(self) -> dict:
        """Counts per split, per pair of splits, and of label conflicts.

        ``leaks`` counts, per pair of splits, the pairs and the distinct images of each side
        that have a copy in the other (the number a user wants first: how many test images
        have a copy in train). ``conflicts`` is None when no split has labels.

        Examples
        --------
        >>> import numpy as np, gpudedup as gd
        >>> x = np.random.default_rng(0).integers(0, 256, (4, 16, 16), dtype=np.uint8)
        >>> leak = gd.scan({"train": x, "test": x[[2, 2]]}).summary()["leaks"][0]
        >>> leak["pairs"], leak["a_images"], leak["b_images"]
        (2, 1, 2)
        """
        splits = {}
        for name, info in self.splits.items():
            ov = self.duplicates.get(name)
            splits[name] = {
                "count": info.count,
                "duplicate_pairs": len(ov) if ov is not None else 0,
                "exact_duplicate_pairs": int(ov.exact.sum()) if ov is not None else 0,
                "images_in_duplicate_groups": int(np.union1d(ov.left, ov.right).size)
                if ov is not None else 0,
                "labels": name in self.labels,
            }
        leaks = [
            {"a": a, "b": b, "pairs": len(ov), "exact_pairs": int(ov.exact.sum()),
             "a_images": int(ov.images_left.size), "b_images": int(ov.images_right.size)}
            for (a, b), ov in self.overlaps.items()
        ]
        return {
            "mode": self.mode,
            "threshold": self.threshold if self.near else None,
            "verification": self.verification(),
            "splits": splits,
            "leaks": leaks,
            "groups": len(self.groups()),
            "conflicts": len(self.conflicts) if self.labels else None,
        }

    def to_dict(self) -> dict:
        """The report as a JSON-ready dict (the schema of ``to_json``, README "Reports").

        Examples
        --------
        >>> import numpy as np, gpudedup as gd
        >>> x = np.random.default_rng(0).integers(0, 256, (4, 16, 16), dtype=np.uint8)
        >>> rep = gd.scan({"train": x, "test": x[:1]})
        >>> d = rep.to_dict()
        >>> d["schema_version"], d["pairs"][0]["section"], d["pairs"][0]["exact"]
        (2, 'exact_leak', True)
        """
        return {
            "schema_version": SCHEMA_VERSION,
            "version": __version__,
            "mode": self.mode,
            "threshold": self.threshold if self.near else None,
            "splits": {name: {"source": info.source, "count": info.count,
                              "shape": list(info.shape), "dtype": info.dtype,
                              "labels": name in self.labels}
                       for name, info in self.splits.items()},
            "pairs": list(all_rows(self)),
            "summary": self.summary(),
        }

    def to_json(self, path=None) -> str:
        """The report as strict JSON (no NaN); written to ``path`` if given.

        Examples
        --------
        >>> import json, numpy as np, gpudedup as gd
        >>> x = np.zeros((2, 8, 8), np.uint8)
        >>> json.loads(gd.scan({"train": x}).to_json())["summary"]["splits"]["train"]["count"]
        2
        """
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False)
        if path is not None:
            write_text_atomic(path, text)
        return text

    def to_csv(self, path=None) -> str:
        """Every pair as CSV with the columns of ``gpudedup.schema.PAIR_COLUMNS`` (booleans
        ``true``/``false``, null as an empty cell); written to ``path`` if given.

        Examples
        --------
        >>> import numpy as np, gpudedup as gd
        >>> x = np.zeros((2, 8, 8), np.uint8)
        >>> print(gd.scan({"train": x}).to_csv().splitlines()[1])
        exact_duplicate,train,0,train,1,true,0,1.0,0.0,identity,"[0,0]",,,,,,
        """
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(PAIR_COLUMNS)
        for row in all_rows(self):
            writer.writerow([csv_cell(row[c]) for c in PAIR_COLUMNS])
        text = buffer.getvalue()
        if path is not None:
            write_text_atomic(path, text)
        return text

    def to_pandas(self):
        """Every pair as a pandas DataFrame with the columns of the CSV (needs pandas).

        Examples
        --------
        >>> import numpy as np, gpudedup as gd
        >>> x = np.zeros((3, 8, 8), np.uint8)
        >>> df = gd.scan({"train": x}).to_pandas()
        >>> len(df), bool(df["exact"].all())
        (3, True)
        """
        pandas = _pandas()
        return pandas.DataFrame(list(all_rows(self)), columns=list(PAIR_COLUMNS))

    def to_html(self, path=None, *, max_rows: int = 100, max_pairs: int | None = None) -> str:
        """A self-contained HTML page: the summary, then each section's pairs side by side
        (exact leaks, near leaks, exact duplicates, near duplicates; label conflicts marked),
        at most ``max_rows`` pairs per section, saying what was left out; written to ``path``
        if given. ``max_pairs`` is a deprecated alias of ``max_rows``.

        Examples
        --------
        >>> import numpy as np, gpudedup as gd
        >>> x = np.zeros((2, 8, 8), np.uint8)
        >>> gd.scan({"train": x}).to_html().startswith("<!DOCTYPE html>")
        True
        """
        from .report_html import render_html

        if max_pairs is not None:
            warnings.warn("to_html(max_pairs=...) is deprecated; use max_rows (a cap per "
                          "section)", DeprecationWarning, stacklevel=2)
            max_rows = max_pairs
        text = render_html(self, max_rows=max_rows)
        if path is not None:
            write_text_atomic(path, text)
        return text

    def __str__(self) -> str:
        return format_summary(self)

    def __repr__(self) -> str:
        counts = ", ".join(f"{n}={info.count}" for n, info in self.splits.items())
        leaks = sum(len(ov) for ov in self.overlaps.values())
        dups = sum(len(ov) for ov in self.duplicates.values())
        return (f"<gpudedup.Report {self.mode} splits({counts}): {leaks} leak pairs, "
                f"{dups} duplicate pairs>")

    def _repr_html_(self) -> str:
        # what a notebook cell shows: the summary and the first pairs of each section
        from .report_html import render_fragment

        return render_fragment(self, max_rows=5)


def _pandas():
    try:
        import pandas
    except ImportError:
        raise MissingDependencyError("to_pandas needs pandas: pip install pandas (or "
                                     "'gpudedup[report]')") from None
    return pandas


def write_text_atomic(path, text: str) -> None:
    """Write ``text`` to ``path`` as :func:`gpudedup.fileio.write_text` does: ``-`` is standard
    output, a symlink's target is written, a FIFO or device is streamed into, any other path is
    written under a temporary name and renamed into place."""
    write_text(path, text)


def format_summary(report: Report) -> str:
    """A short plain-text table of a report: leaks first (how many images of each split have a
    copy in the other), then duplicates inside each split, then label conflicts."""
    summary = report.summary()
    lines = [f"looked for: {describe_mode(report)}"]
    for row in summary["verification"]["unverified"]:
        where = row["a"] if row["a"] == row["b"] else f"{row['a']} <-> {row['b']}"
        lines.append(f"NOT VERIFIED on pixels ({where}, {row['pairs']} near pairs): "
                     f"{row['reason']}")
    if summary["leaks"]:
        lines.append("")
        lines.append(f"{'leaks':<22}{'pairs':>9}{'exact':>9}  images with a copy in the other")
        for row in summary["leaks"]:
            key = f"{row['a']} <-> {row['b']}"
            lines.append(f"{key:<22}{row['pairs']:>9}{row['exact_pairs']:>9}  "
                         f"{row['a']} {row['a_images']}, {row['b']} {row['b_images']}")
    lines.append("")
    lines.append(f"{'split':<12}{'images':>10}{'dup pairs':>12}{'exact':>9}{'in groups':>11}")
    for name, row in summary["splits"].items():
        lines.append(f"{name:<12}{row['count']:>10}{row['duplicate_pairs']:>12}"
                     f"{row['exact_duplicate_pairs']:>9}{row['images_in_duplicate_groups']:>11}")
    lines.append("")
    conflicts = ("no labels" if summary["conflicts"] is None
                 else f"label conflicts: {summary['conflicts']}")
    lines.append(f"duplicate groups: {summary['groups']}    {conflicts}")
    return "\n".join(lines)
