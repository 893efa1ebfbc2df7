"""Pair searches: equal digests verified byte for byte, and Hamming range search on phashes.

The range search never builds the N x M distance matrix. Its kernels (brute-force tiles or
multi-index hashing) fill fixed-capacity rows of an output buffer, one row per block of query
rows, and report each block's true count; blocks that overflowed are run again with room for
all their pairs. The pairs come back sorted, so no tile size, strategy, thread count or backend
changes the answer.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np

from . import backend as backends
from .sources import ImageSource

STRATEGIES = ("auto", "brute", "mih")

#: query rows per output block of the range-search kernels
BLOCK_ROWS = 256
#: first capacity (pairs) of each block's output row; grown when blocks overflow
INITIAL_CAPACITY = 1024
#: blocks per kernel launch (bounds the output buffer: blocks * capacity pairs)
BLOCKS_PER_WAVE = 512
#: relative costs used by strategy="auto" (measured on the CPU kernels)
COST_PAIR = 1.0  # one brute-force popcount comparison
COST_PROBE = 12.0  # one bucket lookup of multi-index hashing
COST_CANDIDATE = 6.0  # one candidate checked by multi-index hashing
#: queries sampled to estimate the candidates of multi-index hashing
PLAN_SAMPLE = 256


# ------------------------------------------------------------------------------- exact


def _digest_keys(digests: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(digests).view([("h1", np.uint64), ("h2", np.uint64)]).ravel()


def digest_pairs(da: np.ndarray, db: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs with equal 128-bit digests (``i < j`` when ``db`` is None).

    Returns two int64 arrays sorted by (i, j).
    """
    self_join = db is None
    keys_a = _digest_keys(da)
    keys_b = keys_a if self_join else _digest_keys(db)
    if keys_a.size == 0 or keys_b.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order_b = np.argsort(keys_b, kind="stable")
    sorted_b = keys_b[order_b]
    lo = np.searchsorted(sorted_b, keys_a, side="left")
    hi = np.searchsorted(sorted_b, keys_a, side="right")
    counts = hi - lo
    i = np.repeat(np.arange(keys_a.size, dtype=np.int64), counts)
    offsets = np.arange(i.size, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    j = order_b[np.repeat(lo, counts) + offsets].astype(np.int64)
    if self_join:
        keep = j > i
        i, j = i[keep], j[keep]
    order = np.lexsort((j, i))
    return i[order], j[order]


def verify_pairs(source_a: ImageSource | None, source_b: ImageSource | None, i: np.ndarray,
                 j: np.ndarray, name_a: str, name_b: str) -> np.ndarray:
    """Boolean mask of the pairs whose images are byte-identical.

    Only the images named in the pairs are read (one at a time for HDF5, never the dataset
    whole). Where one side has no images to read (a HashSet loaded from disk), the digests are
    trusted and a warning says so.
    """
    if i.size == 0:
        return np.zeros(0, dtype=bool)
    if source_a is None or source_b is None:
        missing = name_a if source_a is None else name_b
        warnings.warn(
            f"{missing}: no images to verify exact candidates against (a HashSet without its "
            "source); equal 128-bit digests are reported as exact without a byte comparison",
            stacklevel=3,
        )
        return np.ones(i.size, dtype=bool)
    same = np.zeros(i.size, dtype=bool)
    # read each distinct image once, in chunks, and compare the pairs that use them
    for lo in range(0, i.size, 4096):
        ci, cj = i[lo:lo + 4096], j[lo:lo + 4096]
        ua, inv_a = np.unique(ci, return_inverse=True)
        ub, inv_b = np.unique(cj, return_inverse=True)
        imgs_a = source_a.take(ua).reshape(ua.size, -1).view(np.uint8)
        imgs_b = source_b.take(ub).reshape(ub.size, -1).view(np.uint8)
        same[lo:lo + 4096] = (imgs_a[inv_a] == imgs_b[inv_b]).all(axis=1)
    return same


# ------------------------------------------------------------------------------- near


@dataclass(frozen=True)
class SearchPlan:
    """How to run a range search: "brute", or "mih" with ``substrings`` substrings."""

    strategy: str
    substrings: int = 0


def _split(substrings: int) -> tuple[np.ndarray, np.ndarray]:
    widths = [64 // substrings + (1 if k < 64 % substrings else 0) for k in range(substrings)]
    shifts = np.cumsum([0] + widths[:-1]).astype(np.uint64)
    masks = np.array([(1 << w) - 1 for w in widths], dtype=np.uint64)
    return shifts, masks


def _flips(width: int, radius: int) -> np.ndarray:
    # every mask of at most `radius` bits within `width` bits, ascending
    masks = [0]
    for weight in range(1, radius + 1):
        for bits in itertools.combinations(range(width), weight):
            masks.append(sum(1 << b for b in bits))
    return np.array(sorted(masks), dtype=np.uint64)


def _mih_range_of_m(threshold: int) -> range:
    # substrings of at most 16 bits (direct bucket tables), probe radius at most 2
    low = max(4, math.ceil((threshold + 1) / 3))
    high = min(max(threshold + 1, 4), 16)
    return range(low, high + 1)


def _mih_tables(codes, substrings: int, be: backends.Backend):
    # bucket the indexed codes by each substring: offsets, order and codes in bucket order
    xp = be.xp
    shifts, masks = _split(substrings)
    nkeys = int(masks.max()) + 1
    offsets = xp.zeros((substrings, nkeys + 1), dtype=xp.int64)
    order = xp.empty((substrings, codes.size), dtype=xp.int64)
    sorted_codes = xp.empty((substrings, codes.size), dtype=xp.uint64)
    for s in range(substrings):
        used = int(masks[s]) + 2
        be.launch("mih_bucket_sort", codes.size, codes, shifts[s], masks[s],
                  offsets[s, :used], order[s], sorted_codes[s])
        # narrower substrings: pad their offsets so every probe past the end finds nothing
        offsets[s, used:] = offsets[s, used - 1]
    return be.to_device(shifts), be.to_device(masks), offsets, order, sorted_codes


def _estimate_mih(queries: np.ndarray, index: np.ndarray, threshold: int,
                  substrings: int) -> float:
    # cost per query: bucket probes plus the candidates in them, counted on a sample
    shifts, masks = _split(substrings)
    radius = threshold // substrings
    flips = _flips(int(masks.max()).bit_length(), radius)
    nkeys = int(masks.max()) + 1
    rng = np.random.default_rng(0)
    sample = queries if queries.size <= PLAN_SAMPLE else rng.choice(queries, PLAN_SAMPLE)
    candidates = 0.0
    probes = 0
    for s in range(substrings):
        counts = np.bincount(((index >> shifts[s]) & masks[s]).astype(np.int64),
                             minlength=nkeys)
        usable = flips[flips <= masks[s]]
        keys = ((sample >> shifts[s]) & masks[s])[:, None] ^ usable[None, :]
        candidates += counts[keys.astype(np.int64)].sum() / sample.size
        probes += usable.size
    return probes * COST_PROBE + candidates * COST_CANDIDATE


def plan_search(a: np.ndarray, b: np.ndarray, threshold: int, strategy: str = "auto",
                be: backends.Backend | None = None) -> SearchPlan:
    """Pick the strategy: brute force, or multi-index hashing with the cheapest substring count.

    ``strategy="auto"`` compares the brute-force cost (one comparison per pair) with multi-index
    hashing's probes and candidates, counted on a sample of the queries. On the cuda backend
    "auto" means brute force: there the popcount tiles run at the hardware floor, while bucket
    probes are scattered reads.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy: expected one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if strategy == "brute" or (be is not None and be.name == "cuda" and strategy == "auto"):
        return SearchPlan("brute")
    options = list(_mih_range_of_m(threshold))
    if strategy == "mih":
        if not options:
            raise ValueError(f"strategy: 'mih' needs threshold <= 47, got {threshold}")
        if a.size == 0 or b.size == 0:
            return SearchPlan("mih", options[0])
    if a.size == 0 or b.size == 0 or not options:
        return SearchPlan("brute")
    best = SearchPlan("brute")
    best_cost = COST_PAIR * b.size
    for m in options:
        cost = _estimate_mih(a, b, threshold, m)
        if cost < best_cost or strategy == "mih" and best.strategy == "brute":
            best, best_cost = SearchPlan("mih", m), cost
    return best


def _run_blocks(run, n_rows: int, xp) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drive a block kernel over ``n_rows`` query rows, growing capacity on overflow.

    ``run(row_start, counts, out_i, out_j, out_d)`` fills ``counts.size`` blocks of
    BLOCK_ROWS rows each. Returns host arrays of all pairs.
    """
    nblocks = -(-n_rows // BLOCK_ROWS)
    capacity = INITIAL_CAPACITY
    parts_i, parts_j, parts_d = [], [], []
    for first in range(0, nblocks, BLOCKS_PER_WAVE):
        wave = min(BLOCKS_PER_WAVE, nblocks - first)
        counts = xp.zeros(wave, dtype=xp.int64)
        out_i = xp.empty((wave, capacity), dtype=xp.int64)
        out_j = xp.empty((wave, capacity), dtype=xp.int64)
        out_d = xp.empty((wave, capacity), dtype=xp.uint8)
        run(first * BLOCK_ROWS, counts, out_i, out_j, out_d)
        host_counts = counts.get() if hasattr(counts, "get") else counts
        overflow = host_counts > capacity
        # blocks that overflowed are dropped here and run again alone with room for every
        # pair (on a GPU the pairs a block keeps are not the same ones from run to run)
        kept = xp.asarray(np.where(overflow, 0, host_counts))
        valid = xp.arange(capacity)[None, :] < kept[:, None]
        parts_i.append(out_i[valid])
        parts_j.append(out_j[valid])
        parts_d.append(out_d[valid])
        for blk in np.flatnonzero(overflow):
            need = int(host_counts[blk])
            one = xp.zeros(1, dtype=xp.int64)
            oi = xp.empty((1, need), dtype=xp.int64)
            oj = xp.empty((1, need), dtype=xp.int64)
            od = xp.empty((1, need), dtype=xp.uint8)
            run((first + int(blk)) * BLOCK_ROWS, one, oi, oj, od)
            parts_i.append(oi[0])
            parts_j.append(oj[0])
            parts_d.append(od[0])
        if overflow.any():
            capacity = min(1 << int(host_counts.max() - 1).bit_length(), 1 << 20)
    to_host = (lambda x: x.get()) if xp is not np else (lambda x: x)
    cat = np.concatenate
    return (cat([to_host(p) for p in parts_i]) if parts_i else np.empty(0, np.int64),
            cat([to_host(p) for p in parts_j]) if parts_j else np.empty(0, np.int64),
            cat([to_host(p) for p in parts_d]) if parts_d else np.empty(0, np.uint8))


def hamming_pairs(a: np.ndarray, b: np.ndarray | None, threshold: int, *,
                  be: backends.Backend, strategy: str = "auto"
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs with ``popcount(a[i] ^ b[j]) <= threshold`` (``i < j`` when ``b`` is None).

    Returns ``(i, j, distance)`` sorted by (i, j): int64, int64, uint8.
    """
    self_join = b is None
    a = np.ascontiguousarray(a, dtype=np.uint64)
    b = a if self_join else np.ascontiguousarray(b, dtype=np.uint64)
    if a.size == 0 or b.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.uint8)
    plan = plan_search(a, b, threshold, strategy, be)
    swapped = False
    if plan.strategy == "mih":
        # index the larger side, query with the smaller (probes scale with the queries)
        if not self_join and a.size > b.size:
            a, b, swapped = b, a, True
        i, j, d = _mih_search(a, b, threshold, self_join, plan.substrings, be)
    else:
        i, j, d = _brute_search(a, b, threshold, self_join, be)
    if swapped:
        i, j = j, i
    order = np.lexsort((j, i))
    return i[order], j[order], d[order]


def _brute_search(a, b, threshold, self_join, be):
    xp = be.xp
    dev_a, dev_b = be.to_device(a), be.to_device(b)
    if self_join:
        dev_b = dev_a

    def run(row_start, counts, out_i, out_j, out_d):
        be.launch("hamming_range", counts.size * BLOCK_ROWS, dev_a, dev_b, threshold,
                  self_join, row_start, BLOCK_ROWS, counts, out_i, out_j, out_d)

    return _run_blocks(run, a.size, xp)


def _mih_search(a, b, threshold, self_join, substrings, be):
    dev_a = be.to_device(a)
    dev_b = dev_a if self_join else be.to_device(b)
    shifts, masks, offsets, order, sorted_codes = _mih_tables(dev_b, substrings, be)
    radius = threshold // substrings
    width = int(_split(substrings)[1].max()).bit_length()
    flips = be.to_device(_flips(width, radius))

    def run(row_start, counts, out_i, out_j, out_d):
        be.launch("mih_range", counts.size * BLOCK_ROWS, dev_a, threshold, self_join,
                  row_start, BLOCK_ROWS, shifts, masks, radius, flips, offsets, order,
                  sorted_codes, counts, out_i, out_j, out_d)

    return _run_blocks(run, a.size, be.xp)
