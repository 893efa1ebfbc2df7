"""Digests and perceptual hashes of an image source, batch by batch, on either backend."""

from __future__ import annotations

import zlib

import numpy as np
from tqdm.auto import tqdm

from . import backend as backends
from .checks import check_batch_size
from .errors import InputError
from .hashset import HashSet, fingerprint
from .kernels import resample
from .sources import ImageSource, as_source


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


def _phash_batch(gray, plan: _PhashPlan, be: backends.Backend) -> dict:
    # device work for one batch of phashes; the non-finite flags come back for the host to check
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
    be.launch("phash_images", count, gray, scales, plan.h_starts, plan.h_weights,
              plan.v_starts, plan.v_weights, plan.vertical_first, plan.clip, plan.basis1,
              plan.basis2t, plan.dct_shift, out["phash"])
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
    if batch_size is None:
        budget = be.batch_bytes()
        per_image = max(1, int(np.prod(shape)) * source.dtype.itemsize)
        batch_size = source.default_batch_size()
        if budget is not None:
            batch_size = max(1, min(batch_size, budget // per_image))

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


def hash_images(images, *, backend: str = "auto", batch_size: int | None = None,
                progress: bool = False) -> HashSet:
    """Digests and phashes of ``images`` as a :class:`HashSet` (save it to hash a split once).

    Parameters are as for :func:`phash`. The HashSet keeps a reference to the images so that
    exact candidates can still be verified byte for byte.

    Examples
    --------
    >>> import numpy as np, gpudedup as gd
    >>> x = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    >>> hs = gd.hash_images(x)
    >>> hs.count, gd.find_overlaps(hs, x[[5]]).pairs.tolist()
    (20, [[5, 0]])
    """
    source, be = _open(images, backend, batch_size)
    return hash_source(source, be, batch_size=batch_size, progress=progress)
