"""numba CPU kernels. Each has a numba.cuda twin in ``cuda.py`` with the same name and arguments.

Kernels compute and nothing else: the drivers in ``gpudedup`` allocate, validate and launch.
Pixel arithmetic is done in float64 on exact integers (see ``resample.py``), so reassociation is
harmless and is allowed for vectorisation; hash words are uint64 throughout.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from ._common import (
    beyond_cut,
    block_bound,
    block_grid,
    bound_scale,
    coarsest_block,
    cut_limit,
    fit_mse,
    flipped_value,
    kth_smallest,
    level_bits,
    murmur3_x64_128,
    overlap,
    pack_above_median,
    pair_levels,
    pow2_scales,
    quantise_scaled,
    residual_of,
    round_shift,
    shift_limit,
    shift_of,
    transpose_bits8,
    whole_pixels,
)
from .resample import BLOCK, RESAMPLE_HALF, RESAMPLE_INV, THUMB

_JIT = {"cache": True, "nogil": True}
# Every float sum in these kernels is an exact integer below 2**53, so any association gives the
# same bits; "reassoc"/"contract" only let LLVM vectorise the reductions.
_EXACT_FLOAT = {"reassoc", "contract"}

#: columns of B scanned per inner tile of the brute-force search (kept in L1 beside a row block)
TILE_COLS = 4096
#: the last DCT pass splits values below 2**35 into 18-bit halves (each sum exact in float64)
SPLIT = 1 << 18


@intrinsic
def popcount64(typingctx, x):
    """Hardware popcount of a uint64 (``llvm.ctpop.i64``: ``popcnt`` on x86-64)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, args)

    return sig, codegen


# ---------------------------------------------------------------------------------- digest


@njit(parallel=True, **_JIT)
def digest_rows(words, nbytes, seed, out):
    """128-bit MurmurHash3_x64_128 of each image's bytes.

    words: (N, W) uint64, each row an image's bytes zero-padded to whole words; nbytes: the
    true byte count; seed: uint32 derived from shape and dtype; out: (N, 2) uint64 (h1, h2).
    """
    for i in prange(words.shape[0]):
        h1, h2 = murmur3_x64_128(words[i], nbytes, seed)
        out[i, 0] = h1
        out[i, 1] = h2


# ------------------------------------------------------------------------------- phash


@njit(parallel=True, **_JIT)
def linear_scales(images, out_scale, out_bad):
    """Per-image power-of-two scale for the linear (non-uint8) path, and a non-finite flag.

    images: (N, H, W) of any real dtype; out_scale: (N, 2) float64, two powers of two whose
    product brings the largest magnitude into [2**22, 2**23); out_bad: (N,) uint8, 1 where a
    pixel is NaN or inf.
    """
    for i in prange(images.shape[0]):
        peak = 0.0
        bad = 0
        img = images[i]
        for y in range(img.shape[0]):
            for x in range(img.shape[1]):
                v = abs(np.float64(img[y, x]))
                if not math.isfinite(v):
                    bad = 1
                elif v > peak:
                    peak = v
        out_bad[i] = bad
        pow2_scales(0.0 if bad else peak, out_scale[i])


# The phash kernel lays a group of small images side by side in its scratch buffers, so every
# pass sweeps rows of group * side values: short rows would spend their time in loop set-up.
# Loop bounds come from array shapes, not constants: LLVM fully unrolls constant-count loops and
# then leaves them scalar, while runtime counts are vectorised.
GROUP_COLUMNS = 256


@njit(fastmath=_EXACT_FLOAT, **_JIT)
def _resample_rows(src, nrows_in, ncols, starts, weights, clip, dst):
    # One Pillow resize pass along axis 0: dst[o, :] = shift(sum_k weights[o, k] *
    # src[starts[o] + k, :]) with Pillow's rounding, clipped to uint8 when asked. Unsigned
    # column indices: numba's negative-index wraparound would slow the vectorised loops.
    half = RESAMPLE_HALF
    inv = RESAMPLE_INV
    for o in range(starts.shape[0]):
        s0 = starts[o]
        ntaps = min(weights.shape[1], nrows_in - s0)
        out = dst[o]
        for c in range(ncols):
            out[np.uintp(c)] = half
        # four taps per sweep: one load and store of the output row per four products
        k = 0
        while k + 4 <= ntaps:
            w0 = weights[o, k]
            w1 = weights[o, k + 1]
            w2 = weights[o, k + 2]
            w3 = weights[o, k + 3]
            r0 = src[s0 + k]
            r1 = src[s0 + k + 1]
            r2 = src[s0 + k + 2]
            r3 = src[s0 + k + 3]
            for c in range(ncols):
                u = np.uintp(c)
                out[u] += (w0 * r0[u] + w1 * r1[u]) + (w2 * r2[u] + w3 * r3[u])
            k += 4
        while k < ntaps:
            w0 = weights[o, k]
            r0 = src[s0 + k]
            for c in range(ncols):
                u = np.uintp(c)
                out[u] += w0 * r0[u]
            k += 1
        if clip:
            for c in range(ncols):
                u = np.uintp(c)
                out[u] = min(max(np.floor(out[u] * inv), 0.0), 255.0)
        else:
            for c in range(ncols):
                u = np.uintp(c)
                out[u] = np.floor(out[u] * inv)


@njit(**_JIT)
def _regroup(src, length, group, dst):
    # src[o, g * length + t] -> dst[t, g * 32 + o]: transpose each image's block so the next
    # pass runs along the other image axis.
    side = src.shape[0]
    for g in range(group):
        for t in range(length):
            for o in range(side):
                dst[t, g * side + o] = src[o, g * length + t]


@njit(fastmath=_EXACT_FLOAT, **_JIT)
def _dct_rows(thumbs, ncols, basis1, dct_shift, fold, work):
    # DCT pass 1 (vertical) over the side-by-side thumbnails, with the even/odd butterfly:
    # basis1[u, 31 - y] = (-1)**u basis1[u, y], so even rows use thumb[y] + thumb[31 - y] and
    # odd rows the difference. Exact in float64 (|work| < 2**51).
    side = thumbs.shape[0]
    half_side = side // 2
    for y in range(half_side):
        for c in range(ncols):
            top = thumbs[y, c]
            bottom = thumbs[side - 1 - y, c]
            fold[y, c] = top + bottom
            fold[half_side + y, c] = top - bottom
    for u in range(work.shape[0]):
        base = 0 if u % 2 == 0 else half_side
        for c in range(ncols):
            work[u, c] = 0.0
        for y in range(half_side):
            coeff = basis1[u, y]
            for c in range(ncols):
                work[u, c] += coeff * fold[base + y, c]
    if dct_shift > 0:
        for u in range(work.shape[0]):
            for c in range(ncols):
                work[u, c] = round_shift(work[u, c], dct_shift)


@njit(fastmath=_EXACT_FLOAT, **_JIT)
def _dct_cols(work, col0, basis2t, acc, coef):
    # DCT pass 2 (horizontal) of one image: |work| < 2**35 and the products need 61 bits, past
    # float64's exact range, so split work into 18-bit halves, take both sums exactly and join
    # them in int64. basis2t is (32, 8): the inner loop runs over the 8 outputs.
    nfreq = work.shape[0]
    split = SPLIT
    inv_split = 1.0 / SPLIT
    for u in range(nfreq):
        for v in range(nfreq):
            acc[0, v] = 0.0
            acc[1, v] = 0.0
        for x in range(basis2t.shape[0]):
            value = work[u, col0 + x]
            high = np.floor(value * inv_split)
            low = value - high * split
            for v in range(nfreq):
                acc[0, v] += high * basis2t[x, v]
                acc[1, v] += low * basis2t[x, v]
        for v in range(nfreq):
            coef[u * nfreq + v] = np.int64(acc[0, v]) * np.int64(SPLIT) + np.int64(acc[1, v])


@njit(**_JIT)
def _hash_bits(coef):
    # bit = coefficient > median of the 64 (mean of the 32nd and 33rd smallest)
    half = coef.shape[0] // 2
    return pack_above_median(coef, kth_smallest(coef, half - 1) + kth_smallest(coef, half))


@njit(**_JIT)
def _variant_hashes(coef, plain, flipped, row):
    # the eight dihedral variants of one block into row (see _common): codes 1-3 by sign
    # flips and a median of their own, codes 4-7 as bit transposes of codes 0-3
    row[0] = plain
    row[4] = transpose_bits8(plain)
    for code in range(1, 4):
        for idx in range(coef.shape[0]):
            flipped[idx] = flipped_value(coef, BLOCK, code, idx)
        h = _hash_bits(flipped)
        row[code] = h
        row[code + 4] = transpose_bits8(h)


@njit(**_JIT)
def _load_group(images, first, group, scales, transposed, src):
    # pixels as exact integers (uint8 as they are; linear images scaled by a power of two and
    # rounded), image g at columns g * len of src; transposed (W, H) for horizontal-first.
    height, width = images.shape[1], images.shape[2]
    for g in range(group):
        img = images[first + g]
        scale_1 = scales[first + g, 0]
        scale_2 = scales[first + g, 1]
        if transposed:
            for y0 in range(0, height, 16):
                for x in range(width):
                    for y in range(y0, min(y0 + 16, height)):
                        src[x, g * height + y] = np.floor(
                            np.float64(img[y, x]) * scale_1 * scale_2 + 0.5)
        else:
            for y in range(height):
                for x in range(width):
                    src[y, g * width + x] = np.floor(
                        np.float64(img[y, x]) * scale_1 * scale_2 + 0.5)


@njit(fastmath=_EXACT_FLOAT, **_JIT)
def _resample_image_rows(images, first, group, scales, starts, weights, clip, row, dst):
    # The horizontal pass straight from the images, for wide filters (big downscales): each
    # image row is converted once, then every output is a dot product over its contiguous taps
    # (vectorised), written as dst[y, g * 32 + o] - the layout the vertical pass reads.
    height, width = images.shape[1], images.shape[2]
    half = RESAMPLE_HALF
    inv = RESAMPLE_INV
    side = starts.shape[0]
    for g in range(group):
        img = images[first + g]
        scale_1 = scales[first + g, 0]
        scale_2 = scales[first + g, 1]
        for y in range(height):
            for x in range(width):
                u = np.uintp(x)
                row[u] = np.floor(np.float64(img[y, u]) * scale_1 * scale_2 + 0.5)
            for o in range(side):
                s0 = starts[o]
                acc = half
                for k in range(min(weights.shape[1], width - s0)):
                    acc += weights[o, np.uintp(k)] * row[np.uintp(s0 + k)]
                v = np.floor(acc * inv)
                if clip:
                    v = min(max(v, 0.0), 255.0)
                dst[y, g * side + o] = v


#: filters at least this wide run the horizontal-first pass as dot products over image rows;
#: narrower ones on a transposed copy (vectorised across rows)
WIDE_FILTER = 16


@njit(parallel=True, **_JIT)
def phash_images(images, scales, h_starts, h_weights, v_starts, v_weights, vertical_first,
                 clip, basis1, basis2t, dct_shift, out, out_variants):
    """imagehash-compatible perceptual hash of each image.

    images: (N, H, W) real dtype; scales: (N, 2) float64, two pixel multipliers (1 for uint8);
    h_/v_starts, h_/v_weights: Pillow LANCZOS taps for W->32 and H->32; vertical_first: pass
    order; clip: round and clip to uint8 between passes (the uint8 / Pillow path); basis1:
    (8, 32) and basis2t: (32, 8), the integer DCT bases of the two passes; dct_shift: bits
    dropped between the DCT passes; out: (N,) uint64; out_variants: (N, 0), or (N, 8) uint64
    for the phashes of the eight dihedral transforms (gpudedup/transforms.py codes) from the
    same coefficient block, column 0 the plain hash.
    """
    n, height, width = images.shape
    variants = out_variants.shape[1] != 0
    side = THUMB
    group = max(1, GROUP_COLUMNS // max(height, width, side))
    ngroups = (n + group - 1) // group
    nchunks = min(ngroups, 64)
    # the first pass runs along `along` (H when vertical first, else W) over `across` lines
    along, across = (height, width) if vertical_first else (width, height)
    wide = not vertical_first and h_weights.shape[1] >= WIDE_FILTER
    for chunk in prange(nchunks):
        src = np.empty((along, max(group * across, width)), dtype=np.float64)
        pass1 = np.empty((side, group * across), dtype=np.float64)
        pass1_t = np.empty((across, group * side), dtype=np.float64)
        thumbs = np.empty((side, group * side), dtype=np.float64)
        swap = np.empty((side, group * side), dtype=np.float64)
        work = np.empty((BLOCK, group * side), dtype=np.float64)
        acc = np.empty((2, BLOCK), dtype=np.float64)
        coef = np.empty(BLOCK * BLOCK, dtype=np.int64)
        flipped = np.empty(BLOCK * BLOCK, dtype=np.int64)
        for grp in range(chunk * ngroups // nchunks, (chunk + 1) * ngroups // nchunks):
            first = grp * group
            count = min(group, n - first)
            if vertical_first:
                # (H, g*W) -> (32, g*W) -> (W, g*32) -> (32x, g*32y) -> thumbs (32y, g*32x)
                _load_group(images, first, count, scales, False, src)
                _resample_rows(src, height, count * width, v_starts, v_weights, clip, pass1)
                _regroup(pass1, width, count, pass1_t)
                _resample_rows(pass1_t, width, count * side, h_starts, h_weights, clip, swap)
                _regroup(swap, side, count, thumbs)
            else:
                # horizontal pass into (H, g*32x), then vertical -> thumbs (32y, g*32x)
                if wide:
                    _resample_image_rows(images, first, count, scales, h_starts, h_weights,
                                         clip, src[0], pass1_t)
                else:  # via (W, g*H) -> (32x, g*H)
                    _load_group(images, first, count, scales, True, src)
                    _resample_rows(src, width, count * height, h_starts, h_weights, clip, pass1)
                    _regroup(pass1, height, count, pass1_t)
                _resample_rows(pass1_t, height, count * side, v_starts, v_weights, clip, thumbs)
            _dct_rows(thumbs, count * side, basis1, dct_shift, swap, work)
            for g in range(count):
                _dct_cols(work, g * side, basis2t, acc, coef)
                plain = _hash_bits(coef)
                out[first + g] = plain
                if variants:
                    _variant_hashes(coef, plain, flipped, out_variants[first + g])


@njit(parallel=True, **_JIT)
def luma_images(rgb, out):
    """Pillow's convert("L") of (N, H, W, 3) uint8 into (N, H, W) uint8."""
    n, height, width, _ = rgb.shape
    for i in prange(n):
        for y in range(height):
            for x in range(width):
                acc = (np.int32(rgb[i, y, x, 0]) * 19595 + np.int32(rgb[i, y, x, 1]) * 38470
                       + np.int32(rgb[i, y, x, 2]) * 7471 + 0x8000)
                out[i, y, x] = np.uint8(acc >> 16)


# ------------------------------------------------------------------------------ search


#: columns checked per branch-free sweep before the matches in it are collected
SWEEP = 256


@njit(**_JIT)
def _scan_row(ai, b, j0, j1, threshold, i, row, found, out_i, out_j, out_d):
    # Matches of ai among b[j0:j1], appended to row `row` of the outputs from position `found`
    # (writes past the capacity are counted, not stored). A branch-free sweep counts the hits
    # of each SWEEP columns (LLVM vectorises it); only sweeps with a hit are scanned again.
    # Unsigned indices: numba's negative-index wraparound would otherwise block vectorisation.
    cap = out_i.shape[1]
    j = j0
    while j < j1:
        j_end = min(j + SWEEP, j1)
        hits = 0
        for t in range(j, j_end):
            hits += popcount64(ai ^ b[np.uintp(t)]) <= threshold
        if hits:
            for t in range(j, j_end):
                d = popcount64(ai ^ b[t])
                if d <= threshold:
                    if found < cap:
                        out_i[row, found] = i
                        out_j[row, found] = t
                        out_d[row, found] = d
                    found += 1
        j = j_end
    return found


@njit(parallel=True, **_JIT)
def hamming_range(a, b, threshold, self_join, block_starts, block_rows, counts, out_i, out_j,
                  out_d):
    """All pairs (i, j) with popcount(a[i] ^ b[j]) <= threshold, brute force in tiles.

    Block k covers the ``block_rows`` rows of a from ``block_starts[k]``; it writes up to
    ``out_i.shape[1]`` matches into row k of out_i/out_j/out_d and the true count into counts[k]
    (a count above the capacity tells the driver to run that block again with more room). With
    self_join, only j > i is searched. Columns go in tiles of TILE_COLS so a tile of b stays in
    cache across the block's rows.
    """
    n = a.shape[0]
    m = b.shape[0]
    thr = np.uint64(threshold)
    for blk in prange(counts.shape[0]):
        lo = block_starts[blk]
        hi = min(lo + block_rows, n)
        found = 0
        for c0 in range(0, m, TILE_COLS):
            c1 = min(c0 + TILE_COLS, m)
            for i in range(lo, hi):
                j0 = max(c0, i + 1) if self_join else c0
                found = _scan_row(a[i], b, j0, c1, thr, i, blk, found, out_i, out_j, out_d)
        counts[blk] = found


@njit(**_JIT)
def mih_bucket_sort(codes, shift, mask, offsets, order, sorted_codes):
    """Counting sort of ``codes`` by the substring ``(code >> shift) & mask``.

    offsets: (mask + 2,) bucket starts; order: (len(codes),) original index of each sorted
    code; sorted_codes: the codes in that order (a bucket's codes are read contiguously).
    """
    nkeys = np.int64(mask) + 1
    for k in range(nkeys + 1):
        offsets[k] = 0
    for idx in range(codes.shape[0]):
        offsets[np.int64((codes[idx] >> shift) & mask) + 1] += 1
    for k in range(nkeys):
        offsets[k + 1] += offsets[k]
    fill = offsets[:nkeys].copy()
    for idx in range(codes.shape[0]):
        key = np.int64((codes[idx] >> shift) & mask)
        order[fill[key]] = idx
        sorted_codes[fill[key]] = codes[idx]
        fill[key] += 1


@njit(**_JIT)
def _probe_bucket(ai, codes, order, lo, hi, threshold, self_join, i, s, shifts, masks, radii,
                  row, found, out_i, out_j, out_d):
    # candidates codes[lo:hi] of query ai found through substring s: a branch-free sweep
    # counts the hits (vectorised), and only buckets with one are scanned again
    hits = 0
    for idx in range(lo, hi):
        hits += popcount64(ai ^ codes[np.uintp(idx)]) <= threshold
    if hits == 0:
        return found
    cap = out_i.shape[1]
    for idx in range(lo, hi):
        x = ai ^ codes[idx]
        d = popcount64(x)
        j = order[idx]
        if d > threshold or (self_join and j <= i):
            continue
        # report the pair only through the first substring within its radius
        first = True
        for t in range(s):
            if popcount64((x >> shifts[t]) & masks[t]) <= radii[t]:
                first = False
                break
        if first:
            if found < cap:
                out_i[row, found] = i
                out_j[row, found] = j
                out_d[row, found] = d
            found += 1
    return found


@njit(parallel=True, **_JIT)
def mih_range(a, threshold, self_join, block_starts, block_rows, shifts, masks, radii, flips,
              nflips, offsets, order, sorted_codes, counts, out_i, out_j, out_d):
    """The pairs of ``hamming_range``, found by multi-index hashing.

    The indexed codes are split into substrings (shifts[s], masks[s]) and bucketed by each with
    ``mih_bucket_sort`` into offsets[s], order[s] and sorted_codes[s]. With ``threshold =
    m * q + a``, a pair within the threshold has one of the first a + 1 substrings within q or
    one of the others within q - 1 (``radii``); so each query probes its key XOR the first
    ``nflips[s]`` masks of ``flips[s]`` (every mask of weight <= radii[s] inside the
    substring), checks the candidates by popcount, and reports a pair only from the first
    substring within its radius, so once. Output convention as in ``hamming_range``.
    """
    n = a.shape[0]
    thr = np.uint64(threshold)
    for blk in prange(counts.shape[0]):
        lo = block_starts[blk]
        hi = min(lo + block_rows, n)
        found = 0
        for i in range(lo, hi):
            ai = a[i]
            for s in range(shifts.shape[0]):
                key = (ai >> shifts[s]) & masks[s]
                for f in range(nflips[s]):
                    probe = np.int64(key ^ flips[s, f])
                    found = _probe_bucket(ai, sorted_codes[s], order[s], offsets[s, probe],
                                          offsets[s, probe + 1], thr, self_join, i, s, shifts,
                                          masks, radii, blk, found, out_i, out_j, out_d)
        counts[blk] = found


# ------------------------------------------------------------------------ verification


#: pairs scored per prange chunk (each chunk allocates its scratch once, and reuses image a's
#: levels and tables over a run of pairs of one a)
VERIFY_CHUNK = 256
#: an image a with at most 1 / SPARSE_FRACTION of its pixels off its background level is scored
#: from those pixels, without the cut's bounds (pair_residuals)
SPARSE_FRACTION = 16


@njit(fastmath=_EXACT_FLOAT, **_JIT)
def _quantise_into(img, lo, scale, q):
    # q: the image's integer levels (float64 holding integers)
    height, width = img.shape
    for y in range(height):
        for x in range(width):
            q[y, x] = quantise_scaled(img[y, x], lo, scale)


@njit(fastmath=_EXACT_FLOAT, **_JIT)
def _edge_sums(img, lo, scale, sy, sx, band1, band2, edge1, edge2):
    # edge1, edge2: the summed-area tables of the levels q of img (quantise_scaled with lo and
    # scale; already-quantised levels with lo 0, scale 1) and of q * q, shape (2 sy + 2,
    # 2 sx + 2), at the only rows and columns a shift's overlap starts or stops on (_edge_at):
    # edge[r, c] = the sum over the rows before row r's edge and the columns before column c's.
    # One pass of independent band sums (the middle band vectorises) instead of a full table's
    # serial chain; exact integers below 2**53 (see _common), so any order gives these bits.
    # band1, band2: scratch of 2 sx + 1 columns bands.
    height, width = img.shape
    nbands = 2 * sx + 1
    for c in range(nbands + 1):
        edge1[0, c] = 0.0
        edge2[0, c] = 0.0
    for c in range(nbands):
        band1[c] = 0.0
        band2[c] = 0.0
    r = 0
    for y in range(height):
        for c in range(sx):  # the first and last sx columns, one band each
            v = quantise_scaled(img[y, c], lo, scale)
            band1[c] += v
            band2[c] += v * v
            v = quantise_scaled(img[y, width - sx + c], lo, scale)
            band1[sx + 1 + c] += v
            band2[sx + 1 + c] += v * v
        mid1 = 0.0
        mid2 = 0.0
        for x in range(sx, width - sx):
            v = quantise_scaled(img[y, x], lo, scale)
            mid1 += v
            mid2 += v * v
        band1[sx] += mid1
        band2[sx] += mid2
        if y + 1 <= sy or y + 1 >= height - sy:
            r += 1
            acc1 = 0.0
            acc2 = 0.0
            edge1[r, 0] = 0.0
            edge2[r, 0] = 0.0
            for c in range(nbands):
                acc1 += band1[c]
                acc2 += band2[c]
                edge1[r, c + 1] = acc1
                edge2[r, c + 1] = acc2


@njit(**_JIT)
def _edge_at(t, side, s):
    # the index in an edge table of row (or column) t, one of 0..s or side - s..side
    return t if t <= s else t - (side - s) + s + 1


@njit(**_JIT)
def _edge_window(edge, y0, y1, x0, x1, height, width, sy, sx):
    # the sum over rows [y0, y1) and columns [x0, x1), each bound an overlap's edge, as an
    # exact int64
    r0 = _edge_at(y0, height, sy)
    r1 = _edge_at(y1, height, sy)
    c0 = _edge_at(x0, width, sx)
    c1 = _edge_at(x1, width, sx)
    return np.int64(edge[r1, c1] - edge[r0, c1] - edge[r1, c0] + edge[r0, c0])


@njit(fastmath=_EXACT_FLOAT, **_JIT)
def _block_sums(boxes, levels):
    # boxes[k, r, c]: the sum of the levels boxes[0] over the 2**k x 2**k block whose top-left
    # pixel is (r, c), for every block inside the image; each level from four blocks of the
    # level below. Exact integers (< 2**bits * 4**k < 2**53).
    height, width = boxes.shape[1], boxes.shape[2]
    for k in range(1, levels + 1):
        half = 1 << (k - 1)
        side = 2 * half
        prev = boxes[k - 1]
        out = boxes[k]
        for r in range(height - side + 1):
            for c in range(width - side + 1):
                out[r, c] = (prev[r, c] + prev[r, c + half]) + (prev[r + half, c]
                                                                + prev[r + half, c + half])


@njit(fastmath={"nnan", "nsz"}, **_JIT)
def _image_range(img):
    # smallest and largest pixel as float64, a vectorisable reduction in the image's own dtype:
    # the conversion is monotone, so it commutes with min and max (the pixels are finite, the
    # drivers check, and a -0.0 for 0.0 changes no level), so min/max over the pair of these
    # equal _common.pair_range
    flat = img.ravel()
    lo = flat[0]
    hi = flat[0]
    for t in range(flat.size):
        v = flat[t]
        lo = v if v < lo else lo
        hi = v if v > hi else hi
    return np.float64(lo), np.float64(hi)


@njit(fastmath=_EXACT_FLOAT, **_JIT)
def _grid_sums(img, lo, scale, gy, gx, ny, nx, row, out):
    # out[u, v]: the sum of the levels of img over the 2 x 2 block at (gy + 2 u, gx + 2 v);
    # row: scratch of >= 2 nx, the column sums of one row of blocks (vectorised over x)
    span = 2 * nx
    for u in range(ny):
        y = gy + 2 * u
        for t in range(span):
            row[t] = (quantise_scaled(img[y, gx + t], lo, scale)
                      + quantise_scaled(img[y + 1, gx + t], lo, scale))
        for v in range(nx):
            out[u, v] = row[2 * v] + row[2 * v + 1]


@njit(fastmath=_EXACT_FLOAT, **_JIT)
def _grid_up(fine, ny, nx, out):
    # out (ny x nx blocks): each the sum of the 2 x 2 blocks of fine below it
    for u in range(ny):
        for v in range(nx):
            out[u, v] = ((fine[2 * u, 2 * v] + fine[2 * u, 2 * v + 1])
                         + (fine[2 * u + 1, 2 * v] + fine[2 * u + 1, 2 * v + 1]))


@njit(**_JIT)
def _grid_gather(box, r0, c0, s, ny, nx, out):
    # out[u * nx + v] = box[r0 + s u, c0 + s v] as int64 (exact: the sums are integers)
    for u in range(ny):
        for v in range(nx):
            out[u * nx + v] = np.int64(box[r0 + s * u, c0 + s * v])


@njit(**_JIT)
def _moments(x):
    # the sum and the sum of squares of an int64 run
    total = np.int64(0)
    squares = np.int64(0)
    for t in range(x.size):
        total += x[t]
        squares += x[t] * x[t]
    return total, squares


@njit(**_JIT)
def _dot_int(x, y):
    acc = np.int64(0)
    for t in range(x.size):
        acc += x[t] * y[t]
    return acc


@njit(**_JIT)
def _grid_moments(box, r0, c0, s, ny, nx):
    # the sum and the sum of squares of box[r0 + s u, c0 + s v] over the grid, exact in int64
    total = np.int64(0)
    squares = np.int64(0)
    for u in range(ny):
        for v in range(nx):
            x = np.int64(box[r0 + s * u, c0 + s * v])
            total += x
            squares += x * x
    return total, squares


@njit(**_JIT)
def _grid_cross(box_a, grid_b, r0, c0, s, ny, nx):
    # the sum of grid_b[u, v] * box_a[r0 + s u, c0 + s v], exact in int64
    acc = np.int64(0)
    for u in range(ny):
        for v in range(nx):
            acc += np.int64(grid_b[u, v]) * np.int64(box_a[r0 + s * u, c0 + s * v])
    return acc


@njit(fastmath=_EXACT_FLOAT, **_JIT)
def _dot(x, y, n):
    acc = 0.0
    for t in range(n):
        u = np.uintp(t)
        acc += x[u] * y[u]
    return acc


@njit(**_JIT)
def _cross(qa, qb, y0, y1, x0, x1, dy, dx):
    # sum of qa[y, x] * qb[y + dy, x + dx] over a's overlap: the one sum a summed-area table
    # cannot give. Rows are short, so it is one long dot product over the flat pixels from the
    # overlap's first to its last, minus the products of the columns outside it that this
    # span crosses between rows. Exact integers below 2**53: the vectorised (reassociated) sum
    # and the corrections are exact in any order.
    width = qa.shape[1]
    fa = qa.ravel()
    fb = qb.ravel()
    off = dy * width + dx
    t0 = y0 * width + x0
    t1 = (y1 - 1) * width + x1
    acc = _dot(fa[t0:t1], fb[t0 + off:t1 + off], t1 - t0)
    for y in range(y0, y1 - 1):
        for t in range(y * width + x1, (y + 1) * width + x0):
            acc -= fa[t] * fb[t + off]
    return np.int64(acc)


@njit(**_JIT)
def _off_background(img, v_lo, v_hi, out_y, out_x, out_v):
    # the pixels of img off its commoner extreme value (its background: v_lo or v_hi, its
    # smallest and largest pixel, whichever more pixels hold): rows, columns and values as
    # float64; returns (count, background). Raw values, so once per image whatever the pair's
    # quantisation (a pixel off the background value may share its level: it then adds 0).
    height, width = img.shape
    at_lo = 0
    at_hi = 0
    for y in range(height):
        for x in range(width):
            v = np.float64(img[y, x])
            at_lo += v == v_lo
            at_hi += v == v_hi
    background = v_lo if at_lo >= at_hi else v_hi
    count = 0
    for y in range(height):
        for x in range(width):
            v = np.float64(img[y, x])
            if v != background:
                out_y[count] = y
                out_x[count] = x
                out_v[count] = v
                count += 1
    return count, background


@njit(**_JIT)
def _sparse_sums(ys, xs, vs, count, background, b, lo, scale, s_b, y0, y1, x0, x1, dy, dx):
    # the sums of a mostly-one-level a over its overlap [y0, y1) x [x0, x1) from its few other
    # pixels (levels vs[t] - background as int64): S_a, S_aa, and the cross term S_ab as
    # background * S_b plus (q_a - background) * q_b over those pixels, b's levels quantised
    # where read. Exact integers, so they equal the full sums bit for bit.
    n = np.int64((y1 - y0) * (x1 - x0))
    s_a = background * n
    s_aa = background * background * n
    cross = background * s_b
    for t in range(count):
        y = ys[t]
        x = xs[t]
        if y0 <= y < y1 and x0 <= x < x1:
            v = vs[t]
            s_a += v
            s_aa += v * (v + 2 * background)
            cross += v * np.int64(quantise_scaled(b[y + dy, x + dx], lo, scale))
    return s_a, s_aa, cross


@njit(parallel=True, **_JIT)
def pair_residuals(images_a, images_b, i, j, max_shift, cut, out_residual, out_shift):
    """Verification score of the pairs (images_a[i[p]], images_b[j[p]]).

    images_a, images_b: (Na, H, W) and (Nb, H, W) of one real dtype; i, j: (P,) int64 image
    indices; max_shift: the largest |dy|, |dx| tried (capped at side // 8); cut: float64, the
    largest residual the caller keeps (< 0: none); out_residual: (P,) float64, the best shift's
    RMS residual of the photometric fit (the worse of b ~ alpha a + beta and a ~ alpha' b +
    beta') in grey levels of the pair's range mapped to 0-255, or inf above the cut; out_shift:
    (P, 2) int8, that shift (dy, dx): b[y + dy, x + dx] matches a[y, x] ((0, 0) above the cut).

    The sums per shift come from summed-area tables of the quantised pixels, kept only at the
    rows and columns an overlap starts or stops on (_edge_sums: one pass of band sums, not a
    full table's serial chain), except the cross term. With a cut, each shift is first
    bounded from below on block sums, coarse to fine
    (_common.block_bound), and scored in full only if no bound exceeds the cut: a shift whose
    bound does cannot be the best of a pair within the cut, so the kept pairs are unchanged.
    Later shifts are bounded against the best full score so far as well (a bound at or above
    it cannot win), which leaves the answer unchanged and makes a near-identical pair cost
    about one full score instead of one per shift (the CUDA twin scores every such shift; the
    results are the same). Consecutive pairs of one image a quantised alike (the search's
    pairs come sorted by i) share a's levels, block sums and tables. An a with at most
    1 / SPARSE_FRACTION of its pixels off its background value (a blank page with a speck)
    skips the bounds, is never quantised whole, and gets its sums and each shift's cross term
    from those few pixels: the same exact integers, so the same answer (1.34M blank-with-a-speck
    pairs: 1.7 s -> 0.94 s on 2 cores).
    """
    npairs = i.shape[0]
    height, width = images_a.shape[1], images_a.shape[2]
    sy = shift_limit(height, max_shift)
    sx = shift_limit(width, max_shift)
    bits = level_bits(height * width)
    whole = whole_pixels(images_a)  # of one dtype with images_b
    nshifts = (2 * sy + 1) * (2 * sx + 1)
    levels = 0  # block levels of the bound, sides 2, 4, .., 2**levels = coarsest_block
    if cut >= 0.0 and cut < math.inf:
        while (2 << levels) <= coarsest_block(height - 2 * sy, width - 2 * sx):
            levels += 1
    top = 1 << levels
    gy, ny_top = block_grid(sy, height - sy, top)
    gx, nx_top = block_grid(sx, width - sx, top)
    m_top = ny_top * nx_top if levels else 0
    # scales[lev, k]: bound_scale of level lev at shift k
    scales = np.zeros((levels + 1, nshifts), dtype=np.float64)
    for lev in range(1, levels + 1):
        m = (ny_top << (levels - lev)) * (nx_top << (levels - lev))
        for k in range(nshifts):
            dy, dx = shift_of(k, sy, sx)
            y0, y1 = overlap(height, dy)
            x0, x1 = overlap(width, dx)
            scales[lev, k] = bound_scale(np.int64(m), np.int64((y1 - y0) * (x1 - x0)),
                                         np.int64(1 << lev))
    nchunks = (npairs + VERIFY_CHUNK - 1) // VERIFY_CHUNK
    for chunk in prange(nchunks):
        boxes_a = np.empty((levels + 1, height, width), dtype=np.float64)
        grids_b = np.empty((levels + 1, height, width), dtype=np.float64)
        # the coarsest level as flat int64 runs: a's blocks at each shift, b's blocks
        top_a = np.empty((nshifts, m_top), dtype=np.int64)
        top_b = np.empty(m_top, dtype=np.int64)
        top_sa = np.empty(nshifts, dtype=np.int64)
        top_saa = np.empty(nshifts, dtype=np.int64)
        qb = np.empty((height, width), dtype=np.float64)
        row = np.empty(width, dtype=np.float64)
        # a's and b's summed-area tables at the overlaps' edges (_edge_sums)
        edge_a1 = np.empty((2 * sy + 2, 2 * sx + 2), dtype=np.float64)
        edge_a2 = np.empty((2 * sy + 2, 2 * sx + 2), dtype=np.float64)
        edge_b1 = np.empty((2 * sy + 2, 2 * sx + 2), dtype=np.float64)
        edge_b2 = np.empty((2 * sy + 2, 2 * sx + 2), dtype=np.float64)
        bands1 = np.empty(2 * sx + 1, dtype=np.float64)
        bands2 = np.empty(2 * sx + 1, dtype=np.float64)
        qa = boxes_a[0]
        # a's pixels off its background value, when there are few (_off_background): where,
        # their values, and their levels less the background's in the pair's quantisation
        sparse_y = np.empty(height * width, dtype=np.int64)
        sparse_x = np.empty(height * width, dtype=np.int64)
        sparse_raw = np.empty(height * width, dtype=np.float64)
        sparse_v = np.empty(height * width, dtype=np.int64)
        sparse_count = 0
        raw_background = 0.0
        sparse_background = np.int64(0)
        a_sparse = False
        # what a's scratch holds: image a_index quantised with (a_lo, a_exponent)
        a_index = np.int64(-1)
        a_lo = 0.0
        a_exponent = 0
        a_sat = False
        range_index = np.int64(-1)  # the image whose range a_min, a_max hold
        a_min = 0.0
        a_max = 0.0
        for p in range(chunk * VERIFY_CHUNK, min(npairs, (chunk + 1) * VERIFY_CHUNK)):
            a = images_a[i[p]]
            b = images_b[j[p]]
            if i[p] != range_index:
                range_index = i[p]
                a_min, a_max = _image_range(a)
                sparse_count, raw_background = _off_background(a, a_min, a_max, sparse_y,
                                                               sparse_x, sparse_raw)
                a_sparse = sparse_count * SPARSE_FRACTION <= height * width
            b_min, b_max = _image_range(b)
            lo = min(a_min, b_min)
            hi = max(a_max, b_max)
            out_shift[p, 0] = 0
            out_shift[p, 1] = 0
            if not hi > lo:  # both images one constant value
                out_residual[p] = 0.0
                continue
            lo, exponent, levels_range = pair_levels(lo, hi, bits, whole)
            scale = math.ldexp(1.0, exponent)
            if i[p] != a_index or lo != a_lo or exponent != a_exponent:
                a_index, a_lo, a_exponent, a_sat = i[p], lo, exponent, False
                if a_sparse:  # only its few pixels' levels: a itself is never quantised
                    sparse_background = np.int64(quantise_scaled(raw_background, lo, scale))
                    for t in range(sparse_count):
                        sparse_v[t] = np.int64(quantise_scaled(sparse_raw[t], lo, scale)
                                               ) - sparse_background
                else:
                    _quantise_into(a, lo, scale, qa)
                if levels and not a_sparse:
                    _block_sums(boxes_a, levels)
                    for k in range(nshifts):
                        dy, dx = shift_of(k, sy, sx)
                        _grid_gather(boxes_a[levels], gy - dy, gx - dx, top, ny_top, nx_top,
                                     top_a[k])
                        top_sa[k], top_saa[k] = _moments(top_a[k])
            b_levels = False  # qb holds b's levels
            b_sat = False
            limit = math.inf
            # a low-content a (a blank page with a speck) scores each shift in full for little
            # more than its few pixels, less than the bounds would cost: no bounds
            bounds = levels > 0 and not a_sparse
            if bounds:
                limit = cut_limit(levels_range, cut)
                _grid_sums(b, lo, scale, gy, gx, ny_top << (levels - 1), nx_top << (levels - 1),
                           row, grids_b[1])
                for lev in range(2, levels + 1):
                    _grid_up(grids_b[lev - 1], ny_top << (levels - lev),
                             nx_top << (levels - lev), grids_b[lev])
                _grid_gather(grids_b[levels], 0, 0, 1, ny_top, nx_top, top_b)
                top_sb, top_sbb = _moments(top_b)
            best = -1.0
            for k in range(nshifts):
                dy, dx = shift_of(k, sy, sx)
                # a shift whose bound reaches the best so far cannot beat it (ties go to the
                # earlier shift), so it is bounded against that too: a copy's other shifts end
                # at the coarse blocks. The kept pairs and their scores are unchanged.
                if best >= 0.0 and best < limit:
                    limit = best
                if bounds:
                    cross = _dot_int(top_a[k], top_b)
                    if block_bound(scales[levels, k], np.int64(m_top), top_sa[k], top_sb,
                                   top_saa[k], top_sbb, cross) >= limit:
                        continue
                bounded = False
                for lev in range(levels - 1 if bounds else 0, 0, -1):
                    side = 1 << lev
                    ny = ny_top << (levels - lev)
                    nx = nx_top << (levels - lev)
                    s_a, s_aa = _grid_moments(boxes_a[lev], gy - dy, gx - dx, side, ny, nx)
                    s_b, s_bb = _grid_moments(grids_b[lev], 0, 0, 1, ny, nx)
                    cross = _grid_cross(boxes_a[lev], grids_b[lev], gy - dy, gx - dx, side,
                                        ny, nx)
                    if block_bound(scales[lev, k], np.int64(ny * nx), s_a, s_b, s_aa, s_bb,
                                   cross) >= limit:
                        bounded = True
                        break
                if bounded:
                    continue
                y0, y1 = overlap(height, dy)
                x0, x1 = overlap(width, dx)
                if not b_sat:  # b's levels straight from its pixels: qb only where read
                    _edge_sums(b, lo, scale, sy, sx, bands1, bands2, edge_b1, edge_b2)
                    b_sat = True
                s_b = _edge_window(edge_b1, y0 + dy, y1 + dy, x0 + dx, x1 + dx, height, width,
                                   sy, sx)
                s_bb = _edge_window(edge_b2, y0 + dy, y1 + dy, x0 + dx, x1 + dx, height, width,
                                    sy, sx)
                if a_sparse:
                    s_a, s_aa, cross = _sparse_sums(sparse_y, sparse_x, sparse_v, sparse_count,
                                                    sparse_background, b, lo, scale, s_b,
                                                    y0, y1, x0, x1, dy, dx)
                else:
                    if not b_levels:
                        _quantise_into(b, lo, scale, qb)
                        b_levels = True
                    if not a_sat:
                        _edge_sums(qa, 0.0, 1.0, sy, sx, bands1, bands2, edge_a1, edge_a2)
                        a_sat = True
                    cross = _cross(qa, qb, y0, y1, x0, x1, dy, dx)
                    s_a = _edge_window(edge_a1, y0, y1, x0, x1, height, width, sy, sx)
                    s_aa = _edge_window(edge_a2, y0, y1, x0, x1, height, width, sy, sx)
                mse = fit_mse(np.int64((y1 - y0) * (x1 - x0)), s_a, s_b, s_aa, s_bb, cross)
                if best < 0.0 or mse < best:
                    best = mse
                    out_shift[p, 0] = dy
                    out_shift[p, 1] = dx
                if best == 0.0:
                    break  # a perfect fit: no later shift can beat it (ties go to the earlier)
            if best < 0.0 or beyond_cut(best, levels_range, cut):
                out_residual[p] = np.inf
                out_shift[p, 0] = 0
                out_shift[p, 1] = 0
            else:
                out_residual[p] = residual_of(best, levels_range)
