"""This checkout beside an earlier commit on the 150k x 150k range-search bench.

``python -m bench.compare REV`` makes range-search codes as ``python -m bench`` does (its
sizes; photo crops with planted variants), checks REV out into a temporary git worktree, and times
``find_overlaps(HashSet.from_phash(a), HashSet.from_phash(b), threshold=r)`` at r = 0, 4
and 8 in fresh processes of each checkout, alternated (this one, REV, this one, ...), the
pair columns made inside the timing (``left``, ``right``, ``distance``, ``exact``). Every
run's columns are checksummed: the two checkouts must give the same pairs. Results:
bench/results/compare-cpu.json (the ratio REV seconds / these seconds per radius).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench import data, log, report
from bench.timing import summary

ROOT = Path(__file__).resolve().parent.parent
RADII = (0, 4, 8)

#: run in a fresh process with the checkout first on sys.path: seconds and a checksum per radius
_WORKER = r"""
import hashlib, json, sys, time, warnings
import numpy as np
import gpudedup as gd
warnings.simplefilter("ignore")  # codes only: the near pairs are unverified, and it says so
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
ha, hb = gd.HashSet.from_phash(a), gd.HashSet.from_phash(b)
out = {}
for r in map(int, sys.argv[3].split(",")):
    gd.find_overlaps(ha, hb, threshold=r, backend="cpu")  # compile and warm
    start = time.perf_counter()
    ov = gd.find_overlaps(ha, hb, threshold=r, backend="cpu")
    cols = (ov.left, ov.right, ov.distance, ov.exact)
    seconds = time.perf_counter() - start
    digest = hashlib.sha1(b"".join(np.ascontiguousarray(c).tobytes() for c in cols))
    out[r] = {"seconds": seconds, "pairs": len(ov), "sha1": digest.hexdigest()}
print(json.dumps(out))
"""


def _run(checkout: Path, a: Path, b: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", _WORKER, str(a), str(b),
                           ",".join(map(str, RADII))], cwd=checkout, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(checkout)})
    if done.returncode:
        raise RuntimeError(f"{checkout}: {done.stderr[-2000:]}")
    return {int(k): v for k, v in json.loads(done.stdout.splitlines()[-1]).items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the earlier commit (any git revision)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rev = subprocess.run(["git", "rev-parse", args.rev], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    rng = np.random.default_rng(args.seed)
    log("making the range-search codes")
    sizes = data.SIZES[("cpu", False)]
    levels = data.build_pyramid(data.load_photos())
    a, b, _, _ = data.make_codes(levels, sizes, rng)
    runs = {"this": [], "rev": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.save(tmp / "a.npy", a)
        np.save(tmp / "b.npy", b)
        worktree = tmp / "rev"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(worktree), rev],
                       cwd=ROOT, check=True)
        try:
            for k in range(args.repeat):
                for name, checkout in (("this", ROOT), ("rev", worktree)):
                    runs[name].append(_run(checkout, tmp / "a.npy", tmp / "b.npy"))
                    log(f"  {name} run {k + 1}: " + ", ".join(
                        f"r={r} {v['seconds']:.3f} s" for r, v in runs[name][-1].items()))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT,
                           check=False)
    radii = {}
    for r in RADII:
        sums = {run[r]["sha1"] for name in runs for run in runs[name]}
        this = summary([run[r]["seconds"] for run in runs["this"]])
        before = summary([run[r]["seconds"] for run in runs["rev"]])
        radii[str(r)] = {"pairs": runs["this"][0][r]["pairs"], "same_pairs": len(sums) == 1,
                         "this": this, "rev": before,
                         "rev_over_this": round(before["seconds"] / this["seconds"], 2)}
    record = {"schema_version": report.SCHEMA_VERSION, "kind": "compare", "backend": "cpu",
              "rev": rev, "repeat": args.repeat, "codes": [int(a.size), int(b.size)],
              "machine": report.machine_info(), "versions": report.versions(),
              "radii": radii}
    out = args.out or report.RESULTS_DIR / "compare-cpu.json"
    report.write(record, out)
    for r, row in radii.items():
        print(f"r={r}: {row['pairs']:,} pairs, same pairs {row['same_pairs']}; this "
              f"{row['this']['seconds']:.3f} s, {rev[:8]} {row['rev']['seconds']:.3f} s "
              f"({row['rev_over_this']}x)")
    log(f"wrote {out}")
    return 0 if all(row["same_pairs"] for row in radii.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
