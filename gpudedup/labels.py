"""What a label is: the one rule that ``scan``, the command and ``clean`` share.

A split's labels are an array with one entry per image (first axis N): a number, a string, or a
row of them (multi-label). :func:`check_labels` reads and checks the labels of every split
before any image is hashed; :func:`labels_differ` says which pairs carry different labels (a
label conflict); :func:`json_value` turns one label into a plain, JSON-safe Python value.

The rule
--------
- **Kinds.** Numbers (bool, int, float; compared by value, so ``1 == 1.0 == True``) or strings
  (``str``, and ``bytes`` decoded as UTF-8 so that ``b"cat" == "cat"``). Every labelled split
  holds the same kind and the same shape per image. Object arrays of strings or of numbers
  (``None`` as unknown) are converted; complex, datetime, timedelta, structured and other
  object labels, bytes that are not UTF-8 and infinite numbers cannot be written to JSON and
  are refused.
- **Unknown labels** never make a conflict: NaN (and ``None`` in object arrays) for numbers, the
  empty string for strings, an all-zero one-hot row. No number (such as -1) is taken to mean
  unknown. In rows, an element unknown on either side is not compared.
- **One-hot rows** are read as class indices: a 2-d numeric array of at least two columns whose
  values are all 0 or 1, with at most one 1 per row and at least one 1 somewhere, becomes
  ``argmax`` per row (int64; float64 with NaN for all-zero rows, which are unknown). So one-hot
  train labels compare with integer test labels. The exception: when another labelled split
  holds 2-d numeric rows that are not one-hot (multi-label), every split's rows compare as
  rows, element by element.
- A column ``(N, 1)`` is read as ``(N,)``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import numpy as np

from .errors import InputError, InputTypeError

_NUMERIC = "biuf"
_STRING = "US"


def _is_h5_dataset(obj) -> bool:
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        return False
    return isinstance(obj, h5py.Dataset)


def read_labels(values, name: str) -> np.ndarray:
    """The labels of one split as a numpy array, as given (not yet checked).

    Parameters
    ----------
    values : array-like, h5py.Dataset or str
        An array, a list, an h5py dataset (read whole), or ``"file.h5:/dataset"``.
    name : str
        The argument's name for error messages (``"labels['train']"``, ``"--labels train"``).

    Returns
    -------
    ndarray

    Examples
    --------
    >>> read_labels([1, 2, 3], "labels['train']")
    array([1, 2, 3])
    """
    if isinstance(values, (str, os.PathLike)):
        from .sources import open_h5_dataset

        handle, dataset = open_h5_dataset(os.fspath(values), name)
        with handle:
            return np.asarray(dataset[()])
    if _is_h5_dataset(values):
        return np.asarray(values[()])
    try:
        return np.asarray(values)
    except ValueError as exc:
        raise InputError(f"{name}: cannot make one array of the labels ({exc})") from None


def _decode(items, name: str) -> list:
    out = []
    for k, item in enumerate(items):
        if isinstance(item, (bytes, np.bytes_)):
            try:
                item = bytes(item).decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(f"{name}: label {k} is bytes that are not UTF-8 "
                                 f"({bytes(item)[:20]!r}); labels must be text") from None
        out.append(str(item))
    return out


def _missing(item) -> bool:
    return item is None or (isinstance(item, (float, np.floating)) and math.isnan(item))


def _from_objects(arr: np.ndarray, name: str) -> np.ndarray:
    # object arrays (pandas columns, h5py variable-length strings): all text or all numbers,
    # None and NaN standing for unknown
    flat = arr.ravel().tolist()
    present = [x for x in flat if not _missing(x)]
    if all(isinstance(x, (str, bytes, np.str_, np.bytes_)) for x in present):
        text = _decode(["" if _missing(x) else x for x in flat], name)
        return np.array(text, dtype=str).reshape(arr.shape) if text else \
            np.empty(arr.shape, dtype="U1")
    numbers = (bool, int, float, np.bool_, np.integer, np.floating)
    if all(isinstance(x, numbers) for x in present):
        if len(present) < len(flat):
            return np.array([math.nan if _missing(x) else x for x in flat],
                            dtype=np.float64).reshape(arr.shape)
        return np.array(flat).reshape(arr.shape)
    text = (str, bytes, np.str_, np.bytes_)
    bad = [x for x in present if not isinstance(x, text + numbers)]
    if not bad:
        raise InputTypeError(f"{name}: labels mix strings and numbers; give one kind")
    raise InputTypeError(f"{name}: labels must be numbers or strings, not objects (found "
                         f"{type(bad[0]).__name__}); they are written to JSON")


def normalise(arr: np.ndarray, name: str) -> np.ndarray:
    """One split's labels in the rule's form: numbers or ``str``, NaN and ``""`` unknown.

    Parameters
    ----------
    arr : ndarray
        The labels as read, first axis N (checked by the caller).
    name : str
        The argument's name for error messages.

    Returns
    -------
    ndarray
        A numeric (``b``, ``i``, ``u``, ``f``) or ``str`` (``U``) array of the same length;
        one-hot rows are not converted here (that depends on the other splits).

    Examples
    --------
    >>> normalise(np.array([b"cat", b""]), "labels['train']")
    array(['cat', ''], dtype='<U3')
    """
    if arr.dtype.kind == "O":
        arr = _from_objects(arr, name)
    kind = arr.dtype.kind
    if kind == "S":
        arr = np.array(_decode(arr.ravel().tolist(), name), dtype=str).reshape(arr.shape) \
            if arr.size else np.empty(arr.shape, dtype="U1")
    elif kind not in _NUMERIC + "U":
        what = {"c": "complex numbers", "M": "datetimes", "m": "timedeltas",
                "V": "structured records"}.get(kind, str(arr.dtype))
        raise InputTypeError(f"{name}: labels must be numbers or strings, got {what} "
                             f"({arr.dtype}); they are written to JSON")
    if arr.dtype.kind == "f" and np.isinf(arr).any():
        k = int(np.flatnonzero(np.isinf(arr).reshape(arr.shape[0], -1).any(axis=1))[0])
        raise InputError(f"{name}: label {k} is infinite; labels must be finite numbers "
                         "(NaN means unknown)")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    return arr


def is_one_hot(arr: np.ndarray) -> bool:
    """Whether ``arr`` is 2-d one-hot rows: numbers 0/1, at least two columns, at most one 1
    per row and at least one 1 somewhere (all-zero rows are unknown).

    Examples
    --------
    >>> is_one_hot(np.array([[0, 1], [1, 0], [0, 0]])), is_one_hot(np.array([[1, 1], [0, 1]]))
    (True, False)
    """
    if arr.ndim != 2 or arr.shape[1] < 2 or arr.dtype.kind not in _NUMERIC or not arr.size:
        return False
    ones = arr == 1
    if not (ones | (arr == 0)).all():
        return False
    per_row = ones.sum(axis=1)
    return bool((per_row <= 1).all() and per_row.any())


def one_hot_indices(arr: np.ndarray) -> np.ndarray:
    """Class indices of one-hot rows: int64, or float64 with NaN where a row is all zero.

    Examples
    --------
    >>> one_hot_indices(np.array([[0, 1], [1, 0]])).tolist()
    [1, 0]
    >>> one_hot_indices(np.array([[0, 1], [0, 0]])).tolist()
    [1.0, nan]
    """
    index = np.argmax(arr == 1, axis=1)
    empty = ~(arr == 1).any(axis=1)
    if empty.any():
        index = index.astype(np.float64)
        index[empty] = np.nan
    return index.astype(np.int64) if index.dtype.kind != "f" else index


def _kind(arr: np.ndarray) -> str:
    return "strings" if arr.dtype.kind in _STRING else f"numbers ({arr.dtype})"


def check_labels(labels, counts: Mapping[str, int], *, names: Mapping[str, str] | None = None,
                 notes: dict | None = None) -> dict[str, np.ndarray]:
    """Read and check the labels of every split by the rule of this module.

    Parameters
    ----------
    labels : mapping of str to labels, or None
        Per split: an array-like, an h5py dataset or ``"file.h5:/dataset"`` with one label per
        image, or None (no labels).
    counts : mapping of str to int
        The number of images of every split.
    names : mapping of str to str, optional
        What to call each split's labels in messages (default ``labels['train']``; the
        command passes ``--labels train``).
    notes : dict, optional
        Filled with ``{split: note}`` for conversions a user should hear of (one-hot rows read
        as class indices).

    Returns
    -------
    dict of str to ndarray
        The labels of the labelled splits, numeric or ``str``, one-hot rows converted.

    Raises
    ------
    InputTypeError
        ``labels`` is not a mapping, or labels of a kind that cannot be written to JSON.
    InputError
        An unknown split, a wrong count, bytes that are not UTF-8, infinite numbers, or splits
        whose labels differ in kind or in shape per image (both splits named).

    Examples
    --------
    >>> notes = {}
    >>> out = check_labels({"train": np.eye(3, dtype=int)[[2, 0]], "test": [2, 1]},
    ...                    {"train": 2, "test": 2}, notes=notes)
    >>> out["train"].tolist(), notes
    ([2, 0], {'train': 'one-hot rows read as class indices'})
    """
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise InputTypeError(f"labels: expected a mapping of split name to labels, got "
                             f"{type(labels).__name__}")
    names = dict(names or {})
    out = {}
    for split, values in labels.items():
        if split not in counts:
            raise InputError(f"labels: {split!r} is not one of the splits "
                             f"({', '.join(map(repr, counts))})")
        if values is None:
            continue
        name = names.setdefault(split, f"labels[{split!r}]")
        arr = read_labels(values, name)
        if arr.ndim == 0 or arr.shape[0] != counts[split]:
            got = "a scalar" if arr.ndim == 0 else f"{arr.shape[0]} labels"
            raise InputError(f"{name}: expected {counts[split]} labels (one per image), got "
                             f"{got}")
        out[split] = normalise(arr, name)
    # empty splits have no pairs; their dtype says nothing, so they take no part in agreeing
    filled = [s for s in out if out[s].shape[0]]
    rows = any(out[s].ndim == 2 and out[s].dtype.kind in _NUMERIC and not is_one_hot(out[s])
               for s in filled)
    if not rows:
        for split, arr in out.items():
            if is_one_hot(arr):
                out[split] = one_hot_indices(arr)
                if notes is not None:
                    notes[split] = "one-hot rows read as class indices"
            elif not arr.shape[0] and arr.ndim == 2:
                out[split] = arr.reshape(0).astype(np.int64)
    for a, b in zip(filled, filled[1:]):
        la, lb = out[a], out[b]
        if (la.dtype.kind in _STRING) != (lb.dtype.kind in _STRING):
            raise InputError(f"{names[a]}, {names[b]}: labels of different kinds, "
                             f"{_kind(la)} and {_kind(lb)}; every split needs numbers, or "
                             "every split strings")
        if la.shape[1:] != lb.shape[1:]:
            hint = ""
            if rows and (is_one_hot(la) or is_one_hot(lb)):
                hint = " (one-hot rows are read as class indices only when no split holds " \
                       "multi-label rows)"
            raise InputError(f"{names[a]}, {names[b]}: labels of different shapes per image, "
                             f"{la.shape[1:]} and {lb.shape[1:]}{hint}")
    return out


def known(values: np.ndarray) -> np.ndarray:
    """Element-wise: which labels are known (not NaN, not the empty string).

    Examples
    --------
    >>> known(np.array([1.0, np.nan])).tolist(), known(np.array(["a", ""])).tolist()
    ([True, False], [True, False])
    """
    values = np.asarray(values)
    if values.dtype.kind == "f":
        return ~np.isnan(values)
    if values.dtype.kind in _STRING:
        return values != values.dtype.type()
    return np.ones(values.shape, dtype=bool)


def labels_differ(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Which pairs of labels (``left[k]`` vs ``right[k]``) differ: a conflict.

    Labels are compared element by element (rows when 2-d); an element unknown on either side
    is not compared, so unknown labels never differ.

    Parameters
    ----------
    left, right : ndarray, shape (k, ...)
        Labels checked by :func:`check_labels`, one pair per row.

    Returns
    -------
    ndarray of bool, shape (k,)

    Examples
    --------
    >>> labels_differ(np.array([1.0, 2.0, np.nan]), np.array([1, 3, 3])).tolist()
    [False, True, False]
    """
    left, right = np.asarray(left), np.asarray(right)
    if left.shape[1:] != right.shape[1:] or \
            (left.dtype.kind in _STRING) != (right.dtype.kind in _STRING):
        raise InputError(f"labels of different kinds or shapes cannot be compared "
                         f"({left.dtype}{list(left.shape[1:])} vs "
                         f"{right.dtype}{list(right.shape[1:])}); check them with check_labels")
    differ = (left != right) & known(left) & known(right)
    if differ.ndim > 1:
        differ = differ.reshape(differ.shape[0], -1).any(axis=1)
    return differ


def json_value(value):
    """One label (or row of labels) as a plain Python value for JSON, CSV and HTML.

    NaN and the empty string (unknown) become None, so the JSON never holds ``NaN``; rows become
    lists; bytes are decoded as UTF-8.

    Examples
    --------
    >>> json_value(np.int64(3)), json_value(np.float64("nan")), json_value(np.array([1, 0]))
    (3, None, [1, 0])
    """
    if isinstance(value, np.ndarray):
        return [json_value(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str) and not value:
        return None
    return value


def label_value(value):
    """A label as a plain, JSON-safe Python value (for JSON, CSV and HTML): None where it is
    unknown (NaN, ``""``), a list for a row. See :func:`gpudedup.labels.json_value`."""
    return json_value(value)


def conflict_mask(labels: dict, a: str, b: str, ov) -> np.ndarray:
    """Which pairs of ``ov`` (split ``a`` x split ``b``) join images with different labels;
    False everywhere unless both splits have labels. Unknown labels (NaN, ``""``) never differ;
    rows (multi-label) differ when any element known on both sides does. The rule is
    :func:`gpudedup.labels.labels_differ`."""
    la, lb = labels.get(a), labels.get(b)
    if la is None or lb is None or not len(ov):
        return np.zeros(len(ov), dtype=bool)
    return labels_differ(la[ov.left], lb[ov.right])
