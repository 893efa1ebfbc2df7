"""Hamming range search: every strategy, block size and output capacity equals brute force."""

from __future__ import annotations

import numpy as np
import pytest
from gpudedup.kernels import cpu
from helpers import clustered_codes, random_codes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from naive import naive_hamming_pairs
from numba import njit

from gpudedup import backend, search

CPU = backend.resolve("cpu")
STRATEGIES = ("auto", "brute", "mih")
THRESHOLDS = (*range(13), 64)


def run(a, b, threshold, strategy="auto"):
    return search.hamming_pairs(a, b, threshold, be=CPU, strategy=strategy)


def assert_pairs_equal(got, expected):
    gi, gj, gd_ = got
    ei, ej, ed = expected
    assert gi.dtype == np.int64 and gj.dtype == np.int64 and gd_.dtype == np.uint8
    assert gi.shape == gj.shape == gd_.shape
    np.testing.assert_array_equal(gi, ei)
    np.testing.assert_array_equal(gj, ej)
    np.testing.assert_array_equal(gd_, ed)


def strategies_for(threshold):
    # multi-index hashing handles thresholds up to 47 (substrings of at most 16 bits)
    return STRATEGIES if threshold <= 47 else ("auto", "brute")


# ---------------------------------------------------------------------- the reference


def test_naive_reference_on_a_hand_example():
    a = np.array([0, 1, 3, 2**64 - 1], dtype=np.uint64)
    i, j, d = naive_hamming_pairs(a, None, 2)
    assert list(zip(i.tolist(), j.tolist(), d.tolist())) == [(0, 1, 1), (0, 2, 2), (1, 2, 1)]
    i, j, d = naive_hamming_pairs(a, a[::-1], 0)
    assert list(zip(i.tolist(), j.tolist())) == [(0, 3), (1, 2), (2, 1), (3, 0)]


def test_popcount64():
    @njit
    def counts(x):
        out = np.empty(x.size, np.uint64)
        for k in range(x.size):
            out[k] = cpu.popcount64(x[k])
        return out

    x = np.concatenate([np.array([0, 1, 2**63, 2**64 - 1, 0x5555555555555555], np.uint64),
                        random_codes(np.random.default_rng(300), 200)])
    np.testing.assert_array_equal(counts(x), np.bitwise_count(x))


# ------------------------------------------------------------------ strategies vs naive


@pytest.mark.parametrize("threshold", THRESHOLDS)
@pytest.mark.parametrize("kind", ["random", "clustered"])
def test_self_join_every_strategy(threshold, kind):
    rng = np.random.default_rng(301 + threshold)
    gen = random_codes if kind == "random" else clustered_codes
    a = gen(rng, 700)
    expected = naive_hamming_pairs(a, None, threshold)
    for strategy in strategies_for(threshold):
        assert_pairs_equal(run(a, None, threshold, strategy), expected)


@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_cross_join_every_strategy(threshold):
    rng = np.random.default_rng(320 + threshold)
    a = clustered_codes(rng, 500, centers=6)
    b = np.concatenate([clustered_codes(rng, 250, centers=6), a[:40], random_codes(rng, 60)])
    for x, y in ((a, b), (b, a), (a[:30], b), (b, a[:30])):
        expected = naive_hamming_pairs(x, y, threshold)
        for strategy in strategies_for(threshold):
            assert_pairs_equal(run(x, y, threshold, strategy), expected)


def test_near_random_thresholds():
    # random codes sit ~32 bits apart: thresholds around there give many pairs
    rng = np.random.default_rng(340)
    a, b = random_codes(rng, 300), random_codes(rng, 200)
    for threshold in (20, 28, 32, 36, 47, 63):
        for strategy in strategies_for(threshold):
            assert_pairs_equal(run(a, b, threshold, strategy), naive_hamming_pairs(a, b, threshold))
            assert_pairs_equal(run(a, None, threshold, strategy),
                               naive_hamming_pairs(a, None, threshold))


def test_every_substring_count_of_mih(monkeypatch):
    # force each substring count that multi-index hashing may choose
    rng = np.random.default_rng(341)
    a = clustered_codes(rng, 400, centers=3, max_flips=8)
    b = clustered_codes(rng, 300, centers=3, max_flips=8)
    for threshold in (0, 3, 7, 12, 20, 47):
        counts = list(search._mih_range_of_m(threshold))
        assert counts and all(m > threshold // 3 for m in counts)
        for m in counts:
            plan = search.SearchPlan("mih", m)
            monkeypatch.setattr(search, "plan_search", lambda *args, plan=plan, **kw: plan)
            for x, y in ((a, b), (b, a), (a, None)):
                assert_pairs_equal(run(x, y, threshold, "mih"),
                                   naive_hamming_pairs(x, y, threshold))


def test_mih_rejects_large_thresholds():
    a = random_codes(np.random.default_rng(342), 10)
    for threshold in (48, 64):
        with pytest.raises(ValueError, match="strategy"):
            run(a, None, threshold, "mih")


def test_unknown_strategy():
    a = random_codes(np.random.default_rng(343), 10)
    with pytest.raises(ValueError, match="strategy"):
        run(a, None, 3, "faiss")


def test_all_pairs_at_threshold_64():
    rng = np.random.default_rng(344)
    a, b = random_codes(rng, 150), random_codes(rng, 40)
    i, j, _ = run(a, None, 64)
    assert i.size == 150 * 149 // 2 and (i < j).all()
    i, j, _ = run(a, b, 64)
    assert i.size == 150 * 40


def test_identical_codes_and_extremes():
    a = np.array([0] * 50 + [2**64 - 1] * 50 + [2**63] * 3, dtype=np.uint64)
    for threshold in (0, 1, 63, 64):
        for strategy in strategies_for(threshold):
            assert_pairs_equal(run(a, None, threshold, strategy),
                               naive_hamming_pairs(a, None, threshold))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_empty_and_single(strategy):
    empty = np.empty(0, np.uint64)
    one = np.array([7], np.uint64)
    for a, b in ((empty, None), (one, None), (empty, one), (one, empty), (empty, empty),
                 (one, one)):
        got = run(a, b, 5, strategy)
        assert_pairs_equal(got, naive_hamming_pairs(a, b, 5))


def test_signed_codes_are_accepted():
    rng = np.random.default_rng(345)
    a = clustered_codes(rng, 200)
    expected = naive_hamming_pairs(a, None, 6)
    for strategy in STRATEGIES:
        assert_pairs_equal(run(a.view(np.int64), None, 6, strategy), expected)


# ----------------------------------------------------------- property test (hypothesis)


@st.composite
def code_arrays(draw):
    """Uniform codes, or a few centers with a few bit flips each (dense neighbourhoods)."""
    if draw(st.booleans()):
        values = draw(st.lists(st.integers(0, 2**64 - 1), max_size=60))
        return np.array(values, dtype=np.uint64)
    centers = draw(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=4))
    members = draw(st.lists(st.tuples(st.integers(0, len(centers) - 1),
                                      st.lists(st.integers(0, 63), max_size=6)),
                            max_size=80))
    codes = []
    for center, flips in members:
        code = centers[center]
        for bit in flips:
            code ^= 1 << bit
        codes.append(code)
    return np.array(codes, dtype=np.uint64)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(a=code_arrays(), b=code_arrays(), threshold=st.integers(0, 64),
       self_join=st.booleans())
def test_property_every_strategy_equals_brute_force(a, b, threshold, self_join):
    other = None if self_join else b
    expected = naive_hamming_pairs(a, other, threshold)
    for strategy in strategies_for(threshold):
        assert_pairs_equal(run(a, other, threshold, strategy), expected)


# --------------------------------------------------- blocks, capacity and overflow retry


@pytest.mark.parametrize("block_rows,capacity,per_wave", [
    (1, 1, 512), (3, 1, 2), (7, 5, 1), (64, 2, 3), (256, 1024, 512), (1000, 1, 1)])
def test_block_layout_and_overflow_do_not_change_pairs(monkeypatch, block_rows, capacity,
                                                       per_wave):
    monkeypatch.setattr(search, "BLOCK_ROWS", block_rows)
    monkeypatch.setattr(search, "INITIAL_CAPACITY", capacity)
    monkeypatch.setattr(search, "OUTPUT_SLOTS", per_wave * capacity)  # per_wave blocks a launch
    rng = np.random.default_rng(350)
    a = clustered_codes(rng, 200, centers=3, max_flips=3)  # thousands of pairs per block
    b = a[::3].copy()
    for strategy in ("brute", "mih"):
        for threshold in (0, 4):
            assert_pairs_equal(run(a, None, threshold, strategy),
                               naive_hamming_pairs(a, None, threshold))
            assert_pairs_equal(run(a, b, threshold, strategy),
                               naive_hamming_pairs(a, b, threshold))


def test_capacity_growth_over_many_waves(monkeypatch):
    # every block overflows in the first launch; later launches start with the grown capacity
    monkeypatch.setattr(search, "BLOCK_ROWS", 16)
    monkeypatch.setattr(search, "INITIAL_CAPACITY", 1)
    monkeypatch.setattr(search, "OUTPUT_SLOTS", 4)  # four blocks in the first launch
    a = np.zeros(400, np.uint64)
    a[::2] = 1
    for strategy in ("brute", "mih"):
        assert_pairs_equal(run(a, None, 1, strategy), naive_hamming_pairs(a, None, 1))


def _kernel_brute(a, b, threshold, self_join, block_rows, capacity):
    nblocks = -(-a.size // block_rows)
    counts = np.zeros(nblocks, np.int64)
    out_i = np.full((nblocks, capacity), -1, np.int64)
    out_j = np.full((nblocks, capacity), -1, np.int64)
    out_d = np.zeros((nblocks, capacity), np.uint8)
    starts = np.arange(0, a.size, block_rows, dtype=np.int64)[:counts.size]
    cpu.hamming_range(a, b, threshold, self_join, starts, block_rows, counts, out_i, out_j,
                      out_d)
    return counts, out_i, out_j, out_d


@pytest.mark.parametrize("block_rows", [1, 5, 64, 1000])
def test_hamming_range_kernel_blocks(block_rows):
    rng = np.random.default_rng(351)
    a = clustered_codes(rng, 333, centers=4, max_flips=4)
    b = np.concatenate([a[:100], random_codes(rng, 5000)])  # wider than one column tile
    for self_join, other in ((True, a), (False, b)):
        expected = naive_hamming_pairs(a, None if self_join else other, 3)
        counts, oi, oj, od = _kernel_brute(a, other, 3, self_join, block_rows, 4096)
        kept = np.arange(4096)[None, :] < counts[:, None]
        i, j, d = oi[kept], oj[kept], od[kept]
        order = np.lexsort((j, i))
        assert_pairs_equal((i[order], j[order], d[order]), expected)
        # each block holds only its own rows
        for blk in range(counts.size):
            rows = oi[blk, :counts[blk]]
            assert ((rows >= blk * block_rows) & (rows < (blk + 1) * block_rows)).all()


def test_hamming_range_kernel_reports_true_counts_when_full():
    a = np.zeros(50, np.uint64)
    counts, oi, _, _ = _kernel_brute(a, a, 0, True, 10, 3)
    # block k holds rows 10k..10k+9, each paired with every later row
    expected = [sum(49 - i for i in range(10 * k, 10 * k + 10)) for k in range(5)]
    np.testing.assert_array_equal(counts, expected)
    assert (oi >= 0).all()  # three pairs stored per block, nothing written past them


def test_hamming_range_kernel_block_starts():
    rng = np.random.default_rng(352)
    a = clustered_codes(rng, 100)
    counts = np.zeros(2, np.int64)
    oi = np.empty((2, 5000), np.int64)
    oj = np.empty((2, 5000), np.int64)
    od = np.empty((2, 5000), np.uint8)
    cpu.hamming_range(a, a, 5, True, np.array([40, 60]), 20, counts, oi, oj, od)
    i, j, _ = naive_hamming_pairs(a, None, 5)
    rows = (i >= 40) & (i < 80)
    assert counts.sum() == rows.sum()
    got = sorted(zip(np.concatenate([oi[k, :counts[k]] for k in range(2)]).tolist(),
                     np.concatenate([oj[k, :counts[k]] for k in range(2)]).tolist()))
    assert got == list(zip(i[rows].tolist(), j[rows].tolist()))


def test_mih_bucket_sort_kernel():
    rng = np.random.default_rng(353)
    codes = random_codes(rng, 500)
    shift, mask = np.uint64(13), np.uint64(0x3FF)
    offsets = np.empty(int(mask) + 2, np.int64)
    order = np.empty(500, np.int64)
    sorted_codes = np.empty(500, np.uint64)
    cpu.mih_bucket_sort(codes, shift, mask, offsets, order, sorted_codes)
    keys = ((codes >> shift) & mask).astype(np.int64)
    np.testing.assert_array_equal(order, np.argsort(keys, kind="stable"))
    np.testing.assert_array_equal(sorted_codes, codes[order])
    np.testing.assert_array_equal(offsets, np.concatenate([[0], np.cumsum(
        np.bincount(keys, minlength=int(mask) + 1))]))


# ------------------------------------------------------------------------- planning


def test_plan_search():
    rng = np.random.default_rng(354)
    big, small = random_codes(rng, 20000), random_codes(rng, 20)
    assert search.plan_search(big, big, 3, "brute") == search.SearchPlan("brute")
    assert search.plan_search(small, small, 3, "mih").strategy == "mih"
    assert search.plan_search(big, big, 64).strategy == "brute"  # no mih for 64
    assert search.plan_search(big, big, 2).strategy == "mih"  # far cheaper than 2e4 pairs
    plan = search.plan_search(big, big, 8, "mih")
    assert plan.substrings > 8 // 3 and plan.substrings in search._mih_range_of_m(8)


# ------------------------------------------------------------- faiss as an outside check


@pytest.mark.parametrize("threshold", [0, 3, 8, 12])
def test_matches_faiss_range_search(threshold):
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(360 + threshold)
    a = np.concatenate([clustered_codes(rng, 2500, centers=40, max_flips=6),
                        random_codes(rng, 500)])
    b = np.concatenate([clustered_codes(rng, 1500, centers=40, max_flips=6), a[:200]])
    index = faiss.IndexBinaryFlat(64)
    index.add(np.ascontiguousarray(b).view(np.uint8).reshape(-1, 8))
    lims, dist, labels = index.range_search(
        np.ascontiguousarray(a).view(np.uint8).reshape(-1, 8), threshold + 1)
    fi = np.repeat(np.arange(a.size), np.diff(lims).astype(np.int64))
    order = np.lexsort((labels, fi))
    expected = (fi[order], labels[order].astype(np.int64), dist[order].astype(np.uint8))
    for strategy in STRATEGIES:
        assert_pairs_equal(run(a, b, threshold, strategy), expected)


# ------------------------------------------------------------------------- threads


def test_thread_count_does_not_change_results():
    import numba

    import gpudedup as gd

    rng = np.random.default_rng(370)
    codes = clustered_codes(rng, 900, centers=5)
    images = rng.integers(0, 256, (70, 30, 20), dtype=np.uint8)
    floats = images.astype(np.float32) - 100
    before = numba.get_num_threads()
    results = []
    try:
        for threads in sorted({1, 2, before}):
            numba.set_num_threads(threads)
            results.append((
                [run(codes, None, 4, s) for s in STRATEGIES],
                gd.phash(images), gd.phash(floats), gd.digest(images),
            ))
    finally:
        numba.set_num_threads(before)
    first = results[0]
    for other in results[1:]:
        for got, expected in zip(other[0], first[0]):
            assert_pairs_equal(got, expected)
        for got, expected in zip(other[1:], first[1:]):
            np.testing.assert_array_equal(got, expected)


def test_concurrent_calls_from_python_threads():
    # in a child process: a threading layer without concurrency support would abort it
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        from concurrent.futures import ThreadPoolExecutor
        import numpy as np
        import gpudedup as gd
        x = np.random.default_rng(371).integers(0, 256, (120, 24, 24), dtype=np.uint8)
        x[7] = x[3]
        ref_p, ref_o = gd.phash(x), list(gd.find_overlaps(x, threshold=6))
        def job(k):
            return (gd.phash(x) == ref_p).all() and list(gd.find_overlaps(x, threshold=6)) == ref_o
        with ThreadPoolExecutor(4) as pool:
            assert all(pool.map(job, range(8)))
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_digest_pairs_sort_on_all_64_bits():
    # digests that agree in float64 but not as integers must not split a run of equal ones
    d = np.array([[2**62 + 1, 5], [2**62 + 2, 5], [2**62 + 1, 5], [2**62 + 2, 5]], np.uint64)
    i, j = search.digest_pairs(d, None)
    assert list(zip(i.tolist(), j.tolist())) == [(0, 2), (1, 3)]
    i, j = search.digest_pairs(d[:2], d[2:])
    assert list(zip(i.tolist(), j.tolist())) == [(0, 0), (1, 1)]
