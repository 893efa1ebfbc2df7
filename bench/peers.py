"""What is benchmarked: gpudedup and its peers, as :class:`Method` per backend.

Peers are kept per backend in :data:`PHASH_METHODS` and :data:`SEARCH_METHODS` (dicts keyed by
backend name, each value a factory returning ``{name: Method}``); a new backend adds its entries
there and everything else (timing, checks, table, JSON) follows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


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


class Methods(dict):
    """``{name: Method}`` of one benchmark, and ``skipped``: ``{name: why}`` of the peers this
    machine cannot run (no CuPy, no GPU, the CUDA simulator), listed in the JSON and the table.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.skipped: dict[str, str] = {}


def reference_name(methods: dict[str, Method]) -> str:
    """The method every other one is checked against and compared with (one per backend)."""
    return next(name for name, m in methods.items() if m.reference)


def floor_name(methods: dict[str, Method]) -> str | None:
    """The hardware floor, if this backend measures one."""
    return next((name for name, m in methods.items() if m.floor), None)


# ------------------------------------------------------------------------------ cpu peers


def _phash_methods_cpu() -> dict[str, Method]:
    import imagehash
    from PIL import Image

    import gpudedup as gd

    def imagehash_loop(images):
        return [imagehash.phash(Image.fromarray(img)) for img in images]

    def imagehash_codes(hashes):
        return np.array([int(str(h), 16) for h in hashes], dtype=np.uint64)

    return Methods({
        "gpudedup phash (cpu)": Method(
            "gpudedup phash (cpu)", lambda images: gd.phash(images, backend="cpu"),
            gpudedup=True, note="gd.phash(images, backend='cpu') on the whole stack"),
        "imagehash.phash": Method(
            "imagehash.phash", imagehash_loop, imagehash_codes, reference=True, per_image=True,
            note="imagehash.phash(PIL.Image.fromarray(img)) in a Python loop, one image at a "
                 "time"),
    })


def _sorted_pairs(i, j, d):
    order = np.lexsort((j, i))
    return (np.asarray(i, np.int64)[order], np.asarray(j, np.int64)[order],
            np.asarray(d, np.uint8)[order])


def _code_bytes(codes: np.ndarray) -> np.ndarray:
    # faiss's binary indexes take codes as 8 bytes each; Hamming distance ignores byte order
    return codes.view(np.uint8).reshape(-1, 8)


def faiss_range_search(a: np.ndarray, b: np.ndarray, threshold: int):
    """faiss IndexBinaryFlat over B, range search with A; faiss's radius is strict (<)."""
    import faiss

    index = faiss.IndexBinaryFlat(64)
    index.add(_code_bytes(b))
    return index.range_search(_code_bytes(a), threshold + 1)


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


def _gpudedup_search_methods(backend_name: str, suffix: str) -> dict[str, Method]:
    """gpudedup's range search on one backend: each strategy, and the public find_overlaps."""
    import gpudedup as gd
    from gpudedup import backend as backends
    from gpudedup import search

    be = backends.resolve(backend_name)
    methods = Methods()
    for strategy in ("auto", "brute", "mih"):
        name = f"gpudedup hamming_pairs {strategy}{suffix}"
        methods[name] = Method(
            name,
            lambda a, b, r, s=strategy: search.hamming_pairs(a, b, r, be=be, strategy=s),
            gpudedup=True,
            note=f"gpudedup.search.hamming_pairs(a, b, r, be=resolve({backend_name!r}), "
                 f"strategy={strategy!r})",
            extra={"strategy": strategy})
    name = f"gpudedup find_overlaps{suffix}"
    methods[name] = Method(
        name,
        lambda a, b, r: gd.find_overlaps(gd.HashSet.from_phash(a), gd.HashSet.from_phash(b),
                                         threshold=r, backend=backend_name),
        lambda ov: (ov.left, ov.right, ov.distance),
        gpudedup=True,
        note=f"gd.find_overlaps(HashSet.from_phash(a), HashSet.from_phash(b), threshold=r, "
             f"backend={backend_name!r})")
    return methods


def _search_methods_cpu() -> dict[str, Method]:
    methods = _gpudedup_search_methods("cpu", "")
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


def gpu_unavailable_reason() -> str | None:
    """Why the peers that need a real GPU (CuPy kernels, faiss GPU, the copy and popcount
    floors) cannot run here; None when CuPy sees a device and the CUDA simulator is off."""
    from gpudedup import backend as backends

    if backends.cuda_simulated():
        return "NUMBA_ENABLE_CUDASIM=1: gpudedup's kernels run in numba's CUDA simulator, " \
               "there is no device for CuPy"
    try:
        import cupy
    except ImportError as exc:
        return f"CuPy is not importable ({exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - CuPy's CUDARuntimeError: no driver, no device
        return f"CuPy sees no CUDA device ({type(exc).__name__}: {exc})"
    return None if count > 0 else "CuPy sees no CUDA device"


def synchronize() -> None:
    """Wait for all work on the current CUDA device."""
    import cupy

    cupy.cuda.runtime.deviceSynchronize()


def pinned_copy(images: np.ndarray):
    """``(pinned, device)``: the images in pinned host memory, and a device buffer of their
    shape to copy them into (untimed set-up of a host-to-device copy)."""
    import cupy

    memory = cupy.cuda.alloc_pinned_memory(max(images.nbytes, 1))
    pinned = np.frombuffer(memory, images.dtype, images.size).reshape(images.shape)
    pinned[...] = images
    return pinned, cupy.empty(images.shape, images.dtype)


def _h2d(prepared):
    pinned, device = prepared
    device.set(pinned)
    synchronize()
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
    why = gpu_unavailable_reason()
    if why is not None:
        for name in ("gpudedup phash (cuda, device memory)", "floor: host-to-device copy"):
            methods.skipped[name] = why
        return methods
    methods["gpudedup phash (cuda, device memory)"] = Method(
        "gpudedup phash (cuda, device memory)", lambda images: gd.phash(images, backend="cuda"),
        gpudedup=True, prepare=_to_device,
        note="gd.phash(cupy images, backend='cuda'): images already on the device")
    methods["floor: host-to-device copy"] = Method(
        "floor: host-to-device copy", _h2d, floor=True, prepare=pinned_copy,
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
    index.add(_code_bytes(b))
    dist, ids = index.search(_code_bytes(a), FAISS_GPU_K)
    keep = (dist <= threshold) & (ids >= 0)
    i = np.nonzero(keep)[0]
    return _sorted_pairs(i, ids[keep], dist[keep])


def _search_methods_cuda() -> dict[str, Method]:
    import faiss

    methods = _gpudedup_search_methods("cuda", " (cuda)")
    faiss_cpu = Method(
        "faiss IndexBinaryFlat (cpu)", faiss_range_search, _faiss_pairs, budgeted=True,
        note="the CPU reference of the cpu benchmark, on the host's cores")
    why = gpu_unavailable_reason()
    if why is not None:
        for name in ("CuPy brute force", "floor: popcount kernel", "faiss GPU k-NN"):
            methods.skipped[name] = why
        # the reference is then faiss on the CPU, in full
        methods[faiss_cpu.name] = dataclasses.replace(
            faiss_cpu, budgeted=False, reference=True,
            note=faiss_cpu.note + "; the reference here, as CuPy brute force cannot run")
        return methods
    methods["CuPy brute force"] = Method(
        "CuPy brute force", cupy_range_search, reference=True,
        note=f"ElementwiseKernel __popcll over blocks of {CUPY_BLOCK} rows, cupy.nonzero")
    methods["floor: popcount kernel"] = Method(
        "floor: popcount kernel", popcount_floor, floor=True,
        note="one thread per row, B in shared-memory tiles, popcount and compare, one atomic "
             "add per thread: the pair rate with nothing written")
    if hasattr(faiss, "GpuIndexBinaryFlat") and faiss.get_num_gpus() > 0:
        methods["faiss GPU k-NN"] = Method(
            "faiss GPU k-NN", faiss_gpu_knn,
            note=f"GpuIndexBinaryFlat k-NN with k={FAISS_GPU_K} filtered to r: not a range "
                 f"search, so rows with more than {FAISS_GPU_K} pairs lose some")
    else:
        methods.skipped["faiss GPU k-NN"] = "this faiss has no GPU support (faiss-cpu), or " \
                                            "sees no GPU"
    methods[faiss_cpu.name] = faiss_cpu
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
