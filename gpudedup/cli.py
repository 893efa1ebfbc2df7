"""The ``gpudedup`` command."""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .api import DEFAULT_THRESHOLD, scan
from .backend import BACKENDS


class UsageError(Exception):
    """A problem with the command line or its inputs: one line on stderr, exit status 2."""


def _threshold(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer from 0 to 64, got {text!r}") from None
    if not 0 <= value <= 64:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to 64, got {value}")
    return value


def _add_search_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threshold", type=_threshold, default=DEFAULT_THRESHOLD,
                        help=f"largest Hamming distance of a near pair (default "
                             f"{DEFAULT_THRESHOLD})")
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    parser.add_argument("--progress", action="store_true", help="show progress bars")


def _cmd_demo(args) -> int:
    from .demo import make_demo

    data = make_demo(seed=args.seed)
    print("gpudedup demo: a built-in train/valid/test set of 28x28 glyphs with planted")
    print("duplicates. Planted:")
    for line in data.planted:
        print(f"  - {line}")
    report = scan(data.splits, labels=data.labels, threshold=args.threshold,
                  backend=args.backend, progress=args.progress)
    print()
    print("Found:")
    for (a, b), ov in report.overlaps.items():
        for (i, j), d, exact in zip(ov, ov.distance.tolist(), ov.exact.tolist()):
            kind = "exact" if exact else f"near (distance {d})"
            print(f"  - leak {a}[{i}] ~ {b}[{j}]: {kind}")
    for name, ov in report.duplicates.items():
        for (i, j), d, exact in zip(ov, ov.distance.tolist(), ov.exact.tolist()):
            kind = "exact" if exact else f"near (distance {d})"
            print(f"  - duplicate {name}[{i}] ~ {name}[{j}]: {kind}")
    for c in report.conflicts:
        print(f"  - label conflict {c.a}[{c.i}] (label {c.label_a}) vs {c.b}[{c.j}] "
              f"(label {c.label_b})")
    print()
    print(report)
    if args.json:
        report.to_json(args.json)
        print(f"\nJSON report written to {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpudedup",
        description="Find leaked, duplicated and near-duplicated images in dataset splits.",
    )
    parser.add_argument("--version", action="version", version=f"gpudedup {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run a scan on a built-in demo dataset")
    _add_search_options(demo)
    demo.add_argument("--seed", type=int, default=0, help="seed of the demo data")
    demo.add_argument("--json", metavar="OUT", help="also write the JSON report here")
    demo.set_defaults(run=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gpudedup`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (UsageError, ValueError, TypeError, OSError, RuntimeError) as exc:
        print(f"gpudedup: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gpudedup: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
