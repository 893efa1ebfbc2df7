"""The two benchmarks, phash throughput and Hamming range search: every method timed round-robin
on the same inputs, checked against the reference, and summed up as the JSON's rows."""

from __future__ import annotations

import statistics
from functools import partial

import numpy as np

from bench import log
from bench.data import Sizes, phash_images
from bench.peers import NUMPY_BLOCK, Method, floor_name, reference_name
from bench.timing import add_rates, round_robin, summary, timed


def bench_phash(methods: dict[str, Method], levels, sizes: Sizes, repeat: int,
                rng: np.random.Generator) -> list[dict]:
    """Throughput of every phash method per image size, and bit-identity with the reference."""
    rows = []
    for side, n_all, n_sub in sizes.phash:
        images = phash_images(levels, n_all, side, rng)
        for m in methods.values():  # warm-up: numba compilation, imports, first calls
            m.run(m.prepare(images[:4]))
        rows.append(_phash_row(methods, images, n_sub, repeat))
    return rows


def _phash_row(methods: dict[str, Method], images: np.ndarray, n_sub: int, repeat: int) -> dict:
    """The JSON row of one image size: each method's timings and rates, checked bit by bit."""
    ref = reference_name(methods)
    floor = floor_name(methods)
    inputs = {name: m.prepare(images[:n_sub] if m.per_image else images)
              for name, m in methods.items()}
    results = {}

    def keep_first(name, rep, out):
        if rep == 0:
            results[name] = methods[name].result(out)

    side = images.shape[1]
    times = round_robin({name: partial(m.run, inputs[name]) for name, m in methods.items()},
                        repeat, on_result=keep_first, label=f"phash {side}x{side}")

    def rate(name):
        return len(inputs[name]) / statistics.median(times[name])

    ref_codes = results[ref]
    ref_rate = rate(ref)
    floor_rate = rate(floor) if floor else None
    entry = {"side": side, "methods": {}}
    for name, m in methods.items():
        count = len(inputs[name])
        rec = {"images": count, **summary(times[name]), "note": m.note}
        add_rates(rec, count, "images_per_s", ref_rate, floor_rate)
        if not m.reference and not m.floor:
            n = min(count, ref_codes.size)
            same = results[name][:n] == ref_codes[:n]
            rec["compared"] = int(n)
            rec["mismatches"] = int(n - same.sum())
            rec["bit_identical"] = bool(same.all())
        entry["methods"][name] = rec
    entry["reference"] = ref
    return entry


def _same(pairs, ref) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(pairs, ref, strict=True))


def _plan_budgeted(m: Method, a, b, sizes: Sizes, repeat: int) -> dict:
    """How to run a slow peer: in full with some repeats, or on leading rows and extrapolated."""
    probe = min(a.size, 1024)
    sec, _ = timed(m.run, a[:probe], b, max(sizes.thresholds))
    estimate = sec * a.size / probe
    budget = sizes.numpy_budget_s
    if estimate <= budget:
        return {"rows": int(a.size), "repeats": max(1, min(repeat, int(budget // estimate))),
                "estimate_full_s": estimate}
    rows = max(probe, int(a.size * budget / estimate / repeat) // NUMPY_BLOCK * NUMPY_BLOCK)
    return {"rows": int(min(rows, a.size)), "repeats": repeat, "estimate_full_s": estimate}


def bench_search(methods: dict[str, Method], a: np.ndarray, b: np.ndarray, bases, sizes: Sizes,
                 repeat: int, backend_name: str) -> list[dict]:
    """Range search of every method for every threshold, checked against the reference.

    ``bases`` (the base image of each code of A and of B) only splits the reference's pairs into
    planted near duplicates (same base) and chance matches (different bases), for the record.
    """
    from gpudedup import backend as backends
    from gpudedup import search

    be = backends.resolve(backend_name)
    for m in methods.values():  # warm-up: numba compilation, imports, thread pools
        m.run(a[:2000], b[:2000], max(sizes.thresholds))
    plans = {}
    for name, m in methods.items():
        if m.budgeted:
            plans[name] = _plan_budgeted(m, a, b, sizes, repeat)
            p = plans[name]
            log(f"  {name}: full run estimated {p['estimate_full_s']:.0f}s per threshold -> "
                f"{p['rows']} rows x {p['repeats']} repeat(s)")
    rows_of = {name: plans[name]["rows"] if name in plans else a.size for name in methods}
    repeats = {name: plan["repeats"] for name, plan in plans.items()}
    return [_search_row(methods, a, b, r, bases, rows_of, repeat, repeats,
                        search.plan_search(a, b, r, "auto", be))
            for r in sizes.thresholds]


def _search_row(methods: dict[str, Method], a, b, r: int, bases, rows_of: dict[str, int],
                repeat: int, repeats: dict[str, int], auto_plan) -> dict:
    """The JSON row of one threshold: each method's timings and rates, its pairs checked
    against the reference's (of the same rows where a budgeted peer ran on fewer)."""
    ref = reference_name(methods)
    floor = floor_name(methods)
    results, counts = {}, {name: [] for name in methods}

    def count_and_keep_first(name, rep, out):
        m = methods[name]
        res = m.result(out)
        counts[name].append(int(res) if m.floor else int(res[0].size))
        if rep == 0:
            results[name] = res

    calls = {name: partial(m.run, a[:rows_of[name]], b, r) for name, m in methods.items()}
    times = round_robin(calls, repeat, repeats=repeats, on_result=count_and_keep_first,
                        label=f"search r={r}")
    pairs_total = a.size * b.size
    ref_pairs = results[ref]
    ref_rate = pairs_total / statistics.median(times[ref])
    floor_rate = pairs_total / statistics.median(times[floor]) if floor else None
    same_base = bases[0][ref_pairs[0]] == bases[1][ref_pairs[1]]
    entry = {"threshold": r, "reference": ref,
             "auto_plan": {"strategy": auto_plan.strategy, "substrings": auto_plan.substrings},
             "pairs_same_base": int(same_base.sum()),
             "pairs_different_base": int(same_base.size - same_base.sum()),
             "methods": {}}
    for name, m in methods.items():
        rows = rows_of[name]
        rec = {**summary(times[name]), "note": m.note, **m.extra,
               "counts_all_repeats": counts[name]}
        rec["rows_timed"] = int(rows)
        rec["extrapolated"] = rows < a.size
        if rec["extrapolated"]:
            rec["seconds_timed"] = rec["seconds"]
            rec["seconds"] = rec["seconds"] * a.size / rows
        add_rates(rec, pairs_total, "pairs_per_s", ref_rate, floor_rate)
        res = results[name]
        if m.floor:  # a count of the pairs, nothing to compare pair by pair
            rec["pairs"] = int(res)
            rec["same_pairs"] = int(res) == ref_pairs[0].size
            entry["methods"][name] = rec
            continue
        if rows < a.size:  # compare with the reference's pairs of the same rows
            keep = ref_pairs[0] < rows
            ref_here = tuple(x[keep] for x in ref_pairs)
        else:
            ref_here = ref_pairs
        rec["pairs"] = int(res[0].size) if rows == a.size else None
        rec["pairs_in_rows_timed"] = int(res[0].size)
        rec["same_pairs"] = _same(res, ref_here) and len(set(counts[name])) == 1
        entry["methods"][name] = rec
    return entry
