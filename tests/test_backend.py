"""Backend choice: names, auto, and the error when no GPU can run the cuda backend."""

import numpy as np
import pytest

import gpudedup as gd
from gpudedup import backend


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match=r"backend: expected one of auto, cpu, cuda, got 'gpu'"):
        gd.phash(np.zeros((2, 8, 8), np.uint8), backend="gpu")


def test_auto_without_device_is_cpu(monkeypatch):
    monkeypatch.setattr(backend, "cuda_available", lambda: False)
    assert backend.resolve("auto", np.zeros(3)).name == "cpu"


def test_cuda_without_device_says_how_to_install(monkeypatch):
    monkeypatch.setattr(backend, "cuda_available", lambda: False)
    monkeypatch.setattr(backend, "cuda_unavailable_reason", lambda: "no driver: install it")
    with pytest.raises(gd.GpudedupError, match=r"backend: 'cuda' cannot run here: no driver"):
        gd.find_overlaps(np.zeros((2, 8, 8), np.uint8), backend="cuda")


def test_cli_reports_missing_gpu_without_traceback(monkeypatch, capsys):
    from gpudedup import cli

    monkeypatch.setattr(backend, "cuda_available", lambda: False)
    monkeypatch.setattr(backend, "cuda_unavailable_reason",
                        lambda: 'CuPy is not installed: pip install "gpudedup[cuda12]"')
    assert cli.main(["demo", "--backend", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpudedup: error: backend: 'cuda' cannot run here: ")
    assert 'pip install "gpudedup[cuda12]"' in err
    assert "Traceback" not in err
