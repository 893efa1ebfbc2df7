"""Keep-masks from a scan, and the cleaned HDF5 file written from them."""

from __future__ import annotations

import math
import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ._version import __version__
from .checks import check_share
from .errors import InputError
from .fileio import check_outputs, estimate_h5_copy, h5_output
from .groups import connected_components
from .layout import SplitSpec
from .results import Report
from .verify import SIMILARITY_SPAN

#: splits that win a cross-split leak first: the copy in test stays, the one in train goes
DEFAULT_PRIORITY = ("test", "valid", "train")


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
    left_alone : int
        Near pairs the clean did not act on: not verified on pixels, or below its
        ``min_similarity``.
    """

    keep: dict[str, np.ndarray]
    reasons: dict[str, dict[str, int]]
    written: str | None = None
    left_alone: int = 0

    def removed(self) -> dict[str, int]:
        """Images removed per split."""
        return {n: int(m.size - m.sum()) for n, m in self.keep.items()}

    def check(self, max_removed: float = DEFAULT_MAX_REMOVED, name: str = "max_removed") -> None:
        """Raise RemovalLimitError if any split would lose more than ``max_removed`` of its
        images; the message names the option ``name`` that allows it.

        Examples
        --------
        >>> import numpy as np, gpudedup as gd
        >>> x = np.zeros((4, 8, 8), np.uint8)
        >>> plan = gd.plan_clean(gd.scan({"train": x}))
        >>> plan.removed()
        {'train': 3}
        >>> plan.check(0.5)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gpudedup.cleaning.RemovalLimitError: max_removed: cleaning would remove 3 of 4 ...
        """
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
        if self.left_alone:
            lines.append(f"{self.left_alone:,} near pairs left alone (not verified on pixels, "
                         "or less similar than --min-similarity)")
        return "\n".join(lines)


#: rounds of choosing a kept image in a chained near group; images not a copy of any image
#: kept by then stay (keeping is always safe)
MAX_KEEP_ROUNDS = 8


def plan_clean(report: Report, priority: Sequence[str] | None = None,
               keep_conflicts: bool = False, min_similarity: float | None = None) -> CleanPlan:
    """Which images of each split a cleaned dataset keeps, and why the others go.

    Only confirmed pairs count: exact ones, and near ones verified on their pixels with a
    similarity of at least ``min_similarity`` (never below the scan's own). Near pairs that
    could not be verified (a HashSet without pixels) remove nothing; ``plan.left_alone``
    counts them. Images linked by confirmed pairs (inside or across splits) form groups, and
    each group keeps its image of the highest-priority split (lowest index first); so
    cross-split leaks leave the lower-priority split, and duplicates inside a split shrink to
    one. An image is removed only when it is itself a copy of an image the clean keeps:
    identical to it, or verified on the pixels against it (near copies chain: A ~ B ~ C does
    not make A ~ C); a member that is neither is kept, or removed as a copy of the next image
    kept from the rest of its group. Images with a confirmed copy under a different label are
    removed as label conflicts unless ``keep_conflicts``. Time and memory follow the images,
    not the pairs: a group of 50,000 identical images is one group.

    Parameters
    ----------
    report : Report
        What :func:`gpudedup.scan` found.
    priority : sequence of str, optional
        Split names, first wins a leak (default test, valid, train, then the others).
    keep_conflicts : bool
        Keep one image of groups whose labels differ instead of removing every image that has
        a copy labelled otherwise.
    min_similarity : float in [0, 1], optional
        Stricter than the scan: act only on near pairs at least this similar (default: the
        scan's ``min_similarity``).

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
    floor = report.min_similarity
    if min_similarity is not None:
        floor = max(floor, check_share(min_similarity, "min_similarity"))
    names = list(report.splits)
    ranked = split_priority(names, priority)
    rank_of = np.array([ranked.index(n) for n in names], np.int64)
    index = report.group_index(floor)
    offsets = index.offsets
    total = int(offsets[-1])
    gid = (np.concatenate([index.ids[n] for n in names]) if names
           else np.empty(0, np.int64))
    split = np.repeat(np.arange(len(names)), np.diff(offsets))
    local = np.arange(total) - offsets[split]
    keep = np.ones(total, bool)
    reason = np.full(total, -1, np.int64)  # index into REASONS of each removed image
    conflicted = np.zeros(total, bool)
    if not keep_conflicts:
        for n, mask in report.conflicted(floor).items():
            s = names.index(n)
            conflicted[offsets[s]:offsets[s + 1]] = mask
    drop = (gid >= 0) & conflicted
    keep[drop] = False
    reason[drop] = REASONS.index("label conflict")
    identical = _identical_components(report, floor, offsets)
    open_ = np.flatnonzero((gid >= 0) & ~conflicted)  # members not yet kept or removed
    verifier = _Verifier(report, floor, names, offsets)
    for _ in range(MAX_KEEP_ROUNDS):
        if open_.size == 0:
            break
        # the kept image of each group: highest-priority split, then lowest index
        order = open_[np.lexsort((local[open_], rank_of[split[open_]], gid[open_]))]
        first = np.concatenate([[True], gid[order][1:] != gid[order][:-1]])
        kept_of = np.full(index.count, -1, np.int64)
        kept_of[gid[order[first]]] = order[first]
        rest = order[~first]
        if rest.size == 0:
            break
        kept = kept_of[gid[rest]]
        same = identical[rest] == identical[kept]
        near = verifier.copies(kept[~same], rest[~same])
        copy = same.copy()
        copy[~same] = near
        gone = rest[copy]
        keep[gone] = False
        cross = split[gone] != split[kept[copy]]
        reason[gone] = np.where(cross, REASONS.index("leak"),
                                np.where(same[copy], REASONS.index("exact copy"),
                                         REASONS.index("near copy")))
        # who is not a copy of its group's kept image waits for the next round
        open_ = rest[~copy]
    masks = {n: keep[offsets[s]:offsets[s + 1]] for s, n in enumerate(names)}
    reasons = {n: dict.fromkeys(REASONS, 0) for n in names}
    for s, n in enumerate(names):
        codes = reason[offsets[s]:offsets[s + 1]]
        for r, count in enumerate(np.bincount(codes[codes >= 0], minlength=len(REASONS))):
            reasons[n][REASONS[r]] = int(count)
    total_pairs = sum(len(ov) for _, _, ov in report._all_pairs())
    acted = sum(len(ov) for _, _, ov in report._all_pairs(floor))
    return CleanPlan(masks, reasons, left_alone=total_pairs - acted)


def _identical_components(report: Report, floor, offsets) -> np.ndarray:
    # per image (one numbering of all splits) a component id of its identical images: the
    # exact links only, so two images share it only if they are byte for byte the same
    names = list(report.splits)
    lefts, rights = [], []
    for a, b, ov in report._all_pairs(floor):
        links = ov.links()
        ex = links["exact"]
        lefts.append(links["i"][ex] + offsets[names.index(a)])
        rights.append(links["j"][ex] + offsets[names.index(b)])
    left = np.concatenate(lefts) if lefts else np.empty(0, np.int64)
    right = np.concatenate(rights) if rights else np.empty(0, np.int64)
    return connected_components(int(offsets[-1]), left, right)


class _Verifier:
    """Whether images are near copies of the images a clean keeps, on their pixels, with the
    scan's score and cut (every transform when the scan looked for flips and rotations)."""

    def __init__(self, report: Report, floor: float, names: list[str], offsets: np.ndarray):
        self.report = report
        self.cut = SIMILARITY_SPAN * (1.0 - floor)
        self.names = names
        self.offsets = offsets

    def copies(self, kept: np.ndarray, other: np.ndarray) -> np.ndarray:
        """For global image numbers, whether ``other[k]`` is a verified copy of ``kept[k]``."""
        out = np.zeros(kept.size, bool)
        if kept.size == 0 or not self.report.verify:
            return out
        from . import backend as backends
        from .grid import common_grid
        from .transforms import TRANSFORMS
        from .verify import verify_sources

        sk = np.searchsorted(self.offsets, kept, side="right") - 1
        so = np.searchsorted(self.offsets, other, side="right") - 1
        be = backends.resolve("cpu")
        for a in np.unique(sk).tolist():
            for b in np.unique(so[sk == a]).tolist():
                src_a = self.report.sources.get(self.names[a])
                src_b = self.report.sources.get(self.names[b])
                if src_a is None or src_b is None or not getattr(src_a, "readable", False) \
                        or not getattr(src_b, "readable", False):
                    continue  # no pixels: nothing can be confirmed, nothing is removed
                pick = np.flatnonzero((sk == a) & (so == b))
                view_a, view_b = common_grid(src_a, src_b)[:2]
                i = kept[pick] - self.offsets[a]
                j = other[pick] - self.offsets[b]
                square = view_a.image_shape[0] == view_a.image_shape[1]
                codes = (range(len(TRANSFORMS) if square else 4)
                         if self.report.invariant == "dihedral" else [0])
                for code in codes:
                    residual, _ = verify_sources(
                        view_a, view_b, i, j, be, cut=self.cut,
                        transform=np.full(i.size, code, np.uint8) if code else None)
                    out[pick] |= residual <= self.cut
        return out


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


#: bytes of a dataset read per step while filtering it (whole chunks along N, at least one)
COPY_BYTES = 64 * 2**20
#: the record of a previous clean, which a clean replaces by its own
_RECORD = "/gpudedup"


@dataclass
class _Layout:
    """How an input file's names map to objects, found before anything is written."""

    #: (kind, path, ...) in walk order: ("group"|"dataset"|"datatype", path),
    #: ("soft", path, target), ("external", path, file, target), ("alias", path, first_path)
    entries: list = field(default_factory=list)
    #: first path of every object reached through hard links, by object key
    paths: dict = field(default_factory=dict)
    #: first path of each filtered dataset -> split name
    filtered: dict = field(default_factory=dict)
    #: (path, attribute name or None for the data, "object"|"region") holding references
    refs: list = field(default_factory=list)
    #: what cannot be kept, one line each
    problems: list = field(default_factory=list)


def _key(obj) -> tuple[int, int]:
    # one object, whatever name it is reached by
    import h5py

    info = h5py.h5o.get_info(obj.id)
    return info.fileno, info.addr


def _ref_kind(dtype) -> str | None:
    # "object" / "region" for a dtype of references, "nested" for references inside a
    # compound, array or variable-length type, None for none
    import h5py

    if dtype is None:
        return None
    ref = h5py.check_dtype(ref=dtype)
    if ref is not None:
        return "region" if ref is h5py.RegionReference else "object"
    inner = [f[0] for f in (dtype.fields or {}).values()]
    if dtype.subdtype is not None:
        inner.append(dtype.subdtype[0])
    vlen = h5py.check_vlen_dtype(dtype)
    if isinstance(vlen, np.dtype):  # str and bytes for strings
        inner.append(vlen)
    return "nested" if any(_ref_kind(d) for d in inner) else None


def _survey(fin, filtered_specs: Mapping[str, str]) -> _Layout:
    # walk every link of the file (visititems skips soft and external links and visits a
    # hard-linked object once), note what each name is and what cannot be kept
    import h5py

    layout = _Layout()
    layout.paths[_key(fin)] = "/"

    def note_refs(path, obj):
        for name in obj.attrs:
            try:
                kind = _ref_kind(obj.attrs.get_id(name).dtype)
                obj.attrs[name]  # noqa: B018 - an attribute h5py cannot read cannot be copied
            except Exception as exc:  # noqa: BLE001 - listed, not raised one by one
                layout.problems.append(f"attribute {name!r} of {path}: cannot be read ({exc})")
                continue
            if kind == "nested":
                layout.problems.append(f"attribute {name!r} of {path}: holds references inside "
                                       "a compound, array or variable-length type")
            elif kind:
                layout.refs.append((path, name, kind))
        kind = _ref_kind(obj.dtype) if isinstance(obj, h5py.Dataset) else None
        if kind == "nested":
            layout.problems.append(f"dataset {path}: holds references inside a compound, "
                                   "array or variable-length type")
        elif kind:
            layout.refs.append((path, None, kind))

    note_refs("/", fin)
    stack = [("/", fin)]
    while stack:
        base, group = stack.pop()
        members = []
        for name in group:
            path = posixpath.join(base, name)
            if path == _RECORD or path.startswith(_RECORD + "/"):
                continue
            try:
                link = group.get(name, getlink=True)
            except Exception as exc:  # noqa: BLE001 - listed, not raised one by one
                layout.problems.append(f"{path}: link cannot be read ({exc})")
                continue
            if isinstance(link, h5py.SoftLink):
                layout.entries.append(("soft", path, link.path))
            elif isinstance(link, h5py.ExternalLink):
                layout.entries.append(("external", path, link.filename, link.path))
            elif isinstance(link, h5py.HardLink):
                obj = group[name]
                key = _key(obj)
                if key in layout.paths:
                    layout.entries.append(("alias", path, layout.paths[key]))
                    continue
                layout.paths[key] = path
                if isinstance(obj, h5py.Group):
                    layout.entries.append(("group", path))
                    members.append((path, obj))
                else:
                    kind = "dataset" if isinstance(obj, h5py.Dataset) else "datatype"
                    layout.entries.append((kind, path))
                note_refs(path, obj)
            else:
                layout.problems.append(f"{path}: a link of a type clean cannot copy ({link!r})")
        # depth first, members in the group's order: a name's target is written before a
        # later alias of it
        stack.extend(reversed(members))

    for path, split in filtered_specs.items():
        try:
            obj = fin[path]
        except Exception as exc:  # noqa: BLE001 - listed, not raised one by one
            layout.problems.append(f"split {split!r}: {path} cannot be opened ({exc})")
            continue
        first = layout.paths.get(_key(obj))
        if first is None:
            layout.problems.append(f"split {split!r}: {path} is {obj.file.filename}:{obj.name} "
                                   "(an external link); clean cannot filter another file")
        else:
            layout.filtered[first] = split
    for path, attr, kind in layout.refs:
        where = f"dataset {path}" if attr is None else f"attribute {attr!r} of {path}"
        if path in layout.filtered and attr is None:
            layout.problems.append(f"{where}: a filtered dataset of references")
            continue
        obj = fin[path]
        _rebuild_refs(fin, None, layout, obj[()] if attr is None else obj.attrs[attr], kind, where)
    return layout


def _rebuild_refs(fin, fout, layout: _Layout, values, kind: str, where: str):
    # references point into their own file: each is rebuilt to the copied object (fout None:
    # only check that it can be, listing what cannot)
    import h5py

    array = np.asarray(values, dtype=object)
    out = np.empty(array.shape, dtype=h5py.regionref_dtype if kind == "region"
                   else h5py.ref_dtype)
    for k, ref in enumerate(array.flat):
        if not ref:
            out.flat[k] = ref  # a null reference stays null
            continue
        try:
            target = fin[ref]
        except Exception:  # noqa: BLE001 - listed, not raised one by one
            layout.problems.append(f"{where}: a reference that does not resolve")
            continue
        path = layout.paths.get(_key(target))
        if path is None:
            layout.problems.append(f"{where}: refers to {target.name}, which clean does not copy")
        elif kind == "region" and path in layout.filtered:
            layout.problems.append(f"{where}: a region of {path}, whose rows clean removes")
        elif fout is not None and kind == "region":
            space = h5py.h5r.get_region(ref, fin.id)
            out.flat[k] = h5py.h5r.create(fout.id, path.encode(), h5py.h5r.DATASET_REGION, space)
        elif fout is not None:
            out.flat[k] = fout[path].ref
    return out if array.shape else out[()]


def _copy_attrs(src, dst, skip_refs: bool = True) -> None:
    # attributes with their stored dtype (references are rebuilt after every object exists)
    import h5py

    for name in src.attrs:
        dtype = src.attrs.get_id(name).dtype
        if skip_refs and _ref_kind(dtype):
            continue
        value = src.attrs[name]
        if isinstance(value, h5py.Empty):
            dst.attrs.create(name, value)
        else:
            dst.attrs.create(name, value, dtype=dtype)


def _write_layout(fin, fout, layout: _Layout, masks: Mapping[str, np.ndarray]) -> None:
    import h5py

    # object keys hold the file's number for this open: key the objects again for this one
    layout.paths = {_key(fin[path]): path for path in layout.paths.values()}
    lcpl = h5py.h5p.create(h5py.h5p.LINK_CREATE)
    lcpl.set_char_encoding(h5py.h5t.CSET_UTF8)
    _copy_attrs(fin, fout)
    for kind, path, *rest in layout.entries:
        parent, name = posixpath.split(path)
        if kind == "group":
            # the input's group creation properties: link order tracking, storage
            src = fin[path]
            gid = h5py.h5g.create(fout.id, path.encode(), lcpl=lcpl,
                                  gcpl=src.id.get_create_plist())
            _copy_attrs(src, h5py.Group(gid))
        elif kind == "dataset" and path in layout.filtered:
            _copy_filtered(fin[path], fout[parent], name, masks[layout.filtered[path]])
        elif kind in ("dataset", "datatype"):
            fin.copy(path, fout[parent], name=name)  # H5Ocopy: properties and attributes
        elif kind == "soft":
            fout[path] = h5py.SoftLink(rest[0])
        elif kind == "external":
            fout[path] = h5py.ExternalLink(rest[0], rest[1])
        else:  # a second name of an object already written
            fout[path] = fout[rest[0]]
    for path, attr, kind in layout.refs:
        src, dst = fin[path], fout[path]
        where = f"dataset {path}" if attr is None else f"attribute {attr!r} of {path}"
        values = src[()] if attr is None else src.attrs[attr]
        rebuilt = _rebuild_refs(fin, fout, layout, values, kind, where)
        if attr is None:
            dst[()] = rebuilt
        elif attr in dst.attrs:  # copied with its object, its references nulled: same place
            dst.attrs.modify(attr, rebuilt)
        else:
            dst.attrs.create(attr, rebuilt, dtype=src.attrs.get_id(attr).dtype)


def _create_like(src, parent, name: str, rows: int):
    # a dataset of `rows` rows with src's type and creation properties (chunks, filters,
    # fill value, attribute order); raw data stored elsewhere (virtual, external) is not
    # followed: the output holds its rows itself
    import h5py

    dcpl = src.id.get_create_plist()
    if dcpl.get_layout() == h5py.h5d.VIRTUAL or dcpl.get_external_count():
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    unlimited = src.maxshape[0] is None
    maxdims = tuple(h5py.h5s.UNLIMITED if m is None else m for m in src.maxshape[1:])
    maxdims = (h5py.h5s.UNLIMITED if unlimited else rows,) + maxdims
    if dcpl.get_layout() == h5py.h5d.CHUNKED:
        first = src.chunks[0] if unlimited else max(1, min(src.chunks[0], rows))
        dcpl.set_chunk((first,) + tuple(src.chunks[1:]))
    space = h5py.h5s.create_simple((rows,) + tuple(src.shape[1:]), maxdims)
    tid = src.id.get_type()
    if tid.committed():  # a named type of the input file: a copy of it
        tid = tid.copy()
    lcpl = h5py.h5p.create(h5py.h5p.LINK_CREATE)
    lcpl.set_char_encoding(h5py.h5t.CSET_UTF8)
    return h5py.Dataset(h5py.h5d.create(parent.id, name.encode(), tid, space, dcpl=dcpl,
                                        lcpl=lcpl))


def _span_rows(src) -> int:
    # rows read per step: whole chunks along N (HDF5 decompresses every chunk a read touches,
    # so a chunk split between two reads is decompressed twice), as many as fit COPY_BYTES,
    # at least one; a dataset stored as one chunk is read at once (memory: that chunk)
    row_bytes = max(1, math.prod(src.shape[1:]) * src.dtype.itemsize)
    if src.chunks is None:
        return max(1, COPY_BYTES // row_bytes)
    per_chunk = src.chunks[0] * row_bytes
    return src.chunks[0] * max(1, COPY_BYTES // per_chunk)


def _copy_filtered(src, dst_parent, name: str, mask: np.ndarray) -> None:
    # stream the kept rows of src into a new dataset with src's type, creation properties and
    # attributes, reading each input chunk once and writing each output chunk once
    dst = _create_like(src, dst_parent, name, int(mask.sum()))
    step = _span_rows(src)
    out_rows = dst.chunks[0] if dst.chunks else 1
    pos, carry = 0, None
    for start in range(0, src.shape[0], step):
        rows = mask[start:start + step]
        if not rows.any():
            continue
        block = src[start:start + rows.size][rows]
        carry = block if carry is None else np.concatenate([carry, block])
        # whole output chunks only: a chunk written in two parts is compressed twice
        whole = carry.shape[0] - carry.shape[0] % out_rows
        if whole:
            dst[pos:pos + whole] = carry[:whole]
            pos += whole
            carry = carry[whole:]
    if carry is not None and carry.shape[0]:
        dst[pos:pos + carry.shape[0]] = carry
    _copy_attrs(src, dst)


def write_clean(input_path: str, output_path: str, specs: Sequence[SplitSpec],
                masks: Mapping[str, np.ndarray], *, threshold: int) -> dict[str, int]:
    """Write a copy of ``input_path`` with only the kept images (and their labels).

    Every other dataset and every attribute is copied as is, and the file's structure is kept:
    soft and external links stay links (dangling ones too), a second name of an object (hard
    link) names the same object, creation properties (chunks, filters, fill value) are kept,
    and object and region references are rebuilt to the copied objects. What cannot be kept
    (a region of a filtered dataset, references inside compound types, a split reached through
    an external link) is listed in an InputError before anything is written.
    ``/gpudedup/kept/<split>`` holds the original indices kept. The file is written under a
    temporary name and renamed; the input is opened read-only and never written. Returns the
    kept count per split.
    """
    import h5py

    # the one up-front output check (fileio): not the input, its folder writable, a regular file
    check_outputs({"output_path": output_path}, {"input_path": input_path},
                  hdf5={"output_path"})
    filtered = {}
    for spec in specs:
        filtered[spec.images] = spec.name
        if spec.labels:
            filtered[spec.labels] = spec.name
    # everything that cannot be kept is listed before anything is written
    with h5py.File(input_path, "r") as fin:
        layout = _survey(fin, filtered)
    if layout.problems:
        shown = layout.problems[:20]
        more = len(layout.problems) - len(shown)
        raise InputError(f"cannot keep the structure of {input_path!r} in a cleaned copy, "
                         "nothing written: " + "; ".join(shown)
                         + (f"; and {more} more" if more else ""))
    # the temporary file closes (inner context) before it is renamed (outer context)
    # kept bytes of the filtered datasets, all of the others: checked against the free space
    need = estimate_h5_copy(input_path, {path: float(np.mean(masks[name])) if masks[name].size
                                         else 0.0 for path, name in filtered.items()})
    with h5_output(output_path, need=need, option="-o") as fout, \
            h5py.File(input_path, "r") as fin:
        _write_layout(fin, fout, layout, masks)
        kept_group = fout.require_group("/gpudedup/kept")
        for spec in specs:
            kept_group.create_dataset(spec.name, data=np.flatnonzero(masks[spec.name]))
        meta = fout["/gpudedup"]
        meta.attrs["version"] = __version__
        meta.attrs["threshold"] = threshold
        meta.attrs["source"] = os.path.basename(input_path)
    return {spec.name: int(masks[spec.name].sum()) for spec in specs}
