"""The cuda backend's host code (CuPy arrays, pinned staging buffers, two streams, the device
memory budget) run under the CUDA simulator with a CuPy-shaped fake (tests/cuda/fake_cupy.py) as
the array module, checked bit for bit against the CPU backend.

Under the simulator alone, numpy stands in for CuPy and these branches are skipped; here
``backend.resolve`` takes its real-GPU branch (``cuda_simulated`` and ``cuda_available``
patched for the test) and every kernel still runs in the simulator. Inputs stay tiny: the
simulator runs about 5k threads per second.
"""

import fake_cupy
import numpy as np
import pytest

import gpudedup as gd
from gpudedup import backend as backends
from gpudedup import hashing, search
from gpudedup.errors import BackendError, InputError


@pytest.fixture
def cp(monkeypatch):
    fake_cupy.install(monkeypatch)
    # range-search blocks of 8 query rows instead of 256: fewer idle simulated threads
    monkeypatch.setattr(search, "BLOCK_ROWS", 8)
    return fake_cupy


def images(n, shape=(12, 12), dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, *shape)).astype(dtype)


def test_resolve_takes_the_cupy_branch(cp):
    be = backends.resolve("cuda")
    assert be.name == "cuda" and be.xp is cp
    x = cp.zeros((2, 4, 4), dtype=cp.uint8)
    assert backends.resolve("auto", x).xp is cp
    cp.state.free = 8 << 20
    assert be.batch_bytes() == int((8 << 20) * backends.DEVICE_BATCH_SHARE)
    host = np.arange(6)
    dev = be.to_device(host)
    assert isinstance(dev, cp.ndarray) and not isinstance(dev, np.ndarray)
    assert be.to_device(dev) is dev
    np.testing.assert_array_equal(be.to_host(dev), host)
    assert type(be.to_host(dev)) is np.ndarray


def test_fake_is_strict_like_cupy(cp):
    x = cp.arange(4)
    with pytest.raises(TypeError):
        np.asarray(x)
    with pytest.raises(TypeError):
        x + np.arange(4)
    with pytest.raises(TypeError):
        cp.concatenate([x, np.arange(4)])


def test_fake_catches_stream_races(cp):
    # the checks the pipeline is run under are not vacuous
    pinned = np.frombuffer(cp.cuda.alloc_pinned_memory(8), np.uint8, 8)
    stream = cp.cuda.Stream(non_blocking=True)
    dev = cp.empty(8, dtype=cp.uint8)
    dev.set(pinned, stream=stream)
    pinned[0] = 1  # reused before the copy is known to be done
    with pytest.raises(cp.HazardError):
        stream.synchronize()
    with stream:
        out = cp.zeros(8, dtype=cp.uint8)
        backends.resolve("cuda").launch("luma_images", 8, cp.zeros((1, 2, 4, 3), cp.uint8),
                                        out.reshape(1, 2, 4))
    with pytest.raises(cp.HazardError):
        out.get()  # from the null stream, before stream.synchronize()
    stream.synchronize()
    out.get()
    rgb = cp.asarray(np.zeros((1, 2, 4, 3), np.uint8))  # uploaded on the null stream
    with stream, pytest.raises(cp.HazardError):
        # a non-blocking stream reading it before the null stream was waited for
        backends.resolve("cuda").launch("luma_images", 8, rgb, cp.zeros((1, 2, 4), cp.uint8))


def test_pipeline_staging_buffers_and_streams(cp):
    # batches smaller, equal and bigger than the staging buffer of their slot
    be = backends.resolve("cuda")
    imgs = images(10, (5, 7))
    sizes = [1, 1, 3, 3, 2]
    cuts = np.cumsum([0] + sizes)
    batches = [(int(lo), imgs[lo:hi]) for lo, hi in zip(cuts[:-1], cuts[1:])]
    seed = hashing.digest_seed(imgs.shape[1:], imgs.dtype)
    out = list(be.map_batches(iter(batches), lambda b: {"d": hashing._digest_batch(b, seed,
                                                                                  be)}))
    assert [start for start, _ in out] == cuts[:-1].tolist()
    got = np.concatenate([r["d"] for _, r in out])
    assert type(got) is np.ndarray
    np.testing.assert_array_equal(got, gd.digest(imgs, backend="cpu"))
    per = imgs[0].nbytes
    # slot 0: 1 image, grown to 3, reused for 2; slot 1: 1, grown to 3
    assert cp.state.pinned_allocs == [per, per, 3 * per, 3 * per]
    streams = [s.ptr for s in cp.state.streams]
    assert len(streams) == 2
    assert [ptr for ptr, _ in cp.state.sets] == [streams[k % 2] for k in range(5)]
    assert [n for _, n in cp.state.sets] == [s * per for s in sizes]
    # every kernel ran on the stream of its batch
    assert [ptr for _, ptr in cp.state.launches] == [streams[k % 2] for k in range(5)]
    # the caller's (null) stream first: its uploads are done before the pipeline streams read
    # them; then a slot is synchronised before it is reused: at most two batches in flight
    assert cp.state.syncs[:4] == [0, streams[0], streams[1], streams[0]]


def test_pipeline_empty_and_device_batches(cp):
    be = backends.resolve("cuda")
    assert list(be.map_batches(iter([]), lambda b: {})) == []
    dev = cp.asarray(images(3, (4, 4)))
    out = list(be.map_batches(iter([(0, dev[:2]), (2, dev[2:])]), lambda b: {"x": b + 1}))
    assert not cp.state.sets and not cp.state.pinned_allocs  # CuPy batches are not staged
    np.testing.assert_array_equal(np.concatenate([r["x"] for _, r in out]), dev.get() + 1)


@pytest.mark.parametrize("batch_size", [None, 1, 2, 5])
def test_phash_and_digest_uint8(cp, batch_size):
    imgs = images(5, (12, 12), seed=batch_size or 0)
    np.testing.assert_array_equal(gd.phash(imgs, backend="cuda", batch_size=batch_size),
                                  gd.phash(imgs, backend="cpu"))
    np.testing.assert_array_equal(gd.digest(imgs, backend="cuda", batch_size=batch_size),
                                  gd.digest(imgs, backend="cpu"))


@pytest.mark.parametrize("dtype,shape", [
    (np.float32, (9, 9)),  # linear path, non-finite flags come back
    (np.float16, (6, 6)),  # no kernel type: converted on the device
    (np.dtype(">u2"), (7, 5)),  # byte-swapped: converted on the device
    (np.uint8, (6, 6, 3)),  # RGB: luma kernel first
])
def test_phash_other_dtypes(cp, dtype, shape):
    imgs = images(3, shape, dtype=dtype, seed=3)
    np.testing.assert_array_equal(gd.phash(imgs, backend="cuda", batch_size=2),
                                  gd.phash(imgs, backend="cpu"))
    np.testing.assert_array_equal(gd.digest(imgs, backend="cuda", batch_size=2),
                                  gd.digest(imgs, backend="cpu"))


def test_nonfinite_raises_through_the_pipeline(cp):
    imgs = images(4, (6, 6), dtype=np.float32)
    imgs[3, 2, 2] = np.nan
    with pytest.raises(InputError, match="image 3 contains NaN"):
        gd.phash(imgs, backend="cuda", batch_size=2)
    with pytest.raises(InputError, match="image 3 contains NaN"):
        gd.digest(imgs, backend="cuda", batch_size=2)  # no phash: checked on the device


def test_memory_budget_shrinks_batches(cp):
    imgs = images(5, (12, 12))
    per = imgs[0].nbytes
    cp.state.free = int(2 * per / backends.DEVICE_BATCH_SHARE)  # room for 2 images a batch
    np.testing.assert_array_equal(gd.phash(imgs, backend="cuda"),
                                  gd.phash(imgs, backend="cpu"))
    assert [n for _, n in cp.state.sets] == [2 * per, 2 * per, per]
    cp.state.sets.clear()
    cp.state.free = 1  # less than one image: still one image a batch
    gd.digest(imgs, backend="cuda")
    assert [n for _, n in cp.state.sets] == [per] * 5


def test_cupy_input(cp):
    host = images(4, (12, 12), seed=5)
    host[3] = host[1]
    dev = cp.asarray(host)
    np.testing.assert_array_equal(gd.phash(dev, batch_size=3), gd.phash(host, backend="cpu"))
    ov = gd.find_overlaps(dev, threshold=4)  # auto -> cuda; verification reads CuPy images
    ref = gd.find_overlaps(host, threshold=4, backend="cpu")
    np.testing.assert_array_equal(ov.pairs, ref.pairs)
    np.testing.assert_array_equal(ov.exact, ref.exact)
    assert [1, 3] in ov.pairs[ov.exact].tolist()
    assert not cp.state.sets  # CuPy images are hashed where they are


@pytest.mark.parametrize("invariant", [None, "dihedral"])
def test_dask_task_hashes_a_cupy_chunk_where_it_is(cp, invariant):
    # a dask-cuda worker's chunk is a CuPy array: its hashing task runs the cuda backend on it
    # with no host round trip (the fake refuses implicit copies; no upload is made) and sends
    # back the CPU backend's hashes
    from gpudedup import distributed as on_dask

    host = images(6, (16, 16), seed=8)
    out = on_dask.hash_chunk(cp.asarray(host), 0, "train", "auto", True, True, invariant, 0,
                             False)
    assert not cp.state.sets and not cp.state.pinned_allocs
    assert any("phash" in name for name, _ in cp.state.launches)  # hashed by the cuda kernels
    np.testing.assert_array_equal(out["phash"], gd.phash(host, backend="cpu"))
    np.testing.assert_array_equal(out["digest"], gd.digest(host, backend="cpu"))
    if invariant is not None:
        want = hashing.compute_variant_hashes(gd.sources.as_source(host, "train"),
                                              backends.resolve("cpu"), invariant=invariant,
                                              shifts=0)[0]
        np.testing.assert_array_equal(out["variants"], want)


def _codes(n, seed):
    # a few base codes shared by every call, each code a base with up to 3 bits flipped
    base = np.random.default_rng(0).integers(0, 2**63, 4, dtype=np.uint64)
    rng = np.random.default_rng(seed)
    flips = np.uint64(1) << rng.integers(0, 64, (n, 3)).astype(np.uint64)
    noise = np.where(rng.random((n, 3)) < 0.5, flips, np.uint64(0))
    return base[rng.integers(0, 4, n)] ^ noise[:, 0] ^ noise[:, 1] ^ noise[:, 2]


@pytest.mark.parametrize("strategy", ["brute", "mih"])
def test_range_search(cp, monkeypatch, strategy):
    # tiny blocks and capacity: several blocks per launch, overflows and regrowth
    monkeypatch.setattr(search, "INITIAL_CAPACITY", 4)
    monkeypatch.setattr(search, "CALIBRATION_BLOCKS", 1)
    a, b = _codes(20, 1), _codes(28, 2)
    cuda_be, cpu_be = backends.resolve("cuda"), backends.resolve("cpu")
    for args in ((a, b), (a, None), (b, a)):
        got = search.hamming_pairs(*args, 6, be=cuda_be, strategy=strategy)
        ref = search.hamming_pairs(*args, 6, be=cpu_be, strategy="brute")
        for g, r in zip(got, ref):
            assert type(g) is np.ndarray
            np.testing.assert_array_equal(g, r)
        assert got[0].size > 20  # duplicate-heavy: blocks overflowed their first capacity


def test_digest_pairs(cp):
    da = np.array([[1, 2], [3, 4], [1, 2], [5, 6]], np.uint64)
    db = np.array([[3, 4], [1, 2], [7, 8]], np.uint64)
    for args in ((da, None), (da, db), (db, da), (da[:1], None)):
        got = search.digest_pairs(*args, xp=cp)
        ref = search.digest_pairs(*args, xp=np)
        for g, r in zip(got, ref):
            assert type(g) is np.ndarray
            np.testing.assert_array_equal(g, r)


def test_find_overlaps_and_scan(cp):
    train = images(3, (12, 12), seed=7)
    test = np.concatenate([train[[2]], images(2, (12, 12), seed=8)])
    ref = gd.find_overlaps(train, test, backend="cpu")
    got = gd.find_overlaps(train, test, backend="cuda", batch_size=2)
    hashed = gd.hash_images(train, backend="cuda"), gd.hash_images(test, backend="cuda")
    for ov in (got, gd.find_overlaps(*hashed, backend="cuda", strategy="mih")):
        np.testing.assert_array_equal(ov.pairs, ref.pairs)
        np.testing.assert_array_equal(ov.distance, ref.distance)
        np.testing.assert_array_equal(ov.exact, ref.exact)
    assert [0, 0] not in ref.pairs.tolist() and [2, 0] in ref.pairs[ref.exact].tolist()
    splits = {"train": train, "test": test}
    got = gd.scan(splits, backend="cuda", batch_size=3).to_json()
    ref = gd.scan(splits, backend="cpu").to_json()
    strip = ("backend", "seconds", "elapsed", "timings", "created", "version")
    assert _without(got, strip) == _without(ref, strip)


def _without(text, keys):
    import json

    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if k not in keys}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    return clean(json.loads(text) if isinstance(text, str) else text)


def test_exact_only_empty_and_unavailable(cp, monkeypatch):
    imgs = images(4, (6, 6), seed=9)
    imgs[2] = imgs[0]
    ov = gd.find_overlaps(imgs, near=False, backend="cuda")  # digests only, no phash
    assert ov.pairs.tolist() == [[0, 2]] and ov.exact.all()
    empty = np.empty(0, np.uint64)
    for got in search.hamming_pairs(empty, None, 4, be=backends.resolve("cuda")):
        assert type(got) is np.ndarray and got.size == 0
    assert backends.resolve("cpu").xp is np
    monkeypatch.setattr(backends, "cuda_available", lambda: False)
    with pytest.raises(BackendError):
        backends.resolve("cuda")
