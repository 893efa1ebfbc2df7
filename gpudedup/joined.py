"""Candidates inside big near groups: checked until their images are joined, then skipped.

A cluster of k near copies (a logo with a few pixels of noise, near-blank frames) is k(k-1)/2
candidate pairs, nearly all true copies, each scored in full: 4,000 noisy copies of one 28x28
image took 13 s and 1 GB, 20,000 would take minutes and more memory than the machine has.
The search therefore keeps, per block of query rows, a union-find of the pairs it has kept
(inside one set, or between two: leaks), and a candidate whose two images that block has
already joined into a group of :data:`SKIP_FROM` or more is not scored, only counted
(``Overlaps.unchecked``). A row that meets a big group its own image is not in yet (between
two sets, every new row) scores its lowest such candidate first and the rest after it, so one
checked pair joins it and the others are skipped. The search of variant hashes
(``invariant=``, ``shifts=``) skips alike, by blocks of its own query rows, with a union-find of
its own: a pair skipped there keeps the best of its checked candidates (its plain hash's, or
another variant's), which may be less similar than the skipped one.

Every decision depends only on the block's own rows, taken in fixed batches (one row, one,
two, four, ... up to the block's size) and inside a batch by (row, partner), never on the
order launches, tasks or threads meet them, so the answer is the same in one process and on
a Dask cluster. Skipping changes no group: a skipped pair's images were joined already.
Groups smaller than :data:`SKIP_FROM` never skip, so on data without big groups every near
pair is checked and listed as before.
A group that did skip lists the links that joined it (each a checked pair), and its widest
pair is the widest of those.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import search
from .groups import _find
from .search import concat_columns

#: a block's candidates are skipped once a group of at least this many of its images joins
#: them (the reports list only the strongest links of a group above SPANNING_FROM = 100 anyway)
SKIP_FROM = 100
#: blocks (BLOCK_ROWS query rows) with fewer candidates than this are scored at once, as
#: before: skipping pays only where many of a block's rows meet one big group (256 a row on
#: average here; Fashion-MNIST brings about 11,000 a block, a cluster of 4,000 copies 1e6)
SEQUENTIAL_FROM = 1 << 16


def batch_edges(rows: int) -> np.ndarray:
    """Row offsets where a block's batches start: 0, 1, 2, 4, 8, ... below ``rows``.

    Examples
    --------
    >>> batch_edges(20).tolist()
    [0, 1, 2, 4, 8, 16, 20]
    """
    edges = [0]
    step = 1
    while edges[-1] < rows:
        edges.append(min(rows, edges[-1] + step))
        step = max(1, edges[-1])
    return np.asarray(edges, np.int64)


@njit(cache=True)
def _joined(parent, size, left, right, least):
    # whether each pair's two images are in one group of at least `least` images
    out = np.zeros(left.shape[0], np.bool_)
    for k in range(left.shape[0]):
        ra = _find(parent, left[k])
        if ra == _find(parent, right[k]) and size[ra] >= least:
            out[k] = True
    return out


@njit(cache=True)
def _deferred(parent, size, query, partner, least):
    # candidates sorted by (query, partner): those whose partner is in a group of `least` or
    # more images that their query image is not in, but the first of each query row (a probe:
    # once it joins, the rest are joined)
    out = np.zeros(query.shape[0], np.bool_)
    row = -1
    probed = False
    for k in range(query.shape[0]):
        if query[k] != row:
            row = query[k]
            probed = False
        rp = _find(parent, partner[k])
        if size[rp] >= least and _find(parent, query[k]) != rp:
            out[k] = probed
            probed = True
    return out


@njit(cache=True)
def _join(parent, size, left, right):
    for k in range(left.shape[0]):
        ra = _find(parent, left[k])
        rb = _find(parent, right[k])
        if ra != rb:
            if size[ra] < size[rb]:
                ra, rb = rb, ra
            parent[rb] = ra
            size[ra] += size[rb]


@njit(cache=True)
def _reset(parent, size, nodes):
    for x in nodes:
        parent[x] = x
        size[x] = 1


class JoinedSkipper:
    """``refine(i, j, d)`` of a search that scores each block of query rows with
    ``score(i, j, d, launch=...)`` and skips the candidates a big group of that block already
    joins (``launch``: the candidates of the whole launch, for reading the images).

    ``nodes_a`` and ``nodes_b`` map the searched rows ``i`` and ``j`` to the union-find's
    nodes (None: the row itself); inside one set a node is an image index. Between two sets the
    images of the second are nodes ``offset_b +`` their index: ``score`` returns columns of
    image indices, and its ``j`` are offset so. ``by_second`` says the search queries with
    ``j``'s rows, so its blocks are blocks of ``j``. ``per_block``: ``score`` is called per
    block even where nothing can be skipped, for a score whose rows depend on which candidates
    it meets together (the variant search picks one hash shift per transform), as a launch
    holds different blocks in one process and in a task. ``unchecked`` counts the skipped
    candidates.
    """

    def __init__(self, score, nodes: int, nodes_a=None, nodes_b=None, *, offset_b: int = 0,
                 by_second: bool = False, per_block: bool = False):
        self.score = score
        self.per_block = per_block
        self.nodes_a, self.nodes_b = nodes_a, nodes_b
        self.offset_b = offset_b
        self.by_second = by_second
        self.parent = np.arange(nodes, dtype=np.int64)
        self.size = np.ones(nodes, dtype=np.int64)
        self.unchecked = 0

    def __call__(self, i, j, d):
        if i.size == 0 or (i.size < SEQUENTIAL_FROM and not self.per_block):
            return self.score(i, j, d)
        key = j if self.by_second else i  # the query rows
        if (key[1:] < key[:-1]).any():  # a launch comes in row order on the CPU
            order = np.argsort(key, kind="stable")
            i, j, d, key = i[order], j[order], d[order], key[order]
        rows = search.BLOCK_ROWS  # the kernels' blocks of query rows: whole in one launch
        first, last = key[0] // rows, key[-1] // rows
        bounds = np.searchsorted(key, np.arange(first, last + 2) * rows)
        parts = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            if lo == hi:
                continue
            if hi - lo < SEQUENTIAL_FROM:
                parts.append(self.score(i[lo:hi], j[lo:hi], d[lo:hi], launch=i.size))
            else:
                parts.append(self._block(i[lo:hi], j[lo:hi], d[lo:hi], key[lo:hi], i.size))
        return concat_columns(parts) if len(parts) > 1 else parts[0]

    def _block(self, i, j, d, key, launch):
        # the block's rows in batches; each batch skips what the earlier batches joined
        rows = search.BLOCK_ROWS
        bounds = np.searchsorted(key, (key[0] // rows) * rows + batch_edges(rows))
        parts, touched = [], []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            if lo == hi:
                continue
            bi, bj, bd = i[lo:hi], j[lo:hi], d[lo:hi]
            left = bi if self.nodes_a is None else self.nodes_a[bi]
            right = bj if self.nodes_b is None else self.nodes_b[bj]
            # (an image's own variant meeting its hash is no pair: scored, the score drops it)
            skip = _joined(self.parent, self.size, left, right, SKIP_FROM) & (left != right)
            # a row meeting a big group its image is not in yet (between two sets, each new
            # row): one candidate first (the lowest partner), the others once it has joined
            rest = np.flatnonzero(~skip)
            query, partner = (right, left) if self.by_second else (left, right)
            rest = rest[np.lexsort((partner[rest], query[rest]))]
            later = rest[_deferred(self.parent, self.size, query[rest], partner[rest],
                                   SKIP_FROM)]
            now = np.setdiff1d(rest, later, assume_unique=True)
            for take in (now, later):
                if take is later and later.size:
                    again = _joined(self.parent, self.size, left[later], right[later],
                                    SKIP_FROM)
                    skip[later[again]] = True
                    take = later[~again]
                cols = self.score(bi[take], bj[take], bd[take], launch=launch)
                # the kept pairs join their images (columns already in image indices)
                ends = cols["j"] + self.offset_b
                _join(self.parent, self.size, cols["i"], ends)
                touched += [cols["i"], ends]
                parts.append(cols)
            self.unchecked += int(skip.sum())
        if touched:
            _reset(self.parent, self.size, np.unique(np.concatenate(touched)))
        return concat_columns(parts) if len(parts) > 1 else parts[0]
