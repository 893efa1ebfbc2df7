"""Scale-out on Dask: one worker process against two, on one HDF5 file, and the task sizes.

``python -m bench.dask_scale`` (see bench/README.md) writes bench/results/dask-cpu.json: an
HDF5 file of ``--images`` 28x28 uint8 images (blocky random pictures with planted exact and
noisy copies) is scanned for duplicates (``find_overlaps`` of a ``gd.dask_from_hdf5`` array,
the defaults: verified near pairs at radius 8) on a ``LocalCluster`` of 1 and of 2 worker
processes, one numba thread each, the two runs interleaved (``bench.timing.round_robin``),
median of ``--repeat``. Every run's answer is checked against the single-process call. Beside
the seconds: what the hashing tasks send back per image and the number, rows and seconds of
the search tasks, from which a reader can project 1e8-1e9 images (README "Scale out").
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import log
from bench.report import machine_info, versions, write
from bench.timing import round_robin, summary

COLUMNS = ("left", "right", "distance", "exact", "similarity", "residual", "shift",
           "transform", "offset", "verified")


def make_file(path: str, count: int, seed: int = 0) -> None:
    """``count`` blocky 28x28 images in ``path:/train`` (HDF5 chunks of 1000 images), with
    1% exact copies and 1% noisy copies planted."""
    import h5py

    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        out = f.create_dataset("train", (count, 28, 28), np.uint8, chunks=(1000, 28, 28))
        step = 50_000
        for lo in range(0, count, step):
            n = min(step, count - lo)
            base = rng.integers(0, 256, (n, 7, 7), dtype=np.uint8)
            x = np.repeat(np.repeat(base, 4, axis=1), 4, axis=2)
            k = n // 100
            x[n - k:] = x[:k]                                         # exact copies
            noisy = x[k:2 * k].astype(np.int16) + rng.integers(-4, 5, (k, 28, 28))
            x[n - 2 * k:n - k] = np.clip(noisy, 0, 255)               # near copies
            out[lo:lo + n] = x


def same(got, want) -> bool:
    return all(np.array_equal(getattr(got, c), getattr(want, c), equal_nan=True)
               for c in COLUMNS)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dask_scale", description=__doc__)
    parser.add_argument("--images", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/dask-cpu.json"))
    args = parser.parse_args(argv)

    import distributed

    import gpudedup as gd
    from gpudedup import distributed as on_dask

    tmp = tempfile.mkdtemp(prefix="gpudedup-dask-")
    path = os.path.join(tmp, "data.h5")
    log(f"writing {args.images:,} images to {path}")
    make_file(path, args.images)
    spec = f"{path}:/train"
    load_before = os.getloadavg()

    log("single process (reference answer, numba on every core)")
    gd.find_overlaps(spec)  # warm-up: numba's cache
    start = time.perf_counter()
    want = gd.find_overlaps(spec)
    local_seconds = time.perf_counter() - start

    clusters, clients = {}, {}
    for workers in (1, 2):
        clusters[workers] = distributed.LocalCluster(
            n_workers=workers, processes=True, threads_per_worker=1, dashboard_address=":0",
            silence_logs=logging.WARNING,
            env={"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
        clients[workers] = distributed.Client(clusters[workers], set_as_default=False)
    stats, correct = {}, {}

    def run(workers):
        def call():
            on_dask.run_stats(reset=True)
            return gd.find_overlaps(gd.dask_from_hdf5(spec), scheduler=clients[workers])
        return call

    def keep(name, rep, out):
        correct.setdefault(name, []).append(same(out, want))
        stats[name] = on_dask.run_stats()

    try:
        for workers in (1, 2):  # warm-up: numba's cache in every worker
            run(workers)()
        times = round_robin({f"{w} worker{'s' if w > 1 else ''}": run(w) for w in (1, 2)},
                            args.repeat, on_result=keep, label="dask")
    finally:
        for workers in (1, 2):
            clients[workers].close()
            clusters[workers].close()
        os.remove(path)

    one, two = times["1 worker"], times["2 workers"]
    record = {
        "benchmark": "dask_scale",
        "images": args.images, "image_shape": [28, 28], "dtype": "uint8",
        "call": "find_overlaps(gd.dask_from_hdf5('data.h5:/train')) (defaults: verified, "
                "radius 8)",
        "pairs": len(want), "exact_pairs": int(want.exact.sum()),
        "single_process": {"seconds": local_seconds, "numba_threads": "all cores"},
        "runs": {},
        "ratio_1_over_2_workers": statistics.median(one) / statistics.median(two),
        "load_average_before": list(load_before), "load_average_after": list(os.getloadavg()),
        "machine": machine_info(), "versions": versions(),
    }
    for name, seconds in times.items():
        s = stats[name]
        rows = np.array(s.search_rows, dtype=np.float64)
        n = args.images
        # comparisons of a self-join task: its rows against themselves (half) and all after
        starts = np.concatenate([[0], np.cumsum(rows)[:-1]])
        pairs_per_task = rows * (n - starts - rows) + rows * (rows - 1) / 2
        record["runs"][name] = {
            **summary(seconds), "answer_equals_single_process": all(correct[name]),
            "hash_tasks": s.hash_tasks,
            "hash_task_seconds_median": statistics.median(s.hash_seconds),
            "hash_bytes_back_per_image": s.bytes_back_per_image,
            "search_tasks": s.search_tasks,
            "search_rows_per_task": int(rows.max()),
            "search_task_seconds_median": statistics.median(s.search_seconds),
            "search_task_seconds_max": max(s.search_seconds),
            "search_task_seconds_sum": sum(s.search_seconds),
            # CPU seconds of the tasks' processes: equal across clusters when the cores are
            # free; wall seconds above them measure waiting for a core (a shared machine)
            "hash_task_cpu_seconds_sum": sum(s.hash_cpu_seconds),
            "search_task_cpu_seconds_sum": sum(s.search_cpu_seconds),
            "hash_pairs_compared": float(pairs_per_task.sum()),
            "hash_pairs_per_task_second": float(pairs_per_task.sum() / sum(s.search_seconds)),
        }
    write(record, args.out)
    print(f"{args.images:,} images, {len(want):,} pairs: 1 worker "
          f"{statistics.median(one):.2f}s, 2 workers {statistics.median(two):.2f}s, ratio "
          f"{record['ratio_1_over_2_workers']:.2f}; single process {local_seconds:.2f}s; "
          f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
