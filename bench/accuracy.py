"""Accuracy of near-duplicate search by threshold: precision and recall on planted duplicates.

Run from the repository root::

    python -m bench.accuracy            # writes bench/results/accuracy.json, prints a table

The codes are those of the range-search benchmark (bench/data.py, ``make_codes``): crops of
scikit-image photographs (bases), each with 9 variants made by one transform (brightness and
contrast, noise, a 1-2 px shift, blur, a JPEG round trip), split at random into A and B. A pair
found between A and B is a true duplicate when both codes come from the same base and a false
one otherwise. For each threshold the table gives:

* recall: found same-base pairs / all same-base pairs between A and B, overall and per
  transform (a variant against its base);
* precision: same-base pairs / all pairs found.

gpudedup's phash is bit-identical to ``imagehash.phash`` (checked by the throughput benchmark
and the tests), so these figures are imagehash's too. The default threshold of gpudedup is
chosen from this table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bench import data, report

THRESHOLDS = tuple(range(0, 17))


def measure(bases: int, seed: int) -> dict:
    """Precision and recall per threshold on ``bases`` base images with 10 variants each."""
    import gpudedup as gd

    sizes = data.Sizes(phash=(), search_bases=bases, numpy_budget_s=0.0, search_variants=10,
                       thresholds=THRESHOLDS)
    rng = np.random.default_rng(seed)
    levels = data.build_pyramid(data.load_photos())
    a, b, (base_a, base_b), info = data.make_codes(levels, sizes, rng)
    same_base_total = info["same_base_pairs_between_a_and_b"]
    ov = gd.find_overlaps(gd.HashSet.from_phash(a), gd.HashSet.from_phash(b),
                          threshold=max(THRESHOLDS), backend="cpu")
    same = base_a[ov.left] == base_b[ov.right]
    rows = []
    for r in THRESHOLDS:
        within = ov.distance <= r
        found, true = int(within.sum()), int((within & same).sum())
        per_kind = {kind: stats[f"within_{r}"]
                    for kind, stats in info["variant_distance_to_base"].items()}
        rows.append({"threshold": r, "pairs": found, "true_pairs": true,
                     "precision": true / found if found else 1.0,
                     "recall": true / same_base_total, "recall_per_transform": per_kind})
    return {"bases": bases, "seed": seed, "codes": info, "results": rows}


def markdown(record: dict) -> str:
    kinds = list(record["codes"]["variant_distance_to_base"])
    lines = [
        f"Near-duplicate accuracy, {record['codes']['total_codes']:,} phash codes of "
        f"{record['bases']:,} photograph crops with 9 variants each, split into A and B:",
        "",
        "| r | pairs found | precision | recall | " + " | ".join(kinds) + " |",
        "|---:|---:|---:|---:|" + "---:|" * len(kinds),
    ]
    for row in record["results"]:
        per = " | ".join(f"{row['recall_per_transform'][k]:.2f}" for k in kinds)
        lines.append(f"| {row['threshold']} | {row['pairs']:,} | {row['precision']:.3f} | "
                     f"{row['recall']:.3f} | {per} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--bases", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=report.RESULTS_DIR / "accuracy.json")
    args = parser.parse_args(argv)
    record = measure(args.bases, args.seed)
    record["table_markdown"] = markdown(record)
    report.write(record, args.out)
    print(record["table_markdown"])
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
