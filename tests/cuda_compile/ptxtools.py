"""Compile the CUDA kernels to PTX with the real NVVM and assemble them with ptxas, no GPU needed.

Used by the compile tests; ``python tests/cuda_compile/ptxtools.py`` prints the per-kernel
resource table of bench/README.md (run it in a venv with ``numba-cuda[cu12]`` and
``nvidia-cuda-nvcc-cu12``, without NUMBA_ENABLE_CUDASIM).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types as pytypes

#: compute capabilities every kernel must compile for: Turing, Ampere (A100), Hopper (H100)
CCS = ((7, 5), (8, 0), (9, 0))
#: registers of one SM (and the most one block may use), the same on 7.5, 8.0 and 9.0
REGISTERS_PER_SM = 65536
#: per compute capability: most threads, blocks and shared memory (bytes) per SM, shared memory
#: one block may use without opting in, and what the runtime reserves per block
SM_LIMITS = {
    (7, 5): {"threads": 1024, "blocks": 16, "smem": 64 * 1024, "smem_block": 48 * 1024,
             "reserved": 0},
    (8, 0): {"threads": 2048, "blocks": 32, "smem": 164 * 1024, "smem_block": 48 * 1024,
             "reserved": 1024},
    (9, 0): {"threads": 2048, "blocks": 32, "smem": 228 * 1024, "smem_block": 48 * 1024,
             "reserved": 1024},
}


def missing_toolchain() -> str | None:
    """Why the real CUDA compiler cannot run here (None when it can)."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return "NUMBA_ENABLE_CUDASIM is set: numba.cuda is the simulator, not the compiler"
    try:
        import numba_cuda  # noqa: F401
    except ImportError:
        return ("numba-cuda is not installed (pip install 'numba-cuda[cu12]'); numba's "
                "built-in numba.cuda cannot compile without a driver")
    try:
        from numba.cuda.cudadrv import nvvm

        nvvm.NVVM()
    except Exception as exc:  # noqa: BLE001 - any failure to load libNVVM means "no NVVM"
        return f"NVVM cannot be loaded ({type(exc).__name__}: {exc})"
    return None


def ptxas_path() -> str | None:
    """The ptxas of NVIDIA's nvcc wheel (nvidia-cuda-nvcc-cu12), else the one on PATH."""
    try:
        import nvidia.cuda_nvcc as nvcc

        for root in nvcc.__path__:
            candidate = os.path.join(root, "bin", "ptxas")
            if os.access(candidate, os.X_OK):
                return candidate
    except ImportError:
        pass
    return shutil.which("ptxas")


@contextlib.contextmanager
def stand_in_device(cc: tuple[int, int]):
    """Let numba-cuda compile device functions with no driver.

    Its ``compile_device`` (numba/cuda/dispatcher.py) asks ``get_current_device()`` for the
    compute capability; with no driver that raises CudaSupportError. The stand-in answers
    ``cc``. numba caches a device function's IR from its first compile; the IR differs between
    compute capabilities only below 6.0 (atomics, libdevice), so the kernels, compiled for
    each cc, are right for each.
    """
    import numba.cuda.dispatcher as dispatcher

    device = pytypes.SimpleNamespace(compute_capability=cc)
    saved = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: device
    try:
        yield
    finally:
        dispatcher.get_current_device = saved


def compile_ptx(name: str, signature: tuple, cc: tuple[int, int]) -> str:
    """PTX of kernel ``name`` for argument types ``signature`` and compute capability ``cc``."""
    from gpudedup.kernels import cuda as gk
    from numba import cuda

    kernel = getattr(gk, name)
    # the kernel's own decorator options, so the PTX is what a launch would compile
    opts = {k: kernel.targetoptions[k] for k in ("debug", "lineinfo", "fastmath", "opt",
                                                  "forceinline", "launch_bounds")
            if k in kernel.targetoptions}
    ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=cc, **opts)
    return ptx


_REGS = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")
_STACK = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


def assemble(ptx: str, cc: tuple[int, int], ptxas: str) -> dict[str, int]:
    """Assemble ``ptx`` for ``sm_XY`` with ``ptxas -v``; its resource usage.

    Returns
    -------
    dict
        ``registers`` per thread, static ``smem`` bytes per block, ``stack`` (local memory)
        bytes per thread, ``spill_stores`` and ``spill_loads`` bytes.
    """
    arch = f"sm_{cc[0]}{cc[1]}"
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "kernel.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        done = subprocess.run([ptxas, f"-arch={arch}", "-v", src, "-o",
                               os.path.join(tmp, "kernel.cubin")],
                              capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"ptxas -arch={arch} failed:\n{done.stderr}")
    log = done.stderr + done.stdout
    stack = _STACK.search(log)
    smem = _SMEM.search(log)
    return {
        "registers": int(_REGS.search(log).group(1)),
        "smem": int(smem.group(1)) if smem else 0,
        "stack": int(stack.group(1)),
        "spill_stores": int(stack.group(2)),
        "spill_loads": int(stack.group(3)),
    }


class _Shape:
    # stands in for a launch argument whose shape the geometry reads (hamming_range's b)
    shape = (10**7,)


def launch_shape(name: str) -> tuple[int, int]:
    """Threads per block and dynamic shared bytes of ``name`` at the module's launch settings."""
    from gpudedup.kernels import cuda as gk

    _, threads, dynamic = gk._GEOMETRY[name](10**7, (_Shape(), _Shape()))
    return threads, dynamic


def occupancy(cc: tuple[int, int], registers: int, threads: int, smem: int) -> tuple[int, float]:
    """Resident blocks per SM and the share of the SM's thread slots they fill.

    Registers are allocated per warp in units of 256; shared memory per block plus the
    runtime's reserve. Returns ``(0, 0.0)`` when one block does not fit at all.
    """
    lim = SM_LIMITS[cc]
    warps = -(-threads // 32)
    regs_per_warp = -(-registers * 32 // 256) * 256
    by_regs = REGISTERS_PER_SM // (regs_per_warp * warps) if registers else lim["blocks"]
    by_smem = lim["smem"] // (smem + lim["reserved"]) if smem else lim["blocks"]
    blocks = min(lim["blocks"], lim["threads"] // threads, by_regs, by_smem)
    if smem > lim["smem_block"]:
        blocks = 0
    return blocks, blocks * threads / lim["threads"]


def resource_rows():
    """One row per kernel, first signature (the uint8 one for image kernels), per cc."""
    from gpudedup.kernels.signatures import SIGNATURES

    ptxas = ptxas_path()
    for name, sigs in SIGNATURES.items():
        threads, dynamic = launch_shape(name)
        for cc in CCS:
            with stand_in_device(cc):
                ptx = compile_ptx(name, sigs[0], cc)
            res = assemble(ptx, cc, ptxas)
            blocks, occ = occupancy(cc, res["registers"], threads, res["smem"] + dynamic)
            yield name, sigs[0], cc, threads, dynamic, res, blocks, occ


def main() -> int:
    """Print the resource table of every kernel as markdown (bench/README.md)."""
    print("| kernel | cc | regs/thread | smem static + dynamic (B) | local (B) | spill st/ld (B) "
          "| threads/block | blocks/SM | occupancy |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, _, cc, threads, dynamic, res, blocks, occ in resource_rows():
        print(f"| {name} | {cc[0]}.{cc[1]} | {res['registers']} | {res['smem']} + {dynamic} "
              f"| {res['stack']} | {res['spill_stores']}/{res['spill_loads']} | {threads} "
              f"| {blocks} | {occ:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
