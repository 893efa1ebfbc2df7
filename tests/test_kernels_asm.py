"""The CPU popcount is the hardware instruction: llvm.ctpop compiles to popcnt on x86-64."""

import platform

import numpy as np
import pytest
from gpudedup.kernels import cpu
from numba import njit


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="popcnt is the x86-64 instruction")
def test_search_kernels_use_popcnt():
    # compile fresh copies (cached code cannot be inspected) with the same options
    for kernel, args in [
        (cpu._scan_row, (np.uint64(1), np.arange(8, dtype=np.uint64), 0, 8, np.uint64(3), 0, 0,
                         0, np.zeros((1, 4), np.int64), np.zeros((1, 4), np.int64),
                         np.zeros((1, 4), np.uint8))),
    ]:
        fresh = njit(nogil=True)(kernel.py_func)
        fresh(*args)
        asm = fresh.inspect_asm(fresh.signatures[0])
        assert "popcnt" in asm


def test_popcount_intrinsic_values():
    @njit
    def count(x):
        return cpu.popcount64(x)

    rng = np.random.default_rng(0)
    for value in [0, 1, 2**63, 2**64 - 1, *rng.integers(0, 2**63, 20).tolist()]:
        assert count(np.uint64(value)) == bin(value).count("1")
