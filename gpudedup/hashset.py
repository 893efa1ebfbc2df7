"""HashSet: the precomputed hashes of a stack of images, saved to and loaded from HDF5."""

from __future__ import annotations

import hashlib
import os

import numpy as np

from .errors import InputError
from .fileio import atomic_path
from .sources import ImageSource, open_h5_file

FORMAT = "gpudedup-hashset"
FORMAT_VERSION = 1


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
    """

    def __init__(self, phashes, digests=None, *, image_shape=None, dtype=None,
                 source: ImageSource | None = None, description: str = "",
                 convention: str = "", fingerprint: str | None = None):
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

    @property
    def count(self) -> int:
        return int(self.phashes.shape[0])

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        kind = "digests+phashes" if self.digests is not None else "phashes"
        return f"HashSet({self.count} images, {kind}, {self.description or 'no source'})"

    @classmethod
    def from_phash(cls, codes) -> HashSet:
        """A HashSet of bare uint64 perceptual hashes (near search only)."""
        return cls(np.asarray(codes), description="phash codes")

    def save(self, path) -> None:
        """Write to an HDF5 file (under a temporary name, then renamed into place)."""
        save_many(path, {"": self})

    @classmethod
    def load(cls, path) -> HashSet:
        """Read a HashSet written by :meth:`save`."""
        sets = load_many(path)
        if "" not in sets:
            raise InputError(f"path: {os.fspath(path)!r} holds several HashSets "
                             f"({', '.join(sets)}); use gpudedup.hashset.load_many")
        return sets[""]

    def _write(self, group) -> None:
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

    @classmethod
    def _read(cls, group) -> HashSet:
        attrs = group.attrs
        shape = attrs.get("image_shape")
        hs = cls(
            group["phash"][()],
            group["digest"][()] if "digest" in group else None,
            image_shape=tuple(shape) if shape is not None else None,
            dtype=attrs.get("dtype"),
            description=str(attrs.get("description", "")),
            convention=str(attrs.get("convention", "")),
            fingerprint=attrs.get("fingerprint"),
        )
        hs.source = _reopen(hs)
        return hs


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

    with atomic_path(path, ".h5.tmp") as tmp, h5py.File(tmp, "w") as out:
        out.attrs["format"] = FORMAT
        out.attrs["format_version"] = FORMAT_VERSION
        out.attrs["sets"] = np.array(list(sets), dtype=h5py.string_dtype())
        for name, hs in sets.items():
            hs._write(out.require_group("/" + name) if name else out)


def load_many(path) -> dict[str, HashSet]:
    """Read every HashSet of a file written by :func:`save_many` (or ``HashSet.save``)."""
    path = os.fspath(path)
    with open_h5_file(path, "path") as handle:
        if handle.attrs.get("format") != FORMAT:
            raise InputError(f"path: {path!r} is not a gpudedup HashSet file")
        names = [n.decode() if isinstance(n, bytes) else str(n)
                 for n in handle.attrs.get("sets", [""])]
        return {name: HashSet._read(handle["/" + name] if name else handle) for name in names}


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
