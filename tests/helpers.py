"""Seeded generators of test inputs (images and hash codes) shared by the test modules."""

from __future__ import annotations

import numpy as np
from PIL import Image

#: grayscale and RGB photographs shipped inside scikit-image (no download needed)
GRAY_PHOTOS = ("camera", "moon", "coins", "page", "text", "brick", "grass", "clock", "cell",
               "microaneurysms", "checkerboard")
RGB_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
              "immunohistochemistry", "colorwheel")


def photo(name: str) -> np.ndarray:
    """A scikit-image sample picture (skips the calling test when scikit-image is absent)."""
    import pytest

    data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(getattr(data, name)())


def gray(rgb: np.ndarray) -> np.ndarray:
    """Pillow's convert("L") of a uint8 RGB picture."""
    return np.asarray(Image.fromarray(rgb).convert("L"))


def smooth_images(rng: np.random.Generator, n: int, height: int, width: int,
                  dtype=np.uint8) -> np.ndarray:
    """``n`` low-frequency random images (upsampled noise), scaled to 0..255 and cast.

    Their perceptual hashes are stable under small perturbations, unlike white noise's.
    """
    coarse = rng.random((n, 6, 6))
    out = np.empty((n, height, width))
    for k in range(n):
        pil = Image.fromarray((coarse[k] * 255).astype(np.float32))
        out[k] = np.asarray(pil.resize((width, height), Image.Resampling.BICUBIC))
    out -= out.min(axis=(1, 2), keepdims=True)
    out *= 250.0 / np.maximum(out.max(axis=(1, 2), keepdims=True), 1e-9)
    out += 2
    return np.rint(out).astype(dtype) if np.dtype(dtype).kind in "iub" else out.astype(dtype)


def perturb(images: np.ndarray, rng: np.random.Generator, pixels: int = 3) -> np.ndarray:
    """A copy of ``images`` with ``pixels`` random pixels of each nudged by +-1 (never byte
    identical to the original)."""
    out = images.copy()
    n, height, width = images.shape[:3]
    for k in range(n):
        ys = rng.integers(0, height, pixels)
        xs = rng.integers(0, width, pixels)
        for y, x in zip(ys, xs):
            value = out[k, y, x]
            out[k, y, x] = value - 1 if value > 0 else value + 1
    return out


def random_codes(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniformly random 64-bit codes."""
    return rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)


def clustered_codes(rng: np.random.Generator, n: int, centers: int = 4,
                    max_flips: int = 5) -> np.ndarray:
    """``n`` codes around a few random centers, each with up to ``max_flips`` random bit flips
    (many pairs within small thresholds, and exact repeats)."""
    base = random_codes(rng, centers)[rng.integers(0, centers, n)]
    for _ in range(max_flips):
        bits = rng.integers(0, 64, n).astype(np.uint64)
        flip = (rng.random(n) < 0.6).astype(np.uint64)
        base ^= flip << bits
    return base


def planted(rng, n=80, shape=(24, 20), dtype=np.uint8, copies=((3, 10), (3, 20), (30, 40))):
    """Smooth images with byte-identical copies planted at the given (source, target) pairs."""
    images = smooth_images(rng, n, *shape, dtype=dtype)
    for src, dst in copies:
        if dst < n:
            images[dst] = images[src]
    return images


def same_overlaps(x, y):
    """Two Overlaps results with the same pairs, distances and exact flags."""
    np.testing.assert_array_equal(x.pairs, y.pairs)
    np.testing.assert_array_equal(x.distance, y.distance)
    np.testing.assert_array_equal(x.exact, y.exact)


def write_h5(path, **datasets):
    """An HDF5 file of chunked datasets; a ``__`` in a name is a group separator ("g__x" is
    /g/x). Skips the calling test when h5py is absent."""
    import pytest

    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        for name, data in datasets.items():
            f.create_dataset(name.replace("__", "/"), data=data, chunks=(4, *data.shape[1:]))


def noisy_copies(n: int, distinct: int, seed: int = 0) -> np.ndarray:
    """``n`` copies of one blocky 28x28 image, each with three pixels changed by up to 20 grey
    levels (a near cluster of true copies), then ``distinct`` random images."""
    rng = np.random.default_rng(seed)
    logo = np.repeat(np.repeat(rng.integers(0, 256, (7, 7)), 4, 0), 4, 1).astype(np.int16)
    copies = np.repeat(logo[None], n, 0).reshape(n, -1)
    for where in rng.integers(0, 28 * 28, (3, n)):
        copies[np.arange(n), where] += rng.integers(-20, 21, n).astype(np.int16)
    others = rng.integers(0, 256, (distinct, 28, 28))
    return np.concatenate([np.clip(copies, 0, 255).reshape(n, 28, 28), others]).astype(np.uint8)


def turned_noisy_copies(n: int, turned: int, distinct: int, seed: int = 0) -> np.ndarray:
    """:func:`noisy_copies` with the last ``turned`` of the ``n`` copies mirrored, transposed
    or rotated in turn (dihedral transforms 1-7): one near group only under
    ``invariant="dihedral"``."""
    from gpudedup.transforms import apply

    x = noisy_copies(n, distinct, seed)
    for k in range(n - turned, n):
        x[k] = apply(x[k], 1 + k % 7)
    return x
