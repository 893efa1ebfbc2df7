"""Device logic shared by the CPU kernels and their CUDA twins (numba ``register_jitable``:
compiled for whichever target calls it, plain Python under the CUDA simulator)."""

from __future__ import annotations

import math

import numpy as np
from numba.extending import register_jitable


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
