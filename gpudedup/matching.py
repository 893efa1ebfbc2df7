"""Near pairs: hash candidates (plain and variant hashes), confirmed on the pixels as they come.

The Hamming search proposes candidates launch by launch; each launch's candidates are scored at
once (``gpudedup.verify``) and only the pairs whose similarity reaches ``min_similarity`` are
kept, so candidates never pile up in memory. With variant hashes (flips, rotations, shifted
copies of the second side) every variant column is searched against the first side's plain
hashes, the matched transform is applied to the pixels before scoring, and each pair keeps the
variant that scored best.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .grid import common_grid
from .joined import JoinedSkipper
from .search import concat_columns, plan_search, queries_second, range_pairs, sort_columns
from .sources import ImageSource
from .transforms import INVERSE
from .verify import SIMILARITY_SPAN, similarity_of, verify_sources

#: an HDF5 split up to this size is read once, whole, for verification when a launch brings
#: more candidates than half its images, instead of gathering scattered images per launch
#: (70,000 28x28 uint8 images are 55 MB); few candidates read only their own images
RESIDENT_BYTES = 128 * 2**20

#: columns of a near pair beside i, j and distance
EXTRA_COLUMNS = ("similarity", "residual", "shift", "transform", "offset", "verified")


@dataclass
class NearOptions:
    """How near pairs are found: the search radius, the pixel check and the variants."""

    threshold: int
    verify: bool = True
    min_similarity: float = 0.75
    max_shift: int = 2
    strategy: str = "auto"
    progress: bool = False

    @property
    def cut(self) -> float:
        """The largest residual kept: similarity >= min_similarity, in residual terms."""
        return SIMILARITY_SPAN * (1.0 - self.min_similarity)


def why_unverifiable(ha, hb) -> str | None:
    """Why the near pairs of HashSets ``ha`` and ``hb`` cannot be checked on pixels, or None.

    RGB images, two sizes or two dtypes are verified on a common grid
    (:func:`gpudedup.grid.common_grid`): luma, the smaller size along each axis, each image
    mapped onto [0, 1] when the dtypes differ."""
    for hs in (ha, hb):
        if hs.images is None:
            return (f"{hs.description or 'a HashSet'}: hashes without images or saved pixels "
                    "(images over 4 KiB are saved without them; an HDF5 source is reopened "
                    "only while unchanged)")
    return None


def empty_extras(count: int) -> dict:
    """:data:`EXTRA_COLUMNS` for ``count`` unverified, untransformed pairs."""
    return {"similarity": np.full(count, np.nan, np.float32),
            "residual": np.full(count, np.nan, np.float64),
            "shift": np.zeros((count, 2), np.int8),
            "transform": np.zeros(count, np.uint8),
            "offset": np.zeros((count, 2), np.int8),
            "verified": np.zeros(count, bool)}


def mark_exact(cols: dict, exact: np.ndarray, verified: bool) -> None:
    """Set the rows ``exact`` of near-pair columns as exact copies, whatever variant matched:
    byte-identical, similarity 1, residual 0, untransformed and unshifted; ``verified``
    whether the bytes were compared."""
    cols["exact"] = exact
    cols["similarity"][exact], cols["residual"][exact] = 1.0, 0.0
    cols["transform"][exact], cols["shift"][exact], cols["offset"][exact] = 0, 0, 0
    cols["verified"][exact] = verified


def resident(hs, candidates: int) -> ImageSource | None:
    """``hs.images``, read whole into memory once (kept on ``hs``) when it is a file of at most
    :data:`RESIDENT_BYTES` and ``candidates`` pairs are to be checked against it, more than
    half its images: the pixel check reads scattered images, which HDF5 does slowly."""
    source = hs.images
    if source is None or not source.is_file or 2 * candidates < source.count:
        return source
    if source.count * int(np.prod(source.image_shape)) * source.dtype.itemsize > RESIDENT_BYTES:
        return source
    cached = getattr(hs, "_resident", None)
    if cached is None or cached[0] is not source:
        data = source.data[()]
        cached = (source, ImageSource(name=source.name, data=data,
                                      description=source.description))
        hs._resident = cached
    return cached[1]


def _scorer(ha, hb, opts: NearOptions, be, verified: bool, rows_a=None, rows_b=None):
    # refine(i, j, d, transform, offset, rank) -> the kept columns of one launch, in image
    # indices (i, j index the searched rows: rows_a, rows_b of the images, or all); rank (when
    # given) is the candidate's place in the tie-break between variants (best_per_pair)
    def refine(i, j, d, transform, offset, rank=None, launch=None):
        # launch: the candidates of the whole launch this part of it comes from (whether an
        # HDF5 split is read whole, once, or gathered image by image)
        if rows_a is not None:
            i, j = rows_a[i], rows_b[j]
        cols = {"i": i, "j": j, "distance": d, **empty_extras(i.size)}
        cols["transform"], cols["offset"] = transform, offset
        if rank is not None:
            cols["rank"] = rank
        if not verified or i.size == 0:
            return cols
        launch = max(i.size, launch or 0)
        src_a, src_b = common_grid(resident(ha, launch), resident(hb, launch))[:2]
        # cut: pairs that provably score above it are rejected early (residual inf)
        residual, shift = verify_sources(src_a, src_b, i, j, be, max_shift=opts.max_shift,
                                         transform=transform if transform.any() else None,
                                         cut=opts.cut)
        keep = residual <= opts.cut
        cols = {key: value[keep] for key, value in cols.items()}
        cols["residual"] = residual[keep]
        cols["similarity"] = similarity_of(cols["residual"])
        cols["shift"] = shift[keep]
        cols["verified"][:] = True
        return cols

    return refine


def near_pairs(ha, hb, opts: NearOptions, be, *, label: str = "search", rows_a=None,
               rows_b=None, lead: int | None = None, part: str = "all",
               span: tuple[int, int] | None = None) -> tuple[dict, str | None, int]:
    """The near pairs of ``ha`` against ``hb`` (None: inside ``ha``, ``i < j``).

    ``rows_a`` and ``rows_b`` (ascending image indices, or None for all) restrict the search
    to those images: one representative per class of identical images.

    A search split into tasks (``gpudedup.distributed``) runs it in parts that give the same
    rows as the whole: ``part="plain"`` searches the plain hashes only, and ``lead`` (inside
    one set) keeps the pairs whose first image is one of the first ``lead`` searched rows,
    searching only for those; ``part="variants"`` searches the variant hashes only, for the
    rows ``span`` of the side that search queries with (whole blocks of
    ``search.BLOCK_ROWS``), and returns every candidate row it keeps with its ``rank``, for
    :func:`best_per_pair` over all the parts.

    Returns the columns (``i``, ``j``, ``distance`` and :data:`EXTRA_COLUMNS`), sorted by
    ``(i, j)``, one row per pair, why they were not verified (None when they were, or when
    ``opts.verify`` is False), and how many candidates were skipped because a big group had
    joined their images already (``joined.py``).
    Unverified pairs are every candidate within the radius.
    """
    self_join = hb is None
    if lead is not None and not self_join:
        raise ValueError("lead is for a search inside one set")
    if part not in ("all", "plain", "variants") or (lead is not None and part != "plain"):
        raise ValueError(f"part: 'all', 'plain' or 'variants' (lead: plain only), got {part!r}")
    other = ha if self_join else hb
    if self_join:
        rows_b = rows_a
    if (rows_a is None) != (rows_b is None):
        rows_a = np.arange(ha.count) if rows_a is None else rows_a
        rows_b = np.arange(other.count) if rows_b is None else rows_b
    reason = why_unverifiable(ha, other) if opts.verify else None
    if reason is not None:
        warnings.warn(f"near pairs not verified on pixels: {reason}; every candidate within "
                      f"phash distance {opts.threshold} is reported, with similarity null",
                      stacklevel=4)
    score = _scorer(ha, other, opts, be, verified=opts.verify and reason is None,
                    rows_a=rows_a, rows_b=rows_b)
    codes_a = ha.phashes if rows_a is None else ha.phashes[rows_a]
    codes_b = other.phashes if rows_b is None else other.phashes[rows_b]
    search = {"be": be, "strategy": opts.strategy, "progress": opts.progress}
    table = other.variant_table
    with_variants = table is not None and table.shape[0] > 1
    parts, unchecked = [], 0
    if part != "variants":
        cols, unchecked = _plain_search(score, codes_a, codes_b, ha.count, other.count,
                                        rows_a, rows_b, self_join, with_variants, lead, opts,
                                        label, search)
        parts.append(cols)
    if with_variants and part != "plain":
        query, index, per_image, plan, second = variant_search(
            ha, other, rows_a, rows_b, opts.threshold, opts.strategy, be)
        first_query = first_index = 0
        if span is not None:  # a task: its rows of the side the whole search queries with
            if second:
                index, first_index = index[span[0]:span[1]], span[0]
            else:
                query, first_query = query[span[0]:span[1]], span[0]
        refine = _variant_refine(score, table, per_image, first_query, first_index, self_join)
        skipper = _variant_skipper(refine, second, query.size, first_query, index.size,
                                   first_index, per_image, ha.count, other.count, rows_a,
                                   rows_b, self_join)
        parts.append(range_pairs(query, index, opts.threshold, plan=plan, refine=skipper,
                                 label=f"{label} (variants)", **search))
        unchecked += skipper.unchecked
    if part == "variants":
        cols = concat_columns(parts)
        count = cols["i"].size
        return ({**empty_extras(count), "rank": np.zeros(count, np.int64), **cols}, reason,
                unchecked)
    if len(parts) == 1:  # one search: one row per pair already, sorted by (i, j)
        return {**empty_extras(parts[0]["i"].size), **parts[0]}, reason, unchecked
    return best_per_pair(concat_columns(parts)), reason, unchecked


def variant_search(ha, other, rows_a, rows_b, threshold: int, strategy: str, be):
    """The search of the variant hashes: ``(query, index, per_image, plan, second)``.

    ``query`` holds the variant hashes of ``other``'s searched rows (row r: variant r % V + 1
    of image r // V, V = ``per_image``), ``index`` the plain hashes of ``ha``'s; inside one
    set (``other`` is ``ha``) a pair has candidates from both images' variants, so this is all
    variants against all hashes. ``plan`` is the search's plan and ``second`` whether it
    queries with ``index``'s rows (its blocks, and a task's rows, are of that side).
    """
    variants = other.variants if rows_b is None else other.variants[rows_b]
    codes = np.ascontiguousarray(variants[:, 1:])  # column 0 is the plain hash
    query = codes.reshape(-1)
    index = ha.phashes if rows_a is None else ha.phashes[rows_a]
    plan = plan_search(query, index, threshold, strategy, be)
    return query, index, codes.shape[1], plan, queries_second(plan, query, index)


def _plain_search(score, codes_a, codes_b, count_a, count_b, rows_a, rows_b, self_join,
                  with_variants, lead, opts, label, search) -> tuple[dict, int]:
    # the plain hashes' search, candidates a big group already joins skipped (joined.py)
    def scored(i, j, d, launch=None):
        zeros = np.zeros(i.size, np.uint8), np.zeros((i.size, 2), np.int8)
        # plain hashes rank before every variant in the tie-break
        rank = np.full(i.size, -1, np.int64) if with_variants else None
        return score(i, j, d, *zeros, rank, launch)

    plan = None
    if self_join:
        skipper = JoinedSkipper(scored, count_a, rows_a, rows_a)
    else:
        # between two sets the blocks are of the side the search queries with
        plan = plan_search(codes_a, codes_b, opts.threshold, opts.strategy, search["be"])
        nodes_b = (np.arange(count_b) if rows_b is None else rows_b) + count_a
        skipper = JoinedSkipper(scored, count_a + count_b, rows_a, nodes_b, offset_b=count_a,
                                by_second=queries_second(plan, codes_a, codes_b))

    def plain(i, j, d):
        if lead is not None:  # the lead rows against all: each pair once, as i < j
            keep = i < j
            i, j, d = i[keep], j[keep], d[keep]
        return skipper(i, j, d)

    if lead is None:
        cols = range_pairs(codes_a, None if self_join else codes_b, opts.threshold,
                           label=label, refine=plain, plan=plan, **search)
    else:
        cols = range_pairs(codes_a[:lead], codes_a, opts.threshold, label=label,
                           refine=plain, **search)
    return cols, skipper.unchecked


def _variant_skipper(refine, second: bool, query_rows: int, first_query: int,
                     index_rows: int, first_index: int, per_image: int, count_a: int,
                     count_b: int, rows_a, rows_b, self_join: bool) -> JoinedSkipper:
    # the variant search's candidates skipped inside big groups (joined.py): its rows are the
    # second side's variants (nodes: their images, after the first side's between two sets)
    # and the first side's hashes; blocks of the side the search queries with (second: the
    # hashes), so a task's rows of that side are the whole search's blocks
    images_b = np.arange(count_b) if rows_b is None else rows_b
    images_a = np.arange(count_a) if rows_a is None else rows_a
    offset = 0 if self_join else count_a
    nodes_query = images_b[(np.arange(query_rows) + first_query) // per_image] + offset
    nodes_index = images_a[first_index:first_index + index_rows]
    return JoinedSkipper(refine, count_a if self_join else count_a + count_b, nodes_query,
                         nodes_index, offset_b=offset, by_second=second, per_block=True)


def _variant_refine(score, table, rows_per_image: int, first_query: int, first_index: int,
                    self_join: bool):
    # refine(r, i, d) of a variant search: query row r + first_query is variant (r % V) + 1
    # of image r // V of the second side, i is row i + first_index of the first side's hashes
    def refine(r, i, d, launch=None):
        r, i = r + first_query, i + first_index
        j, v = r // rows_per_image, r % rows_per_image + 1
        rank = r.astype(np.int64)  # which image's which variant: the tie-break
        transform = table[v, 0].astype(np.uint8)
        offset = table[v, 1:].astype(np.int8)
        if self_join:
            # a[i] ~ T(a[j]) with i > j is a[j] ~ T^-1(a[i]); a shift reverses
            swap = i > j
            keep = i != j
            i, j = np.where(swap, j, i), np.where(swap, i, j)
            transform = np.where(swap, INVERSE[transform], transform)
            offset = np.where(swap[:, None], -offset, offset)
            i, j, d, transform, offset, rank = (i[keep], j[keep], d[keep], transform[keep],
                                                offset[keep], rank[keep])
        # score each (i, j, transform) met here once, as the shift variant nearest in hash
        # (the score tries shifts itself); "here" is one block of the search's query rows
        # (joined.py, per_block), the same in one process and in a task
        first = _lowest_distance(i, j, transform, d, offset, rank)
        return score(i[first], j[first], d[first], transform[first], offset[first],
                     rank[first], launch)

    return refine


def _lowest_distance(i, j, transform, d, offset, rank) -> np.ndarray:
    # per (i, j, transform), the index of the variant with the lowest distance (ties: the
    # smallest shift, then the lowest rank)
    if i.size == 0:
        return np.empty(0, np.int64)
    order = np.lexsort((rank, _shift_size(offset), d, transform, j, i))
    keys = np.stack([i[order], j[order], transform[order].astype(np.int64)])
    new = np.concatenate([[True], (keys[:, 1:] != keys[:, :-1]).any(axis=0)])
    return np.sort(order[new])


def best_per_pair(cols: dict) -> dict:
    """One row per ``(i, j)`` of candidate rows (``rank`` dropped), sorted by ``(i, j)``.

    The row kept is the most similar variant, then the plainest transform, then the nearest
    hash (unverified rows: the nearest hash), then the smallest shift, then the lowest
    ``rank`` (the plain hash, -1, then by image and variant): a total order, so the answer
    does not depend on the order the launches or the tasks of a split search meet them in.
    """
    cols = {**empty_extras(cols["i"].size), **cols}  # no launch at all: no extra columns yet
    rank = cols.pop("rank", np.zeros(cols["i"].size, np.int64))
    if cols["i"].size == 0:
        return cols
    similarity = np.nan_to_num(cols["similarity"].astype(np.float64), nan=-1.0)
    order = np.lexsort((rank, _shift_size(cols["offset"]), cols["distance"],
                        cols["transform"], -similarity, cols["j"], cols["i"]))
    i, j = cols["i"][order], cols["j"][order]
    new = np.concatenate([[True], (i[1:] != i[:-1]) | (j[1:] != j[:-1])])
    return sort_columns({key: value[order][new] for key, value in cols.items()})


def _shift_size(offset: np.ndarray) -> np.ndarray:
    # |dy| + |dx| of each candidate's hash variant
    return np.abs(offset.astype(np.int64)).sum(axis=1)
