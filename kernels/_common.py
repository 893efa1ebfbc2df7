"""Device logic shared by the CPU kernels and their CUDA twins (numba ``register_jitable``:
compiled for whichever target calls it, plain Python under the CUDA simulator)."""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import overload, register_jitable


@register_jitable
def rotl64(x, r):
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@register_jitable
def fmix64(k):
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xFF51AFD7ED558CCD)
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xC4CEB9FE1A85EC53)
    k ^= k >> np.uint64(33)
    return k


@register_jitable
def murmur3_x64_128(words, nbytes, seed):
    """MurmurHash3_x64_128 of the first ``nbytes`` of a zero-padded little-endian word row."""
    c1 = np.uint64(0x87C37B91114253D5)
    c2 = np.uint64(0x4CF5AD432745937F)
    h1 = np.uint64(seed)
    h2 = np.uint64(seed)
    nblocks = nbytes // 16
    for blk in range(nblocks):
        k1 = words[2 * blk] * c1
        k1 = rotl64(k1, 31) * c2
        h1 ^= k1
        h1 = rotl64(h1, 27) + h2
        h1 = h1 * np.uint64(5) + np.uint64(0x52DCE729)
        k2 = words[2 * blk + 1] * c2
        k2 = rotl64(k2, 33) * c1
        h2 ^= k2
        h2 = rotl64(h2, 31) + h1
        h2 = h2 * np.uint64(5) + np.uint64(0x38495AB5)
    tail = nbytes - 16 * nblocks
    if tail > 8:
        k2 = words[2 * nblocks + 1] * c2
        h2 ^= rotl64(k2, 33) * c1
    if tail > 0:
        k1 = words[2 * nblocks] * c1
        h1 ^= rotl64(k1, 31) * c2
    h1 ^= np.uint64(nbytes)
    h2 ^= np.uint64(nbytes)
    h1 += h2
    h2 += h1
    h1 = fmix64(h1)
    h2 = fmix64(h2)
    h1 += h2
    h2 += h1
    return h1, h2


#: peaks below TINY are first multiplied by LIFT (both exact powers of two)
TINY = float.fromhex("0x1p-900")
LIFT = float.fromhex("0x1p+1000")


@register_jitable
def pow2_scales(peak, out):
    """Two powers of two whose product ``s`` gives ``2**22 <= peak * s < 2**23`` (1, 1 for a
    zero peak). Two factors, because ``s`` passes 2**1023 for subnormal peaks; halving and
    doubling are exact, so every target finds the same factors."""
    first = 1.0
    second = 1.0
    if peak != 0.0:
        while peak * first >= 8388608.0:
            first *= 0.5
        if peak < TINY:  # bring subnormals up with the first factor alone
            first = LIFT
        while peak * first * second < 4194304.0:
            second *= 2.0
        while peak * first * second >= 8388608.0:
            second *= 0.5
    out[0] = first
    out[1] = second


@register_jitable
def round_shift(value, bits):
    """``floor((value + 2**(bits - 1)) / 2**bits)``, exact for integer-valued float64 (``value``
    itself when ``bits`` is 0); ldexp, unlike pow, is exact on every target."""
    if bits <= 0:
        return value
    return math.floor((value + math.ldexp(1.0, bits - 1)) * math.ldexp(1.0, -bits))


@register_jitable
def kth_smallest(values, k):
    """The k-th smallest (0-based) of ``values``, by rank counting: ``values[i]`` is it when
    ``#{v < values[i]} <= k < #{v <= values[i]}``."""
    n = values.shape[0]
    for i in range(n):
        below = 0
        equal = 0
        for j in range(n):
            below += values[j] < values[i]
            equal += values[j] == values[i]
        if below <= k < below + equal:
            return values[i]
    return values[0]


@register_jitable
def pack_above_median(coef, mid2):
    """Hash bits ``2 * coef > mid2`` (``mid2``: the two middle values' sum), first bit MSB.

    imagehash sets a bit where the coefficient exceeds the median, the mean of the 32nd and
    33rd smallest; comparing doubled values keeps it in integers (|coef| < 2**61).
    """
    n = coef.shape[0]
    h = np.uint64(0)
    for idx in range(n):
        if 2 * coef[idx] > mid2:
            h |= np.uint64(1) << np.uint64(n - 1 - idx)
    return h


# ------------------------------------------------------------------- dihedral variants
#
# gpudedup/transforms.py DCT_RULES: a left-right flip multiplies C[u, v] of the integer DCT
# block by (-1)**v, an up-down flip by (-1)**u, a transpose swaps u and v. The block of code
# 4 + k is the transpose of code k's (rot90 = transpose(flip_lr), rot270 = transpose(flip_ud),
# transverse = transpose(rot180)), and a transpose keeps the 64 values and so their median:
# its hash is the bit-matrix transpose of code k's. So only codes 1-3 need a median of their own.

#: dihedral variants per image (transform codes 0-7)
VARIANTS = 8


@register_jitable
def flipped_value(coef, side, code, idx):
    """Entry ``idx`` (``u * side + v``) of the block of transform ``code`` 0-3: ``C[u, v]``
    times ``(-1)**v`` if ``code & 1`` (left-right) and ``(-1)**u`` if ``code & 2`` (up-down).
    Negation is exact, so the variant hashes stay in the plain hash's integers."""
    u = idx // side
    v = idx - u * side
    if ((u & (code >> 1)) ^ (v & code)) & 1:
        return -coef[idx]
    return coef[idx]


@register_jitable
def transpose_bits8(h):
    """The 8x8 bit matrix ``h`` (row-major, as pack_above_median packs a block) transposed: the
    hash of the transposed block (Hacker's Delight transpose8, three swaps of bit blocks)."""
    t = (h ^ (h >> np.uint64(7))) & np.uint64(0x00AA00AA00AA00AA)
    h = h ^ t ^ (t << np.uint64(7))
    t = (h ^ (h >> np.uint64(14))) & np.uint64(0x0000CCCC0000CCCC)
    h = h ^ t ^ (t << np.uint64(14))
    t = (h ^ (h >> np.uint64(28))) & np.uint64(0x00000000F0F0F0F0)
    return h ^ t ^ (t << np.uint64(28))


# ------------------------------------------------------------------- near-pair verification
#
# The verification score of a pair (a, b): for each shift (dy, dx) with b[y + dy, x + dx]
# matched to a[y, x], the least-squares fit b ~ alpha * a + beta on the overlap, and a ~ alpha'
# * b + beta' (the larger of the two mean squared residuals: symmetric, and a blank image cannot
# explain a textured one); the best shift's RMS residual relative to the pair's value range.
#
# Precision: pixels are first quantised, per pair, to integers q = floor((v - lo) * 2**e + 0.5)
# in [0, 2**bits) (lo: the pair's smallest pixel). Every sum, and the n-scaled
# (co)variances, are then exact integers in int64 (or in float64 below 2**53), so any order of
# accumulation, on any target, gives the same values; the determinant that needs 124 bits is
# formed exactly in two 64-bit words. The few float operations after that (one int-to-float
# rounding, a product, a division, a square root) are correctly rounded IEEE operations on both
# targets, and none is a multiply feeding an add (powers of two go through ldexp), so CUDA's FMA
# contraction finds nothing to fuse: the compile test checks that the PTX has no fma.f64.

#: most bits of a quantised pixel (uint8 and uint16 images are quantised without loss)
LEVEL_BITS = 16
_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
#: the power-of-two pixel multiplier stops at 2**this (ranges below ~2**-985: one level)
_MAX_LEVEL_EXPONENT = 1000


@register_jitable
def shift_limit(side, max_shift):
    """Largest |shift| along an axis of ``side`` pixels: ``max_shift``, but at most side // 8,
    so an overlap keeps >= 7/8 of the axis (a 28-px axis allows 3, an 8-px axis 1, under 8 px
    none)."""
    return min(max_shift, side // 8)


@register_jitable
def level_bits(area):
    """Bits of the quantised pixels for images of ``area`` pixels: ``LEVEL_BITS``, fewer for big
    images, so that n * sum(q * q) and sum(q) ** 2 stay below 2**62 (``area < 2**bitlen``)."""
    bitlen = 0
    while (np.int64(1) << bitlen) <= area:
        bitlen += 1
    return min(LEVEL_BITS, 31 - bitlen)


@register_jitable
def level_exponent(value_range, bits):
    """The largest ``e`` with ``value_range * 2**e <= 2**bits - 1`` (value_range > 0), at most
    _MAX_LEVEL_EXPONENT; ldexp is exact, so every target finds the same ``e``."""
    top = math.ldexp(1.0, bits) - 1.0
    e = 0
    while math.ldexp(value_range, e) > top:
        e -= 1
    while e < _MAX_LEVEL_EXPONENT and math.ldexp(value_range, e + 1) <= top:
        e += 1
    return e


def whole_pixels(images) -> bool:
    """Whether ``images`` hold whole numbers by their dtype (an integer one); compiled, a
    constant of the array's type (plain Python under the CUDA simulator)."""
    return bool(np.issubdtype(images.dtype, np.integer))


@overload(whole_pixels)
def _whole_pixels_compiled(images):
    whole = isinstance(images.dtype, types.Integer)
    return lambda images: whole


@register_jitable
def pair_levels(lo, hi, bits, whole):
    """How a pair whose pixels span [lo, hi] (hi > lo) is quantised: ``(offset, exponent, the
    range in levels)``, each pixel's level being ``quantise(v, offset, exponent)``.

    Whole-number pixels (``whole``) in [0, 2**bits - 1] are their own levels (offset 0,
    exponent 0, range hi - lo). The pair's own quantisation, (v - lo) * 2**e, is an exact
    affine map of them (an integer for every pixel), which scales every C, D and mse by a power
    of two: the residual, the best shift and the cut's decisions are those of the pair's own
    levels, up to the determinant's last rounding (exact_det: identical on the 781,578 pairs of
    bench.verified), and an image's levels, tables and block sums no longer depend on its
    partner, so the CPU kernel quantises an image a once, not once per pair. Any other pair:
    offset lo and ``level_exponent``."""
    if whole and lo >= 0.0 and hi <= math.ldexp(1.0, bits) - 1.0:
        return 0.0, 0, hi - lo
    e = level_exponent(hi - lo, bits)
    return lo, e, quantise(hi, lo, e)


@register_jitable
def quantise(value, lo, e):
    """A pixel as its integer level (a float64 holding an integer): floor((v - lo) * 2**e +
    0.5). ldexp rather than a product, so no multiply meets the add (no FMA on CUDA)."""
    return math.floor(math.ldexp(np.float64(value) - lo, e) + 0.5)


@register_jitable
def _extend_range(img, lo, hi):
    for y in range(img.shape[0]):
        for x in range(img.shape[1]):
            v = np.float64(img[y, x])
            lo = min(lo, v)
            hi = max(hi, v)
    return lo, hi


@register_jitable
def quantise_scaled(value, lo, scale):
    """``quantise(value, lo, e)`` with ``scale = 2.0**e`` given: the product by a power of two
    is exact, so it equals ldexp bit for bit (the CPU kernel's form: no libm call per pixel;
    np.floor keeps it a float64, which vectorises, where math.floor makes an int64)."""
    return np.floor((np.float64(value) - lo) * scale + 0.5)


@register_jitable
def pair_range(a, b):
    """Smallest and largest pixel of the two images (float64)."""
    lo, hi = _extend_range(a, np.float64(a[0, 0]), np.float64(a[0, 0]))
    return _extend_range(b, lo, hi)


@register_jitable
def shift_of(k, sy, sx):
    """The k-th shift tried: (0, 0) first (so it wins ties), then raster order without it."""
    if k == 0:
        return 0, 0
    width = 2 * sx + 1
    centre = sy * width + sx
    idx = k - 1 if k <= centre else k
    return idx // width - sy, idx % width - sx


@register_jitable
def overlap(side, d):
    """Rows (or columns) [start, stop) of image a that meet image b at shift d."""
    return max(0, -d), min(side, side - d)


@register_jitable
def _mul_wide(x, y):
    # x * y for 0 <= x, y < 2**62 as two uint64 words (hi, lo), from 32-bit limbs
    ux = np.uint64(x)
    uy = np.uint64(y)
    x0 = ux & _M32
    x1 = ux >> _S32
    y0 = uy & _M32
    y1 = uy >> _S32
    p00 = x0 * y0
    p01 = x0 * y1
    p10 = x1 * y0
    mid = (p00 >> _S32) + (p01 & _M32) + (p10 & _M32)
    lo = (p00 & _M32) | (mid << _S32)
    hi = x1 * y1 + (p01 >> _S32) + (p10 >> _S32) + (mid >> _S32)
    return hi, lo


@register_jitable
def exact_det(caa, cbb, cab):
    """caa * cbb - cab * cab (>= 0 by Cauchy-Schwarz: exact integers) as the nearest float64
    but for one more rounding: formed exactly in 128 bits, then hi * 2**64 + lo."""
    cab_abs = cab if cab >= 0 else -cab
    p_hi, p_lo = _mul_wide(caa, cbb)
    q_hi, q_lo = _mul_wide(cab_abs, cab_abs)
    borrow = np.uint64(1) if p_lo < q_lo else np.uint64(0)
    lo = p_lo - q_lo
    hi = p_hi - q_hi - borrow
    return math.ldexp(np.float64(hi), 64) + np.float64(lo)


@register_jitable
def fit_mse(n, s_a, s_b, s_aa, s_bb, s_ab):
    """Mean squared residual of the worse of the two least-squares fits b ~ alpha a + beta and
    a ~ alpha' b + beta' over ``n`` overlapping pixels, from the exact integer sums.

    With C_aa = n S_aa - S_a**2 (n**2 times the variance), C_bb and C_ab alike and
    D = C_aa C_bb - C_ab**2, the fit of b on a leaves D / (n**2 C_aa) and that of a on b
    D / (n**2 C_bb); the larger is D / (n**2 min(C_aa, C_bb)). A constant side (C = 0) is fit
    by beta alone: the other side's variance, C_max / n**2 (0 when both are constant).
    """
    caa = n * s_aa - s_a * s_a
    cbb = n * s_bb - s_b * s_b
    cab = n * s_ab - s_a * s_b
    cmin = min(caa, cbb)
    nn = np.float64(n) * np.float64(n)
    if cmin <= 0:
        return np.float64(max(caa, cbb)) / nn
    return exact_det(caa, cbb, cab) / (nn * np.float64(cmin))


@register_jitable
def residual_of(mse, levels_range):
    """The RMS residual in grey levels of a 0-255 scale: sqrt(mse) * 255 / (the pair's range in
    levels); 0 for a pair whose pixels are all one level."""
    if levels_range <= 0.0:
        return 0.0
    return math.sqrt(mse) * 255.0 / levels_range


# The cut's lower bound. For one shift, any alpha, beta and the residual e = q_b - alpha q_a -
# beta over the overlap O (n pixels): split O's middle into m whole s x s blocks B; by
# Cauchy-Schwarz sum_B e^2 >= (sum_B e)^2 / s^2, and sum_B e = S_b - alpha S_a - s^2 beta with
# S the block sums, so n * mse(alpha, beta) >= (1 / s^2) * sum over blocks of (S_b - alpha S_a -
# beta')^2 >= m * mse_blocks / s^2, where mse_blocks is the best fit of the m block sums. This
# holds for the fits in both directions and so for the larger of the two (a side constant over
# the overlap is constant over its blocks: fit_mse's constant branch bounds alike), hence
#     full fit_mse >= m * fit_mse(block sums) / (s^2 n).
# The block sums are exact integers (fit_mse's int64 bounds hold: m s^2 <= n), so both twins get
# the same bits; the float roundings of the two sides (at most 17 of 2**-53, relative) are far
# inside BOUND_MARGIN, so a computed bound never exceeds the computed full mse.

#: the bound is scaled down by this before it is compared with the cut (float rounding slack)
BOUND_MARGIN = 1.0 - 2.0**-30


@register_jitable
def coarsest_block(rows, cols):
    """Side of the coarsest blocks the cut's bound starts from, for a block grid inside
    ``rows`` x ``cols`` pixels (the part of b that every shift overlaps): the largest power of
    two ``s`` with 3 x 3 blocks inside (8 at 28x28, shifts +-2: 24 x 24 common pixels); 0 under
    6 px (no bound: every shift is scored in full)."""
    side = min(rows, cols)
    if side < 6:
        return 0
    s = 2
    while 6 * s <= side:
        s *= 2
    return s


@register_jitable
def block_grid(start, stop, s):
    """The whole ``s``-blocks centred in rows (or columns) [start, stop): first row, count.
    The bound's blocks of b are this grid of the coarsest blocks in [shift limit, side - shift
    limit), which lies in b's overlap at every shift, and its halvings for the finer levels
    (so each level's block sums add up from the next finer one); a's blocks are the same ones
    moved by minus the shift."""
    count = (stop - start) // s
    return start + (stop - start - s * count) // 2, count


@register_jitable
def bound_scale(m, n, s):
    """The factor m / (s^2 n) of the bound (see above) for ``m`` blocks of side ``s`` in an
    ``n``-pixel overlap, margin included; 0 under 2 blocks (no bound)."""
    if m < 2:
        return 0.0
    return np.float64(m) / np.float64(s * s * n) * BOUND_MARGIN


@register_jitable
def block_bound(scale, m, s_a, s_b, s_aa, s_bb, s_ab):
    """A lower bound on the full ``fit_mse`` of an overlap from the exact sums of ``m`` of its
    block sums, ``scale`` from :func:`bound_scale`."""
    if scale == 0.0:
        return 0.0
    return fit_mse(m, s_a, s_b, s_aa, s_bb, s_ab) * scale


@register_jitable
def cut_limit(levels_range, cut):
    """An mse whose residual is above ``cut`` (inf for no cut: ``cut`` < 0, inf or NaN): a shift
    whose bound reaches it has a residual above the cut, as residual_of is monotone. Within a
    relative 2**-23 of the least such mse; products only (no FMA on CUDA), so both twins agree."""
    if not (cut >= 0.0 and cut < math.inf and levels_range > 0.0):
        return math.inf  # no cut (or NaN), or a pair of one level: every residual is 0
    root = cut * levels_range / 255.0
    limit = max(math.ldexp(1.0, -1000), root * root)
    for _ in range(64):  # the estimate is a few roundings off: one or two steps
        if residual_of(limit, levels_range) > cut:
            return limit
        limit = limit * (1.0 + 2.0**-23)
    return math.inf


@register_jitable
def beyond_cut(mse, levels_range, cut):
    """Whether an mse puts the residual above ``cut`` (no cut when ``cut`` < 0 or NaN; the
    kept pairs' own test, after the bounds)."""
    return cut >= 0.0 and residual_of(mse, levels_range) > cut
