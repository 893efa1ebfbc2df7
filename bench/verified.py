"""What the pixel check costs: a verified search beside the unverified one, same inputs, same run.

``python -m bench.verified`` builds the images of the range-search benchmark at one size (base
crops of the scikit-image photographs and their variants: brightness/contrast, noise, shift,
blur, JPEG; bench/README.md), split into A and B of 150,000 images each (``--quick``: 20,000),
and times ``gd.find_overlaps(A, B)`` with ``verify=False`` and ``verify=True`` at the default
radius, round-robin. Hashing is timed apart (from HashSets the two calls differ only in the
search and the check), so the ratio is the check's cost on the search, and the whole call's.
A second part scans Fashion-MNIST (70,000 real 28x28 images, train and test from one HDF5
file) when it is installed (``apt-get install dataset-fashion-mnist``), with seconds and peak
resident memory of a fresh process per setting. Results: bench/results/verified-<backend>.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np

from bench import data, log, report
from bench.timing import round_robin, summary

#: one image size for the whole benchmark: verification compares images of one shape
SIDE = 32
#: images per side
N_FULL, N_QUICK = 150_000, 20_000


def make_images(n_side: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A and B: ``n_side`` images each, bases and their variants shuffled across the two."""
    photos = data.load_photos()
    levels = data.build_pyramid(photos)
    n_var = 10
    n_bases = 2 * n_side // n_var
    big = data.random_crops(levels, n_bases, SIDE + 2 * data.MARGIN, rng)
    images = np.empty((n_bases, n_var, SIDE, SIDE), dtype=np.uint8)
    images[:, 0] = data._center(big, SIDE)
    kinds = list(data.VARIANTS)
    kind = rng.integers(len(kinds), size=(n_bases, n_var - 1))
    for v in range(1, n_var):
        for k, name in enumerate(kinds):
            idx = np.flatnonzero(kind[:, v - 1] == k)
            if idx.size:
                images[idx, v] = data.VARIANTS[name](big[idx], SIDE, rng)
    flat = images.reshape(-1, SIDE, SIDE)[rng.permutation(n_bases * n_var)]
    return np.ascontiguousarray(flat[:n_side]), np.ascontiguousarray(flat[n_side:2 * n_side])


def bench_search(a: np.ndarray, b: np.ndarray, repeat: int, backend: str) -> dict:
    """Hashing once, then the search with and without the pixel check, round-robin."""
    import gpudedup as gd

    gd.find_overlaps(a[:500], b[:500], backend=backend)  # compile
    hash_seconds = []
    for _ in range(repeat):
        t0 = _clock()
        ha, hb = gd.hash_images(a, backend=backend), gd.hash_images(b, backend=backend)
        hash_seconds.append(_clock() - t0)
    results = {}

    def keep(name, rep, out):
        if rep == 0:
            results[name] = out

    calls = {f"verify={v}": partial(gd.find_overlaps, ha, hb, verify=v, backend=backend)
             for v in (False, True)}
    times = round_robin(calls, repeat, on_result=keep, label="search")
    plain, checked = results["verify=False"], results["verify=True"]
    t_hash = float(np.median(hash_seconds))
    t_plain = summary(times["verify=False"])["seconds"]
    t_checked = summary(times["verify=True"])["seconds"]
    return {
        "images_per_side": int(a.shape[0]), "side": SIDE, "threshold": gd.DEFAULT_THRESHOLD,
        "min_similarity": gd.DEFAULT_MIN_SIMILARITY,
        "hashing": summary(hash_seconds),
        "unverified": {**summary(times["verify=False"]), "pairs": len(plain)},
        "verified": {**summary(times["verify=True"]), "pairs": len(checked),
                     "candidates_per_s": len(plain) / t_checked},
        "ratio_search": t_checked / t_plain,
        "ratio_with_hashing": (t_hash + t_checked) / (t_hash + t_plain),
    }


def _clock() -> float:
    import time

    return time.perf_counter()


SCAN_CHILD = """
import json, resource, sys, time
import gpudedup as gd
path, verify = sys.argv[1], sys.argv[2] == "1"
splits = {"train": path + ":/train", "test": path + ":/test"}
gd.scan({"test": path + ":/test"})  # compile (cached kernels load here)
try:  # peak resident memory of the scan alone: reset the high-water mark after the warm-up
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    pass
t0 = time.perf_counter()
rep = gd.scan(splits, verify=verify)
seconds = time.perf_counter() - t0
pairs = sum(len(o) for o in rep.overlaps.values()) + sum(len(o) for o in rep.duplicates.values())
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
try:
    with open("/proc/self/status") as f:
        peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
except (OSError, StopIteration):
    pass
print(json.dumps({"seconds": seconds, "pairs": pairs, "peak_rss_mb": peak}))
"""


def bench_fashion(repeat: int) -> dict | None:
    """Fashion-MNIST (70,000 28x28) scanned from HDF5 in a fresh process per run: seconds
    and peak resident memory (the process's high-water mark reset after a warm-up scan, so
    compiling is excluded; the interpreter and libraries are included)."""
    import h5py

    from bench.realdata import FASHION_INSTALL, load_fashion_mnist

    try:
        images, _ = load_fashion_mnist()
    except (OSError, FileNotFoundError) as exc:
        log(f"Fashion-MNIST not found ({exc}); {FASHION_INSTALL}")
        return None
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "fashion.h5")
        with h5py.File(path, "w") as f:
            f["train"], f["test"] = images[:60000], images[60000:]
        for verify in (False, True):
            runs = []
            for _ in range(repeat):
                done = subprocess.run([sys.executable, "-c", SCAN_CHILD, path,
                                       "1" if verify else "0"], capture_output=True, text=True,
                                      check=True)
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            key = "verified" if verify else "unverified"
            out[key] = {**summary([r["seconds"] for r in runs]), "pairs": runs[0]["pairs"],
                        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}
            log(f"  fashion {key}: {out[key]['seconds']:.2f} s, {out[key]['pairs']} pairs, "
                f"{out[key]['peak_rss_mb']:.0f} MB")
    return out


def markdown(record: dict) -> str:
    """The README table of a run."""
    s = record["search"]
    lines = [f"Pixel check cost, {s['images_per_side']:,} x {s['images_per_side']:,} "
             f"{s['side']}x{s['side']} images, radius {s['threshold']}, "
             f"{record['machine'].get('cpu_model', '?')} ({record['backend']}):", "",
             "| | seconds | pairs |", "|---|---:|---:|",
             f"| hashing both sides | {s['hashing']['seconds']:.2f} | |",
             f"| search, unverified | {s['unverified']['seconds']:.2f} | "
             f"{s['unverified']['pairs']:,} |",
             f"| search + pixel check | {s['verified']['seconds']:.2f} | "
             f"{s['verified']['pairs']:,} |", "",
             f"Verified / unverified: {s['ratio_search']:.2f}x the search, "
             f"{s['ratio_with_hashing']:.2f}x with hashing."]
    f = record.get("fashion")
    if f:
        lines += ["", "Fashion-MNIST scan from HDF5 (70,000 28x28, train + test, compile "
                  "excluded):", "", "| | seconds | pairs | peak RSS (MB) |", "|---|---:|---:|---:|"]
        for key in ("unverified", "verified"):
            lines.append(f"| {key} | {f[key]['seconds']:.2f} | {f[key]['pairs']:,} | "
                         f"{f[key]['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{N_QUICK:,} images per side")
    parser.add_argument("--backend", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-fashion", action="store_true", help="skip the Fashion-MNIST scan")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    n = N_QUICK if args.quick else N_FULL
    log(f"making {2 * n:,} {SIDE}x{SIDE} images")
    a, b = make_images(n, rng)
    record = {"schema_version": report.SCHEMA_VERSION, "kind": "verified-search",
              "backend": args.backend, "quick": args.quick, "repeat": args.repeat,
              "machine": report.machine_info(), "versions": report.versions()}
    record["search"] = bench_search(a, b, args.repeat, args.backend)
    del a, b
    if not args.no_fashion:
        record["fashion"] = bench_fashion(args.repeat)
    table = markdown(record)
    record["table_markdown"] = table
    out = args.out or report.RESULTS_DIR / (f"verified-{args.backend}"
                                            f"{'-quick' if args.quick else ''}.json")
    report.write(record, out)
    print(table)
    log(f"wrote {out.relative_to(report.REPO) if out.is_relative_to(report.REPO) else out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
