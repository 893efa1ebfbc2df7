"""Launch signatures of the CUDA kernels: the numba argument types each kernel is launched with.

This one table is read by the launcher (``cuda.launch`` checks every launch against it when
``cuda.CHECK_SIGNATURES`` is on, or ``GPUDEDUP_CHECK_SIGNATURES=1`` is set) and by the compile
test (``tests/cuda_compile``), which compiles every entry with the real NVVM and drives the
hashing and search code with signature checks on, so a change in the drivers' argument types
fails a test instead of compiling a new, never-checked specialisation on a user's GPU.
"""

from __future__ import annotations

import numpy as np
from numba.core import types
from numba.np.numpy_support import from_dtype

#: image dtypes that reach the image kernels: every integer and float dtype the API accepts,
#: after ``hashing._gray`` turns float16 into float32 and byte-swapped dtypes into native ones
IMAGE_DTYPES = ("bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64",
                "int64", "float32", "float64")
#: image dtypes that reach pair_residuals (verify.py turns bool into uint8)
VERIFY_DTYPES = tuple(dt for dt in IMAGE_DTYPES if dt != "bool")
#: "C": host input (copied contiguous); "A": a strided CuPy input, passed to the kernels as is
IMAGE_LAYOUTS = ("C", "A")


def array(dtype, ndim: int, layout: str = "C") -> types.Array:
    """The numba type of a writable ``ndim``-d array of ``dtype`` with ``layout``."""
    return types.Array(from_dtype(np.dtype(dtype)), ndim, layout)


_f8_2 = array(np.float64, 2)
_i8_1 = array(np.int64, 1)
_i8_2 = array(np.int64, 2)
_u8_1 = array(np.uint64, 1)
_u8_2 = array(np.uint64, 2)
_b1_1 = array(np.uint8, 1)
_out_d = array(np.uint8, 2)
#: mih order arrays: int32 below 2**31 indexed codes, int64 above (search._mih_tables)
ORDER_DTYPES = (np.int32, np.int64)


def _table() -> dict[str, list[tuple[types.Type, ...]]]:
    images = [array(dt, 3, layout) for dt in IMAGE_DTYPES for layout in IMAGE_LAYOUTS]
    return {
        # words, nbytes, seed, out
        "digest_rows": [(_u8_2, types.int64, types.uint64, _u8_2)],
        # rgb, gray (RGB input is made contiguous first)
        "luma_images": [(array(np.uint8, 4), array(np.uint8, 3))],
        # images, scales, bad flags: only for non-uint8 images
        "linear_scales": [(img, _f8_2, _b1_1) for img in images if img.dtype != types.uint8],
        # images, scales, h_starts, h_weights, v_starts, v_weights, vertical_first, clip,
        # basis1, basis2t, dct_shift, out, out_variants ((N, 0) or (N, 8))
        "phash_images": [(img, _f8_2, _i8_1, _f8_2, _i8_1, _f8_2, types.boolean, types.boolean,
                          _f8_2, _f8_2, types.int64, _u8_1, _u8_2) for img in images],
        # a, b, threshold, self_join, block_starts, block_rows, counts, out_i, out_j, out_d
        "hamming_range": [(_u8_1, _u8_1, types.int64, types.boolean, _i8_1, types.int64, _i8_1,
                           _i8_2, _i8_2, _out_d)],
        # codes, shift, mask, offsets, order, sorted_codes
        "mih_bucket_sort": [(_u8_1, types.uint64, types.uint64, _i8_1, array(dt, 1), _u8_1)
                            for dt in ORDER_DTYPES],
        # a, threshold, self_join, block_starts, block_rows, shifts, masks, radii, flips,
        # nflips, offsets, order, sorted_codes, counts, out_i, out_j, out_d
        "mih_range": [(_u8_1, types.int64, types.boolean, _i8_1, types.int64, _u8_1, _u8_1,
                       _i8_1, _u8_2, _i8_1, _i8_2, array(dt, 2), _u8_2, _i8_1, _i8_2, _i8_2,
                       _out_d) for dt in ORDER_DTYPES],
        # images_a, images_b (one dtype, contiguous: gathered by verify.py, or a whole host
        # array), i, j, max_shift, cut (< 0: none), out_residual, out_shift
        "pair_residuals": [(array(dt, 3), array(dt, 3), _i8_1, _i8_1, types.int64,
                            types.float64, array(np.float64, 1), array(np.int8, 2))
                           for dt in VERIFY_DTYPES],
    }


#: kernel name -> every argument-type tuple the drivers launch it with
SIGNATURES: dict[str, list[tuple[types.Type, ...]]] = _table()


def _typeof():
    # numba-cuda's typeof knows CuPy arrays (DLPack / CUDA array interface); numba's own, used
    # by the simulator, knows the numpy arrays standing in for them
    try:
        from numba.cuda.typing.typeof import Purpose, typeof
    except ImportError:
        from numba.core.typing.typeof import Purpose, typeof
    return typeof, Purpose


def signature_of(args) -> tuple[types.Type, ...]:
    """The numba argument types of a kernel launched with ``args``, as its dispatcher types them.

    Parameters
    ----------
    args : sequence
        The launch arguments (numpy or CuPy arrays, Python or numpy scalars).

    Returns
    -------
    tuple of numba types
    """
    typeof, purpose = _typeof()
    # readonly and alignment flags aside: the table names dtype, ndim and layout
    return tuple(_plain(typeof(a, purpose.argument)) for a in args)


def _plain(t):
    if isinstance(t, types.Array):
        return types.Array(t.dtype, t.ndim, t.layout)
    return t


def check(name: str, args) -> None:
    """Raise if kernel ``name`` is launched with argument types missing from :data:`SIGNATURES`.

    Parameters
    ----------
    name : str
        The kernel's name (a key of :data:`SIGNATURES`).
    args : sequence
        The launch arguments.

    Raises
    ------
    TypeError
        The argument types are not in the table, so the compile test never compiled them.
    """
    sig = signature_of(args)
    if sig not in SIGNATURES.get(name, ()):
        raise TypeError(f"{name} launched with argument types {sig}, which are not in "
                        "kernels/signatures.py (add them, so the compile test compiles them)")
