"""The inputs of the benchmarks: crops of scikit-image photographs, and phash codes with planted
near duplicates (bench/README.md, sections 1 and 2), at the sizes of a run."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench import log

# ----------------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Sizes:
    """Problem sizes of one run."""

    #: (side, images for the fast methods, images for the per-image peers) per image size
    phash: tuple[tuple[int, int, int], ...]
    #: base images of the range-search codes; each gives ``search_variants`` images
    search_bases: int
    #: seconds the numpy brute force may take per threshold before it is run on a row
    #: subsample and extrapolated
    numpy_budget_s: float
    search_variants: int = 10
    thresholds: tuple[int, ...] = (0, 4, 8)

    @property
    def search_n(self) -> int:
        """Codes on each side (A and B) of the range search."""
        return self.search_bases * self.search_variants // 2


#: (backend, quick) -> sizes; on a GPU: 1e7 28x28 images hashed from host memory and
#: 1e6 x 1e6 codes searched (issue 3)
SIZES = {
    ("cpu", False): Sizes(phash=((28, 200_000, 2_000), (64, 50_000, 1_000), (256, 5_000, 300)),
                          search_bases=30_000, numpy_budget_s=180.0),
    ("cpu", True): Sizes(phash=((28, 20_000, 300), (64, 5_000, 150), (256, 500, 40)),
                         search_bases=4_000, numpy_budget_s=3.0),
    ("cuda", False): Sizes(phash=((28, 10_000_000, 2_000), (64, 1_000_000, 1_000),
                                  (256, 100_000, 300)),
                           search_bases=200_000, numpy_budget_s=120.0),
    ("cuda", True): Sizes(phash=((28, 200_000, 300), (64, 20_000, 150), (256, 2_000, 40)),
                          search_bases=20_000, numpy_budget_s=3.0),
}
#: --smoke: the harness end to end on a handful of images and codes, one repeat (for CI, and
#: under the CUDA simulator, which runs about 5k threads per second); figures mean nothing
SMOKE_SIZES = Sizes(phash=((28, 4, 3), (64, 2, 2)), search_bases=4, numpy_budget_s=1.0)
#: distinct crops per phash size; bigger stacks repeat them (hashing cost ignores content)
UNIQUE_CROPS = 500_000


# ---------------------------------------------------------------------------------- images

#: scikit-image photographs that ship inside the scikit-image wheel (no download needed)
PHOTOS = ("astronaut", "brick", "camera", "cell", "chelsea", "clock", "coffee", "coins",
          "grass", "gravel", "hubble_deep_field", "immunohistochemistry", "moon", "page",
          "retina", "rocket", "text")
#: each photograph is also used downscaled (Pillow LANCZOS) by these factors
PYRAMID_SCALES = (1.0, 0.7, 0.5, 0.35, 0.25)
#: crops whose pixel standard deviation is below this (blank background) are drawn again
MIN_CROP_STD = 10.0


def load_photos() -> dict[str, np.ndarray]:
    """The scikit-image photographs as uint8 grayscale (RGB converted as Pillow's "L")."""
    import skimage.data
    from PIL import Image

    photos = {}
    for name in PHOTOS:
        try:
            img = getattr(skimage.data, name)()
        except Exception as exc:  # noqa: BLE001 - a photograph this install cannot provide
            log(f"  (skipping skimage.data.{name}: {type(exc).__name__})")
            continue
        if img.ndim == 3:
            img = np.asarray(Image.fromarray(np.ascontiguousarray(img[..., :3])).convert("L"))
        photos[name] = np.ascontiguousarray(img, dtype=np.uint8)
    if len(photos) < 5:
        raise RuntimeError("fewer than 5 scikit-image photographs could be loaded")
    return photos


def build_pyramid(photos: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Every photograph at every scale of PYRAMID_SCALES."""
    from PIL import Image

    levels = []
    for img in photos.values():
        h, w = img.shape
        for scale in PYRAMID_SCALES:
            if scale == 1.0:
                levels.append(img)
            else:
                size = (max(1, round(w * scale)), max(1, round(h * scale)))
                levels.append(np.asarray(Image.fromarray(img).resize(size, Image.LANCZOS)))
    return levels


def random_crops(levels: list[np.ndarray], count: int, side: int,
                 rng: np.random.Generator) -> np.ndarray:
    """``count`` random ``side`` x ``side`` crops of the pyramid levels large enough for them.

    Crops that are nearly blank (std < MIN_CROP_STD) are replaced by fresh draws.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    usable = [lvl for lvl in levels if min(lvl.shape) >= side]
    if not usable:
        raise ValueError(f"no photograph is at least {side} px on both sides")
    out = np.empty((count, side, side), dtype=np.uint8)
    todo = np.arange(count)
    for _ in range(50):
        which = rng.integers(len(usable), size=todo.size)
        for k, lvl in enumerate(usable):
            idx = todo[which == k]
            if idx.size == 0:
                continue
            ys = rng.integers(0, lvl.shape[0] - side + 1, idx.size)
            xs = rng.integers(0, lvl.shape[1] - side + 1, idx.size)
            out[idx] = sliding_window_view(lvl, (side, side))[ys, xs]
        std = out[todo].reshape(todo.size, -1).std(axis=1)
        todo = todo[std < MIN_CROP_STD]
        if todo.size == 0:
            break
    return out


def phash_images(levels: list[np.ndarray], count: int, side: int,
                 rng: np.random.Generator) -> np.ndarray:
    """``count`` crops for the phash benchmark: at most UNIQUE_CROPS distinct ones, repeated."""
    images = random_crops(levels, min(count, UNIQUE_CROPS), side, rng)
    if count > images.shape[0]:
        images = np.resize(images, (count, side, side))
    return images


# ------------------------------------------------------------------- near-duplicate variants

#: border kept around each base crop so that shifts and blurs see real content
MARGIN = 2


def _center(big: np.ndarray, side: int) -> np.ndarray:
    return big[:, MARGIN:MARGIN + side, MARGIN:MARGIN + side]


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def vary_brightness_contrast(big, side, rng):
    """Contrast x U(0.85, 1.15) about 128, then brightness + U(-15, 15)."""
    n = big.shape[0]
    gain = rng.uniform(0.85, 1.15, (n, 1, 1))
    offset = rng.uniform(-15.0, 15.0, (n, 1, 1))
    return _to_uint8((_center(big, side).astype(np.float64) - 128.0) * gain + 128.0 + offset)


def vary_noise(big, side, rng):
    """Gaussian pixel noise, sigma U(2, 6) grey levels."""
    n = big.shape[0]
    sigma = rng.uniform(2.0, 6.0, (n, 1, 1))
    x = _center(big, side).astype(np.float64)
    return _to_uint8(x + rng.standard_normal(x.shape) * sigma)


_SHIFTS = np.array([(dy, dx) for dy in range(-MARGIN, MARGIN + 1)
                    for dx in range(-MARGIN, MARGIN + 1) if (dy, dx) != (0, 0)])


def vary_shift(big, side, rng):
    """Translation by (dy, dx) in [-2, 2]^2 minus (0, 0): the window moves over the photo."""
    n = big.shape[0]
    dy, dx = _SHIFTS[rng.integers(len(_SHIFTS), size=n)].T
    rows = MARGIN + dy[:, None] + np.arange(side)
    cols = MARGIN + dx[:, None] + np.arange(side)
    return big[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def vary_blur(big, side, rng):
    """Gaussian blur, sigma one of 0.6, 0.8, 1.0 px."""
    from scipy.ndimage import gaussian_filter

    n = big.shape[0]
    sigma = rng.choice((0.6, 0.8, 1.0), size=n)
    out = np.empty((n, side, side), dtype=np.uint8)
    for s in np.unique(sigma):
        idx = np.flatnonzero(sigma == s)
        blurred = gaussian_filter(big[idx].astype(np.float64), (0, s, s), mode="nearest")
        out[idx] = _to_uint8(_center(blurred, side))
    return out


def vary_jpeg(big, side, rng):
    """A real JPEG round trip through Pillow, quality U{50..90}."""
    from PIL import Image

    src = np.ascontiguousarray(_center(big, side))
    quality = rng.integers(50, 91, size=src.shape[0])
    out = np.empty_like(src)
    for k in range(src.shape[0]):
        buf = io.BytesIO()
        Image.fromarray(src[k]).save(buf, format="JPEG", quality=int(quality[k]))
        buf.seek(0)
        out[k] = np.asarray(Image.open(buf).convert("L"))
    return out


VARIANTS: dict[str, Callable] = {
    "brightness_contrast": vary_brightness_contrast,
    "noise": vary_noise,
    "shift": vary_shift,
    "blur": vary_blur,
    "jpeg": vary_jpeg,
}
#: side lengths of the range-search base images (one drawn per base)
CODE_SIDES = (32, 40, 48, 56, 64)


def make_codes(levels, sizes: Sizes, rng: np.random.Generator):
    """Phash codes with planted near duplicates, split into A and B (see bench/README.md).

    Returns ``(a, b, (base_a, base_b), info)``: two uint64 arrays of ``sizes.search_n`` codes,
    the base image each code was made from, and a description.
    """
    import gpudedup as gd

    n_bases, n_var = sizes.search_bases, sizes.search_variants
    kinds = list(VARIANTS)
    side_of = rng.choice(CODE_SIDES, size=n_bases)
    codes = np.empty((n_bases, n_var), dtype=np.uint64)
    kind_of = np.full((n_bases, n_var), -1, dtype=np.int64)
    for side in CODE_SIDES:
        bases = np.flatnonzero(side_of == side)
        if bases.size == 0:
            continue
        big = random_crops(levels, bases.size, side + 2 * MARGIN, rng)
        imgs = np.empty((bases.size, n_var, side, side), dtype=np.uint8)
        imgs[:, 0] = _center(big, side)
        kind = rng.integers(len(kinds), size=(bases.size, n_var - 1))
        for v in range(1, n_var):
            for k, name in enumerate(kinds):
                idx = np.flatnonzero(kind[:, v - 1] == k)
                if idx.size:
                    imgs[idx, v] = VARIANTS[name](big[idx], side, rng)
        flat = gd.phash(imgs.reshape(-1, side, side), backend="cpu")
        codes[bases] = flat.reshape(bases.size, n_var)
        kind_of[bases, 1:] = kind
    # how far each variant's code is from its base's code, per transform
    dist = np.bitwise_count(codes[:, 1:] ^ codes[:, :1])
    per_kind = {}
    for k, name in enumerate(kinds):
        d = dist[kind_of[:, 1:] == k]
        if d.size == 0:  # possible at smoke sizes: no NaN in the JSON
            per_kind[name] = {"count": 0, "mean_distance": None,
                              **{f"within_{r}": None for r in sizes.thresholds}}
            continue
        per_kind[name] = {"count": int(d.size), "mean_distance": round(float(d.mean()), 2),
                          **{f"within_{r}": round(float((d <= r).mean()), 4)
                             for r in sizes.thresholds}}
    all_codes = codes.ravel()
    base_ids = np.repeat(np.arange(n_bases), n_var)
    perm = rng.permutation(all_codes.size)
    half = sizes.search_n
    a = np.ascontiguousarray(all_codes[perm[:half]])
    b = np.ascontiguousarray(all_codes[perm[half:2 * half]])
    base_a, base_b = base_ids[perm[:half]], base_ids[perm[half:2 * half]]
    same_base_max = int(np.sum(np.bincount(base_a, minlength=n_bases)
                               * np.bincount(base_b, minlength=n_bases)))
    info = {
        "bases": n_bases,
        "variants_per_base": n_var,
        "sides": list(CODE_SIDES),
        "transforms": kinds,
        "distinct_codes": int(np.unique(all_codes).size),
        "total_codes": int(all_codes.size),
        "variant_distance_to_base": per_kind,
        "same_base_pairs_between_a_and_b": same_base_max,
    }
    return a, b, (base_a, base_b), info
