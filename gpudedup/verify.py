"""Pixel verification of candidate near pairs: a scale-free photometric residual per pair.

The score (kernels ``pair_residuals``; the precision argument is in ``kernels/_common.py``):
for each shift (dy, dx) with |dy|, |dx| <= ``max_shift`` (at most side // 8 along each axis, so
an overlap keeps >= 7/8 of each side: a 28x28 pair tries +-2 px and overlaps at least 26x26;
an image under 8 px along an axis is not shifted along it), image b's pixels b[y + dy, x + dx]
are matched to a[y, x] on the overlap and both least-squares fits b ~ alpha a + beta and
a ~ alpha' b + beta' are taken; the shift's mean squared residual is the larger of the two (a
constant side is fit by beta alone). The best shift wins, (0, 0) on ties. The residual is its
square root in grey levels of the pair's own value range mapped to 0-255:

    residual = sqrt(mse) * 255 / (max - min over the pixels of both images)

so the same pictures stored as uint8, uint16 or float32 in [-0.5, 0.5] give the same residual
(up to the quantisation below, far under 0.01), a brightness or contrast change of either image
costs nothing, and a pair whose pixels all hold one value scores 0. Before the sums, each pair
is quantised to integer levels (16 bits, fewer above 32k pixels: 10 bits at 1024x1024), which
makes every sum exact, hence the CPU and CUDA kernels bit-identical.

Why the larger of the two fits: fitting b on a alone lets a blank b "explain" anything through a
zero slope in the other direction, and is asymmetric. On 40 photo crops (scikit-image) with
planted copies (brightness +20, contrast x0.8, noise sigma 6, JPEG q75, 1 px shift) and
neighbouring crops as look-alikes, the larger fit separated best of b-on-a, the geometric mean
and total least squares (28x28: 3 of 320 wrong at the best threshold, against 6 to 11).

Flips and turns: with ``transform`` (codes of :mod:`gpudedup.transforms`), pair ``p`` compares
``a[i[p]]`` with ``T_t(b[j[p]])``, the transformed image built when the batch is gathered (each
distinct image and code once, by slicing).

The cut: a caller that keeps only ``residual <= cut`` passes ``cut``, and every pair above it
comes back as ``inf`` (shift ``(0, 0)``); a pair within it gets exactly the residual and shift it
gets without ``cut``. Most pairs above it are rejected without their full sums: for each shift,
the residual of the 2^k x 2^k block sums (8, 4 then 2 px at 28x28) bounds the full one from
below (Cauchy-Schwarz over each block, for any alpha and beta, so for both fits: see
``kernels/_common.py``), and a shift is scored in full only when no bound exceeds the cut. On
the 2.8 million Fashion-MNIST candidates within phash distance 8, cut 8 rejects 99.97% of the
pairs on the bounds alone and scores 1 shift in 65,000 in full: 1.7 million pairs/s on 2
CPU cores, against 0.23 million without the bounds.

Low-content pairs (measured, no rule adopted): the pairs of different images that score <= 8 are
the same letter in near-identical fonts (glyphs), the same product photo (Fashion-MNIST) and
two-tone tiles of one edge (64 px photo tiles). They are more correlated than most planted
copies (sqrt(1 - rho^2) <= 0.10 for glyphs, while JPEG q50 and gamma copies reach 0.15-0.3),
so a residual relative to the images' own spread removes almost none of them until it loses
hundreds of copies; a mid-tone content floor removes most two-tone tiles but also loses copies
of them and does nothing for glyphs.

``similarity = max(0, 1 - residual / SIMILARITY_SPAN)``: 1.0 for residual 0 (exact copies,
pure brightness or contrast changes), 0.75 at residual 8 (the copies' bound measured on real
Fashion-MNIST), 0 from 32 grey levels on. Linear so that a threshold on one reads directly as a
threshold on the other.
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from . import backend as backends
from . import transforms
from .checks import check_batch_size, is_int
from .errors import InputError
from .sources import DEFAULT_BATCH_BYTES, as_source

#: residual (grey levels) at which the similarity reaches 0
SIMILARITY_SPAN = 32.0
#: largest max_shift accepted (the kernels cap each axis at side // 8 anyway)
MAX_SHIFT = 8
#: pairs per batch when the kernel reads both sources in place (no images gathered)
IN_PLACE_BATCH = 1 << 18


def similarity_of(residual) -> np.ndarray:
    """The documented map from residual (grey levels, 0-255 scale) to similarity in [0, 1]:
    ``max(0, 1 - residual / 32)``, as float32."""
    residual = np.asarray(residual, dtype=np.float64)
    return np.maximum(0.0, 1.0 - residual / SIMILARITY_SPAN).astype(np.float32)


def _indices(values, name: str, count: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or not (arr.dtype.kind in "iu" or arr.size == 0):
        raise InputError(f"{name}: expected a 1-d array of integer image indices, got "
                         f"{arr.dtype} of shape {arr.shape}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= count):
        raise InputError(f"{name}: image indices must lie in 0..{count - 1}, got "
                         f"{int(arr.min())}..{int(arr.max())}")
    return arr


def _kernel_dtype(dtype: np.dtype) -> np.dtype:
    # the dtypes pair_residuals is compiled for (kernels/signatures.py VERIFY_DTYPES)
    if dtype == np.bool_:
        return np.dtype(np.uint8)
    if dtype == np.float16:
        return np.dtype(np.float32)
    return dtype.newbyteorder("=")


def _gather(source, indices: np.ndarray, dtype: np.dtype):
    # the distinct images a batch needs, once each, and where each pair finds them
    unique, inverse = np.unique(indices, return_inverse=True)
    images = np.ascontiguousarray(source.take(unique), dtype=dtype)
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        bad = int(unique[np.flatnonzero(~np.isfinite(images).all(axis=(1, 2)))[0]])
        raise InputError(f"{source.name}: image {bad} holds NaN or inf; verification needs "
                         "finite pixels")
    return images, inverse.astype(np.int64)


def _gather_transformed(source, indices: np.ndarray, codes, dtype: np.dtype):
    # as _gather, each distinct (image, transform) once: transforms.apply to the distinct
    # images (slicing only), made contiguous
    if codes is None or not codes.any():
        return _gather(source, indices, dtype)
    keys, inverse = np.unique(indices * 8 + codes, return_inverse=True)
    images, where = _gather(source, keys // 8, dtype)
    key_codes = keys % 8
    out = np.empty((keys.size,) + images.shape[1:], dtype=images.dtype)
    for code in np.unique(key_codes).tolist():
        sel = np.flatnonzero(key_codes == code)
        out[sel] = transforms.apply(images[where[sel]], code)
    return out, inverse.astype(np.int64)


def _whole(source, dtype: np.dtype, be, npairs: int):
    # the source's own array when the kernel can read it in place: a C-contiguous host array
    # of the kernel's dtype on the CPU backend, checked finite once when the pairs are many
    # enough for that to cost less than gathering (a NaN image no pair names stays harmless:
    # the gathering path then names the first bad image a pair does use)
    data = source.data
    if (be.name != "cpu" or not isinstance(data, np.ndarray) or data.dtype != dtype
            or not data.flags.c_contiguous):
        return None
    if dtype.kind == "f" and (2 * npairs < source.count or not np.isfinite(data).all()):
        return None
    return data


def _in_place(src_a, src_b, dtype: np.dtype, be, npairs: int):
    # _whole for both sides, the finite check once when they are one source
    whole_a = _whole(src_a, dtype, be, npairs)
    if src_b is src_a or (whole_a is not None and src_b.data is src_a.data):
        return whole_a, whole_a
    return whole_a, _whole(src_b, dtype, be, npairs)


def _cut_value(cut) -> float:
    # the kernels' cut: the largest residual kept, -1.0 for none
    if cut is None:
        return -1.0
    if isinstance(cut, bool) or not isinstance(cut, (int, float, np.integer, np.floating)):
        raise InputError(f"cut: expected a residual in grey levels (a number >= 0) or None, "
                         f"got {cut!r}")
    value = float(cut)
    if not value >= 0.0:
        raise InputError(f"cut: expected a residual in grey levels (a number >= 0) or None, "
                         f"got {cut!r}")
    return -1.0 if value == np.inf else value


def _transform_codes(transform, npairs: int, image_shape) -> np.ndarray | None:
    # validated (P,) uint8 transform codes, or None for all-identity
    if transform is None:
        return None
    codes = np.asarray(transform)
    if codes.shape != (npairs,) or not (codes.dtype.kind in "iu" or codes.size == 0):
        raise InputError(f"transform: expected a 1-d array of {npairs} integer transform codes "
                         f"(0-7, gpudedup.transforms), got {codes.dtype} of shape {codes.shape}")
    if codes.size and (codes.min() < 0 or codes.max() >= len(transforms.TRANSFORMS)):
        raise InputError(f"transform: codes must lie in 0..{len(transforms.TRANSFORMS) - 1}, "
                         f"got {int(codes.min())}..{int(codes.max())}")
    codes = codes.astype(np.uint8)
    height, width = image_shape
    if height != width and np.isin(codes, transforms.TRANSPOSING).any():
        raise InputError(f"transform: codes {transforms.TRANSPOSING} swap the image axes, which "
                         f"needs square images, got {height}x{width}")
    return codes if codes.any() else None


def score_pairs(images_a, images_b, i, j, *, max_shift: int = 2, backend: str = "auto",
                batch_size: int | None = None, progress: bool = False, transform=None,
                cut: float | None = None):
    """Verify candidate pairs on their pixels: the scale-free photometric residual of each.

    Parameters
    ----------
    images_a : array-like
        ``(N, H, W)`` images of any integer or float dtype: a numpy or CuPy array, an h5py
        dataset or a ``"file.h5:/dataset"`` string.
    images_b : array-like or None
        The second side, of the same ``H, W`` and dtype (None: ``images_a`` itself).
    i, j : array-like of int
        Pair ``p`` is ``(images_a[i[p]], images_b[j[p]])``.
    max_shift : int
        Largest shift tried along each axis (default 2; capped at side // 8).
    backend : {"auto", "cpu", "cuda"}
        Where the kernels run.
    batch_size : int, optional
        Pairs per batch (default: about 16 MiB of gathered images); memory stays bounded by
        one batch's images whatever the number of pairs.
    progress : bool
        Show a progress bar.
    transform : array-like of int, optional
        ``(P,)`` transform codes 0-7 (:mod:`gpudedup.transforms`): pair ``p`` compares
        ``images_a[i[p]]`` with ``transforms.apply(images_b[j[p]], transform[p])``. Codes 4-7
        swap the axes and need square images. Default: all 0 (as stored).
    cut : float, optional
        The largest residual the caller keeps (grey levels, the residual's scale): a pair whose
        residual exceeds it gets residual ``inf``, similarity 0 and shift ``(0, 0)``, most of
        them rejected early on a lower bound (module docstring); a pair within it gets exactly
        the residual and shift it gets without ``cut``. Default None: every pair is scored.

    Returns
    -------
    residual : (P,) float64
        The best shift's RMS residual, in grey levels of the pair's range mapped to 0-255
        (see the module docstring): copies score <= 8, look-alikes mostly above 10-14; ``inf``
        above ``cut``.
    similarity : (P,) float32
        ``max(0, 1 - residual / 32)`` (:func:`similarity_of`); 1.0 for exact copies.
    shift : (P, 2) int8
        The best shift ``(dy, dx)``: ``b[y + dy, x + dx]`` matches ``a[y, x]``.

    Raises
    ------
    InputError
        Indices out of range or not 1-d integers, ``i`` and ``j`` of different lengths, images
        of different sizes or dtypes, RGB input, NaN or inf pixels, a bad ``max_shift``,
        ``batch_size``, ``transform`` (codes outside 0-7, 4-7 on non-square images, a length
        other than ``i``'s) or ``cut`` (negative, NaN, not a number).

    Examples
    --------
    >>> import numpy as np
    >>> import gpudedup.verify as gv
    >>> rng = np.random.default_rng(0)
    >>> a = rng.integers(0, 256, (3, 28, 28)).astype(np.uint8)
    >>> b = np.stack([a[0], np.roll(a[1], 1, axis=1), rng.integers(0, 256, (28, 28))])
    >>> residual, similarity, shift = gv.score_pairs(a, b.astype(np.uint8), [0, 1, 2],
    ...                                              [0, 1, 2], backend="cpu")
    >>> residual[:2].tolist(), similarity[:2].tolist()
    ([0.0, 0.0], [1.0, 1.0])
    >>> shift[1].tolist()
    [0, 1]
    >>> bool(residual[2] > 32), float(similarity[2])
    (True, 0.0)

    Turned copies, compared after undoing the turn (code 6, rot270, undoes np.rot90), and a cut:

    >>> turned = np.rot90(a, 1, axes=(1, 2))
    >>> residual, _, _ = gv.score_pairs(a, turned, [0, 1, 2], [0, 1, 0], backend="cpu",
    ...                                 transform=[6, 6, 6], cut=8)
    >>> residual.tolist()
    [0.0, 0.0, inf]
    """
    src_a = as_source(images_a, "images_a")
    src_b = src_a if images_b is None else as_source(images_b, "images_b")
    for src in (src_a, src_b):
        if len(src.image_shape) != 2:
            raise InputError(f"{src.name}: verification takes grayscale (N, H, W) images, got "
                             f"shape {(src.count,) + src.image_shape}; convert RGB to luma first")
    if src_a.image_shape != src_b.image_shape:
        raise InputError(
            f"images_b: images of {src_b.image_shape[0]}x{src_b.image_shape[1]} cannot be "
            f"verified against images_a's {src_a.image_shape[0]}x{src_a.image_shape[1]} yet: "
            "pairs of different sizes need a common grid, which score_pairs does not build")
    if not is_int(max_shift) or not 0 <= max_shift <= MAX_SHIFT:
        raise InputError(f"max_shift: expected an integer from 0 to {MAX_SHIFT}, got "
                         f"{max_shift!r}")
    check_batch_size(batch_size)
    i = _indices(i, "i", src_a.count)
    j = _indices(j, "j", src_b.count)
    if i.shape != j.shape:
        raise InputError(f"i, j: expected the same number of indices, got {i.size} and {j.size}")
    be = backends.resolve(backend, src_a.data, src_b.data)
    residual, shift = verify_sources(src_a, src_b, i, j, be, max_shift=int(max_shift),
                                     batch_size=batch_size, progress=progress,
                                     transform=transform, cut=cut)
    return residual, similarity_of(residual), shift


def verify_sources(src_a, src_b, i: np.ndarray, j: np.ndarray, be, *, max_shift: int = 2,
                   batch_size: int | None = None, progress: bool = False, transform=None,
                   cut: float | None = None):
    """The driver behind :func:`score_pairs`, for callers that hold validated sources, checked
    int64 indices and a resolved backend (the search, tile by tile): ``(residual, shift)``.
    ``transform`` and ``cut`` are validated here, as :func:`score_pairs` documents them.

    Images are gathered per batch of pairs, each distinct image (and transform of it) once, so
    memory holds one batch's images whatever the number of pairs; on the CPU a C-contiguous
    numpy source of the kernel's dtype is read in place instead.
    """
    dtype_a, dtype_b = _kernel_dtype(src_a.dtype), _kernel_dtype(src_b.dtype)
    if dtype_a != dtype_b:
        # the residual is relative to the pair's joint range: a uint8 image against a float one
        # in [0, 1] would put one of them on a handful of levels
        raise InputError(f"images_b: dtype {src_b.dtype} differs from images_a's "
                         f"{src_a.dtype}; verification compares images of one dtype (convert "
                         "one side to the other's scale first)")
    height, width = src_a.image_shape
    npairs = i.size
    codes = _transform_codes(transform, npairs, (height, width))
    kernel_cut = _cut_value(cut)
    whole_a, whole_b = _in_place(src_a, src_b, dtype_a, be, npairs)
    if batch_size is None:
        per_pair = 2 * height * width * dtype_a.itemsize
        batch_size = max(1, DEFAULT_BATCH_BYTES // per_pair)
        if whole_a is not None and whole_b is not None and codes is None:
            # nothing gathered: a batch only holds its outputs, and fewer parallel launches
            # wait less on a busy core
            batch_size = max(batch_size, IN_PLACE_BATCH)
    residual = np.zeros(npairs, dtype=np.float64)
    shift = np.zeros((npairs, 2), dtype=np.int8)
    bar = tqdm(total=npairs, desc="verifying", unit="pair", disable=not progress, leave=False)
    try:
        for start in range(0, npairs, batch_size):
            stop = min(start + batch_size, npairs)
            batch_codes = None if codes is None else codes[start:stop]
            if whole_a is not None:
                imgs_a, ia = whole_a, np.ascontiguousarray(i[start:stop], dtype=np.int64)
            else:
                imgs_a, ia = _gather(src_a, i[start:stop], dtype_a)
            if whole_b is not None and (batch_codes is None or not batch_codes.any()):
                imgs_b, jb = whole_b, np.ascontiguousarray(j[start:stop], dtype=np.int64)
            else:
                imgs_b, jb = _gather_transformed(src_b, j[start:stop], batch_codes, dtype_b)
            out = _score_batch(be, imgs_a, imgs_b, ia, jb, max_shift, kernel_cut)
            residual[start:stop] = out["residual"]
            shift[start:stop] = out["shift"]
            bar.update(stop - start)
    finally:
        bar.close()
    return residual, shift


def _score_batch(be, imgs_a, imgs_b, ia, jb, max_shift: int, cut: float) -> dict:
    # one batch on the backend: upload, launch, download
    xp = be.xp
    count = ia.size
    out_residual = xp.empty(count, dtype=xp.float64)
    out_shift = xp.empty((count, 2), dtype=xp.int8)
    be.launch("pair_residuals", count, be.to_device(imgs_a), be.to_device(imgs_b),
              be.to_device(ia), be.to_device(jb), np.int64(max_shift), np.float64(cut),
              out_residual, out_shift)
    return {"residual": be.to_host(out_residual), "shift": be.to_host(out_shift)}
