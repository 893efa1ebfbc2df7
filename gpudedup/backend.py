"""Choosing a backend: "cpu" (numba) or "cuda" (CuPy + numba.cuda), and what drivers need of it.

A :class:`Backend` gives the drivers an array module (``xp``), the kernel module whose functions
have the same names and arguments on both backends, and ``launch`` to run one of them over a
number of work items.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from .checks import is_cupy
from .errors import BackendError, InputError

#: share of free device memory one batch (input plus scratch) may take
DEVICE_BATCH_SHARE = 0.125

BACKENDS = ("auto", "cpu", "cuda")

CUDA_INSTALL_HINT = (
    "install the GPU extra (pip install 'gpudedup[cuda12]' or 'gpudedup[cuda13]') on a machine "
    "with an NVIDIA GPU and driver, or use backend='cpu'"
)


@dataclass(frozen=True)
class Backend:
    """A resolved backend.

    Attributes
    ----------
    name : str
        ``"cpu"`` or ``"cuda"``.
    xp : module
        The array module that owns this backend's memory (numpy, or CuPy; numpy under the CUDA
        simulator).
    kernels : module
        ``gpudedup.kernels.cpu`` or ``gpudedup.kernels.cuda``.
    """

    name: str
    xp: ModuleType
    kernels: ModuleType

    def launch(self, kernel: str, items: int, *args) -> None:
        """Run kernel ``kernel`` over ``items`` work items (its first parallel axis)."""
        fn = getattr(self.kernels, kernel)
        if self.name == "cpu":
            fn(*args)
        else:
            self.kernels.launch(fn, kernel, items, *args)

    def to_device(self, array):
        """``array`` in this backend's memory: a no-op on the CPU; a copy for cuda unless it is
        already a CuPy array (numpy standing in for CuPy copies too, as a transfer would)."""
        if self.name == "cpu" or is_cupy(array):
            return self.xp.asarray(array)
        return self.xp.array(array, copy=True)

    def to_host(self, array) -> np.ndarray:
        """``array`` as a host numpy array."""
        return to_host(array)

    def batch_bytes(self) -> int | None:
        """Bytes of images one batch may hold on the device (None: no device limit)."""
        if self.xp is np:
            return None
        free, _ = self.xp.cuda.runtime.memGetInfo()
        return int(free * DEVICE_BATCH_SHARE)

    def map_batches(self, batches: Iterable[tuple[int, object]],
                    work: Callable[[object], dict]) -> Iterator[tuple[int, dict]]:
        """Run ``work(device_batch) -> {name: device array}`` on each ``(start, batch)``;
        yield ``(start, {name: host array})`` in order.

        On a GPU (CuPy) two batches are in flight on two streams: while one is copied in from
        pinned memory and hashed, the next is read on the host. Elsewhere it is a plain loop.
        """
        if self.xp is np:
            for start, batch in batches:
                device = self.to_device(np.asarray(batch))
                yield start, {k: self.to_host(v) for k, v in work(device).items()}
            return
        yield from _cupy_pipeline(self.xp, batches, work)


def to_host(array) -> np.ndarray:
    """A numpy or CuPy array as a host numpy array (numpy arrays as they are)."""
    return array if isinstance(array, np.ndarray) else array.get()


def _cupy_pipeline(cupy, batches, work):
    # double buffering: pinned staging buffer and stream per slot; a slot is reused only after
    # the batch that used it has finished
    streams = [cupy.cuda.Stream(non_blocking=True) for _ in range(2)]
    # non-blocking streams do not wait for the caller's stream: what was queued there before
    # (the phash constants, CuPy input images) must be done before the batches read it
    cupy.cuda.get_current_stream().synchronize()
    staging: list[np.ndarray | None] = [None, None]
    pending: list[tuple[int, object, dict]] = []

    def finish(item):
        start, stream, results = item
        stream.synchronize()
        return start, {k: v.get() for k, v in results.items()}

    for k, (start, batch) in enumerate(batches):
        slot = k % 2
        if len(pending) == 2:
            yield finish(pending.pop(0))
        stream = streams[slot]
        with stream:
            if isinstance(batch, cupy.ndarray):
                device = batch
            else:
                host = np.ascontiguousarray(batch)
                if staging[slot] is None or staging[slot].nbytes < host.nbytes:
                    memory = cupy.cuda.alloc_pinned_memory(max(host.nbytes, 1))
                    staging[slot] = np.frombuffer(memory, np.uint8, max(host.nbytes, 1))
                pinned = staging[slot][:host.nbytes].view(host.dtype).reshape(host.shape)
                np.copyto(pinned, host)
                device = cupy.empty(host.shape, dtype=host.dtype)
                device.set(pinned, stream=stream)
            pending.append((start, stream, work(device)))
    for item in pending:
        yield finish(item)


def cuda_simulated() -> bool:
    """Whether numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def cuda_available() -> bool:
    """Whether the cuda backend can run here: a GPU with CuPy, or the CUDA simulator."""
    try:
        return cuda_unavailable_reason() is None
    except Exception:  # noqa: BLE001 - a driver failing in a way not foreseen means "no GPU"
        return False


#: the extras that install CuPy and numba-cuda, by CUDA major version
CUDA_EXTRAS = {12: 'pip install "gpudedup[cuda12]"', 13: 'pip install "gpudedup[cuda13]"'}
_EXTRA_HINT = f"{CUDA_EXTRAS[12]} (CUDA 12 driver) or {CUDA_EXTRAS[13]} (CUDA 13 driver)"


def cuda_version(code: int) -> str:
    """A CUDA version as CUDA encodes it (12040) in the usual form ("12.4")."""
    return f"{code // 1000}.{code % 1000 // 10}"


def cuda_unavailable_reason() -> str | None:
    """Why the cuda backend cannot run here, in one sentence a user can act on; None when it
    can (a GPU that CuPy and numba.cuda both see, or the CUDA simulator)."""
    if cuda_simulated():
        return None
    try:
        import cupy
    except ModuleNotFoundError as exc:
        if exc.name != "cupy":  # CuPy is there, a dependency of it is not
            return f"CuPy is installed but does not import ({exc}): reinstall it with " \
                   f"{_EXTRA_HINT}"
        return f"CuPy is not installed: {_EXTRA_HINT}, on a machine with an NVIDIA GPU"
    except (ImportError, OSError, RuntimeError) as exc:  # e.g. a CUDA library it cannot load
        return f"CuPy is installed but does not import ({type(exc).__name__}: {exc}): " \
               f"reinstall it with {_EXTRA_HINT}"
    try:
        from numba import cuda
    except ImportError as exc:
        return f"numba-cuda is not installed ({exc}): {_EXTRA_HINT}"
    runtime = cupy.cuda.runtime
    try:
        count = runtime.getDeviceCount()
    except RuntimeError as exc:  # CuPy's CUDARuntimeError: no driver, too old, no device
        return _runtime_error_reason(runtime, exc)
    if count < 1:
        return "the NVIDIA driver sees no GPU" + _visible_devices_note()
    if getattr(cuda, "implementation", "NVIDIA") == "Built-in" and not _numba_cuda_installed():
        # numba's own CUDA target is deprecated and finds no NVVM in CuPy's pip wheels
        return f"numba-cuda is not installed (numba's deprecated built-in CUDA target is not " \
               f"supported): {_EXTRA_HINT}"
    # numba.cuda.is_available() catches the driver's errors itself and returns False
    if not cuda.is_available():
        error = getattr(cuda, "cuda_error", lambda: None)()
        return f"CuPy sees {count} GPU(s) but numba.cuda cannot use them ({error}): " \
               f"reinstall numba-cuda with {_EXTRA_HINT}"
    return None


def _numba_cuda_installed() -> bool:
    import importlib.metadata

    try:
        importlib.metadata.version("numba-cuda")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _runtime_error_reason(runtime, exc: RuntimeError) -> str:
    text = str(exc)
    if text.startswith("cudaErrorNoDevice"):
        return "the NVIDIA driver is installed but sees no GPU" + _visible_devices_note()
    if not text.startswith("cudaErrorInsufficientDriver"):
        return f"CuPy cannot use the GPU ({type(exc).__name__}: {text}); check nvidia-smi"
    try:
        driver = int(runtime.driverGetVersion())  # 0: no driver at all
        built = int(runtime.runtimeGetVersion())
    except RuntimeError:
        driver, built = 0, 0
    if driver == 0:
        return "CuPy is installed but no NVIDIA driver was found (libcuda.so cannot be " \
               "loaded): install the NVIDIA driver, or use backend='cpu' on this machine"
    have, need = cuda_version(driver), cuda_version(built) if built else "a newer CUDA"
    fit = CUDA_EXTRAS.get(driver // 1000)
    other = f", or install the build for this driver: {fit}" if fit else ""
    return f"the NVIDIA driver supports CUDA {have} but this CuPy needs CUDA {need}: update " \
           f"the driver{other}"


def _visible_devices_note() -> str:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return ": check nvidia-smi, or use backend='cpu'"
    return f": CUDA_VISIBLE_DEVICES={visible!r} may hide it; check nvidia-smi"


def _cuda_backend() -> Backend:
    if not cuda_available():
        reason = cuda_unavailable_reason() or "the CUDA probe failed"
        raise BackendError(f"backend: 'cuda' cannot run here: {reason}")
    kernels = importlib.import_module("gpudedup.kernels.cuda")
    if cuda_simulated():
        return Backend("cuda", np, kernels)
    import cupy

    return Backend("cuda", cupy, kernels)


def _cpu_backend() -> Backend:
    return Backend("cpu", np, importlib.import_module("gpudedup.kernels.cpu"))


def resolve(backend: str, *inputs) -> Backend:
    """The backend for ``backend`` ("auto", "cpu" or "cuda") given the inputs of a call.

    "auto" picks cuda when an input is a CuPy array or the cuda backend can run (a GPU, or
    the CUDA simulator), else cpu.
    """
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise InputError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "cpu":
        return _cpu_backend()
    if backend == "cuda":
        return _cuda_backend()
    if any(is_cupy(x) for x in inputs) or cuda_available():
        return _cuda_backend()
    return _cpu_backend()
