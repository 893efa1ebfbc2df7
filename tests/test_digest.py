"""gd.digest: MurmurHash3_x64_128 of each image's bytes, seeded by shape and dtype."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from gpudedup.kernels import cpu

import gpudedup as gd
from gpudedup.hashing import digest_seed


def seed_of(shape, dtype) -> int:
    # the documented seed: crc32 of "(H, W)|<dtype.str>"
    return zlib.crc32(f"{tuple(shape)}|{np.dtype(dtype).str}".encode())


def mmh3_digest(img) -> tuple[int, int]:
    """(low 64 bits, high 64 bits) of mmh3.hash128 of the image's C-order bytes."""
    mmh3 = pytest.importorskip("mmh3")
    img = np.asarray(img)
    value = mmh3.hash128(np.ascontiguousarray(img).tobytes(), seed_of(img.shape, img.dtype),
                         x64arch=True)
    return value & (2**64 - 1), value >> 64


def test_seed_is_crc32_of_shape_and_dtype():
    assert int(digest_seed((28, 28), np.uint8)) == zlib.crc32(b"(28, 28)||u1")
    assert int(digest_seed((5, 7, 3), np.dtype(">f4"))) == zlib.crc32(b"(5, 7, 3)|>f4")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64, np.int32, bool])
def test_matches_mmh3(dtype):
    # every tail length 0..15 bytes, and multi-block rows
    rng = np.random.default_rng(200)
    for shape in [(1, 1), (1, 3), (2, 4), (3, 5), (1, 15), (4, 4), (1, 17), (7, 9), (28, 28),
                  (5, 300)]:
        images = rng.integers(0, 256, (3, *shape)).astype(dtype)
        got = gd.digest(images)
        assert got.dtype == np.uint64 and got.shape == (3, 2)
        for k in range(3):
            assert tuple(int(v) for v in got[k]) == mmh3_digest(images[k]), (dtype, shape, k)


def test_matches_mmh3_rgb_and_non_contiguous():
    rng = np.random.default_rng(201)
    rgb = rng.integers(0, 256, (3, 9, 11, 3), dtype=np.uint8)
    for images in (rgb, rgb[:, ::2, ::-1], rng.random((4, 20, 30))[:, ::3, 1::2],
                   rng.integers(0, 256, (3, 10, 13), dtype=np.uint8).transpose(0, 2, 1)):
        got = gd.digest(images)
        for k in range(images.shape[0]):
            assert tuple(int(v) for v in got[k]) == mmh3_digest(images[k])


def test_digest_rows_kernel_matches_mmh3():
    # the kernel directly: zero-padded little-endian word rows, true byte count
    rng = np.random.default_rng(202)
    for nbytes in range(0, 40):
        row = rng.integers(0, 256, nbytes, dtype=np.uint8)
        padded = np.zeros((1, max(1, -(-nbytes // 8))), np.uint64)
        padded.view(np.uint8)[0, :nbytes] = row
        out = np.empty((1, 2), np.uint64)
        cpu.digest_rows(padded, nbytes, np.uint64(12345), out)
        mmh3 = pytest.importorskip("mmh3")
        value = mmh3.hash128(row.tobytes(), 12345, x64arch=True)
        assert (int(out[0, 0]), int(out[0, 1])) == (value & (2**64 - 1), value >> 64)


GOLDEN = {  # mmh3.hash128(bytes, seed, x64arch=True) as (low, high); pinned without mmh3
    "arange_u8": (0x3718129EDAC3968C, 0x23897F333CF55FF1),
}


def test_golden_digest():
    images = np.arange(24, dtype=np.uint8).reshape(1, 4, 6)
    got = gd.digest(images)[0]
    assert (int(got[0]), int(got[1])) == GOLDEN["arange_u8"]


def test_equal_iff_bytes_equal():
    rng = np.random.default_rng(203)
    images = rng.integers(0, 4, (200, 3, 3), dtype=np.uint8)  # many exact repeats
    got = gd.digest(images)
    keys = [img.tobytes() for img in images]
    rows = [tuple(r) for r in got.tolist()]
    for i in range(0, 200, 7):
        for j in range(200):
            assert (rows[i] == rows[j]) == (keys[i] == keys[j])


def test_one_bit_changes_the_digest():
    rng = np.random.default_rng(204)
    img = rng.integers(0, 256, (1, 16, 16), dtype=np.uint8)
    variants = np.repeat(img, 64, axis=0)
    for k in range(1, 64):
        y, x, bit = divmod(k * 37 % 256, 16) + (k % 8,)
        variants[k, y, x] ^= np.uint8(1 << bit)
    got = gd.digest(variants)
    assert len({tuple(r) for r in got.tolist()}) == len({v.tobytes() for v in variants})


def test_shape_and_dtype_enter_the_digest():
    rng = np.random.default_rng(205)
    base = rng.integers(0, 256, (2, 6, 8), dtype=np.uint8)
    same_bytes = [
        base,
        base.reshape(2, 8, 6),
        base.reshape(2, 3, 16),
        base.reshape(2, 48, 1),
        base.view(np.int8),
        base.view(np.uint16),
        base.view(np.float32),
        base.view(">u2"),
        base.reshape(2, 4, 4, 3),
    ]
    digests = [tuple(gd.digest(x)[0]) for x in same_bytes]
    for x in same_bytes:
        assert x[0].tobytes() == base[0].tobytes()
    assert len(set(digests)) == len(digests)
    # bool and uint8 holding the same 0/1 bytes differ too
    bits = (base % 2).astype(np.uint8)
    assert tuple(gd.digest(bits)[0]) != tuple(gd.digest(bits.astype(bool))[0])


def test_byte_order_is_part_of_the_bytes():
    values = np.arange(2 * 5 * 7, dtype=np.uint16).reshape(2, 5, 7)
    little, big = gd.digest(values.astype("<u2")), gd.digest(values.astype(">u2"))
    assert not (little == big).all(axis=1).any()
    # same values, different bytes: not exact duplicates either
    assert len(gd.find_overlaps(values.astype("<u2"), values.astype(">u2"), near=False)) == 0


def test_float_zero_signs_differ():
    # digests follow bytes, not values: -0.0 and 0.0 are different bytes
    zeros = np.zeros((2, 4, 4), np.float32)
    zeros[1, 1, 1] = -0.0
    got = gd.digest(zeros)
    assert tuple(got[0]) != tuple(got[1])


@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
def test_batch_size_independence(dtype):
    rng = np.random.default_rng(206)
    images = rng.integers(0, 256, (41, 7, 5)).astype(dtype)
    full = gd.digest(images)
    for batch_size in (1, 3, 40, 41, 100):
        np.testing.assert_array_equal(gd.digest(images, batch_size=batch_size), full)
    np.testing.assert_array_equal(gd.digest(images, progress=True), full)
    for k in (0, 20, 40):
        np.testing.assert_array_equal(gd.digest(images[k:k + 1])[0], full[k])


def test_n0_and_n1():
    empty = gd.digest(np.zeros((0, 3, 3), np.uint8))
    assert empty.shape == (0, 2) and empty.dtype == np.uint64
    one = gd.digest(np.ones((1, 3, 3), np.float32))
    assert one.shape == (1, 2)


def test_digest_of_hdf5_equals_numpy(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(207)
    images = rng.integers(0, 256, (9, 6, 10), dtype=np.uint8)
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=images, chunks=(2, 6, 10))
    np.testing.assert_array_equal(gd.digest(f"{path}:/x"), gd.digest(images))
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(gd.digest(f["x"], batch_size=4), gd.digest(images))
