"""Label conflicts counted from classes, not pairs: how many pairs join different labels, and
which images have a copy labelled otherwise, in time linear in the images and the links.

Inside a class of identical images only the distinct labels matter: a class of 50,000 blank
glyphs labelled "A" or "B" is two label values with their counts, and its conflicting pairs
are the product of the counts. The rule of what differs is :func:`gpudedup.labels.labels_differ`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .labels import labels_differ


def _label_entries(labels: np.ndarray, rep: np.ndarray | None):
    # per image its entry (class, distinct label row); per entry its class, label row, count
    count = labels.shape[0]
    flat = labels.reshape(count, -1) if labels.ndim > 1 else labels
    _, code = np.unique(flat, axis=0 if labels.ndim > 1 else None, return_inverse=True)
    code = code.reshape(-1).astype(np.int64)
    classes = np.arange(count, dtype=np.int64) if rep is None else rep
    keys = classes * np.int64(code.max(initial=0) + 1) + code
    uniq, entry, counts = np.unique(keys, return_inverse=True, return_counts=True)
    entry = entry.reshape(-1)
    first = np.zeros(uniq.size, np.int64)
    first[entry[::-1]] = np.arange(count)[::-1]  # an image of each entry, for its label row
    entry_class = classes[first]
    start = np.zeros(count + 1, np.int64)  # entries of class r: start[r]:start[r + 1]
    np.cumsum(np.bincount(entry_class, minlength=count), out=start[1:])
    return entry, first, counts.astype(np.int64), start


@njit(cache=True)
def _entry_pairs(left, right, start_l, start_r, inner):
    # every (entry of left[k]'s class, entry of right[k]'s class) with its link k; inner:
    # both sides are one class, each unordered pair of distinct entries once
    total = 0
    for k in range(left.shape[0]):
        nl = start_l[left[k] + 1] - start_l[left[k]]
        nr = start_r[right[k] + 1] - start_r[right[k]]
        total += nl * (nl - 1) // 2 if inner else nl * nr
    link = np.empty(total, np.int64)
    el = np.empty(total, np.int64)
    er = np.empty(total, np.int64)
    p = 0
    for k in range(left.shape[0]):
        for a in range(start_l[left[k]], start_l[left[k] + 1]):
            lo = a + 1 if inner else start_r[right[k]]
            for b in range(lo, start_r[right[k] + 1]):
                link[p] = k
                el[p] = a
                er[p] = b
                p += 1
    return link, el, er


def count_conflicts(labels_a: np.ndarray, labels_b: np.ndarray, ov) -> tuple[int, np.ndarray,
                                                                           np.ndarray]:
    """For Overlaps ``ov`` between images labelled ``labels_a`` and ``labels_b`` (the same
    array for a self-join): how many of its pairs join different labels, and per image of
    each side whether it has such a pair (boolean masks)."""
    core = ov.core
    entry_a, first_a, n_a, start_a = _label_entries(labels_a, ov.rep_left)
    if ov.self_join:
        entry_b, first_b, n_b, start_b = entry_a, first_a, n_a, start_a
    else:
        entry_b, first_b, n_b, start_b = _label_entries(labels_b, ov.rep_right)
    hit_a = np.zeros(n_a.size, bool)
    hit_b = np.zeros(n_b.size, bool)
    total = 0
    parts = [(core["i"], core["j"], False)]
    if ov.self_join and ov.rep_left is not None:
        classes = np.flatnonzero(np.diff(start_a) > 1)  # classes holding two label values
        parts.append((classes, classes, True))
    for left, right, inner in parts:
        if not left.size:
            continue
        _, el, er = _entry_pairs(left, right, start_a, start_b, inner)
        if not el.size:
            continue
        differ = labels_differ(labels_a[first_a[el]], labels_b[first_b[er]])
        total += int((n_a[el][differ] * n_b[er][differ]).sum())
        hit_a[el[differ]] = True
        hit_b[er[differ]] = True
    if ov.self_join:
        hit = hit_a | hit_b
        return total, hit[entry_a], hit[entry_a]
    return total, hit_a[entry_a], hit_b[entry_b]
