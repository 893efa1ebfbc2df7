"""Pillow-exact LANCZOS resize tables and the integer DCT basis, shared by every backend.

Everything here is host-side numpy, computed once per image shape. The kernels receive the
tables as float64 arrays holding exact integers, so any summation order (BLAS, SIMD, GPU) gives
the same result: every product and partial sum stays an integer below 2**53.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

#: side of the thumbnail the DCT runs on (imagehash: hash_size 8 * highfreq_factor 4)
THUMB = 32
#: side of the low-frequency DCT block whose 64 coefficients become the hash bits
BLOCK = 8
#: fractional bits of Pillow's fixed-point resampling coefficients (PRECISION_BITS)
RESAMPLE_BITS = 22
#: Pillow's rounding offset and the shift back, as exact float64 constants for the kernels
RESAMPLE_HALF = float(1 << (RESAMPLE_BITS - 1))
RESAMPLE_INV = 1.0 / (1 << RESAMPLE_BITS)
#: fractional bits of the vertical (first) and horizontal (second) DCT bases
DCT_BITS_1 = 22
DCT_BITS_2 = 21
#: linear (non-uint8) images are scaled by a power of two so their largest magnitude is
#: below 2**LINEAR_BITS before resizing
LINEAR_BITS = 23
#: bits dropped after the first DCT pass of a linear image, so the second pass fits in int64
LINEAR_DCT_SHIFT = 16
#: Pillow's convert("L") weights for R, G, B (16 fractional bits, rounded)
LUMA_WEIGHTS = (19595, 38470, 7471)


def _lanczos(x: float) -> float:
    # Pillow's lanczos_filter: sinc(x) * sinc(x / 3) on [-3, 3), in C double arithmetic.
    if -3.0 <= x < 3.0:
        return _sinc(x) * _sinc(x / 3)
    return 0.0


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


def _coefficients(in_size: int, out_size: int):
    # precompute_coeffs in Resample.c, operation for operation: per output sample, its first
    # input sample and the Lanczos-3 taps normalised to sum to one (double precision)
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = 3.0 * filterscale
    inv = 1.0 / filterscale
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        taps = [_lanczos((x + xmin - center + 0.5) * inv) for x in range(xmax)]
        total = 0.0
        for w in taps:
            total += w
        yield xx, xmin, [w / total if total != 0.0 else w for w in taps]


@lru_cache(maxsize=256)
def lanczos_taps(in_size: int, out_size: int = THUMB,
                 exact_sum: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's fixed-point LANCZOS taps for resizing one axis from ``in_size`` to ``out_size``.

    Returns ``(starts, weights)``: output sample ``o`` is
    ``sum(weights[o, k] * src[starts[o] + k])`` followed by Pillow's rounding shift. Weights are
    integers scaled by ``2**RESAMPLE_BITS`` (stored as float64), zero past each row's support.
    An axis that keeps its size gets the identity (Pillow skips that pass).

    Pillow's rounded weights need not sum to exactly ``2**RESAMPLE_BITS``; its uint8 rounding
    hides that, the linear path would not. ``exact_sum`` moves each row's residue onto its
    largest weight, so a constant image resizes to exactly itself.
    """
    if in_size == out_size:
        starts, weights = np.arange(out_size, dtype=np.int64), np.full((out_size, 1),
                                                                        2.0**RESAMPLE_BITS)
        starts.setflags(write=False)
        weights.setflags(write=False)
        return starts, weights
    ksize = int(math.ceil(3.0 * max(float(in_size) / out_size, 1.0))) * 2 + 1
    starts = np.zeros(out_size, dtype=np.int64)
    weights = np.zeros((out_size, ksize), dtype=np.float64)
    for xx, xmin, coefficients in _coefficients(in_size, out_size):
        for x, k in enumerate(coefficients):
            # normalize_coeffs_8bpc: round half away from zero, truncate toward zero
            scaled = k * (1 << RESAMPLE_BITS)
            weights[xx, x] = int(scaled - 0.5) if k < 0 else int(scaled + 0.5)
        starts[xx] = xmin
    if exact_sum:
        for row in weights:
            row[np.argmax(np.abs(row))] += 2.0**RESAMPLE_BITS - row.sum()
    starts.setflags(write=False)
    weights.setflags(write=False)
    return starts, weights


def pillow_major_version() -> int:
    """Major version of the installed Pillow, or a large number when it is absent."""
    try:
        import PIL
    except ImportError:  # pragma: no cover - Pillow is a dependency
        return 10**6
    return int(PIL.__version__.split(".")[0])


def vertical_first(height: int, width: int, pillow_major: int | None = None) -> bool:
    """Whether Pillow resizes an ``height x width`` image to 32x32 vertically first.

    Pillow 13 (PR 9549) runs the vertical pass first when the height shrinks and shrinks by more
    than twice as many pixels as the width; earlier versions always go horizontal first. The
    order matters because each pass rounds and clips to uint8.
    """
    if pillow_major is None:
        pillow_major = pillow_major_version()
    if pillow_major < 13:
        return False
    shrink_h = height - THUMB
    shrink_w = width - THUMB
    return shrink_h > 0 and shrink_h > 2 * shrink_w


@lru_cache(maxsize=4)
def dct_basis(bits: int) -> np.ndarray:
    """Rows 0..7 of the unnormalised DCT-II basis over 32 samples, scaled by ``2**bits``.

    ``basis[u, y] = rint(cos(pi * u * (2y + 1) / 64) * 2**bits)``; imagehash's factor 2 per axis
    is dropped (a common scale does not change which coefficients exceed the median). Rounding is
    symmetric, so the cancellations of the exact basis survive: a constant image has exactly zero
    AC coefficients.
    """
    u = np.arange(BLOCK, dtype=np.float64)[:, None]
    y = np.arange(THUMB // 2, dtype=np.float64)[None, :]
    half = np.rint(np.cos(np.pi * u * (2 * y + 1) / (2 * THUMB)) * 2.0**bits)
    # mirror the second half so basis[u, 31 - y] == (-1)**u * basis[u, y] holds exactly (the
    # kernels' even/odd butterfly relies on it)
    sign = np.where(np.arange(BLOCK) % 2 == 0, 1.0, -1.0)[:, None]
    basis = np.concatenate([half, sign * half[:, ::-1]], axis=1)
    basis.setflags(write=False)
    return basis


# ------------------------------------------------------------------ the verification grid
# Host-side pixel arithmetic that puts two image sets on one grid for pixel verification
# (gpudedup.grid): Pillow's luma, LANCZOS resizing in double precision and a per-image map
# onto [0, 1].


def luma(rgb) -> np.ndarray:
    """Pillow's ``convert("L")`` of ``(..., 3)`` uint8 into ``(...)`` uint8, on the host.

    The twin of the ``luma_images`` kernels, operation for operation:
    ``(R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16`` in int32 (exact integers, so the
    result is bit-identical to the kernels' and to Pillow's).
    """
    rgb = np.asarray(rgb)
    acc = (rgb[..., 0].astype(np.int32) * LUMA_WEIGHTS[0]
           + rgb[..., 1].astype(np.int32) * LUMA_WEIGHTS[1]
           + rgb[..., 2].astype(np.int32) * LUMA_WEIGHTS[2] + 0x8000)
    return (acc >> 16).astype(np.uint8)


@lru_cache(maxsize=64)
def lanczos_matrix(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's LANCZOS resampling of one axis from ``in_size`` to ``out_size`` as a dense
    ``(out_size, in_size)`` float64 matrix: ``resized = matrix @ samples``.

    The coefficients are those of Pillow's ``precompute_coeffs`` in double precision, as Pillow
    applies them to ``"I"`` and ``"F"`` images (no fixed-point rounding, unlike
    :func:`lanczos_taps`): each row is the Lanczos-3 kernel stretched by the scale when
    downscaling (so it averages over the area an output pixel covers instead of aliasing),
    normalised to sum to one. An axis that keeps its size gets the identity (Pillow skips that
    pass). Read-only and cached.
    """
    if in_size == out_size:
        matrix = np.eye(out_size)
        matrix.setflags(write=False)
        return matrix
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    # the coefficients of lanczos_taps, stopping before the fixed-point rounding
    for xx, xmin, coefficients in _coefficients(in_size, out_size):
        matrix[xx, xmin:xmin + len(coefficients)] = coefficients
    matrix.setflags(write=False)
    return matrix


def resize_images(images, shape: tuple[int, int]) -> np.ndarray:
    """``(N, H, W)`` images resized to ``shape = (h, w)`` with :func:`lanczos_matrix` along each
    axis, as float64 (unrounded, unclipped: a LANCZOS overshoot stays). An axis of unchanged
    size is copied as is, so ``shape == (H, W)`` only converts to float64.

    Equals Pillow's ``Image.resize((w, h), LANCZOS)`` of a ``"F"`` image up to Pillow's float32
    storage between its two passes.
    """
    out = np.asarray(images).astype(np.float64)
    height, width = out.shape[1:]
    if width != shape[1]:
        out = out @ lanczos_matrix(width, shape[1]).T
    if height != shape[0]:
        out = lanczos_matrix(height, shape[0]) @ out
    return np.ascontiguousarray(out)


def unit_range(images) -> np.ndarray:
    """``(N, H, W)`` images as float64, each mapped linearly onto [0, 1] by its own minimum and
    maximum; a constant image becomes all 0. NaN and inf pixels leave NaN in their image (never
    a finite image), so a check for finite pixels still sees them.
    """
    out = np.asarray(images).astype(np.float64)
    if out.size == 0:
        return out
    lo = out.min(axis=(1, 2), keepdims=True)
    span = out.max(axis=(1, 2), keepdims=True) - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        out -= lo
        np.divide(out, span, out=out, where=span != 0)
    return out
