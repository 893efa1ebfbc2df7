"""Image inputs (numpy, CuPy, h5py datasets, "file.h5:/dataset" strings) as validated sources.

A source knows its count, per-image shape and dtype, yields batches along N and reads back
single images for exact verification. Validation happens here, once, with the caller's argument
name in every message.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .checks import is_cupy
from .errors import InputError, InputTypeError

#: bytes of images per batch when the caller does not choose a batch size
DEFAULT_BATCH_BYTES = 16 * 2**20
#: batches read ahead by the background reader of file-backed sources
PREFETCH = 1


@dataclass
class ImageSource:
    """Images of one argument, read in batches along the first axis.

    Attributes
    ----------
    name : str
        The argument's name, used in every error message (``"a"``, ``"splits['train']"``).
    data : array-like
        numpy array, CuPy array or h5py dataset of shape ``(N, H, W)`` or ``(N, H, W, 3)``.
    description : str
        Where the images come from, for reports (``"numpy array"``, ``"file.h5:/train"``).
    """

    name: str
    data: object
    description: str
    _file: object = field(default=None, repr=False)

    @property
    def count(self) -> int:
        return int(self.data.shape[0])

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.data.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.data.dtype)

    @property
    def is_file(self) -> bool:
        return _is_h5_dataset(self.data)

    @property
    def readable(self) -> bool:
        """False once the HDF5 file behind the source has been closed."""
        return not self.is_file or bool(self.data.id.valid)

    def default_batch_size(self) -> int:
        per_image = max(1, int(np.prod(self.image_shape)) * self.dtype.itemsize)
        return max(1, DEFAULT_BATCH_BYTES // per_image)

    def aligned_batch_size(self, size: int) -> int:
        """``size`` rounded down to whole HDF5 chunks along N (so each chunk is read once)."""
        chunks = getattr(self.data, "chunks", None)
        if chunks:
            size = max(chunks[0], size - size % chunks[0])
        return size

    def _read(self, start: int, stop: int):
        return self.data[start:stop]

    def batches(self, batch_size: int | None = None, *,
                align: bool | None = None) -> Iterator[tuple[int, object]]:
        """Yield ``(start, images[start:start + batch])`` in order.

        The size (default: about DEFAULT_BATCH_BYTES of images) is rounded down to whole HDF5
        chunks when ``align`` is True (default: when no batch size was given).

        numpy and CuPy batches are views. HDF5 batches are whole chunks along N, read by a
        background thread one batch ahead into reused buffers (so reading overlaps hashing and
        memory holds three batches); a batch is valid until the next one is asked for.
        """
        size = batch_size or self.default_batch_size()
        if align or (align is None and batch_size is None):
            size = self.aligned_batch_size(size)
        spans = [(start, min(start + size, self.count)) for start in range(0, self.count, size)]
        if not self.is_file:
            for start, stop in spans:
                yield start, self._read(start, stop)
            return
        yield from _prefetch(self, spans)

    def take(self, indices: np.ndarray) -> np.ndarray:
        """The images at ``indices`` as a host numpy array (for byte-for-byte verification)."""
        indices = np.asarray(indices, dtype=np.int64)
        if is_cupy(self.data):
            return self.data[indices].get()
        if isinstance(self.data, np.ndarray):
            return self.data[indices]
        # h5py wants increasing, unique indices
        unique, inverse = np.unique(indices, return_inverse=True)
        return np.asarray(self.data[unique])[inverse]


def _prefetch(source: ImageSource, spans: list[tuple[int, int]]):
    # A reader thread reads batches straight into PREFETCH + 2 reused buffers (no allocation
    # per batch, so resident memory stays flat) and hands them over through a queue
    # PREFETCH deep. The buffer a batch sits in is reused only after the consumer has asked
    # for the batch after it. Errors travel through the queue.
    ready: queue.Queue = queue.Queue(maxsize=PREFETCH)
    stop_reading = threading.Event()
    longest = max(stop - start for start, stop in spans)
    buffers = [np.empty((longest,) + source.image_shape, dtype=source.dtype)
               for _ in range(PREFETCH + 2)]

    def reader():
        try:
            for k, (start, stop) in enumerate(spans):
                if stop_reading.is_set():
                    return
                batch = buffers[k % len(buffers)][:stop - start]
                source.data.read_direct(batch, np.s_[start:stop])
                ready.put((start, batch))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            ready.put(exc)
        else:
            ready.put(None)

    thread = threading.Thread(target=reader, name="gpudedup-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop_reading.set()
        while thread.is_alive():  # unblock a reader waiting to put
            with contextlib.suppress(queue.Empty):
                ready.get(timeout=0.05)
        thread.join()


def _is_h5_dataset(obj) -> bool:
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        return False
    return isinstance(obj, h5py.Dataset)


def split_h5_path(spec: str) -> tuple[str, str]:
    """``"file.h5:/group/dataset"`` -> ``("file.h5", "/group/dataset")``."""
    path, sep, dataset = spec.rpartition(":")
    if not sep or not path or not dataset:
        raise InputError(f"expected 'file.h5:/dataset', got {spec!r}")
    return path, dataset if dataset.startswith("/") else "/" + dataset


def open_h5_file(path: str, name: str):
    """Open an HDF5 file read-only with a chunk cache sized for batches; ValueError naming
    ``name`` when it is missing or not HDF5."""
    import h5py

    if not os.path.exists(path):
        raise InputError(f"{name}: file {path!r} does not exist")
    if os.path.isdir(path):
        raise InputError(f"{name}: {path!r} is a directory, not an HDF5 file")
    try:
        return h5py.File(path, "r", rdcc_nbytes=DEFAULT_BATCH_BYTES, rdcc_nslots=10007)
    except OSError:
        raise InputError(f"{name}: {path!r} is not an HDF5 file") from None


def get_dataset(handle, dataset: str, name: str):
    """``handle[dataset]`` if it is a dataset; ValueError naming ``name`` otherwise."""
    import h5py

    path = handle.filename
    if dataset not in handle:
        raise InputError(f"{name}: {path!r} has no dataset {dataset!r}")
    obj = handle[dataset]
    if not isinstance(obj, h5py.Dataset):
        raise InputError(f"{name}: {dataset!r} in {path!r} is a group, not a dataset")
    return obj


def open_h5_dataset(spec: str, name: str):
    """Open ``"file.h5:/dataset"`` read-only; returns ``(file, dataset)``."""
    try:
        path, dataset = split_h5_path(spec)
    except ValueError as exc:
        raise InputError(f"{name}: {exc}") from None
    handle = open_h5_file(path, name)
    try:
        return handle, get_dataset(handle, dataset, name)
    except ValueError:
        handle.close()
        raise


def as_source(obj, name: str) -> ImageSource:
    """Validate ``obj`` as a stack of images and wrap it as an :class:`ImageSource`."""
    handle = None
    if isinstance(obj, (str, os.PathLike)):
        spec = os.fspath(obj)
        handle, data = open_h5_dataset(spec, name)
        description = spec
    elif _is_h5_dataset(obj):
        data = obj
        description = f"{obj.file.filename}:{obj.name}"
    elif isinstance(obj, np.ndarray) or is_cupy(obj):
        data = obj
        description = "cupy array" if is_cupy(obj) else "numpy array"
    elif hasattr(obj, "__array__") or isinstance(obj, (list, tuple)):
        try:
            data = np.asarray(obj)
        except ValueError as exc:
            raise InputError(f"{name}: cannot make one array of the images ({exc})") from None
        description = "numpy array"
    else:
        raise InputTypeError(
            f"{name}: expected a numpy or CuPy array, an h5py dataset, a 'file.h5:/dataset' "
            f"string or a HashSet, got {type(obj).__name__}"
        )
    check_images(data.shape, np.dtype(data.dtype), name)
    return ImageSource(name=name, data=data, description=description, _file=handle)


def check_images(shape: tuple[int, ...], dtype: np.dtype, name: str) -> None:
    """Raise if ``shape``/``dtype`` are not a stack of grayscale or uint8 RGB images."""
    if dtype.kind not in "biuf":
        raise InputTypeError(
            f"{name}: images must have an integer or float dtype, got {dtype}"
        )
    if len(shape) == 4:
        if shape[3] != 3:
            raise InputError(
                f"{name}: a 4-d input must be (N, H, W, 3) RGB, got shape {tuple(shape)}"
            )
        if dtype != np.uint8:
            raise InputTypeError(f"{name}: RGB images must be uint8, got {dtype}")
    elif len(shape) != 3:
        raise InputError(
            f"{name}: expected images of shape (N, H, W) or (N, H, W, 3), got shape "
            f"{tuple(shape)} ({len(shape)}-d)"
        )
    if shape[1] == 0 or shape[2] == 0:
        raise InputError(f"{name}: images must have non-zero height and width, got shape "
                         f"{tuple(shape)}")
