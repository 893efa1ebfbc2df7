"""What a run leaves behind: the machine record, the markdown table and the JSON file
(its layout is in bench/README.md)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from pathlib import Path

import numpy as np

from bench.peers import pinned_copy, synchronize
from bench.timing import round_robin

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
SCHEMA_VERSION = 1

# ----------------------------------------------------------------------------- environment


def machine_info() -> dict:
    """CPU, memory, threads and library versions of this run."""
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "logical_cpus": os.cpu_count()}
    if hasattr(os, "sched_getaffinity"):
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        for line in text.splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in text.splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                info["avx2"] = "avx2" in flags
                info["avx512f"] = "avx512f" in flags
                break
    except OSError:
        info["cpu_model"] = platform.processor() or "unknown"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    info["memory_gib"] = round(int(line.split()[1]) / 2**20, 1)
                    break
    except OSError:
        pass
    import numba

    info["numba_threads"] = numba.get_num_threads()
    try:
        import faiss

        info["faiss_omp_threads"] = faiss.omp_get_max_threads()
    except ImportError:
        pass
    return info


def gpu_info() -> dict:
    """The GPU, and two copy floors measured now: device-to-device and pinned host-to-device."""
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    size = 1 << 30
    src, dst = cupy.empty(size, cupy.uint8), cupy.empty(size, cupy.uint8)
    host, _ = pinned_copy(np.zeros(size, np.uint8))

    def device_copy():
        dst[...] = src
        synchronize()

    def host_to_device():
        dst.set(host)
        synchronize()

    synchronize()
    times = round_robin({"device_copy": device_copy, "host_to_device": host_to_device}, 5)
    # a device copy reads and writes every byte
    info = {"device_copy_gb_per_s": round(2 * size / statistics.median(times["device_copy"])
                                          / 1e9, 1),
            "host_to_device_gb_per_s": round(size / statistics.median(times["host_to_device"])
                                             / 1e9, 1)}
    info["name"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    info["memory_gib"] = round(props["totalGlobalMem"] / 2**30, 1)
    info["cupy"] = cupy.__version__
    return info


def load_average() -> float | None:
    # other work on a shared machine shows here; ratios hold up, absolute figures do not
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def versions() -> dict:
    """Versions of gpudedup and of every peer library."""
    import importlib

    out = {}
    for module, label in (("gpudedup", "gpudedup"), ("numpy", "numpy"), ("numba", "numba"),
                          ("llvmlite", "llvmlite"), ("faiss", "faiss"),
                          ("imagehash", "imagehash"), ("PIL", "Pillow"), ("scipy", "scipy"),
                          ("skimage", "scikit-image")):
        try:
            out[label] = importlib.import_module(module).__version__
        except (ImportError, AttributeError):
            out[label] = None
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "gpudedup", "kernels"],
                               cwd=REPO, text=True, capture_output=True,
                               check=True).stdout.strip()
        out["git_commit"] = head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        out["git_commit"] = None
    return out


# ----------------------------------------------------------------------------------- table


def _num(x: float) -> str:
    """A rate or count, readable: 1,234 / 12.3k / 4.56M / 7.89G."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def _ratio(x: float) -> str:
    return f"{x:.3g}x"


def markdown(report: dict) -> str:
    """The results as markdown tables; on a GPU each figure also as a multiple of its floor."""
    m = report["machine"]
    floors = any("times_floor" in rec for row in report["phash"]
                 for rec in row["methods"].values())
    mode = " (smoke)" if report.get("smoke") else " (quick)" if report["quick"] else ""
    lines = [
        f"gpudedup {report['versions']['gpudedup']} benchmark, backend `{report['backend']}`"
        f"{mode}: {m.get('cpu_model', '?')}, "
        f"{m.get('usable_cpus', m['logical_cpus'])} CPUs, {report['date'][:10]}; "
        f"median of {report['repeat']} repeats (round-robin).",
        "",
    ]
    gpu = report.get("gpu")
    if gpu:
        lines += [f"GPU: {gpu['name']} ({gpu['memory_gib']} GiB); measured device-to-device "
                  f"copy {gpu['device_copy_gb_per_s']} GB/s, pinned host-to-device "
                  f"{gpu['host_to_device_gb_per_s']} GB/s. \"x floor\" is seconds over the "
                  "floor's seconds (the host-to-device copy of the same images; a popcount "
                  "sweep of all pairs writing nothing).", ""]
    lines += [
        "Perceptual hash, uint8 crops of scikit-image photographs:",
        "",
        "| size | method | images | seconds | images/s | vs imagehash | bit-identical |"
        + (" x floor |" if floors else ""),
        "|---|---|---:|---:|---:|---:|---|" + ("---:|" if floors else ""),
    ]
    for row in report["phash"]:
        for name, rec in row["methods"].items():
            if name == row["reference"]:
                ident = "reference"
            elif "bit_identical" not in rec:
                ident = "floor"
            else:
                ident = (f"{'yes' if rec['bit_identical'] else 'NO'} "
                         f"({rec['compared'] - rec['mismatches']:,}/{rec['compared']:,})")
            lines.append(f"| {row['side']}x{row['side']} | {name} | {rec['images']:,} | "
                         f"{rec['seconds']:.3g} | {_num(rec['images_per_s'])} | "
                         f"{_ratio(rec['ratio_vs_reference'])} | {ident} |"
                         + (f" {rec['times_floor']:.2f} |" if floors else ""))
    s = report["range_search"]
    reference = s["results"][0]["reference"].split(" ")[0] if s["results"] else "faiss"
    floors = any("times_floor" in rec for row in s["results"] for rec in row["methods"].values())
    lines += [
        "",
        f"Hamming range search, {s['n_a']:,} x {s['n_b']:,} phash codes with planted near "
        "duplicates (pairs/s = N*M/seconds):",
        "",
        f"| r | method | pairs | seconds | pairs/s | vs {reference} | same pairs |"
        + (" x floor |" if floors else ""),
        "|---:|---|---:|---:|---:|---:|---|" + ("---:|" if floors else ""),
    ]
    for row in s["results"]:
        for name, rec in row["methods"].items():
            label = name
            if name == "gpudedup hamming_pairs auto":
                plan = row["auto_plan"]
                label += (f" (-> mih, m={plan['substrings']})" if plan["strategy"] == "mih"
                          else f" (-> {plan['strategy']})")
            if rec["extrapolated"]:
                label += f" [extrapolated from {rec['rows_timed']:,} rows]"
            pairs = (f"{rec['pairs']:,}" if rec["pairs"] is not None
                     else f"({rec['pairs_in_rows_timed']:,} in rows timed)")
            same = "reference" if name == row["reference"] else (
                "yes" if rec["same_pairs"] else "NO")
            lines.append(f"| {row['threshold']} | {label} | {pairs} | {rec['seconds']:.3g} | "
                         f"{_num(rec['pairs_per_s'])} | {_ratio(rec['ratio_vs_reference'])} | "
                         f"{same} |" + (f" {rec['times_floor']:.2f} |" if floors else ""))
    lines.append("")
    planted = s["codes"]["same_base_pairs_between_a_and_b"]
    for row in s["results"]:
        total = row["pairs_same_base"] + row["pairs_different_base"]
        lines.append(f"r={row['threshold']}: {row['pairs_same_base']:,} of the {total:,} pairs "
                     f"join two variants of one base image ({planted:,} such A x B pairs "
                     f"exist); {row['pairs_different_base']:,} join different bases.")
    skipped = report.get("skipped") or {}
    notes = [(section, name, why) for section, names in skipped.items()
             for name, why in names.items()]
    if notes:
        lines += ["", "Not measured on this machine:"]
        lines += [f"- {section}: {name}: {why}" for section, name, why in notes]
    if report.get("gpu_skipped"):
        lines += [f"- GPU record and copy floors: {report['gpu_skipped']}"]
    load = report["load_average_1min"]
    lines += ["", f"Total run time {report['total_seconds']:.0f} s; 1-minute load average "
              f"{load['start']} at the start, {load['end']} at the end "
              f"({m.get('usable_cpus', m['logical_cpus'])} CPUs)."]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ file


def default_out_path(backend: str, quick: bool, gpu: dict | None, smoke: bool = False) -> Path:
    """bench/results/<backend>[-quick|-smoke].json; on a GPU cuda-<gpu>[-quick].json, e.g.
    cuda-nvidia-h100-80gb-hbm3.json."""
    tag = backend
    if gpu is not None:
        tag += "-" + "-".join("".join(c if c.isalnum() else " " for c in gpu["name"].lower())
                              .split())
    return RESULTS_DIR / f"{tag}{'-smoke' if smoke else '-quick' if quick else ''}.json"


def write(report: dict, path: Path) -> None:
    """The report as indented JSON at ``path`` (its folder made if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
