"""The ``gpudedup`` command: scan, clean, hash and demo."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from ._version import __version__
from .api import DEFAULT_THRESHOLD, scan
from .backend import BACKENDS
from .checks import check_threshold
from .clean import keep_masks, split_priority, write_clean
from .errors import GpudedupError, InputError
from .fileio import same_file
from .hashing import hash_source
from .hashset import HashSet, fingerprint, load_many, save_many
from .layout import SplitSpec, find_splits, parse_assignments
from .sources import as_source, get_dataset, open_h5_file


class UsageError(InputError):
    """A problem with the command line or its inputs: one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    # argparse's own errors: one line on stderr and status 2, like every other input error
    def error(self, message):
        raise UsageError(message)


def _threshold(text: str) -> int:
    try:
        return check_threshold(int(text))
    except (ValueError, InputError):
        raise argparse.ArgumentTypeError(
            f"expected an integer from 0 to 64, got {text!r}") from None


def _say(args, text: str = "") -> None:
    if not args.quiet:
        print(text)


def _progress(args) -> bool:
    if args.quiet:
        return False
    return args.progress or sys.stderr.isatty()


# ---------------------------------------------------------------------------- inputs


@dataclass
class _Inputs:
    handle: object
    specs: list[SplitSpec]
    splits: dict[str, object]
    labels: dict[str, object]


def _open_inputs(args) -> _Inputs:
    handle = open_h5_file(args.file, "FILE")
    explicit = parse_assignments(args.split, "--split")
    explicit_labels = parse_assignments(args.labels, "--labels")
    if explicit:
        specs = [SplitSpec(name, path, explicit_labels.get(name)) for name, path in
                 explicit.items()]
    else:
        specs = find_splits(handle)
        if not specs:
            raise UsageError(f"FILE: found no splits in {args.file!r} (looked for /train, "
                             "/valid, /test, x_train, train_images, train/images, "
                             "train_dataset, ...); name them with --split NAME=/dataset")
        specs = [SplitSpec(s.name, s.images, explicit_labels.get(s.name, s.labels))
                 for s in specs]
        found = ", ".join(f"{s.name}={s.images}" + (f" (labels {s.labels})" if s.labels else "")
                          for s in specs)
        _say(args, f"found splits: {found}")
    unknown = set(explicit_labels) - {s.name for s in specs}
    if unknown:
        raise UsageError(f"--labels: {', '.join(sorted(unknown))} is not a split")
    splits, labels = {}, {}
    for spec in specs:
        dataset = get_dataset(handle, spec.images, f"--split {spec.name}")
        as_source(dataset, f"--split {spec.name}")  # validates shape and dtype, names the option
        splits[spec.name] = dataset
        if spec.labels:
            values = get_dataset(handle, spec.labels, f"--labels {spec.name}")
            if values.ndim == 0 or values.shape[0] != dataset.shape[0]:
                got = values.shape[0] if values.ndim else "no"
                raise UsageError(f"--labels {spec.name}: {spec.labels} has {got} labels but "
                                 f"{spec.images} has {dataset.shape[0]} images")
            labels[spec.name] = values[()]
    return _Inputs(handle, specs, splits, labels)


def _with_cached_hashes(args, inputs: _Inputs) -> dict[str, object]:
    # replace splits by cached HashSets whose fingerprint still matches the file
    if not getattr(args, "hashes", None):
        return dict(inputs.splits)
    cache = load_many(args.hashes)
    out = {}
    for name, dataset in inputs.splits.items():
        source = as_source(dataset, f"--split {name}")
        cached = cache.get(name)
        if cached is not None and cached.fingerprint == fingerprint(source) \
                and cached.count == source.count:
            cached.source = source  # for byte verification and thumbnails
            out[name] = cached
            _say(args, f"hashes of {name}: reused from {args.hashes}")
        else:
            why = "not in the cache" if cached is None else "stale (the file changed)"
            _say(args, f"hashes of {name}: {why}; hashing again")
            out[name] = dataset
    return out


def _run_scan(args, inputs: _Inputs):
    splits = _with_cached_hashes(args, inputs)
    return scan(splits, labels=inputs.labels or None, threshold=args.threshold,
                backend=args.backend, progress=_progress(args))


def _write_reports(args, report) -> None:
    for option, method in (("json", report.to_json), ("csv", report.to_csv),
                           ("html", report.to_html)):
        path = getattr(args, option, None)
        if path:
            _refuse_input(args, path, f"--{option}")
            method(path)
            _say(args, f"{option.upper()} report written to {path}")


def _refuse_input(args, path: str, option: str) -> None:
    # an output must never overwrite the input (same path, symlink or hard link)
    if same_file(path, args.file):
        raise UsageError(f"{option}: {path!r} is the input file; choose another path")


# -------------------------------------------------------------------------- commands


def _cmd_scan(args) -> int:
    inputs = _open_inputs(args)
    with inputs.handle:
        report = _run_scan(args, inputs)
        _say(args)
        print(report)
        _write_reports(args, report)
    return 0


def _cmd_clean(args) -> int:
    _refuse_input(args, args.output, "-o")
    priority = [p for p in args.priority.split(",") if p] if args.priority else None
    inputs = _open_inputs(args)
    try:
        split_priority(list(inputs.splits), priority)
    except ValueError as exc:
        inputs.handle.close()
        raise UsageError(f"--{exc}") from None
    with inputs.handle:
        report = _run_scan(args, inputs)
        masks = keep_masks(report, priority, keep_conflicts=args.keep_conflicts)
        _write_reports(args, report)
    kept = write_clean(args.file, args.output, inputs.specs, masks, threshold=args.threshold)
    _say(args)
    print(report)
    print()
    print(f"{'split':<12}{'images':>10}{'kept':>10}{'removed':>10}")
    for spec in inputs.specs:
        total = report.splits[spec.name].count
        print(f"{spec.name:<12}{total:>10}{kept[spec.name]:>10}{total - kept[spec.name]:>10}")
    print(f"\ncleaned file written to {args.output}")
    return 0


def _cmd_hash(args) -> int:
    _refuse_input(args, args.output, "-o")
    from . import backend as backends

    inputs = _open_inputs(args)
    with inputs.handle:
        be = backends.resolve(args.backend)
        sets: dict[str, HashSet] = {}
        for name, dataset in inputs.splits.items():
            source = as_source(dataset, f"--split {name}")
            sets[name] = hash_source(source, be, progress=_progress(args))
        save_many(args.output, sets)
    for name, hs in sets.items():
        _say(args, f"{name}: {hs.count} images hashed")
    print(f"hashes written to {args.output}")
    return 0


def _cmd_demo(args) -> int:
    from .demo import make_demo

    data = make_demo(seed=args.seed)
    print("gpudedup demo: a built-in train/valid/test set of 28x28 glyphs with planted")
    print("duplicates. Planted:")
    for line in data.planted:
        print(f"  - {line}")
    report = scan(data.splits, labels=data.labels, threshold=args.threshold,
                  backend=args.backend, progress=_progress(args))
    print()
    print("Found:")
    found = [("leak", a, b, ov) for (a, b), ov in report.overlaps.items()]
    found += [("duplicate", name, name, ov) for name, ov in report.duplicates.items()]
    for what, a, b, ov in found:
        for (i, j), d, exact in zip(ov, ov.distance.tolist(), ov.exact.tolist()):
            kind = "exact" if exact else f"near (distance {d})"
            print(f"  - {what} {a}[{i}] ~ {b}[{j}]: {kind}")
    for c in report.conflicts:
        print(f"  - label conflict {c.a}[{c.i}] (label {c.label_a}) vs {c.b}[{c.j}] "
              f"(label {c.label_b})")
    print()
    print(report)
    print()
    if args.json:
        report.to_json(args.json)
        print(f"JSON report written to {args.json}")
    report.to_html(args.html)
    print(f"HTML report written to {args.html}")
    return 0


# ---------------------------------------------------------------------------- parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threshold", type=_threshold, default=DEFAULT_THRESHOLD,
                        help=f"largest Hamming distance of a near pair (default "
                             f"{DEFAULT_THRESHOLD})")
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument("--progress", action="store_true",
                       help="show progress bars (default: when stderr is a terminal)")
    noise.add_argument("--quiet", action="store_true", help="no progress bars or notes")


def _add_inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE.h5", help="HDF5 file holding the splits")
    parser.add_argument("--split", action="append", metavar="NAME=/dataset",
                        help="a split and its images dataset (repeat; default: found by layout)")
    parser.add_argument("--labels", action="append", metavar="NAME=/dataset",
                        help="labels of a split (repeat; default: found by layout)")
    parser.add_argument("--hashes", metavar="HASHES.h5",
                        help="reuse hashes saved by `gpudedup hash` while the file is unchanged")


def _add_reports(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="OUT", help="write the JSON report")
    parser.add_argument("--csv", metavar="OUT", help="write every pair as CSV")
    parser.add_argument("--html", metavar="OUT", help="write the HTML report with thumbnails")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gpudedup",
        description="Find leaked, duplicated and near-duplicated images in dataset splits.",
    )
    parser.add_argument("--version", action="version", version=f"gpudedup {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    cmd = sub.add_parser("scan", help="report leaks, duplicates and label conflicts")
    _add_inputs(cmd)
    _add_common(cmd)
    _add_reports(cmd)
    cmd.set_defaults(run=_cmd_scan)

    cmd = sub.add_parser("clean", help="write a copy without leaks and duplicates")
    _add_inputs(cmd)
    cmd.add_argument("-o", "--output", required=True, metavar="OUT.h5")
    cmd.add_argument("--priority", metavar="A,B,...",
                     help="splits that keep a leaked image, first wins (default test,valid,train)")
    cmd.add_argument("--keep-conflicts", action="store_true",
                     help="keep one image of duplicate groups whose labels differ")
    _add_common(cmd)
    _add_reports(cmd)
    cmd.set_defaults(run=_cmd_clean)

    cmd = sub.add_parser("hash", help="save the hashes of every split for later scans")
    _add_inputs(cmd)
    cmd.add_argument("-o", "--output", required=True, metavar="HASHES.h5")
    _add_common(cmd)
    cmd.set_defaults(run=_cmd_hash)

    cmd = sub.add_parser("demo", help="run a scan on a built-in demo dataset")
    _add_common(cmd)
    cmd.add_argument("--seed", type=int, default=0, help="seed of the demo data")
    cmd.add_argument("--json", metavar="OUT", help="also write the JSON report")
    cmd.add_argument("--html", metavar="OUT", default="gpudedup-demo.html",
                     help="where to write the HTML report (default gpudedup-demo.html)")
    cmd.set_defaults(run=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gpudedup`` command; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except GpudedupError as exc:
        # expected failures only: anything else is a bug and keeps its traceback
        print(f"gpudedup: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gpudedup: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
