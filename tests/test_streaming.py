"""HDF5 sources are streamed: batches of whole chunks, read ahead by a thread, never the whole
dataset; exact verification reads back only the candidate images."""

import threading

import h5py
import numpy as np
import pytest

import gpudedup as gd
from gpudedup import sources


@pytest.fixture
def h5(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (1000, 12, 12), dtype=np.uint8)
    images[900] = images[10]
    path = tmp_path / "big.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("train", data=images, chunks=(64, 12, 12))
    return str(path), images


@pytest.fixture
def reads(monkeypatch):
    """Record the rows of every read of an HDF5 dataset, and forbid reading one whole."""
    log = []
    read_direct = h5py.Dataset.read_direct
    getitem = h5py.Dataset.__getitem__

    def count(dataset, selection):
        rows = np.arange(dataset.shape[0])[selection if isinstance(selection, tuple)
                                           else (selection,)][0:]
        n = np.atleast_1d(rows).size
        assert n < dataset.shape[0], "a whole dataset was read"
        log.append((dataset.name, n))

    def spy_read_direct(self, dest, source_sel=None, dest_sel=None):
        count(self, source_sel[0] if isinstance(source_sel, tuple) else source_sel)
        return read_direct(self, dest, source_sel, dest_sel)

    def spy_getitem(self, selection):
        if self.ndim >= 2:
            first = selection[0] if isinstance(selection, tuple) else selection
            count(self, first)
        return getitem(self, selection)

    monkeypatch.setattr(h5py.Dataset, "read_direct", spy_read_direct)
    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy_getitem)
    return log


def test_batches_are_whole_chunks_and_never_the_dataset(h5, reads, monkeypatch):
    path, images = h5
    monkeypatch.setattr(sources, "DEFAULT_BATCH_BYTES", 200 * 144)  # 200 images -> 192 rows
    np.testing.assert_array_equal(gd.phash(f"{path}:/train"), gd.phash(images))
    sizes = [n for _, n in reads]
    assert sum(sizes) == 1000
    assert all(n % 64 == 0 for n in sizes[:-1])
    assert max(sizes) == 192


def test_verification_reads_only_candidates(h5, reads):
    path, images = h5
    ov = gd.find_overlaps(f"{path}:/train", batch_size=250)
    assert (10, 900) in list(ov) and ov.exact[list(ov).index((10, 900))]
    batches = [n for _, n in reads if n == 250]
    assert len(batches) == 4
    verify = [n for _, n in reads if n != 250]
    assert verify and max(verify) <= 2


def test_reader_thread_stops_when_the_consumer_does(h5):
    path, _ = h5
    source = sources.as_source(f"{path}:/train", "a")
    before = threading.active_count()
    batches = source.batches(100)
    start, first = next(batches)
    assert start == 0 and first.shape == (100, 12, 12)
    batches.close()
    assert threading.active_count() == before


def test_reader_errors_reach_the_consumer(h5, monkeypatch):
    path, _ = h5
    source = sources.as_source(f"{path}:/train", "a")

    def broken(self, dest, source_sel=None, dest_sel=None):
        raise OSError("read failed")

    monkeypatch.setattr(h5py.Dataset, "read_direct", broken)
    with pytest.raises(OSError, match="read failed"):
        list(source.batches(100))


def test_batches_are_reused_buffers(h5):
    path, images = h5
    source = sources.as_source(f"{path}:/train", "a")
    seen = []
    for start, batch in source.batches(100):
        np.testing.assert_array_equal(batch, images[start:start + 100])
        seen.append(id(batch.base) if batch.base is not None else id(batch))
    assert len(set(seen)) <= 3
