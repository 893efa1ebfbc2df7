"""Keep-masks from a scan, and the cleaned HDF5 file written from them."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from ._version import __version__
from .errors import InputError
from .fileio import atomic_path, same_file
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


def keep_masks(report: Report, priority: Sequence[str] | None = None,
               keep_conflicts: bool = False) -> dict[str, np.ndarray]:
    """Which images of each split a cleaned dataset keeps.

    Images linked by pairs (inside or across splits) form groups. A group holding a label
    conflict is dropped whole unless ``keep_conflicts``. Otherwise one image survives: the
    lowest index in the group's highest-priority split; so cross-split leaks leave the
    lower-priority split, and duplicates inside a split shrink to one.
    """
    names = list(report.splits)
    ranked = split_priority(names, priority)
    rank = {n: k for k, n in enumerate(ranked)}
    masks = {n: np.ones(report.splits[n].count, dtype=bool) for n in names}
    conflicted = {(c.a, c.i) for c in report.conflicts} | {(c.b, c.j) for c in report.conflicts}
    for group in report.groups():
        for split, index in group:
            masks[split][index] = False
        if not keep_conflicts and any(member in conflicted for member in group):
            continue
        split, index = min(group, key=lambda m: (rank[m[0]], m[1]))
        masks[split][index] = True
    return masks


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
    with atomic_path(output_path, ".h5.tmp") as tmp, \
            h5py.File(input_path, "r") as fin, h5py.File(tmp, "w") as fout:
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
