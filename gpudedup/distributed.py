"""Dask: gpudedup's hashing per chunk on the workers, and its search in tasks of query rows.

One job: run the single-process pipeline on a Dask cluster (``distributed``, or dask-cuda's
``LocalCUDACluster``) and give back the single-process answer, bit for bit. Never a scheduler of
our own: the tasks are pure functions that dask schedules, retries and moves.

* :func:`dask_from_hdf5` makes a dask array whose chunks the workers read themselves: the graph
  holds a small reader (file path, dataset name, shape, dtype) and slices, never pixels.
* Hashing: one task per chunk along N runs :func:`gpudedup.hashing.compute_hashes` on it and
  sends back its hashes (24 bytes an image), plus the pixels of small images (at most
  :data:`gpudedup.hashset.PIXELS_MAX_BYTES`) when the chunk does not come from a file the
  workers can reopen. Hashing is per image, so the concatenated hashes equal the local ones.
* Search: the hashes of both sides are broadcast to the workers once; each task takes a block
  of query rows of the first side and runs the local search (``api._overlaps``: digests,
  range search, pixel checks) of that block against the whole other side; for a pair inside
  one set, against the block itself and the rows after it, so each pair ``i < j`` is made
  exactly once, by the task of the block holding ``i``. Blocks are whole blocks of the
  kernels' query rows (``search.BLOCK_ROWS``). Every pair's columns depend only on its two
  images, and the skipping inside big near groups (``gpudedup.joined``) only on its block's
  rows, so the blocks' rows, shifted to global indices and concatenated in block order, are
  the local answer. Pixel checks read only the candidates' images, on the worker
  (reopening the HDF5 file, or from the broadcast pixels).
* Searches with variant hashes (``invariant=``, ``shifts=``) are a second search, of the second
  side's variants against the first side's hashes (inside one set, all against all), in tasks
  of their own: whole blocks of the rows that search queries with (:func:`variant_block`),
  so its skipping inside big groups decides per block as in one process. The client keeps the
  best row per pair of the plain and the variant tasks' rows by a total order of the
  candidates (``matching.best_per_pair``), which is what one process keeps.
* Without a client, dask arrays are hashed locally one chunk at a time (bounded memory).

``distributed`` and ``dask`` are imported only inside the functions that need them (the
``dask`` extra: ``pip install "gpudedup[dask]"``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np

from . import backend as backends
from . import search
from .checks import is_cupy, is_int
from .errors import FileError, GpudedupError, InputError, MissingDependencyError
from .hashset import PIXELS_MAX_BYTES, HashSet
from .sources import (
    DEFAULT_BATCH_BYTES,
    ImageSource,
    as_source,
    check_images,
    get_dataset,
    open_h5_file,
    split_h5_path,
)

#: query rows of the first side per search task at most (fewer when that gives fewer than
#: TASKS_PER_WORKER tasks per worker)
SEARCH_ROWS = 32768
#: search tasks per worker at least, so that a slow or lost worker holds up little
TASKS_PER_WORKER = 4
#: fewest query rows per search task (one block of the range-search kernels)
MIN_SEARCH_ROWS = 256
#: name prefix of the arrays made by dask_from_hdf5
HDF5_ARRAY_PREFIX = "gpudedup-hdf5-"

# array name -> "file.h5:/dataset", for the arrays dask_from_hdf5 made in this process
_HDF5_ARRAYS: dict[str, str] = {}
# per worker process: "file.h5:/dataset" -> its ImageSource, opened once
_OPEN_ON_WORKER: dict[tuple, ImageSource] = {}


def _require_dask(what: str):
    try:
        import dask.array as da
        import distributed  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            f"{what}: needs dask and distributed; install them with "
            "pip install \"gpudedup[dask]\"") from None
    return da


def is_dask_array(obj) -> bool:
    """Whether ``obj`` is a dask array (without importing dask)."""
    return type(obj).__module__.split(".")[0] == "dask" and hasattr(obj, "chunks") \
        and hasattr(obj, "dask")


# ------------------------------------------------------------------------------ HDF5 arrays


class HDF5Reader:
    """A picklable array-like over one HDF5 dataset: each read opens the file read-only in the
    process that reads (a worker), as h5py requires of processes; the pickle is the path,
    dataset name, shape and dtype.

    A file that is missing or cannot be read there raises :class:`FileError` naming it and the
    host, at once (no retry: the task failed, its worker did not).
    """

    def __init__(self, spec: str, shape: tuple[int, ...], dtype):
        self.spec = spec
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key):
        data = open_on_worker(self.spec).data
        return np.asarray(data[key])

    def __reduce__(self):
        return HDF5Reader, (self.spec, self.shape, self.dtype.str)


def open_on_worker(spec: str) -> ImageSource:
    """The HDF5 dataset ``spec`` opened read-only in this process (once per process).

    Raises
    ------
    FileError
        The file is missing, unreadable or damaged here, or lacks the dataset: the message
        names the file and the host.
    """
    import socket

    where = f"{socket.gethostname()} (pid {os.getpid()})"
    path = split_h5_path(spec)[0]
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise FileError(f"{spec}: cannot be read on {where}: {exc.strerror or exc} "
                        f"({path!r})") from None
    # a file replaced at the same path is opened anew
    key = (os.getpid(), spec, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    source = _OPEN_ON_WORKER.get(key)
    if source is not None and source.readable:
        return source
    try:
        source = as_source(spec, "dask_from_hdf5")
    except GpudedupError as exc:
        raise FileError(f"{spec}: cannot be read on {where}: {exc}") from None
    _OPEN_ON_WORKER[key] = source
    return source


def _chunk_rows(requested, count: int, per_image: int, file_chunk: int | None) -> tuple:
    # rows of each dask chunk along N: whole HDF5 chunks where the file has them
    if requested is None:
        rows = max(1, DEFAULT_BATCH_BYTES // max(per_image, 1))
    elif is_int(requested) and requested >= 1:
        rows = int(requested)
    elif isinstance(requested, (tuple, list)) and requested and all(
            is_int(r) and r >= 1 for r in requested) and sum(requested) == count:
        return tuple(int(r) for r in requested)
    else:
        raise InputError(f"chunks: expected a positive number of images per chunk, or chunk "
                         f"sizes along N summing to {count}, got {requested!r}")
    if file_chunk:
        rows = max(file_chunk, rows - rows % file_chunk)
    rows = min(rows, max(count, 1))
    full, rest = divmod(count, rows)
    return (rows,) * full + ((rest,) if rest else ()) or (0,)


def dask_from_hdf5(spec, chunks=None):
    """A dask array of the images of ``"file.h5:/dataset"``, read by the workers themselves.

    Each chunk is a task holding the file path, the dataset name and a slice along N: a worker
    opens the file read-only and reads its slice (h5py reads in parallel only from separate
    processes), so no pixels travel through the scheduler. ``find_overlaps``, ``scan`` and
    ``hash_images`` given this array hash it chunk by chunk on the workers of the active
    ``distributed.Client``, and their pixel checks reopen the file there.

    Parameters
    ----------
    spec : str or path-like
        ``"file.h5:/group/dataset"`` holding ``(N, H, W)`` or ``(N, H, W, 3)`` images.
    chunks : int or tuple of int, optional
        Images per chunk (rounded down to whole HDF5 chunks along N, at least one), or the
        chunk sizes along N. Default: about 16 MiB of images, in whole HDF5 chunks.

    Returns
    -------
    dask.array.Array
        Chunked along N only; the other axes are whole.

    Raises
    ------
    InputError
        ``spec`` or ``chunks`` malformed, the file or dataset missing, not images.
    MissingDependencyError
        dask is not installed.

    Examples
    --------
    >>> import os, tempfile, h5py, numpy as np, pytest, gpudedup as gd
    >>> _ = pytest.importorskip("dask")  # the dask extra
    >>> path = os.path.join(tempfile.mkdtemp(), "x.h5")
    >>> with h5py.File(path, "w") as f:
    ...     _ = f.create_dataset("x", data=np.zeros((10, 8, 8), np.uint8), chunks=(4, 8, 8))
    >>> gd.dask_from_hdf5(f"{path}:/x", chunks=5).chunks[0]  # whole HDF5 chunks of 4
    (4, 4, 2)
    """
    da = _require_dask("dask_from_hdf5")
    spec = os.fspath(spec) if isinstance(spec, os.PathLike) else spec
    if not isinstance(spec, str):
        raise InputError(f"spec: expected a 'file.h5:/dataset' string, got "
                         f"{type(spec).__name__}")
    try:
        path, dataset = split_h5_path(spec)
    except ValueError as exc:
        raise InputError(f"spec: {exc}") from None
    spec = f"{path}:{dataset}"
    with open_h5_file(path, "spec") as handle:
        data = get_dataset(handle, dataset, "spec")
        shape, dtype, file_chunks = tuple(data.shape), np.dtype(data.dtype), data.chunks
    check_images(shape, dtype, "spec")
    per_image = int(np.prod(shape[1:])) * dtype.itemsize
    rows = _chunk_rows(chunks, shape[0], per_image, file_chunks[0] if file_chunks else None)
    stat = os.stat(path)
    from dask.base import tokenize

    name = HDF5_ARRAY_PREFIX + tokenize(os.path.abspath(path), dataset, shape, dtype.str, rows,
                                        stat.st_size, stat.st_mtime_ns)
    reader = HDF5Reader(spec, shape, dtype)
    array = da.from_array(reader, chunks=(rows,) + shape[1:], name=name, lock=False,
                          asarray=True, fancy=False, inline_array=True,
                          meta=np.empty((0,) * len(shape), dtype))
    _HDF5_ARRAYS[array.name] = spec
    return array


def hdf5_spec(array) -> str | None:
    """``"file.h5:/dataset"`` when ``array`` is (unchanged) an array of :func:`dask_from_hdf5`
    made in this process, else None."""
    return _HDF5_ARRAYS.get(getattr(array, "name", None))


# ------------------------------------------------------------------------------ sources


class DaskSource(ImageSource):
    """A dask array as an :class:`ImageSource`: batches are its chunks, computed one at a time
    (bounded memory); ``take`` computes only the rows asked for."""

    @property
    def is_file(self) -> bool:
        return False

    def batches(self, batch_size: int | None = None, *, align: bool | None = None):
        start = 0
        for rows in self.data.chunks[0]:
            chunk = self.data[start:start + rows].compute()
            if not isinstance(chunk, np.ndarray) and not is_cupy(chunk):
                chunk = np.asarray(chunk)  # CuPy chunks stay on their GPU
            size = batch_size or rows
            for lo in range(0, rows, size):
                yield start + lo, chunk[lo:lo + size]
            start += rows

    def take(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        n = self.count
        if indices.size and (indices.min() < -n or indices.max() >= n):
            raise IndexError(f"{self.name}: image index out of range for {n} images")
        unique, inverse = np.unique(np.where(indices < 0, indices + n, indices),
                                    return_inverse=True)
        if not unique.size:
            return np.empty((0,) + self.image_shape, self.dtype)
        return backends.to_host(self.data[unique].compute())[inverse]


class RowsOf(ImageSource):
    """Rows ``rows`` (ascending) of an HDF5 source (a search task's block, or one image per
    class): ``take`` reads through the parent, so the file is read only at those rows. Its
    ``data`` is the parent's dataset, which the pixel check never reads in place."""

    def __init__(self, parent: ImageSource, rows: np.ndarray):
        super().__init__(name=parent.name, data=parent.data, description=parent.description)
        self.parent, self.rows = parent, np.asarray(rows, dtype=np.int64)

    @property
    def count(self) -> int:
        return int(self.rows.size)

    @property
    def is_file(self) -> bool:  # never read whole: the parent's data is larger
        return False

    @property
    def readable(self) -> bool:
        return self.parent.readable

    def take(self, indices: np.ndarray) -> np.ndarray:
        return self.parent.take(self.rows[np.asarray(indices, dtype=np.int64)])

    def batches(self, batch_size: int | None = None, *, align: bool | None = None):
        size = batch_size or self.default_batch_size()
        for lo in range(0, self.count, size):
            yield lo, self.parent.take(self.rows[lo:lo + size])


def check_dask_images(array, name: str):
    """``array`` if it is a dask array of images chunked along N only (rechunked if not), or
    InputError naming ``name``."""
    if any(np.isnan(c) for dim in array.chunks for c in dim):
        raise InputError(f"{name}: a dask array with unknown chunk sizes; call "
                         "compute_chunk_sizes() on it first")
    check_images(tuple(int(s) for s in array.shape), np.dtype(array.dtype), name)
    if any(len(dim) > 1 for dim in array.chunks[1:]):
        array = array.rechunk({axis: -1 for axis in range(1, array.ndim)})
    return array


# ------------------------------------------------------------------------------ clients


def active_client():
    """The current ``distributed.Client``, or None (none made, or distributed not installed)."""
    try:
        import distributed
    except ImportError:
        return None
    try:
        return distributed.default_client()
    except ValueError:
        return None


@contextlib.contextmanager
def session(scheduler=None):
    """Make ``scheduler`` the client of the calls inside (yields it, or None).

    ``scheduler`` is a ``distributed.Client``, a scheduler address (``"tcp://host:8786"``,
    connected to now and closed after) or None (the active client, if any).
    """
    if scheduler is None:
        yield active_client()
        return
    _require_dask("scheduler")
    import distributed

    if isinstance(scheduler, distributed.Client):
        with scheduler.as_current():
            yield scheduler
        return
    if not isinstance(scheduler, str) or not scheduler:
        raise InputError(f"scheduler: expected a distributed.Client or a scheduler address, "
                         f"got {scheduler!r}")
    try:
        client = distributed.Client(scheduler, timeout="20s", set_as_default=True)
    except (OSError, TimeoutError) as exc:
        raise FileError(f"scheduler: cannot reach the Dask scheduler at {scheduler!r} "
                        f"({exc})") from None
    with client, client.as_current():
        yield client


#: the numba threads a task of a command's local cluster uses (local_cluster)
THREADS_VARIABLE = "GPUDEDUP_WORKER_THREADS"


def _task_threads() -> None:
    # a task of local_cluster's workers: numba's threads for this task thread, at most its pool
    wanted = os.environ.get(THREADS_VARIABLE)
    if wanted:
        import numba

        numba.set_num_threads(max(1, min(int(wanted), numba.config.NUMBA_NUM_THREADS)))


@contextlib.contextmanager
def local_cluster(workers: int, threads_per_worker: int = 1):
    """A ``LocalCluster`` of ``workers`` worker processes and its client (for the command).

    Each worker runs ``threads_per_worker`` task threads, and its numba kernels share out the
    machine's cores: cores // workers threads (:data:`THREADS_VARIABLE` in the workers'
    environment, applied by each task with ``numba.set_num_threads``; not
    ``NUMBA_NUM_THREADS``, which can reach a worker after numba has started its threads
    there, and then numba refuses to compile).
    """
    _require_dask("--workers")
    import distributed

    if not is_int(workers) or workers < 1:
        raise InputError(f"workers: expected a positive number of worker processes, got "
                         f"{workers!r}")
    # the cores shared out: numba's threads per worker, so that workers do not oversubscribe
    cores = max(1, (os.cpu_count() or 1) // int(workers))
    env = {THREADS_VARIABLE: str(cores), "OMP_NUM_THREADS": "1"}
    with distributed.LocalCluster(n_workers=int(workers), processes=True,
                                  threads_per_worker=threads_per_worker,
                                  dashboard_address=":0", env=env,
                                  silence_logs=logging.WARNING) as cluster, \
            distributed.Client(cluster) as client:
        yield client


# ------------------------------------------------------------------------------ hashing


@dataclass
class WorkerSide:
    """What a search task needs of one side, broadcast to the workers: the hashes, and where
    the images are (an HDF5 dataset the workers reopen, or the pixels themselves)."""

    phashes: np.ndarray
    digests: np.ndarray | None
    image_shape: tuple[int, ...]
    dtype: np.dtype
    description: str
    convention: str
    fingerprint: str | None = None
    hdf5: str | None = None
    pixels: np.ndarray | None = None
    variants: np.ndarray | None = None
    variant_table: np.ndarray | None = None
    backend: str = "auto"

    @property
    def count(self) -> int:
        return int(self.phashes.shape[0])

    def source(self, name: str) -> ImageSource | None:
        if self.hdf5 is not None:
            return open_on_worker(self.hdf5)
        if self.pixels is not None:
            return ImageSource(name=name, data=self.pixels, description=self.description)
        return None

    def hashset(self, name: str, rows: np.ndarray | None = None) -> HashSet:
        """The HashSet of ``rows`` (ascending; default all), with its images where they are."""
        source = self.source(name)
        if rows is None:
            rows = slice(0, self.count)
        elif source is not None and isinstance(source.data, np.ndarray):
            # the pixels of those rows themselves: a view of all the rows under these row
            # numbers would let the pixel check read the array in place at the wrong images
            source = ImageSource(name=name, data=source.data[rows],
                                 description=self.description)
        elif source is not None:
            source = RowsOf(source, rows)
        return HashSet(self.phashes[rows],
                       None if self.digests is None else self.digests[rows],
                       image_shape=self.image_shape, dtype=self.dtype, source=source,
                       description=self.description, convention=self.convention,
                       fingerprint=self.fingerprint,
                       variants=None if self.variants is None else self.variants[rows],
                       variant_table=self.variant_table)


def _nonfinite_error(chunk, start: int, name: str) -> InputError:
    flat = np.asarray(backends.to_host(chunk)).reshape(chunk.shape[0], -1)
    first = start + int(np.flatnonzero(~np.isfinite(flat).all(axis=1))[0])
    return InputError(f"{name}: image {first} contains NaN or inf")


def hash_chunk(chunk, start: int, name: str, backend: str, digests: bool, phashes: bool,
               invariant, shifts: int, keep_pixels: bool) -> dict:
    """The hashes of one chunk (a task on a worker): ``{"phash", "digest", "variants",
    "variant_table", "pixels", "seconds"}``. A CuPy chunk is hashed on its GPU in place."""
    from .hashing import compute_hashes, compute_variant_hashes

    _task_threads()
    begin, cpu = time.perf_counter(), time.process_time()
    source = as_source(chunk, name)
    be = backends.resolve(backend, chunk)
    out: dict = {}
    try:
        out["digest"], out["phash"] = compute_hashes(source, be, digests=digests,
                                                     phashes=phashes)
        if phashes and (invariant is not None or shifts):
            out["variants"], out["variant_table"] = compute_variant_hashes(
                source, be, invariant=invariant, shifts=shifts)
    except InputError as exc:
        if "NaN or inf" in str(exc):
            raise _nonfinite_error(chunk, start, name) from None
        raise
    if keep_pixels:
        out["pixels"] = backends.to_host(chunk)
    out["seconds"] = time.perf_counter() - begin
    out["cpu_seconds"] = time.process_time() - cpu
    return out


@dataclass
class RunStats:
    """Sizes and costs of the last run on a cluster (for benchmarks; see :func:`last_run`)."""

    hash_tasks: int = 0
    images: int = 0
    hash_bytes_back: int = 0
    hash_seconds: list[float] = field(default_factory=list)
    hash_cpu_seconds: list[float] = field(default_factory=list)
    search_tasks: int = 0
    search_seconds: list[float] = field(default_factory=list)
    search_cpu_seconds: list[float] = field(default_factory=list)
    search_rows: list[int] = field(default_factory=list)

    @property
    def bytes_back_per_image(self) -> float:
        """Bytes the hashing tasks sent back per image (hashes, and pixels if they travel)."""
        return self.hash_bytes_back / max(self.images, 1)


_LAST_RUN = RunStats()


def run_stats(reset: bool = False) -> RunStats:
    """Task counts, sizes and seconds of the hashing and searches on a cluster since the last
    reset (``reset=True`` starts anew and returns the fresh record)."""
    global _LAST_RUN
    if reset:
        _LAST_RUN = RunStats()
    return _LAST_RUN


def _keeps_pixels(spec: str | None, image_shape: tuple[int, ...], dtype: np.dtype) -> bool:
    # small images travel with their hashes unless the workers can reopen their file
    return spec is None and len(image_shape) == 2 and \
        int(np.prod(image_shape)) * dtype.itemsize <= PIXELS_MAX_BYTES


def hash_dask(array, name: str, *, backend: str = "auto", be=None, digests: bool = True,
              phashes: bool = True, invariant=None, shifts: int = 0, label=None,
              batch_size=None, progress: bool = False) -> HashSet:
    """The :class:`HashSet` of a dask array of images: per chunk on the workers of the active
    client, else locally one chunk at a time.

    Equals hashing the same images as a numpy array (the hashes are per image). The HashSet
    keeps where its images are for pixel checks: the HDF5 dataset of a :func:`dask_from_hdf5`
    array (reopened by the workers), or the pixels of small images, or the dask array.
    """
    from .hashing import compute_variant_hashes, hash_source, hashes_of

    array = check_dask_images(array, name)
    spec = hdf5_spec(array)
    client = active_client()
    if client is None:
        # locally: an unchanged HDF5 array is the file itself (streamed in whole HDF5 chunks),
        # any other array is computed one chunk at a time
        source = as_source(spec, name) if spec is not None else DaskSource(
            name=name, data=array, description="dask array")
        be = be or backends.resolve(backend)
        hs = hash_source(source, be, digests=digests, phashes=phashes, batch_size=batch_size,
                         progress=progress, label=label)
        if phashes and (invariant is not None or shifts):
            hs.variants, hs.variant_table = compute_variant_hashes(
                source, be, invariant=invariant, shifts=shifts, batch_size=batch_size)
        return hs
    import dask

    image_shape = tuple(int(s) for s in array.shape[1:])
    dtype = np.dtype(array.dtype)
    keep_pixels = _keeps_pixels(spec, image_shape, dtype)
    starts = np.concatenate([[0], np.cumsum(array.chunks[0])[:-1]]).astype(int).tolist()
    tasks = [dask.delayed(hash_chunk, pure=True)(block, start, name, backend, digests,
                                                  phashes, invariant, shifts, keep_pixels)
             for block, start in zip(array.to_delayed().ravel(), starts)]
    parts = client.gather(client.compute(tasks))
    n = int(array.shape[0])

    def joined(key, empty):
        values = [p[key] for p in parts if p.get(key) is not None]
        return np.concatenate(values) if values else empty

    ph = joined("phash", np.zeros(0, np.uint64)) if phashes else np.zeros(n, np.uint64)
    dig = joined("digest", np.zeros((0, 2), np.uint64)) if digests else None
    pixels = joined("pixels", np.zeros((0,) + image_shape, dtype)) if keep_pixels else None
    # the client keeps a source for what runs here (reports, cleaning, a local search)
    source = as_source(spec, name) if spec is not None else DaskSource(
        name=name, data=array, description="dask array")
    hs = hashes_of(source, ph, dig)
    if pixels is not None:
        hs.pixels = pixels
    if phashes and (invariant is not None or shifts):
        hs.variants = joined("variants", None)
        hs.variant_table = parts[0]["variant_table"] if parts else None
    hs.worker_side = WorkerSide(
        ph, dig, image_shape, dtype, hs.description, hs.convention, hs.fingerprint,
        hdf5=spec, pixels=pixels, variants=hs.variants, variant_table=hs.variant_table,
        backend=backend)
    back = sum(v.nbytes for p in parts for k, v in p.items()
               if isinstance(v, np.ndarray) and k != "variant_table")
    _LAST_RUN.hash_tasks += len(parts)
    _LAST_RUN.images += n
    _LAST_RUN.hash_bytes_back += back
    _LAST_RUN.hash_seconds += [p["seconds"] for p in parts]
    _LAST_RUN.hash_cpu_seconds += [p["cpu_seconds"] for p in parts]
    return hs


# ------------------------------------------------------------------------------ search


def runs_on_cluster(ha: HashSet, hb: HashSet | None) -> bool:
    """Whether a search of ``ha`` (against ``hb``) goes to the active client's workers: a
    client is active and every side was hashed on it (so the workers can reach its images)."""
    sides = [ha] if hb is None else [ha, hb]
    return all(getattr(h, "worker_side", None) is not None for h in sides) and \
        active_client() is not None


def search_spans(count: int, workers: int, rows: int | None = None) -> list[tuple[int, int]]:
    """The query-row blocks ``(start, stop)`` of the search tasks over ``count`` rows.

    Examples
    --------
    >>> search_spans(1000, workers=2)
    [(0, 256), (256, 512), (512, 768), (768, 1000)]
    """
    if rows is None:
        rows = min(SEARCH_ROWS, -(-count // max(1, TASKS_PER_WORKER * workers)))
        rows = max(rows, MIN_SEARCH_ROWS)
    # whole blocks of the search's query rows: a task's blocks are the single process's
    # (joined.py decides per block)
    rows = -(-rows // search.BLOCK_ROWS) * search.BLOCK_ROWS
    edges = list(range(0, count, rows)) + [count]
    return [(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])] or [(0, 0)]


#: the Overlaps columns a search task returns, beside ``left`` and ``right``
_COLUMNS = ("distance", "exact", "similarity", "residual", "shift", "transform", "offset",
            "verified")


def _columns(ov, rows_i: np.ndarray, rows_j: np.ndarray) -> dict:
    # the task's pairs between representatives, in image indices (no class in a task: each
    # image of a block stands for its class)
    core = ov.core if not ov.grouped else {"i": ov.left, "j": ov.right,
                                           **{name: getattr(ov, name) for name in _COLUMNS}}
    cols = {name: core[name] for name in _COLUMNS}
    cols["left"], cols["right"] = rows_i[core["i"]], rows_j[core["j"]]
    return cols


def _by_pair(cols: dict) -> dict:
    order = search.pair_order(cols["left"], cols["right"])
    return {key: value[order] for key, value in cols.items()}


def _concat(parts: list[dict]) -> dict:
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def search_block(side_a: WorkerSide, side_b: WorkerSide | None, start: int, stop: int,
                 names: tuple[str, str], options: dict, rows_a: np.ndarray,
                 rows_b: np.ndarray | None, by_second: bool = False) -> dict:
    """One search task: the pairs whose left image is ``rows_a[start:stop]`` of ``side_a``
    (``by_second``: whose right image is ``rows_b[start:stop]``).

    ``rows_a`` and ``rows_b`` are the images searched (one per class of identical images).
    Against all of ``rows_b`` (``by_second``: all of ``rows_a``); inside ``side_a``
    (``side_b`` None), against ``rows_a[start:]`` so that each pair ``i < j`` comes from the
    block of ``i`` alone. Returns the pairs' columns with image indices, sorted by (left,
    right), ``unverified``, ``unchecked`` and the task's seconds.
    """
    from .api import _overlaps  # the local search, run unchanged on the block

    _task_threads()
    begin, cpu = time.perf_counter(), time.process_time()
    options = dict(options)
    be = backends.resolve(options.pop("backend"))
    if side_b is not None and by_second:
        mine = rows_b[start:stop]
        ov = _overlaps(side_a.hashset(names[0], rows_a), side_b.hashset(names[1], mine), names,
                       be=be, **options)
        cols = _columns(ov, rows_a, mine)
    elif side_b is not None:
        mine = rows_a[start:stop]
        ov = _overlaps(side_a.hashset(names[0], mine), side_b.hashset(names[1], rows_b), names,
                       be=be, **options)
        cols = _columns(ov, mine, rows_b)
    else:
        # the block against the rows from it on, for the block's pairs only (lead): each row
        # meets all its candidates in one search, as in one process (variant candidates come
        # from both images' variants; big groups skip by blocks of rows, joined.py)
        rest = rows_a[start:]
        lead = None if stop - start == rest.size else stop - start
        ov = _overlaps(side_a.hashset(names[0], rest), None, names, be=be, lead=lead,
                       **options)
        cols = _columns(ov, rest, rest)
    return {"columns": _by_pair(cols), "unverified": ov.unverified, "unchecked": ov.unchecked,
            "seconds": time.perf_counter() - begin, "cpu_seconds": time.process_time() - cpu}


def variant_block(side_a: WorkerSide, side_b: WorkerSide | None, start: int, stop: int,
                  names: tuple[str, str], options: dict, rows_a: np.ndarray,
                  rows_b: np.ndarray | None) -> dict:
    """One task of the variant search: rows ``start:stop`` of the side it queries with
    (``matching.near_pairs(part="variants")``), the second side's variants against the first
    side's hashes (``rows_a``, ``rows_b``: the images searched). Returns the candidate rows it
    kept (image indices as ``left``, ``right``; ``rank`` for the pick per pair), ``unverified``,
    ``unchecked`` and the task's seconds.
    """
    from .matching import NearOptions, near_pairs

    _task_threads()
    begin, cpu = time.perf_counter(), time.process_time()
    be = backends.resolve(options["backend"])
    opts = NearOptions(options["threshold"], verify=options["verify"],
                       min_similarity=options["min_similarity"], strategy=options["strategy"])
    ha = side_a.hashset(names[0])
    hb = None if side_b is None else side_b.hashset(names[1])
    cols, reason, unchecked = near_pairs(ha, hb, opts, be, rows_a=rows_a,
                                         rows_b=rows_a if hb is None else rows_b,
                                         part="variants", span=(start, stop))
    cols["left"], cols["right"] = cols.pop("i"), cols.pop("j")
    cols["exact"] = np.zeros(cols["left"].size, bool)
    return {"columns": cols, "unverified": reason, "unchecked": unchecked,
            "seconds": time.perf_counter() - begin, "cpu_seconds": time.process_time() - cpu}


def _variant_rows(ha: HashSet, hb: HashSet | None, rows_a, rows_b, threshold: int,
                  strategy: str, be) -> int:
    # the rows of the side the variant search queries with (0: no variant search)
    from .matching import variant_search

    other = ha if hb is None else hb
    table = other.variant_table
    if table is None or table.shape[0] < 2:
        return 0
    query, index, _, _, second = variant_search(ha, other, rows_a,
                                                rows_a if hb is None else rows_b,
                                                threshold, strategy, be)
    return index.size if second else query.size


def _with_variants(plain: dict, variants: list[dict], verify: bool) -> dict:
    # the plain tasks' rows and the variant tasks' candidate rows, one per pair as in one
    # process (matching.best_per_pair); an exact pair stays exact, untransformed
    from .api import _pair_keys
    from .matching import best_per_pair, mark_exact

    rows = _concat([{**plain, "rank": np.full(plain["left"].size, -1, np.int64)}, *variants])
    exact = plain["left"][plain["exact"]], plain["right"][plain["exact"]]
    rows["i"], rows["j"] = rows.pop("left"), rows.pop("right")
    best = best_per_pair(rows)
    best["left"], best["right"] = best.pop("i"), best.pop("j")
    width = int(max(best["right"].max(initial=0), exact[1].max(initial=0))) + 1
    mark_exact(best, np.isin(_pair_keys(best["left"], best["right"], width),
                             _pair_keys(*exact, width)), verify)
    return best


def overlaps_on_cluster(ha: HashSet, hb: HashSet | None, names: tuple[str, str], *,
                        threshold: int, exact: bool, near: bool, verify: bool, be,
                        strategy: str, min_similarity: float, progress: bool = False,
                        rows: int | None = None, max_pairs: int | None = None):
    """``api._overlaps`` on the active client's workers, one task per block of query rows
    (:func:`search_block`); the same Overlaps, bit for bit."""
    from .api import _classes
    from .groups import representatives
    from .results import MAX_PAIRS, Overlaps

    max_pairs = MAX_PAIRS if max_pairs is None else max_pairs
    client = active_client()
    side_a = ha.worker_side
    side_b = None if hb is None else hb.worker_side
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    # identical images are classes, as in one process: the tasks search one image of each
    # and return the pairs between them, and the Overlaps stands for the classes' pairs
    rep_a = _classes(ha, names[0], exact=exact, verify=verify)
    rep_b = rep_a if hb is None else _classes(hb, names[1], exact=exact, verify=verify)
    rows_a = representatives(rep_a, ha.count)
    rows_b = None if hb is None else representatives(rep_b, hb.count)
    options = {"threshold": threshold, "exact": exact, "near": near, "verify": verify,
               "strategy": strategy, "min_similarity": min_similarity,
               "backend": side_a.backend, "part": "plain"}
    variant_options = dict(options)
    variant_rows = _variant_rows(ha, hb, rows_a, rows_b, threshold, strategy, be) if near else 0
    by_second = False
    if hb is not None:
        # between two sets the tasks take blocks of the side one process queries with (the
        # smaller, under multi-index hashing), with its strategy: the same blocks of query
        # rows, so the same skipping inside big groups (joined.py)
        codes_a, codes_b = ha.phashes[rows_a], hb.phashes[rows_b]
        plan = search.plan_search(codes_a, codes_b, threshold, strategy, be)
        by_second = search.queries_second(plan, codes_a, codes_b)
        options["strategy"] = plan.strategy
    spans = search_spans((rows_b if by_second else rows_a).size, workers, rows)
    shared_a = client.scatter(side_a, broadcast=True, hash=False)
    shared_b = None if side_b is None else client.scatter(side_b, broadcast=True, hash=False)
    shared_rows_a = client.scatter(rows_a, broadcast=True, hash=False)
    shared_rows_b = None if rows_b is None else client.scatter(rows_b, broadcast=True,
                                                               hash=False)
    futures = [client.submit(search_block, shared_a, shared_b, lo, hi, names, options,
                             shared_rows_a, shared_rows_b, by_second, pure=True)
               for lo, hi in spans]
    variant_spans = search_spans(variant_rows, workers, rows) if variant_rows else []
    futures += [client.submit(variant_block, shared_a, shared_b, lo, hi, names,
                              variant_options, shared_rows_a, shared_rows_b, pure=True)
                for lo, hi in variant_spans]
    results = client.gather(futures)
    _LAST_RUN.search_tasks += len(results)
    _LAST_RUN.search_seconds += [r["seconds"] for r in results]
    _LAST_RUN.search_cpu_seconds += [r["cpu_seconds"] for r in results]
    _LAST_RUN.search_rows += [hi - lo for lo, hi in spans + variant_spans]
    cols = _concat([r["columns"] for r in results[:len(spans)]])
    if by_second:  # blocks of the second side: back in (left, right) order
        cols = _by_pair(cols)
    if variant_spans:
        cols = _with_variants(cols, [r["columns"] for r in results[len(spans):]], verify)
    reason = next((r["unverified"] for r in results if r["unverified"]), None)
    return Overlaps(cols["left"], cols["right"], cols["distance"], cols["exact"],
                    threshold=threshold, self_join=hb is None,
                    similarity=cols["similarity"], residual=cols["residual"],
                    shift=cols["shift"], transform=cols["transform"], offset=cols["offset"],
                    verified=cols["verified"], unverified=reason,
                    unchecked=sum(r["unchecked"] for r in results), rep_left=rep_a,
                    rep_right=rep_b, counts=(ha.count, (ha if hb is None else hb).count),
                    max_pairs=max_pairs, verified_exact=verify)

