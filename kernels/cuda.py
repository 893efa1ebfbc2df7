"""numba.cuda twins of the CPU kernels in ``cpu.py``: same names, same arguments, same bits.

Arrays arrive from CuPy through ``__cuda_array_interface__`` (numpy under the CUDA simulator)
and kernels run on CuPy's current stream. Hash words are uint64 everywhere (``cuda.popc`` is
only right on unsigned words in the simulator). The launch geometry of each kernel is in
``_GEOMETRY``; the thread counts are module globals read at launch time, so tests can make them
tiny and still cross several blocks and tiles. Every kernel strides over its items, so a grid
capped at MAX_BLOCKS still covers them all. The argument types of every launch are in
``signatures.py``, which the compile test (tests/cuda_compile) compiles with the real NVVM.

The perceptual hash is one fused kernel, one thread block per image, instead of GEMM passes:
the banded LANCZOS passes would waste 4-8x their arithmetic as dense GEMMs and every pass would
write its (N, H, 32) float64 intermediate to device memory and read it back, about 20x the
bytes of a 28x28 uint8 input, so GEMMs would be bound by device memory far above the
host-to-device floor. The fused kernel reads each image once and writes 8 bytes; it streams the
first pass in chunks of rows (or columns), so its shared memory stays 12 KB at any image size.
"""

from __future__ import annotations

import math
import os

import numpy as np
from numba import config, cuda, float64, int64, uint64

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
    pair_range,
    pow2_scales,
    quantise,
    residual_of,
    round_shift,
    shift_limit,
    shift_of,
    transpose_bits8,
    whole_pixels,
)
from .resample import BLOCK, RESAMPLE_HALF, RESAMPLE_INV, THUMB
from .signatures import check as check_signature

#: threads per block of the kernels that give each thread one item (an image, a query row)
THREADS = 128
#: threads per block of the phash kernel (one block per image)
PHASH_THREADS = 256
#: query rows per block of hamming_range, and b codes per shared-memory tile
SEARCH_ROWS = 128
SEARCH_TILE = 2048
#: most blocks of the grid-stride kernels
MAX_BLOCKS = 65535
#: first-pass rows (or columns) the phash kernel holds at a time
CHUNK = 8
#: check every launch's argument types against kernels/signatures.py (tests turn it on)
CHECK_SIGNATURES = os.environ.get("GPUDEDUP_CHECK_SIGNATURES", "0") not in ("", "0")

# shared-array sizes of the phash kernel: numba's CUDA typing takes a module-level int as a
# compile-time constant, but not a product of them written inside the kernel
_THUMB_AREA = THUMB * THUMB
_CHUNK_AREA = CHUNK * THUMB
_WORK_AREA = BLOCK * THUMB
_COEF_AREA = BLOCK * BLOCK
#: the plain block and the sign-flipped blocks of dihedral codes 1-3, one after the other
_SIGN_BLOCKS = 4
_COEFS_AREA = _SIGN_BLOCKS * _COEF_AREA
_MIDDLE_AREA = 2 * _SIGN_BLOCKS
#: phash_images: at most PHASH_THREADS threads a block, and registers for 3 such blocks per SM
#: (sm_90: 80 a thread, as before the variant hashes, which would make ptxas take 86 and fit
#: 2); no spills (tests/cuda_compile). The simulator's jit takes no launch bounds.
_PHASH_JIT = {} if config.ENABLE_CUDASIM else {"launch_bounds": (PHASH_THREADS, 3)}


# ---------------------------------------------------------------------------------- digest


@cuda.jit
def digest_rows(words, nbytes, seed, out):
    """Twin of cpu.digest_rows: one thread per image."""
    start = cuda.grid(1)
    for i in range(start, words.shape[0], cuda.gridsize(1)):
        h1, h2 = murmur3_x64_128(words[i], nbytes, seed)
        out[i, 0] = h1
        out[i, 1] = h2


# ------------------------------------------------------------------------------- phash


@cuda.jit
def linear_scales(images, out_scale, out_bad):
    """Twin of cpu.linear_scales: one thread per image."""
    start = cuda.grid(1)
    for i in range(start, images.shape[0], cuda.gridsize(1)):
        peak = 0.0
        bad = 0
        for y in range(images.shape[1]):
            for x in range(images.shape[2]):
                v = abs(float64(images[i, y, x]))
                if math.isinf(v) or math.isnan(v):
                    bad = 1
                elif v > peak:
                    peak = v
        out_bad[i] = bad
        pow2_scales(0.0 if bad else peak, out_scale[i])


@cuda.jit
def luma_images(rgb, out):
    """Twin of cpu.luma_images: one thread per pixel."""
    n, height, width = out.shape
    start = cuda.grid(1)
    for idx in range(start, n * height * width, cuda.gridsize(1)):
        i = idx // (height * width)
        rest = idx - i * height * width
        y = rest // width
        x = rest - y * width
        acc = (np.int32(rgb[i, y, x, 0]) * 19595 + np.int32(rgb[i, y, x, 1]) * 38470
               + np.int32(rgb[i, y, x, 2]) * 7471 + 0x8000)
        out[i, y, x] = np.uint8(acc >> 16)


@cuda.jit(device=True)
def _finish(value, clip):
    # Pillow's rounding shift (value already holds the 2**21 offset), clipped when asked
    v = math.floor(value * RESAMPLE_INV)
    if clip:
        v = min(max(v, 0.0), 255.0)
    return v


@cuda.jit(device=True)
def _pixel(img, y, x, scale_1, scale_2):
    # NaN and inf become 0 so the kernel finishes; the driver raises on them (linear_scales)
    v = float64(img[y, x]) * scale_1 * scale_2
    if math.isinf(v) or math.isnan(v):
        return 0.0
    return math.floor(v + 0.5)


@cuda.jit(**_PHASH_JIT)
def phash_images(images, scales, h_starts, h_weights, v_starts, v_weights, vertical_first,
                 clip, basis1, basis2t, dct_shift, out, out_variants):
    """Twin of cpu.phash_images: one thread block per image, fused resize + DCT + bits.

    The first pass runs CHUNK rows (horizontal first) or columns (vertical first) at a time
    into shared memory; each chunk is added at once into the 32x32 accumulators of the second
    pass. Every sum is an exact integer in float64 (int64 for the last DCT pass), so the order
    of accumulation cannot change a bit. With out_variants (N, 8), the sign-flipped blocks of
    dihedral codes 1-3 go beside the plain one, a thread per median and per block hash; codes
    4-7 are their bit transposes (see _common).
    """
    thumb = cuda.shared.array(_THUMB_AREA, float64)
    chunk = cuda.shared.array(_CHUNK_AREA, float64)
    work = cuda.shared.array(_WORK_AREA, float64)
    coef = cuda.shared.array(_COEFS_AREA, int64)
    middle = cuda.shared.array(_MIDDLE_AREA, int64)
    nblocks = _SIGN_BLOCKS if out_variants.shape[1] != 0 else 1
    tid = cuda.threadIdx.x
    nthreads = cuda.blockDim.x
    height = images.shape[1]
    width = images.shape[2]
    half = RESAMPLE_HALF
    for i in range(cuda.blockIdx.x, images.shape[0], cuda.gridDim.x):
        img = images[i]
        scale_1 = scales[i, 0]
        scale_2 = scales[i, 1]
        for t in range(tid, THUMB * THUMB, nthreads):
            thumb[t] = half
        cuda.syncthreads()
        # first pass: line `line` of the intermediate is an image row resized horizontally
        # (horizontal first) or an image column resized vertically (vertical first)
        lines = width if vertical_first else height
        for line0 in range(0, lines, CHUNK):
            for t in range(tid, CHUNK * THUMB, nthreads):
                line = line0 + t // THUMB
                o = t % THUMB
                if line < lines:
                    acc = half
                    if vertical_first:
                        s0 = v_starts[o]
                        for k in range(min(v_weights.shape[1], height - s0)):
                            acc += v_weights[o, k] * _pixel(img, s0 + k, line, scale_1, scale_2)
                    else:
                        s0 = h_starts[o]
                        for k in range(min(h_weights.shape[1], width - s0)):
                            acc += h_weights[o, k] * _pixel(img, line, s0 + k, scale_1, scale_2)
                    chunk[t] = _finish(acc, clip)
            cuda.syncthreads()
            # second pass: add this chunk's lines into thumb[oy, ox]
            for t in range(tid, THUMB * THUMB, nthreads):
                oy = t // THUMB
                ox = t % THUMB
                out_idx = ox if vertical_first else oy
                mine = oy if vertical_first else ox
                s0 = h_starts[out_idx] if vertical_first else v_starts[out_idx]
                ntaps = h_weights.shape[1] if vertical_first else v_weights.shape[1]
                total = thumb[t]
                for cc in range(CHUNK):
                    line = line0 + cc
                    k = line - s0
                    if line < lines and 0 <= k < ntaps:
                        w = h_weights[out_idx, k] if vertical_first else v_weights[out_idx, k]
                        total += w * chunk[cc * THUMB + mine]
                thumb[t] = total
            cuda.syncthreads()
        for t in range(tid, THUMB * THUMB, nthreads):
            thumb[t] = _finish(thumb[t], clip)
        cuda.syncthreads()
        # DCT pass 1 (vertical), exact in float64, then the shift of linear images
        for t in range(tid, BLOCK * THUMB, nthreads):
            u = t // THUMB
            x = t % THUMB
            acc = 0.0
            for y in range(THUMB):
                acc += basis1[u, y] * thumb[y * THUMB + x]
            work[t] = round_shift(acc, dct_shift)
        cuda.syncthreads()
        # DCT pass 2 (horizontal) in int64: products reach 2**56, sums 2**61
        for t in range(tid, BLOCK * BLOCK, nthreads):
            u = t // BLOCK
            v = t % BLOCK
            total = int64(0)
            for x in range(THUMB):
                total += int64(work[u * THUMB + x]) * int64(basis2t[x, v])
            coef[t] = total
        cuda.syncthreads()
        if nblocks > 1:
            for t in range(tid, (_SIGN_BLOCKS - 1) * _COEF_AREA, nthreads):
                coef[_COEF_AREA + t] = flipped_value(coef, BLOCK, 1 + t // _COEF_AREA,
                                                     t % _COEF_AREA)
            cuda.syncthreads()
        # the two middle values of each block, one thread each
        for job in range(tid, 2 * nblocks, nthreads):
            blk = job // 2
            middle[job] = kth_smallest(coef[blk * _COEF_AREA:(blk + 1) * _COEF_AREA],
                                       _COEF_AREA // 2 - 1 + job % 2)
        cuda.syncthreads()
        for blk in range(tid, nblocks, nthreads):
            h = pack_above_median(coef[blk * _COEF_AREA:(blk + 1) * _COEF_AREA],
                                  middle[2 * blk] + middle[2 * blk + 1])
            if blk == 0:
                out[i] = h
            if nblocks > 1:
                out_variants[i, blk] = h
                out_variants[i, blk + 4] = transpose_bits8(h)
        cuda.syncthreads()


# ------------------------------------------------------------------------------ search


@cuda.jit
def hamming_range(a, b, threshold, self_join, block_starts, block_rows, counts, out_i, out_j,
                  out_d):
    """Twin of cpu.hamming_range: a thread per query row, b in shared-memory tiles.

    Grid (column tiles, row groups); the row groups stride over the rows, so a grid capped at
    MAX_BLOCKS still covers them all. Matches go through an atomic counter per output block
    into that block's row of out_*; counts above the capacity make the driver grow and rerun.
    """
    tile = cuda.shared.array(0, uint64)
    ntile = tile.shape[0]
    col0 = cuda.blockIdx.x * ntile
    for t in range(cuda.threadIdx.x, ntile, cuda.blockDim.x):
        j = col0 + t
        tile[t] = b[j] if j < b.shape[0] else uint64(0)
    cuda.syncthreads()
    # an int64 threshold: popc's uint64 compared with int64 would go through float64
    thr = int64(threshold)
    cap = out_i.shape[1]
    ncols = min(ntile, b.shape[0] - col0)
    start = cuda.blockIdx.y * cuda.blockDim.x + cuda.threadIdx.x
    for local in range(start, counts.shape[0] * block_rows, cuda.gridDim.y * cuda.blockDim.x):
        blk = local // block_rows
        i = block_starts[blk] + local - blk * block_rows
        if i < a.shape[0]:
            ai = a[i]
            first = max(0, i + 1 - col0) if self_join else 0
            for t in range(first, ncols):
                d = int64(cuda.popc(ai ^ tile[t]))
                if d <= thr:
                    slot = cuda.atomic.add(counts, blk, 1)
                    if slot < cap:
                        out_i[blk, slot] = i
                        out_j[blk, slot] = col0 + t
                        out_d[blk, slot] = d


@cuda.jit
def mih_bucket_sort(codes, shift, mask, offsets, order, sorted_codes):
    """Twin of cpu.mih_bucket_sort, run by one thread block: an atomic histogram, a prefix sum,
    and an atomic scatter (the order inside a bucket may differ from the CPU's; the search
    results, sorted by the driver, do not)."""
    tid = cuda.threadIdx.x
    nthreads = cuda.blockDim.x
    nkeys = int64(mask) + 1
    for k in range(tid, nkeys + 1, nthreads):
        offsets[k] = 0
    cuda.syncthreads()
    for idx in range(tid, codes.shape[0], nthreads):
        cuda.atomic.add(offsets, int64((codes[idx] >> shift) & mask) + 1, 1)
    cuda.syncthreads()
    if tid == 0:
        for k in range(nkeys):
            offsets[k + 1] += offsets[k]
    cuda.syncthreads()
    # scatter with offsets[key] as the fill cursor; afterwards offsets[k] holds the end of
    # bucket k, which is where bucket k + 1 starts: shift back by one
    for idx in range(tid, codes.shape[0], nthreads):
        key = int64((codes[idx] >> shift) & mask)
        slot = cuda.atomic.add(offsets, key, 1)
        order[slot] = idx
        sorted_codes[slot] = codes[idx]
    cuda.syncthreads()
    if tid == 0:
        for k in range(nkeys, 0, -1):
            offsets[k] = offsets[k - 1]
        offsets[0] = 0


@cuda.jit
def mih_range(a, threshold, self_join, block_starts, block_rows, shifts, masks, radii, flips,
              nflips, offsets, order, sorted_codes, counts, out_i, out_j, out_d):
    """Twin of cpu.mih_range: one thread per query row (striding over the rows, so a grid
    capped at MAX_BLOCKS covers them all), atomic per-block output counters."""
    # int64 threshold and radii: popc's uint64 compared with int64 would go through float64
    thr = int64(threshold)
    cap = out_i.shape[1]
    for local in range(cuda.grid(1), counts.shape[0] * block_rows, cuda.gridsize(1)):
        blk = local // block_rows
        i = block_starts[blk] + local - blk * block_rows
        if i >= a.shape[0]:
            continue
        ai = a[i]
        for s in range(shifts.shape[0]):
            key = (ai >> shifts[s]) & masks[s]
            for f in range(nflips[s]):
                probe = int64(key ^ flips[s, f])
                for idx in range(offsets[s, probe], offsets[s, probe + 1]):
                    x = ai ^ sorted_codes[s, idx]
                    d = int64(cuda.popc(x))
                    j = int64(order[s, idx])
                    if d > thr or (self_join and j <= i):
                        continue
                    # each pair is reported by the first substring within its radius
                    first = True
                    for t in range(s):
                        if int64(cuda.popc((x >> shifts[t]) & masks[t])) <= int64(radii[t]):
                            first = False
                            break
                    if first:
                        slot = cuda.atomic.add(counts, blk, 1)
                        if slot < cap:
                            out_i[blk, slot] = i
                            out_j[blk, slot] = j
                            out_d[blk, slot] = d


# ------------------------------------------------------------------------ verification


@cuda.jit(device=True)
def _block_sum(img, r, c, s, lo, exponent):
    # the sum of the levels over the s x s block whose top-left pixel is (r, c): exact in int64
    acc = int64(0)
    for y in range(r, r + s):
        for x in range(c, c + s):
            acc += int64(quantise(img[y, x], lo, exponent))
    return acc


@cuda.jit(device=True)
def _shift_bound(a, b, s, gy, gx, ny, nx, dy, dx, scale, lo, exponent):
    # twin of the CPU's bound at one level: b's blocks on the grid at (gy, gx), a's moved by
    # minus the shift, their sums taken directly (the same exact integers)
    s_a = int64(0)
    s_b = int64(0)
    s_aa = int64(0)
    s_bb = int64(0)
    s_ab = int64(0)
    for u in range(ny):
        for v in range(nx):
            va = _block_sum(a, gy - dy + s * u, gx - dx + s * v, s, lo, exponent)
            vb = _block_sum(b, gy + s * u, gx + s * v, s, lo, exponent)
            s_a += va
            s_b += vb
            s_aa += va * va
            s_bb += vb * vb
            s_ab += va * vb
    return block_bound(scale, int64(ny * nx), s_a, s_b, s_aa, s_bb, s_ab)


@cuda.jit
def pair_residuals(images_a, images_b, i, j, max_shift, cut, out_residual, out_shift):
    """Twin of cpu.pair_residuals: one thread per pair, the five sums of each shift taken
    directly over the overlap (no summed-area tables, no scratch). They are exact integers in
    int64, so they equal the CPU's table sums; the float steps are the shared helpers of
    _common, with no multiply feeding an add (nothing for FMA contraction to change). With a
    cut, the block-sum bounds of each shift (the CPU's grids, coarse to fine) come first.
    Simple rather than fast: coalescing and shared-memory tiles are for a session with a GPU.
    """
    height = images_a.shape[1]
    width = images_a.shape[2]
    sy = shift_limit(height, max_shift)
    sx = shift_limit(width, max_shift)
    bits = level_bits(height * width)
    whole = whole_pixels(images_a)  # of one dtype with images_b
    nshifts = (2 * sy + 1) * (2 * sx + 1)
    levels = 0
    if cut >= 0.0 and cut < math.inf:
        while (2 << levels) <= coarsest_block(height - 2 * sy, width - 2 * sx):
            levels += 1
    gy, ny_top = block_grid(sy, height - sy, 1 << levels)
    gx, nx_top = block_grid(sx, width - sx, 1 << levels)
    for p in range(cuda.grid(1), i.shape[0], cuda.gridsize(1)):
        a = images_a[i[p]]
        b = images_b[j[p]]
        lo, hi = pair_range(a, b)
        out_shift[p, 0] = 0
        out_shift[p, 1] = 0
        if not hi > lo:  # both images one constant value
            out_residual[p] = 0.0
            continue
        lo, exponent, levels_range = pair_levels(lo, hi, bits, whole)
        limit = cut_limit(levels_range, cut) if levels else math.inf
        best = -1.0
        for k in range(nshifts):
            dy, dx = shift_of(k, sy, sx)
            y0, y1 = overlap(height, dy)
            x0, x1 = overlap(width, dx)
            n = int64((y1 - y0) * (x1 - x0))
            bounded = False
            lev = levels
            while lev >= 1 and not bounded:
                ny = ny_top << (levels - lev)
                nx = nx_top << (levels - lev)
                scale = bound_scale(int64(ny * nx), n, int64(1 << lev))
                bounded = _shift_bound(a, b, 1 << lev, gy, gx, ny, nx, dy, dx, scale, lo,
                                       exponent) >= limit
                lev -= 1
            if bounded:
                continue
            s_a = int64(0)
            s_b = int64(0)
            s_aa = int64(0)
            s_bb = int64(0)
            s_ab = int64(0)
            for y in range(y0, y1):
                for x in range(x0, x1):
                    qa = int64(quantise(a[y, x], lo, exponent))
                    qb = int64(quantise(b[y + dy, x + dx], lo, exponent))
                    s_a += qa
                    s_b += qb
                    s_aa += qa * qa
                    s_bb += qb * qb
                    s_ab += qa * qb
            mse = fit_mse(n, s_a, s_b, s_aa, s_bb, s_ab)
            if best < 0.0 or mse < best:
                best = mse
                out_shift[p, 0] = dy
                out_shift[p, 1] = dx
        if best < 0.0 or beyond_cut(best, levels_range, cut):
            out_residual[p] = math.inf
            out_shift[p, 0] = 0
            out_shift[p, 1] = 0
        else:
            out_residual[p] = residual_of(best, levels_range)


# ------------------------------------------------------------------------------ launch


def _blocks(items: int, threads: int) -> int:
    return max(1, min(MAX_BLOCKS, -(-items // threads)))


def _per_item(items, args):
    return _blocks(items, THREADS), THREADS, 0


def _per_image_block(items, args):
    return max(1, min(MAX_BLOCKS, items)), PHASH_THREADS, 0


def _search_tiles(items, args):
    b = args[1]
    tile = max(1, min(SEARCH_TILE, b.shape[0]))
    return ((-(-b.shape[0] // tile), _blocks(items, SEARCH_ROWS)), SEARCH_ROWS,
            tile * np.dtype(np.uint64).itemsize)


def _one_block(items, args):
    return 1, max(THREADS, 32), 0


_GEOMETRY = {
    "digest_rows": _per_item,
    "linear_scales": _per_item,
    "luma_images": _per_item,
    "phash_images": _per_image_block,
    "hamming_range": _search_tiles,
    "mih_bucket_sort": _one_block,
    "mih_range": _per_item,
    "pair_residuals": _per_item,
}

_streams: dict[int, object] = {}


def _stream_of(args):
    # CuPy arrays: launch on CuPy's current stream so kernels order with CuPy's own work
    for arg in args:
        if type(arg).__module__.split(".")[0] == "cupy":
            import cupy

            ptr = cupy.cuda.get_current_stream().ptr
            if ptr not in _streams:
                _streams[ptr] = cuda.external_stream(ptr)
            return _streams[ptr]
    return 0


def _device_of(args) -> int | None:
    # the GPU a CuPy argument lives on (None: no CuPy argument, or one without a device)
    for arg in args:
        if type(arg).__module__.split(".")[0] == "cupy":
            device = getattr(arg, "device", None)
            if device is not None:
                return int(device.id)
    return None


def launch(kernel, name: str, items: int, *args) -> None:
    """Launch ``kernel`` (named ``name``) over ``items`` work items with its geometry, on the
    GPU its CuPy arguments live on (numba's current device is its own, not CuPy's)."""
    if CHECK_SIGNATURES:
        check_signature(name, args)
    grid, block, shared = _GEOMETRY[name](items, args)
    device = _device_of(args)
    if device is None:
        kernel[grid, block, _stream_of(args), shared](*args)
        return
    with cuda.gpus[device]:  # pushes that device's context (a no-op switch when current)
        kernel[grid, block, _stream_of(args), shared](*args)
