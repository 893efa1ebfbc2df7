"""Real images for the accuracy benchmark, the edits planted into them, and the reference
verification score.

Three sets (bench/README.md, "Accuracy on real data"):

* Fashion-MNIST, 70,000 real 28x28 product photos: ``apt-get install dataset-fashion-mnist``
  (Debian; files in /usr/share/datasets/fashion-mnist, idx format);
* font glyphs, notMNIST-style: the letters A-J rendered at 28x28 from every font file under
  /usr/share/fonts that has them (Debian font packages, see FONT_PACKAGES);
* photographs that scikit-image ships (``skimage.data``), cut into square tiles of 64, 128 and
  256 px.

None of them is needed by the tests (tests/test_accuracy_smoke.py uses generated images).

``reference_score`` is THE REFERENCE the verification kernel (gpudedup/verify.py) must match.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import numpy as np

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_INSTALL = "apt-get install dataset-fashion-mnist   (Debian/Ubuntu; idx files, ~30 MB)"
#: the Debian font packages this benchmark was run with (README lists the face count)
FONT_PACKAGES = ("fonts-dejavu-core fonts-dejavu-extra fonts-liberation fonts-liberation2 "
                 "fonts-noto-core fonts-noto-mono fonts-urw-base35 fonts-crosextra-carlito "
                 "fonts-crosextra-caladea fonts-freefont-ttf fonts-roboto-unhinted "
                 "fonts-open-sans fonts-cantarell fonts-lato fonts-linuxlibertine "
                 "fonts-ebgaramond fonts-inconsolata")
FONT_DIRS = (Path("/usr/share/fonts"),)
LETTERS = "ABCDEFGHIJ"
GLYPH_SIDE = 28


class DataMissing(RuntimeError):
    """A real data set is not installed here; the message says how to get it."""


# ------------------------------------------------------------------------------ loaders


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * k:8 + 4 * k], "big") for k in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fashion_mnist(root: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All 70,000 Fashion-MNIST images (train then test) as uint8 (N, 28, 28), and labels
    (from ``root``, default FASHION_DIR)."""
    root = FASHION_DIR if root is None else root
    names = ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    missing = [n for n in names if not (Path(root) / n).exists()]
    if missing:
        raise DataMissing(f"Fashion-MNIST not found in {root} ({', '.join(missing)}); "
                          f"install it with: {FASHION_INSTALL}")
    imgs = [_read_idx(Path(root) / n) for n in names]
    return (np.ascontiguousarray(np.concatenate(imgs[:2])),
            np.concatenate(imgs[2:]).astype(np.int64))


def font_files(dirs=None) -> list[Path]:
    """Every .ttf/.otf file under ``dirs`` (default FONT_DIRS), sorted (so a run is
    reproducible)."""
    out = []
    for d in FONT_DIRS if dirs is None else dirs:
        for base, _, files in os.walk(d):
            out += [Path(base) / f for f in files if f.lower().endswith((".ttf", ".otf"))]
    return sorted(out)


def _render_letter(font, letter: str, side: int) -> np.ndarray | None:
    from PIL import Image, ImageDraw

    # rendered at 3 * side px on a canvas with room on every side, then cropped to the ink
    canvas = Image.new("L", (8 * side, 8 * side), 0)
    ImageDraw.Draw(canvas).text((2 * side, 2 * side), letter, fill=255, font=font)
    box = canvas.getbbox()
    if box is None or box[0] == 0 or box[1] == 0 or box[2] == 8 * side or box[3] == 8 * side:
        return None  # blank, or cut by the canvas edge
    glyph = canvas.crop(box)
    # notMNIST-style: the glyph scaled to fill the frame (longer side = side - 2), centred
    scale = (side - 2) / max(glyph.size)
    size = (max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale)))
    glyph = glyph.resize(size, Image.LANCZOS)
    out = Image.new("L", (side, side), 0)
    out.paste(glyph, ((side - size[0]) // 2, (side - size[1]) // 2))
    return np.asarray(out)


def render_glyphs(files: list[Path] | None = None, letters: str = LETTERS,
                  side: int = GLYPH_SIDE) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Letters rendered from font files, notMNIST-style: uint8 (N, side, side), white on black.

    A font is used only if every letter differs from its missing-glyph box (fonts of other
    scripts draw Latin letters as .notdef boxes). Returns images, letter labels (0-9) and the
    font file of each image.
    """
    from PIL import ImageFont

    files = font_files() if files is None else files
    if not files:
        raise DataMissing(f"no .ttf/.otf font files under {', '.join(map(str, FONT_DIRS))}; "
                          f"install some with: apt-get install {FONT_PACKAGES}")
    imgs, labels, names = [], [], []
    for path in files:
        try:
            font = ImageFont.truetype(str(path), 3 * side)
        except OSError:
            continue
        notdef = _render_letter(font, "\U000f0000", side)  # a private-use code point
        glyphs = [_render_letter(font, c, side) for c in letters]
        if any(g is None or (notdef is not None and np.array_equal(g, notdef))
               for g in glyphs):
            continue
        imgs += glyphs
        labels += range(len(letters))
        names += [path.name] * len(letters)
    if not imgs:
        raise DataMissing("no font file here has the Latin letters A-J; install some with: "
                          f"apt-get install {FONT_PACKAGES}")
    return np.stack(imgs), np.asarray(labels, np.int64), names


def glyphs_as(images: np.ndarray, dtype: str) -> np.ndarray:
    """The uint8 glyphs as notMNIST stores them (float32 (x - 128) / 255) or as uint16."""
    if dtype == "uint8":
        return images
    if dtype == "float32":
        return ((images.astype(np.float32) - 128.0) / 255.0).astype(np.float32)
    if dtype == "uint16":
        return images.astype(np.uint16) * np.uint16(257)
    raise ValueError(dtype)


def photo_tiles(side: int, stride: int | None = None) -> np.ndarray:
    """Square tiles of the scikit-image photographs at every pyramid level (bench/data.py),
    ``stride`` apart (default side // 2); nearly blank tiles (std < 10) are left out."""
    from numpy.lib.stride_tricks import sliding_window_view

    from bench import data

    stride = stride or side // 2
    tiles = []
    for lvl in data.build_pyramid(data.load_photos()):
        if min(lvl.shape) < side:
            continue
        win = sliding_window_view(lvl, (side, side))[::stride, ::stride]
        tiles.append(win.reshape(-1, side, side))
    out = np.ascontiguousarray(np.concatenate(tiles))
    return out[out.reshape(len(out), -1).std(axis=1) >= data.MIN_CROP_STD]


# -------------------------------------------------------------------------------- edits


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("L"))


def _shift(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    # content moves by (dy, dx); the uncovered border repeats the edge pixels
    h, w = img.shape
    p = max(abs(dy), abs(dx))
    big = np.pad(img, p, mode="edge")
    return big[p - dy:p - dy + h, p - dx:p - dx + w]


def _crop_resize(img: np.ndarray, k: int) -> np.ndarray:
    from PIL import Image

    h, w = img.shape
    return np.asarray(Image.fromarray(img[k:h - k, k:w - k]).resize((w, h), Image.LANCZOS))


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return _u8(gaussian_filter(img.astype(np.float64), sigma, mode="nearest"))


def _gamma(img: np.ndarray, g: float) -> np.ndarray:
    return _u8(255.0 * (img / 255.0) ** g)


_RING1 = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
_RING2 = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if max(abs(dy), abs(dx)) == 2]

#: edit name -> f(uint8 image, rng) -> uint8 image of the same shape
EDITS = {
    "exact": lambda x, rng: x.copy(),
    "jpeg50": lambda x, rng: _jpeg(x, 50),
    "jpeg75": lambda x, rng: _jpeg(x, 75),
    "jpeg90": lambda x, rng: _jpeg(x, 90),
    "noise6": lambda x, rng: _u8(x + rng.normal(0.0, 6.0, x.shape)),
    "bright+20": lambda x, rng: _u8(x.astype(np.float64) + 20),
    "bright-20": lambda x, rng: _u8(x.astype(np.float64) - 20),
    "contrast0.8": lambda x, rng: _u8((x - 128.0) * 0.8 + 128.0),
    "contrast1.2": lambda x, rng: _u8((x - 128.0) * 1.2 + 128.0),
    "gamma0.75": lambda x, rng: _gamma(x, 0.75),
    "gamma1.33": lambda x, rng: _gamma(x, 1.33),
    "blur0.7": lambda x, rng: _blur(x, 0.7),
    "shift1": lambda x, rng: _shift(x, *_RING1[rng.integers(len(_RING1))]),
    "shift2": lambda x, rng: _shift(x, *_RING2[rng.integers(len(_RING2))]),
    "crop1": lambda x, rng: _crop_resize(x, 1),
    "crop2": lambda x, rng: _crop_resize(x, 2),
}
#: the dihedral edits: name -> (transform, its inverse); need invariant="dihedral"
DIHEDRAL = {
    "flip_lr": (np.fliplr, np.fliplr),
    "flip_ud": (np.flipud, np.flipud),
    "rot90": (lambda x: np.rot90(x, 1), lambda x: np.rot90(x, -1)),
    "rot180": (lambda x: np.rot90(x, 2), lambda x: np.rot90(x, 2)),
    "rot270": (lambda x: np.rot90(x, 3), lambda x: np.rot90(x, -3)),
}


# --------------------------------------------------------------------- reference score

#: largest shift, in pixels along each axis, that the score tries
MAX_SHIFT = 2


def reference_score(a: np.ndarray, b: np.ndarray, max_shift: int = MAX_SHIFT) -> np.ndarray:
    """THE REFERENCE verification score: what gpudedup/verify.py must match.

    ``a``, ``b``: (P, H, W) arrays (any real dtype), pair p is ``(a[p], b[p])``. For each shift
    (dy, dx) with |dy|, |dx| <= max_shift, the overlap ``a[y, x]`` / ``b[y + dy, x + dx]`` is
    fitted as b ~ alpha * a + beta by least squares, and the RMS residual is taken; the score is
    the smallest over the shifts, scaled to a 0..255 range: times 255 / (hi - lo), where lo and
    hi are the smallest and largest value of the two images together. So it is scale-free
    (uint8, uint16 and float versions of one picture score alike) and for uint8 pairs spanning
    0..255 it is in grey levels. A constant ``a`` fits b by its mean (residual = std of b); two
    constant images, or two equal ones, score 0. float64 throughout.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"a and b must be (P, H, W) of one shape, got {a.shape}, {b.shape}")
    p, h, w = a.shape
    lo = np.minimum(a.min(axis=(1, 2)), b.min(axis=(1, 2)))
    hi = np.maximum(a.max(axis=(1, 2)), b.max(axis=(1, 2)))
    best = np.full(p, np.inf)
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            ya, xa = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
            yb, xb = slice(max(0, dy), min(h, h + dy)), slice(max(0, dx), min(w, w + dx))
            sa, sb = a[:, ya, xa], b[:, yb, xb]
            n = sa.shape[1] * sa.shape[2]
            ma, mb = sa.mean(axis=(1, 2)), sb.mean(axis=(1, 2))
            da = sa - ma[:, None, None]
            db = sb - mb[:, None, None]
            vaa = np.einsum("pij,pij->p", da, da)
            vbb = np.einsum("pij,pij->p", db, db)
            vab = np.einsum("pij,pij->p", da, db)
            with np.errstate(divide="ignore", invalid="ignore"):
                res = np.where(vaa > 0, vbb - vab * vab / vaa, vbb)
            best = np.minimum(best, np.sqrt(np.maximum(res, 0.0) / n))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(hi > lo, best * 255.0 / (hi - lo), 0.0)
