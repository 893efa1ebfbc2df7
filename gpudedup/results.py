"""Results: Overlaps (pairs of one search), Report (a whole scan), groups and label conflicts."""

from __future__ import annotations

import csv
import io
import itertools
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ._version import __version__
from .errors import InputError, MissingDependencyError
from .fileio import write_text
from .groups import connected_components
from .joined import SKIP_FROM
from .labels import conflict_mask, label_value  # noqa: F401 - the public home of both
from .schema import (
    BIG_GROUP,
    PAIR_COLUMNS,
    SCHEMA_VERSION,
    all_rows,
    csv_cell,
    describe_group,
    describe_mode,
    group_rows,
)
from .search import sort_columns

#: largest number of pairs an Overlaps materialises into arrays unless its ``max_pairs`` (or
#: ``find_overlaps(max_pairs=)``) allows more: 20 million pairs are about 0.7 GB of columns
MAX_PAIRS = 20_000_000

#: the per-pair columns of an Overlaps beside left and right
PAIR_FIELDS = ("distance", "exact", "similarity", "residual", "shift", "transform", "offset",
               "verified")


class TooManyPairsError(InputError):
    """Materialising the pairs of an Overlaps would exceed its ``max_pairs``."""


class Overlaps:
    """Index pairs found between two image sets, or inside one (then ``left < right``).

    Identical images are kept as classes (each image's representative, ``rep_left`` and
    ``rep_right``) and the pairs the search found between representatives (``core``); the
    pair arrays below stand for every member of one class with every member of the other,
    and inside one set for every pair of a class, and are made only when first read
    (``len()`` and ``groups()`` never make them). More than ``max_pairs`` raises
    TooManyPairsError: a cluster of 50,000 identical images is 1.25 billion pairs.

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
    unchecked : int
        Candidate pairs (inside one set or between two) that were not scored, and are not
        among the pairs, because a near group of ``gpudedup.joined.SKIP_FROM`` or more images
        had joined their two images already (0 on data without such groups). With variant
        hashes (``invariant=``, ``shifts=``) each variant within the radius is a candidate of
        its own. The groups are the same; the pairs of such a group are the checked links that
        joined it.
    rep_left, rep_right : ndarray of int64 or None
        Each image's representative (the smallest index of its class of identical images);
        None: no two images of that side are identical.
    core : dict of str to ndarray
        The pairs between representatives (``i``, ``j`` and the per-pair columns).
    max_pairs : int
        The most pairs the arrays above are made for.
    verified_exact : bool
        Whether the members of a class were compared byte for byte with its representative.
    """

    def __init__(self, left, right, distance, exact, *, threshold: int, self_join: bool,
                 similarity=None, residual=None, shift=None, transform=None, offset=None,
                 verified=None, unverified: str | None = None, rep_left=None, rep_right=None,
                 counts: tuple[int, int] | None = None, max_pairs: int = MAX_PAIRS,
                 verified_exact: bool = True, unchecked: int = 0):
        left = np.ascontiguousarray(left, dtype=np.int64)
        exact = np.ascontiguousarray(exact, dtype=bool)
        count = left.size
        self.core = {
            "i": left, "j": np.ascontiguousarray(right, dtype=np.int64),
            "distance": np.ascontiguousarray(distance, dtype=np.uint8), "exact": exact,
            "similarity": np.ascontiguousarray(
                np.where(exact, 1.0, np.nan) if similarity is None else similarity,
                dtype=np.float32),
            "residual": np.ascontiguousarray(
                np.where(exact, 0.0, np.nan) if residual is None else residual,
                dtype=np.float64),
            "shift": np.ascontiguousarray(np.zeros((count, 2)) if shift is None else shift,
                                          dtype=np.int8).reshape(count, 2),
            "transform": np.ascontiguousarray(np.zeros(count) if transform is None
                                              else transform, dtype=np.uint8),
            "offset": np.ascontiguousarray(np.zeros((count, 2)) if offset is None else offset,
                                           dtype=np.int8).reshape(count, 2),
            "verified": np.ascontiguousarray(exact if verified is None else verified,
                                             dtype=bool),
        }
        self.rep_left = None if rep_left is None else np.asarray(rep_left, np.int64)
        self.rep_right = self.rep_left if self_join else (
            None if rep_right is None else np.asarray(rep_right, np.int64))
        if counts is None:
            top = lambda x: int(x.max()) + 1 if x.size else 0  # noqa: E731
            counts = (top(left), top(self.core["j"]))
            if self_join:
                counts = (max(counts), max(counts))
        na = self.rep_left.size if self.rep_left is not None else counts[0]
        nb = self.rep_right.size if self.rep_right is not None else counts[1]
        self.counts = (int(na), int(nb))
        self.threshold = int(threshold)
        self.self_join = bool(self_join)
        self.unverified = unverified
        self.unchecked = int(unchecked)
        self.max_pairs = int(max_pairs)
        self.verified_exact = bool(verified_exact)
        self._expanded = None
        self._links = None
        self._count = None

    @property
    def grouped(self) -> bool:
        """Whether any class holds more than one image (the pairs then come from classes)."""
        return self.rep_left is not None or self.rep_right is not None

    def _columns(self) -> dict:
        if not self.grouped:
            return self.core
        if self._expanded is None:
            if len(self) > self.max_pairs:
                largest = max(int(np.bincount(r).max()) for r in (self.rep_left, self.rep_right)
                              if r is not None)
                raise TooManyPairsError(
                    f"max_pairs: these results stand for {len(self):,} pairs (the largest class "
                    f"of identical images has {largest:,}), more than max_pairs="
                    f"{self.max_pairs:,} allows making into arrays; use len(), groups() or a "
                    "report (which list groups, not every pair), or pass a larger max_pairs")
            from .groups import expand

            self._expanded = expand(self.core, self.rep_left, self.rep_right, *self.counts,
                                    self.self_join, verified_exact=self.verified_exact)
        return self._expanded

    left = property(lambda self: self._columns()["i"], doc="Left indices (int64).")
    right = property(lambda self: self._columns()["j"], doc="Right indices (int64).")
    distance = property(lambda self: self._columns()["distance"])
    exact = property(lambda self: self._columns()["exact"])
    similarity = property(lambda self: self._columns()["similarity"])
    residual = property(lambda self: self._columns()["residual"])
    shift = property(lambda self: self._columns()["shift"])
    transform = property(lambda self: self._columns()["transform"])
    offset = property(lambda self: self._columns()["offset"])
    verified = property(lambda self: self._columns()["verified"])

    @property
    def pairs(self) -> np.ndarray:
        return np.column_stack([self.left, self.right]) if len(self) else np.empty(
            (0, 2), dtype=np.int64)

    def __len__(self) -> int:
        if self._count is None:
            from .groups import pair_count

            self._count = (int(self.core["i"].size) if not self.grouped else pair_count(
                self.self_join, self.core["i"], self.core["j"], self.rep_left,
                self.rep_right, *self.counts))
        return self._count

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return zip(self.left.tolist(), self.right.tolist())

    def __repr__(self) -> str:
        kind = "inside one set" if self.self_join else "between two sets"
        return (f"Overlaps({len(self)} pairs {kind}, {self.exact_count()} exact, "
                f"threshold={self.threshold})")

    def exact_count(self) -> int:
        """How many of the pairs are exact, without making the pairs."""
        if not self.grouped:
            return int(self.core["exact"].sum())
        from .groups import pair_count

        ex = self.core["exact"]
        return pair_count(self.self_join, self.core["i"][ex], self.core["j"][ex],
                          self.rep_left, self.rep_right, *self.counts)

    def unverified_count(self) -> int:
        """How many near pairs were not checked on pixels, without making the pairs (pairs
        inside a class are exact)."""
        from .groups import pair_count

        skip = ~self.core["verified"] & ~self.core["exact"]
        return pair_count(False, self.core["i"][skip], self.core["j"][skip], self.rep_left,
                          self.rep_right, *self.counts)

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

    def _partnered(self, side: str) -> np.ndarray:
        # the images of one side with a partner, from the classes (no pairs made): those
        # whose representative is in a pair, or inside one set shares its class
        rep = self.rep_left if side == "left" else self.rep_right
        count = self.counts[0 if side == "left" else 1]
        ends = [self.core["i"], self.core["j"]] if self.self_join else [
            self.core["i" if side == "left" else "j"]]
        has = np.zeros(count, bool)
        for e in ends:
            has[e] = True
        if rep is None:
            return np.flatnonzero(has)
        if self.self_join:
            has |= np.bincount(rep, minlength=count) > 1
        return np.flatnonzero(has[rep])

    @property
    def images_left(self) -> np.ndarray:
        """Distinct left indices that have a partner."""
        return self._partnered("left")

    @property
    def images_right(self) -> np.ndarray:
        """Distinct right indices that have a partner."""
        return self._partnered("right")

    def links(self) -> dict:
        """The pairs as links, linear in the images: the pairs between representatives, from
        each representative to every other member of its class (exact), and between two sets
        from each representative to the members of the other's class. Every pair of the
        Overlaps is a link or a chain of two links through representatives; reports list these.
        Columns as ``core``, sorted by ``(i, j)``."""
        if not self.grouped:
            return self.core
        if self._links is not None:  # reports, groups and clean all read them
            return self._links
        from .groups import exact_columns, expand, star_links

        parts = []
        if self.self_join:
            parts.append(self.core)
            ri, mi = star_links(self.rep_left)
            parts.append(exact_columns(ri, mi, self.verified_exact))
        else:
            na, nb = self.counts
            parts.append(expand(self.core, None, self.rep_right, na, nb, False, True))
            parts.append(expand(self.core, self.rep_left, None, na, nb, False, True))
        cols = {key: np.concatenate([p[key] for p in parts]) for key in self.core}
        cols = sort_columns(cols)
        if cols["i"].size:
            new = np.concatenate([[True], (np.diff(cols["i"]) != 0) | (np.diff(cols["j"]) != 0)])
            cols = {key: value[new] for key, value in cols.items()}
        self._links = cols
        return cols

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
        links = self.links()
        labels = connected_components(self.counts[0], links["i"], links["j"])
        return _groups_from_labels(labels, np.union1d(links["i"], links["j"]))


def _confirmed(ov: Overlaps, min_similarity: float | None) -> Overlaps:
    # the pairs a clean may act on: exact, or verified on pixels at min_similarity or more
    if min_similarity is None:
        return ov
    core = ov.core
    keep = core["exact"] | (core["verified"] & (core["similarity"]
                                                >= np.float32(min_similarity)))
    if keep.all():
        return ov
    kept = {key: value[keep] for key, value in core.items()}
    out = Overlaps(kept["i"], kept["j"], kept["distance"], kept["exact"],
                   threshold=ov.threshold, self_join=ov.self_join,
                   similarity=kept["similarity"], residual=kept["residual"],
                   shift=kept["shift"], transform=kept["transform"], offset=kept["offset"],
                   verified=kept["verified"], unverified=ov.unverified,
                   rep_left=ov.rep_left, rep_right=ov.rep_right, counts=ov.counts,
                   max_pairs=ov.max_pairs, verified_exact=ov.verified_exact,
                   unchecked=ov.unchecked)
    return out


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


@dataclass
class GroupIndex:
    """Duplicate groups as arrays (see :meth:`Report.group_index`).

    Attributes
    ----------
    ids : dict of str to ndarray of int64
        Per split, each image's group (-1: in no group); groups numbered 0.. largest first.
    sizes : ndarray of int64
        Images per group.
    per_split : dict of str to ndarray of int64
        Per split, how many of each group's images it holds.
    exact : ndarray of bool
        Whether every link of the group is an exact copy (a group of identical images).
    widest : ndarray of float32
        The lowest similarity among the group's links (its widest pair; NaN where a link was
        not verified). Near copies chain: two members of a group need not be alike.
    first : list of (str, int)
        Each group's first image (split order, then index).
    offsets : ndarray of int64
        Where each split starts in one numbering of all splits' images (and their total).
    """

    ids: dict[str, np.ndarray]
    sizes: np.ndarray
    per_split: dict[str, np.ndarray]
    exact: np.ndarray
    widest: np.ndarray
    first: list[tuple[str, int]]
    offsets: np.ndarray

    @property
    def count(self) -> int:
        return int(self.sizes.size)

    def members(self, group: int) -> tuple[np.ndarray, np.ndarray]:
        """The split numbers (mapping order) and indices of one group's images."""
        splits, index = [], []
        for s, ids in enumerate(self.ids.values()):
            k = np.flatnonzero(ids == group)
            splits.append(np.full(k.size, s))
            index.append(k)
        return np.concatenate(splits), np.concatenate(index)


def _group_index(report, min_similarity) -> GroupIndex:
    # union-find over the links of every search, on one numbering of all splits' images
    names = list(report.splits)
    offsets = np.cumsum([0] + [report.splits[n].count for n in names])
    base = {n: int(offsets[k]) for k, n in enumerate(names)}
    lefts, rights, sims, exacts = [], [], [], []
    for a, b, ov in report._all_pairs(min_similarity):
        links = ov.links()
        lefts.append(links["i"] + base[a])
        rights.append(links["j"] + base[b])
        sims.append(np.where(links["verified"] | links["exact"], links["similarity"], np.nan))
        exacts.append(links["exact"])
    left = np.concatenate(lefts) if lefts else np.empty(0, np.int64)
    right = np.concatenate(rights) if rights else np.empty(0, np.int64)
    sim = np.concatenate(sims).astype(np.float32) if sims else np.empty(0, np.float32)
    exact = np.concatenate(exacts) if exacts else np.empty(0, bool)
    total = int(offsets[-1])
    roots = connected_components(total, left, right)
    linked = np.zeros(total, bool)
    linked[left] = True
    linked[right] = True
    sizes_by_root = np.bincount(roots[linked], minlength=total)
    groups = np.flatnonzero(sizes_by_root > 1)  # roots, the smallest image of each group
    order = np.lexsort((groups, -sizes_by_root[groups]))
    groups = groups[order]
    number = np.full(total, -1, np.int64)
    number[groups] = np.arange(groups.size)
    ids_all = np.where(linked, number[roots], -1)
    count = groups.size
    link_group = ids_all[left] if left.size else np.empty(0, np.int64)
    widest = np.full(count, np.inf, np.float32)
    unverified = np.zeros(count, bool)
    np.minimum.at(widest, link_group, np.nan_to_num(sim, nan=np.inf))
    unverified[link_group[np.isnan(sim)]] = True
    widest[unverified | ~np.isfinite(widest)] = np.nan
    all_exact = np.ones(count, bool)
    all_exact[link_group[~exact]] = False
    ids = {n: ids_all[base[n]:base[n] + report.splits[n].count] for n in names}
    per_split = {n: np.bincount(ids[n][ids[n] >= 0], minlength=count).astype(np.int64)
                 for n in names}
    split_of = np.searchsorted(offsets, groups, side="right") - 1
    first = [(names[s], int(g - offsets[s])) for s, g in zip(split_of.tolist(),
                                                             groups.tolist())]
    return GroupIndex(ids, sizes_by_root[groups].astype(np.int64), per_split, all_exact,
                      widest, first, offsets)


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

    def conflict_count(self, min_similarity: float | None = None) -> int:
        """How many pairs (inside a split or between two) join different labels, counted from
        the classes without making the pairs (``conflicts`` lists them)."""
        return self._conflicts(min_similarity)[0]

    def conflicted(self, min_similarity: float | None = None) -> dict[str, np.ndarray]:
        """Per split with labels, which images have a copy with a different label (among the
        pairs ``groups(min_similarity)`` links)."""
        return self._conflicts(min_similarity)[1]

    def _conflicts(self, min_similarity):
        key = ("conflicts", min_similarity)
        cache = self.__dict__.setdefault("_cache", {})
        if key not in cache:
            from .conflicts import count_conflicts

            total = 0
            masks = {n: np.zeros(self.splits[n].count, bool) for n in self.labels}
            for a, b, ov in self._all_pairs(min_similarity):
                la, lb = self.labels.get(a), self.labels.get(b)
                if la is None or lb is None or not len(ov):
                    continue
                count, hit_a, hit_b = count_conflicts(la, lb, ov)
                total += count
                masks[a] |= hit_a
                masks[b] |= hit_b
            cache[key] = (total, masks)
        return cache[key]

    def groups(self, min_similarity: float | None = None) -> list[list[tuple[str, int]]]:
        """Groups of images linked by any pair (inside or across splits), by union-find.

        Each group is a list of ``(split, index)`` in split order then index order; groups come
        largest first. With ``min_similarity``, only confirmed pairs link images: exact ones
        and near ones verified on pixels at that similarity or more (what ``clean`` acts on).
        Built from the links (``Overlaps.links``), so a class of identical images costs its
        size, not its pairs; :meth:`group_index` gives the same as arrays.

        Examples
        --------
        >>> import numpy as np, gpudedup as gd
        >>> x = np.random.default_rng(0).integers(0, 256, (4, 16, 16), dtype=np.uint8)
        >>> gd.scan({"train": x, "test": x[[2, 2]]}).groups()
        [[('train', 2), ('test', 0), ('test', 1)]]
        """
        index = self.group_index(min_similarity)
        if not index.count:
            return []
        names = list(self.splits)
        gid = np.concatenate([index.ids[n] for n in names]) if names else np.empty(0, np.int64)
        split = np.concatenate([np.full(self.splits[n].count, s) for s, n in enumerate(names)])
        local = np.concatenate([np.arange(self.splits[n].count) for n in names])
        inside = np.flatnonzero(gid >= 0)
        order = inside[np.lexsort((local[inside], split[inside], gid[inside]))]
        cuts = np.cumsum(index.sizes)[:-1]
        return [[(names[s], k) for s, k in zip(sp.tolist(), lo.tolist())]
                for sp, lo in zip(np.split(split[order], cuts), np.split(local[order], cuts))]

    def group_index(self, min_similarity: float | None = None) -> GroupIndex:
        """The duplicate groups as arrays: a group id per image (-1: in no group), per group
        its size, members per split, whether every link is exact, its widest pair (the lowest
        similarity among its links) and its first image; groups numbered largest first."""
        key = ("groups", min_similarity)
        cache = self.__dict__.setdefault("_cache", {})
        if key not in cache:
            cache[key] = _group_index(self, min_similarity)
        return cache[key]

    @property
    def mode(self) -> str:
        """What the scan looked for: ``"exact+near"`` or ``"exact"`` (or ``"near"``)."""
        return "+".join(m for m, on in (("exact", self.exact), ("near", self.near)) if on)

    def verification(self) -> dict:
        """How pairs were confirmed: ``verified`` (pixel check on), ``min_similarity``, and
        ``unverified``, a list of ``{"a", "b", "pairs", "reason"}`` for every search whose
        near pairs could not be checked on pixels (reported with similarity null)."""
        skipped = [{"a": a, "b": b, "pairs": ov.unverified_count(),
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
                "exact_duplicate_pairs": ov.exact_count() if ov is not None else 0,
                "images_in_duplicate_groups": int(ov.images_left.size)
                if ov is not None else 0,
                "unchecked_pairs": ov.unchecked if ov is not None else 0,
                "labels": name in self.labels,
            }
        leaks = [
            {"a": a, "b": b, "pairs": len(ov), "exact_pairs": ov.exact_count(),
             "a_images": int(ov.images_left.size), "b_images": int(ov.images_right.size),
             "unchecked_pairs": ov.unchecked}
            for (a, b), ov in self.overlaps.items()
        ]
        index = self.group_index()
        return {
            "mode": self.mode,
            "threshold": self.threshold if self.near else None,
            "verification": self.verification(),
            "splits": splits,
            "leaks": leaks,
            "groups": index.count,
            "largest_group": int(index.sizes[0]) if index.count else 0,
            "conflicts": self.conflict_count() if self.labels else None,
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
        (4, 'exact_leak', True)
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
            "groups": list(group_rows(self)),
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
        text = _json_text(self.to_dict())
        if path is not None:
            write_text_atomic(path, text)
        return text

    def to_csv(self, path=None) -> str:
        """Every link (the JSON's ``pairs`` rows, ``gpudedup.schema``) as CSV with the columns
        of ``PAIR_COLUMNS`` (booleans ``true``/``false``, null as an empty cell); written to
        ``path`` if given.

        Examples
        --------
        >>> import numpy as np, gpudedup as gd
        >>> x = np.zeros((2, 8, 8), np.uint8)
        >>> print(gd.scan({"train": x}).to_csv().splitlines()[1])
        exact_duplicate,train,0,train,1,true,0,1.0,0.0,identity,"[0,0]",0,,,,,
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
        """Every link (row) as a pandas DataFrame with the columns of the CSV (needs pandas).

        Examples
        --------
        >>> import numpy as np, gpudedup as gd
        >>> x = np.zeros((3, 8, 8), np.uint8)
        >>> df = gd.scan({"train": x}).to_pandas()
        >>> len(df), bool(df["exact"].all())  # 3 identical images: 2 links from the first
        (2, True)
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


def _json_text(data: dict) -> str:
    # indented, with one row per line in the long lists: json's indenting encoder is pure
    # Python (about 10 s for 100,000 rows), its compact one is C
    compact = json.JSONEncoder(separators=(", ", ": "), allow_nan=False).encode

    items = []
    for key, value in data.items():
        if isinstance(value, list) and value:
            body = _one_per_line(compact, value)
            items.append(f"{compact(key)}: [\n  {body}\n ]")
        else:
            text = json.dumps(value, indent=1, allow_nan=False).replace("\n", "\n ")
            items.append(f"{compact(key)}: {text}")
    return "{\n " + ",\n ".join(items) + "\n}"


def _one_per_line(compact, rows: list) -> str:
    # the rows' JSON, one per line: one encoder call for the whole list, split where one row
    # ends and the next begins; when a row's own text holds that boundary (a string label
    # "}, {"), the count is off and each row is encoded alone
    text = compact(rows)[1:-1]
    if all(isinstance(row, dict) for row in rows) and text.count("}, {") == len(rows) - 1:
        return text.replace("}, {", "},\n  {")
    return ",\n  ".join(compact(row) for row in rows)


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
    def width(least, rows, key):
        # a column at least ``least`` wide, wider for a count that would touch its neighbour
        return max([least] + [len(str(r[key])) + 2 for r in rows])

    if summary["leaks"]:
        leaks = summary["leaks"]
        wp, we = width(9, leaks, "pairs"), width(9, leaks, "exact_pairs")
        lines.append("")
        lines.append(f"{'leaks':<22}{'pairs':>{wp}}{'exact':>{we}}  images with a copy in the "
                     "other")
        for row in leaks:
            key = f"{row['a']} <-> {row['b']}"
            lines.append(f"{key:<22}{row['pairs']:>{wp}}{row['exact_pairs']:>{we}}  "
                         f"{row['a']} {row['a_images']}, {row['b']} {row['b_images']}")
    rows = list(summary["splits"].values())
    wc, wd = width(10, rows, "count"), width(12, rows, "duplicate_pairs")
    we, wg = width(9, rows, "exact_duplicate_pairs"), width(11, rows, "images_in_duplicate_groups")
    lines.append("")
    lines.append(f"{'split':<12}{'images':>{wc}}{'dup pairs':>{wd}}{'exact':>{we}}"
                 f"{'in groups':>{wg}}")
    for name, row in summary["splits"].items():
        lines.append(f"{name:<12}{row['count']:>{wc}}{row['duplicate_pairs']:>{wd}}"
                     f"{row['exact_duplicate_pairs']:>{we}}"
                     f"{row['images_in_duplicate_groups']:>{wg}}")
    lines.append("")
    conflicts = ("no labels" if summary["conflicts"] is None
                 else f"label conflicts: {summary['conflicts']}")
    unchecked = sum(row["unchecked_pairs"] for row in [*summary["splits"].values(),
                                                       *summary["leaks"]])
    if unchecked:
        lines.append(f"{unchecked:,} candidate pairs inside near groups of {SKIP_FROM}+ "
                     "images were not checked: a group had joined their images already")
        lines.append("  (the groups are whole; their pairs, and widest pair, are of the links "
                     "that joined them)")
        lines.append("")
    lines.append(f"duplicate groups: {summary['groups']}    {conflicts}")
    if summary["largest_group"] > BIG_GROUP:
        # the big clusters (blank images, placeholders) once each, not as their pairs
        for row in itertools.islice(group_rows(report), 3):
            if row["size"] > BIG_GROUP:
                lines.append(f"  {describe_group(report, row)}")
    return "\n".join(lines)
