"""Big clusters: scan and clean of images full of identical (or near-identical) copies.

``python -m bench.groups`` writes HDF5 files made here (no download):

* ``exact``: 50,000 identical blank 28x28 images and 50,000 distinct ones (uniform noise),
  shuffled, in ``/train``, and ``/test`` with 1,000 distinct images and 10 blank ones;
* ``near``: 20,000 blank 28x28 images with one pixel of each set to a random value (a
  cluster of near copies), and 20,000 distinct ones;
* ``noisy``: 20,000 copies of one image with three pixels changed by up to 20 grey levels
  (true near copies, skipped once joined: gpudedup/joined.py), and 20,000 distinct ones;
* ``near`` and ``noisy`` data (new draws) under ``--invariant dihedral`` (a second search, of
  the variant hashes, which skips alike);

and runs ``gpudedup scan FILE --json OUT`` and ``gpudedup clean FILE -o OUT --max-removed 1``
in fresh processes (the numba cache warmed first, so compiling is excluded; interpreter start
and imports are included), with wall seconds and peak resident memory (``/usr/bin/time``).
Results: bench/results/groups-cpu.json.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench import log, report
from bench.timing import summary

SIDE = 28


def exact_case(rng) -> dict[str, np.ndarray]:
    """50,000 blank and 50,000 distinct images in train; test: 1,000 distinct, 10 blank."""
    train = np.zeros((100_000, SIDE, SIDE), np.uint8)
    train[50_000:] = rng.integers(0, 256, (50_000, SIDE, SIDE), dtype=np.uint8)
    test = np.zeros((1_010, SIDE, SIDE), np.uint8)
    test[10:] = rng.integers(0, 256, (1_000, SIDE, SIDE), dtype=np.uint8)
    return {"train": train[rng.permutation(train.shape[0])], "test": test}


def near_case(rng) -> dict[str, np.ndarray]:
    """20,000 blank images with one random pixel each, and 20,000 distinct images."""
    n = 20_000
    train = np.zeros((2 * n, SIDE, SIDE), np.uint8)
    flat = train[:n].reshape(n, -1)
    flat[np.arange(n), rng.integers(0, SIDE * SIDE, n)] = rng.integers(1, 256, n)
    train[n:] = rng.integers(0, 256, (n, SIDE, SIDE), dtype=np.uint8)
    return {"train": train[rng.permutation(2 * n)],
            "test": rng.integers(0, 256, (1_000, SIDE, SIDE), dtype=np.uint8)}


def noisy_case(rng) -> dict[str, np.ndarray]:
    """20,000 copies of one blocky image with three pixels changed by up to 20 grey levels
    each (true near copies: 200 million verified pairs if every one were scored), and 20,000
    distinct images."""
    n = 20_000
    logo = np.repeat(np.repeat(rng.integers(0, 256, (7, 7)), 4, 0), 4, 1).astype(np.int16)
    copies = np.repeat(logo[None], n, 0).reshape(n, -1)
    for where in rng.integers(0, SIDE * SIDE, (3, n)):
        copies[np.arange(n), where] += rng.integers(-20, 21, n).astype(np.int16)
    train = np.concatenate([np.clip(copies, 0, 255).astype(np.uint8).reshape(n, SIDE, SIDE),
                            rng.integers(0, 256, (n, SIDE, SIDE), dtype=np.uint8)])
    return {"train": train[rng.permutation(2 * n)],
            "test": rng.integers(0, 256, (1_000, SIDE, SIDE), dtype=np.uint8)}


#: name, data, scan and clean options
CASES = (("exact", exact_case, ()), ("near", near_case, ()), ("noisy", noisy_case, ()),
         ("near, dihedral", near_case, ("--invariant", "dihedral")),
         ("noisy, dihedral", noisy_case, ("--invariant", "dihedral")))


def _timed(command: list[str]) -> dict:
    done = subprocess.run(["/usr/bin/time", "-f", "TIME %e %M", *command],
                          capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    match = re.search(r"TIME ([\d.]+) (\d+)", done.stderr)
    return {"seconds": float(match.group(1)), "peak_rss_mb": int(match.group(2)) / 1024,
            "stdout": done.stdout}


def run_case(name: str, splits: dict[str, np.ndarray], repeat: int, tmp: Path,
             options: tuple[str, ...] = ()) -> dict:
    import h5py

    name = name.replace(", ", "-")  # the file names
    path = tmp / f"{name}.h5"
    with h5py.File(path, "w") as f:
        for split, images in splits.items():
            f.create_dataset(split, data=images, chunks=(min(1024, len(images)), SIDE, SIDE))
    exe = [sys.executable, "-m", "gpudedup.cli"]
    _timed([*exe, "scan", str(path), "--quiet", *options])  # warm the numba cache
    out = {"images": {k: int(v.shape[0]) for k, v in splits.items()}, "options": list(options)}
    for command, args in (("scan", ["--json", str(tmp / f"{name}.json"), "--quiet"]),
                          ("clean", ["-o", str(tmp / f"{name}-clean.h5"), "--max-removed",
                                     "1", "--quiet"])):
        args = [*args, *options]
        runs = []
        for _ in range(repeat):
            (tmp / f"{name}-clean.h5").unlink(missing_ok=True)
            runs.append(_timed([*exe, command, str(path), *args]))
        out[command] = {**summary([r["seconds"] for r in runs]),
                        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}
        log(f"  {name} {command}: {out[command]['seconds']:.2f} s, "
            f"{out[command]['peak_rss_mb']:.0f} MB")
    data = json.loads((tmp / f"{name}.json").read_text())
    out["groups"] = len(data["groups"])
    out["largest_group"] = data["groups"][0] if data["groups"] else None
    if out["largest_group"] and out["largest_group"]["indices"] is not None:
        out["largest_group"] = {k: v for k, v in out["largest_group"].items() if k != "indices"}
    out["rows"] = len(data["pairs"])
    out["unchecked_pairs"] = sum(s["unchecked_pairs"] for s in data["summary"]["splits"].values())
    out["pairs"] = (sum(r["pairs"] for r in data["summary"]["leaks"])
                    + sum(s["duplicate_pairs"] for s in data["summary"]["splits"].values()))
    return out


def markdown(record: dict) -> str:
    lines = [f"Big clusters, {record['machine'].get('cpu_model', '?')} (fresh process, compile "
             "excluded):", "",
             "| case | images | pairs | unchecked | report rows | largest group | scan s | "
             "scan MB | clean s | clean MB |", "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for name, c in record["cases"].items():
        g = c["largest_group"] or {}
        where = ", ".join(f"{k} {v:,}" for k, v in g.get("members", {}).items())
        largest = f"{g.get('size', 0):,} ({where})" if g else "-"
        lines.append(f"| {name} | {sum(c['images'].values()):,} | {c['pairs']:,} | "
                     f"{c.get('unchecked_pairs', 0):,} | {c['rows']:,} | {largest} | "
                     f"{c['scan']['seconds']:.2f} | "
                     f"{c['scan']['peak_rss_mb']:.0f} | {c['clean']['seconds']:.2f} | "
                     f"{c['clean']['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    record = {"schema_version": report.SCHEMA_VERSION, "kind": "groups", "backend": "cpu",
              "repeat": args.repeat, "machine": report.machine_info(),
              "versions": report.versions(), "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, make, options in CASES:
            log(f"{name} case")
            record["cases"][name] = run_case(name, make(rng), args.repeat, Path(tmp),
                                             options)
    record["table_markdown"] = markdown(record)
    out = args.out or report.RESULTS_DIR / "groups-cpu.json"
    report.write(record, out)
    print(record["table_markdown"])
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
