"""A small built-in dataset with planted leaks, duplicates and a label conflict (``gpudedup demo``).

The images are 28x28 uint8 "glyphs" (random strokes, boxes and rings on a dark background, in
the spirit of notMNIST); what is planted is recorded so the demo can show it was found.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIDE = 28


def _glyph(rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float64)
    img = rng.normal(12.0, 4.0, (SIDE, SIDE))
    for _ in range(rng.integers(2, 5)):
        kind = rng.integers(3)
        cy, cx = rng.uniform(5, SIDE - 5, 2)
        ink = rng.uniform(140, 255)
        if kind == 0:  # ring
            r = rng.uniform(4, 10)
            img[np.abs(np.hypot(yy - cy, xx - cx) - r) < 1.3] = ink
        elif kind == 1:  # box
            h, w = rng.uniform(3, 9, 2)
            img[(np.abs(yy - cy) < h) & (np.abs(xx - cx) < w)] = ink
        else:  # stroke
            angle = rng.uniform(0, np.pi)
            dist = (yy - cy) * np.cos(angle) - (xx - cx) * np.sin(angle)
            along = (yy - cy) * np.sin(angle) + (xx - cx) * np.cos(angle)
            img[(np.abs(dist) < 1.5) & (np.abs(along) < rng.uniform(6, 12))] = ink
    return np.clip(img, 0, 255).astype(np.uint8)


@dataclass
class DemoData:
    """Splits, labels, and what was planted in them."""

    splits: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    planted: list[str]


def make_demo(seed: int = 0, sizes=(600, 150, 150), classes: int = 10) -> DemoData:
    """Build train/valid/test with planted exact leaks, near leaks, duplicates and a conflict."""
    rng = np.random.default_rng(seed)
    names = ("train", "valid", "test")
    splits = {n: np.stack([_glyph(rng) for _ in range(k)]) for n, k in zip(names, sizes)}
    labels = {n: rng.integers(0, classes, k) for n, k in zip(names, sizes)}
    train, valid, test = splits["train"], splits["valid"], splits["test"]
    planted = []
    # exact leaks: train images copied into valid and test, labels kept
    for src, dst, split in ((3, 7, "valid"), (10, 20, "valid"), (42, 5, "test")):
        splits[split][dst] = train[src]
        labels[split][dst] = labels["train"][src]
        planted.append(f"exact leak: train[{src}] == {split}[{dst}]")
    # near leaks: brightened and noisy copies
    brighter = np.clip(train[100].astype(np.int16) + 9, 0, 255).astype(np.uint8)
    valid[30] = brighter
    labels["valid"][30] = labels["train"][100]
    planted.append("near leak: valid[30] is train[100] made brighter")
    noisy = np.clip(train[200] + rng.integers(-6, 7, (SIDE, SIDE)), 0, 255).astype(np.uint8)
    test[40] = noisy
    labels["test"][40] = labels["train"][200]
    planted.append("near leak: test[40] is train[200] with noise")
    # duplicates inside train, one of them filed under another class (a label conflict)
    train[500] = train[17]
    labels["train"][500] = labels["train"][17]
    planted.append("exact duplicate: train[17] == train[500]")
    train[501] = train[18]
    labels["train"][501] = (labels["train"][18] + 1) % classes
    planted.append("label conflict: train[18] == train[501] with different labels")
    return DemoData(splits=splits, labels=labels, planted=planted)
