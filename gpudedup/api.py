"""The public calls: find_overlaps, find_duplicates and scan. Orchestration only."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping

import numpy as np

from . import backend as backends
from .checks import check_batch_size, check_strategy, check_threshold
from .cleaning import DEFAULT_MAX_REMOVED, CleanPlan, plan_clean, write_clean
from .errors import InputError, InputTypeError
from .hashing import hash_source
from .hashset import HashSet
from .labels import check_labels
from .layout import SplitSpec
from .results import Overlaps, Report, SplitInfo
from .search import digest_pairs, hamming_pairs, verify_pairs
from .sources import ImageSource, as_source, split_h5_path

#: default largest Hamming distance of a near pair, chosen with bench/accuracy.py: at 6,
#: brightness/contrast, noise, blur and JPEG copies are found 98-100% of the time and 83% of
#: the pairs are true copies (F1 is highest there); phash distances are nearly always even
DEFAULT_THRESHOLD = 6


def _check_options(threshold, exact, near, strategy) -> int:
    threshold = check_threshold(threshold)
    if not exact and not near:
        raise InputError("exact, near: at least one of them must be True")
    check_strategy(strategy)
    return threshold


def _hashes(obj, name: str, be, *, exact: bool, near: bool, batch_size, progress,
            label: str | None = None) -> HashSet:
    # a HashSet is used as it is; anything else is validated and hashed now
    if isinstance(obj, HashSet):
        return obj
    source = obj if isinstance(obj, ImageSource) else as_source(obj, name)
    return hash_source(source, be, digests=exact, phashes=near, batch_size=batch_size,
                       progress=progress, label=label)


def _pair_keys(i: np.ndarray, j: np.ndarray, width: int) -> np.ndarray:
    return i * np.int64(width) + j


def _overlaps(ha: HashSet, hb: HashSet | None, names: tuple[str, str], *, threshold: int,
              exact: bool, near: bool, verify: bool, be, strategy: str,
              progress: bool = False) -> Overlaps:
    self_join = hb is None
    other = ha if self_join else hb
    width = max(other.count, 1)
    if near and ha.convention and other.convention and ha.convention != other.convention:
        warnings.warn(f"{names[0]}, {names[1]}: phashes made with different Pillow resize "
                      f"orders ({ha.convention} vs {other.convention}); distances may be off",
                      stacklevel=3)
    ei = ej = np.empty(0, np.int64)
    if exact and ha.digests is not None and other.digests is not None:
        ei, ej = digest_pairs(ha.digests, None if self_join else other.digests, be.xp)
        if verify:
            same = verify_pairs(ha.source, other.source, ei, ej, *names)
            ei, ej = ei[same], ej[same]
    if not near:
        return Overlaps(ei, ej, np.zeros(ei.size, np.uint8), np.ones(ei.size, bool),
                        threshold=threshold, self_join=self_join)
    label = f"searching {names[0]}" if self_join else f"searching {names[0]} x {names[1]}"
    i, j, d = hamming_pairs(ha.phashes, None if self_join else other.phashes, threshold,
                            be=be, strategy=strategy, progress=progress, label=label)
    keys = _pair_keys(i, j, width)
    exact_keys = _pair_keys(ei, ej, width)
    is_exact = np.isin(keys, exact_keys, assume_unique=True)
    missing = ~np.isin(exact_keys, keys, assume_unique=True)
    if missing.any():
        # identical images always have equal phashes; this only happens when the two sides'
        # phashes were made under different conventions
        mi, mj = ei[missing], ej[missing]
        md = np.bitwise_count(ha.phashes[mi] ^ other.phashes[mj]).astype(np.uint8)
        i, j, d = np.concatenate([i, mi]), np.concatenate([j, mj]), np.concatenate([d, md])
        is_exact = np.concatenate([is_exact, np.ones(mi.size, bool)])
        order = np.lexsort((j, i))
        i, j, d, is_exact = i[order], j[order], d[order], is_exact[order]
    return Overlaps(i, j, d, is_exact, threshold=threshold, self_join=self_join)


def find_overlaps(a, b=None, *, threshold: int = DEFAULT_THRESHOLD, exact: bool = True,
                  near: bool = True, verify: bool = True, backend: str = "auto",
                  batch_size: int | None = None, progress: bool = False,
                  strategy: str = "auto") -> Overlaps:
    """Pairs of images that are exact or near duplicates, between ``a`` and ``b`` or inside ``a``.

    Parameters
    ----------
    a, b : array-like, h5py.Dataset, str or HashSet
        ``(N, H, W)`` images of any integer or float dtype, ``(N, H, W, 3)`` uint8 RGB,
        ``"file.h5:/dataset"``, or precomputed hashes. Without ``b``, the pairs inside ``a``
        (``left < right``).
    threshold : int, 0..64
        Largest Hamming distance between the 64-bit perceptual hashes of a near pair.
    exact : bool
        Find byte-identical pairs (128-bit digests, then a byte comparison) and flag them in
        ``Overlaps.exact``. When False, ``exact`` is False everywhere (not checked).
    near : bool
        Find pairs within ``threshold``. When False, only the exact pairs are returned.
    verify : bool
        Compare exact candidates byte for byte (default); False trusts equal digests.
    backend : {"auto", "cpu", "cuda"}
    batch_size : int, optional
        Images per hashing batch.
    progress : bool
        Show progress bars.
    strategy : {"auto", "brute", "mih"}
        Range-search strategy; all give the same pairs.

    Returns
    -------
    Overlaps
        Sorted pairs with their distances and exact flags.

    Raises
    ------
    InputError, InputTypeError
        Bad images (named ``a`` or ``b``) or options (subclasses of ValueError, TypeError).

    Examples
    --------
    >>> import numpy as np, gpudedup as gd
    >>> rng = np.random.default_rng(0)
    >>> train = rng.integers(0, 256, (100, 28, 28), dtype=np.uint8)
    >>> valid = np.concatenate([train[[3, 7]], rng.integers(0, 256, (5, 28, 28), np.uint8)])
    >>> ov = gd.find_overlaps(train, valid)
    >>> ov.pairs.tolist(), ov.exact.tolist()
    ([[3, 0], [7, 1]], [True, True])
    >>> len(gd.find_overlaps(train))  # inside one set
    0
    """
    threshold = _check_options(threshold, exact, near, strategy)
    check_batch_size(batch_size)
    be = backends.resolve(backend, a, b)
    opts = {"exact": exact, "near": near, "batch_size": batch_size, "progress": progress}
    ha = _hashes(a, "a", be, **opts)
    hb = None if b is None else _hashes(b, "b", be, **opts)
    return _overlaps(ha, hb, ("a", "a" if b is None else "b"), threshold=threshold,
                     exact=exact, near=near, verify=verify, be=be, strategy=strategy,
                     progress=progress)


def find_duplicates(images, **options) -> Overlaps:
    """Pairs of duplicates inside one image set: ``find_overlaps(images, **options)``.

    Examples
    --------
    >>> import numpy as np, gpudedup as gd
    >>> x = np.random.default_rng(0).integers(0, 256, (10, 28, 28), dtype=np.uint8)
    >>> x[9] = x[2]
    >>> gd.find_duplicates(x).pairs.tolist()
    [[2, 9]]
    """
    return find_overlaps(images, **options)


def _check_labels(labels, counts: Mapping[str, int]) -> dict[str, np.ndarray]:
    # the one rule of what a label is lives in labels.py (shared with the command)
    return check_labels(labels, counts)


def scan(splits, labels=None, *, threshold: int = DEFAULT_THRESHOLD, exact: bool = True,
         near: bool = True, verify: bool = True, backend: str = "auto",
         batch_size: int | None = None, progress: bool = False,
         strategy: str = "auto") -> Report:
    """Leaks between splits, duplicates inside each, and duplicates whose labels differ.

    Parameters
    ----------
    splits : mapping of str to images
        Each value as ``a`` of :func:`find_overlaps`; in mapping order (train, valid, test).
    labels : mapping of str to labels, optional
        One label per image for any of the splits (an array, an h5py dataset or
        ``"file.h5:/dataset"``); pairs whose labels differ become conflicts. Numbers or strings
        (bytes read as UTF-8), the same kind and shape per image in every split; NaN and ``""``
        are unknown and never conflict; one-hot rows are read as class indices. The rule is
        :mod:`gpudedup.labels`.
    threshold, exact, near, verify, backend, batch_size, progress, strategy
        As for :func:`find_overlaps`.

    Returns
    -------
    Report
        ``overlaps[(a, b)]`` for every pair of splits ``a`` before ``b``, ``duplicates[name]``
        for each split, ``conflicts``, ``groups()``, ``summary()`` and ``to_json()``.

    Examples
    --------
    >>> import numpy as np, gpudedup as gd
    >>> rng = np.random.default_rng(0)
    >>> train = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    >>> test = train[[4, 9]].copy()
    >>> rep = gd.scan({"train": train, "test": test},
    ...               labels={"train": np.arange(50) % 3, "test": np.array([2, 0])})
    >>> rep.overlaps[("train", "test")].pairs.tolist()
    [[4, 0], [9, 1]]
    >>> [(c.a, c.i, c.b, c.j) for c in rep.conflicts]  # train[4] is labelled 1, test[0] 2
    [('train', 4, 'test', 0)]
    """
    threshold = _check_options(threshold, exact, near, strategy)
    check_batch_size(batch_size)
    if not isinstance(splits, Mapping) or not splits:
        raise InputTypeError("splits: expected a non-empty mapping of split name to images, got "
                        f"{type(splits).__name__}")
    for name in splits:
        if not isinstance(name, str) or not name:
            raise InputTypeError(f"splits: split names must be non-empty strings, got {name!r}")
    be = backends.resolve(backend, *splits.values())
    # validate every split and the labels before hashing anything
    inputs = {name: images if isinstance(images, HashSet)
              else as_source(images, f"splits[{name!r}]") for name, images in splits.items()}
    label_arrays = _check_labels(labels, {n: x.count for n, x in inputs.items()})
    opts = {"exact": exact, "near": near, "batch_size": batch_size, "progress": progress}
    hashes = {name: _hashes(x, f"splits[{name!r}]", be, label=name, **opts)
              for name, x in inputs.items()}
    search = {"threshold": threshold, "exact": exact, "near": near, "verify": verify,
              "be": be, "strategy": strategy, "progress": progress}
    names = list(hashes)
    duplicates = {n: _overlaps(hashes[n], None, (n, n), **search) for n in names}
    overlaps = {}
    for k, a in enumerate(names):
        for b in names[k + 1:]:
            overlaps[(a, b)] = _overlaps(hashes[a], hashes[b], (a, b), **search)
    info = {n: SplitInfo(source=h.description, count=h.count,
                         shape=tuple(h.image_shape or ()),
                         dtype=str(h.dtype) if h.dtype is not None else "")
            for n, h in hashes.items()}
    return Report(splits=info, overlaps=overlaps, duplicates=duplicates, labels=label_arrays,
                  threshold=threshold, sources={n: h.source for n, h in hashes.items()},
                  exact=exact, near=near)


def clean(data, output=None, *, labels=None, priority=None, keep_conflicts: bool = False,
          max_removed: float = DEFAULT_MAX_REMOVED, dry_run: bool = False,
          **scan_options) -> CleanPlan:
    """Plan a clean of ``data`` and, given ``output``, write the cleaned HDF5 file.

    Parameters
    ----------
    data : Report or mapping of str to images
        A scan's Report, or splits as for :func:`scan` (then scanned now with
        ``scan_options``).
    output : str or path, optional
        Where to write a copy of the HDF5 file the splits come from, without the removed images
        (and their labels): every split must be a dataset of one HDF5 file (an ``h5py.Dataset``
        or ``"file.h5:/dataset"``). Without it nothing is written: apply ``plan.keep[split]``
        to arrays yourself.
    labels : mapping, optional
        As for :func:`scan`. Labels given as datasets of the same file (``"file.h5:/y"`` or
        ``h5py.Dataset``) are filtered with their images in ``output``.
    priority, keep_conflicts
        As for :func:`plan_clean`.
    max_removed : float
        Largest share of any split a clean may remove; more raises RemovalLimitError (an
        InputError) naming this argument, before anything is written.
    dry_run : bool
        Plan and check only; write nothing (the guard is not applied: the plan shows what a
        real run would remove).

    Returns
    -------
    CleanPlan
        ``keep`` masks, ``reasons``, and ``written`` (the output path, or None).

    Examples
    --------
    >>> import numpy as np, gpudedup as gd
    >>> x = np.random.default_rng(0).integers(0, 256, (20, 16, 16), dtype=np.uint8)
    >>> plan = gd.clean({"train": x, "test": x[:1]}, dry_run=True)
    >>> plan.removed(), plan.written
    ({'train': 1, 'test': 0}, None)
    """
    report = data if isinstance(data, Report) else scan(data, labels, **scan_options)
    plan = plan_clean(report, priority, keep_conflicts)
    target = None if output is None else _clean_target(report, labels)
    if dry_run:
        return plan
    plan.check(max_removed, name="max_removed")
    if target is not None:
        path, specs = target
        write_clean(path, output, specs, plan.keep, threshold=report.threshold)
        plan.written = os.fspath(output)
    return plan


def _clean_target(report: Report, labels) -> tuple[str, list[SplitSpec]]:
    # the one HDF5 file all splits come from, and where each split's images and labels are
    files, specs = set(), []
    for name in report.splits:
        source = report.sources.get(name)
        data = getattr(source, "data", None)
        if not getattr(source, "is_file", False):
            raise InputError(f"output: split {name!r} is not a dataset of an HDF5 file; only "
                             "HDF5 input can be written cleaned (apply plan.keep to arrays)")
        files.add(os.path.realpath(data.file.filename))
        label_path = None
        given = (labels or {}).get(name)
        if isinstance(given, (str, os.PathLike)):
            file, label_path = split_h5_path(os.fspath(given))
            files.add(os.path.realpath(file))
        elif given is not None and hasattr(given, "file") and hasattr(given, "name"):
            files.add(os.path.realpath(given.file.filename))
            label_path = given.name
        specs.append(SplitSpec(name, data.name, label_path))
    if len(files) != 1:
        raise InputError(f"output: the splits and labels come from {len(files)} files; a "
                         "cleaned copy can be written of one HDF5 file only")
    return files.pop(), specs
