"""Groups before pairs: classes of identical images, connected components, and the expansion
of group-level results into pairs only when asked.

A cluster of k identical images is k(k-1)/2 pairs; kept as a class (each image's
representative, the smallest index of its class) it is k integers. The near search then runs on
one image per class, and every pair it finds between two representatives stands for the
pairs of their classes. Counting, components and per-image questions are answered from the
classes in time proportional to the images; :func:`expand` makes the pairs themselves.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .search import sort_columns, verify_pairs
from .transforms import INVERSE


def exact_classes(digests: np.ndarray, source=None, *, verify: bool = True,
                  name: str = "images") -> np.ndarray | None:
    """Each image's representative among the images with its digest: the smallest index of
    its class; None when no two images share a digest.

    With ``verify`` every member is compared byte for byte with its representative (only the
    members are read); a member whose bytes differ (a digest collision) becomes its own class.
    """
    count = digests.shape[0]
    if count < 2:
        return None
    order = np.lexsort((np.arange(count), digests[:, 1], digests[:, 0]))
    keys = digests[order]
    new_run = np.concatenate([[True], (keys[1:] != keys[:-1]).any(axis=1)])
    if new_run.all():
        return None
    run_start = np.flatnonzero(new_run)
    run_of = np.cumsum(new_run) - 1
    rep = np.empty(count, np.int64)
    rep[order] = order[run_start[run_of]]  # sorted by index within a run: its first is smallest
    members = np.flatnonzero(rep != np.arange(count))
    if verify and members.size:
        same = verify_pairs(source, source, rep[members], members, name, name)
        rep[members[~same]] = members[~same]
    return rep if (rep != np.arange(count)).any() else None


def representatives(rep: np.ndarray | None, count: int) -> np.ndarray:
    """The images that stand for their class (all images when ``rep`` is None), ascending."""
    if rep is None:
        return np.arange(count, dtype=np.int64)
    return np.flatnonzero(rep == np.arange(rep.size))


def class_sizes(rep: np.ndarray | None, count: int) -> np.ndarray:
    """Per image, the size of its class if it is a representative (0 for the other members);
    all ones when ``rep`` is None."""
    if rep is None:
        return np.ones(count, np.int64)
    return np.bincount(rep, minlength=count).astype(np.int64)


def members_of(rep: np.ndarray | None, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The members of every class in CSR form: ``members[start[r]:start[r + 1]]`` are the
    images of representative ``r`` (ascending; empty for a non-representative)."""
    if rep is None:
        return np.arange(count, dtype=np.int64), np.arange(count + 1, dtype=np.int64)
    members = np.argsort(rep, kind="stable").astype(np.int64)
    start = np.zeros(count + 1, np.int64)
    np.cumsum(np.bincount(rep, minlength=count), out=start[1:])
    return members, start


def pair_count(self_join: bool, left: np.ndarray, right: np.ndarray, rep_left, rep_right,
               count_left: int, count_right: int) -> int:
    """How many pairs the group-level pairs ``(left, right)`` (between representatives) and,
    inside one set, the classes themselves stand for."""
    size_l = class_sizes(rep_left, count_left)
    size_r = class_sizes(rep_right, count_right)
    total = int(np.dot(size_l[left], size_r[right])) if left.size else 0
    if self_join and rep_left is not None:
        k = size_l[size_l > 1]
        total += int((k * (k - 1) // 2).sum())
    return total


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


def spanning_forest(size: int, left: np.ndarray, right: np.ndarray,
                    order: np.ndarray) -> np.ndarray:
    """Which edges (taken in ``order``, strongest first) join two components not joined yet:
    a maximum spanning forest, one edge fewer than images per component."""
    parent = np.arange(size, dtype=np.int64)
    return _spanning(parent, np.ascontiguousarray(left, np.int64),
                     np.ascontiguousarray(right, np.int64), np.ascontiguousarray(order, np.int64))


@njit(cache=True)
def _spanning(parent, left, right, order):
    keep = np.zeros(left.shape[0], np.bool_)
    for k in order:
        ra = _find(parent, left[k])
        rb = _find(parent, right[k])
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
            keep[k] = True
    return keep


def exact_columns(i: np.ndarray, j: np.ndarray, verified: bool) -> dict:
    """The columns of exact pairs ``(i, j)``: distance 0, similarity 1, untransformed."""
    n = i.size
    return {"i": i, "j": j, "distance": np.zeros(n, np.uint8), "exact": np.ones(n, bool),
            "similarity": np.ones(n, np.float32), "residual": np.zeros(n, np.float64),
            "shift": np.zeros((n, 2), np.int8), "transform": np.zeros(n, np.uint8),
            "offset": np.zeros((n, 2), np.int8), "verified": np.full(n, verified)}


def star_links(rep: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Each class as edges from its representative to every other member: ``(rep, member)``
    pairs, linear in the images, with the components of all the class's pairs."""
    if rep is None:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    members = np.flatnonzero(rep != np.arange(rep.size))
    return rep[members].astype(np.int64), members.astype(np.int64)


@njit(cache=True)
def _expand_counts(left, right, size_l, size_r):
    out = np.empty(left.shape[0] + 1, np.int64)
    out[0] = 0
    for k in range(left.shape[0]):
        out[k + 1] = out[k] + size_l[left[k]] * size_r[right[k]]
    return out


@njit(cache=True)
def _expand_into(left, right, members_l, start_l, members_r, start_r, offsets, source,
                 out_i, out_j):
    # source[p]: the group-level pair each expanded pair comes from
    for k in range(left.shape[0]):
        p = offsets[k]
        for a in range(start_l[left[k]], start_l[left[k] + 1]):
            for b in range(start_r[right[k]], start_r[right[k] + 1]):
                out_i[p] = members_l[a]
                out_j[p] = members_r[b]
                source[p] = k
                p += 1


@njit(cache=True)
def _class_pairs(members, start, out_i, out_j):
    p = 0
    for r in range(start.shape[0] - 1):
        lo, hi = start[r], start[r + 1]
        for a in range(lo, hi):
            for b in range(a + 1, hi):
                out_i[p] = members[a]
                out_j[p] = members[b]
                p += 1


def expand(cols: dict, rep_left, rep_right, count_left: int, count_right: int,
           self_join: bool, verified_exact: bool) -> dict:
    """The pairs that group-level columns ``cols`` (``i``, ``j`` between representatives, and
    per-pair columns) stand for, sorted by ``(i, j)``: every member of ``i``'s class with every
    member of ``j``'s, and inside one set every pair of one class (exact, distance 0). In a
    self-join a pair that comes out with ``i > j`` is turned around: the transform inverted,
    the shifts negated."""
    members_l, start_l = members_of(rep_left, count_left)
    members_r, start_r = members_of(rep_right, count_right)
    size_l = np.diff(start_l)
    size_r = np.diff(start_r)
    left, right = cols["i"], cols["j"]
    offsets = _expand_counts(left, right, size_l, size_r)
    total = int(offsets[-1])
    out_i = np.empty(total, np.int64)
    out_j = np.empty(total, np.int64)
    source = np.empty(total, np.int64)
    _expand_into(left, right, members_l, start_l, members_r, start_r, offsets, source,
                 out_i, out_j)
    out = {key: value[source] for key, value in cols.items() if key not in ("i", "j")}
    out["i"], out["j"] = out_i, out_j
    if self_join:
        swap = out_i > out_j
        if swap.any():
            out["i"], out["j"] = np.where(swap, out_j, out_i), np.where(swap, out_i, out_j)
            out["transform"] = np.where(swap, INVERSE[out["transform"]], out["transform"])
            for key in ("shift", "offset"):
                out[key] = np.where(swap[:, None], -out[key], out[key]).astype(np.int8)
        if rep_left is not None:
            k = size_l[size_l > 1]
            inner = int((k * (k - 1) // 2).sum())
            ci, cj = np.empty(inner, np.int64), np.empty(inner, np.int64)
            _class_pairs(members_l, start_l, ci, cj)
            extra = exact_columns(ci, cj, verified_exact)
            out = {key: np.concatenate([out[key], extra[key]]) for key in out}
    return sort_columns(out)
