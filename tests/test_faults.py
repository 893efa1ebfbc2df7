"""Faults while writing (issue 14): temporary names carry the process id, leftovers of dead
runs go, a running one's stay; SIGTERM and SIGINT remove the temporary file and exit non-zero; a
full disk is one clear error, never a segfault. Small tmpfs mounts stand in for a full disk."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

from gpudedup import cli, fileio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_data(path, n=200, side=16):
    rng = np.random.default_rng(2)
    with h5py.File(path, "w") as f:
        f.create_dataset("train", data=rng.integers(0, 256, (n, side, side), dtype=np.uint8))
        f.create_dataset("test", data=rng.integers(0, 256, (n // 4, side, side), dtype=np.uint8))
    return str(path)


@pytest.fixture
def data(tmp_path):
    return write_data(tmp_path / "data.h5")


def temps(folder):
    return sorted(n for n in os.listdir(folder) if "gpudedup" in n)


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def small_disk(tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    if os.system(f"mount -t tmpfs -o size=2m tmpfs {folder} 2>/dev/null") != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root and mount permission)")
    yield folder
    os.system(f"umount {folder}")


# ------------------------------------------------------------------ temporary names


def test_temporary_name_carries_the_pid(data, tmp_path, monkeypatch, capsys):
    seen = []
    real = os.replace

    def spy(src, dst, *args, **kwargs):
        seen.append(os.path.basename(src))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", spy)
    assert cli.main(["clean", data, "-o", str(tmp_path / "out.h5"), "--quiet"]) == 0
    assert seen and seen[-1].startswith(f".out.h5.gpudedup-{os.getpid()}-")
    assert seen[-1].endswith(".tmp")


def test_leftovers_of_dead_runs_go_and_a_running_ones_stay(data, tmp_path, capsys):
    stale = tmp_path / f".out.h5.gpudedup-{dead_pid()}-0123abcd.h5.tmp"
    stale.write_bytes(b"x" * 1000)
    other = tmp_path / f".other.h5.gpudedup-{dead_pid()}-0123abcd.h5.tmp"  # another target
    other.write_bytes(b"x")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        mine = tmp_path / f".out.h5.gpudedup-{os.getpid()}-0123abcd.h5.tmp"
        theirs = tmp_path / f".out.h5.gpudedup-{sleeper.pid}-4567cdef.h5.tmp"
        mine.write_bytes(b"a")
        theirs.write_bytes(b"b")
        assert cli.main(["clean", data, "-o", str(tmp_path / "out.h5"), "--quiet"]) == 0
        assert not stale.exists() and other.exists()
        assert mine.read_bytes() == b"a" and theirs.read_bytes() == b"b"
    finally:
        sleeper.kill()
        sleeper.wait()


# ------------------------------------------------------------------------------ signals

# a `gpudedup clean` made slow at a chosen place, so that a signal finds it mid-write
SLOW_CLEAN = """
import os, sys, time
import h5py
where = sys.argv[1]
if where == "python":      # between HDF5 calls: a long copy loop
    real = h5py.Group.create_dataset
    def slow(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        time.sleep(0.5)
        return out
    h5py.Group.create_dataset = slow
else:                      # inside HDF5's write callbacks (signals land inside HDF5)
    real = os.pwrite
    def slow(*args):
        time.sleep(0.05)
        return real(*args)
    os.pwrite = slow
from gpudedup.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("signum,status,where", [
    (signal.SIGTERM, 143, "python"),
    (signal.SIGTERM, 143, "callback"),
    (signal.SIGINT, 130, "callback"),
])
def test_signal_during_clean_removes_the_temporary_file(data, tmp_path, where, signum,
                                                        status):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "out.h5"
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SLOW_CLEAN), where, "clean", data,
         "-o", str(out), "--quiet"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not temps(out_dir):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no temporary file appeared"
            time.sleep(0.01)
        time.sleep(0.1)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == status, err
    assert "interrupted" in err
    assert "Exception ignored" not in err and "Traceback" not in err
    assert temps(out_dir) == []
    assert not out.exists()


def test_interrupt_swallowed_by_a_finaliser_still_fails(monkeypatch, capsys):
    # "Exception ignored in ...: KeyboardInterrupt", then exit 0: never again
    class Finaliser:
        def __del__(self):
            raise KeyboardInterrupt

    def command(args):
        Finaliser()  # dropped at once: the interrupt goes to sys.unraisablehook
        return 0

    monkeypatch.setattr(cli, "_cmd_demo", command)
    parser = cli.build_parser

    def build():
        p = parser()
        p._subparsers._group_actions[0].choices["demo"].set_defaults(run=command)
        return p

    monkeypatch.setattr(cli, "build_parser", build)
    code = cli.main(["demo", "--quiet"])
    err = capsys.readouterr().err
    assert code == 130 and "Exception ignored" not in err
    assert fileio.interrupted() is None  # forgotten once the command is over


def test_no_rename_after_a_lost_interrupt(tmp_path):
    target = tmp_path / "r.json"
    fileio.note_interrupt(signal.SIGTERM)
    try:
        with pytest.raises(KeyboardInterrupt):
            fileio.write_text(target, "{}")
    finally:
        fileio.clear_interrupt()
    assert not target.exists() and temps(tmp_path) == []


# ---------------------------------------------------------------------------- disk full


def test_free_space_is_checked_before_writing(tmp_path, small_disk, capsys):
    data = write_data(tmp_path / "big.h5", n=12000)  # 3 MB of images, 2 MB of disk
    out = small_disk / "out.h5"
    code = cli.main(["clean", data, "-o", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "-o" in err and str(out) in err and "free" in err and "MiB" in err
    assert os.listdir(small_disk) == []


def test_report_on_a_full_disk(data, small_disk, capsys):
    (small_disk / "filler").write_bytes(b"\0" * ((2 << 20) - 4096))  # 4 KiB left
    out = small_disk / "r.html"
    code = cli.main(["scan", data, "--html", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "--html" in err and str(out) in err
    assert sorted(os.listdir(small_disk)) == ["filler"]


# the free-space estimate is only an estimate: when it misses, the write itself fills the disk
FULL_DISK = """
import sys
from gpudedup import fileio
fileio.check_free_space = lambda *args, **kwargs: None
from gpudedup.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("command", ["clean", "hash"])
def test_disk_full_during_the_write(tmp_path, small_disk, command):
    n = 12000 if command == "clean" else 200000
    data = write_data(tmp_path / "big.h5", n=n, side=16 if command == "clean" else 2)
    out = small_disk / "out.h5"
    proc = subprocess.run([sys.executable, "-c", FULL_DISK, command, data, "-o", str(out),
                           "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)  # not 139 (-11): no segfault
    assert "disk is full" in proc.stderr and str(out) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert os.listdir(small_disk) == []
