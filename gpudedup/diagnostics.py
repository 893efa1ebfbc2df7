"""What a bug report needs to know about this machine: versions, hardware, and which backends
work here (and, where one does not, why).

``gd.info()`` returns it as a plain dict; ``gpudedup info`` prints it (``--json`` as JSON).
Nothing here prints, and nothing can hang: the CUDA driver is probed in a worker thread that
is given up on after :data:`PROBE_TIMEOUT` seconds.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import sys
import threading

from . import backend
from ._version import __version__

#: seconds the CUDA probe may take before it is reported as hung (a wedged driver can block)
PROBE_TIMEOUT = 30.0

#: distributions whose versions are reported, by the name they are shown under
PACKAGES = {"numpy": "numpy", "numba": "numba", "numba-cuda": "numba-cuda", "h5py": "h5py",
            "pillow": "pillow", "tqdm": "tqdm"}


def info() -> dict:
    """What gpudedup sees of this machine, for bug reports: a JSON-serialisable dict.

    Returns
    -------
    dict
        ``gpudedup``, ``python``, ``platform``, ``cpu`` and ``cpu_cores``; ``packages``: the
        version of numpy, numba, numba-cuda, cupy (every ``cupy*`` distribution installed),
        h5py, hdf5 (the library h5py was built with), pillow and tqdm, None where absent;
        ``numba_cache``: the folder compiled kernels are cached in; ``backends``: for "cpu" and
        "cuda", ``available`` (bool) and ``reason`` (why not, in one sentence, else None), plus
        for cuda ``simulated``, ``note``, and where a GPU is used ``gpus`` (name, memory,
        compute capability), ``driver`` and ``runtime`` (CUDA versions).

    Examples
    --------
    >>> import gpudedup as gd
    >>> report = gd.info()
    >>> sorted(report["backends"])
    ['cpu', 'cuda']
    >>> report["backends"]["cpu"]["available"]
    True
    >>> import json
    >>> json.loads(json.dumps(report)) == report
    True
    """
    return {
        "gpudedup": __version__,
        "python": f"{platform.python_version()} ({platform.python_implementation()}, "
                  f"{sys.executable})",
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_cores": _cores(),
        "packages": _packages(),
        "numba_cache": _numba_cache(),
        "backends": {"cpu": _cpu_backend(), "cuda": _cuda_backend()},
    }


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                # x86 says "model name"; some ARM kernels say "Hardware" or "Processor"
                if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                    return value.strip()
    except OSError:  # not Linux
        pass
    return platform.processor() or None


def _cores() -> dict:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"logical": os.cpu_count(), "usable": usable}


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _packages() -> dict:
    found = {name: _version(dist) for name, dist in PACKAGES.items()}
    # CuPy ships as cupy-cuda12x, cupy-cuda13x, cupy-rocm-*, or cupy from source; more than one
    # installed at once is itself a known cause of trouble, so all are listed
    cupy = sorted(f"{d.metadata['Name']} {d.version}" for d in importlib.metadata.distributions()
                  if (d.metadata["Name"] or "").lower().startswith("cupy"))
    found["cupy"] = ", ".join(cupy) or None
    try:
        import h5py

        found["hdf5"] = h5py.version.hdf5_version
    except ImportError:
        found["hdf5"] = None
    order = ("numpy", "numba", "numba-cuda", "cupy", "h5py", "hdf5", "pillow", "tqdm")
    return {name: found[name] for name in order}


def _numba_cache() -> str:
    from numba.core import config

    from ._numba_cache import cache_root

    # NUMBA_CACHE_DIR, when set, is used as numba reads it; otherwise gpudedup's own folder
    return config.CACHE_DIR or cache_root()


def _cpu_backend() -> dict:
    try:
        importlib.import_module("gpudedup.kernels.cpu")
    except ImportError as exc:
        return {"available": False, "reason": f"the CPU kernels do not import ({exc})"}
    from numba.core import config

    return {"available": True, "reason": None, "threads": config.NUMBA_NUM_THREADS}


def _cuda_backend() -> dict:
    result: dict = {"available": False, "reason": None, "simulated": False, "note": None}

    def probe():
        try:
            result.update(_probe_cuda())
        except Exception as exc:  # noqa: BLE001 - a report, not a crash: say what was raised
            result.update(available=False,
                          reason=f"probing the GPU raised {type(exc).__name__}: {exc}")

    # the driver is called in a worker thread, so that a wedged driver cannot hang the report
    worker = threading.Thread(target=probe, name="gpudedup-cuda-probe", daemon=True)
    worker.start()
    worker.join(PROBE_TIMEOUT)
    if worker.is_alive():
        return {"available": False,
                "reason": f"the CUDA driver did not answer within {PROBE_TIMEOUT:g} s (a GPU "
                          "or driver in a bad state?): check nvidia-smi, or use backend='cpu'",
                "simulated": False, "note": None}
    return result


def _probe_cuda() -> dict:
    if backend.cuda_simulated():
        return {"available": True, "reason": None, "simulated": True,
                "note": "numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1): the CUDA kernels "
                        "run as plain Python on the CPU, very slowly; unset it to use a GPU"}
    reason = backend.cuda_unavailable_reason()
    if reason is not None:
        return {"available": False, "reason": reason}
    import cupy

    runtime = cupy.cuda.runtime
    gpus = []
    for index in range(runtime.getDeviceCount()):
        props = runtime.getDeviceProperties(index)
        with cupy.cuda.Device(index):
            free, total = runtime.memGetInfo()
        name = props["name"]
        gpus.append({
            "index": index,
            "name": name.decode(errors="replace") if isinstance(name, bytes) else str(name),
            "memory_bytes": int(total),
            "free_bytes": int(free),
            "compute_capability": f"{props['major']}.{props['minor']}",
        })
    return {"available": True, "reason": None, "gpus": gpus,
            "current_device": int(runtime.getDevice()),
            "driver": backend.cuda_version(runtime.driverGetVersion()),
            "runtime": backend.cuda_version(runtime.runtimeGetVersion())}
