"""Keep-masks from a scan, and the cleaned HDF5 file written from them."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ._version import __version__
from .checks import check_share
from .errors import InputError
from .fileio import estimate_h5_copy, h5_output, same_file
from .layout import SplitSpec
from .results import Report

#: splits that win a cross-split leak first: the copy in test stays, the one in train goes
DEFAULT_PRIORITY = ("test", "valid", "train")
#: rows copied per read while filtering a dataset
COPY_ROWS = 8192


def split_priority(names: Sequence[str], priority: Sequence[str] | None) -> list[str]:
    """Split names from highest to lowest priority: those in ``priority`` (or the default
    test > valid > train) first, in that order, then the others in their given order."""
    chosen = list(priority) if priority is not None else list(DEFAULT_PRIORITY)
    if priority is not None:
        unknown = [p for p in chosen if p not in names]
        if unknown:
            raise InputError(f"priority: {', '.join(map(repr, unknown))} not among the splits "
                             f"({', '.join(map(repr, names))})")
    ranked = [p for p in chosen if p in names]
    return ranked + [n for n in names if n not in ranked]


#: why an image leaves a cleaned dataset, in the order the plan lists them
REASONS = ("leak", "exact copy", "near copy", "label conflict")
#: largest share of any split a clean may remove unless the caller allows more
DEFAULT_MAX_REMOVED = 0.1


class RemovalLimitError(InputError):
    """A clean would remove more of a split than ``max_removed`` allows."""


@dataclass
class CleanPlan:
    """What a clean keeps and removes, and why, before anything is written.

    Attributes
    ----------
    keep : dict of str to ndarray of bool
        Per split, which images the cleaned dataset keeps.
    reasons : dict of str to dict of str to int
        Per split, how many images leave for each of REASONS: ``leak`` (a copy stays in a
        higher-priority split), ``exact copy`` / ``near copy`` (a copy stays in the same split),
        ``label conflict`` (its duplicate group holds different labels and is dropped whole).
    written : str or None
        The cleaned file, once written (None for a dry run or array input).
    """

    keep: dict[str, np.ndarray]
    reasons: dict[str, dict[str, int]]
    written: str | None = None

    def removed(self) -> dict[str, int]:
        """Images removed per split."""
        return {n: int(m.size - m.sum()) for n, m in self.keep.items()}

    def check(self, max_removed: float = DEFAULT_MAX_REMOVED, name: str = "max_removed") -> None:
        """Raise RemovalLimitError if any split would lose more than ``max_removed`` of its
        images; the message names the option ``name`` that allows it."""
        max_removed = check_share(max_removed, name)
        over = [(n, r, self.keep[n].size) for n, r in self.removed().items()
                if self.keep[n].size and r / self.keep[n].size > max_removed]
        if over:
            worst = max(r / size for _, r, size in over)
            which = ", ".join(f"{r:,} of {size:,} {n} images ({r / size:.1%})"
                              for n, r, size in over)
            raise RemovalLimitError(
                f"{name}: cleaning would remove {which}, more than {name}={max_removed:g} "
                f"allows; look at the plan first (dry run), then allow it with {name}="
                f"{math.ceil(worst * 100) / 100:g} or more")

    def __str__(self) -> str:
        lines = [f"{'split':<12}{'images':>9}{'keep':>9}{'remove':>9}  why"]
        for name, mask in self.keep.items():
            why = ", ".join(f"{reason} {count:,}" for reason, count in self.reasons[name].items()
                            if count) or "-"
            lines.append(f"{name:<12}{mask.size:>9,}{int(mask.sum()):>9,}"
                         f"{int(mask.size - mask.sum()):>9,}  {why}")
        return "\n".join(lines)


def plan_clean(report: Report, priority: Sequence[str] | None = None,
               keep_conflicts: bool = False) -> CleanPlan:
    """Which images of each split a cleaned dataset keeps, and why the others go.

    Images linked by pairs (inside or across splits) form groups. A group holding a label
    conflict is dropped whole unless ``keep_conflicts``. Otherwise one image survives: the
    lowest index in the group's highest-priority split; so cross-split leaks leave the
    lower-priority split, and duplicates inside a split shrink to one.

    Parameters
    ----------
    report : Report
        What :func:`gpudedup.scan` found.
    priority : sequence of str, optional
        Split names, first wins a leak (default test, valid, train, then the others).
    keep_conflicts : bool
        Keep one image of groups whose labels differ instead of dropping them whole.

    Returns
    -------
    CleanPlan

    Examples
    --------
    >>> import numpy as np, gpudedup as gd
    >>> x = np.random.default_rng(0).integers(0, 256, (5, 16, 16), dtype=np.uint8)
    >>> plan = gd.plan_clean(gd.scan({"train": x, "test": x[:2]}))
    >>> plan.removed(), plan.reasons["train"]["leak"]
    ({'train': 2, 'test': 0}, 2)
    """
    names = list(report.splits)
    ranked = split_priority(names, priority)
    rank = {n: k for k, n in enumerate(ranked)}
    masks = {n: np.ones(report.splits[n].count, dtype=bool) for n in names}
    reasons = {n: dict.fromkeys(REASONS, 0) for n in names}
    conflicted = {(c.a, c.i) for c in report.conflicts} | {(c.b, c.j) for c in report.conflicts}
    exact = {n: {(int(i), int(j)) for i, j in zip(ov.left[ov.exact], ov.right[ov.exact])}
             for n, ov in report.duplicates.items()}
    for group in report.groups():
        for split, index in group:
            masks[split][index] = False
        if not keep_conflicts and any(member in conflicted for member in group):
            for split, _ in group:
                reasons[split]["label conflict"] += 1
            continue
        kept_split, kept = min(group, key=lambda m: (rank[m[0]], m[1]))
        masks[kept_split][kept] = True
        for split, index in group:
            if (split, index) == (kept_split, kept):
                continue
            if split != kept_split:
                reasons[split]["leak"] += 1
            elif (min(index, kept), max(index, kept)) in exact.get(split, ()):
                reasons[split]["exact copy"] += 1
            else:
                reasons[split]["near copy"] += 1
    return CleanPlan(masks, reasons)


def keep_masks(report: Report, priority: Sequence[str] | None = None,
               keep_conflicts: bool = False) -> dict[str, np.ndarray]:
    """Which images of each split a cleaned dataset keeps: ``plan_clean(...).keep``.

    Examples
    --------
    >>> import numpy as np, gpudedup as gd
    >>> x = np.zeros((3, 8, 8), np.uint8)
    >>> gd.keep_masks(gd.scan({"train": x}))["train"].tolist()
    [True, False, False]
    """
    return plan_clean(report, priority, keep_conflicts).keep


def _copy_filtered(src, dst_parent, name: str, mask: np.ndarray) -> None:
    # stream the kept rows of src into a new dataset with src's dtype, layout and attributes
    kept = int(mask.sum())
    options = {}
    if src.chunks is not None:
        options["chunks"] = (max(1, min(src.chunks[0], kept)),) + tuple(src.chunks[1:])
        if src.compression is not None:
            options["compression"] = src.compression
            options["compression_opts"] = src.compression_opts
    dst = dst_parent.create_dataset(name, shape=(kept,) + src.shape[1:], dtype=src.dtype,
                                    **options)
    pos = 0
    for start in range(0, src.shape[0], COPY_ROWS):
        rows = mask[start:start + COPY_ROWS]
        if not rows.any():
            continue
        block = src[start:start + rows.size][rows]
        dst[pos:pos + block.shape[0]] = block
        pos += block.shape[0]
    for key, value in src.attrs.items():
        dst.attrs[key] = value


def write_clean(input_path: str, output_path: str, specs: Sequence[SplitSpec],
                masks: Mapping[str, np.ndarray], *, threshold: int) -> dict[str, int]:
    """Write a copy of ``input_path`` with only the kept images (and their labels).

    Every other dataset and every attribute is copied as is; ``/gpudedup/kept/<split>`` holds
    the original indices kept. The file is written under a temporary name and renamed; the
    input is opened read-only and never written. Returns the kept count per split.
    """
    import h5py

    if same_file(input_path, output_path):
        raise InputError(f"-o: {output_path!r} is the input file; choose another path")
    filtered = {}
    for spec in specs:
        filtered[spec.images] = spec.name
        if spec.labels:
            filtered[spec.labels] = spec.name
    # the temporary file closes (inner context) before it is renamed (outer context)
    # kept bytes of the filtered datasets, all of the others: checked against the free space
    need = estimate_h5_copy(input_path, {path: float(np.mean(masks[name])) if masks[name].size
                                         else 0.0 for path, name in filtered.items()})
    with h5_output(output_path, need=need, option="-o") as fout, \
            h5py.File(input_path, "r") as fin:
        for key, value in fin.attrs.items():
            fout.attrs[key] = value

        def visit(path, obj):
            full = "/" + path
            if full == "/gpudedup" or full.startswith("/gpudedup/"):
                return  # a previous clean's record; this one writes its own
            if isinstance(obj, h5py.Group):
                group = fout.require_group(full)
                for key, value in obj.attrs.items():
                    group.attrs[key] = value
                return
            parent = fout.require_group(os.path.dirname(full) or "/")
            if full in filtered:
                _copy_filtered(obj, parent, os.path.basename(full), masks[filtered[full]])
            else:
                fin.copy(obj, parent, name=os.path.basename(full))

        fin.visititems(visit)
        kept_group = fout.require_group("/gpudedup/kept")
        for spec in specs:
            kept_group.create_dataset(spec.name, data=np.flatnonzero(masks[spec.name]))
        meta = fout["/gpudedup"]
        meta.attrs["version"] = __version__
        meta.attrs["threshold"] = threshold
        meta.attrs["source"] = os.path.basename(input_path)
    return {spec.name: int(masks[spec.name].sum()) for spec in specs}
