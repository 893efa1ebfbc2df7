"""Digests and perceptual hashes of an image source, batch by batch, on either backend."""

from __future__ import annotations

import zlib

import numpy as np
from tqdm.auto import tqdm

from . import backend as backends
from .checks import check_batch_size, check_invariant, check_shifts
from .errors import InputError
from .hashset import HashSet, fingerprint
from .kernels import resample
from .kernels._common import VARIANTS
from .sources import ImageSource, as_source
from .transforms import TRANSFORMS


def phash_convention() -> str:
    """Name of the phash convention in use: the Pillow resize pass order it reproduces."""
    return "pillow13" if resample.pillow_major_version() >= 13 else "pillow12"


def digest_seed(image_shape: tuple[int, ...], dtype: np.dtype) -> np.uint64:
    """32-bit MurmurHash3 seed naming an image shape and dtype, so they enter every digest."""
    tag = f"{tuple(image_shape)}|{np.dtype(dtype).str}".encode()
    return np.uint64(zlib.crc32(tag))


def _as_words(batch: np.ndarray, xp) -> tuple[object, int]:
    # each image's bytes as a row of little-endian uint64 words, zero-padded to whole words
    count = batch.shape[0]
    flat = xp.ascontiguousarray(batch).reshape(count, -1).view(xp.uint8)
    nbytes = flat.shape[1]
    if nbytes % 8:
        padded = xp.zeros((count, nbytes + 8 - nbytes % 8), dtype=xp.uint8)
        padded[:, :nbytes] = flat
        flat = padded
    return flat.view(xp.uint64), nbytes


class _PhashPlan:
    """Per-shape constants of the phash kernel, uploaded once per call."""

    def __init__(self, height: int, width: int, uint8: bool, be: backends.Backend):
        # the linear path needs taps that sum exactly to one (no uint8 rounding hides it)
        h_starts, h_weights = resample.lanczos_taps(width, exact_sum=not uint8)
        v_starts, v_weights = resample.lanczos_taps(height, exact_sum=not uint8)
        put = be.to_device
        self.h_starts, self.h_weights = put(h_starts), put(h_weights)
        self.v_starts, self.v_weights = put(v_starts), put(v_weights)
        self.vertical_first = resample.vertical_first(height, width)
        self.clip = uint8
        self.basis1 = put(resample.dct_basis(resample.DCT_BITS_1))
        self.basis2t = put(np.ascontiguousarray(resample.dct_basis(resample.DCT_BITS_2).T))
        self.dct_shift = 0 if uint8 else resample.LINEAR_DCT_SHIFT


def _gray(batch, be: backends.Backend):
    # (n, H, W, 3) uint8 -> Pillow luma; float16 and byte-swapped dtypes have no kernel type
    xp = be.xp
    if batch.ndim == 4:
        rgb = xp.ascontiguousarray(batch)
        gray = xp.empty(rgb.shape[:3], dtype=xp.uint8)
        be.launch("luma_images", rgb.shape[0], rgb, gray)
        return gray
    if batch.dtype == np.float16:
        return batch.astype(xp.float32)
    if not batch.dtype.isnative:
        return batch.astype(batch.dtype.newbyteorder("="))
    return batch


def _phash_batch(gray, plan: _PhashPlan, be: backends.Backend, variants: bool = False) -> dict:
    # device work for one batch of phashes (and, with variants, the (n, 8) dihedral variant
    # hashes); the non-finite flags come back for the host to check
    xp = be.xp
    count = gray.shape[0]
    out = {}
    if plan.clip:
        scales = xp.ones((count, 2), dtype=xp.float64)
    else:
        scales = xp.empty((count, 2), dtype=xp.float64)
        out["bad"] = xp.zeros(count, dtype=xp.uint8)
        be.launch("linear_scales", count, gray, scales, out["bad"])
    out["phash"] = xp.empty(count, dtype=xp.uint64)
    # (n, 0): no variants; the kernel checks the width
    out_variants = xp.empty((count, VARIANTS if variants else 0), dtype=xp.uint64)
    be.launch("phash_images", count, gray, scales, plan.h_starts, plan.h_weights,
              plan.v_starts, plan.v_weights, plan.vertical_first, plan.clip, plan.basis1,
              plan.basis2t, plan.dct_shift, out["phash"], out_variants)
    if variants:
        out["variants"] = out_variants
    return out


def _digest_batch(batch, seed, be: backends.Backend):
    words, nbytes = _as_words(batch, be.xp)
    out = be.xp.empty((batch.shape[0], 2), dtype=be.xp.uint64)
    be.launch("digest_rows", batch.shape[0], words, nbytes, seed, out)
    return out


def _raise_on_nonfinite(bad: np.ndarray, start: int, source: ImageSource) -> None:
    if bad.any():
        first = start + int(np.flatnonzero(bad)[0])
        raise InputError(f"{source.name}: image {first} contains NaN or inf")


def compute_hashes(source: ImageSource, be: backends.Backend, *, digests: bool = True,
                   phashes: bool = True, batch_size: int | None = None,
                   progress: bool = False,
                   label: str | None = None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Digests ``(N, 2)`` and/or phashes ``(N,)`` of every image of ``source``, as host arrays.

    ``label`` names the images on the progress bar (default: the source's argument name).

    NaN or inf in a float image raises ValueError naming the source and the image.
    """
    n = source.count
    digest_out = np.empty((n, 2), dtype=np.uint64) if digests else None
    phash_out = np.empty(n, dtype=np.uint64) if phashes else None
    shape = source.image_shape
    plan = _PhashPlan(shape[0], shape[1], source.dtype == np.uint8, be) if phashes else None
    seed = digest_seed(shape, source.dtype)
    check_finite = source.dtype.kind == "f"
    chosen = batch_size is not None
    batch_size = _batch_size(source, be, batch_size)

    def work(batch) -> dict:
        out = {}
        if phashes:
            out.update(_phash_batch(_gray(batch, be), plan, be))
        elif check_finite:
            flat = batch.reshape(batch.shape[0], -1)
            out["bad"] = (~be.xp.isfinite(flat).all(axis=1)).astype(be.xp.uint8)
        if digests:
            out["digest"] = _digest_batch(batch, seed, be)
        return out

    bar = tqdm(total=n, desc=f"hashing {label or source.name}", unit="img", disable=not progress,
               leave=False)
    with bar:
        for start, result in be.map_batches(source.batches(batch_size, align=not chosen),
                                            work):
            count = next(iter(result.values())).shape[0]
            if "bad" in result:
                _raise_on_nonfinite(result["bad"], start, source)
            if phashes:
                phash_out[start:start + count] = result["phash"]
            if digests:
                digest_out[start:start + count] = result["digest"]
            bar.update(count)
    return digest_out, phash_out


def _batch_size(source: ImageSource, be: backends.Backend, batch_size: int | None,
                copies: int = 1) -> int:
    # the caller's size, else the source's default capped by the device's free memory, which
    # holds `copies` images per image of the batch
    if batch_size is not None:
        return batch_size
    budget = be.batch_bytes()
    per_image = max(1, int(np.prod(source.image_shape)) * source.dtype.itemsize) * copies
    batch_size = source.default_batch_size()
    if budget is not None:
        batch_size = max(1, min(batch_size, budget // per_image))
    return batch_size


def variant_table(image_shape: tuple[int, ...], invariant: str | None = None,
                  shifts: int = 0) -> np.ndarray:
    """The ``(V, 3)`` int8 rows ``(transform code, dy, dx)`` of the variant hashes of images
    of ``image_shape``, in :func:`compute_variant_hashes`'s column order.

    Shifts go outermost: ``(0, 0)`` first, then ``dy`` and ``dx`` in raster order over
    ``[-shifts, shifts]``; per shift the transform codes 0-7 (``"dihedral"``, square images),
    0-3 (``"dihedral"``, non-square images) or 0 alone. Row 0 is ``(0, 0, 0)``.

    Examples
    --------
    >>> variant_table((28, 28), "dihedral").tolist()[5]
    [5, 0, 0]
    >>> t = variant_table((20, 30), "dihedral", shifts=1)
    >>> t.shape, t[4].tolist(), t[-1].tolist()
    ((36, 3), [0, -1, -1], [3, 1, 1])
    """
    invariant = check_invariant(invariant)
    shifts = check_shifts(shifts)
    square = len(image_shape) >= 2 and image_shape[0] == image_shape[1]
    codes = range(len(TRANSFORMS) if square else 4) if invariant == "dihedral" else range(1)
    offsets = [(dy, dx) for dy in range(-shifts, shifts + 1) for dx in range(-shifts, shifts + 1)
               if (dy, dx) != (0, 0)]
    rows = [(t, dy, dx) for dy, dx in [(0, 0), *offsets] for t in codes]
    return np.array(rows, dtype=np.int8).reshape(-1, 3)


def _shifted(padded, pad: int, dy: int, dx: int, height: int, width: int):
    # S_{dy,dx}: content moved by (+dy, +dx), edges replicated, from the batch padded by `pad`
    return padded[:, pad - dy:pad - dy + height, pad - dx:pad - dx + width]


def compute_variant_hashes(source: ImageSource, be: backends.Backend, *,
                           invariant: str | None = None, shifts: int = 0,
                           batch_size: int | None = None, progress: bool = False,
                           label: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Perceptual hashes of flipped, rotated and shifted variants of every image of ``source``.

    Column ``v`` of the codes is the phash of ``T_t(S_{dy,dx}(image))`` for row ``v = (t, dy,
    dx)`` of the table: ``S_{dy,dx}`` moves the content by ``(+dy, +dx)`` with the edge pixels
    replicated (``S(x)[y, x'] = x[clip(y - dy), clip(x' - dx)]``) and ``T_t`` is transform
    ``t`` of :mod:`gpudedup.transforms`. The dihedral variants of one shift come from the
    coefficients of that shift's hash, in the same launch; each shift is one launch per batch
    on the shifted batch, built with the backend's array module, so memory stays bounded by a
    batch.

    Parameters
    ----------
    source : ImageSource
        The images.
    be : Backend
        Where to hash them.
    invariant : {None, "dihedral"}
        ``"dihedral"``: the 8 flips and rotations of square images, the 4 that keep the axes
        (codes 0-3) of non-square ones; None: the identity alone.
    shifts : int
        Every shift ``(dy, dx)`` in ``[-shifts, shifts]**2``, 0 to 2.
    batch_size : int, optional
        Images per batch (default: as :func:`compute_hashes`).
    progress : bool
        Show a progress bar.
    label : str, optional
        Names the images on the progress bar (default: the source's argument name).

    Returns
    -------
    codes : numpy.ndarray of uint64, shape (N, V)
        Column 0 is the plain phash.
    table : numpy.ndarray of int8, shape (V, 3)
        Rows ``(transform code, dy, dx)`` (:func:`variant_table`); row 0 is ``(0, 0, 0)``.

    Raises
    ------
    InputError
        ``invariant`` or ``shifts`` out of range, or NaN/inf in a float image.

    Examples
    --------
    >>> import numpy as np
    >>> from gpudedup import backend, sources
    >>> x = np.random.default_rng(0).integers(0, 256, (3, 16, 16), dtype=np.uint8)
    >>> codes, table = compute_variant_hashes(sources.as_source(x, "x"), backend.resolve("cpu"),
    ...                                       invariant="dihedral")
    >>> codes.shape, table[:3].tolist()
    ((3, 8), [[0, 0, 0], [1, 0, 0], [2, 0, 0]])
    >>> bool((codes[:, 1] == phash(x[:, :, ::-1])).all())  # the left-right flips
    True
    """
    table = variant_table(source.image_shape, invariant, shifts)
    shifts = check_shifts(shifts)
    dihedral = check_invariant(invariant) == "dihedral"
    per_shift = int(np.count_nonzero((table[:, 1] == 0) & (table[:, 2] == 0)))
    offsets = [(int(dy), int(dx)) for dy, dx in table[::per_shift, 1:]]
    n = source.count
    codes = np.empty((n, table.shape[0]), dtype=np.uint64)
    height, width = source.image_shape[:2]
    plan = _PhashPlan(height, width, source.dtype == np.uint8, be)
    chosen = batch_size is not None
    # with shifts a batch also holds its edge-padded copy and one shifted copy
    batch_size = _batch_size(source, be, batch_size, copies=3 if shifts else 1)
    xp = be.xp

    def work(batch) -> dict:
        gray = _gray(batch, be)
        out = xp.empty((gray.shape[0], table.shape[0]), dtype=xp.uint64)
        result = {"codes": out}
        padded = None
        if shifts:  # edge replication by slicing a padded copy (no pixel arithmetic)
            padded = xp.pad(gray, ((0, 0), (shifts, shifts), (shifts, shifts)), mode="edge")
        for k, (dy, dx) in enumerate(offsets):
            images = gray if k == 0 else xp.ascontiguousarray(
                _shifted(padded, shifts, dy, dx, height, width))
            hashed = _phash_batch(images, plan, be, variants=dihedral)
            if k == 0 and "bad" in hashed:  # a shift only drops pixels: the plain check sees all
                result["bad"] = hashed["bad"]
            cols = slice(k * per_shift, (k + 1) * per_shift)
            if dihedral:
                out[:, cols] = hashed["variants"][:, :per_shift]
            else:
                out[:, cols] = hashed["phash"][:, None]
        return result

    bar = tqdm(total=n, desc=f"hashing variants of {label or source.name}", unit="img",
               disable=not progress, leave=False)
    with bar:
        for start, result in be.map_batches(source.batches(batch_size, align=not chosen),
                                            work):
            count = result["codes"].shape[0]
            if "bad" in result:
                _raise_on_nonfinite(result["bad"], start, source)
            codes[start:start + count] = result["codes"]
            bar.update(count)
    return codes, table


def _open(images, backend: str, batch_size) -> tuple[ImageSource, backends.Backend]:
    # the shared checks of the public hashing calls
    check_batch_size(batch_size)
    return as_source(images, "images"), backends.resolve(backend, images)


def hash_source(source: ImageSource, be: backends.Backend, *, digests: bool = True,
                phashes: bool = True, batch_size=None, progress=False,
                label: str | None = None) -> HashSet:
    """Hash ``source`` into a :class:`HashSet` that keeps the source for verification."""
    dig, ph = compute_hashes(source, be, digests=digests, phashes=phashes,
                             batch_size=batch_size, progress=progress, label=label)
    if ph is None:
        ph = np.zeros(source.count, dtype=np.uint64)
    return hashes_of(source, ph, dig)


def hashes_of(source: ImageSource, phashes: np.ndarray, digests: np.ndarray | None) -> HashSet:
    """A :class:`HashSet` of ``source``'s hashes, keeping the source (for verification), its
    description, fingerprint and this installation's phash convention."""
    return HashSet(phashes, digests, image_shape=source.image_shape, dtype=source.dtype,
                   source=source, description=source.description,
                   convention=phash_convention(), fingerprint=fingerprint(source))


def phash(images, *, backend: str = "auto", batch_size: int | None = None,
          progress: bool = False) -> np.ndarray:
    """Perceptual hash of each image, bit-identical to ``imagehash.phash`` on uint8 input.

    Parameters
    ----------
    images : array-like, h5py.Dataset or str
        ``(N, H, W)`` images of any integer or float dtype, ``(N, H, W, 3)`` uint8 RGB
        (converted to luma as Pillow's ``convert("L")``), or ``"file.h5:/dataset"``.
    backend : {"auto", "cpu", "cuda"}
    batch_size : int, optional
        Images per batch (default: about 64 MB of images).
    progress : bool
        Show a progress bar.

    Returns
    -------
    numpy.ndarray of uint64, shape (N,)
        ``int(str(imagehash.phash(Image.fromarray(img))), 16)`` for uint8 images. Non-uint8
        images are scaled by a power of two and resized without the uint8 rounding.

    Raises
    ------
    InputError, InputTypeError
        Bad shape or dtype, or NaN/inf in a float image.

    Examples
    --------
    >>> import numpy as np, gpudedup as gd
    >>> hex(int(gd.phash(np.full((1, 28, 28), 7, np.uint8))[0]))  # a constant image
    '0x8000000000000000'
    """
    source, be = _open(images, backend, batch_size)
    return compute_hashes(source, be, digests=False, batch_size=batch_size,
                          progress=progress)[1]


def digest(images, *, backend: str = "auto", batch_size: int | None = None,
           progress: bool = False) -> np.ndarray:
    """128-bit digest of each image's bytes, shape and dtype (MurmurHash3_x64_128).

    Parameters are as for :func:`phash`. Returns a ``(N, 2)`` uint64 array, identical on every
    backend and for every batch size. Equal digests are candidates only: ``find_overlaps``
    verifies them byte for byte.

    Examples
    --------
    >>> import numpy as np, gpudedup as gd
    >>> d = gd.digest(np.zeros((2, 4, 4), np.uint8))
    >>> d.shape, bool((d[0] == d[1]).all())
    ((2, 2), True)
    """
    source, be = _open(images, backend, batch_size)
    return compute_hashes(source, be, phashes=False, batch_size=batch_size,
                          progress=progress)[0]


def hash_images(images, *, invariant: str | None = None, shifts: int = 0,
                backend: str = "auto", batch_size: int | None = None,
                progress: bool = False, scheduler=None) -> HashSet:
    """Digests and phashes of ``images`` as a :class:`HashSet` (save it to hash a split once).

    Parameters are as for :func:`phash`; ``invariant`` and ``shifts`` (as for
    :func:`gpudedup.find_overlaps`) also make the variant hashes a search with those options
    needs, so a saved HashSet serves it without its images. The HashSet keeps a reference to
    the images so that pairs can be verified on pixels (and saves images of up to 4 KiB with
    its hashes). A dask array (``gd.dask_from_hdf5``) is hashed per chunk on the workers of
    ``scheduler`` (a ``distributed.Client`` or an address; default the active client, if any),
    else locally one chunk at a time.

    Examples
    --------
    >>> import numpy as np, gpudedup as gd
    >>> x = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    >>> hs = gd.hash_images(x)
    >>> hs.count, gd.find_overlaps(hs, x[[5]]).pairs.tolist()
    (20, [[5, 0]])
    """
    invariant, shifts = check_invariant(invariant), check_shifts(shifts)
    from . import distributed as on_dask

    if on_dask.is_dask_array(images):  # dask hook: per chunk, on the workers of a client
        check_batch_size(batch_size)
        with on_dask.session(scheduler):  # a client or an address; default the active one
            return on_dask.hash_dask(images, "images", backend=backend,
                                     be=backends.resolve(backend), invariant=invariant,
                                     shifts=shifts, batch_size=batch_size, progress=progress)
    source, be = _open(images, backend, batch_size)
    hs = hash_source(source, be, batch_size=batch_size, progress=progress)
    if invariant is not None or shifts:
        hs.variants, hs.variant_table = compute_variant_hashes(
            source, be, invariant=invariant, shifts=shifts, batch_size=batch_size,
            progress=progress)
    return hs
