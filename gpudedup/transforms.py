"""The eight flips and rotations of an image (the dihedral group), named and numbered once.

Code ``t`` names a transform ``T_t`` of the last two axes. A near pair found with transform
``t`` means ``a[i]`` is a copy of ``T_t(b[j])``: the candidate hash compared with ``a[i]``'s
phash is the variant ``t`` of ``b[j]``'s, and verification compares ``a[i]`` with ``T_t(b[j])``.

The variant hashes come from the 8x8 DCT block of the phash (``C[u, v]``, ``u`` the vertical
and ``v`` the horizontal frequency): a left-right flip multiplies ``C[u, v]`` by ``(-1)**v``, an
up-down flip by ``(-1)**u``, a transpose swaps ``u`` and ``v``; the others are products of these
(:data:`DCT_RULES`). Transposing transforms (codes 4-7) need square images.
"""

from __future__ import annotations

import numpy as np

#: transform names by code; 0 is the identity
TRANSFORMS = ("identity", "flip_lr", "flip_ud", "rot180", "transpose", "rot90", "rot270",
              "transverse")
#: codes that swap the two image axes (square images only)
TRANSPOSING = (4, 5, 6, 7)
#: inverse[t]: T_inverse[t](T_t(x)) == x (rot90 and rot270 undo each other; the rest themselves)
INVERSE = np.array([0, 1, 2, 3, 4, 6, 5, 7], dtype=np.uint8)
#: per code: (transpose the DCT block first, sign (-1)**u, sign (-1)**v) of C_T[u, v]
DCT_RULES = (
    (False, False, False),  # identity
    (False, False, True),   # flip_lr: x -> W-1-x
    (False, True, False),   # flip_ud: y -> H-1-y
    (False, True, True),    # rot180
    (True, False, False),   # transpose: (y, x) -> (x, y)
    (True, True, False),    # rot90 (np.rot90, counter-clockwise) = flip_ud(transpose)
    (True, False, True),    # rot270 = flip_lr(transpose)
    (True, True, True),     # transverse = rot180(transpose)
)


def apply(images, code: int):
    """``T_code`` applied to the last two axes of ``images`` (a view where possible).

    Works on numpy and CuPy arrays alike: only slicing and axis swaps.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(4).reshape(2, 2)
    >>> [apply(x, t).tolist() for t in (1, 5)]
    [[[1, 0], [3, 2]], [[1, 3], [0, 2]]]
    >>> all((apply(x, 5) == np.rot90(x)).ravel()), all((apply(x, 6) == np.rot90(x, -1)).ravel())
    (True, True)
    """
    transpose, flip_rows, flip_cols = DCT_RULES[int(code)]
    out = images.swapaxes(-1, -2) if transpose else images
    if flip_rows:
        out = out[..., ::-1, :]
    if flip_cols:
        out = out[..., :, ::-1]
    return out


def name_of(codes) -> list[str]:
    """Names of transform codes, e.g. for a report column."""
    return [TRANSFORMS[int(c)] for c in np.asarray(codes).ravel()]
