"""A common grid for pixel verification: two image sets made comparable pair by pair.

The pixel check (:mod:`gpudedup.verify`) scores a pair on grayscale ``(N, H, W)`` images of one
shape and one dtype. :func:`common_grid` wraps two sources in views that meet that, converting
only what differs, image by image as ``take`` asks for them:

* RGB ``(N, H, W, 3)`` uint8 becomes luma with exactly the phash path's arithmetic (Pillow's
  ``convert("L")``; ``kernels/resample.luma``, the host twin of the ``luma_images`` kernels),
  so a colour image and its grayscale copy are the same pixels.
* Different sizes: both sides are resized to the common grid, the smaller size along each axis,
  with Pillow's LANCZOS (area-correct when downscaling), into float64. Downscaling the larger
  image keeps what the smaller one holds; upscaling the smaller would invent pixels the other
  image would then be judged against, and a blurred upscale would make a true copy look
  different from its sharp original. The axes are taken apart, so 28x40 against 40x28 is
  compared at 28x28 (each image squeezed along one axis, as a copy stored at another aspect
  ratio would have been).
* Different dtypes (uint8 against float32 in [0, 1], uint16, bool...): the residual is relative
  to the pair's joint value range, which two scales make meaningless (a uint8 image beside a
  [0, 1] one puts the latter on a handful of levels). Both sides become float64 with each image
  mapped linearly onto [0, 1] by its own minimum and maximum (a constant image to 0): the
  least-squares fit is blind to such a map, so a copy stays a copy, and the joint range becomes
  the range of either image. This runs after the resize, so both sides end exactly on [0, 1].
  Byte order alone is not a difference (the kernels read both orders alike).

Sides that need none of this are returned as they are: same-shape, same-dtype grayscale pairs
pay nothing.
"""

from __future__ import annotations

import numpy as np

from .kernels import resample
from .sources import DEFAULT_BATCH_BYTES


class GridView:
    """The images of one source as the common grid needs them, converted per :meth:`take`.

    It offers what :func:`gpudedup.verify.verify_sources` reads of a source. ``data`` is None:
    no array holds the converted images (so the verifier gathers them through ``take`` instead
    of reading the source's own array in place).

    Parameters
    ----------
    source : ImageSource
        The images as stored.
    luma : bool
        Convert RGB to luma.
    shape : tuple of int
        ``(h, w)`` of the grid; a different size from the source's resizes to it (float64).
    unit : bool
        Map each image onto [0, 1] by its minimum and maximum.
    as_float : bool
        Give float64 images (implied by ``unit`` and by a resize; set for a side already at
        the grid's size whose partner is resized).
    """

    data = None

    def __init__(self, source, *, luma: bool, shape: tuple[int, int], unit: bool,
                 as_float: bool = False):
        self.source = source
        self.luma = luma
        self.resize = tuple(source.image_shape[:2]) != tuple(shape)
        self.unit = unit
        self.name = source.name
        self.image_shape = (int(shape[0]), int(shape[1]))
        if as_float or unit or self.resize:
            self.dtype = np.dtype(np.float64)
        elif luma:
            self.dtype = np.dtype(np.uint8)
        else:
            self.dtype = np.dtype(source.dtype).newbyteorder("=")
        self.description = f"{source.description} ({_steps(self)})"

    def __repr__(self) -> str:
        return f"GridView({self.name!r}, {self.description!r})"

    @property
    def count(self) -> int:
        return self.source.count

    @property
    def is_file(self) -> bool:
        return self.source.is_file

    @property
    def readable(self) -> bool:
        return self.source.readable

    def default_batch_size(self) -> int:
        per_image = max(1, int(np.prod(self.image_shape)) * self.dtype.itemsize)
        return max(1, DEFAULT_BATCH_BYTES // per_image)

    def convert(self, images) -> np.ndarray:
        """Stored images (``(n, H, W)`` or ``(n, H, W, 3)``, host or CuPy) on the grid."""
        images = images if isinstance(images, np.ndarray) else _host(images)
        if self.luma:
            images = resample.luma(images)
        if self.resize:
            images = resample.resize_images(images, self.image_shape)
        if self.unit:
            images = resample.unit_range(images)
        return np.ascontiguousarray(images, dtype=self.dtype)

    def take(self, indices) -> np.ndarray:
        """The converted images at ``indices``, as a host numpy array.

        Each distinct image is read and converted once, in runs whose float64 working copy
        takes about ``DEFAULT_BATCH_BYTES``, so memory holds the requested images on the grid
        plus one run's work, whatever their number.
        """
        indices = np.asarray(indices, dtype=np.int64)
        unique, inverse = np.unique(indices, return_inverse=True)
        out = np.empty((unique.size,) + self.image_shape, dtype=self.dtype)
        # 8 bytes a stored sample bounds each step's temporaries (float64 copy, int32 luma)
        work = max(1, int(np.prod(self.source.image_shape)) * 8)
        run = max(1, DEFAULT_BATCH_BYTES // work)
        for start in range(0, unique.size, run):
            stop = min(start + run, unique.size)
            out[start:stop] = self.convert(self.source.take(unique[start:stop]))
        if unique.size == indices.size and np.array_equal(unique, indices):
            return out  # already sorted and distinct (the verifier's gather): no reorder copy
        return out[inverse.reshape(-1)]

    def batches(self, batch_size: int | None = None, *, align: bool | None = None):
        """Yield ``(start, converted images[start:start + batch])`` in order, over the source's
        own batches (``batch_size`` counts images, as for the source)."""
        for start, batch in self.source.batches(batch_size, align=align):
            yield start, self.convert(batch)


def _host(images) -> np.ndarray:
    from .backend import to_host

    return to_host(images)


def _size(shape) -> str:
    return f"{shape[0]}x{shape[1]}"


def _steps(view: GridView) -> str:
    # what one view does, for its description
    steps = []
    if view.luma:
        steps.append("RGB to luma")
    if view.resize:
        steps.append(f"LANCZOS {_size(view.source.image_shape)} to {_size(view.image_shape)}")
    if view.unit:
        steps.append("each image min-max to [0, 1]")
    if not steps:
        steps.append("as float64")
    return ", ".join(steps)


def _value_dtype(src) -> np.dtype:
    # the dtype the pixels have once grayscale (RGB is uint8 luma); byte order is no difference
    return np.dtype(np.uint8) if len(src.image_shape) == 3 else src.dtype.newbyteorder("=")


def common_grid(src_a, src_b):
    """Two sources as views whose images :func:`gpudedup.verify.verify_sources` can score
    against each other: grayscale, of one shape, of one dtype.

    Parameters
    ----------
    src_a, src_b : ImageSource
        The two sides (:func:`gpudedup.sources.as_source`); ``src_b`` may be ``src_a``.

    Returns
    -------
    view_a, view_b : ImageSource or GridView
        Each side as it is when it needs no conversion, else a :class:`GridView` that converts
        the images its ``take`` is asked for (the module docstring gives the rules): RGB to
        Pillow luma; different sizes both LANCZOS-resized to the smaller size along each axis,
        as float64; different dtypes (or sizes) both float64, and with different dtypes each
        image mapped onto [0, 1] by its own minimum and maximum.
    what : str or None
        One line saying what was converted and why, for reports and warnings; None when
        nothing was (then ``view_a is src_a`` and ``view_b is src_b``).

    Examples
    --------
    >>> import numpy as np
    >>> from gpudedup.sources import as_source
    >>> a = as_source(np.zeros((2, 28, 28), np.uint8), "a")
    >>> b = as_source(np.zeros((3, 56, 40), np.float32), "b")
    >>> va, vb, what = common_grid(a, b)
    >>> va.image_shape, vb.image_shape, str(vb.dtype), vb.take([0, 2]).shape
    ((28, 28), (28, 28), 'float64', (2, 28, 28))
    >>> what.split("; ")[0].split(" (")[0]
    'b 56x40 resized to 28x28 by LANCZOS'
    >>> common_grid(a, a)[2] is None
    True
    """
    shape_a, shape_b = tuple(src_a.image_shape[:2]), tuple(src_b.image_shape[:2])
    rgb_a, rgb_b = len(src_a.image_shape) == 3, len(src_b.image_shape) == 3
    grid = (min(shape_a[0], shape_b[0]), min(shape_a[1], shape_b[1]))
    resize = shape_a != shape_b
    unit = _value_dtype(src_a) != _value_dtype(src_b)
    if not (rgb_a or rgb_b or resize or unit):
        return src_a, src_b, None

    views = []
    for src, rgb in ((src_a, rgb_a), (src_b, rgb_b)):
        if not (rgb or resize or unit):
            views.append(src)
        else:
            views.append(GridView(src, luma=rgb, shape=grid, unit=unit,
                                  as_float=resize or unit))
    if src_b is src_a:  # one source against itself converts alike: share the view
        views[1] = views[0]

    what = []
    rgb_names = [src.name for src, rgb in ((src_a, rgb_a), (src_b, rgb_b)) if rgb]
    if rgb_names:
        what.append(f"{' and '.join(dict.fromkeys(rgb_names))} RGB to luma (Pillow "
                    "convert('L'), as the phash sees it)")
    if resize:
        sides = [f"{src.name} {_size(shape)}" for src, shape in ((src_a, shape_a),
                                                               (src_b, shape_b))
                 if shape != grid]
        what.append(f"{' and '.join(sides)} resized to {_size(grid)} by LANCZOS (the smaller "
                    "size along each axis: downscaling keeps what the smaller image holds, "
                    "upscaling would invent pixels)")
    if unit:
        what.append(f"dtypes {src_a.dtype} and {src_b.dtype}: each image mapped onto [0, 1] "
                    "by its own min and max, as float64 (the residual is taken on the pair's "
                    "joint range, which two scales make meaningless)")
    elif resize:
        what.append("both as float64")
    return views[0], views[1], "; ".join(what)
