"""gpudedup benchmarks: perceptual-hash throughput and Hamming range search, beside their peers.

Run from the repository root::

    python -m bench                   # full run, writes bench/results/cpu.json
    python -m bench --quick           # small run (< 1 min), writes bench/results/cpu-quick.json
    python -m bench --smoke --out /tmp/b.json  # the harness end to end in seconds (CI)
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
    p.add_argument("--smoke", action="store_true",
                   help="a handful of images and codes, one repeat: the harness end to end "
                        "in seconds (CI; with --backend cuda also under NUMBA_ENABLE_CUDASIM=1)")
    p.add_argument("--repeat", type=int, default=None,
                   help="timed repeats per figure (median; default 3, 1 with --smoke)")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON path (default bench/results/<backend>[-quick].json)")
    p.add_argument("--seed", type=int, default=20240601, help="seed of every random choice")
    p.add_argument("--numpy-budget", type=float, default=None,
                   help="seconds per threshold the numpy brute force may take before it is "
                        "timed on a row subsample and extrapolated")
    args = p.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.smoke else 3
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if args.smoke and args.quick:
        p.error("--smoke and --quick are two different sizes: give one")
    return args


def _simulator_launches() -> None:
    """Under the CUDA simulator (about 5k threads/s), launch geometry as small as the tests use
    (tests/cuda/conftest.py), so a smoke run takes seconds. Only ever for --smoke."""
    from gpudedup.kernels import cuda as gk

    from gpudedup import search

    gk.THREADS, gk.PHASH_THREADS, gk.SEARCH_ROWS, gk.SEARCH_TILE = 8, 32, 8, 16
    search.BLOCK_ROWS = 8


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    load_start = report.load_average()
    sizes = data.SMOKE_SIZES if args.smoke else data.SIZES[args.backend, args.quick]
    if args.numpy_budget is not None:
        sizes = dataclasses.replace(sizes, numpy_budget_s=args.numpy_budget)
    gpu = gpu_skipped = None
    if args.backend == "cuda":
        from gpudedup import backend as backends

        if not backends.cuda_available():
            why = getattr(backends, "cuda_unavailable_reason", lambda: "no CUDA device")()
            log(f"--backend cuda cannot run here: {why}")
            return 2
        if backends.cuda_simulated():
            if not args.smoke:
                log("NUMBA_ENABLE_CUDASIM=1: only --smoke runs under the CUDA simulator")
                return 2
            _simulator_launches()
        gpu_skipped = peers.gpu_unavailable_reason()
        gpu = report.gpu_info() if gpu_skipped is None else None
    phash_methods = peers.PHASH_METHODS[args.backend]()
    search_methods = peers.SEARCH_METHODS[args.backend]()
    for name, why in {**phash_methods.skipped, **search_methods.skipped}.items():
        log(f"  skipping {name}: {why}")
    out_path = args.out or report.default_out_path(args.backend, args.quick, gpu, args.smoke)
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
        "smoke": args.smoke,
        "repeat": args.repeat,
        "seed": args.seed,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": report.machine_info(),
        "gpu": gpu,
        "gpu_skipped": gpu_skipped,
        "skipped": {"phash": phash_methods.skipped, "range_search": search_methods.skipped},
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
