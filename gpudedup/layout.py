"""Finding the splits (and their labels) in an HDF5 file laid out the usual ways."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError
from .sources import dangling_link

#: split names in priority order, with the spellings people use for them
SPLIT_NAMES = {
    "train": ("train", "training"),
    "valid": ("valid", "validation", "val"),
    "test": ("test", "testing"),
}
#: dataset-name patterns for (images, labels) of a split spelled `s`
PATTERNS = (
    ("{s}", None),  # /train (labels: /train_labels or /y_train when present)
    ("{s}/images", "{s}/labels"),
    ("{s}/x", "{s}/y"),
    ("x_{s}", "y_{s}"),
    ("X_{s}", "y_{s}"),
    ("{s}_images", "{s}_labels"),
    ("{s}_dataset", "{s}_labels"),  # notMNIST pickles converted to HDF5
    ("{s}_x", "{s}_y"),
)
LABEL_GUESSES = ("{s}_labels", "y_{s}", "{s}_y", "{s}/labels")


@dataclass(frozen=True)
class SplitSpec:
    """Where one split's images (and labels) live in the file."""

    name: str
    images: str
    labels: str | None = None


def _is_images(handle, path: str) -> bool:
    import h5py

    obj = handle.get(path)
    return isinstance(obj, h5py.Dataset) and obj.ndim in (3, 4)


def _is_labels(handle, path: str | None, count: int) -> bool:
    import h5py

    if path is None:
        return False
    obj = handle.get(path)
    return isinstance(obj, h5py.Dataset) and obj.ndim >= 1 and obj.shape[0] == count


def find_splits(handle, notes: list[str] | None = None) -> list[SplitSpec]:
    """The splits of an open HDF5 file, in train/valid/test order, by the usual layouts.

    Parameters
    ----------
    handle : h5py.File
        The open file.
    notes : list of str, optional
        Receives a line for each dangling link found where a split or its labels would be
        (``handle.get`` sees nothing there, so it would be skipped without a word).

    Returns
    -------
    list of SplitSpec

    Raises
    ------
    InputError
        The file's metadata is damaged.
    """
    found = []
    for name, spellings in SPLIT_NAMES.items():
        try:
            spec = _find_one(handle, name, spellings, notes if notes is not None else [])
        except (RuntimeError, OSError) as exc:
            # HDF5 met bad metadata while looking a name up (a damaged header or heap)
            raise InputError(f"{handle.filename!r} is damaged, not a valid HDF5 file: its "
                             f"layout cannot be read (HDF5: {exc})") from None
        if spec is not None:
            found.append(spec)
    return found


def _note_dangling(handle, path: str, what: str, notes: list[str]) -> None:
    if handle.get(path) is None:
        why = dangling_link(handle, path)
        note = f"{why}, so it is not used as {what}"
        # /train/images and /train/x both lead through a dangling /train: say it once
        if why is not None and note not in notes:
            notes.append(note)


def _find_one(handle, name: str, spellings, notes: list[str]) -> SplitSpec | None:
    for spelled in spellings:
        for images, labels in PATTERNS:
            image_path = "/" + images.format(s=spelled)
            if not _is_images(handle, image_path):
                _note_dangling(handle, image_path, f"the {name} split", notes)
                continue
            count = handle[image_path].shape[0]
            guesses = [labels] if labels else list(LABEL_GUESSES)
            for guess in guesses:
                label_path = "/" + guess.format(s=spelled)
                if _is_labels(handle, label_path, count):
                    return SplitSpec(name, image_path, label_path)
                _note_dangling(handle, label_path, f"the labels of {name}", notes)
            return SplitSpec(name, image_path, None)
    return None


def parse_assignments(items: list[str] | None, option: str) -> dict[str, str]:
    """``["train=/x", ...]`` -> ``{"train": "/x"}``; ValueError naming ``option`` if malformed."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InputError(f"{option}: expected NAME=/dataset, got {item!r}")
        if name in out:
            raise InputError(f"{option}: split {name!r} given twice")
        out[name] = path if path.startswith("/") else "/" + path
    return out


#: (images name, labels name) pairs tried on the last part of an images path; "{}" is the rest
#: of the name
_LABEL_RENAMES = (
    ("x_{}", "y_{}"), ("X_{}", "y_{}"), ("{}_x", "{}_y"), ("{}_X", "{}_y"),
    ("{}_images", "{}_labels"), ("{}_imgs", "{}_labels"), ("{}_dataset", "{}_labels"),
    ("{}_data", "{}_labels"), ("images", "labels"), ("x", "y"), ("X", "y"), ("data", "labels"),
    ("{}", "{}_labels"),
)


def _renamed(name: str, images: str, labels: str) -> str | None:
    if "{}" not in images:
        return labels if name == images else None
    head, _, tail = images.partition("{}")
    if len(name) > len(head) + len(tail) and name.startswith(head) and name.endswith(tail):
        return labels.format(name[len(head):len(name) - len(tail)])
    return None


def guess_labels(handle, split_name: str, images_path: str, count: int) -> str | None:
    """The labels dataset of a split whose images are at ``images_path``, guessed by name.

    Tried in order: the images' name with its images part renamed (``/x_train`` ->
    ``/y_train``, ``/train_images`` -> ``/train_labels``, ``/train/images`` ->
    ``/train/labels``, ``/mnist/x`` -> ``/mnist/y``), then the split name's usual label names
    at the top of the file (LABEL_GUESSES: ``/train_labels``, ``/y_train``, ...). A guess counts
    only when it is a dataset with ``count`` entries along its first axis.

    Parameters
    ----------
    handle : h5py.File
    split_name : str
    images_path : str
        The images dataset, such as ``"/x_train"``.
    count : int
        The number of images.

    Returns
    -------
    str or None
        The labels path, or None when no guess fits.

    Examples
    --------
    >>> import h5py, numpy as np
    >>> with h5py.File("guess.h5", "w", driver="core", backing_store=False) as f:
    ...     f["x_train"], f["y_train"] = np.zeros((2, 4, 4)), np.zeros(2)
    ...     guess_labels(f, "train", "/x_train", 2)
    '/y_train'
    """
    parent, _, name = images_path.rstrip("/").rpartition("/")
    guesses = []
    for images, labels in _LABEL_RENAMES:
        renamed = _renamed(name, images, labels)
        if renamed is not None:
            guesses.append(f"{parent}/{renamed}")
    guesses += ["/" + g.format(s=split_name) for g in LABEL_GUESSES]
    for guess in dict.fromkeys(guesses):  # in order, once each
        if guess == images_path:
            continue
        try:
            if _is_labels(handle, guess, count):
                return guess
        except (KeyError, OSError):  # a dangling link is no guess
            continue
    return None
