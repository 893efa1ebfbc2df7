"""gpudedup benchmarks: perceptual-hash throughput and Hamming range search, beside their peers.

Run from the repository root::

    python -m bench                   # full run, writes bench/results/cpu.json
    python -m bench --quick           # smoke run (< 1 min), writes bench/results/cpu-quick.json
    python -m bench --repeat 5 --out /tmp/b.json

Every figure is a median of repeats, and every gpudedup figure stands beside its peers measured
in the same run on the same inputs: on a shared machine only the ratios are meaningful. Methods
are run round-robin (method 1, 2, ..., then the next repeat) so that a change of load during the
run hits all of them alike. See bench/README.md for what is measured and why.

Peers are kept per backend in :data:`PHASH_METHODS` and :data:`SEARCH_METHODS` (dicts keyed by
backend name, each value a factory returning ``{name: Method}``); a new backend adds its entries
there and everything else (timing, checks, table, JSON) follows.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
SCHEMA_VERSION = 1


# ----------------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Sizes:
    """Problem sizes of one run."""

    #: (side, images for the fast methods, images for the per-image peers) per image size
    phash: tuple[tuple[int, int, int], ...]
    #: base images of the range-search codes; each gives ``search_variants`` images
    search_bases: int
    search_variants: int
    thresholds: tuple[int, ...]
    #: seconds the numpy brute force may take per threshold before it is run on a row
    #: subsample and extrapolated
    numpy_budget_s: float

    @property
    def search_n(self) -> int:
        """Codes on each side (A and B) of the range search."""
        return self.search_bases * self.search_variants // 2


FULL = Sizes(
    phash=((28, 200_000, 2_000), (64, 50_000, 1_000), (256, 5_000, 300)),
    search_bases=30_000,
    search_variants=10,
    thresholds=(0, 4, 8),
    numpy_budget_s=180.0,
)
QUICK = Sizes(
    phash=((28, 20_000, 300), (64, 5_000, 150), (256, 500, 40)),
    search_bases=4_000,
    search_variants=10,
    thresholds=(0, 4, 8),
    numpy_budget_s=3.0,
)
#: on a GPU: 1e7 28x28 images hashed from host memory, 1e6 x 1e6 codes searched (issue 3)
FULL_CUDA = Sizes(
    phash=((28, 10_000_000, 2_000), (64, 1_000_000, 1_000), (256, 100_000, 300)),
    search_bases=200_000,
    search_variants=10,
    thresholds=(0, 4, 8),
    numpy_budget_s=120.0,
)
QUICK_CUDA = Sizes(
    phash=((28, 200_000, 300), (64, 20_000, 150), (256, 2_000, 40)),
    search_bases=20_000,
    search_variants=10,
    thresholds=(0, 4, 8),
    numpy_budget_s=3.0,
)
SIZES = {("cpu", False): FULL, ("cpu", True): QUICK, ("cuda", False): FULL_CUDA,
         ("cuda", True): QUICK_CUDA}
#: distinct crops per phash size; bigger stacks repeat them (hashing cost ignores content)
UNIQUE_CROPS = 500_000


def log(message: str) -> None:
    """Progress on stderr, so that stdout carries only the table."""
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- images

#: scikit-image photographs that ship inside the scikit-image wheel (no download needed)
PHOTOS = ("astronaut", "brick", "camera", "cell", "chelsea", "clock", "coffee", "coins",
          "grass", "gravel", "hubble_deep_field", "immunohistochemistry", "moon", "page",
          "retina", "rocket", "text")
#: each photograph is also used downscaled (Pillow LANCZOS) by these factors
PYRAMID_SCALES = (1.0, 0.7, 0.5, 0.35, 0.25)
#: crops whose pixel standard deviation is below this (blank background) are drawn again
MIN_CROP_STD = 10.0


def load_photos() -> dict[str, np.ndarray]:
    """The scikit-image photographs as uint8 grayscale (RGB converted as Pillow's "L")."""
    import skimage.data
    from PIL import Image

    photos = {}
    for name in PHOTOS:
        try:
            img = getattr(skimage.data, name)()
        except Exception as exc:  # noqa: BLE001 - a photograph this install cannot provide
            log(f"  (skipping skimage.data.{name}: {type(exc).__name__})")
            continue
        if img.ndim == 3:
            img = np.asarray(Image.fromarray(np.ascontiguousarray(img[..., :3])).convert("L"))
        photos[name] = np.ascontiguousarray(img, dtype=np.uint8)
    if len(photos) < 5:
        raise RuntimeError("fewer than 5 scikit-image photographs could be loaded")
    return photos


def build_pyramid(photos: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Every photograph at every scale of PYRAMID_SCALES."""
    from PIL import Image

    levels = []
    for img in photos.values():
        h, w = img.shape
        for scale in PYRAMID_SCALES:
            if scale == 1.0:
                levels.append(img)
            else:
                size = (max(1, round(w * scale)), max(1, round(h * scale)))
                levels.append(np.asarray(Image.fromarray(img).resize(size, Image.LANCZOS)))
    return levels


def random_crops(levels: list[np.ndarray], count: int, side: int,
                 rng: np.random.Generator) -> np.ndarray:
    """``count`` random ``side`` x ``side`` crops of the pyramid levels large enough for them.

    Crops that are nearly blank (std < MIN_CROP_STD) are replaced by fresh draws.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    usable = [lvl for lvl in levels if min(lvl.shape) >= side]
    if not usable:
        raise ValueError(f"no photograph is at least {side} px on both sides")
    out = np.empty((count, side, side), dtype=np.uint8)
    todo = np.arange(count)
    for _ in range(50):
        which = rng.integers(len(usable), size=todo.size)
        for k, lvl in enumerate(usable):
            idx = todo[which == k]
            if idx.size == 0:
                continue
            ys = rng.integers(0, lvl.shape[0] - side + 1, idx.size)
            xs = rng.integers(0, lvl.shape[1] - side + 1, idx.size)
            out[idx] = sliding_window_view(lvl, (side, side))[ys, xs]
        std = out[todo].reshape(todo.size, -1).std(axis=1)
        todo = todo[std < MIN_CROP_STD]
        if todo.size == 0:
            break
    return out


# ------------------------------------------------------------------- near-duplicate variants

#: border kept around each base crop so that shifts and blurs see real content
MARGIN = 2


def _center(big: np.ndarray, side: int) -> np.ndarray:
    return big[:, MARGIN:MARGIN + side, MARGIN:MARGIN + side]


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def vary_brightness_contrast(big, side, rng):
    """Contrast x U(0.85, 1.15) about 128, then brightness + U(-15, 15)."""
    n = big.shape[0]
    gain = rng.uniform(0.85, 1.15, (n, 1, 1))
    offset = rng.uniform(-15.0, 15.0, (n, 1, 1))
    return _to_uint8((_center(big, side).astype(np.float64) - 128.0) * gain + 128.0 + offset)


def vary_noise(big, side, rng):
    """Gaussian pixel noise, sigma U(2, 6) grey levels."""
    n = big.shape[0]
    sigma = rng.uniform(2.0, 6.0, (n, 1, 1))
    x = _center(big, side).astype(np.float64)
    return _to_uint8(x + rng.standard_normal(x.shape) * sigma)


_SHIFTS = np.array([(dy, dx) for dy in range(-MARGIN, MARGIN + 1)
                    for dx in range(-MARGIN, MARGIN + 1) if (dy, dx) != (0, 0)])


def vary_shift(big, side, rng):
    """Translation by (dy, dx) in [-2, 2]^2 minus (0, 0): the window moves over the photo."""
    n = big.shape[0]
    dy, dx = _SHIFTS[rng.integers(len(_SHIFTS), size=n)].T
    rows = MARGIN + dy[:, None] + np.arange(side)
    cols = MARGIN + dx[:, None] + np.arange(side)
    return big[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def vary_blur(big, side, rng):
    """Gaussian blur, sigma one of 0.6, 0.8, 1.0 px."""
    from scipy.ndimage import gaussian_filter

    n = big.shape[0]
    sigma = rng.choice((0.6, 0.8, 1.0), size=n)
    out = np.empty((n, side, side), dtype=np.uint8)
    for s in np.unique(sigma):
        idx = np.flatnonzero(sigma == s)
        blurred = gaussian_filter(big[idx].astype(np.float64), (0, s, s), mode="nearest")
        out[idx] = _to_uint8(_center(blurred, side))
    return out


def vary_jpeg(big, side, rng):
    """A real JPEG round trip through Pillow, quality U{50..90}."""
    from PIL import Image

    src = np.ascontiguousarray(_center(big, side))
    quality = rng.integers(50, 91, size=src.shape[0])
    out = np.empty_like(src)
    for k in range(src.shape[0]):
        buf = io.BytesIO()
        Image.fromarray(src[k]).save(buf, format="JPEG", quality=int(quality[k]))
        buf.seek(0)
        out[k] = np.asarray(Image.open(buf).convert("L"))
    return out


VARIANTS: dict[str, Callable] = {
    "brightness_contrast": vary_brightness_contrast,
    "noise": vary_noise,
    "shift": vary_shift,
    "blur": vary_blur,
    "jpeg": vary_jpeg,
}
#: side lengths of the range-search base images (one drawn per base)
CODE_SIDES = (32, 40, 48, 56, 64)


def make_codes(levels, sizes: Sizes, rng: np.random.Generator):
    """Phash codes with planted near duplicates, split into A and B (see bench/README.md).

    Returns ``(a, b, (base_a, base_b), info)``: two uint64 arrays of ``sizes.search_n`` codes,
    the base image each code was made from, and a description.
    """
    import gpudedup as gd

    n_bases, n_var = sizes.search_bases, sizes.search_variants
    kinds = list(VARIANTS)
    side_of = rng.choice(CODE_SIDES, size=n_bases)
    codes = np.empty((n_bases, n_var), dtype=np.uint64)
    kind_of = np.full((n_bases, n_var), -1, dtype=np.int64)
    for side in CODE_SIDES:
        bases = np.flatnonzero(side_of == side)
        if bases.size == 0:
            continue
        big = random_crops(levels, bases.size, side + 2 * MARGIN, rng)
        imgs = np.empty((bases.size, n_var, side, side), dtype=np.uint8)
        imgs[:, 0] = _center(big, side)
        kind = rng.integers(len(kinds), size=(bases.size, n_var - 1))
        for v in range(1, n_var):
            for k, name in enumerate(kinds):
                idx = np.flatnonzero(kind[:, v - 1] == k)
                if idx.size:
                    imgs[idx, v] = VARIANTS[name](big[idx], side, rng)
        flat = gd.phash(imgs.reshape(-1, side, side), backend="cpu")
        codes[bases] = flat.reshape(bases.size, n_var)
        kind_of[bases, 1:] = kind
    # how far each variant's code is from its base's code, per transform
    dist = np.bitwise_count(codes[:, 1:] ^ codes[:, :1])
    per_kind = {}
    for k, name in enumerate(kinds):
        d = dist[kind_of[:, 1:] == k]
        per_kind[name] = {"count": int(d.size), "mean_distance": round(float(d.mean()), 2),
                          **{f"within_{r}": round(float((d <= r).mean()), 4)
                             for r in sizes.thresholds}}
    all_codes = codes.ravel()
    base_ids = np.repeat(np.arange(n_bases), n_var)
    perm = rng.permutation(all_codes.size)
    half = sizes.search_n
    a = np.ascontiguousarray(all_codes[perm[:half]])
    b = np.ascontiguousarray(all_codes[perm[half:2 * half]])
    base_a, base_b = base_ids[perm[:half]], base_ids[perm[half:2 * half]]
    same_base_max = int(np.sum(np.bincount(base_a, minlength=n_bases)
                               * np.bincount(base_b, minlength=n_bases)))
    info = {
        "bases": n_bases,
        "variants_per_base": n_var,
        "sides": list(CODE_SIDES),
        "transforms": kinds,
        "distinct_codes": int(np.unique(all_codes).size),
        "total_codes": int(all_codes.size),
        "variant_distance_to_base": per_kind,
        "same_base_pairs_between_a_and_b": same_base_max,
    }
    return a, b, (base_a, base_b), info


# --------------------------------------------------------------------------------- methods


def _identity(raw):
    return raw


@dataclass
class Method:
    """One way of computing a benchmarked result.

    ``run`` is the timed call. ``result`` (untimed) turns its return value into the common form
    used for the correctness checks: uint64 codes for phash, sorted ``(i, j, d)`` for search.
    ``prepare`` (untimed, once per input) puts the input where the method starts from, e.g. in
    device memory. ``per_image`` marks slow per-image phash peers, timed on a subsample.
    ``budgeted`` marks a search peer that may run on a row subsample and be extrapolated when it
    is too slow. ``floor`` marks a hardware floor (a copy, a popcount sweep): timed like the
    others, not checked, and every other figure is also given as a multiple of it.
    """

    name: str
    run: Callable
    result: Callable = _identity
    gpudedup: bool = False
    reference: bool = False
    per_image: bool = False
    budgeted: bool = False
    floor: bool = False
    prepare: Callable = _identity
    note: str = ""
    extra: dict = field(default_factory=dict)


def _phash_methods_cpu() -> dict[str, Method]:
    import imagehash
    from PIL import Image

    import gpudedup as gd

    def imagehash_loop(images):
        return [imagehash.phash(Image.fromarray(img)) for img in images]

    def imagehash_codes(hashes):
        return np.array([int(str(h), 16) for h in hashes], dtype=np.uint64)

    return {
        "gpudedup phash (cpu)": Method(
            "gpudedup phash (cpu)", lambda images: gd.phash(images, backend="cpu"),
            gpudedup=True, note="gd.phash(images, backend='cpu') on the whole stack"),
        "imagehash.phash": Method(
            "imagehash.phash", imagehash_loop, imagehash_codes, reference=True, per_image=True,
            note="imagehash.phash(PIL.Image.fromarray(img)) in a Python loop, one image at a "
                 "time"),
    }


def _sorted_pairs(i, j, d):
    order = np.lexsort((j, i))
    return (np.asarray(i, np.int64)[order], np.asarray(j, np.int64)[order],
            np.asarray(d, np.uint8)[order])


def faiss_range_search(a: np.ndarray, b: np.ndarray, threshold: int):
    """faiss IndexBinaryFlat over B, range search with A; faiss's radius is strict (<)."""
    import faiss

    index = faiss.IndexBinaryFlat(64)
    index.add(b.view(np.uint8).reshape(-1, 8))
    return index.range_search(a.view(np.uint8).reshape(-1, 8), threshold + 1)


def _faiss_pairs(raw):
    lims, dist, ids = raw
    i = np.repeat(np.arange(lims.size - 1, dtype=np.int64), np.diff(lims.astype(np.int64)))
    return _sorted_pairs(i, ids, dist)


#: query rows per numpy block: 64 x N uint64 temporaries (77 MB at N = 150k)
NUMPY_BLOCK = 64


def numpy_range_search(a: np.ndarray, b: np.ndarray, threshold: int):
    """Row blocks of ``np.bitwise_count(a[blk, None] ^ b[None, :]) <= threshold``.

    Written as a careful numpy user would: preallocated temporaries (``out=``) and blocks small
    enough to stay in cache-friendly sizes. Returns pairs in (i, j) order.
    """
    m = b.shape[0]
    xor = np.empty((NUMPY_BLOCK, m), dtype=np.uint64)
    bits = np.empty((NUMPY_BLOCK, m), dtype=np.uint8)
    hit = np.empty((NUMPY_BLOCK, m), dtype=bool)
    parts_i, parts_j, parts_d = [], [], []
    for lo in range(0, a.shape[0], NUMPY_BLOCK):
        k = min(NUMPY_BLOCK, a.shape[0] - lo)
        np.bitwise_xor(a[lo:lo + k, None], b[None, :], out=xor[:k])
        np.bitwise_count(xor[:k], out=bits[:k])
        np.less_equal(bits[:k], threshold, out=hit[:k])
        ii, jj = np.nonzero(hit[:k])
        parts_i.append(ii + lo)
        parts_j.append(jj)
        parts_d.append(bits[ii, jj])
    if not parts_i:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.uint8)
    return (np.concatenate(parts_i).astype(np.int64), np.concatenate(parts_j).astype(np.int64),
            np.concatenate(parts_d))


def _search_methods_cpu() -> dict[str, Method]:
    import gpudedup as gd
    from gpudedup import backend as backends
    from gpudedup import search

    be = backends.resolve("cpu")
    methods = {}
    for strategy in ("auto", "brute", "mih"):
        name = f"gpudedup hamming_pairs {strategy}"
        methods[name] = Method(
            name,
            lambda a, b, r, s=strategy: search.hamming_pairs(a, b, r, be=be, strategy=s),
            gpudedup=True,
            note=f"gpudedup.search.hamming_pairs(a, b, r, be=resolve('cpu'), "
                 f"strategy={strategy!r})",
            extra={"strategy": strategy})
    methods["gpudedup find_overlaps"] = Method(
        "gpudedup find_overlaps",
        lambda a, b, r: gd.find_overlaps(gd.HashSet.from_phash(a), gd.HashSet.from_phash(b),
                                         threshold=r, backend="cpu"),
        lambda ov: (ov.left, ov.right, ov.distance),
        gpudedup=True,
        note="gd.find_overlaps(HashSet.from_phash(a), HashSet.from_phash(b), threshold=r, "
             "backend='cpu')")
    methods["faiss IndexBinaryFlat"] = Method(
        "faiss IndexBinaryFlat", faiss_range_search, _faiss_pairs, reference=True,
        note="faiss.IndexBinaryFlat(64); add(B); range_search(A, r + 1) (index build timed)")
    methods["numpy brute force"] = Method(
        "numpy brute force", numpy_range_search, budgeted=True,
        note=f"np.bitwise_count(a[blk, None] ^ b[None, :]) <= r in blocks of {NUMPY_BLOCK} "
             "rows, np.nonzero per block (single-threaded)")
    return methods


# ------------------------------------------------------------------------------ cuda peers
#
# Only a CUDA machine runs these (python -m bench --backend cuda). Every GPU call ends with the
# device synchronised: gpudedup returns host arrays; the peers synchronise explicitly.

#: popcount floor: every pair's popcount counted, nothing written (one thread per row of A)
_COUNT_PAIRS = r"""
extern "C" __global__ void count_pairs(const unsigned long long* a,
        const unsigned long long* b, long long n, long long m, int r,
        unsigned long long* total) {
    __shared__ unsigned long long tile[1024];
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    unsigned long long ai = i < n ? a[i] : 0ull, count = 0;
    for (long long j0 = 0; j0 < m; j0 += 1024) {
        __syncthreads();
        for (int t = threadIdx.x; t < 1024; t += blockDim.x)
            tile[t] = j0 + t < m ? b[j0 + t] : 0ull;
        __syncthreads();
        long long width = m - j0 < 1024 ? m - j0 : 1024;
        for (int t = 0; t < width; ++t) count += __popcll(ai ^ tile[t]) <= r;
    }
    if (i < n) atomicAdd(total, count);
}
"""
#: query rows per block of the CuPy brute force (256 x N uint8 distances at a time)
CUPY_BLOCK = 256
#: neighbours asked of faiss GPU's k-NN (it has no binary range search)
FAISS_GPU_K = 64


def _synchronize():
    import cupy

    cupy.cuda.runtime.deviceSynchronize()


def _pinned_copy(images: np.ndarray):
    # untimed: the images in pinned host memory, and a device buffer to copy them into
    import cupy

    memory = cupy.cuda.alloc_pinned_memory(max(images.nbytes, 1))
    pinned = np.frombuffer(memory, images.dtype, images.size).reshape(images.shape)
    pinned[...] = images
    return pinned, cupy.empty(images.shape, images.dtype)


def _h2d(prepared):
    pinned, device = prepared
    device.set(pinned)
    _synchronize()
    return device.shape[0]


def _to_device(images):
    import cupy

    return cupy.asarray(images)


def _phash_methods_cuda() -> dict[str, Method]:
    import gpudedup as gd

    methods = _phash_methods_cpu()
    methods["gpudedup phash (cuda, host memory)"] = Method(
        "gpudedup phash (cuda, host memory)", lambda images: gd.phash(images, backend="cuda"),
        gpudedup=True, note="gd.phash(numpy images, backend='cuda'): pinned staging, two "
                            "streams, fused kernel; includes every transfer")
    methods["gpudedup phash (cuda, device memory)"] = Method(
        "gpudedup phash (cuda, device memory)", lambda images: gd.phash(images, backend="cuda"),
        gpudedup=True, prepare=_to_device,
        note="gd.phash(cupy images, backend='cuda'): images already on the device")
    methods["floor: host-to-device copy"] = Method(
        "floor: host-to-device copy", _h2d, floor=True, prepare=_pinned_copy,
        result=lambda n: None,
        note="the same images copied from pinned host memory to the device, nothing else")
    return methods


def cupy_range_search(a, b, threshold: int):
    """CuPy brute force as a CuPy user writes it: popcount of a block of rows against all of B,
    then ``nonzero``; pairs come back to the host in (i, j) order."""
    import cupy

    popcount = cupy.ElementwiseKernel("uint64 x, uint64 y", "uint8 d", "d = __popcll(x ^ y)",
                                      "gpudedup_bench_popcount")
    da, db = cupy.asarray(a), cupy.asarray(b)
    parts = ([], [], [])
    for lo in range(0, da.size, CUPY_BLOCK):
        d = popcount(da[lo:lo + CUPY_BLOCK, None], db[None, :])
        ii, jj = cupy.nonzero(d <= threshold)
        for part, x in zip(parts, (ii + lo, jj, d[ii, jj])):
            part.append(x)
    i, j, dist = (cupy.concatenate(p).get() for p in parts)
    return i.astype(np.int64), j.astype(np.int64), dist


def popcount_floor(a, b, threshold: int) -> int:
    """Pairs within ``threshold`` counted by a trivial popcount kernel: the rate floor."""
    import cupy

    kernel = cupy.RawKernel(_COUNT_PAIRS, "count_pairs")
    da, db = cupy.asarray(a), cupy.asarray(b)
    total = cupy.zeros(1, dtype=cupy.uint64)
    threads = 256
    kernel((-(-da.size // threads),), (threads,),
           (da, db, np.int64(da.size), np.int64(db.size), np.int32(threshold), total))
    return int(total.get()[0])


def faiss_gpu_knn(a, b, threshold: int):
    """faiss GpuIndexBinaryFlat k-NN (no binary range search on the GPU), filtered to r."""
    import faiss

    index = faiss.GpuIndexBinaryFlat(faiss.StandardGpuResources(), 64)
    index.add(b.view(np.uint8).reshape(-1, 8))
    dist, ids = index.search(a.view(np.uint8).reshape(-1, 8), FAISS_GPU_K)
    keep = (dist <= threshold) & (ids >= 0)
    i = np.nonzero(keep)[0]
    return _sorted_pairs(i, ids[keep], dist[keep])


def _search_methods_cuda() -> dict[str, Method]:
    import faiss

    import gpudedup as gd
    from gpudedup import backend as backends
    from gpudedup import search

    be = backends.resolve("cuda")
    methods = {}
    for strategy in ("auto", "brute", "mih"):
        name = f"gpudedup hamming_pairs {strategy} (cuda)"
        methods[name] = Method(
            name, lambda a, b, r, s=strategy: search.hamming_pairs(a, b, r, be=be, strategy=s),
            gpudedup=True, extra={"strategy": strategy},
            note=f"hamming_pairs(a, b, r, be=resolve('cuda'), strategy={strategy!r})")
    methods["gpudedup find_overlaps (cuda)"] = Method(
        "gpudedup find_overlaps (cuda)",
        lambda a, b, r: gd.find_overlaps(gd.HashSet.from_phash(a), gd.HashSet.from_phash(b),
                                         threshold=r, backend="cuda"),
        lambda ov: (ov.left, ov.right, ov.distance), gpudedup=True)
    methods["CuPy brute force"] = Method(
        "CuPy brute force", cupy_range_search, reference=True,
        note=f"ElementwiseKernel __popcll over blocks of {CUPY_BLOCK} rows, cupy.nonzero")
    methods["floor: popcount kernel"] = Method(
        "floor: popcount kernel", popcount_floor, floor=True,
        note="one thread per row, B in shared-memory tiles, popcount and compare, one atomic "
             "add per thread: the pair rate with nothing written")
    if hasattr(faiss, "GpuIndexBinaryFlat"):
        methods["faiss GPU k-NN"] = Method(
            "faiss GPU k-NN", faiss_gpu_knn,
            note=f"GpuIndexBinaryFlat k-NN with k={FAISS_GPU_K} filtered to r: not a range "
                 f"search, so rows with more than {FAISS_GPU_K} pairs lose some")
    methods["faiss IndexBinaryFlat (cpu)"] = Method(
        "faiss IndexBinaryFlat (cpu)", faiss_range_search, _faiss_pairs, budgeted=True,
        note="the CPU reference of the cpu benchmark, on the host's cores")
    return methods


#: per backend: factories of the phash methods (gpudedup and its peers)
PHASH_METHODS: dict[str, Callable[[], dict[str, Method]]] = {
    "cpu": _phash_methods_cpu,
    "cuda": _phash_methods_cuda,
}
#: per backend: factories of the range-search methods (gpudedup and its peers)
SEARCH_METHODS: dict[str, Callable[[], dict[str, Method]]] = {
    "cpu": _search_methods_cpu,
    "cuda": _search_methods_cuda,
}


# ---------------------------------------------------------------------------------- timing


def timed(fn: Callable, *args):
    """``(seconds, result)`` of one call, perf_counter around the call only."""
    gc.collect()
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def _summary(seconds: list[float]) -> dict:
    return {"seconds": statistics.median(seconds), "seconds_all": [round(s, 6) for s in seconds],
            "repeats": len(seconds)}


def bench_phash(methods: dict[str, Method], levels, sizes: Sizes, repeat: int,
                rng: np.random.Generator) -> list[dict]:
    """Throughput of every phash method per image size, and bit-identity with the reference."""
    ref = next(m for m in methods.values() if m.reference)
    rows = []
    for side, n_all, n_sub in sizes.phash:
        images = random_crops(levels, min(n_all, UNIQUE_CROPS), side, rng)
        if n_all > images.shape[0]:  # hashing cost does not depend on content: repeat crops
            images = np.resize(images, (n_all, side, side))
        for m in methods.values():  # warm-up: numba compilation, imports, first calls
            m.run(m.prepare(images[:4]))
        inputs = {name: m.prepare(images[:n_sub] if m.per_image else images)
                  for name, m in methods.items()}
        times = {name: [] for name in methods}
        results = {}
        for rep in range(repeat):
            for name, m in methods.items():
                sec, out = timed(m.run, inputs[name])
                times[name].append(sec)
                if rep == 0:
                    results[name] = m.result(out)
            log(f"  phash {side}x{side} repeat {rep + 1}/{repeat}: "
                + ", ".join(f"{n} {times[n][-1]:.3f}s" for n in methods))
        ref_codes = results[ref.name]
        ref_rate = len(inputs[ref.name]) / statistics.median(times[ref.name])
        floor_rate = _floor_rate(methods, inputs, times)
        entry = {"side": side, "methods": {}}
        for name, m in methods.items():
            count = len(inputs[name])
            rec = {"images": count, **_summary(times[name]), "note": m.note}
            rec["images_per_s"] = count / rec["seconds"]
            rec["ratio_vs_reference"] = rec["images_per_s"] / ref_rate
            if floor_rate is not None:
                rec["times_floor"] = floor_rate / rec["images_per_s"]
            if not m.reference and not m.floor:
                n = min(count, ref_codes.size)
                same = results[name][:n] == ref_codes[:n]
                rec["compared"] = int(n)
                rec["mismatches"] = int(n - same.sum())
                rec["bit_identical"] = bool(same.all())
            entry["methods"][name] = rec
        entry["reference"] = ref.name
        rows.append(entry)
    return rows


def _floor_rate(methods: dict[str, Method], inputs: dict, times: dict) -> float | None:
    # items per second of the floor method, if this backend measures one
    for name, m in methods.items():
        if m.floor:
            return len(inputs[name]) / statistics.median(times[name])
    return None


def _same(pairs, ref) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(pairs, ref, strict=True))


def _plan_budgeted(m: Method, a, b, sizes: Sizes, repeat: int) -> dict:
    """How to run a slow peer: in full with some repeats, or on leading rows and extrapolated."""
    probe = min(a.size, 1024)
    sec, _ = timed(m.run, a[:probe], b, max(sizes.thresholds))
    estimate = sec * a.size / probe
    budget = sizes.numpy_budget_s
    if estimate <= budget:
        return {"rows": int(a.size), "repeats": max(1, min(repeat, int(budget // estimate))),
                "estimate_full_s": estimate}
    rows = max(probe, int(a.size * budget / estimate / repeat) // NUMPY_BLOCK * NUMPY_BLOCK)
    return {"rows": int(min(rows, a.size)), "repeats": repeat, "estimate_full_s": estimate}


def bench_search(methods: dict[str, Method], a: np.ndarray, b: np.ndarray, bases, sizes: Sizes,
                 repeat: int, backend_name: str) -> list[dict]:
    """Range search of every method for every threshold, checked against the reference.

    ``bases`` (the base image of each code of A and of B) only splits the reference's pairs into
    planted near duplicates (same base) and chance matches (different bases), for the record.
    """
    from gpudedup import backend as backends
    from gpudedup import search

    be = backends.resolve(backend_name)
    ref = next(m for m in methods.values() if m.reference)
    for m in methods.values():  # warm-up: numba compilation, imports, thread pools
        m.run(a[:2000], b[:2000], max(sizes.thresholds))
    plans = {}
    for name, m in methods.items():
        if m.budgeted:
            plans[name] = _plan_budgeted(m, a, b, sizes, repeat)
            p = plans[name]
            log(f"  {name}: full run estimated {p['estimate_full_s']:.0f}s per threshold -> "
                f"{p['rows']} rows x {p['repeats']} repeat(s)")
    pairs_total = a.size * b.size
    rows_out = []
    for r in sizes.thresholds:
        times = {name: [] for name in methods}
        results, counts = {}, {name: [] for name in methods}
        for rep in range(repeat):
            for name, m in methods.items():
                plan = plans.get(name)
                if plan is not None and rep >= plan["repeats"]:
                    continue
                qa = a if plan is None else a[:plan["rows"]]
                sec, out = timed(m.run, qa, b, r)
                times[name].append(sec)
                res = m.result(out)
                counts[name].append(int(res) if m.floor else int(res[0].size))
                if rep == 0:
                    results[name] = res
                del out, res
            log(f"  search r={r} repeat {rep + 1}/{repeat}: "
                + ", ".join(f"{n} {times[n][-1]:.2f}s" for n in methods
                            if len(times[n]) == rep + 1))
        ref_pairs = results[ref.name]
        ref_rate = pairs_total / statistics.median(times[ref.name])
        floor_name = next((n for n, m in methods.items() if m.floor), None)
        floor_rate = (pairs_total / statistics.median(times[floor_name])
                      if floor_name else None)
        chosen = search.plan_search(a, b, r, "auto", be)
        same_base = bases[0][ref_pairs[0]] == bases[1][ref_pairs[1]]
        entry = {"threshold": r, "reference": ref.name,
                 "auto_plan": {"strategy": chosen.strategy, "substrings": chosen.substrings},
                 "pairs_same_base": int(same_base.sum()),
                 "pairs_different_base": int(same_base.size - same_base.sum()),
                 "methods": {}}
        for name, m in methods.items():
            plan = plans.get(name)
            rows = a.size if plan is None else plan["rows"]
            rec = {**_summary(times[name]), "note": m.note, **m.extra,
                   "counts_all_repeats": counts[name]}
            rec["rows_timed"] = int(rows)
            rec["extrapolated"] = rows < a.size
            if rec["extrapolated"]:
                rec["seconds_timed"] = rec["seconds"]
                rec["seconds"] = rec["seconds"] * a.size / rows
            rec["pairs_per_s"] = pairs_total / rec["seconds"]
            rec["ratio_vs_reference"] = rec["pairs_per_s"] / ref_rate
            if floor_rate is not None:
                rec["times_floor"] = floor_rate / rec["pairs_per_s"]
            res = results[name]
            if m.floor:  # a count of the pairs, nothing to compare pair by pair
                rec["pairs"] = int(res)
                rec["same_pairs"] = int(res) == ref_pairs[0].size
                entry["methods"][name] = rec
                continue
            if rows < a.size:  # compare with the reference's pairs of the same rows
                keep = ref_pairs[0] < rows
                ref_here = tuple(x[keep] for x in ref_pairs)
            else:
                ref_here = ref_pairs
            rec["pairs"] = int(res[0].size) if rows == a.size else None
            rec["pairs_in_rows_timed"] = int(res[0].size)
            rec["same_pairs"] = _same(res, ref_here) and len(set(counts[name])) == 1
            entry["methods"][name] = rec
        rows_out.append(entry)
        del results
    return rows_out


# ----------------------------------------------------------------------------- environment


def machine_info() -> dict:
    """CPU, memory, threads and library versions of this run."""
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "logical_cpus": os.cpu_count()}
    if hasattr(os, "sched_getaffinity"):
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        for line in text.splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in text.splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                info["avx2"] = "avx2" in flags
                info["avx512f"] = "avx512f" in flags
                break
    except OSError:
        info["cpu_model"] = platform.processor() or "unknown"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    info["memory_gib"] = round(int(line.split()[1]) / 2**20, 1)
                    break
    except OSError:
        pass
    import numba

    info["numba_threads"] = numba.get_num_threads()
    try:
        import faiss

        info["faiss_omp_threads"] = faiss.omp_get_max_threads()
    except ImportError:
        pass
    return info


def gpu_info() -> dict:
    """The GPU, and two copy floors measured now: device-to-device and pinned host-to-device."""
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    size = 1 << 30
    src, dst = cupy.empty(size, cupy.uint8), cupy.empty(size, cupy.uint8)
    host, _ = _pinned_copy(np.zeros(size, np.uint8))
    rates = {"device_copy_gb_per_s": [], "host_to_device_gb_per_s": []}
    for _ in range(5):
        _synchronize()
        start = time.perf_counter()
        dst[...] = src
        _synchronize()
        # a copy reads and writes every byte
        rates["device_copy_gb_per_s"].append(2 * size / (time.perf_counter() - start) / 1e9)
        start = time.perf_counter()
        dst.set(host)
        _synchronize()
        rates["host_to_device_gb_per_s"].append(size / (time.perf_counter() - start) / 1e9)
    info = {k: round(statistics.median(v), 1) for k, v in rates.items()}
    info["name"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    info["memory_gib"] = round(props["totalGlobalMem"] / 2**30, 1)
    info["cupy"] = cupy.__version__
    return info


def _load_average() -> float | None:
    # other work on a shared machine shows here; ratios hold up, absolute figures do not
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def versions() -> dict:
    """Versions of gpudedup and of every peer library."""
    import importlib

    out = {}
    for module, label in (("gpudedup", "gpudedup"), ("numpy", "numpy"), ("numba", "numba"),
                          ("llvmlite", "llvmlite"), ("faiss", "faiss"),
                          ("imagehash", "imagehash"), ("PIL", "Pillow"), ("scipy", "scipy"),
                          ("skimage", "scikit-image")):
        try:
            out[label] = importlib.import_module(module).__version__
        except (ImportError, AttributeError):
            out[label] = None
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE.parent, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "gpudedup", "kernels"],
                               cwd=HERE.parent, text=True, capture_output=True,
                               check=True).stdout.strip()
        out["git_commit"] = head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        out["git_commit"] = None
    return out


# ---------------------------------------------------------------------------------- report


def _num(x: float) -> str:
    """A rate or count, readable: 1,234 / 12.3k / 4.56M / 7.89G."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def _ratio(x: float) -> str:
    return f"{x:.3g}x"


def markdown(report: dict) -> str:
    """The results as markdown tables; on a GPU each figure also as a multiple of its floor."""
    m = report["machine"]
    floors = report["backend"] == "cuda"
    lines = [
        f"gpudedup {report['versions']['gpudedup']} benchmark, backend `{report['backend']}`"
        f"{' (quick)' if report['quick'] else ''}: {m.get('cpu_model', '?')}, "
        f"{m.get('usable_cpus', m['logical_cpus'])} CPUs, {report['date'][:10]}; "
        f"median of {report['repeat']} repeats (round-robin).",
        "",
    ]
    gpu = report.get("gpu")
    if gpu:
        lines += [f"GPU: {gpu['name']} ({gpu['memory_gib']} GiB); measured device-to-device "
                  f"copy {gpu['device_copy_gb_per_s']} GB/s, pinned host-to-device "
                  f"{gpu['host_to_device_gb_per_s']} GB/s. \"x floor\" is seconds over the "
                  "floor's seconds (the host-to-device copy of the same images; a popcount "
                  "sweep of all pairs writing nothing).", ""]
    lines += [
        "Perceptual hash, uint8 crops of scikit-image photographs:",
        "",
        "| size | method | images | seconds | images/s | vs imagehash | bit-identical |"
        + (" x floor |" if floors else ""),
        "|---|---|---:|---:|---:|---:|---|" + ("---:|" if floors else ""),
    ]
    for row in report["phash"]:
        for name, rec in row["methods"].items():
            if name == row["reference"]:
                ident = "reference"
            elif "bit_identical" not in rec:
                ident = "floor"
            else:
                ident = (f"{'yes' if rec['bit_identical'] else 'NO'} "
                         f"({rec['compared'] - rec['mismatches']:,}/{rec['compared']:,})")
            lines.append(f"| {row['side']}x{row['side']} | {name} | {rec['images']:,} | "
                         f"{rec['seconds']:.3g} | {_num(rec['images_per_s'])} | "
                         f"{_ratio(rec['ratio_vs_reference'])} | {ident} |"
                         + (f" {rec['times_floor']:.2f} |" if floors else ""))
    s = report["range_search"]
    reference = s["results"][0]["reference"].split(" ")[0] if s["results"] else "faiss"
    lines += [
        "",
        f"Hamming range search, {s['n_a']:,} x {s['n_b']:,} phash codes with planted near "
        "duplicates (pairs/s = N*M/seconds):",
        "",
        f"| r | method | pairs | seconds | pairs/s | vs {reference} | same pairs |"
        + (" x floor |" if floors else ""),
        "|---:|---|---:|---:|---:|---:|---|" + ("---:|" if floors else ""),
    ]
    for row in s["results"]:
        for name, rec in row["methods"].items():
            label = name
            if name == "gpudedup hamming_pairs auto":
                plan = row["auto_plan"]
                label += (f" (-> mih, m={plan['substrings']})" if plan["strategy"] == "mih"
                          else f" (-> {plan['strategy']})")
            if rec["extrapolated"]:
                label += f" [extrapolated from {rec['rows_timed']:,} rows]"
            pairs = (f"{rec['pairs']:,}" if rec["pairs"] is not None
                     else f"({rec['pairs_in_rows_timed']:,} in rows timed)")
            same = "reference" if name == row["reference"] else (
                "yes" if rec["same_pairs"] else "NO")
            lines.append(f"| {row['threshold']} | {label} | {pairs} | {rec['seconds']:.3g} | "
                         f"{_num(rec['pairs_per_s'])} | {_ratio(rec['ratio_vs_reference'])} | "
                         f"{same} |" + (f" {rec['times_floor']:.2f} |" if floors else ""))
    lines.append("")
    planted = s["codes"]["same_base_pairs_between_a_and_b"]
    for row in s["results"]:
        total = row["pairs_same_base"] + row["pairs_different_base"]
        lines.append(f"r={row['threshold']}: {row['pairs_same_base']:,} of the {total:,} pairs "
                     f"join two variants of one base image ({planted:,} such A x B pairs "
                     f"exist); {row['pairs_different_base']:,} join different bases.")
    load = report["load_average_1min"]
    lines += ["", f"Total run time {report['total_seconds']:.0f} s; 1-minute load average "
              f"{load['start']} at the start, {load['end']} at the end "
              f"({m.get('usable_cpus', m['logical_cpus'])} CPUs)."]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ main


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--backend", choices=sorted(PHASH_METHODS), default="cpu")
    p.add_argument("--quick", action="store_true",
                   help="small sizes: a smoke run of under a minute")
    p.add_argument("--repeat", type=int, default=3, help="timed repeats per figure (median)")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON path (default bench/results/<backend>[-quick].json)")
    p.add_argument("--seed", type=int, default=20240601, help="seed of every random choice")
    p.add_argument("--numpy-budget", type=float, default=None,
                   help="seconds per threshold the numpy brute force may take before it is "
                        "timed on a row subsample and extrapolated")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    load_start = _load_average()
    sizes = SIZES[args.backend, args.quick]
    if args.numpy_budget is not None:
        sizes = Sizes(sizes.phash, sizes.search_bases, sizes.search_variants, sizes.thresholds,
                      args.numpy_budget)
    phash_methods = PHASH_METHODS[args.backend]()
    search_methods = SEARCH_METHODS[args.backend]()
    gpu = gpu_info() if args.backend == "cuda" else None
    tag = args.backend
    if gpu is not None:  # cuda-<gpu>.json, e.g. cuda-nvidia-h100-80gb-hbm3.json
        tag += "-" + "-".join("".join(c if c.isalnum() else " " for c in gpu["name"].lower())
                              .split())
    out_path = args.out or RESULTS_DIR / f"{tag}{'-quick' if args.quick else ''}.json"
    rng = np.random.default_rng(args.seed)

    log("loading photographs")
    photos = load_photos()
    levels = build_pyramid(photos)

    log("phash throughput")
    t0 = time.perf_counter()
    phash_rows = bench_phash(phash_methods, levels, sizes, args.repeat, rng)
    phash_seconds = time.perf_counter() - t0

    log(f"making {2 * sizes.search_n:,} range-search codes")
    t0 = time.perf_counter()
    a, b, bases, code_info = make_codes(levels, sizes, rng)
    code_seconds = time.perf_counter() - t0
    log(f"range search {a.size:,} x {b.size:,}")
    t0 = time.perf_counter()
    search_rows = bench_search(search_methods, a, b, bases, sizes, args.repeat, args.backend)
    search_seconds = time.perf_counter() - t0

    report = {
        "schema_version": SCHEMA_VERSION,
        "backend": args.backend,
        "quick": args.quick,
        "repeat": args.repeat,
        "seed": args.seed,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "gpu": gpu,
        "versions": versions(),
        "photos": sorted(photos),
        "pyramid_scales": list(PYRAMID_SCALES),
        "phash": phash_rows,
        "range_search": {"n_a": int(a.size), "n_b": int(b.size), "thresholds":
                         list(sizes.thresholds), "numpy_budget_s": sizes.numpy_budget_s,
                         "codes": code_info, "results": search_rows},
        "section_seconds": {"phash": round(phash_seconds, 1),
                            "make_codes": round(code_seconds, 1),
                            "range_search": round(search_seconds, 1)},
    }
    report["load_average_1min"] = {"start": load_start, "end": _load_average()}
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    table = markdown(report)
    report["table_markdown"] = table
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=1) + "\n")
    print(table)
    log(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
