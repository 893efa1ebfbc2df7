"""gd.info() and `gpudedup info`: what a bug report needs, and why the cuda backend cannot run.

The driver cases (CuPy installed but no driver, a driver too old, no device, a driver that
hangs) run in subprocesses against a fake ``cupy`` package that raises what CuPy raises.
"""

import importlib
import json
import os
import subprocess
import sys
import textwrap

import pytest

import gpudedup as gd
from gpudedup import backend, cli

info_module = importlib.import_module("gpudedup.diagnostics")  # gd.info is the function

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = os.pathsep.join(
        [p for p in (extra.pop("path", None), ROOT, env.get("PYTHONPATH")) if p])
    env.update(extra)
    return env


def _run(*args, timeout=120, **env):
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, env=_env(**env), cwd=ROOT)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _info_json(**env):
    done = _run("-m", "gpudedup.cli", "info", "--json", **env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


FAKE_RUNTIME = '''
import os
import time


class CUDARuntimeError(RuntimeError):
    """What cupy_backends.cuda.api.runtime.CUDARuntimeError looks like."""


ERRORS = {
    "no-driver": "cudaErrorInsufficientDriver: CUDA driver version is insufficient for "
                 "CUDA runtime version",
    "old-driver": "cudaErrorInsufficientDriver: CUDA driver version is insufficient for "
                  "CUDA runtime version",
    "no-device": "cudaErrorNoDevice: no CUDA-capable device is detected",
}
MODE = os.environ["FAKE_CUPY"]


def driverGetVersion():
    return {"no-driver": 0, "old-driver": 12020}.get(MODE, 12080)


def runtimeGetVersion():
    return 13000 if MODE == "old-driver" else 12090


def getDeviceCount():
    if MODE == "hang":
        time.sleep(3600)
    raise CUDARuntimeError(ERRORS[MODE])
'''


@pytest.fixture
def fake_cupy(tmp_path):
    """A folder holding a fake CuPy (with its distribution metadata) to put on sys.path."""
    pkg = tmp_path / "cupy"
    (pkg / "cuda").mkdir(parents=True)
    (pkg / "__init__.py").write_text('__version__ = "13.3.0"\nfrom . import cuda\n')
    (pkg / "cuda" / "__init__.py").write_text("from . import runtime\n")
    (pkg / "cuda" / "runtime.py").write_text(textwrap.dedent(FAKE_RUNTIME))
    meta = tmp_path / "cupy_cuda12x-13.3.0.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: cupy-cuda12x\nVersion: 13.3.0\n")
    return str(tmp_path)


def test_info_here_is_plain_json_with_every_item():
    report = gd.info()
    assert json.loads(json.dumps(report)) == report
    assert report["gpudedup"] == gd.__version__
    assert set(report["packages"]) == {"numpy", "numba", "numba-cuda", "cupy", "h5py", "hdf5",
                                       "pillow", "tqdm"}
    assert report["packages"]["numpy"] and report["packages"]["hdf5"]
    assert report["cpu_cores"]["logical"] >= 1
    assert report["numba_cache"]
    assert report["backends"]["cpu"] == {"available": True, "reason": None,
                                         "threads": report["backends"]["cpu"]["threads"]}
    cuda = report["backends"]["cuda"]
    assert cuda["available"] == backend.cuda_available()
    if not cuda["available"]:
        assert isinstance(cuda["reason"], str) and cuda["reason"]


def test_without_cupy_the_reason_names_the_extra(monkeypatch):
    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM", raising=False)
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` fails as if not installed
    cuda = gd.info()["backends"]["cuda"]
    assert cuda["available"] is False
    assert cuda["reason"].startswith("CuPy is not installed")
    assert 'pip install "gpudedup[cuda12]"' in cuda["reason"]
    assert 'pip install "gpudedup[cuda13]"' in cuda["reason"]
    assert backend.cuda_available() is False


def test_command_prints_aligned_lines(capsys):
    assert cli.main(["info"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    labels = [line.split("  ")[0] for line in lines]
    assert labels[:4] == ["gpudedup", "python", "platform", "cpu"]
    assert "backend cpu" in labels and "backend cuda" in labels
    assert "numba cache" in labels
    column = len(lines[0]) - len(lines[0][len("gpudedup"):].lstrip())
    assert all(line[column - 2:column] == "  " and line[column] != " " for line in lines)
    assert err == ""


def test_command_json_parses(capsys):
    assert cli.main(["info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(report["backends"]) == ["cpu", "cuda"]


def test_command_in_a_fresh_process_has_no_traceback():
    done = _run("-m", "gpudedup.cli", "info")
    assert done.returncode == 0
    assert "backend cuda" in done.stdout


def test_simulator_is_named():
    cuda = _info_json(NUMBA_ENABLE_CUDASIM="1")["backends"]["cuda"]
    assert cuda["available"] is True and cuda["simulated"] is True
    assert "NUMBA_ENABLE_CUDASIM=1" in cuda["note"] and "simulator" in cuda["note"]
    text = _run("-m", "gpudedup.cli", "info", NUMBA_ENABLE_CUDASIM="1").stdout
    assert "available, simulated: numba's CUDA simulator is on" in text


@pytest.mark.parametrize("mode, says", [
    ("no-driver", "CuPy is installed but no NVIDIA driver was found (libcuda.so cannot be loaded)"),
    ("old-driver", 'the NVIDIA driver supports CUDA 12.2 but this CuPy needs CUDA 13.0: update '
                   'the driver, or install the build for this driver: pip install '
                   '"gpudedup[cuda12]"'),
    ("no-device", "the NVIDIA driver is installed but sees no GPU"),
])
def test_cupy_without_a_usable_driver_is_explained(fake_cupy, mode, says):
    report = _info_json(path=fake_cupy, FAKE_CUPY=mode)
    assert report["packages"]["cupy"] == "cupy-cuda12x 13.3.0"
    cuda = report["backends"]["cuda"]
    assert cuda["available"] is False
    assert cuda["reason"].startswith(says), cuda["reason"]
    text = _run("-m", "gpudedup.cli", "info", path=fake_cupy, FAKE_CUPY=mode).stdout
    assert f"not available: {says}" in text


def test_a_hanging_driver_does_not_hang_the_report(fake_cupy):
    script = ("import importlib, json; m = importlib.import_module('gpudedup.diagnostics'); "
              "m.PROBE_TIMEOUT = 0.5; print(json.dumps(m.info()))")
    done = _run("-c", script, timeout=60, path=fake_cupy, FAKE_CUPY="hang")
    assert done.returncode == 0, done.stderr
    cuda = json.loads(done.stdout)["backends"]["cuda"]
    assert cuda["available"] is False
    assert cuda["reason"].startswith("the CUDA driver did not answer within 0.5 s")


def test_an_unforeseen_error_is_reported_not_raised(monkeypatch):
    def broken():
        raise ValueError("driver said something odd")

    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM", raising=False)
    monkeypatch.setattr(backend, "cuda_unavailable_reason", broken)
    cuda = gd.info()["backends"]["cuda"]
    assert cuda["available"] is False
    assert cuda["reason"] == "probing the GPU raised ValueError: driver said something odd"
    assert backend.cuda_available() is False


class _FakeRuntime:
    def getDeviceCount(self):
        return 1

    def getDeviceProperties(self, index):
        return {"name": b"NVIDIA Fake 80GB", "major": 9, "minor": 0}

    def memGetInfo(self):
        return 70 * 2**30, 80 * 2**30

    def getDevice(self):
        return 0

    def driverGetVersion(self):
        return 12080

    def runtimeGetVersion(self):
        return 12090


class _FakeDevice:
    def __init__(self, index):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_gpu_is_described(monkeypatch, capsys):
    fake = type(sys)("cupy")
    fake.cuda = type(sys)("cupy.cuda")
    fake.cuda.runtime, fake.cuda.Device = _FakeRuntime(), _FakeDevice
    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM", raising=False)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(backend, "cuda_unavailable_reason", lambda: None)
    cuda = gd.info()["backends"]["cuda"]
    assert cuda == {"available": True, "reason": None, "simulated": False, "note": None,
                    "gpus": [{"index": 0, "name": "NVIDIA Fake 80GB", "memory_bytes": 80 * 2**30,
                              "free_bytes": 70 * 2**30, "compute_capability": "9.0"}],
                    "current_device": 0, "driver": "12.8", "runtime": "12.9"}
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "gpu 0         NVIDIA Fake 80GB, 80.0 GiB (70.0 GiB free), compute capability 9.0" \
        in out
    assert "cuda driver   12.8" in out and "cuda runtime  12.9" in out
    assert "backend cuda  available\n" in out


def test_cuda_version_reads_cuda_encoding():
    assert backend.cuda_version(12040) == "12.4"
    assert backend.cuda_version(13000) == "13.0"
    assert info_module.PROBE_TIMEOUT > 0
