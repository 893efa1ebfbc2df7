"""Compile tests: every CUDA kernel through the real NVVM (and ptxas where present), no GPU.

They need numba-cuda with NVVM from NVIDIA's wheels (``pip install 'numba-cuda[cu12]'
nvidia-cuda-nvcc-cu12``) and must run without NUMBA_ENABLE_CUDASIM; elsewhere (the plain test
venv, the simulator run) the whole directory is skipped with the reason.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ptxtools import missing_toolchain  # noqa: E402

_REASON = missing_toolchain()


def pytest_collection_modifyitems(config, items):
    if _REASON is None:
        return
    skip = pytest.mark.skip(reason=f"CUDA compile tests need the real compiler: {_REASON}")
    for item in items:
        if "/tests/cuda_compile/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(skip)
