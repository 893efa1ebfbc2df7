"""The common grid for pixel verification (gpudedup.grid, kernels/resample.py's grid helpers):
RGB to luma, different sizes resized to the smaller one, different dtypes mapped to [0, 1], on
real photographs from scikit-image, scored by gpudedup.verify as it is."""

import io

import h5py
import numpy as np
import pytest
from gpudedup.kernels import cpu, resample
from helpers import gray, photo
from PIL import Image

from gpudedup import backend, verify
from gpudedup.errors import InputError
from gpudedup.grid import GridView, common_grid
from gpudedup.sources import ImageSource, as_source

#: photographs the crops come from (RGB ones as Pillow's luma)
PHOTOS = ("camera", "coins", "moon", "brick", "grass", "clock", "cell", "astronaut", "coffee",
          "chelsea", "rocket", "immunohistochemistry")
#: residual of the default min_similarity 0.75
CUT = 8.0

CPU = backend.resolve("cpu")


def gray_photo(name):
    img = photo(name)
    return gray(img) if img.ndim == 3 else img


def textured_crops(side, per_photo=2, seed=0, margin=0):
    """``(n, side, side)`` uint8 crops of the photographs (std > 15, not blank background) and
    their ``(photo, y, x)`` so neighbours can be cut; ``margin`` keeps room around each."""
    rng = np.random.default_rng(seed)
    crops, where = [], []
    for name in PHOTOS:
        img = gray_photo(name)
        h, w = img.shape
        got = 0
        while got < per_photo:
            y = int(rng.integers(margin, h - side - margin))
            x = int(rng.integers(margin, w - side - margin))
            crop = img[y:y + side, x:x + side]
            if crop.std() > 15:
                crops.append(crop)
                where.append((name, y, x))
                got += 1
    return np.stack(crops), where


def pillow_resize(images, height, width, resample_filter=Image.LANCZOS):
    return np.stack([np.asarray(Image.fromarray(im).resize((width, height), resample_filter))
                     for im in images])


def residuals(src_a, src_b, i, j):
    va, vb, _ = common_grid(src_a, src_b)
    residual, _ = verify.verify_sources(va, vb, np.asarray(i, np.int64),
                                        np.asarray(j, np.int64), CPU)
    return residual


def all_pairs(n):
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    return i.ravel(), j.ravel()


# ---------------------------------------------------------------- the kernels' host helpers


def test_luma_twin_matches_kernel_and_pillow_bit_for_bit_on_every_colour():
    codes = np.arange(2**24, dtype=np.uint32)
    rgb = np.stack([codes >> 16, (codes >> 8) & 255, codes & 255], axis=-1).astype(np.uint8)
    rgb = rgb.reshape(1, 4096, 4096, 3)
    kernel = np.empty((1, 4096, 4096), np.uint8)
    cpu.luma_images(rgb, kernel)
    np.testing.assert_array_equal(resample.luma(rgb), kernel)
    np.testing.assert_array_equal(np.asarray(Image.fromarray(rgb[0]).convert("L")), kernel[0])


@pytest.mark.parametrize("size_in, size_out", [((64, 64), (28, 28)), ((100, 37), (50, 30)),
                                               ((513, 300), (64, 64)), ((28, 28), (56, 14)),
                                               ((7, 9), (3, 9)), ((56, 56), (28, 28))])
def test_resize_matches_pillow_float_lanczos(size_in, size_out):
    # Pillow resizes "F" images with the unrounded coefficients, storing float32 between passes
    rng = np.random.default_rng(size_in[0] * 1000 + size_out[1])
    image = (rng.random(size_in) * 255).astype(np.float32)
    ours = resample.resize_images(image[None], size_out)[0]
    ref = np.asarray(Image.fromarray(image, mode="F").resize(size_out[::-1], Image.LANCZOS))
    assert ours.dtype == np.float64 and ours.shape == size_out
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4)


def test_resize_matrices_are_pillows_uint8_lanczos_up_to_its_rounding():
    images = textured_crops(128, per_photo=1)[0]
    ref = pillow_resize(images, 64, 40).astype(np.float64)
    # Pillow's "L" resize rounds and clips to uint8 after each pass (horizontal first here):
    # the same passes through our matrices land within one level (fixed-point coefficients)
    rows = np.clip(np.round(images @ resample.lanczos_matrix(128, 40).T), 0, 255)
    both = np.clip(np.round(resample.lanczos_matrix(128, 64) @ rows), 0, 255)
    assert np.abs(both - ref).max() <= 1.0
    assert (both != ref).mean() < 0.05
    # unrounded, unclipped float64: apart only by that rounding, save LANCZOS overshoots past
    # 0 or 255 that Pillow clips
    ours = resample.resize_images(images, (64, 40))
    inside = (ours > 2) & (ours < 253)
    assert np.abs(ours - ref)[inside].max() <= 1.5
    assert np.abs(ours - ref).mean() < 0.3


def test_resize_matrix_rows_sum_to_one_and_identity_axis():
    for n_in, n_out in ((100, 28), (28, 100), (57, 56), (3, 1)):
        matrix = resample.lanczos_matrix(n_in, n_out)
        assert matrix.shape == (n_out, n_in)
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(resample.lanczos_matrix(9, 9), np.eye(9))
    flat = np.full((2, 90, 70), 77, np.uint8)
    np.testing.assert_allclose(resample.resize_images(flat, (28, 28)), 77.0, atol=1e-9)


def test_unit_range_per_image_constant_to_zero_and_non_finite_kept():
    images = np.array([[[10, 20], [30, 50]], [[7, 7], [7, 7]]], np.uint16)
    out = resample.unit_range(images)
    np.testing.assert_allclose(out[0], [[0, 0.25], [0.5, 1.0]])
    np.testing.assert_array_equal(out[1], 0.0)
    bad = np.array([[[0, np.nan], [1, 2]], [[0, np.inf], [1, 2]], [[-np.inf, 0], [1, 2]]])
    assert np.isnan(resample.unit_range(bad)).any(axis=(1, 2)).all()


# ---------------------------------------------------------------- which sides are converted


def test_same_shape_same_dtype_gray_returns_the_sources_themselves():
    a = as_source(np.zeros((3, 28, 28), np.uint8), "a")
    b = as_source(np.ones((2, 28, 28), np.uint8), "b")
    va, vb, what = common_grid(a, b)
    assert va is a and vb is b and what is None
    assert common_grid(a, a) == (a, a, None)
    # byte order is no difference: the kernels read both
    big = as_source(np.zeros((2, 28, 28), ">u2"), "big")
    little = as_source(np.zeros((2, 28, 28), "<u2"), "little")
    assert common_grid(big, little)[2] is None


def test_description_names_each_conversion_and_why():
    a = as_source(np.zeros((2, 64, 64, 3), np.uint8), "train")
    b = as_source(np.zeros((2, 28, 40), np.float32), "test")
    va, vb, what = common_grid(a, b)
    assert "\n" not in what
    assert "train RGB to luma" in what
    assert "train 64x64 resized to 28x40 by LANCZOS" in what and "invent pixels" in what
    assert "uint8 and float32" in what and "[0, 1]" in what
    assert isinstance(va, GridView) and isinstance(vb, GridView)
    assert va.image_shape == vb.image_shape == (28, 40)
    assert va.dtype == vb.dtype == np.float64
    assert va.data is None  # the verifier must gather through take(), never read in place
    assert va.count == 2 and vb.count == 2 and va.name == "train"


def test_grid_is_the_smaller_size_along_each_axis():
    a = as_source(np.zeros((1, 28, 64), np.uint8), "a")
    b = as_source(np.zeros((1, 40, 30), np.uint8), "b")
    va, vb, what = common_grid(a, b)
    assert va.image_shape == vb.image_shape == (28, 30)
    assert va.take([0]).shape == vb.take([0]).shape == (1, 28, 30)
    assert "a 28x64 and b 40x30 resized to 28x30" in what


def test_side_already_on_the_grid_is_only_cast_to_float64():
    small = textured_crops(28, per_photo=1)[0]
    a = as_source(small, "a")
    b = as_source(np.zeros((1, 56, 56), np.uint8), "b")
    va, vb, what = common_grid(a, b)
    assert va.dtype == np.float64 and "b 56x56 resized to 28x28" in what
    assert "a 28x28" not in what
    np.testing.assert_array_equal(va.take(np.arange(len(small))), small.astype(np.float64))


# ---------------------------------------------------------------- different sizes


@pytest.mark.parametrize("side", [28, 64])
def test_downscaled_copy_verifies_as_copy_and_other_pictures_do_not(side):
    pictures = textured_crops(2 * side, seed=side)[0]
    copies = pillow_resize(pictures, side, side)
    n = len(pictures)
    i, j = all_pairs(n)
    for big_first in (True, False):  # either side may be the larger one
        if big_first:
            residual = residuals(as_source(pictures, "a"), as_source(copies, "b"), i, j)
        else:
            residual = residuals(as_source(copies, "a"), as_source(pictures, "b"), j, i)
        similarity = verify.similarity_of(residual).reshape(n, n)
        assert (similarity.diagonal() >= 0.75).all()
        assert (similarity.diagonal() >= 0.95).all()  # a LANCZOS copy is near exact
        assert (similarity[~np.eye(n, dtype=bool)] < 0.75).all()


def test_downscaled_copy_through_score_pairs_on_the_views():
    pictures = textured_crops(56, seed=3)[0]
    copies = pillow_resize(pictures, 28, 28)
    va, vb, _ = common_grid(as_source(pictures, "a"), as_source(copies, "b"))
    n = len(pictures)
    i, j = all_pairs(n)
    residual, similarity, _ = verify.score_pairs(va.take(np.arange(n)), vb.take(np.arange(n)),
                                                 i, j, backend="cpu")
    np.testing.assert_array_equal(residual, residuals(as_source(pictures, "a"),
                                                      as_source(copies, "b"), i, j))
    similarity = similarity.reshape(n, n)
    assert (similarity.diagonal() >= 0.75).all()
    assert (similarity[~np.eye(n, dtype=bool)] < 0.75).all()


def test_copies_squeezed_along_different_axes_meet_on_the_common_grid():
    pictures = textured_crops(64, seed=5)[0]
    tall = pillow_resize(pictures, 64, 32)   # 64 rows, 32 columns
    wide = pillow_resize(pictures, 32, 64)   # 32 rows, 64 columns
    n = len(pictures)
    i, j = all_pairs(n)
    similarity = verify.similarity_of(
        residuals(as_source(tall, "a"), as_source(wide, "b"), i, j)).reshape(n, n)
    assert (similarity.diagonal() >= 0.75).all()
    assert (similarity[~np.eye(n, dtype=bool)] < 0.75).all()


def test_a_resizer_that_only_decimates_would_fail_this_check():
    # the test above can fail: taking every second pixel instead of filtering (aliasing, half
    # a pixel off) leaves many copies above the cut on these textured crops
    pictures = textured_crops(56, seed=3)[0]
    copies = pillow_resize(pictures, 28, 28)
    n = np.arange(len(pictures))
    decimated = np.ascontiguousarray(pictures[:, ::2, ::2])
    residual = residuals(as_source(decimated, "a"), as_source(copies, "b"), n, n)
    assert (residual > CUT).any()
    assert residuals(as_source(pictures, "a"), as_source(copies, "b"), n, n).max() < 2.0


# ---------------------------------------------------------------- different dtypes


def _jpeg(image, quality=75):
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf))


def planted_pairs(side, seed):
    """Crops ``a`` and, pair by pair, ``b``: a copy (exact, brighter, lower contrast, shifted
    1 px, noisy, JPEG) or a look-alike (the crop a quarter side away); and the kinds."""
    rng = np.random.default_rng(seed)
    crops, where = textured_crops(side, seed=seed, margin=side // 2)
    a, b, kinds = [], [], []
    for crop, (name, y, x) in zip(crops, where):
        img = gray_photo(name).astype(np.float64)
        q = side // 4
        variants = {
            "exact": img[y:y + side, x:x + side],
            "brighter": np.clip(img[y:y + side, x:x + side] + 20, 0, 255),
            "contrast": img[y:y + side, x:x + side] * 0.8 + 10,
            "shift": img[y + 1:y + 1 + side, x:x + side],
            "noise": np.clip(img[y:y + side, x:x + side] + rng.normal(0, 6, (side, side)),
                             0, 255),
            "jpeg": _jpeg(crop),
            "neighbour": img[y + q:y + q + side, x + q:x + q + side],
        }
        for kind, variant in variants.items():
            a.append(crop)
            b.append(np.round(variant).astype(np.uint8))
            kinds.append(kind)
    return np.stack(a), np.stack(b), np.array(kinds)


#: the same uint8 pictures stored otherwise
STORED = {
    "float32 [0, 1]": lambda x: (x / 255).astype(np.float32),
    "uint16": lambda x: x.astype(np.uint16) * 257,
    "float32 [-1.5, 1.5]": lambda x: ((x / 255 - 0.5) * 3).astype(np.float32),
    "float64 [0, 255]": lambda x: x.astype(np.float64),
}


@pytest.mark.parametrize("side", [28, 64])
@pytest.mark.parametrize("stored", list(STORED))
def test_other_dtype_of_same_photos_gives_same_decisions_as_uint8(side, stored):
    a, b, kinds = planted_pairs(side, seed=side)
    n = np.arange(len(a))
    src_a = as_source(a, "a")
    plain = residuals(src_a, as_source(b, "b"), n, n)  # uint8 against uint8: no conversion
    src_b = as_source(STORED[stored](b), "b")
    assert common_grid(src_a, src_b)[2] is not None
    converted = residuals(src_a, src_b, n, n)
    # exact copies (and pure brightness, contrast, 1 px shifts of them) stay exact
    exact = np.isin(kinds, ["exact", "shift"])
    assert converted[exact].max() < 0.01
    # away from the cut, every decision is the uint8 one
    clear = np.abs(plain - CUT) > 0.25 * CUT
    assert clear.sum() > 0.7 * len(a)
    np.testing.assert_array_equal((converted <= CUT)[clear], (plain <= CUT)[clear])
    # per-image [0, 1] only ever raises a residual (each image's range is within the pair's
    # joint range): no pair looks more alike than as uint8; copies rise by at most ~30%
    assert (converted >= plain - 0.01).all()
    copies = (plain <= CUT) & (plain > 0.5)
    assert (converted[copies] <= 1.3 * plain[copies] + 0.01).all()


def test_other_dtype_of_same_photos_verifies_every_copy_pair():
    # the same pictures as uint8 and as float32 in [0, 1] or uint16: every (k, k) verifies,
    # other crops do not
    crops = textured_crops(28, seed=11)[0]
    n = len(crops)
    i, j = all_pairs(n)
    for stored in ("float32 [0, 1]", "uint16"):
        similarity = verify.similarity_of(residuals(
            as_source(crops, "a"), as_source(STORED[stored](crops), "b"), i, j)).reshape(n, n)
        np.testing.assert_array_equal(similarity.diagonal(), 1.0)
        assert (similarity[~np.eye(n, dtype=bool)] < 0.75).all()


def test_bool_against_uint8_is_mapped_not_compared_on_two_scales():
    # the kernels read bool as uint8, so without the map a mask would sit on levels 0 and 1
    horse = photo("horse")
    assert horse.dtype == np.bool_
    masks = np.stack([horse[100:164, 100:164], horse[200:264, 150:214]])
    va, vb, what = common_grid(as_source(masks, "a"), as_source(masks.astype(np.uint8) * 255,
                                                                "b"))
    assert "bool and uint8" in what
    residual, _ = verify.verify_sources(va, vb, np.arange(2), np.arange(2), CPU)
    np.testing.assert_array_equal(residual, 0.0)


def test_size_and_dtype_differ_together():
    pictures = textured_crops(56, seed=7)[0]
    copies = (pillow_resize(pictures, 28, 28) / 255).astype(np.float32)
    n = len(pictures)
    i, j = all_pairs(n)
    similarity = verify.similarity_of(residuals(as_source(pictures, "a"),
                                                as_source(copies, "b"), i, j)).reshape(n, n)
    assert (similarity.diagonal() >= 0.9).all()
    assert (similarity[~np.eye(n, dtype=bool)] < 0.75).all()
    va, vb, _ = common_grid(as_source(pictures, "a"), as_source(copies, "b"))
    # resized before the map: each side ends exactly on [0, 1]
    for view in (va, vb):
        images = view.take(np.arange(n))
        np.testing.assert_array_equal(images.min(axis=(1, 2)), 0.0)
        np.testing.assert_array_equal(images.max(axis=(1, 2)), 1.0)


def test_non_finite_pixels_still_refused_after_the_map():
    crops = textured_crops(28, per_photo=1)[0]
    floats = (crops / 255).astype(np.float32)
    floats[2, 3, 4] = np.nan
    va, vb, _ = common_grid(as_source(crops, "a"), as_source(floats, "b"))
    with pytest.raises(InputError, match="image 2 holds NaN"):
        verify.verify_sources(va, vb, np.arange(4), np.arange(4), CPU)


# ---------------------------------------------------------------- RGB


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_rgb_against_its_luma_is_exact(name):
    rgb = photo(name)
    crops = np.stack([rgb[y:y + 64, x:x + 64] for y, x in ((100, 100), (200, 250), (150, 20))])
    lumas = np.stack([gray(c) for c in crops])
    src_a, src_b = as_source(crops, "a"), as_source(lumas, "b")
    va, vb, what = common_grid(src_a, src_b)
    assert vb is src_b and va.dtype == np.uint8 and va.image_shape == (64, 64)
    assert what.startswith("a RGB to luma (Pillow convert('L')") and ";" not in what
    np.testing.assert_array_equal(va.take([2, 0, 1]), lumas[[2, 0, 1]])
    i, j = all_pairs(3)
    residual, _ = verify.verify_sources(va, vb, i, j, CPU)
    residual = residual.reshape(3, 3)
    np.testing.assert_array_equal(residual.diagonal(), 0.0)
    assert (residual[~np.eye(3, dtype=bool)] > CUT).all()
    # RGB on both sides, one of them downscaled
    small = pillow_resize(crops, 32, 32)
    residual = residuals(as_source(crops, "a"), as_source(small, "b"), i, j).reshape(3, 3)
    assert (residual.diagonal() < 2.0).all()
    assert (residual[~np.eye(3, dtype=bool)] > CUT).all()


def test_rgb_against_itself_shares_one_view():
    rgb = as_source(np.zeros((2, 8, 8, 3), np.uint8), "a")
    va, vb, what = common_grid(rgb, rgb)
    assert va is vb and va.image_shape == (8, 8) and what.startswith("a RGB to luma")


# ---------------------------------------------------------------- take(): lazy and bounded


class RecordingSource(ImageSource):
    """An ImageSource that records the indices each take() asks for."""

    def __init__(self, data):
        super().__init__(name="rec", data=data, description="numpy array")
        self.asked = []

    def take(self, indices):
        self.asked.append(np.asarray(indices).tolist())
        return super().take(indices)


def test_take_converts_only_the_requested_images_each_once_in_order():
    pictures = textured_crops(56, per_photo=1)[0]
    rec = RecordingSource(pictures)
    _, view, _ = common_grid(as_source(np.zeros((1, 28, 28), np.uint8), "a"), rec)
    out = view.take(np.array([5, 1, 5, 0]))
    assert rec.asked == [[0, 1, 5]]
    expected = resample.resize_images(pictures[[5, 1, 5, 0]], (28, 28))
    np.testing.assert_array_equal(out, expected)
    assert view.take(np.array([], np.int64)).shape == (0, 28, 28)


def test_take_reads_large_images_in_bounded_runs():
    # 40 images of 1 MiB: a run's float64 work stays within DEFAULT_BATCH_BYTES (16 MiB), so
    # two images per read
    big = np.zeros((40, 1024, 1024), np.uint8)
    big[:, :512] = np.arange(40, dtype=np.uint8)[:, None, None] * 5
    rec = RecordingSource(big)
    _, view, _ = common_grid(as_source(np.zeros((1, 32, 32), np.uint8), "a"), rec)
    out = view.take(np.arange(40))
    assert max(len(asked) for asked in rec.asked) == 2 and len(rec.asked) == 20
    np.testing.assert_allclose(out[:, 4, 0], np.arange(40) * 5, atol=1e-6)


def test_views_of_hdf5_sources_verify(tmp_path):
    pictures = textured_crops(56, per_photo=1)[0]
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("big", data=pictures, chunks=(3, 56, 56))
        f.create_dataset("small", data=(pillow_resize(pictures, 28, 28) / 255.0))
    src_a = as_source(f"{tmp_path / 'x.h5'}:/big", "a")
    src_b = as_source(f"{tmp_path / 'x.h5'}:/small", "b")
    try:
        va, vb, what = common_grid(src_a, src_b)
        assert va.is_file and va.readable
        n = len(pictures)
        i, j = all_pairs(n)
        similarity = verify.similarity_of(
            verify.verify_sources(va, vb, i, j, CPU)[0]).reshape(n, n)
        assert (similarity.diagonal() >= 0.9).all()
        assert (similarity[~np.eye(n, dtype=bool)] < 0.75).all()
        batches = list(va.batches(5))
        assert [start for start, _ in batches] == list(range(0, n, 5))
        np.testing.assert_array_equal(np.concatenate([b for _, b in batches]),
                                      va.take(np.arange(n)))
    finally:
        src_a._file.close()
        src_b._file.close()
