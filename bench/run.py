"""gpudedup benchmarks: perceptual-hash throughput and Hamming range search, beside their peers.

Run from the repository root::

    python -m bench                   # full run, writes bench/results/cpu.json
    python -m bench --quick           # smoke run (< 1 min), writes bench/results/cpu-quick.json
    python -m bench --repeat 5 --out /tmp/b.json

Every figure is a median of repeats, and every gpudedup figure stands beside its peers measured
in the same run on the same inputs: on a shared machine only the ratios are meaningful. Methods
are run round-robin (method 1, 2, ..., then the next repeat) so that a change of load during the
run hits all of them alike. See bench/README.md for what is measured and why.

This module is the command only; the harness lives beside it (see bench/__init__.py): the
inputs in ``data``, gpudedup and its peers in ``peers`` (a new backend adds its methods there),
the round-robin timing in ``timing``, the two benchmarks in ``sections``, the machine record,
table and JSON in ``report``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script (python bench/run.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import data, log, peers, report, sections  # noqa: E402
from bench.timing import timed  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--backend", choices=sorted(peers.PHASH_METHODS), default="cpu")
    p.add_argument("--quick", action="store_true",
                   help="small sizes: a smoke run of under a minute")
    p.add_argument("--repeat", type=int, default=3, help="timed repeats per figure (median)")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON path (default bench/results/<backend>[-quick].json)")
    p.add_argument("--seed", type=int, default=20240601, help="seed of every random choice")
    p.add_argument("--numpy-budget", type=float, default=None,
                   help="seconds per threshold the numpy brute force may take before it is "
                        "timed on a row subsample and extrapolated")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    load_start = report.load_average()
    sizes = data.SIZES[args.backend, args.quick]
    if args.numpy_budget is not None:
        sizes = dataclasses.replace(sizes, numpy_budget_s=args.numpy_budget)
    phash_methods = peers.PHASH_METHODS[args.backend]()
    search_methods = peers.SEARCH_METHODS[args.backend]()
    gpu = report.gpu_info() if args.backend == "cuda" else None
    out_path = args.out or report.default_out_path(args.backend, args.quick, gpu)
    rng = np.random.default_rng(args.seed)

    log("loading photographs")
    photos = data.load_photos()
    levels = data.build_pyramid(photos)

    log("phash throughput")
    phash_seconds, phash_rows = timed(sections.bench_phash, phash_methods, levels, sizes,
                                      args.repeat, rng)

    log(f"making {2 * sizes.search_n:,} range-search codes")
    code_seconds, (a, b, bases, code_info) = timed(data.make_codes, levels, sizes, rng)
    log(f"range search {a.size:,} x {b.size:,}")
    search_seconds, search_rows = timed(sections.bench_search, search_methods, a, b, bases,
                                        sizes, args.repeat, args.backend)

    record = {
        "schema_version": report.SCHEMA_VERSION,
        "backend": args.backend,
        "quick": args.quick,
        "repeat": args.repeat,
        "seed": args.seed,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": report.machine_info(),
        "gpu": gpu,
        "versions": report.versions(),
        "photos": sorted(photos),
        "pyramid_scales": list(data.PYRAMID_SCALES),
        "phash": phash_rows,
        "range_search": {"n_a": int(a.size), "n_b": int(b.size), "thresholds":
                         list(sizes.thresholds), "numpy_budget_s": sizes.numpy_budget_s,
                         "codes": code_info, "results": search_rows},
        "section_seconds": {"phash": round(phash_seconds, 1),
                            "make_codes": round(code_seconds, 1),
                            "range_search": round(search_seconds, 1)},
    }
    record["load_average_1min"] = {"start": load_start, "end": report.load_average()}
    record["total_seconds"] = round(time.perf_counter() - started, 1)
    table = report.markdown(record)
    record["table_markdown"] = table
    report.write(record, out_path)
    print(table)
    log(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
