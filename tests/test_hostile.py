"""Hostile files: dangling links, empty and absurdly sized datasets, unreadable, locked, damaged."""

import os
import subprocess
import sys
import tempfile
import textwrap

import h5py
import numpy as np
import pytest

import gpudedup as gd
from gpudedup import cli, sources
from gpudedup.errors import FileError, GpudedupError, InputError


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(code, err):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpudedup: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def linked(tmp_path):
    path = tmp_path / "links.h5"
    with h5py.File(path, "w") as f:
        f["images"] = np.arange(5 * 8 * 8, dtype=np.uint8).reshape(5, 8, 8)
        f["soft"] = h5py.SoftLink("/nowhere")
        f["ext"] = h5py.ExternalLink("missing.h5", "/x")
        f["grp"] = h5py.SoftLink("/gone")
    return path


@pytest.mark.parametrize("split,message", [
    ("/soft", "'/soft' is a dangling soft link to '/nowhere'"),
    ("/ext", "'/ext' is a dangling external link to missing.h5:/x (no file 'missing.h5'"),
    ("/grp/images", "'/grp' is a dangling soft link to '/gone'"),
])
def test_dangling_link_as_a_split(linked, capsys, split, message):
    line = one_error_line(*run(capsys, "scan", linked, "--split", f"train={split}")[::2])
    assert line.startswith("gpudedup: error: --split train: ")
    assert message in line and str(linked) in line
    with pytest.raises(InputError, match="dangling"):
        gd.find_overlaps(f"{linked}:{split}")


def test_dangling_external_link_whose_file_exists(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["y"] = np.zeros((2, 4, 4), np.uint8)
    with h5py.File(tmp_path / "main.h5", "w") as f:
        f["ext"] = h5py.ExternalLink("other.h5", "/x")
    with pytest.raises(InputError, match=r"exists but has no object '/x'"):
        gd.scan({"train": f"{tmp_path / 'main.h5'}:/ext"})


def test_layout_detection_names_dangling_links(tmp_path, capsys):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f["train"] = h5py.SoftLink("/nowhere")
        f["test"] = np.zeros((4, 8, 8), np.uint8)
    code, out, err = run(capsys, "scan", path, "--quiet")
    assert code == 0, err
    assert err.strip() == (f"gpudedup: warning: FILE: '/train' is a dangling soft link to "
                           f"'/nowhere', so it is not used as the train split (in "
                           f"{str(path)!r})")
    # nothing else there: the error says why
    with h5py.File(path, "a") as f:
        del f["test"]
    code, out, err = run(capsys, "scan", path)
    assert code == 2 and "dangling" in err.splitlines()[0]
    assert "found no splits" in err.splitlines()[-1] and "dangling" in err.splitlines()[-1]


@pytest.fixture
def odd_shapes(tmp_path):
    rng = np.random.default_rng(7)
    test = rng.integers(0, 255, (6, 28, 28), dtype=np.uint8)
    test[3] = test[0]
    path = tmp_path / "odd.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("train", shape=(0, 28, 28), dtype=np.uint8)
        f["test"] = test
        f.create_dataset("scalar", data=3)
        f.create_dataset("flat", data=np.arange(4))
        f.create_dataset("zero_height", shape=(4, 0, 28), dtype=np.uint8)
        f.create_dataset("all_zero", shape=(0, 0, 28), dtype=np.float32)
    return path


def test_empty_split_scans_to_no_pairs(odd_shapes, tmp_path, capsys):
    code, out, err = run(capsys, "scan", odd_shapes, "--json", tmp_path / "r.json", "--quiet")
    assert code == 0, err
    report = gd.scan({"train": f"{odd_shapes}:/train", "test": f"{odd_shapes}:/test"})
    assert report.splits["train"].count == 0
    assert len(report.overlaps[("train", "test")]) == 0 and len(report.duplicates["train"]) == 0
    assert report.duplicates["test"].pairs.tolist() == [[0, 3]]
    assert len(gd.find_overlaps(f"{odd_shapes}:/train")) == 0
    assert gd.digest(f"{odd_shapes}:/train").shape == (0, 2)
    # and through a saved cache
    code, out, err = run(capsys, "hash", odd_shapes, "-o", tmp_path / "h.h5", "--quiet")
    assert code == 0, err
    code, out, err = run(capsys, "scan", odd_shapes, "--hashes", tmp_path / "h.h5")
    assert code == 0, err
    # zero images make an empty split; images of zero height or width, or no image axes at
    # all, are no images
    for dataset, message in [("/scalar", "got shape () (0-d)"),
                             ("/flat", "got shape (4,) (1-d)"),
                             ("/zero_height", "non-zero height and width, got shape (4, 0, 28)"),
                             ("/all_zero", "non-zero height and width, got shape (0, 0, 28)")]:
        line = one_error_line(*run(capsys, "scan", odd_shapes, "--split", f"x={dataset}")[::2])
        assert "--split x: " in line and message in line


def test_absurd_declared_size_refused_before_allocating(tmp_path, capsys):
    path = tmp_path / "huge.h5"
    with h5py.File(path, "w") as f:  # declared, never written: the file stays small
        f.create_dataset("train", shape=(300_000_000_000, 28, 28), dtype=np.uint8,
                         chunks=(64, 28, 28))
    assert os.path.getsize(path) < 100_000
    for command in (["scan", path], ["hash", path, "-o", tmp_path / "h.h5"]):
        line = one_error_line(*run(capsys, *command)[::2])
        assert "--split train: " in line
        assert "declares 300,000,000,000 images" in line and "6,705.5 GiB of memory" in line
        assert "--" not in line.split("declares")[1]  # names no option that does not exist
    assert not (tmp_path / "h.h5").exists()


def test_declared_size_checked_against_available_memory(tmp_path, monkeypatch):
    path = tmp_path / "big.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", shape=(3_000_000_000, 28, 28), dtype=np.uint8,
                         chunks=(64, 28, 28))
    monkeypatch.setattr(sources, "available_memory", lambda: 8 * 2**30)
    with pytest.raises(InputError, match=r"a: .* 67\.1 GiB of memory, but only 8\.0 GiB"):
        gd.find_overlaps(f"{path}:/x")
    monkeypatch.setattr(sources, "available_memory", lambda: 100 * 2**30)
    assert sources.as_source(f"{path}:/x", "a").count == 3_000_000_000


def _as_nobody(code: str) -> subprocess.CompletedProcess:
    # imports first (the interpreter's files may be closed to other users), then drop root
    script = textwrap.dedent("""
        import os, sys
        import h5py
        from gpudedup import cli
        os.setgid(65534)
        os.setuid(65534)
    """) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)


def _unreadable(folder) -> str:
    path = os.path.join(folder, "secret.h5")
    with h5py.File(path, "w") as f:
        f["train"] = np.zeros((3, 8, 8), np.uint8)
    os.chmod(path, 0)
    return path


def test_permission_denied(tmp_path, capsys):
    if os.geteuid() != 0:
        path = _unreadable(tmp_path)
        line = one_error_line(*run(capsys, "scan", path)[::2])
        assert line == (f"gpudedup: error: FILE: permission denied reading {path!r}; give "
                        "your user read access to it (chmod, chown) or run as a user who has it")
        return
    # root reads everything: run the command as "nobody", in a folder nobody can search
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        os.chmod(folder, 0o755)
        path = _unreadable(folder)
        done = _as_nobody(f"sys.exit(cli.main(['scan', {path!r}]))")
    if "Operation not permitted" in done.stderr and "setuid" in done.stderr:
        pytest.skip("cannot switch to the 'nobody' user here")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (f"gpudedup: error: FILE: permission denied reading {path!r};"
                                   " give your user read access to it (chmod, chown) or run as "
                                   "a user who has it")


def test_permission_errors_are_not_called_not_hdf5(tmp_path, monkeypatch):
    # the mapping itself, wherever the tests run (root reads files of mode 000)
    path = tmp_path / "data.h5"
    path.write_bytes(b"x")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Unable to synchronously open file (unable to open file: "
                                  "errno = 13, error message = 'Permission denied')")

    monkeypatch.setattr(h5py, "File", refuse)
    with pytest.raises(FileError, match="permission denied reading"):
        sources.open_h5_file(str(path), "FILE")


@pytest.mark.skipif(os.environ.get("HDF5_USE_FILE_LOCKING", "").upper() == "FALSE",
                    reason="HDF5 file locking is switched off here")
def test_file_locked_by_a_writer(tmp_path, capsys):
    path = tmp_path / "busy.h5"
    with h5py.File(path, "w") as f:
        f["train"] = np.zeros((3, 8, 8), np.uint8)
    writer = subprocess.Popen(
        [sys.executable, "-c", f"import h5py, sys, time\nf = h5py.File({str(path)!r}, 'a')\n"
                               "print('open', flush=True)\nsys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "open"
        line = one_error_line(*run(capsys, "scan", path)[::2])
    finally:
        writer.communicate("", timeout=30)
    assert "locked by another process (HDF5 file locking)" in line
    assert "close the writer, or set HDF5_USE_FILE_LOCKING=FALSE" in line
    assert "not an HDF5 file" not in line
    code, out, err = run(capsys, "scan", path, "--quiet")  # the writer is gone
    assert code == 0, err


@pytest.fixture
def good_file(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "good.h5"
    with h5py.File(path, "w") as f:
        f["train"] = rng.integers(0, 255, (200, 28, 28), dtype=np.uint8)
        f.create_dataset("zipped", data=rng.integers(0, 255, (200, 28, 28), dtype=np.uint8),
                         chunks=(50, 28, 28), compression="gzip")
        chunk = f["zipped"].id.get_chunk_info(1)
    return path, chunk.byte_offset


def test_truncated_file(good_file, tmp_path, capsys):
    path, _ = good_file
    cut = tmp_path / "cut.h5"
    cut.write_bytes(path.read_bytes()[:40_000])
    line = one_error_line(*run(capsys, "scan", cut)[::2])
    assert line.startswith(f"gpudedup: error: FILE: {str(cut)!r} is truncated: 40,000 bytes "
                           "where its header says")
    assert "not a valid HDF5 file" in line


@pytest.mark.parametrize("where,message", [
    ("superblock", "is not a valid HDF5 file: it is damaged (bad superblock"),
    ("metadata", "the file is damaged, not a valid HDF5 file"),
    ("chunk", "cannot read images 0 to 199 of"),
])
def test_damaged_file(good_file, tmp_path, capsys, where, message):
    path, chunk_offset = good_file
    data = bytearray(path.read_bytes())
    if where == "superblock":
        data[8:40] = b"\xff" * 32
    elif where == "metadata":
        data[200:1500] = np.random.default_rng(0).integers(0, 255, 1300, np.uint8).tobytes()
    else:
        data[chunk_offset + 100:chunk_offset + 400] = bytes(300)
    bad = tmp_path / "bad.h5"
    bad.write_bytes(bytes(data))
    split = "/zipped" if where == "chunk" else "/train"
    line = one_error_line(*run(capsys, "scan", bad, "--split", f"train={split}")[::2])
    assert message in line
    with pytest.raises(GpudedupError):
        gd.find_overlaps(f"{bad}:{split}")
