"""gd.phash against imagehash + Pillow, the linear (non-uint8) path against a float reference,
and the Pillow-exact resize tables against Pillow's own output."""

from __future__ import annotations

import numpy as np
import pytest
from gpudedup.kernels import cpu, resample
from helpers import GRAY_PHOTOS, RGB_PHOTOS, gray, photo, smooth_images
from naive import (
    fixed_point_coefficients,
    imagehash_int,
    naive_phash,
    naive_phash_linear,
    pillow13_vertical_first,
    resize_uint8,
)
from PIL import Image

import gpudedup as gd

imagehash = pytest.importorskip("imagehash")

CONSTANT_HASH = 0x8000000000000000

EDGE_SHAPES = [
    (1, 1), (1, 2), (2, 1), (2, 2), (3, 7), (1, 50), (50, 1), (5, 300), (300, 5), (1000, 40),
    (40, 1000), (31, 31), (31, 33), (33, 31), (32, 32), (32, 33), (33, 32), (32, 1), (1, 32),
    (28, 28), (64, 47), (64, 48), (64, 49), (95, 32), (96, 32), (97, 32), (100, 100),
    (255, 17), (17, 255), (512, 3),
]


def reference(images) -> np.ndarray:
    return np.array([imagehash_int(img) for img in images], dtype=np.uint64)


def assert_same_hashes(got, expected):
    got = np.asarray(got)
    assert got.dtype == np.uint64
    assert got.shape == np.shape(expected)
    bad = np.flatnonzero(got != expected)
    assert bad.size == 0, (
        f"{bad.size} of {got.size} hashes differ, first at {bad[0]}: "
        f"{int(got[bad[0]]):#018x} != {int(expected[bad[0]]):#018x}")


# ------------------------------------------------------------------ the reference itself


def test_naive_phash_is_imagehash():
    rng = np.random.default_rng(100)
    for shape in [(1, 1), (28, 28), (64, 47), (90, 13), (13, 90)]:
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        assert naive_phash(img) == imagehash_int(img)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert naive_phash(rgb) == imagehash_int(rgb)


# ------------------------------------------------------------------ uint8 vs imagehash


@pytest.mark.parametrize("shape", EDGE_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_uint8_edge_shapes_match_imagehash(shape):
    rng = np.random.default_rng(shape[0] * 10007 + shape[1])
    noise = rng.integers(0, 256, (3, *shape), dtype=np.uint8)
    smooth = smooth_images(rng, 2, *shape)
    images = np.concatenate([noise, smooth])
    assert_same_hashes(gd.phash(images, backend="cpu"), reference(images))


def test_uint8_random_shapes_match_imagehash():
    rng = np.random.default_rng(101)
    for _ in range(40):
        height, width = (int(v) for v in rng.integers(1, 160, 2))
        images = rng.integers(0, 256, (3, height, width), dtype=np.uint8)
        if rng.random() < 0.5:  # low-contrast images: many equal coefficients
            images //= 64
        assert_same_hashes(gd.phash(images), reference(images))


def test_uint8_structured_images_match_imagehash():
    # symmetric images have exactly-zero DCT coefficients, sparse ones many equal pixels:
    # both put ties at the median
    rng = np.random.default_rng(102)
    base = rng.integers(0, 256, (6, 30, 20), dtype=np.uint8)
    mirrored = np.concatenate([base, base[:, :, ::-1]], axis=2)
    both = np.concatenate([mirrored, mirrored[:, ::-1]], axis=1)
    sparse = ((rng.random((10, 28, 28)) < 0.1) * 255).astype(np.uint8)
    square = np.zeros((3, 40, 40), np.uint8)
    square[:, 10:30, 10:30] = [[[50]], [[200]], [[255]]]
    for images in (mirrored, both, sparse, square):
        assert_same_hashes(gd.phash(images), reference(images))


@pytest.mark.parametrize("name", GRAY_PHOTOS)
def test_gray_photographs_match_imagehash(name):
    img = photo(name)
    rng = np.random.default_rng(len(name))
    crops = [img]
    for _ in range(6):
        h, w = (int(v) for v in rng.integers(8, min(img.shape), 2))
        y, x = int(rng.integers(0, img.shape[0] - h)), int(rng.integers(0, img.shape[1] - w))
        crops.append(np.ascontiguousarray(img[y:y + h, x:x + w]))
    for crop in crops:
        got = gd.phash(crop[None])[0]
        assert int(got) == imagehash_int(crop), (name, crop.shape)


@pytest.mark.parametrize("name", RGB_PHOTOS)
def test_rgb_photographs_match_imagehash(name):
    rgb = photo(name)
    # RGB input is converted to luma exactly as Pillow's convert("L")
    assert int(gd.phash(rgb[None])[0]) == imagehash_int(rgb)
    assert int(gd.phash(gray(rgb)[None])[0]) == imagehash_int(rgb)
    # smaller copies (resized by Pillow), batched together
    small = np.stack([np.asarray(Image.fromarray(rgb).resize((45, 37), Image.Resampling.BILINEAR)),
                      np.asarray(Image.fromarray(rgb).resize((45, 37), Image.Resampling.NEAREST))])
    assert_same_hashes(gd.phash(small), reference(small))


def test_rgb_random_matches_imagehash():
    rng = np.random.default_rng(103)
    for shape in [(1, 1), (5, 300), (31, 33), (64, 47), (64, 49), (120, 80)]:
        rgb = rng.integers(0, 256, (3, *shape, 3), dtype=np.uint8)
        assert_same_hashes(gd.phash(rgb), reference(rgb))


def test_luma_kernel_matches_pillow():
    rng = np.random.default_rng(104)
    rgb = rng.integers(0, 256, (4, 17, 23, 3), dtype=np.uint8)
    rgb[0, 0, :3] = [[0, 0, 0], [255, 255, 255], [255, 0, 0]]
    out = np.empty(rgb.shape[:3], np.uint8)
    cpu.luma_images(rgb, out)
    for k in range(rgb.shape[0]):
        np.testing.assert_array_equal(out[k], gray(rgb[k]))


# ------------------------------------------------------------------------ golden values

GOLDEN_PHOTOS = {  # str(imagehash.phash(Image.fromarray(skimage.data.<name>())))
    "camera": "bff1c1c0434e8cbc",
    "astronaut": "c2924c5532bddfc8",
    "coffee": "bb8320376c0f3637",
    "chelsea": "b15fe6465121175e",
    "rocket": "c0371bec1be51267",
    "moon": "a3d9765014369c77",
    "coins": "e4d5b5a92b54523a",
}


def _synthetic(name: str) -> np.ndarray:
    y, x = np.mgrid[0:40, 0:50]
    quad = ((3 * y + x * x) % 251).astype(np.uint8)
    radial = (np.hypot(y - 13, x - 31) * 9).clip(0, 255).astype(np.uint8)
    if name == "quad":
        return quad
    if name == "radial":
        return radial
    if name == "rgb":
        return np.stack([quad, radial, (x * 5).astype(np.uint8)], axis=-1)
    bar = np.zeros((28, 28), np.uint8)
    bar[6:22, 12:16] = 255
    return bar


GOLDEN_SYNTHETIC = {  # imagehash 4.3.2 on Pillow 13.0.0
    "quad": "80075a5a4dce7f39",
    "radial": "ea6e93909f608ce3",
    "rgb": "e06f92d29dea8c29",
    "bar": "8800220022008800",
}


@pytest.mark.parametrize("name", sorted(GOLDEN_PHOTOS))
def test_golden_photographs(name):
    assert f"{int(gd.phash(photo(name)[None])[0]):016x}" == GOLDEN_PHOTOS[name]


@pytest.mark.parametrize("name", sorted(GOLDEN_SYNTHETIC))
def test_golden_synthetic(name):
    assert f"{int(gd.phash(_synthetic(name)[None])[0]):016x}" == GOLDEN_SYNTHETIC[name]


# --------------------------------------------------------------------- special images


@pytest.mark.parametrize("shape", [(1, 1), (8, 8), (28, 28), (32, 32), (64, 47), (5, 300)])
def test_constant_uint8(shape):
    images = np.stack([np.full(shape, v, np.uint8) for v in (0, 1, 128, 255)])
    got = gd.phash(images)
    assert [int(v) for v in got] == [0, CONSTANT_HASH, CONSTANT_HASH, CONSTANT_HASH]
    assert_same_hashes(got, reference(images))


def test_constant_float_images_agree_with_each_other():
    # whatever a constant float image hashes to, equal images hash equally
    for shape in [(28, 28), (64, 64)]:
        images = np.full((3, *shape), 0.25, np.float32)
        got = gd.phash(images)
        assert got[0] == got[1] == got[2]
        assert int(gd.phash(np.zeros((1, *shape), np.float32))[0]) == 0


def test_constant_float_images_hash_like_constant_uint8():
    # DESIGN: "a constant image hashes to 0x8000000000000000"; exactly so in real arithmetic
    # (all AC coefficients are zero), and 0 for a negative constant (DC below the median 0)
    got, expected = {}, {}
    for shape in [(28, 28), (64, 64), (5, 300)]:
        for value in (0.5, 7.0, 300.0, -0.5):
            images = np.full((1, *shape), value, np.float32)
            got[shape, value] = f"{int(gd.phash(images)[0]):#x}"
            expected[shape, value] = f"{CONSTANT_HASH if value > 0 else 0:#x}"
    assert got == expected


def test_phash_n0_and_n1():
    empty = gd.phash(np.zeros((0, 12, 9), np.uint8))
    assert empty.dtype == np.uint64 and empty.shape == (0,)
    assert gd.phash(np.zeros((0, 12, 9, 3), np.uint8)).shape == (0,)
    assert gd.phash(np.zeros((0, 12, 9), np.float32)).shape == (0,)
    img = np.random.default_rng(105).integers(0, 256, (1, 12, 9), dtype=np.uint8)
    one = gd.phash(img)
    assert one.shape == (1,) and int(one[0]) == imagehash_int(img[0])


# ---------------------------------------------------------------- layouts and batches


def test_non_contiguous_input():
    rng = np.random.default_rng(106)
    base = rng.integers(0, 256, (6, 90, 70), dtype=np.uint8)
    for view in (base[:, ::2, ::2], base.transpose(0, 2, 1), base[::2, 5:60, ::-1],
                 base[:, :, 3:40]):
        assert not view.flags.c_contiguous
        assert_same_hashes(gd.phash(view), reference(view))
    fortran = np.asfortranarray(base)
    np.testing.assert_array_equal(gd.phash(fortran), gd.phash(base))
    rgb = rng.integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)
    view = rgb[:, ::2, ::-1]
    assert_same_hashes(gd.phash(view), reference(view))


def test_lists_and_read_only_arrays():
    rng = np.random.default_rng(107)
    images = rng.integers(0, 256, (4, 20, 30), dtype=np.uint8)
    expected = reference(images)
    assert_same_hashes(gd.phash([img for img in images]), expected)
    frozen = images.copy()
    frozen.setflags(write=False)
    assert_same_hashes(gd.phash(frozen), expected)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_batch_size_independence(dtype):
    rng = np.random.default_rng(108)
    images = smooth_images(rng, 37, 33, 45, dtype=dtype)
    full = gd.phash(images)
    for batch_size in (1, 2, 7, 36, 37, 1000):
        np.testing.assert_array_equal(gd.phash(images, batch_size=batch_size), full)
    np.testing.assert_array_equal(gd.phash(images, progress=True), full)
    np.testing.assert_array_equal(gd.phash(images, backend="cpu"), full)


def test_images_are_independent_of_their_batch_neighbours():
    rng = np.random.default_rng(109)
    images = rng.integers(0, 256, (50, 20, 20), dtype=np.uint8)
    full = gd.phash(images)
    for k in (0, 17, 49):
        assert gd.phash(images[k:k + 1])[0] == full[k]
    perm = rng.permutation(50)
    np.testing.assert_array_equal(gd.phash(images[perm]), full[perm])


# ------------------------------------------------------------------------ linear path


def _linear_mismatch(images):
    got = gd.phash(images)
    expected = np.array([naive_phash_linear(img) for img in images], dtype=np.uint64)
    return np.bitwise_count(got ^ expected)


def _notmnist_like(rng, n):
    # uint8 glyph-like strokes on a blank background, then (x - 128) / 255 as in notMNIST
    images = np.zeros((n, 28, 28), np.uint8)
    for k in range(n):
        for _ in range(3):
            y0, x0 = (int(v) for v in rng.integers(2, 20, 2))
            images[k, y0:y0 + int(rng.integers(2, 8)), x0:x0 + int(rng.integers(2, 8))] = (
                rng.integers(100, 256))
    images = np.maximum(images, rng.integers(0, 256, images.shape) * (rng.random(
        images.shape) < 0.05)).astype(np.uint8)
    return ((images.astype(np.float32) - 128) / 255).astype(np.float32)


@pytest.mark.parametrize("kind", ["notmnist_float32", "noise_float64", "normal_float64",
                                  "uint16", "int32", "smooth_float32", "bool"])
def test_linear_path_matches_float_reference(kind):
    rng = np.random.default_rng(110)
    shapes = [(28, 28), (64, 64), (17, 90), (300, 5), (1, 1), (32, 32), (64, 47)]
    mismatches = total = 0
    worst = 0
    for shape in shapes:
        n = 40
        if kind == "notmnist_float32":
            if shape != (28, 28):
                continue
            images = _notmnist_like(rng, 300)
        elif kind == "noise_float64":
            images = rng.random((n, *shape)) * 1e3 - 200
        elif kind == "normal_float64":
            images = rng.normal(size=(n, *shape)) * 1e-5
        elif kind == "uint16":
            images = rng.integers(0, 65536, (n, *shape)).astype(np.uint16)
        elif kind == "int32":
            images = rng.integers(-(2**31), 2**31, (n, *shape)).astype(np.int32)
        elif kind == "smooth_float32":
            images = smooth_images(rng, n, *shape, dtype=np.float32) / 255 - 0.5
        else:
            images = rng.random((n, *shape)) < 0.4
            images[:, 0, 0] = True  # never constant
        if shape == (1, 1):
            continue  # one pixel: a constant image (see the constant-image tests)
        dist = _linear_mismatch(images)
        mismatches += int((dist > 0).sum())
        total += dist.size
        worst = max(worst, int(dist.max()))
    # exact in real arithmetic; allow a rare differing bit where a coefficient sits a rounding
    # error away from the median
    assert mismatches <= 0.01 * total, f"{mismatches}/{total} differ, worst by {worst} bits"
    assert worst <= 2


def test_linear_path_photographs():
    rng = np.random.default_rng(111)
    images = []
    for name in ("camera", "coins", "moon"):
        img = photo(name).astype(np.float64) / 255
        images.append(np.asarray(Image.fromarray(img.astype(np.float32)).resize(
            (50, 70), Image.Resampling.BILINEAR), dtype=np.float64))
        for _ in range(8):
            y, x = (int(v) for v in rng.integers(0, 200, 2))
            images.append(img[y:y + 70, x:x + 50])
    dist = _linear_mismatch(np.stack([np.ascontiguousarray(i) for i in images]))
    assert (dist > 0).sum() <= 1 and dist.max() <= 2


def test_linear_path_is_scale_invariant():
    # a power-of-two scale is applied per image, so multiplying by one changes nothing
    rng = np.random.default_rng(112)
    images = rng.random((10, 30, 40))
    base = gd.phash(images)
    for factor in (2.0**-300, 2.0**-20, 0.5, 4.0, 2.0**40, 2.0**900):
        np.testing.assert_array_equal(gd.phash(images * factor), base)
    np.testing.assert_array_equal(gd.phash(images.astype(np.float32) * 2.0**30),
                                  gd.phash(images.astype(np.float32)))


def test_linear_path_tiny_float64():
    rng = np.random.default_rng(113)
    images = rng.random((4, 16, 16)) + 0.01
    np.testing.assert_array_equal(gd.phash(images * 2.0**-1010), gd.phash(images))


def test_linear_dtypes_agree():
    rng = np.random.default_rng(114)
    values = rng.integers(0, 1000, (6, 30, 26))
    expected = gd.phash(values.astype(np.float64))
    for dtype in (np.uint16, np.int32, np.float32, ">u2", ">f8", np.float16):
        np.testing.assert_array_equal(gd.phash(values.astype(dtype)), expected, err_msg=dtype)
    # int32 with negative values equals the same values as float64
    signed = values.astype(np.int32) - 500
    np.testing.assert_array_equal(gd.phash(signed), gd.phash(signed.astype(np.float64)))


def test_linear_scales_kernel():
    rng = np.random.default_rng(115)
    images = rng.normal(size=(6, 9, 7)) * np.array([1, 1e-3, 1e5, 0, 1, 1])[:, None, None]
    images[4, 2, 3] = np.nan
    images[5, 0, 0] = -np.inf
    scales = np.empty((6, 2))
    bad = np.zeros(6, np.uint8)
    cpu.linear_scales(images, scales, bad)
    np.testing.assert_array_equal(bad, [0, 0, 0, 0, 1, 1])
    for k in range(3):
        peak = np.abs(images[k]).max() * scales[k, 0] * scales[k, 1]
        assert 2.0**22 <= peak < 2.0**23
        assert (np.log2(scales[k]) == np.round(np.log2(scales[k]))).all()
    assert (scales[3] == 1.0).all()


# --------------------------------------------------------------- Pillow resize tables


@pytest.mark.parametrize("size", [1, 2, 5, 28, 31, 32, 33, 47, 64, 97, 300, 1000])
def test_lanczos_taps_match_recomputed_pillow_coefficients(size):
    starts, weights = resample.lanczos_taps(size)
    if size == 32:  # Pillow skips a pass that keeps the size: identity
        np.testing.assert_array_equal(starts, np.arange(32))
        assert (weights[:, 0] == 2.0**22).all() and (weights[:, 1:] == 0).all()
        return
    for o, (first, ints) in enumerate(fixed_point_coefficients(size)):
        assert starts[o] == first
        np.testing.assert_array_equal(weights[o, :len(ints)], ints)
        assert (weights[o, len(ints):] == 0).all()


def _pillow_order(img):
    # which pass order Pillow used, told apart by the uint8 rounding between the passes
    pil = np.asarray(Image.fromarray(img).resize((32, 32), Image.Resampling.LANCZOS))
    vertical = np.array_equal(pil, resize_uint8(img, vertical_first=True))
    horizontal = np.array_equal(pil, resize_uint8(img, vertical_first=False))
    return vertical, horizontal


BOUNDARY_SHAPES = [(64, 47), (64, 48), (64, 49), (33, 31), (33, 32), (34, 32), (35, 33),
                   (100, 66), (100, 65), (100, 67), (40, 1), (200, 5), (5, 200), (300, 300),
                   (31, 5), (90, 20)]


@pytest.mark.parametrize("shape", BOUNDARY_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_pass_order_matches_installed_pillow(shape):
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    vertical, horizontal = _pillow_order(img)
    assert vertical or horizontal, "neither pass order reproduces Pillow"
    if vertical != horizontal:  # the two orders round differently: Pillow's order is known
        assert resample.vertical_first(*shape) == vertical
    if resample.pillow_major_version() >= 13:
        assert resample.vertical_first(*shape) == pillow13_vertical_first(*shape)
    assert int(gd.phash(img[None])[0]) == imagehash_int(img)


def test_pass_order_boundary_is_told_apart():
    # on the Pillow 13 boundary (H=64: vertical first iff 32 > 2 * (W - 32)) the two orders
    # give different thumbnails, so the test above really checks the rule
    if resample.pillow_major_version() < 13:
        pytest.skip("Pillow < 13 always resizes horizontally first")
    rng = np.random.default_rng(116)
    expected = {47: (True, False), 48: (False, True), 49: (False, True)}
    for width, order in expected.items():
        img = rng.integers(0, 256, (64, width), dtype=np.uint8)
        assert _pillow_order(img) == order
        assert resample.vertical_first(64, width) == order[0]


@pytest.mark.parametrize("bits", [resample.DCT_BITS_1, resample.DCT_BITS_2])
def test_dct_basis(bits):
    basis = resample.dct_basis(bits)
    assert basis.shape == (8, 32) and not basis.flags.writeable
    u = np.arange(8)[:, None]
    y = np.arange(32)[None, :]
    exact = np.cos(np.pi * u * (2 * y + 1) / 64) * 2.0**bits
    assert np.abs(basis - exact).max() <= 0.5
    assert (basis == np.rint(basis)).all()
    # mirror symmetry, and exact cancellation for a constant input
    np.testing.assert_array_equal(basis[:, ::-1], basis * np.where(u % 2 == 0, 1, -1))
    np.testing.assert_array_equal(basis[1:].sum(axis=1), 0)
