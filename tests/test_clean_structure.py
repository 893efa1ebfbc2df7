"""clean keeps the file's structure (links, aliases, attributes, creation properties,
references) or refuses up front, and reads every chunk once (issue 14, points 3/4 and 7/8)."""

import os

import h5py
import numpy as np
import pytest

from gpudedup import cli
from gpudedup.cleaning import _copy_filtered, write_clean
from gpudedup.errors import InputError
from gpudedup.layout import SplitSpec
from gpudedup.sources import ImageSource

N_TRAIN, N_TEST = 40, 10


def images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 8, 8), dtype=np.uint8)


def make_file(path, other):
    with h5py.File(other, "w") as f:
        f["y"] = np.arange(3)
    with h5py.File(path, "w") as f:
        f.attrs["title"] = "structured"
        f.attrs.create("fixed", np.bytes_(b"abc"))
        f.attrs["empty"] = h5py.Empty("f4")
        train = f.create_dataset("data/train", data=images(N_TRAIN, 0), chunks=(8, 8, 8),
                                 compression="gzip", compression_opts=7, shuffle=True,
                                 fletcher32=True, fillvalue=9, maxshape=(None, 8, 8))
        train.attrs["note"] = "train images"
        f.create_dataset("data/train_labels", data=np.arange(N_TRAIN) % 3)
        f.create_dataset("data/test", data=images(N_TEST, 1))
        f.create_dataset("data/test_labels", data=np.arange(N_TEST) % 3)
        f.create_dataset("meta/scaled", data=np.arange(100, dtype=np.int32), chunks=(10,),
                         scaleoffset=0)
        f["meta"].attrs["source"] = "synthetic"
        f.create_group("ordered", track_order=True)
        for name in ("z", "a", "m"):
            f["ordered"][name] = np.arange(2)
        f["alias/scaled"] = f["meta/scaled"]  # one dataset, two names
        f["meta_again"] = f["meta"]  # one group, two names
        f["train_alias"] = f["data/train"]  # a second name of a filtered dataset
        f["links/soft"] = h5py.SoftLink("/meta/scaled")
        f["links/train"] = h5py.SoftLink("/data/train")
        f["links/dangling"] = h5py.SoftLink("/no/such/thing")
        f["links/external"] = h5py.ExternalLink(os.path.basename(other), "/y")
        f["links/external_dangling"] = h5py.ExternalLink("missing.h5", "/nothing")
        f["gpudedup/kept/train"] = np.arange(3)  # a previous clean's record: replaced


SPECS = [SplitSpec("train", "/data/train", "/data/train_labels"),
         SplitSpec("test", "/data/test", "/data/test_labels")]


def masks():
    train = np.ones(N_TRAIN, dtype=bool)
    train[[0, 5, 17, 39]] = False
    return {"train": train, "test": np.ones(N_TEST, dtype=bool)}


@pytest.fixture
def structured(tmp_path):
    path = tmp_path / "data.h5"
    make_file(path, tmp_path / "other.h5")
    return path


def links(f):
    # every path of the file (links not followed), with what it is
    found = {}

    def walk(group, base):
        for name in group:
            path = f"{base}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.SoftLink):
                found[path] = ("soft", link.path)
            elif isinstance(link, h5py.ExternalLink):
                found[path] = ("external", link.filename, link.path)
            else:
                obj = group[name]
                found[path] = type(obj).__name__
                if isinstance(obj, h5py.Group) and path not in ("/meta_again",):
                    walk(obj, path)

    walk(f, "")
    return found


def test_clean_keeps_links_aliases_attributes_and_properties(structured, tmp_path):
    out = tmp_path / "clean.h5"
    kept = write_clean(str(structured), str(out), SPECS, masks(), threshold=6)
    assert kept == {"train": N_TRAIN - 4, "test": N_TEST}
    keep = masks()["train"]
    with h5py.File(structured) as fin, h5py.File(out) as fout:
        expected = {p: k for p, k in links(fin).items() if not p.startswith("/gpudedup")}
        got = {p: k for p, k in links(fout).items() if not p.startswith("/gpudedup")}
        assert got == expected
        # hard links: one object under two names, not two copies
        assert fout["alias/scaled"].id == fout["meta/scaled"].id
        assert fout["meta_again"].id == fout["meta"].id
        assert fout["train_alias"].id == fout["data/train"].id
        assert h5py.h5o.get_info(fout["meta/scaled"].id).rc == 2
        # links resolve to the filtered data
        np.testing.assert_array_equal(fout["links/train"][()], fin["data/train"][()][keep])
        np.testing.assert_array_equal(fout["data/train_labels"][()],
                                      fin["data/train_labels"][()][keep])
        np.testing.assert_array_equal(fout["links/external"][()], np.arange(3))
        # attributes, their types included
        assert dict(fout.attrs)["title"] == "structured"
        assert fout.attrs.get_id("fixed").dtype == fin.attrs.get_id("fixed").dtype
        assert isinstance(fout.attrs["empty"], h5py.Empty)
        assert fout["meta"].attrs["source"] == "synthetic"
        assert fout["data/train"].attrs["note"] == "train images"
        # creation properties of the filtered and the copied datasets
        src, dst = fin["data/train"], fout["data/train"]
        for prop in ("chunks", "compression", "compression_opts", "shuffle", "fletcher32",
                     "fillvalue", "maxshape", "dtype"):
            assert getattr(dst, prop) == getattr(src, prop), prop
        assert fout["meta/scaled"].scaleoffset == 0
        assert list(fout["ordered"]) == ["z", "a", "m"]  # link creation order kept
        np.testing.assert_array_equal(fout["gpudedup/kept/train"][()], np.flatnonzero(keep))


def test_clean_command_keeps_links(structured, tmp_path, capsys):
    out = tmp_path / "clean.h5"
    code = cli.main(["clean", str(structured), "-o", str(out), "--quiet", "--max-removed", "1",
                     "--split", "train=/data/train", "--split", "test=/data/test"])
    assert code == 0, capsys.readouterr().err
    with h5py.File(structured) as fin, h5py.File(out) as fout:
        assert {p: k for p, k in links(fout).items() if not p.startswith("/gpudedup")} == \
            {p: k for p, k in links(fin).items() if not p.startswith("/gpudedup")}


def test_references_are_rebuilt_to_the_copied_objects(tmp_path):
    path, out = tmp_path / "refs.h5", tmp_path / "clean.h5"
    with h5py.File(path, "w") as f:
        f["train"] = images(N_TRAIN, 0)
        f["classes"] = np.arange(10) * 3
        group = f.create_group("meta")
        f["meta_alias"] = group
        refs = f.create_dataset("refs", data=np.array(
            [f["classes"].ref, group.ref, f["train"].ref, h5py.Reference()],
            dtype=h5py.ref_dtype))
        refs.attrs["first"] = f["classes"].ref
        f.attrs["where"] = group.ref
        f.attrs.create("part", f["classes"].regionref[2:5], dtype=h5py.regionref_dtype)
    mask = np.ones(N_TRAIN, dtype=bool)
    mask[:3] = False
    write_clean(str(path), str(out), [SplitSpec("train", "/train")], {"train": mask},
                threshold=6)
    with h5py.File(out) as f:
        refs = f["refs"][()]
        assert [f[r].id for r in refs[:3]] == [f["classes"].id, f["meta"].id, f["train"].id]
        assert not refs[3]  # a null reference stays null
        assert f[refs[2]].shape[0] == N_TRAIN - 3
        assert f[f["refs"].attrs["first"]].name == "/classes"
        assert f[f.attrs["where"]].id == f["meta_alias"].id
        part = f.attrs["part"]
        np.testing.assert_array_equal(f[part][part], [6, 9, 12])


def test_what_cannot_be_kept_is_refused_before_writing(tmp_path):
    path, out = tmp_path / "refs.h5", tmp_path / "clean.h5"
    with h5py.File(path, "w") as f:
        f["train"] = images(N_TRAIN, 0)
        f.attrs.create("rows", f["train"].regionref[2:5], dtype=h5py.regionref_dtype)
        pair = np.dtype([("ref", h5py.ref_dtype), ("n", "i4")])
        f.create_dataset("pairs", data=np.array([(f["train"].ref, 1)], dtype=pair))
    mask = np.ones(N_TRAIN, dtype=bool)
    mask[0] = False
    with pytest.raises(InputError) as caught:
        write_clean(str(path), str(out), [SplitSpec("train", "/train")], {"train": mask},
                    threshold=6)
    message = str(caught.value)
    assert "attribute 'rows' of /: a region of /train" in message
    assert "dataset /pairs: holds references inside a compound" in message
    assert sorted(os.listdir(tmp_path)) == ["refs.h5"]  # nothing written, no temporary file


class Counting:
    """An h5py dataset that records the rows of every read."""

    def __init__(self, dataset):
        self._dataset = dataset
        self.reads = []

    def __getattr__(self, name):
        return getattr(self._dataset, name)

    def __getitem__(self, key):
        self.reads.append(key)
        return self._dataset[key]

    def read_direct(self, array, source_sel=None, dest_sel=None):
        self.reads.append(source_sel)
        return self._dataset.read_direct(array, source_sel, dest_sel)


def chunks_touched(reads, chunk_rows, count):
    touched = []
    for key in reads:
        key = key[0] if isinstance(key, tuple) else key
        assert isinstance(key, slice), f"a read of scattered rows: {key!r}"
        start, stop, _ = key.indices(count)
        touched.extend(range(start // chunk_rows, (stop - 1) // chunk_rows + 1))
    return touched


@pytest.mark.parametrize("chunk_rows", [10_000, 3_000])
def test_filtered_copy_reads_each_chunk_once(tmp_path, chunk_rows):
    # 10,000 rows: one chunk, or four (the last one short), beyond a read of 8,192 rows
    count = 10_000
    data = np.random.default_rng(0).integers(0, 4, (count, 4, 4), dtype=np.uint8)
    mask = np.random.default_rng(1).random(count) < 0.8
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f.create_dataset("x", data=data, chunks=(chunk_rows, 4, 4), compression="gzip")
    with h5py.File(tmp_path / "in.h5") as fin, h5py.File(tmp_path / "out.h5", "w") as fout:
        src = Counting(fin["x"])
        _copy_filtered(src, fout, "x", mask)
        touched = chunks_touched(src.reads, chunk_rows, count)
        assert sorted(touched) == list(range(-(-count // chunk_rows)))
        np.testing.assert_array_equal(fout["x"][()], data[mask])
        assert fout["x"].compression == "gzip"


@pytest.fixture
def chunked(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, (500, 6, 6), dtype=np.uint8)
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f.create_dataset("x", data=data, chunks=(32, 6, 6), compression="gzip")
    with h5py.File(tmp_path / "c.h5") as f:
        yield data, f["x"]


def test_take_equals_numpy_indexing(chunked):
    data, dataset = chunked
    source = ImageSource("a", dataset, "c.h5:/x")
    indices = np.random.default_rng(2).integers(0, 500, 300)  # unsorted, with duplicates
    indices = np.concatenate([indices, indices[:20], [-1, -500, 0, 499]])
    np.testing.assert_array_equal(source.take(indices), data[indices])
    assert source.take(np.array([], dtype=np.int64)).shape == (0, 6, 6)
    with pytest.raises(IndexError, match="a: image index out of range"):
        source.take(np.array([3, 500]))


def test_take_reads_each_chunk_once(chunked):
    data, dataset = chunked
    counting = Counting(dataset)
    source = ImageSource("a", counting, "c.h5:/x")
    indices = np.array([490, 3, 40, 41, 3, 33, 250, 63, 64, 0])
    np.testing.assert_array_equal(source.take(indices), data[indices])
    touched = chunks_touched(counting.reads, 32, 500)
    assert sorted(touched) == sorted(set((indices // 32).tolist()))
