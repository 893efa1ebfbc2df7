"""The ``gpudedup`` command: scan, clean, hash, demo and info."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from dataclasses import dataclass

from . import fileio
from ._version import __version__
from .api import DEFAULT_MIN_SIMILARITY, DEFAULT_THRESHOLD, scan
from .backend import BACKENDS
from .checks import check_threshold
from .cleaning import (
    DEFAULT_MAX_REMOVED,
    RemovalLimitError,
    plan_clean,
    split_priority,
    write_clean,
)
from .distributed import is_dask_array as _is_dask
from .errors import GpudedupError, InputError
from .fileio import check_outputs, write_text
from .hashing import hash_images, hash_source
from .hashset import HashSet, load_many, misfit, refresh, save_many
from .labels import check_labels
from .layout import SplitSpec, find_splits, guess_labels, parse_assignments
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
        skipped: list[str] = []
        try:
            specs = find_splits(handle, skipped)
        except InputError as exc:
            handle.close()
            raise UsageError(f"FILE: {exc}") from None
        for note in skipped:  # a warning, even with --quiet: a split may be missing
            print(f"gpudedup: warning: FILE: {note} (in {args.file!r})", file=sys.stderr)
        if not specs:
            handle.close()
            dangling = " (some candidates are dangling links, see the warnings)" if skipped \
                else ""
            raise UsageError(f"FILE: found no splits in {args.file!r} (looked for /train, "
                             "/valid, /test, x_train, train_images, train/images, "
                             f"train_dataset, ...){dangling}; name them with --split "
                             "NAME=/dataset")
        specs = [SplitSpec(s.name, s.images, explicit_labels.get(s.name, s.labels))
                 for s in specs]
        found = ", ".join(f"{s.name}={s.images}" + (f" (labels {s.labels})" if s.labels else "")
                          for s in specs)
        _say(args, f"found splits: {found}")
    unknown = set(explicit_labels) - {s.name for s in specs}
    if unknown:
        raise UsageError(f"--labels: {', '.join(sorted(unknown))} is not a split")
    splits, raw, guessed = {}, {}, []
    for k, spec in enumerate(specs):
        dataset = get_dataset(handle, spec.images, f"--split {spec.name}")
        as_source(dataset, f"--split {spec.name}")  # validates shape and dtype, names the option
        splits[spec.name] = dataset
        if explicit and not spec.labels:
            # --split names the images only: still look for their labels the usual ways
            found = guess_labels(handle, spec.name, spec.images, dataset.shape[0])
            if found:
                spec = specs[k] = SplitSpec(spec.name, spec.images, found)
                guessed.append(f"{spec.name}={found}")
        if spec.labels:
            values = get_dataset(handle, spec.labels, f"--labels {spec.name}")
            if values.ndim == 0 or values.shape[0] != dataset.shape[0]:
                got = values.shape[0] if values.ndim else "no"
                raise UsageError(f"--labels {spec.name}: {spec.labels} has {got} labels but "
                                 f"{spec.images} has {dataset.shape[0]} images")
            raw[spec.name] = values
    if guessed:
        _say(args, f"found labels: {', '.join(guessed)} (choose others with --labels "
                   "NAME=/dataset)")
    unlabelled = [s.name for s in specs if not s.labels]
    if explicit and unlabelled:
        _say(args, f"no labels found for {', '.join(unlabelled)} (give them with --labels "
                   "NAME=/dataset)")
    # the one rule of what a label is (labels.py), worded for the command line
    notes: dict[str, str] = {}
    try:
        labels = check_labels(raw, {n: d.shape[0] for n, d in splits.items()},
                              names={n: f"--labels {n}" for n in raw}, notes=notes)
    except GpudedupError:
        handle.close()
        raise
    for name, note in notes.items():
        _say(args, f"labels of {name}: {note}")
    return _Inputs(handle, specs, splits, labels)


def _with_cached_hashes(args, inputs: _Inputs) -> dict[str, object]:
    # replace splits by cached HashSets, checked image by image against the file (refresh)
    if not getattr(args, "hashes", None):
        return dict(inputs.splits)
    from . import backend as backends

    cache = load_many(args.hashes, name="--hashes", complete=True)
    be = backends.resolve(args.backend)
    out = {}
    for name, dataset in inputs.splits.items():
        cached = cache.get(name)
        if cached is None:
            _say(args, f"hashes of {name}: not in the cache; hashing again")
            out[name] = dataset
            continue
        source = as_source(dataset, f"--split {name}")
        out[name], changed = refresh(cached, source, be, progress=_progress(args))
        if changed is None:
            _say(args, f"hashes of {name}: stale ({misfit(cached, source)}); hashed again")
        elif changed.size:
            _say(args, f"hashes of {name}: stale for {changed.size} of {source.count} images "
                       f"(changed since hashing); rehashed them, reused the rest from "
                       f"{args.hashes}")
        else:
            _say(args, f"hashes of {name}: reused from {args.hashes} (all {source.count} "
                       "images unchanged)")
    return out


def _run_scan(args, inputs: _Inputs):
    splits = _with_cached_hashes(args, inputs)
    with _cluster(args):
        return scan(_on_workers(args, splits), labels=inputs.labels or None,
                    **_scan_options(args))


@contextlib.contextmanager
def _cluster(args):
    # --workers N: a local cluster of N processes; --scheduler ADDRESS: a running one
    from . import distributed as on_dask

    if getattr(args, "workers", None):
        with on_dask.local_cluster(args.workers) as client:
            yield client
    elif getattr(args, "scheduler", None):
        with on_dask.session(args.scheduler) as client:
            yield client
    else:
        yield None


def _on_workers(args, splits: dict) -> dict:
    # with a cluster, each split's images are read by the workers (cached HashSets stay)
    if not (getattr(args, "workers", None) or getattr(args, "scheduler", None)):
        return splits
    from .distributed import dask_from_hdf5

    return {name: dask_from_hdf5(f"{data.file.filename}:{data.name}")
            if hasattr(data, "file") and hasattr(data, "name") else data
            for name, data in splits.items()}


def _scan_options(args) -> dict:
    # the search options of _add_search, as scan() takes them
    return {"threshold": args.threshold, "near": not args.exact_only,
            "verify": not args.no_verify, "min_similarity": args.min_similarity,
            "invariant": args.invariant, "shifts": args.shifts, "backend": args.backend,
            "progress": _progress(args)}


def _found(report, what: list[str]) -> list[str]:
    """Which of ``what`` (FAIL_ON names) the report holds."""
    counts = {
        "leaks": sum(len(ov) for ov in report.overlaps.values()),
        "duplicates": sum(len(ov) for ov in report.duplicates.values()),
        "conflicts": report.conflict_count(),
    }
    return [f"{counts[w]} {w[:-1] if counts[w] == 1 else w}" for w in what if counts[w]]


def _write_reports(args, report) -> None:
    for option, method in (("json", report.to_json), ("csv", report.to_csv),
                           ("html", report.to_html)):
        path = getattr(args, option, None)
        if not path:
            continue
        text = method(None, **({"max_rows": args.max_rows} if option == "html" else {}))
        if path == "-":
            # main sent everything else to stderr; the report goes to the real stdout
            with contextlib.redirect_stdout(getattr(args, "stdout", None) or sys.stdout):
                write_text("-", text, option=f"--{option}")
            continue
        write_text(path, text, option=f"--{option}")
        if not args.quiet:
            print(f"{option.upper()} report written to {path}")


def _refuse_input(args) -> None:
    # before any work: no output on an input or on another output, every directory writable,
    # HDF5 outputs (-o) never standard output, a FIFO or a device
    outputs = {f"--{o}": getattr(args, o, None) for o in ("json", "csv", "html")}
    outputs["-o"] = getattr(args, "output", None)
    inputs = {"FILE": getattr(args, "file", None), "--hashes": getattr(args, "hashes", None)}
    check_outputs(outputs, inputs, hdf5={"-o"})


# -------------------------------------------------------------------------- commands


def _cmd_scan(args) -> int:
    _refuse_input(args)
    inputs = _open_inputs(args)
    with inputs.handle:
        report = _run_scan(args, inputs)
        _say(args)
        print(report)
        _write_reports(args, report)
    found = _found(report, args.fail_on)
    if found:
        print(f"gpudedup: found {', '.join(found)} (--fail-on {','.join(args.fail_on)}): "
              f"exit status {EXIT_FOUND}", file=sys.stderr)
        return EXIT_FOUND
    return 0


def _cmd_clean(args) -> int:
    _refuse_input(args)
    priority = [p for p in args.priority.split(",") if p] if args.priority else None
    inputs = _open_inputs(args)
    try:
        split_priority(list(inputs.splits), priority)
    except ValueError as exc:
        inputs.handle.close()
        raise UsageError(f"--{exc}") from None
    with inputs.handle:
        report = _run_scan(args, inputs)
        plan = plan_clean(report, priority, keep_conflicts=args.keep_conflicts)
        # (the scan already ran at --min-similarity: the plan acts on its confirmed pairs)
        if not args.dry_run:  # a dry run writes no file at all, reports included
            _write_reports(args, report)
    _say(args)
    print(report)
    print()
    print("dry run: no file written; a real run would do this:" if args.dry_run
          else "plan:")
    print(plan)
    try:
        plan.check(args.max_removed, name="--max-removed")
    except RemovalLimitError as exc:
        if not args.dry_run:
            raise
        print(f"note: a real run would stop here: {exc}")
    if args.dry_run:
        return 0
    write_clean(args.file, args.output, inputs.specs, plan.keep,
                threshold=args.threshold)
    print(f"\ncleaned file written to {args.output}")
    return 0


def _cmd_hash(args) -> int:
    _refuse_input(args)
    from . import backend as backends

    inputs = _open_inputs(args)
    with inputs.handle:
        be = backends.resolve(args.backend)
        sets: dict[str, HashSet] = {}
        with _cluster(args):
            for name, images in _on_workers(args, inputs.splits).items():
                if _is_dask(images):  # hashed per chunk on the workers
                    sets[name] = hash_images(images, backend=args.backend)
                    continue
                source = as_source(images, f"--split {name}")
                sets[name] = hash_source(source, be, progress=_progress(args))
        save_many(args.output, sets)
    for name, hs in sets.items():
        _say(args, f"{name}: {hs.count} images hashed")
    print(f"hashes written to {args.output}")
    return 0


def _cmd_demo(args) -> int:
    from .demo import make_demo

    _refuse_input(args)
    data = make_demo(seed=args.seed)
    print("gpudedup demo: a built-in train/valid/test set of 28x28 glyphs with planted")
    print("duplicates. Planted:")
    for line in data.planted:
        print(f"  - {line}")
    report = scan(data.splits, labels=data.labels, **_scan_options(args))
    print()
    print("Found:")
    found = [("leak", a, b, ov) for (a, b), ov in report.overlaps.items()]
    found += [("duplicate", name, name, ov) for name, ov in report.duplicates.items()]
    for what, a, b, ov in found:
        for (i, j), d, exact, sim in zip(ov, ov.distance.tolist(), ov.exact.tolist(),
                                         ov.similarity.tolist()):
            kind = "exact copy" if exact else (f"near copy (phash distance {d}, pixel "
                                               f"similarity {sim:.2f})")
            print(f"  - {what} {a}[{i}] ~ {b}[{j}]: {kind}")
    for c in report.conflicts:
        print(f"  - label conflict {c.a}[{c.i}] (label {c.label_a}) vs {c.b}[{c.j}] "
              f"(label {c.label_b})")
    print()
    print(report)
    print()
    _write_reports(args, report)
    return 0


def _info_lines(data: dict) -> list[str]:
    cores = data["cpu_cores"]
    usable = f", {cores['usable']} usable" if cores["usable"] not in (None, cores["logical"]) \
        else ""
    rows = [("gpudedup", data["gpudedup"]), ("python", data["python"]),
            ("platform", data["platform"]),
            ("cpu", f"{data['cpu'] or 'unknown'} ({cores['logical']} cores{usable})")]
    rows += [(name, version or "not installed") for name, version in data["packages"].items()]
    rows.append(("numba cache", data["numba_cache"]))
    for name, be in data["backends"].items():
        if not be["available"]:
            state = f"not available: {be['reason']}"
        elif be.get("simulated"):
            state = f"available, simulated: {be['note']}"
        else:
            state = "available" + (f" ({be['threads']} threads)" if "threads" in be else "")
        rows.append((f"backend {name}", state))
    cuda = data["backends"]["cuda"]
    for gpu in cuda.get("gpus", []):
        rows.append((f"gpu {gpu['index']}",
                     f"{gpu['name']}, {gpu['memory_bytes'] / 2**30:.1f} GiB "
                     f"({gpu['free_bytes'] / 2**30:.1f} GiB free), compute capability "
                     f"{gpu['compute_capability']}"))
    if "driver" in cuda:
        rows += [("cuda driver", cuda["driver"]), ("cuda runtime", cuda["runtime"])]
    width = max(len(label) for label, _ in rows)
    return [f"{label:<{width}}  {value}" for label, value in rows]


def _cmd_info(args) -> int:
    import json

    from .diagnostics import info

    data = info()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print("\n".join(_info_lines(data)))
    return 0


# ---------------------------------------------------------------------------- parser


#: exit statuses: 0 done, 1 --fail-on found what it names, 2 an error, 130/143 interrupted
EXIT_FOUND = 1
EXIT_ERROR = 2
#: 128 + SIGPIPE, what a shell reports for a pipeline reader that went away
EXIT_BROKEN_PIPE = 141
FAIL_ON = ("leaks", "duplicates", "conflicts")

EXAMPLES = {
    "scan": """examples:
  gpudedup scan data.h5                           # splits and labels found by layout
  gpudedup scan data.h5 --split train=/x_train --split test=/x_test --html report.html
  gpudedup scan data.h5 --exact-only --fail-on leaks    # exit 1 when test leaks into train
  gpudedup scan data.h5 --hashes data.hashes.h5 --json - | jq .summary""",
    "clean": """examples:
  gpudedup clean data.h5 -o data.clean.h5 --dry-run     # the plan, nothing written
  gpudedup clean data.h5 -o data.clean.h5               # stops if a split would lose > 10%
  gpudedup clean data.h5 -o data.clean.h5 --max-removed 0.5 --priority test,train""",
    "hash": """examples:
  gpudedup hash data.h5 -o data.hashes.h5
  gpudedup scan data.h5 --hashes data.hashes.h5   # reuses the hashes of unchanged images""",
    "demo": """examples:
  gpudedup demo
  gpudedup demo --html demo.html --json demo.json""",
    "info": """examples:
  gpudedup info             # versions, and which backends work here (and why not)
  gpudedup info --json      # the same as gpudedup.info(), for a bug report""",
}


def _add_search(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threshold", type=_threshold, default=DEFAULT_THRESHOLD,
                        help=f"search radius: largest phash Hamming distance of a candidate "
                             f"near pair, each then confirmed on its pixels (default "
                             f"{DEFAULT_THRESHOLD})")
    parser.add_argument("--min-similarity", type=_share, default=DEFAULT_MIN_SIMILARITY,
                        metavar="S",
                        help=f"lowest pixel similarity of a reported near pair, 0-1 (default "
                             f"{DEFAULT_MIN_SIMILARITY:g}: real copies score above it, "
                             "look-alikes below; higher is stricter)")
    parser.add_argument("--invariant", choices=("none", "dihedral"), default="none",
                        help="dihedral: also find flipped, transposed and rotated copies")
    parser.add_argument("--shifts", type=int, choices=range(3), default=0, metavar="PX",
                        help="also search with hashes of copies shifted by up to PX pixels "
                             "(0-2, default 0; costs (2 PX + 1)^2 hashings)")
    parser.add_argument("--no-verify", action="store_true",
                        help="trust the hashes: report every candidate unconfirmed (fast, "
                             "floods on small images)")
    parser.add_argument("--exact-only", action="store_true",
                        help="only byte-identical images, no near duplicates")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument("--progress", action="store_true",
                       help="show progress bars (default: when stderr is a terminal)")
    noise.add_argument("--quiet", action="store_true", help="no progress bars or notes")


def _add_cluster(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive, metavar="N",
                       help="hash and search on a local Dask cluster of N worker processes "
                            "(needs gpudedup[dask]; the report is the same)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="hash and search on the Dask cluster at ADDRESS "
                            "(tcp://host:8786); the workers read FILE themselves")


def _add_inputs(parser: argparse.ArgumentParser, *, cache: bool = True) -> None:
    parser.add_argument("file", metavar="FILE.h5", help="HDF5 file holding the splits")
    parser.add_argument("--split", action="append", metavar="NAME=/dataset",
                        help="a split and its images dataset (repeat; default: found by layout)")
    parser.add_argument("--labels", action="append", metavar="NAME=/dataset",
                        help="labels of a split (repeat; default: found by layout)")
    if cache:
        parser.add_argument("--hashes", metavar="HASHES.h5",
                            help="reuse hashes saved by `gpudedup hash` for unchanged images")


def _add_reports(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="OUT", help="write the JSON report (- for stdout)")
    parser.add_argument("--csv", metavar="OUT", help="write every pair as CSV (- for stdout)")
    parser.add_argument("--html", metavar="OUT", help="write the HTML report with thumbnails")
    parser.add_argument("--max-rows", type=_count, default=100, metavar="N",
                        help="pairs shown per section of the HTML report (default 100)")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def _positive(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to 1, got {text!r}")
    return value


def _fail_on(text: str) -> list[str]:
    chosen = [t for t in text.split(",") if t]
    unknown = [t for t in chosen if t not in FAIL_ON]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"expected some of {','.join(FAIL_ON)}, got {text!r}")
    return chosen


def _subcommand(sub, name: str, help_text: str):
    return sub.add_parser(name, help=help_text, description=help_text.capitalize() + ".",
                          epilog=EXAMPLES[name],
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gpudedup",
        description="Find leaked, duplicated and near-duplicated images in dataset splits.",
        epilog="exit status: 0 done; 1 --fail-on found what it names; 2 an error (one line "
               "on stderr); 130 interrupted (SIGINT), 143 terminated (SIGTERM)",
    )
    parser.add_argument("--version", action="version", version=f"gpudedup {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    cmd = _subcommand(sub, "scan", "report leaks, duplicates and label conflicts")
    _add_inputs(cmd)
    _add_search(cmd)
    _add_common(cmd)
    _add_cluster(cmd)
    _add_reports(cmd)
    cmd.add_argument("--fail-on", type=_fail_on, default=[], metavar="WHAT",
                     help="exit with status 1 when the scan finds any of WHAT: a comma list "
                          "of leaks, duplicates, conflicts")
    cmd.set_defaults(run=_cmd_scan)

    cmd = _subcommand(sub, "clean", "write a copy without leaks and duplicates")
    _add_inputs(cmd)
    cmd.add_argument("-o", "--output", required=True, metavar="OUT.h5")
    cmd.add_argument("--priority", metavar="A,B,...",
                     help="splits that keep a leaked image, first wins (default test,valid,train)")
    cmd.add_argument("--keep-conflicts", action="store_true",
                     help="keep one image of duplicate groups whose labels differ")
    cmd.add_argument("--dry-run", action="store_true",
                     help="print what would be removed and why; write nothing")
    cmd.add_argument("--max-removed", type=_share, default=DEFAULT_MAX_REMOVED, metavar="SHARE",
                     help=f"stop before writing if any split would lose more than this share "
                          f"of its images (default {DEFAULT_MAX_REMOVED:g})")
    _add_search(cmd)
    _add_common(cmd)
    _add_cluster(cmd)
    _add_reports(cmd)
    cmd.set_defaults(run=_cmd_clean)

    cmd = _subcommand(sub, "hash", "save the hashes of every split for later scans")
    _add_inputs(cmd, cache=False)
    cmd.add_argument("-o", "--output", required=True, metavar="HASHES.h5")
    _add_common(cmd)
    _add_cluster(cmd)
    cmd.set_defaults(run=_cmd_hash)

    cmd = _subcommand(sub, "demo", "run a scan on a built-in demo dataset")
    _add_search(cmd)
    _add_common(cmd)
    cmd.add_argument("--seed", type=int, default=0, help="seed of the demo data")
    cmd.add_argument("--json", metavar="OUT", help="also write the JSON report")
    cmd.add_argument("--html", metavar="OUT", default="gpudedup-demo.html",
                     help="where to write the HTML report (default gpudedup-demo.html)")
    # no CSV and the default page size: what _write_reports reads of the other commands
    cmd.set_defaults(run=_cmd_demo, csv=None, max_rows=100)

    cmd = _subcommand(sub, "info", "show versions and which backends work here")
    cmd.add_argument("--json", action="store_true", help="print it as JSON")
    cmd.set_defaults(run=_cmd_info)
    return parser


#: exit status after SIGINT (Ctrl-C) and SIGTERM: 128 + the signal, as a shell reports it
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


@contextlib.contextmanager
def _interrupts():
    # SIGINT and SIGTERM raise fileio.Interrupted while the command runs; an interrupt that a
    # finaliser swallowed ("Exception ignored in ...") is kept, silently, so that the run still
    # stops before renaming an output and exits non-zero; everything is restored afterwards
    fileio.clear_interrupt()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in EXIT_SIGNAL:
            handler = signal.getsignal(signum)
            if handler is not signal.SIG_IGN:  # nohup and background jobs ignore SIGINT
                # raises fileio.Interrupted: every write in progress removes its temporary file
                previous[signum] = signal.signal(signum, fileio.signal_handler)
        if previous:  # raises an interrupt that had to wait for HDF5 to return
            previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, fileio.retry_handler)
    hook = sys.unraisablehook

    def unraisable(info):
        if isinstance(info.exc_value, KeyboardInterrupt):
            fileio.note_interrupt(getattr(info.exc_value, "signum", signal.SIGINT))
            return
        hook(info)

    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        if previous:  # first: no retry may fire once the command is over
            signal.setitimer(signal.ITIMER_REAL, 0)
        sys.unraisablehook = hook
        fileio.clear_interrupt()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _caused_by_interrupt(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _interrupt_status() -> int:
    # what every interrupted run says and returns
    print("gpudedup: interrupted", file=sys.stderr)
    return EXIT_SIGNAL.get(fileio.interrupted(), 130)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gpudedup`` command; returns the exit status."""
    with _interrupts():
        try:
            args = build_parser().parse_args(argv)
            args.stdout = sys.stdout
            # a report on standard output stays parseable: all other output goes to stderr
            to_stdout = any(getattr(args, o, None) == "-" for o in ("json", "csv", "html"))
            with contextlib.redirect_stdout(sys.stderr) if to_stdout else contextlib.nullcontext():
                code = args.run(args)
        except GpudedupError as exc:
            if fileio.interrupted() is not None:  # an error caused by the interrupt
                return _interrupt_status()
            # expected failures only: anything else is a bug and keeps its traceback
            print(f"gpudedup: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt:
            return _interrupt_status()
        except BrokenPipeError:
            # the reader went away (`gpudedup scan ... | head`): stop quietly, as `cat` does
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return EXIT_BROKEN_PIPE
        except Exception as exc:
            # h5py turns an interrupt raised inside its callbacks (type conversion) into its
            # own error: still an interrupt, not a bug
            if not _caused_by_interrupt(exc):
                raise
            return _interrupt_status()
        if fileio.interrupted() is not None:  # interrupted, and the exception got lost
            return _interrupt_status()
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
