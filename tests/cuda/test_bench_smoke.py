"""``python -m bench --backend cuda --smoke`` runs to the end under the CUDA simulator and writes
its JSON, so that the first session with a GPU gets figures, not tracebacks; the peers that need
a real GPU are listed as skipped, with the reason."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpudedup.backend import cuda_simulated

REPO = Path(__file__).resolve().parents[2]
#: the smoke run takes about 20 s on 2 busy cores; the limit leaves room for a slow CI box
TIMEOUT_S = 120


@pytest.mark.skipif(not cuda_simulated(), reason="the smoke run is for the CUDA simulator")
def test_cuda_bench_smoke(tmp_path):
    pytest.importorskip("imagehash")
    pytest.importorskip("faiss")
    pytest.importorskip("skimage")
    out = tmp_path / "smoke.json"
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bench", "--backend", "cuda", "--smoke",
                           "--out", str(out)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT_S)
    seconds = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr[-4000:]
    record = json.loads(out.read_text())
    assert record["backend"] == "cuda" and record["smoke"] and record["repeat"] == 1
    for key in ("machine", "versions", "phash", "range_search", "section_seconds",
                "table_markdown", "skipped", "gpu_skipped"):
        assert key in record
    assert record["gpu"] is None and "NUMBA_ENABLE_CUDASIM" in record["gpu_skipped"]
    skipped = {**record["skipped"]["phash"], **record["skipped"]["range_search"]}
    assert {"CuPy brute force", "floor: popcount kernel", "faiss GPU k-NN",
            "floor: host-to-device copy", "gpudedup phash (cuda, device memory)"} <= set(skipped)
    for row in record["phash"]:
        rec = row["methods"]["gpudedup phash (cuda, host memory)"]
        assert rec["bit_identical"], row
    results = record["range_search"]["results"]
    assert [row["threshold"] for row in results] == [0, 4, 8]
    for row in results:
        assert row["reference"] == "faiss IndexBinaryFlat (cpu)"
        for name in ("gpudedup hamming_pairs brute (cuda)", "gpudedup hamming_pairs mih (cuda)",
                     "gpudedup find_overlaps (cuda)"):
            assert row["methods"][name]["same_pairs"], (row["threshold"], name)
    assert "Not measured on this machine" in proc.stdout
    assert seconds < 60, f"the smoke bench took {seconds:.0f} s"
