"""Finding the splits (and their labels) in an HDF5 file laid out the usual ways."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError

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


def find_splits(handle) -> list[SplitSpec]:
    """The splits of an open HDF5 file, in train/valid/test order, by the usual layouts."""
    found = []
    for name, spellings in SPLIT_NAMES.items():
        spec = _find_one(handle, name, spellings)
        if spec is not None:
            found.append(spec)
    return found


def _find_one(handle, name: str, spellings) -> SplitSpec | None:
    for spelled in spellings:
        for images, labels in PATTERNS:
            image_path = "/" + images.format(s=spelled)
            if not _is_images(handle, image_path):
                continue
            count = handle[image_path].shape[0]
            guesses = [labels] if labels else list(LABEL_GUESSES)
            for guess in guesses:
                label_path = "/" + guess.format(s=spelled)
                if _is_labels(handle, label_path, count):
                    return SplitSpec(name, image_path, label_path)
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
