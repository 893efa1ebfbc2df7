"""The public calls: find_overlaps, find_duplicates and scan. Orchestration only."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping

import numpy as np

from . import backend as backends
from . import distributed as on_dask
from .checks import (
    check_batch_size,
    check_count,
    check_invariant,
    check_share,
    check_shifts,
    check_strategy,
    check_threshold,
)
from .cleaning import DEFAULT_MAX_REMOVED, CleanPlan, plan_clean, write_clean
from .errors import InputError, InputTypeError
from .groups import exact_classes, representatives
from .hashing import hash_source
from .hashset import HashSet
from .labels import check_labels
from .layout import SplitSpec
from .matching import NearOptions, empty_extras, mark_exact, near_pairs
from .results import MAX_PAIRS, Overlaps, Report, SplitInfo
from .search import concat_columns, digest_pairs, sort_columns, verify_pairs
from .sources import ImageSource, as_source, split_h5_path

#: default search radius (largest Hamming distance of a candidate near pair), chosen with
#: bench/accuracy.py on real images (README "Accuracy"): every candidate is then confirmed on
#: its pixels, so the radius sets recall and cost, not precision
DEFAULT_THRESHOLD = 8
#: default lowest pixel similarity of a reported near pair: residual 8 grey levels, the bound
#: under which real copies (noise, brightness, contrast, 1-2 px shifts) score while distinct
#: look-alikes on real small images score above it (DESIGN.md "What real data says")
DEFAULT_MIN_SIMILARITY = 0.75


def _check_options(threshold, exact, near, strategy, min_similarity=DEFAULT_MIN_SIMILARITY,
                   invariant=None, shifts=0) -> tuple[int, float, str | None, int]:
    threshold = check_threshold(threshold)
    if not exact and not near:
        raise InputError("exact, near: at least one of them must be True")
    check_strategy(strategy)
    return (threshold, check_share(min_similarity, "min_similarity"),
            check_invariant(invariant), check_shifts(shifts))


def _hashes(obj, name: str, be, *, exact: bool, near: bool, batch_size, progress,
            label: str | None = None, dask: dict | None = None) -> HashSet:
    # a HashSet is used as it is; anything else is validated and hashed now
    if isinstance(obj, HashSet):
        return obj
    if on_dask.is_dask_array(obj):  # dask hook: per chunk, on the workers of a client
        return on_dask.hash_dask(obj, name, be=be, digests=exact, phashes=near, label=label,
                                 batch_size=batch_size, progress=progress, **(dask or {}))
    source = obj if isinstance(obj, ImageSource) else as_source(obj, name)
    return hash_source(source, be, digests=exact, phashes=near, batch_size=batch_size,
                       progress=progress, label=label)


def _pair_keys(i: np.ndarray, j: np.ndarray, width: int) -> np.ndarray:
    return i * np.int64(width) + j


def _with_variants(hs: HashSet, invariant, shifts: int, be, *, batch_size=None,
                   progress=False, label=None) -> HashSet:
    # the second side's candidate hashes of flipped, rotated and shifted variants
    if invariant is None and shifts == 0:
        return hs
    from .hashing import compute_variant_hashes, variant_table

    table = hs.variant_table
    if table is not None and hs.image_shape is not None and {
            tuple(r) for r in table.tolist()} == {
            tuple(r) for r in variant_table(hs.image_shape, invariant, shifts).tolist()}:
        return hs
    images = hs.images
    if images is None:
        raise InputError(f"invariant, shifts: {hs.description or 'a HashSet'} has no variant "
                         "hashes of this kind and no images to make them from; hash it with "
                         "the same invariant and shifts (gd.hash_images)")
    codes, table = compute_variant_hashes(images, be, invariant=invariant, shifts=shifts,
                                          batch_size=batch_size, progress=progress,
                                          label=label)
    out = HashSet(hs.phashes, hs.digests, image_shape=hs.image_shape, dtype=hs.dtype,
                  source=hs.source, description=hs.description, convention=hs.convention,
                  fingerprint=hs.fingerprint, pixels=hs.pixels, variants=codes,
                  variant_table=table)
    return out


def _classes(hs: HashSet, name: str, *, exact: bool, verify: bool) -> np.ndarray | None:
    # each image's representative among its identical images (None: no two alike), once per
    # HashSet: a scan uses one split's classes for its duplicates and for every leak search
    if not exact or hs.digests is None:
        return None
    cache = hs.__dict__.setdefault("_classes", {})
    if verify not in cache:
        cache[verify] = exact_classes(hs.digests, hs.source, verify=verify, name=name)
    return cache[verify]


def _pixels_of(hs: HashSet):
    # what a report shows and a clean verifies against: the source, or the saved pixels
    images = hs.images
    return images if images is not None else hs.source


def _overlaps(ha: HashSet, hb: HashSet | None, names: tuple[str, str], *, threshold: int,
              exact: bool, near: bool, verify: bool, be, strategy: str,
              min_similarity: float = DEFAULT_MIN_SIMILARITY,
              progress: bool = False, max_pairs: int = MAX_PAIRS,
              lead: int | None = None, part: str = "all") -> Overlaps:
    # lead (inside one set): only the pairs whose first image is one of the first lead images,
    # part: "plain" (no variant hashes) or "all" (matching.near_pairs), for a block of a search
    # split into tasks
    if on_dask.runs_on_cluster(ha, hb):  # dask hook: tasks of query rows on the workers
        return on_dask.overlaps_on_cluster(
            ha, hb, names, threshold=threshold, exact=exact, near=near, verify=verify, be=be,
            strategy=strategy, min_similarity=min_similarity, max_pairs=max_pairs)
    self_join = hb is None
    other = ha if self_join else hb
    width = max(other.count, 1)
    if near and ha.convention and other.convention and ha.convention != other.convention:
        warnings.warn(f"{names[0]}, {names[1]}: phashes made with different Pillow resize "
                      f"orders ({ha.convention} vs {other.convention}); distances may be off",
                      stacklevel=3)
    # identical images are classes: the searches run on one representative of each, and
    # the Overlaps stands for the pairs of their members (groups.py)
    rep_a = _classes(ha, names[0], exact=exact, verify=verify)
    rep_b = rep_a if self_join else _classes(other, names[1], exact=exact, verify=verify)
    reps_a = None if rep_a is None else representatives(rep_a, ha.count)
    reps_b = None if rep_b is None else representatives(rep_b, other.count)
    ei = ej = np.empty(0, np.int64)
    if exact and not self_join and ha.digests is not None and other.digests is not None:
        da = ha.digests if reps_a is None else ha.digests[reps_a]
        db = other.digests if reps_b is None else other.digests[reps_b]
        ei, ej = digest_pairs(da, db, be.xp)
        if reps_a is not None:
            ei = reps_a[ei]
        if reps_b is not None:
            ej = reps_b[ej]
        if verify:
            same = verify_pairs(ha.source, other.source, ei, ej, *names)
            ei, ej = ei[same], ej[same]
    grouping = {"rep_left": rep_a, "rep_right": rep_b, "counts": (ha.count, other.count),
                "max_pairs": max_pairs, "verified_exact": verify}
    if not near:
        return Overlaps(ei, ej, np.zeros(ei.size, np.uint8), np.ones(ei.size, bool),
                        threshold=threshold, self_join=self_join,
                        verified=np.full(ei.size, verify), **grouping)
    label = f"searching {names[0]}" if self_join else f"searching {names[0]} x {names[1]}"
    opts = NearOptions(threshold, verify=verify, min_similarity=min_similarity,
                       strategy=strategy, progress=progress)
    cols, reason, unchecked = near_pairs(ha, hb, opts, be, label=label, rows_a=reps_a,
                                         rows_b=reps_b, lead=lead, part=part)
    keys = _pair_keys(cols["i"], cols["j"], width)
    exact_keys = _pair_keys(ei, ej, width)
    cols["exact"] = np.isin(keys, exact_keys, assume_unique=True)
    missing = ~np.isin(exact_keys, keys, assume_unique=True)
    if missing.any():
        # identical images always have equal phashes and score 0; this only happens when the
        # two sides' phashes were made under different conventions
        mi, mj = ei[missing], ej[missing]
        extra = {"i": mi, "j": mj,
                 "distance": np.bitwise_count(ha.phashes[mi] ^ other.phashes[mj]).astype(
                     np.uint8),
                 **empty_extras(mi.size), "exact": np.ones(mi.size, bool)}
        # (similarity, residual and verified of exact pairs are set below)
        cols = sort_columns(concat_columns([cols, extra]))
    ex = cols["exact"]
    mark_exact(cols, ex, verify)
    return Overlaps(cols["i"], cols["j"], cols["distance"], ex, threshold=threshold,
                    self_join=self_join, similarity=cols["similarity"],
                    residual=cols["residual"], shift=cols["shift"],
                    transform=cols["transform"], offset=cols["offset"],
                    verified=cols["verified"], unverified=reason, unchecked=unchecked,
                    **grouping)


def find_overlaps(a, b=None, *, threshold: int = DEFAULT_THRESHOLD, exact: bool = True,
                  near: bool = True, verify: bool = True,
                  min_similarity: float = DEFAULT_MIN_SIMILARITY, invariant: str | None = None,
                  shifts: int = 0, backend: str = "auto", batch_size: int | None = None,
                  progress: bool = False, strategy: str = "auto", scheduler=None,
                  max_pairs: int = MAX_PAIRS) -> Overlaps:
    """Pairs of images that are exact or near duplicates, between ``a`` and ``b`` or inside ``a``.

    Near pairs are found in two steps: the 64-bit perceptual hashes propose candidates within
    ``threshold``, then each candidate is confirmed on its pixels (``gpudedup.verify``: the
    residual of a least-squares brightness/contrast fit, best over shifts up to 2 px, scaled
    to the pair's own value range) and kept when its ``similarity`` reaches
    ``min_similarity``. On small real images most pairs within a few phash bits are different
    pictures with one silhouette; the pixel check is what keeps them out of the answer.

    Parameters
    ----------
    a, b : array-like, h5py.Dataset, str, dask array or HashSet
        ``(N, H, W)`` images of any integer or float dtype, ``(N, H, W, 3)`` uint8 RGB,
        ``"file.h5:/dataset"``, a dask array (``gd.dask_from_hdf5``), or precomputed hashes.
        Without ``b``, the pairs inside ``a`` (``left < right``).
    threshold : int, 0..64
        Search radius: largest Hamming distance between the perceptual hashes of a candidate
        near pair (default 8, chosen on real data, README "Accuracy"). A larger radius finds
        more edited copies and costs more pixel checks; it does not let look-alikes in.
    exact : bool
        Find byte-identical pairs (128-bit digests, then a byte comparison) and flag them in
        ``Overlaps.exact``. When False, ``exact`` is False everywhere (not checked).
    near : bool
        Find near pairs. When False, only the exact pairs are returned.
    verify : bool
        Confirm every pair on the pixels (default): exact candidates byte for byte, near
        candidates by their similarity. False trusts the hashes: equal digests are exact and
        every candidate within ``threshold`` is reported, with similarity NaN.
    min_similarity : float in [0, 1]
        Lowest similarity of a reported near pair (default 0.75, residual 8 grey levels: real
        copies under noise, brightness, contrast and small shifts score above it, distinct
        look-alikes below). Higher is stricter.
    invariant : {None, "dihedral"}
        "dihedral" also finds mirrored, transposed and 90/180/270-degree rotated copies
        (transposes for square images only); ``Overlaps.transform`` says which matched.
    shifts : int, 0..2
        Also search with the hashes of ``b`` shifted by up to this many pixels (every
        ``(dy, dx)`` in ``[-shifts, shifts]^2``), which finds shifted and re-cropped copies
        whose own hash moved past ``threshold``; costs ``(2 * shifts + 1) ** 2`` hashings of
        ``b``. ``Overlaps.offset`` records the variant that matched.
    backend : {"auto", "cpu", "cuda"}
    batch_size : int, optional
        Images per hashing batch.
    progress : bool
        Show progress bars.
    strategy : {"auto", "brute", "mih"}
        Range-search strategy; all give the same pairs.
    scheduler : distributed.Client or str, optional
        Where dask array inputs are hashed and searched: a client or a scheduler address.
        Default: the active client, if any, else locally one chunk at a time. The answer is the
        same either way (:mod:`gpudedup.distributed`).
    max_pairs : int
        Most pairs the result makes into arrays when they are read (default 20 million):
        identical images are kept as classes, so a cluster of k copies costs k integers until
        its k(k-1)/2 pairs are asked for; past this, reading them raises TooManyPairsError
        (``len()`` and ``groups()`` still work).

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
    if scheduler is not None:  # dask hook: the same call, with that client as the active one
        arguments = dict(locals(), scheduler=None)
        with on_dask.session(scheduler):
            return find_overlaps(**arguments)
    threshold, min_similarity, invariant, shifts = _check_options(
        threshold, exact, near, strategy, min_similarity, invariant, shifts)
    check_batch_size(batch_size)
    max_pairs = check_count(max_pairs, "max_pairs")
    be = backends.resolve(backend, a, b)
    opts = {"exact": exact, "near": near, "batch_size": batch_size, "progress": progress}
    dask = {"backend": backend, "invariant": invariant, "shifts": shifts}
    ha = _hashes(a, "a", be, **opts, dask=dask)
    hb = None if b is None else _hashes(b, "b", be, **opts, dask=dask)
    if near:
        variants = {"batch_size": batch_size, "progress": progress}
        if hb is None:
            ha = _with_variants(ha, invariant, shifts, be, label="a", **variants)
        else:
            hb = _with_variants(hb, invariant, shifts, be, label="b", **variants)
    return _overlaps(ha, hb, ("a", "a" if b is None else "b"), threshold=threshold,
                     exact=exact, near=near, verify=verify, be=be, strategy=strategy,
                     min_similarity=min_similarity, progress=progress, max_pairs=max_pairs)


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
         near: bool = True, verify: bool = True,
         min_similarity: float = DEFAULT_MIN_SIMILARITY, invariant: str | None = None,
         shifts: int = 0, backend: str = "auto", batch_size: int | None = None,
         progress: bool = False, strategy: str = "auto", scheduler=None,
         max_pairs: int = MAX_PAIRS) -> Report:
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
    threshold, exact, near, verify, min_similarity, invariant, shifts, backend, batch_size, \
progress, strategy, scheduler, max_pairs
        As for :func:`find_overlaps` (a split may be a dask array).

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
    if scheduler is not None:  # dask hook: the same call, with that client as the active one
        arguments = dict(locals(), scheduler=None)
        with on_dask.session(scheduler):
            return scan(**arguments)
    threshold, min_similarity, invariant, shifts = _check_options(
        threshold, exact, near, strategy, min_similarity, invariant, shifts)
    check_batch_size(batch_size)
    max_pairs = check_count(max_pairs, "max_pairs")
    if not isinstance(splits, Mapping) or not splits:
        raise InputTypeError("splits: expected a non-empty mapping of split name to images, got "
                        f"{type(splits).__name__}")
    for name in splits:
        if not isinstance(name, str) or not name:
            raise InputTypeError(f"splits: split names must be non-empty strings, got {name!r}")
    be = backends.resolve(backend, *splits.values())
    # validate every split and the labels before hashing anything
    inputs = {name: images if isinstance(images, HashSet)
              else on_dask.check_dask_images(images, f"splits[{name!r}]")
              if on_dask.is_dask_array(images)  # dask hook: validated, not read
              else as_source(images, f"splits[{name!r}]") for name, images in splits.items()}
    label_arrays = _check_labels(labels, {n: int(x.shape[0]) if on_dask.is_dask_array(x)
                                          else x.count for n, x in inputs.items()})
    opts = {"exact": exact, "near": near, "batch_size": batch_size, "progress": progress}
    dask = {"backend": backend, "invariant": invariant, "shifts": shifts}
    hashes = {name: _hashes(x, f"splits[{name!r}]", be, label=name, **opts, dask=dask)
              for name, x in inputs.items()}
    if near:
        hashes = {name: _with_variants(h, invariant, shifts, be, batch_size=batch_size,
                                       progress=progress, label=name)
                  for name, h in hashes.items()}
    search = {"threshold": threshold, "exact": exact, "near": near, "verify": verify,
              "be": be, "strategy": strategy, "progress": progress,
              "min_similarity": min_similarity, "max_pairs": max_pairs}
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
                  threshold=threshold, sources={n: _pixels_of(h) for n, h in hashes.items()},
                  exact=exact, near=near, verify=verify, min_similarity=min_similarity,
                  invariant=invariant, shifts=shifts)


def clean(data, output=None, *, labels=None, priority=None, keep_conflicts: bool = False,
          min_similarity: float | None = None, max_removed: float = DEFAULT_MAX_REMOVED,
          dry_run: bool = False, **scan_options) -> CleanPlan:
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
    min_similarity : float in [0, 1], optional
        Act only on near pairs at least this similar on their pixels (and, when ``data`` is
        scanned now, scan with it). Exact pairs always count; unverified near pairs never do.
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
    if not isinstance(data, Report) and min_similarity is not None:
        scan_options.setdefault("min_similarity", min_similarity)
    report = data if isinstance(data, Report) else scan(data, labels, **scan_options)
    plan = plan_clean(report, priority, keep_conflicts, min_similarity)
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
