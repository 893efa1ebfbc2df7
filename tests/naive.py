"""Slow, obviously correct references for the tests.

Nothing here is derived from gpudedup's own code: the perceptual hash goes through Pillow and
scipy exactly as imagehash does, the linear (float) resize recomputes Pillow's LANCZOS
coefficients in plain Python, exact pairs come from hashlib and a dict, and Hamming pairs from a
full distance matrix.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from functools import cache

import numpy as np
import scipy.fftpack
from PIL import Image

THUMB = 32
BLOCK = 8


# ------------------------------------------------------------------------------- phash


def bits_to_int(bits) -> int:
    """A flat sequence of booleans as an integer, first element the most significant bit."""
    value = 0
    for bit in np.asarray(bits).ravel().tolist():
        value = (value << 1) | int(bool(bit))
    return value


def dct_hash(thumb) -> int:
    """imagehash's last steps on a 32x32 thumbnail: 2-D DCT-II, top-left 8x8, > median."""
    pixels = np.asarray(thumb, dtype=np.float64)
    coeffs = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)
    low = coeffs[:BLOCK, :BLOCK]
    return bits_to_int(low > np.median(low))


def to_pil(img) -> Image.Image:
    """A uint8 (H, W) or (H, W, 3) array as a Pillow image ("L" or "RGB")."""
    img = np.ascontiguousarray(img)
    assert img.dtype == np.uint8
    return Image.fromarray(img)


def naive_phash(img) -> int:
    """imagehash.phash of one uint8 image, as an int: Pillow convert("L"), resize to 32x32 with
    LANCZOS, scipy DCT on both axes, bits of the 8x8 block above its median, MSB first."""
    pil = to_pil(img).convert("L")
    thumb = np.asarray(pil.resize((THUMB, THUMB), Image.Resampling.LANCZOS))
    return dct_hash(thumb)


def imagehash_int(img) -> int:
    """``int(str(imagehash.phash(Image.fromarray(img))), 16)`` (imagehash itself)."""
    import imagehash

    return int(str(imagehash.phash(to_pil(img))), 16)


# ------------------------------------------------------------------ Pillow LANCZOS by hand


def lanczos(x: float) -> float:
    """Pillow's LANCZOS kernel: sinc(x) sinc(x / 3) on [-3, 3)."""

    def sinc(t: float) -> float:
        if t == 0.0:
            return 1.0
        return math.sin(math.pi * t) / (math.pi * t)

    return sinc(x) * sinc(x / 3.0) if -3.0 <= x < 3.0 else 0.0


def pillow_coefficients(in_size: int, out_size: int = THUMB) -> list[tuple[int, list[float]]]:
    """Pillow's double-precision resampling coefficients for one axis.

    For each output sample: ``(first input index, normalised weights)``.
    """
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = 3.0 * filter_scale
    rows = []
    for o in range(out_size):
        center = (o + 0.5) * scale
        first = max(int(center - support + 0.5), 0)
        stop = min(int(center + support + 0.5), in_size)
        weights = [lanczos((x - center + 0.5) / filter_scale) for x in range(first, stop)]
        total = sum(weights)
        if total != 0.0:
            weights = [w / total for w in weights]
        rows.append((first, weights))
    return rows


@cache
def resize_matrix(in_size: int, out_size: int = THUMB) -> np.ndarray:
    """The (out_size, in_size) float64 matrix of one resize pass (identity when sizes agree,
    since Pillow skips that pass)."""
    if in_size == out_size:
        matrix = np.eye(out_size)
    else:
        matrix = np.zeros((out_size, in_size))
        for o, (first, weights) in enumerate(pillow_coefficients(in_size, out_size)):
            matrix[o, first:first + len(weights)] = weights
    matrix.setflags(write=False)
    return matrix


def pillow13_vertical_first(height: int, width: int) -> bool:
    """Pillow 13's pass order for a resize to 32x32: vertical first iff the height shrinks
    by more than twice as many pixels as the width."""
    return (height - THUMB) > 0 and (height - THUMB) > 2 * (width - THUMB)


def fixed_point_coefficients(in_size: int, out_size: int = THUMB) -> list[tuple[int, list[int]]]:
    """Pillow's 8-bit coefficients: the double ones times 2**22, rounded half away from 0."""
    out = []
    for first, weights in pillow_coefficients(in_size, out_size):
        ints = [int(w * (1 << 22) - 0.5) if w < 0 else int(w * (1 << 22) + 0.5) for w in weights]
        out.append((first, ints))
    return out


def _pass_uint8(img: np.ndarray, in_size: int) -> np.ndarray:
    # one Pillow 8-bit pass along axis 0: (sum + 2**21) >> 22, clipped to 0..255
    if in_size == THUMB:
        return img.copy()
    out = np.empty((THUMB, img.shape[1]), dtype=np.int64)
    src = img.astype(np.int64)
    for o, (first, weights) in enumerate(fixed_point_coefficients(in_size)):
        acc = np.full(img.shape[1], 1 << 21, dtype=np.int64)
        for k, w in enumerate(weights):
            acc += w * src[first + k]
        out[o] = np.clip(acc >> 22, 0, 255)
    return out


def resize_uint8(img, vertical_first: bool) -> np.ndarray:
    """Pillow's 8-bit LANCZOS resize of a (H, W) uint8 image to 32x32, in the given pass order
    (each pass rounds and clips to uint8, so the order matters)."""
    img = np.asarray(img, dtype=np.int64)
    height, width = img.shape
    if vertical_first:
        out = _pass_uint8(_pass_uint8(img, height).T, width).T
    else:
        out = _pass_uint8(_pass_uint8(img.T, width).T, height)
    return out.astype(np.uint8)


def naive_resize_linear(img) -> np.ndarray:
    """float64 separable LANCZOS resize to 32x32 with Pillow's double coefficients (no
    rounding or clipping; the pass order follows Pillow 13 though it cannot matter here)."""
    img = np.asarray(img, dtype=np.float64)
    height, width = img.shape
    vertical = resize_matrix(height)
    horizontal = resize_matrix(width)
    if pillow13_vertical_first(height, width):
        return (vertical @ img) @ horizontal.T
    return vertical @ (img @ horizontal.T)


def naive_phash_linear(img) -> int:
    """The linear-path phash of one (H, W) image of any real dtype: float64 resize without
    rounding, then imagehash's DCT and median. A power-of-two scale cannot change the bits, so
    none is applied."""
    return dct_hash(naive_resize_linear(img))


# ------------------------------------------------------------------------------- pairs


def _image_key(img: np.ndarray) -> bytes:
    img = np.ascontiguousarray(img)
    h = hashlib.blake2b(img.tobytes(), digest_size=32)
    h.update(repr((img.shape, img.dtype.str)).encode())
    return h.digest()


def naive_exact_pairs(a, b=None) -> list[tuple[int, int]]:
    """Sorted (i, j) of byte-identical images (same bytes, shape and dtype); i < j without b."""
    a = np.asarray(a)
    other = a if b is None else np.asarray(b)
    buckets = defaultdict(list)
    for j in range(other.shape[0]):
        buckets[_image_key(other[j])].append(j)
    pairs = []
    for i in range(a.shape[0]):
        for j in buckets.get(_image_key(a[i]), []):
            if b is not None or j > i:
                pairs.append((i, j))
    return sorted(pairs)


def naive_hamming_pairs(a, b=None, threshold: int = 8):
    """Sorted (i, j, d) with d = popcount(a[i] ^ b[j]) <= threshold; i < j without b.

    Returns three arrays: int64, int64, uint8.
    """
    a = np.asarray(a, dtype=np.uint64)
    other = a if b is None else np.asarray(b, dtype=np.uint64)
    dist = np.bitwise_count(a[:, None] ^ other[None, :]).astype(np.int64)
    mask = dist <= threshold
    if b is None:
        mask &= np.triu(np.ones_like(mask), k=1)
    i, j = np.nonzero(mask)  # row-major: already sorted by (i, j)
    return i.astype(np.int64), j.astype(np.int64), dist[i, j].astype(np.uint8)


def naive_groups(n: int, pairs) -> list[list[int]]:
    """Connected components (of size > 1) of ``n`` nodes joined by ``pairs``, by BFS; each
    sorted, the list sorted."""
    adjacency = defaultdict(set)
    for i, j in pairs:
        adjacency[i].add(j)
        adjacency[j].add(i)
    seen = set()
    groups = []
    for start in range(n):
        if start in seen or start not in adjacency:
            continue
        stack, comp = [start], []
        seen.add(start)
        while stack:
            node = stack.pop()
            comp.append(node)
            for nxt in adjacency[node]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        groups.append(sorted(comp))
    return sorted(groups)


# ------------------------------------------------------------------- near-pair verification


def _lsq_mse(x, y) -> float:
    """Mean squared residual of the least-squares fit y ~ alpha * x + beta (beta alone when x
    is constant), by np.linalg.lstsq."""
    if np.ptp(x) == 0:
        return float(np.mean((y - y.mean()) ** 2))
    design = np.stack([x, np.ones_like(x)], axis=1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(np.mean((y - design @ coef) ** 2))


def naive_shifts(height: int, width: int, max_shift: int = 2) -> list[tuple[int, int]]:
    """The shifts tried, in order: (0, 0) first, then raster order; |d| <= side // 8."""
    sy, sx = min(max_shift, height // 8), min(max_shift, width // 8)
    rest = [(dy, dx) for dy in range(-sy, sy + 1) for dx in range(-sx, sx + 1)
            if (dy, dx) != (0, 0)]
    return [(0, 0)] + rest


def naive_shift_mses(a, b, max_shift: int = 2):
    """Per shift (dy, dx) (b[y + dy, x + dx] against a[y, x]): the mean squared residuals of
    b on a and of a on b over the overlap, in the images' own units."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    height, width = a.shape
    out = []
    for dy, dx in naive_shifts(height, width, max_shift):
        ya, xa = slice(max(0, -dy), min(height, height - dy)), slice(max(0, -dx),
                                                                       min(width, width - dx))
        yb, xb = slice(max(0, dy), min(height, height + dy)), slice(max(0, dx),
                                                                      min(width, width + dx))
        ov_a, ov_b = a[ya, xa].ravel(), b[yb, xb].ravel()
        out.append(((dy, dx), _lsq_mse(ov_a, ov_b), _lsq_mse(ov_b, ov_a)))
    return out


def naive_pair_score(a, b, max_shift: int = 2) -> tuple[float, tuple[int, int]]:
    """The verification residual of one pair and its shift: over the shifts, the smallest of
    max(mse of b on a, mse of a on b); its square root * 255 / (max - min over both images).
    A pair of one constant value scores 0 at (0, 0)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    if hi == lo:
        return 0.0, (0, 0)
    best, where = None, (0, 0)
    for shift, m_ba, m_ab in naive_shift_mses(a, b, max_shift):
        mse = max(m_ba, m_ab)
        if best is None or mse < best:
            best, where = mse, shift
    return math.sqrt(max(best, 0.0)) * 255.0 / (hi - lo), where


def naive_transform(img, code: int):
    """The transform of gpudedup.transforms code ``code`` by numpy's own flips and turns."""
    ops = {0: lambda x: x, 1: np.fliplr, 2: np.flipud, 3: lambda x: np.rot90(x, 2),
           4: lambda x: x.T, 5: lambda x: np.rot90(x, 1), 6: lambda x: np.rot90(x, -1),
           7: lambda x: np.rot90(x.T, 2)}
    return ops[int(code)](np.asarray(img))


def naive_bound_sides(height: int, width: int, max_shift: int = 2) -> list[int]:
    """The block sides of the cut's lower bound, coarse to fine: 2, 4, .. up to the largest
    power of two s with 3 s within min(H - 2 sy, W - 2 sx) (sy, sx the shift limits); none when
    that is under 6 px."""
    sy, sx = min(max_shift, height // 8), min(max_shift, width // 8)
    side = min(height - 2 * sy, width - 2 * sx)
    sides = []
    s = 2
    while 3 * s <= side:
        sides.append(s)
        s *= 2
    return sides[::-1]


def naive_block_bounds(a, b, max_shift: int = 2):
    """Per shift (in naive_shifts' order) and block side (naive_bound_sides' order): the lower
    bound m * mse_blocks / (s^2 n) on the larger of the two fits' mse, in the images' units.

    b's blocks: the s x s grid centred in rows [sy, H - sy) and columns [sx, W - sx), sized by
    the coarsest side (so the finer grids subdivide it); a's blocks are b's moved by minus the
    shift; mse_blocks is the larger of the two least-squares fits of the m block sums."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    height, width = a.shape
    sy, sx = min(max_shift, height // 8), min(max_shift, width // 8)
    sides = naive_bound_sides(height, width, max_shift)
    out = []
    for dy, dx in naive_shifts(height, width, max_shift):
        n = (height - abs(dy)) * (width - abs(dx))
        row = []
        for s in sides:
            top = sides[0]
            span_y = (height - 2 * sy) // top * top
            span_x = (width - 2 * sx) // top * top
            gy = sy + (height - 2 * sy - span_y) // 2
            gx = sx + (width - 2 * sx - span_x) // 2
            ny, nx = span_y // s, span_x // s
            sb = b[gy:gy + span_y, gx:gx + span_x].reshape(ny, s, nx, s).sum(axis=(1, 3))
            sa = a[gy - dy:gy - dy + span_y, gx - dx:gx - dx + span_x].reshape(
                ny, s, nx, s).sum(axis=(1, 3))
            m_blocks = max(_lsq_mse(sa.ravel(), sb.ravel()), _lsq_mse(sb.ravel(), sa.ravel()))
            row.append(ny * nx * m_blocks / (s * s * n))
        out.append(((dy, dx), row))
    return out
