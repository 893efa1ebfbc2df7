"""Pair searches: equal digests verified byte for byte, and Hamming range search on phashes.

The range search never builds the N x M distance matrix. Its kernels (brute-force tiles or
multi-index hashing) fill fixed-capacity rows of an output buffer, one row per block of query
rows, and report each block's true count; blocks that overflowed are run again with room for
all their pairs. The pairs come back sorted, so no tile size, strategy, thread count or backend
changes the answer.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from . import backend as backends
from .backend import to_host
from .checks import check_strategy
from .errors import InputError
from .sources import ImageSource

#: query rows per output block of the range-search kernels
BLOCK_ROWS = 256
#: first capacity (pairs) of each block's output row; grown when blocks overflow
INITIAL_CAPACITY = 1024
#: output slots (pairs) of one kernel launch, about 9 MB: blocks per launch = this / capacity
OUTPUT_SLOTS = 1 << 19
#: blocks of the first launch, whose counts size the capacity of the rest
CALIBRATION_BLOCKS = 8
#: relative costs used by strategy="auto" (measured on the CPU kernels)
COST_PAIR = 1.0  # one brute-force popcount comparison
COST_PROBE = 12.0  # one bucket lookup of multi-index hashing, table in L2
COST_PROBE_BIG = 60.0  # one bucket lookup in a table of 2**14 buckets or more
COST_CANDIDATE = 6.0  # one candidate checked by multi-index hashing
COST_BUILD = 4.0  # one indexed code bucketed by one substring
#: queries sampled to estimate the candidates of multi-index hashing
PLAN_SAMPLE = 256


# ------------------------------------------------------------------------------- exact


def digest_pairs(da: np.ndarray, db: np.ndarray | None,
                 xp=np) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs with equal 128-bit digests (``i < j`` when ``db`` is None).

    One sort of all digests (both sides together) on the backend's array module (CuPy on a
    GPU), then every run of equal digests gives the pairs of its members from a with its
    members from b; only the runs come back to the host. Returns int64 arrays sorted by (i, j).
    """
    self_join = db is None
    if da.shape[0] + (0 if self_join else db.shape[0]) < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    digests = xp.asarray(da if self_join else np.concatenate([da, db]))
    # all keys uint64: stacking with a smaller integer type would promote to float64
    side = xp.zeros(digests.shape[0], dtype=xp.uint64)
    if not self_join:
        side[da.shape[0]:] = 1
    order = xp.lexsort(xp.stack([side, digests[:, 1], digests[:, 0]]))
    keys = digests[order]
    new_run = xp.concatenate([xp.ones(1, dtype=bool), (keys[1:] != keys[:-1]).any(axis=1)])
    starts = xp.flatnonzero(new_run)
    ends = xp.concatenate([starts[1:], xp.asarray([order.size])])
    repeated = ends - starts > 1
    starts, ends = to_host(starts[repeated]), to_host(ends[repeated])
    if starts.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    in_runs = np.concatenate([np.arange(lo, hi) for lo, hi in zip(starts, ends)])
    members_all = to_host(order[xp.asarray(in_runs)])
    side_all = to_host(side)[members_all]
    lefts, rights = [], []
    offset = 0 if self_join else da.shape[0]
    pos = 0
    for size in (ends - starts).tolist():
        members, sides = members_all[pos:pos + size], side_all[pos:pos + size]
        pos += size
        if self_join:
            members = np.sort(members)
            i, j = np.triu_indices(members.size, k=1)
            lefts.append(members[i])
            rights.append(members[j])
        else:
            left, right = members[sides == 0], members[sides == 1] - offset
            lefts.append(np.repeat(left, right.size))
            rights.append(np.tile(right, left.size))
    i, j = np.concatenate(lefts).astype(np.int64), np.concatenate(rights).astype(np.int64)
    order = pair_order(i, j)
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
    missing = [name for name, source in ((name_a, source_a), (name_b, source_b))
               if source is None or not source.readable]
    if missing:
        warnings.warn(
            f"{missing[0]}: no images to verify exact candidates against (a HashSet without its "
            "source, or its HDF5 file is closed); equal 128-bit digests are reported as exact "
            "without a byte comparison",
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


def _radii(threshold: int, substrings: int) -> np.ndarray:
    # threshold = m*q + a: one of the first a + 1 substrings is within q, or one of the
    # others within q - 1 (else the distance would be at least m*q + a + 1)
    q, a = divmod(threshold, substrings)
    return np.array([q if s <= a else q - 1 for s in range(substrings)], dtype=np.int64)


def _flips(masks: np.ndarray, radii: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # for each substring: every mask of at most radii[s] bits inside it, padded to one width
    lists = []
    for mask, radius in zip(masks.tolist(), radii.tolist()):
        width = int(mask).bit_length()
        flips = [0] if radius >= 0 else []
        for weight in range(1, radius + 1):
            for bits in itertools.combinations(range(width), weight):
                flips.append(sum(1 << b for b in bits))
        lists.append(flips)
    longest = max(len(f) for f in lists)
    table = np.zeros((len(lists), max(longest, 1)), dtype=np.uint64)
    for s, flips in enumerate(lists):
        table[s, :len(flips)] = flips
    return table, np.array([len(f) for f in lists], dtype=np.int64)


def _mih_range_of_m(threshold: int) -> range:
    # substrings of at most 16 bits (direct bucket tables), probe radius at most 2
    low = max(4, threshold // 3 + 1)
    high = min(max(threshold + 1, 4), 16)
    return range(low, high + 1)


def _mih_tables(codes, substrings: int, be: backends.Backend):
    # bucket the indexed codes by each substring: offsets, order and codes in bucket order
    xp = be.xp
    shifts, masks = _split(substrings)
    nkeys = int(masks.max()) + 1
    offsets = xp.zeros((substrings, nkeys + 1), dtype=xp.int64)
    order = xp.empty((substrings, codes.size), dtype=xp.int32 if codes.size < 2**31 else xp.int64)
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
    flips, nflips = _flips(masks, _radii(threshold, substrings))
    rng = np.random.default_rng(0)
    sample = queries if queries.size <= PLAN_SAMPLE else rng.choice(queries, PLAN_SAMPLE)
    candidates = 0.0
    for s in range(substrings):
        counts = np.bincount(((index >> shifts[s]) & masks[s]).astype(np.int64),
                             minlength=int(masks[s]) + 1)
        keys = ((sample >> shifts[s]) & masks[s])[:, None] ^ flips[s, :nflips[s]][None, :]
        candidates += counts[keys.astype(np.int64)].sum() / sample.size
    # a probe into a table past the L2 cache costs more
    probe_cost = COST_PROBE_BIG if int(masks.max()) >= 1 << 14 else COST_PROBE
    return int(nflips.sum()) * probe_cost + candidates * COST_CANDIDATE


def plan_search(a: np.ndarray, b: np.ndarray, threshold: int, strategy: str = "auto",
                be: backends.Backend | None = None) -> SearchPlan:
    """Pick the strategy: brute force, or multi-index hashing with the cheapest substring count.

    ``strategy="auto"`` compares the brute-force cost (one comparison per pair) with multi-index
    hashing's probes and candidates, counted on a sample of the queries. On the cuda backend
    "auto" means brute force: there the popcount tiles run at the hardware floor, while bucket
    probes are scattered reads.
    """
    check_strategy(strategy)
    if strategy == "brute" or (be is not None and be.name == "cuda" and strategy == "auto"):
        return SearchPlan("brute")
    options = list(_mih_range_of_m(threshold))
    if strategy == "mih":
        if not options:
            raise InputError(f"strategy: 'mih' needs threshold <= 47, got {threshold}")
        if a.size == 0 or b.size == 0:
            return SearchPlan("mih", options[0])
    if a.size == 0 or b.size == 0 or not options:
        return SearchPlan("brute")
    # whole-search costs; multi-index hashing indexes the larger side, queries the smaller
    queries, index = (a, b) if a.size <= b.size else (b, a)
    best = SearchPlan("brute")
    best_cost = COST_PAIR * float(a.size) * b.size
    for m in options:
        cost = (queries.size * _estimate_mih(queries, index, threshold, m)
                + COST_BUILD * m * index.size)
        if cost < best_cost or strategy == "mih" and best.strategy == "brute":
            best, best_cost = SearchPlan("mih", m), cost
    return best


def _run_blocks(run, n_rows: int, xp, bar=None, refine=None) -> dict:
    """Drive a block kernel over ``n_rows`` query rows, growing capacity on overflow.

    ``run(block_starts, counts, out_i, out_j, out_d)`` fills one output row per block of
    BLOCK_ROWS rows. Each launch gets at most OUTPUT_SLOTS output slots; the first runs only
    CALIBRATION_BLOCKS blocks, whose counts set the capacity. Blocks that found more pairs than
    their row holds go back to the front of the queue and run again, together, with room for
    the largest count; later blocks keep the larger capacity. ``bar`` (tqdm) counts the rows
    done. ``refine(i, j, d)`` (optional) takes each launch's pairs as host arrays and returns
    the columns to keep of them (a dict with "i", "j", "distance" and any more), so only what
    it keeps piles up: the pixel check runs launch by launch. Returns the columns, unsorted.
    """
    pending = np.arange(0, n_rows, BLOCK_ROWS, dtype=np.int64)
    capacity = INITIAL_CAPACITY
    parts = []
    first = True
    slots = None
    while pending.size:
        # a small first launch sizes the capacity before the big ones
        size = CALIBRATION_BLOCKS if first else max(1, OUTPUT_SLOTS // capacity)
        starts, pending = np.split(pending, [size])
        counts = xp.zeros(starts.size, dtype=xp.int64)
        out_i = xp.empty((starts.size, capacity), dtype=xp.int64)
        out_j = xp.empty((starts.size, capacity), dtype=xp.int64)
        out_d = xp.empty((starts.size, capacity), dtype=xp.uint8)
        run(xp.asarray(starts), counts, out_i, out_j, out_d)
        host_counts = to_host(counts)
        overflow = host_counts > capacity
        # keep the complete blocks (on a GPU an overflowed block keeps an arbitrary subset)
        kept = xp.asarray(np.where(overflow, 0, host_counts))
        if slots is None or slots.size != capacity:  # one per capacity (a big one is costly)
            slots = xp.arange(capacity)
        valid = slots[None, :] < kept[:, None]
        found = (to_host(out_i[valid]), to_host(out_j[valid]), to_host(out_d[valid]))
        parts.append(refine(*found) if refine is not None
                     else dict(zip(("i", "j", "distance"), found)))
        if overflow.any():
            pending = np.concatenate([starts[overflow], pending])
        if host_counts.size and (overflow.any() or first):
            # room for the fullest block seen so far, plus a quarter
            need = int(host_counts.max() * 1.25) + 1
            capacity = max(capacity, 1 << (need - 1).bit_length())
        first = False
        if bar is not None:
            bar.update(int(np.minimum(starts[~overflow] + BLOCK_ROWS, n_rows).sum()
                           - starts[~overflow].sum()))
    return concat_columns(parts)


def concat_columns(parts: list[dict]) -> dict:
    """Column dicts of one layout joined; none gives empty i, j, distance."""
    if not parts:
        return {"i": np.empty(0, np.int64), "j": np.empty(0, np.int64),
                "distance": np.empty(0, np.uint8)}
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def sort_columns(cols: dict) -> dict:
    """The columns reordered by (i, j), rows of one (i, j) in their order (a stable sort)."""
    return {key: value[pair_order(cols["i"], cols["j"])] for key, value in cols.items()}


def pair_order(i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """``np.lexsort((j, i))``: one stable sort of a packed key when the indices fit 31 bits
    (3-10x faster than lexsort on a million pairs), lexsort otherwise."""
    if i.size and min(i.min(), j.min()) >= 0 and max(i.max(), j.max()) < 2**31:
        return np.argsort((i.astype(np.int64) << 32) | j, kind="stable")
    return np.lexsort((j, i))


def hamming_pairs(a: np.ndarray, b: np.ndarray | None, threshold: int, *,
                  be: backends.Backend, strategy: str = "auto", progress: bool = False,
                  label: str = "search") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs with ``popcount(a[i] ^ b[j]) <= threshold`` (``i < j`` when ``b`` is None).

    Returns ``(i, j, distance)`` sorted by (i, j): int64, int64, uint8. ``progress`` shows a
    bar over the query rows, titled ``label``.
    """
    cols = range_pairs(a, b, threshold, be=be, strategy=strategy, progress=progress,
                       label=label)
    return cols["i"], cols["j"], cols["distance"]


def queries_second(plan: SearchPlan, a: np.ndarray, b: np.ndarray | None,
                   self_join: bool = False) -> bool:
    """Whether a search of ``a`` against ``b`` under ``plan`` queries with ``b``'s rows:
    multi-index hashing indexes the larger side and queries with the smaller."""
    return plan.strategy == "mih" and not self_join and b is not None and a.size > b.size


def range_pairs(a: np.ndarray, b: np.ndarray | None, threshold: int, *, be: backends.Backend,
                strategy: str = "auto", progress: bool = False, label: str = "search",
                refine=None, plan: SearchPlan | None = None) -> dict:
    """:func:`hamming_pairs` as columns ``{"i", "j", "distance", ...}`` sorted by (i, j), with
    ``refine(i, j, d) -> columns`` applied to each launch's pairs as they come (see
    :func:`_run_blocks`), always with ``i`` indexing ``a`` and ``j`` indexing ``b``. ``plan``:
    the :func:`plan_search` of these codes when the caller has made it already."""
    self_join = b is None
    a = np.ascontiguousarray(a, dtype=np.uint64)
    b = a if self_join else np.ascontiguousarray(b, dtype=np.uint64)
    if plan is None:
        plan = plan_search(a, b, threshold, strategy, be)  # validates strategy even for no rows
    if a.size == 0 or b.size == 0:
        return concat_columns([])
    swapped = queries_second(plan, a, b, self_join)
    if swapped:
        a, b = b, a
    oriented = refine
    if swapped:
        def oriented(i, j, d):
            return (refine(j, i, d) if refine is not None
                    else {"i": j, "j": i, "distance": d})
    bar = tqdm(total=a.size, desc=label, unit="row", disable=not progress, leave=False)
    with bar:
        if plan.strategy == "mih":
            cols = _mih_search(a, b, threshold, self_join, plan.substrings, be, bar, oriented)
        else:
            cols = _brute_search(a, b, threshold, self_join, be, bar, oriented)
    return sort_columns(cols)


def _brute_search(a, b, threshold, self_join, be, bar=None, refine=None):
    xp = be.xp
    dev_a, dev_b = be.to_device(a), be.to_device(b)
    if self_join:
        dev_b = dev_a

    def run(block_starts, counts, out_i, out_j, out_d):
        be.launch("hamming_range", counts.size * BLOCK_ROWS, dev_a, dev_b, threshold,
                  self_join, block_starts, BLOCK_ROWS, counts, out_i, out_j, out_d)

    return _run_blocks(run, a.size, xp, bar, refine)


def _mih_search(a, b, threshold, self_join, substrings, be, bar=None, refine=None):
    dev_a = be.to_device(a)
    dev_b = dev_a if self_join else be.to_device(b)
    shifts, masks, offsets, order, sorted_codes = _mih_tables(dev_b, substrings, be)
    radii = _radii(threshold, substrings)
    flips, nflips = _flips(_split(substrings)[1], radii)
    radii, flips, nflips = be.to_device(radii), be.to_device(flips), be.to_device(nflips)

    def run(block_starts, counts, out_i, out_j, out_d):
        be.launch("mih_range", counts.size * BLOCK_ROWS, dev_a, threshold, self_join,
                  block_starts, BLOCK_ROWS, shifts, masks, radii, flips, nflips, offsets,
                  order, sorted_codes, counts, out_i, out_j, out_d)

    return _run_blocks(run, a.size, be.xp, bar, refine)
