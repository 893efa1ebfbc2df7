"""Every CUDA kernel, for every launch signature in kernels/signatures.py, compiled to PTX by
the real NVVM for compute capabilities 7.5, 8.0 and 9.0, and assembled by ptxas: no spills,
registers and shared memory that the launch geometry can get."""

import pytest
from gpudedup.kernels import cuda as gk
from gpudedup.kernels.signatures import SIGNATURES
from ptxtools import (
    CCS,
    REGISTERS_PER_SM,
    SM_LIMITS,
    assemble,
    compile_ptx,
    launch_shape,
    ptxas_path,
    stand_in_device,
)

CASES = [(name, k, cc) for name, sigs in SIGNATURES.items() for k in range(len(sigs))
         for cc in CCS]
#: kernels whose PTX must hold no float64 conversion: popcount comparisons stay integer
INTEGER_ONLY = ("hamming_range", "mih_range", "mih_bucket_sort", "digest_rows")
#: kernels whose PTX must hold no fused multiply-add: NVVM contracts a * b + c by default, which
#: would round differently from the CPU twin (the verification score's float steps)
NO_FMA = ("pair_residuals",)


def _case_id(case):
    name, k, cc = case
    return f"{name}-{SIGNATURES[name][k][0]}-sm{cc[0]}{cc[1]}".replace(" ", "")


@pytest.fixture(scope="module")
def ptx_cache():
    return {}


def _ptx(cache, name, k, cc):
    if (name, k, cc) not in cache:
        # the stand-in device lives only while this test compiles
        with stand_in_device(cc):
            cache[name, k, cc] = compile_ptx(name, SIGNATURES[name][k], cc)
    return cache[name, k, cc]


def test_every_kernel_has_signatures_and_geometry():
    kernels = {n for n in dir(gk) if hasattr(getattr(gk, n), "py_func")
               and not getattr(gk, n).targetoptions.get("device")}
    assert kernels == set(SIGNATURES) == set(gk._GEOMETRY)
    assert all(SIGNATURES[n] for n in SIGNATURES)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_compiles_to_ptx(case, ptx_cache):
    name, k, cc = case
    ptx = _ptx(ptx_cache, name, k, cc)
    assert f".target sm_{cc[0]}{cc[1]}" in ptx
    assert ".entry" in ptx
    if name in INTEGER_ONLY:
        # cuda.popc(uint64) <= int64 would convert both sides to float64 (slow FP64)
        assert "cvt.rn.f64" not in ptx, f"{name} compares through float64"
    if name in NO_FMA:
        assert "fma.rn.f64" not in ptx, f"{name}: NVVM fused a multiply-add"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_resources_fit_the_launch(case, ptx_cache):
    ptxas = ptxas_path()
    if ptxas is None:
        pytest.skip("ptxas not found (pip install nvidia-cuda-nvcc-cu12)")
    name, k, cc = case
    res = assemble(_ptx(ptx_cache, name, k, cc), cc, ptxas)
    threads, dynamic = launch_shape(name)
    assert res["spill_stores"] == 0 and res["spill_loads"] == 0, f"{name} spills: {res}"
    assert res["registers"] * threads <= REGISTERS_PER_SM, (
        f"{name}: {res['registers']} registers x {threads} threads cannot launch")
    assert res["smem"] + dynamic <= SM_LIMITS[cc]["smem_block"], f"{name}: {res}"


def test_launch_bounds_of_the_geometry():
    # the block sizes the resource test checks are the ones launch() uses
    assert launch_shape("phash_images")[0] == gk.PHASH_THREADS
    assert launch_shape("hamming_range") == (gk.SEARCH_ROWS, gk.SEARCH_TILE * 8)
    for name in ("digest_rows", "linear_scales", "luma_images", "mih_range", "pair_residuals"):
        assert launch_shape(name) == (gk.THREADS, 0)
