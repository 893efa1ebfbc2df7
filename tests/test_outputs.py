"""Output paths (issue 14): symlinks are written through, FIFOs and devices are never replaced,
`-` is standard output for text reports, and colliding or impossible outputs are refused before
any work. Every FIFO and link here lives in the test's own tmp_path."""

import json
import os
import stat
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

from gpudedup import cli
from gpudedup.errors import FileError, InputError
from gpudedup.fileio import check_outputs, write_text


def write_data(path, n=60):
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, (n, 16, 16), dtype=np.uint8)
    test = rng.integers(0, 256, (n // 2, 16, 16), dtype=np.uint8)
    test[0] = train[3]  # one leak
    with h5py.File(path, "w") as f:
        f.create_dataset("train", data=train)
        f.create_dataset("test", data=test)
    return path


@pytest.fixture
def data(tmp_path):
    return str(write_data(tmp_path / "data.h5"))


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


class Reader(threading.Thread):
    """Reads a FIFO to its end, as `cat fifo` would."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.data = path, b""
        self.start()

    def run(self):
        with open(self.path, "rb") as handle:
            self.data = handle.read()


def no_temps(folder):
    return [n for n in os.listdir(folder) if "gpudedup" in n]


def forbid_work(monkeypatch):
    # an output check must come before opening and hashing anything
    def fail(*args, **kwargs):
        raise AssertionError("the command started work before checking its outputs")

    monkeypatch.setattr(cli, "_open_inputs", fail)


# ---------------------------------------------------------------------------- symlinks


def test_symlinked_report_writes_the_target(data, tmp_path, capsys):
    target = tmp_path / "reports" / "r.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    code, _, err = run(capsys, "scan", data, "--json", link, "--quiet")
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert json.loads(target.read_text())["pairs"]
    assert no_temps(tmp_path) == [] and no_temps(target.parent) == []


def test_symlinked_clean_output_writes_the_target(data, tmp_path, capsys):
    target = tmp_path / "out" / "clean.h5"
    target.parent.mkdir()
    link = tmp_path / "clean.h5"
    link.symlink_to(target)  # dangling: the target is created
    code, _, err = run(capsys, "clean", data, "-o", link, "--quiet", "--max-removed", "1")
    assert code == 0, err
    assert link.is_symlink()
    with h5py.File(target) as f:
        assert f["train"].shape[0] == 59 and f["test"].shape[0] == 30
    assert no_temps(target.parent) == []


# ------------------------------------------------------------------------------- FIFOs


def test_fifo_report_is_streamed_not_replaced(data, tmp_path, capsys):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = Reader(fifo)
    code, _, err = run(capsys, "scan", data, "--json", fifo, "--quiet")
    reader.join(10)
    assert code == 0, err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert json.loads(reader.data)["pairs"]
    assert no_temps(tmp_path) == []


def test_dev_stdout_style_link_to_a_fifo(data, tmp_path, capsys):
    # like /dev/stdout -> /proc/self/fd/1 -> pipe: the link and the pipe both stay
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "stdout"
    link.symlink_to(fifo)
    reader = Reader(fifo)
    code, _, err = run(capsys, "scan", data, "--csv", link, "--quiet")
    reader.join(10)
    assert code == 0, err
    assert link.is_symlink() and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert reader.data.decode().startswith("schema_version") or b"," in reader.data
    assert no_temps(tmp_path) == []


def test_dev_stdout_style_link_to_a_file(data, tmp_path, capsys):
    target = tmp_path / "captured.html"
    target.write_text("")
    link = tmp_path / "stdout"
    link.symlink_to(target)
    code, _, err = run(capsys, "scan", data, "--html", link, "--quiet")
    assert code == 0, err
    assert link.is_symlink() and "<html" in target.read_text().lower()


@pytest.mark.parametrize("command", ["clean", "hash"])
def test_hdf5_output_to_a_fifo_is_refused(data, tmp_path, capsys, monkeypatch, command):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    forbid_work(monkeypatch)
    code, _, err = run(capsys, command, data, "-o", fifo)
    assert code == 2
    assert "-o" in err and str(fifo) in err and "FIFO" in err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


# ------------------------------------------------------------------------ standard output


def test_dash_writes_the_report_to_stdout_alone(data, capsys):
    code, out, err = run(capsys, "scan", data, "--json", "-")
    assert code == 0, err
    assert json.loads(out)["pairs"]  # nothing but the report on stdout
    assert "found splits" in err or "leaks" in err
    assert not os.path.exists("-")


@pytest.mark.parametrize("command", ["clean", "hash"])
def test_dash_is_refused_for_hdf5(data, capsys, monkeypatch, command):
    forbid_work(monkeypatch)
    code, _, err = run(capsys, command, data, "-o", "-")
    assert code == 2 and "-o" in err and "standard output" in err
    assert not os.path.exists("-")


def test_two_reports_on_stdout_are_refused(data, capsys, monkeypatch):
    forbid_work(monkeypatch)
    code, _, err = run(capsys, "scan", data, "--json", "-", "--csv", "-")
    assert code == 2 and "--csv" in err and "--json" in err


# --------------------------------------------------------------------------- collisions


def test_two_reports_on_one_path_are_refused(data, tmp_path, capsys, monkeypatch):
    forbid_work(monkeypatch)
    out = tmp_path / "r.out"
    code, _, err = run(capsys, "scan", data, "--json", out, "--csv", out)
    assert code == 2 and "--csv" in err and "--json" in err and str(out) in err
    assert not out.exists()


def test_clean_output_and_report_on_one_path(data, tmp_path, capsys, monkeypatch):
    forbid_work(monkeypatch)
    out = tmp_path / "x.h5"
    code, _, err = run(capsys, "clean", data, "-o", out, "--json", out)
    assert code == 2 and "-o" in err and "--json" in err
    assert not out.exists()


@pytest.mark.parametrize("how", ["symlink", "hardlink"])
def test_collision_through_links(data, tmp_path, capsys, monkeypatch, how):
    forbid_work(monkeypatch)
    first = tmp_path / "r.json"
    first.write_text("keep")
    other = tmp_path / "other"
    (other.symlink_to if how == "symlink" else other.hardlink_to)(first)
    code, _, err = run(capsys, "scan", data, "--json", first, "--html", other)
    assert code == 2 and "--json" in err and "--html" in err
    assert first.read_text() == "keep"


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink", "dotted"])
@pytest.mark.parametrize("option", ["--json", "--csv"])
def test_output_equal_to_the_input_is_refused(data, tmp_path, capsys, monkeypatch, how,
                                               option):
    forbid_work(monkeypatch)
    before = Path(data).read_bytes()
    if how == "same":
        path = data
    elif how == "dotted":
        path = os.path.join(os.path.dirname(data), ".", os.path.basename(data))
    else:
        path = tmp_path / "alias.h5"
        (path.symlink_to if how == "symlink" else path.hardlink_to)(data)
    outputs = {"-o": tmp_path / "c.h5", option: path}
    code, _, err = run(capsys, "clean", data, *[x for kv in outputs.items() for x in kv])
    assert code == 2 and option in err and "input" in err
    assert Path(data).read_bytes() == before


@pytest.mark.parametrize("command,option", [("scan", "--json"), ("clean", "-o")])
def test_output_equal_to_the_hash_cache_is_refused(data, tmp_path, capsys, monkeypatch,
                                                   command, option):
    cache = tmp_path / "h.h5"
    cache.write_bytes(b"cache")
    forbid_work(monkeypatch)
    outputs = {"-o": tmp_path / "c.h5"} if command == "clean" else {}
    outputs[option] = cache
    code, _, err = run(capsys, command, data, "--hashes", cache,
                       *[x for kv in outputs.items() for x in kv])
    assert code == 2 and option in err and "--hashes" in err
    assert cache.read_bytes() == b"cache"


# ----------------------------------------------------------------------- directories


@pytest.mark.parametrize("option", ["--json", "--csv", "--html", "-o"])
def test_missing_directory_fails_first_naming_the_path(data, tmp_path, capsys, monkeypatch,
                                                       option):
    forbid_work(monkeypatch)
    path = tmp_path / "nowhere" / "r.out"
    argv = ["clean", data, "-o", tmp_path / "c.h5"] if option != "-o" else ["clean", data]
    code, _, err = run(capsys, *argv, option, path)
    assert code == 2
    assert option in err and str(path) in err and "does not exist" in err
    assert ".tmp" not in err


def test_directory_as_output_is_refused(data, tmp_path, capsys, monkeypatch):
    forbid_work(monkeypatch)
    code, _, err = run(capsys, "scan", data, "--json", tmp_path)
    assert code == 2 and "--json" in err and "directory" in err


def test_read_only_directory_is_refused(data, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.system(f"mount -t tmpfs -o size=1m,ro tmpfs {folder} 2>/dev/null") != 0:
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    try:
        forbid_work(monkeypatch)
        code, _, err = run(capsys, "scan", data, "--json", folder / "r.json")
        assert code == 2 and "--json" in err and "read-only" in err
    finally:
        os.system(f"umount {folder}")


# --------------------------------------------------------------------------------- API


def test_check_outputs_api(tmp_path):
    a = tmp_path / "a.json"
    check_outputs({"--json": a, "--csv": tmp_path / "b.csv", "--html": None}, [tmp_path / "i"])
    with pytest.raises(InputError, match="same file"):
        check_outputs({"--json": a, "--csv": str(a)})
    with pytest.raises(InputError, match="input"):
        check_outputs({"--json": a}, {"FILE": a})
    with pytest.raises(FileError, match="does not exist"):
        check_outputs({"--json": tmp_path / "x" / "y"})
    with pytest.raises(InputError, match="standard output"):
        check_outputs({"-o": "-"}, hdf5={"-o"})


def test_write_text_keeps_a_link_and_its_target_mode(tmp_path):
    target = tmp_path / "t.txt"
    link = tmp_path / "l.txt"
    link.symlink_to(target)
    write_text(link, "hello")
    assert link.is_symlink() and target.read_text() == "hello"
