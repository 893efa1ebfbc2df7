"""Dask (gpudedup.distributed): a real LocalCluster of 2 worker processes gives the local answer.

The data are small HDF5 files made here (28x28 images with planted exact and near copies);
every Overlaps column is compared with the single-process call, for several chunkings, with a
worker killed mid-run, and through the command (`gpudedup scan FILE --workers 2`).
"""

import json
import os
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
h5py = pytest.importorskip("h5py")

import gpudedup as gd  # noqa: E402
from gpudedup import cli  # noqa: E402
from gpudedup import distributed as on_dask  # noqa: E402
from gpudedup.errors import FileError, InputError  # noqa: E402

COLUMNS = ("left", "right", "distance", "exact", "similarity", "residual", "shift",
           "transform", "offset", "verified")


def make_images(n: int, seed: int) -> np.ndarray:
    # blocky images (phash is stable on them), with exact copies and noisy near copies planted
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, 7, 7), dtype=np.uint8)
    x = np.repeat(np.repeat(base, 4, axis=1), 4, axis=2)
    x[100:120] = x[0:20]                                         # exact
    noise = rng.integers(-4, 5, (60, 28, 28))
    x[300:360] = np.clip(x[200:260].astype(int) + noise, 0, 255)  # near
    x[-5:] = x[150]                                               # a group of exact copies
    return x


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("dask") / "data.h5"
    train = make_images(3000, 0)
    test = np.concatenate([train[::9][:300], make_images(400, 1)[::2]])
    with h5py.File(path, "w") as f:
        f.create_dataset("train", data=train, chunks=(250, 28, 28))
        f.create_dataset("test", data=test, chunks=(100, 28, 28))
    return {"path": str(path), "train": train, "test": test}


@pytest.fixture(scope="module")
def client():
    # worker processes, not threads: h5py reads in parallel only from separate processes
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=":0",
                                  env={"NUMBA_NUM_THREADS": "1"}) as cluster, \
            distributed.Client(cluster, set_as_default=False) as c:
        yield c


@pytest.fixture(scope="module")
def local(data):
    return {"self": gd.find_overlaps(data["train"]),
            "cross": gd.find_overlaps(data["train"], data["test"])}


def assert_same(got, want):
    assert len(want) > 0
    for name in COLUMNS:
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype, name
        assert np.array_equal(a, b, equal_nan=True), name
    assert got.self_join == want.self_join and got.unverified == want.unverified


@pytest.mark.parametrize("chunks", [None, 500, (1000, 1750, 250)])
def test_self_join_on_workers_equals_local(data, client, local, chunks):
    images = gd.dask_from_hdf5(f"{data['path']}:/train", chunks=chunks)
    on_dask.run_stats(reset=True)
    got = gd.find_overlaps(images, scheduler=client)
    assert_same(got, local["self"])
    stats = on_dask.run_stats()
    assert stats.hash_tasks == images.numblocks[0] and stats.search_tasks > 1
    assert stats.bytes_back_per_image == 24  # only hashes travel: workers reopen the file


def test_cross_join_on_workers_equals_local(data, client, local):
    # a dask array of any origin (here from memory): small images travel with their hashes
    train = da.from_array(data["train"], chunks=700)
    test = gd.dask_from_hdf5(f"{data['path']}:/test", chunks=150)
    with client.as_current():  # the active client is used without scheduler=
        got = gd.find_overlaps(train, test)
    assert_same(got, local["cross"])


def test_without_client_chunk_by_chunk_equals_local(data, local):
    assert on_dask.active_client() is None
    got = gd.find_overlaps(da.from_array(data["train"], chunks=600))
    assert_same(got, local["self"])
    hs = gd.hash_images(gd.dask_from_hdf5(f"{data['path']}:/test"))
    want = gd.hash_images(data["test"])
    assert np.array_equal(hs.phashes, want.phashes) and np.array_equal(hs.digests, want.digests)


def test_scan_and_hash_images_on_workers(data, client):
    splits = {"train": gd.dask_from_hdf5(f"{data['path']}:/train", chunks=800),
              "test": gd.dask_from_hdf5(f"{data['path']}:/test")}
    spec = {"train": f"{data['path']}:/train", "test": f"{data['path']}:/test"}
    got = gd.scan(splits, scheduler=client)
    want = gd.scan(spec)
    assert got.to_json() == want.to_json()
    hs = gd.hash_images(splits["test"], scheduler=client)
    assert np.array_equal(hs.phashes, gd.phash(data["test"]))
    assert np.array_equal(hs.digests, gd.digest(data["test"]))


@pytest.mark.parametrize("options", [{"invariant": "dihedral"}, {"shifts": 1}])
def test_variant_search_on_workers_equals_local(data, client, options):
    # flipped, turned and shifted copies planted: the search runs in several tasks, and each
    # pair's pick among its variant candidates is the local one
    from gpudedup.transforms import apply

    x = data["train"][:900].copy()
    x[600:630] = [apply(x[k], 1 + k % 7) for k in range(30)]
    x[630:660] = [np.pad(x[k], 1, mode="edge")[2:30, 1:29] for k in range(400, 430)]
    y = x[300:][::-1].copy()  # 600 rows: the smaller side, which the tasks split, has blocks
    for args in ((x,), (x, y)):
        want = gd.find_overlaps(*args, **options)
        on_dask.run_stats(reset=True)
        got = gd.find_overlaps(*(da.from_array(a, chunks=250) for a in args),
                               scheduler=client, **options)
        assert on_dask.run_stats().search_tasks > 1
        assert_same(got, want)
        assert (want.transform > 0).any() or (want.offset != 0).any()


def test_a_big_near_group_skips_the_same_on_workers(client):
    # 1,000 noisy copies: blocks of their rows skip what they joined (joined.py), by blocks of
    # rows, so tasks of whole blocks give the single process's pairs and count
    from helpers import noisy_copies

    x = noisy_copies(1000, 500, seed=6)
    want = gd.find_overlaps(x)
    assert want.unchecked > 0 and len(want.groups()[0]) == 1000
    on_dask.run_stats(reset=True)
    got = gd.find_overlaps(da.from_array(x, chunks=500), scheduler=client)
    assert on_dask.run_stats().search_tasks > 1
    assert_same(got, want)
    assert got.unchecked == want.unchecked
    # between two sets, either side the larger: tasks take blocks of the side that queries
    for a, b in ((x[:1000], x[500:]), (x[500:], x[:1000])):
        want = gd.find_overlaps(a, b, strategy="mih")
        assert want.unchecked > 0
        on_dask.run_stats(reset=True)
        got = gd.find_overlaps(da.from_array(a, chunks=500), da.from_array(b, chunks=500),
                               scheduler=client, strategy="mih")
        assert on_dask.run_stats().search_tasks > 1
        assert_same(got, want)
        assert got.unchecked == want.unchecked


def test_a_big_near_group_under_dihedral_skips_the_same_on_workers(client):
    # the variant search runs in tasks of its own query rows' blocks, so it skips on the
    # workers what it skips in one process (joined.py)
    from helpers import turned_noisy_copies

    x = turned_noisy_copies(1000, 400, 500, seed=6)
    options = {"invariant": "dihedral", "strategy": "mih"}
    plain = gd.find_overlaps(x, strategy="mih")
    want = gd.find_overlaps(x, **options)
    assert len(want.groups()[0]) == 1000 and want.unchecked > plain.unchecked
    on_dask.run_stats(reset=True)
    got = gd.find_overlaps(da.from_array(x, chunks=500), scheduler=client, **options)
    assert on_dask.run_stats().search_tasks > 2
    assert_same(got, want)
    assert got.unchecked == want.unchecked
    a, b = x[:700], x[700:]
    want = gd.find_overlaps(a, b, **options)
    got = gd.find_overlaps(da.from_array(a, chunks=500), da.from_array(b, chunks=500),
                           scheduler=client, **options)
    assert want.unchecked > 0 and (want.transform > 0).any()
    assert_same(got, want)
    assert got.unchecked == want.unchecked


def _die_once(block, marker):
    # ends its worker process on the first attempt only (the marker says it happened)
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return block
    os.close(fd)
    os._exit(1)


def test_killed_worker_does_not_change_the_answer(data, client, local, tmp_path):
    marker = str(tmp_path / "died")
    images = da.from_array(data["train"], chunks=500)
    # the third chunk kills its worker the first time it is computed; distributed reruns it
    blocks = [images.blocks[k] for k in range(images.numblocks[0])]
    blocks[2] = blocks[2].map_blocks(_die_once, marker,  # meta: never called here
                                     meta=np.empty((0, 0, 0), images.dtype))
    got = gd.find_overlaps(da.concatenate(blocks), scheduler=client)
    assert os.path.exists(marker)
    assert_same(got, local["self"])


def test_missing_file_on_worker_is_one_clear_error(data, client, tmp_path):
    path = tmp_path / "gone.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=data["test"])
    images = gd.dask_from_hdf5(f"{path}:/x")
    path.unlink()
    begin = time.perf_counter()
    with pytest.raises(FileError, match="gone.h5"):
        gd.find_overlaps(images, scheduler=client)
    assert time.perf_counter() - begin < 30


def _numba_threads():
    import numba

    on_dask._task_threads()
    return numba.get_num_threads(), os.environ.get("NUMBA_NUM_THREADS")


def test_command_cluster_shares_the_cores_without_numba_num_threads():
    # the command's workers take cores // workers numba threads per task, never through
    # NUMBA_NUM_THREADS: the command's module (numba with it) can be imported in a worker
    # before the cluster's environment, and numba then refuses every later compile
    cores = max(1, (os.cpu_count() or 1) // 2)
    with on_dask.local_cluster(2) as client:
        got = client.gather([client.submit(_numba_threads, pure=False) for _ in range(4)])
    assert set(got) == {(cores, None)}


def test_command_with_workers_skips_in_big_groups_as_one_process(tmp_path, capsys):
    # the command's own cluster skips inside big groups as one process does
    from helpers import turned_noisy_copies, write_h5

    path = tmp_path / "big.h5"
    write_h5(path, train=turned_noisy_copies(1000, 400, 500, seed=6))
    plain, spread = tmp_path / "plain.json", tmp_path / "spread.json"
    options = ["--quiet", "--invariant", "dihedral"]
    assert cli.main(["scan", str(path), *options, "--json", str(plain)]) == 0
    out_plain = capsys.readouterr().out
    assert "were not checked" in out_plain
    assert cli.main(["scan", str(path), *options, "--workers", "2", "--json", str(spread)]) == 0
    assert capsys.readouterr().out == out_plain
    assert json.loads(spread.read_text()) == json.loads(plain.read_text())


def test_dask_from_hdf5_checks_its_arguments(data, tmp_path):
    with pytest.raises(InputError, match="chunks"):
        gd.dask_from_hdf5(f"{data['path']}:/train", chunks=0)
    with pytest.raises(InputError, match="spec"):
        gd.dask_from_hdf5(f"{data['path']}:/nothing")
    with pytest.raises(InputError, match="spec"):
        gd.dask_from_hdf5(str(tmp_path / "absent.h5") + ":/x")
    images = gd.dask_from_hdf5(f"{data['path']}:/train", chunks=600)
    assert images.chunks[0] == (500,) * 6  # whole HDF5 chunks of 250
    assert on_dask.hdf5_spec(images) == f"{data['path']}:/train"
    assert on_dask.hdf5_spec(images[1:]) is None  # a changed array is not the file


def test_command_with_workers_prints_the_same_report(data, tmp_path, capsys):
    plain, spread = tmp_path / "plain.json", tmp_path / "spread.json"
    assert cli.main(["scan", data["path"], "--quiet", "--json", str(plain)]) == 0
    out_plain = capsys.readouterr().out
    assert cli.main(["scan", data["path"], "--quiet", "--workers", "2",
                     "--json", str(spread)]) == 0
    out_spread = capsys.readouterr().out
    assert out_spread == out_plain
    assert json.loads(spread.read_text()) == json.loads(plain.read_text())
    hashes = tmp_path / "spread.hashes.h5"
    assert cli.main(["hash", data["path"], "--quiet", "--workers", "2", "-o", str(hashes)]) == 0
    saved = gd.hashset.load_many(hashes)
    assert np.array_equal(saved["train"].phashes, gd.phash(data["train"]))
    assert np.array_equal(saved["test"].digests, gd.digest(data["test"]))
