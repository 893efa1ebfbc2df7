"""Image inputs (numpy, CuPy, h5py datasets, "file.h5:/dataset" strings) as validated sources.

A source knows its count, per-image shape and dtype, yields batches along N and reads back
single images for exact verification. Validation happens here, once, with the caller's argument
name in every message.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import re
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .checks import is_cupy
from .errors import FileError, InputError, InputTypeError

#: bytes of images per batch when the caller does not choose a batch size
DEFAULT_BATCH_BYTES = 16 * 2**20
#: batches read ahead by the background reader of file-backed sources
PREFETCH = 1
#: host memory the hashes of one image take: a 128-bit digest and a 64-bit phash
HASH_BYTES_PER_IMAGE = 24


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
        n = self.count
        if indices.size and (indices.min() < -n or indices.max() >= n):
            raise IndexError(f"{self.name}: image index out of range for {n} images")
        # h5py wants increasing, unique indices
        unique, inverse = np.unique(np.where(indices < 0, indices + n, indices),
                                    return_inverse=True)
        chunks = getattr(self.data, "chunks", None)
        if not chunks or not unique.size:
            return np.asarray(self.data[unique])[inverse]
        # One slice per chunk along N, from its first wanted row to its last: HDF5
        # decompresses each chunk a read touches, so each chunk is decompressed once (a
        # fancy read of many rows is also far slower in h5py than a few slices).
        out = np.empty((unique.size,) + self.image_shape, dtype=self.dtype)
        cuts = np.flatnonzero(np.diff(unique // chunks[0])) + 1
        for lo, hi in zip(np.r_[0, cuts].tolist(), np.r_[cuts, unique.size].tolist()):
            first, last = int(unique[lo]), int(unique[hi - 1])
            out[lo:hi] = self.data[first:last + 1][unique[lo:hi] - first]
        return out[inverse]


def _prefetch(source: ImageSource, spans: list[tuple[int, int]]):
    # A reader thread reads batches straight into PREFETCH + 2 reused buffers (no allocation
    # per batch, so resident memory stays flat) and hands them over through a queue
    # PREFETCH deep. The buffer a batch sits in is reused only after the consumer has asked
    # for the batch after it. Errors travel through the queue.
    if not spans:  # an empty split: nothing to read
        return
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
                try:
                    source.data.read_direct(batch, np.s_[start:stop])
                except OSError as exc:  # a damaged chunk, a missing filter: say which images
                    raise FileError(f"{source.name}: cannot read images {start} to {stop - 1} "
                                    f"of {source.description} (HDF5: {exc}); the file may be "
                                    "damaged") from exc
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
    """Open an HDF5 file read-only with a chunk cache sized for batches.

    Parameters
    ----------
    path : str
        The file.
    name : str
        The argument or option that named it, for error messages.

    Raises
    ------
    InputError
        The file is missing, a directory, not HDF5, truncated or damaged.
    FileError
        It cannot be read: permission denied, locked by a writer, an I/O error.
    """
    import h5py

    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{name}: file {path!r} does not exist") from None
    except PermissionError:
        raise FileError(f"{name}: permission denied reaching {path!r} (a folder on its path "
                        "cannot be searched); give your user access to it") from None
    except OSError as exc:
        raise FileError(f"{name}: cannot read {path!r}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{name}: {path!r} is a directory, not an HDF5 file")
    try:
        return h5py.File(path, "r", rdcc_nbytes=DEFAULT_BATCH_BYTES, rdcc_nslots=10007)
    except OSError as exc:
        raise _open_error(exc, path, name) from None


def _open_error(exc: OSError, path: str, name: str) -> Exception:
    # h5py reports every failure to open as an OSError; its errno and HDF5's message tell
    # which one it was, so that the user is told the true reason
    text = str(exc)
    if "unable to lock file" in text:
        if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            return FileError(
                f"{name}: {path!r} is locked by another process (HDF5 file locking): a program "
                "has it open for writing; close the writer, or set HDF5_USE_FILE_LOCKING=FALSE "
                "if you know that it no longer writes")
        return FileError(f"{name}: {path!r} cannot be locked for reading (HDF5 file locking: "
                         f"{os.strerror(exc.errno) if exc.errno else text}); set "
                         "HDF5_USE_FILE_LOCKING=FALSE where the file system has no locks")
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM):
        return FileError(f"{name}: permission denied reading {path!r}; give your user read "
                         "access to it (chmod, chown) or run as a user who has it")
    if "file signature not found" in text:
        return InputError(f"{name}: {path!r} is not an HDF5 file")
    if "truncated file" in text:
        sizes = re.search(r"eof = (\d+).*stored_eof = (\d+)", text)
        detail = (f": {int(sizes[1]):,} bytes where its header says {int(sizes[2]):,}"
                  if sizes else "")
        return InputError(f"{name}: {path!r} is truncated{detail}, so it is not a valid HDF5 "
                          "file; copy or download it again")
    if exc.errno not in (None, 0):
        return FileError(f"{name}: cannot read {path!r}: {os.strerror(exc.errno)}")
    reason = text.replace("Unable to synchronously open file ", "").strip("() ")
    return InputError(f"{name}: {path!r} is not a valid HDF5 file: it is damaged ({reason})")


def dangling_link(handle, dataset: str) -> str | None:
    """Why ``dataset`` cannot be reached in an open HDF5 file because of a link, or None.

    Parameters
    ----------
    handle : h5py.File
        The open file.
    dataset : str
        A path in it.

    Returns
    -------
    str or None
        ``"'/a' is a dangling soft link to '/nowhere'"`` (or an external link whose file or
        object is missing) for the first link on the path that leads nowhere; None when every
        link on it resolves or the path is simply absent.
    """
    import h5py

    here = ""
    for part in (p for p in dataset.split("/") if p):
        here = f"{here}/{part}"
        try:
            link = handle.get(here, getlink=True)
        except (KeyError, ValueError):
            return None
        if link is None:
            return None
        try:
            handle[here]
        except KeyError:
            if isinstance(link, h5py.SoftLink):
                return f"{here!r} is a dangling soft link to {link.path!r}"
            if isinstance(link, h5py.ExternalLink):
                return (f"{here!r} is a dangling external link to "
                        f"{link.filename}:{link.path} ({_external_reason(handle, link)})")
            return None
    return None


def _external_reason(handle, link) -> str:
    # HDF5 looks for a relative target beside the linking file, then in the working directory
    target = link.filename
    if not os.path.isabs(target):
        beside = os.path.join(os.path.dirname(os.path.abspath(handle.filename)), target)
        target = beside if os.path.exists(beside) else target
    if not os.path.exists(target):
        return f"no file {link.filename!r} beside {handle.filename!r}"
    return f"{target!r} exists but has no object {link.path!r} or cannot be opened"


def get_dataset(handle, dataset: str, name: str):
    """``handle[dataset]`` if it is a dataset; InputError naming ``name`` otherwise."""
    import h5py

    path = handle.filename
    try:
        why = dangling_link(handle, dataset)
        if why is not None:
            raise InputError(f"{name}: {why} in {path!r}; point it at a dataset that exists")
        if dataset not in handle:
            raise InputError(f"{name}: {path!r} has no dataset {dataset!r}")
        obj = handle[dataset]
    except (KeyError, ValueError, RuntimeError, OSError) as exc:
        if isinstance(exc, InputError):
            raise
        # HDF5 met bad metadata on the way (a damaged object header or heap)
        raise InputError(f"{name}: cannot open {dataset!r} in {path!r}: the file is damaged, "
                         f"not a valid HDF5 file (HDF5: {exc})") from None
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
    except BaseException:
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
    try:
        check_images(data.shape, np.dtype(data.dtype), name)
        if _is_h5_dataset(data):
            # a file may declare far more images than it holds (unwritten chunks cost nothing):
            # refuse before the hashes' arrays are allocated rather than fail with MemoryError
            check_memory(int(data.shape[0]) * HASH_BYTES_PER_IMAGE, name,
                         f"{description} declares {int(data.shape[0]):,} images; their hashes "
                         f"({HASH_BYTES_PER_IMAGE} bytes per image)")
    except BaseException:
        if handle is not None:
            handle.close()
        raise
    return ImageSource(name=name, data=data, description=description, _file=handle)


def available_memory() -> int | None:
    """Bytes of memory this process can still get (RAM and swap, within its cgroup's limit).

    Returns None where the system does not say.
    """
    avail = None
    try:
        with open("/proc/meminfo") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo if ":" in line)
        avail = (int(fields["MemAvailable"].split()[0])
                 + int(fields.get("SwapFree", "0 kB").split()[0])) * 1024
    except (OSError, KeyError, ValueError):
        with contextlib.suppress(ValueError, OSError, AttributeError):
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:  # a container's limit (cgroup v2) may be below the machine's free memory
        with open("/sys/fs/cgroup/memory.max") as limit, \
                open("/sys/fs/cgroup/memory.current") as used:
            text = limit.read().strip()
            if text != "max":
                left = max(0, int(text) - int(used.read().strip()))
                avail = left if avail is None else min(avail, left)
    except (OSError, ValueError):
        pass
    return avail


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:,.1f} GiB"


def check_memory(nbytes: int, name: str, what: str) -> None:
    """Raise InputError naming ``name`` if ``nbytes`` more bytes would not fit in memory.

    Parameters
    ----------
    nbytes : int
        Bytes about to be allocated.
    name : str
        The argument or option responsible, for the message.
    what : str
        What needs them (``"file.h5:/x declares 3,000,000,000 images; their hashes"``).
    """
    avail = available_memory()
    if avail is None or nbytes <= avail:
        return
    raise InputError(
        f"{name}: {what} need {_gib(nbytes)} of memory, but only {_gib(avail)} is available; "
        "check that the file holds that many images (a damaged or placeholder dataset can "
        "declare sizes it does not hold), or run where more memory is free")


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
