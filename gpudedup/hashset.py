"""HashSet: the precomputed hashes of a stack of images, saved to and loaded from HDF5."""

from __future__ import annotations

import hashlib
import os

import numpy as np

from .errors import InputError
from .fileio import h5_output
from .sources import ImageSource, open_h5_file

FORMAT = "gpudedup-hashset"
FORMAT_VERSION = 1
#: images of at most this many bytes are saved with their HashSet (a 28x28 uint8 image is 784
#: bytes, less than its float thumbnail), so a loaded HashSet can still verify near pairs on
#: the native pixels; bigger ones rely on reopening their HDF5 source
PIXELS_MAX_BYTES = 4096


class HashSet:
    """Digests and perceptual hashes of ``count`` images; stands wherever images do.

    Parameters
    ----------
    phashes : array of uint64, shape (N,)
        Perceptual hashes (``gd.phash``).
    digests : array of uint64, shape (N, 2), optional
        128-bit byte digests (``gd.digest``); without them only near pairs can be found.
    image_shape, dtype : optional
        Shape and dtype of one image; exact pairs need both sides to agree on them.
    source : ImageSource, optional
        The images themselves, read back to verify exact candidates byte for byte.
    description : str
        Where the images came from.
    convention : str
        The phash convention (Pillow resize pass order) the hashes were computed with.
    fingerprint : str, optional
        Identity of the source file the hashes were made from (path, dataset, size, time).
    pixels : array, shape (N, H, W), optional
        The images themselves, kept for small images (see :data:`PIXELS_MAX_BYTES`) so that
        a HashSet loaded from disk can still verify near pairs.
    variants, variant_table : arrays, optional
        Candidate hashes of transformed and shifted variants, ``(N, V)`` uint64, and what
        each column is, ``(V, 3)`` int8 rows ``(transform, dy, dx)``
        (``gpudedup.hashing.compute_variant_hashes``).
    """

    def __init__(self, phashes, digests=None, *, image_shape=None, dtype=None,
                 source: ImageSource | None = None, description: str = "",
                 convention: str = "", fingerprint: str | None = None, pixels=None,
                 variants=None, variant_table=None):
        phashes = np.asarray(phashes)
        if phashes.ndim != 1 or phashes.dtype.kind not in "iu":
            raise InputError(f"phashes: expected a 1-d array of uint64, got shape "
                             f"{phashes.shape} and dtype {phashes.dtype}")
        self.phashes = np.ascontiguousarray(phashes.astype(np.uint64, copy=False))
        if digests is not None:
            digests = np.ascontiguousarray(np.asarray(digests, dtype=np.uint64))
            if digests.shape != (self.phashes.shape[0], 2):
                raise InputError(f"digests: expected shape ({self.phashes.shape[0]}, 2), got "
                                 f"{digests.shape}")
        self.digests = digests
        self.image_shape = tuple(int(s) for s in image_shape) if image_shape is not None else None
        self.dtype = np.dtype(dtype) if dtype is not None else None
        self.source = source
        self.description = description
        self.convention = convention
        self.fingerprint = fingerprint
        if pixels is not None:
            pixels = np.asarray(pixels)
            if pixels.shape[:1] != self.phashes.shape or pixels.ndim != 3:
                raise InputError(f"pixels: expected shape ({self.count}, H, W), got "
                                 f"{pixels.shape}")
        self.pixels = pixels
        self.variants = variants
        self.variant_table = variant_table

    @property
    def count(self) -> int:
        return int(self.phashes.shape[0])

    @property
    def images(self) -> ImageSource | None:
        """Where near pairs can be verified: the source if it can be read, else the saved
        pixels, else None (then near pairs are reported unverified, and say so)."""
        if self.source is not None and self.source.readable:
            return self.source
        if self.pixels is not None:
            return ImageSource(name=self.description or "hashes", data=self.pixels,
                               description=self.description)
        return None

    def _pixels_to_save(self) -> np.ndarray | None:
        # small images of an in-memory source travel with the hashes; an HDF5 source is
        # reopened on load instead (while its fingerprint matches)
        if self.pixels is not None:
            return self.pixels
        source = self.source
        if (source is None or source.is_file or not source.readable
                or len(source.image_shape) != 2
                or int(np.prod(source.image_shape)) * source.dtype.itemsize > PIXELS_MAX_BYTES):
            return None
        from .backend import to_host

        return to_host(source.take(np.arange(source.count)))

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        kind = "digests+phashes" if self.digests is not None else "phashes"
        return f"HashSet({self.count} images, {kind}, {self.description or 'no source'})"

    @classmethod
    def from_phash(cls, codes) -> HashSet:
        """A HashSet of bare uint64 perceptual hashes (near search only).

        Examples
        --------
        >>> import numpy as np, gpudedup as gd
        >>> hs = gd.HashSet.from_phash(np.array([0, 1, 7], dtype=np.uint64))
        >>> gd.find_overlaps(hs, threshold=1).pairs.tolist()
        [[0, 1]]
        """
        return cls(np.asarray(codes), description="phash codes")

    def save(self, path) -> None:
        """Write to an HDF5 file (under a temporary name, then renamed into place).

        Examples
        --------
        >>> import os, tempfile, numpy as np, gpudedup as gd
        >>> path = os.path.join(tempfile.mkdtemp(), "train.hashes.h5")
        >>> gd.hash_images(np.zeros((3, 8, 8), np.uint8)).save(path)
        >>> gd.HashSet.load(path).count
        3
        """
        save_many(path, {"": self})

    @classmethod
    def load(cls, path) -> HashSet:
        """Read a HashSet written by :meth:`save`.

        Raises
        ------
        InputError
            Not a HashSet file, or a part of it missing or damaged (refused as a whole).
        FileError
            The file cannot be read (permission denied, locked by a writer).
        """
        sets = load_many(path)
        if "" not in sets:
            raise InputError(f"path: {os.fspath(path)!r} holds several HashSets "
                             f"({', '.join(sets)}); use gpudedup.hashset.load_many")
        return sets[""]

    def _write(self, group) -> None:
        import h5py

        group.attrs["description"] = self.description
        group.attrs["convention"] = self.convention
        if self.fingerprint is not None:
            group.attrs["fingerprint"] = self.fingerprint
        if self.image_shape is not None:
            group.attrs["image_shape"] = np.asarray(self.image_shape, dtype=np.int64)
        if self.dtype is not None:
            group.attrs["dtype"] = self.dtype.str
        group.create_dataset("phash", data=self.phashes)
        if self.digests is not None:
            group.create_dataset("digest", data=self.digests)
        pixels = self._pixels_to_save()
        if pixels is not None:
            group.create_dataset("pixels", data=pixels, chunks=True, compression="gzip",
                                 compression_opts=1, shuffle=True)
        if self.variants is not None:
            group.create_dataset("variants", data=self.variants)
            group.create_dataset("variant_table", data=self.variant_table)
        # what was written, so that a part removed later is noticed on load
        parts = ["phash"] + (["digest"] if self.digests is not None else []) \
            + (["image_shape"] if self.image_shape is not None else []) \
            + (["dtype"] if self.dtype is not None else []) \
            + (["pixels"] if pixels is not None else []) \
            + (["variants", "variant_table"] if self.variants is not None else [])
        group.attrs["parts"] = np.array(parts, dtype=h5py.string_dtype())

    @classmethod
    def _read(cls, group, broken) -> HashSet:
        # every part is checked before it is used: a damaged or edited file is refused as a
        # whole (``broken(what)`` makes the error), never half used
        import h5py

        attrs = group.attrs
        where = group.name.rstrip("/")
        # files written before "parts" was recorded hold at least the phashes
        parts = {_text(p) for p in np.atleast_1d(attrs.get("parts", ["phash"]))} | {"phash"}
        missing = [f"{where}/{p}" for p in ("phash", "digest", "pixels", "variants",
                                            "variant_table") if p in parts and p not in group]
        missing += [f"the {p} attribute" for p in ("image_shape", "dtype")
                    if p in parts and p not in attrs]
        if missing:
            raise broken(f"lacks {', '.join(missing)} (removed or never written)")
        arrays = {}
        for part in ("phash", "digest"):
            if part not in group:
                continue
            obj = group[part]
            if not isinstance(obj, h5py.Dataset):
                raise broken(f"has a group at {where}/{part}, where a dataset belongs")
            if obj.dtype.kind not in "iu" or obj.dtype.itemsize != 8:
                raise broken(f"has {where}/{part} of dtype {obj.dtype}, not uint64")
            try:
                arrays[part] = obj[()]
            except OSError as exc:
                raise broken(f"cannot read {where}/{part} ({exc})") from None
        phashes, digests = arrays["phash"], arrays.get("digest")
        if phashes.ndim != 1:
            raise broken(f"has {where}/phash of shape {phashes.shape}, not (N,)")
        if digests is not None and digests.shape != (phashes.shape[0], 2):
            raise broken(f"has {where}/digest of shape {digests.shape} but "
                         f"{phashes.shape[0]} phashes; expected ({phashes.shape[0]}, 2)")
        shape = attrs.get("image_shape")
        if shape is not None:
            shape = np.atleast_1d(shape)
            if shape.dtype.kind not in "iu" or shape.size not in (2, 3) or (shape <= 0).any():
                raise broken(f"has a bad image_shape attribute {shape.tolist()} on {where or '/'}")
            shape = tuple(int(v) for v in shape)
        dtype = attrs.get("dtype")
        if dtype is not None:
            try:
                dtype = np.dtype(_text(dtype))
            except TypeError:
                raise broken(f"has a bad dtype attribute {dtype!r} on {where or '/'}") from None
        extras = _read_extras(group, where, phashes.shape[0], shape, dtype, broken)
        fingerprint_text = attrs.get("fingerprint")
        hs = cls(
            phashes,
            digests,
            image_shape=shape,
            dtype=dtype,
            description=_text(attrs.get("description", "")),
            convention=_text(attrs.get("convention", "")),
            fingerprint=None if fingerprint_text is None else _text(fingerprint_text),
            **extras,
        )
        hs.source = _reopen(hs)
        return hs


def _read_extras(group, where: str, count: int, shape, dtype, broken) -> dict:
    # the optional parts: saved pixels and variant hashes, checked against the rest
    import h5py

    out = {}
    for part in ("pixels", "variants", "variant_table"):
        obj = group.get(part)
        if obj is None:
            continue
        if not isinstance(obj, h5py.Dataset):
            raise broken(f"has a group at {where}/{part}, where a dataset belongs")
        try:
            out[part] = obj[()]
        except OSError as exc:
            raise broken(f"cannot read {where}/{part} ({exc})") from None
    pixels = out.get("pixels")
    if pixels is not None and (pixels.shape != (count,) + tuple(shape or ())
                               or (dtype is not None and pixels.dtype != dtype)):
        raise broken(f"has {where}/pixels of shape {pixels.shape} and {pixels.dtype}, not "
                     f"{(count,) + tuple(shape or ())} and {dtype}")
    if ("variants" in out) != ("variant_table" in out):
        raise broken(f"has only one of {where}/variants and {where}/variant_table")
    if "variants" in out:
        codes, table = out["variants"], out["variant_table"]
        if (codes.dtype != np.uint64 or codes.ndim != 2 or codes.shape[0] != count
                or table.shape != (codes.shape[1], 3) or table.dtype.kind != "i"):
            raise broken(f"has {where}/variants of shape {codes.shape} and {where}/"
                         f"variant_table of shape {table.shape}, which do not fit "
                         f"{count} images")
        out["variant_table"] = table.astype(np.int8)
    return out


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _reopen(hs: HashSet) -> ImageSource | None:
    # the HDF5 dataset the hashes were made from, if it is still there and unchanged, so that
    # exact candidates can again be verified byte for byte
    if hs.fingerprint is None or ":" not in hs.description:
        return None
    from .sources import as_source

    try:
        source = as_source(hs.description, "source")
    except (ValueError, TypeError, OSError):
        return None
    if fingerprint(source) != hs.fingerprint:
        return None
    return source


def save_many(path, sets: dict[str, HashSet]) -> None:
    """Write named HashSets to one HDF5 file, each in a group of its name ("" = the root)."""
    import h5py

    need = sum(hs.phashes.nbytes + (hs.digests.nbytes if hs.digests is not None else 0)
               for hs in sets.values())
    with h5_output(path, need=need) as out:
        out.attrs["format"] = FORMAT
        out.attrs["format_version"] = FORMAT_VERSION
        out.attrs["sets"] = np.array(list(sets), dtype=h5py.string_dtype())
        for name, hs in sets.items():
            hs._write(out.require_group("/" + name) if name else out)


def load_many(path, *, name: str = "path", complete: bool = False) -> dict[str, HashSet]:
    """Read every HashSet of a file written by :func:`save_many` (or ``HashSet.save``).

    Parameters
    ----------
    path : str or path-like
        The file.
    name : str
        The argument or option that named it, for error messages.
    complete : bool
        Also require what a scan cache needs to check its hashes against the images: digests,
        image shape and dtype.

    Returns
    -------
    dict of str to HashSet

    Raises
    ------
    InputError
        Not a HashSet file, or a part of one missing or damaged: the file is refused as a
        whole, with how to rebuild it.
    FileError
        The file cannot be read (permission denied, locked).
    """
    path = os.fspath(path)
    rebuild = f"rebuild it with `gpudedup hash FILE.h5 -o {path}`"
    with open_h5_file(path, name) as handle:
        if _text(handle.attrs.get("format", "")) != FORMAT:
            raise InputError(f"{name}: {path!r} is not a gpudedup HashSet file (it lacks the "
                             f"format attribute {FORMAT!r}); make one with `gpudedup hash "
                             f"FILE.h5 -o {path}`")
        version = handle.attrs.get("format_version", FORMAT_VERSION)
        if not np.issubdtype(np.asarray(version).dtype, np.integer) or version > FORMAT_VERSION:
            raise InputError(f"{name}: {path!r} has HashSet format version {version!r}; this "
                             f"gpudedup reads version {FORMAT_VERSION} and older; {rebuild}")
        names = [_text(n) for n in np.atleast_1d(handle.attrs.get("sets", [""]))]
        sets = {}
        for set_name in names:
            label = f" (split {set_name!r})" if set_name else ""

            def broken(what, label=label):
                return InputError(f"{name}: {path!r}{label} {what}; {rebuild}")

            group = handle.get("/" + set_name) if set_name else handle
            if group is None or not hasattr(group, "keys"):
                raise broken(f"lists a set {set_name!r} but has no group /{set_name}")
            hs = HashSet._read(group, broken)
            if complete:
                lacking = [what for what, value in (("digests", hs.digests),
                                                    ("the image shape", hs.image_shape),
                                                    ("the dtype", hs.dtype)) if value is None]
                if lacking:
                    raise broken(f"has no {' or '.join(lacking)}, so its hashes cannot be "
                                 "checked against the images")
            sets[set_name] = hs
        return sets


def refresh(cached: HashSet, source: ImageSource, be, *,
            progress: bool = False) -> tuple[HashSet, np.ndarray | None]:
    """Bring cached hashes up to date with the images they were made from.

    Every image is read again and digested (cheap beside the perceptual hash); stored phashes
    are reused only for images whose digest is unchanged, and the changed images are hashed
    again, so the result equals hashing ``source`` afresh.

    Parameters
    ----------
    cached : HashSet
        Hashes saved earlier (with digests) of the same split.
    source : ImageSource
        The images now.
    be : Backend
        Where to hash.
    progress : bool
        Show progress bars.

    Returns
    -------
    hashes : HashSet
        Hashes of ``source`` as they are now, keeping ``source`` for verification.
    changed : numpy.ndarray of int64 or None
        Indices of the images that changed and were hashed again; None when the cache did not
        fit the images at all (other count, image shape, dtype or phash convention) and
        everything was hashed again.

    Raises
    ------
    InputError
        ``cached`` has no digests, so there is nothing to check the images against.
    """
    from .hashing import compute_hashes, hash_source, hashes_of

    if cached.digests is None:
        raise InputError("cached: the HashSet has no digests, so its hashes cannot be checked "
                         "against the images; hash them again")
    if misfit(cached, source) is not None:
        return hash_source(source, be, progress=progress), None
    digests, _ = compute_hashes(source, be, phashes=False, progress=progress)
    changed = np.flatnonzero((digests != cached.digests).any(axis=1))
    phashes = cached.phashes.copy()
    if 2 * changed.size > source.count:
        # most images changed: one streamed pass reads each chunk once
        phashes = compute_hashes(source, be, digests=False, progress=progress)[1]
    else:
        # only the changed images, a batch at a time (memory stays bounded)
        step = source.default_batch_size()
        for k in range(0, changed.size, step):
            rows = changed[k:k + step]
            part = ImageSource(name=source.name, data=source.take(rows),
                               description=source.description)
            phashes[rows] = compute_hashes(part, be, digests=False)[1]
    return hashes_of(source, phashes, digests), changed


def misfit(cached: HashSet, source: ImageSource) -> str | None:
    """Why ``cached`` cannot be matched to ``source`` row by row (other count, image shape,
    dtype or phash convention), or None when it can."""
    from .hashing import phash_convention

    if cached.count != source.count:
        return f"the cache holds {cached.count} images, the split {source.count}"
    if cached.image_shape != source.image_shape or cached.dtype != source.dtype:
        return (f"the cache holds images of shape {cached.image_shape} and {cached.dtype}, the "
                f"split {source.image_shape} and {source.dtype}")
    if cached.convention != phash_convention():
        return (f"its phashes follow the {cached.convention or 'unknown'} convention, this "
                f"installation {phash_convention()}")
    return None


def fingerprint(source: ImageSource) -> str | None:
    """Identity of a file-backed source: its file, dataset, shape, dtype, size and time.

    Hashes cached under this fingerprint are reused only while the file is unchanged.
    """
    if not source.is_file:
        return None
    data = source.data
    path = os.path.abspath(data.file.filename)
    stat = os.stat(path)
    text = (f"{path}|{data.name}|{tuple(data.shape)}|{data.dtype.str}|{stat.st_size}|"
            f"{stat.st_mtime_ns}")
    return hashlib.sha256(text.encode()).hexdigest()
