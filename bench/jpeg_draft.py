"""Does Pillow's JPEG draft mode (decoding at 1/2, 1/4 or 1/8 size) keep phash identical?

For folder input (the issue "Folders of image files") decoding is the cost, and Pillow can
decode a JPEG at reduced size (``Image.draft``), several times faster. This measures, on
photographs that scikit-image ships (cropped at random and saved as JPEG, quality 90, gray and
colour), whether ``imagehash.phash`` of the draft-decoded image equals ``imagehash.phash`` of
the fully decoded one, for drafts that keep at least 32, 64 and 128 pixels a side (phash
resizes to 32x32; the image's own mode kept), for grey made by the decoder at full size (as
``draft("L")`` does, the JPEG's Y channel instead of Pillow's RGB-to-L conversion), and how
much faster decoding plus hashing gets.

``python -m bench.jpeg_draft`` writes bench/results/jpeg-draft.json (no download beyond the
scikit-image wheel's own photos).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import log, report

#: scikit-image photos in the wheel (no download)
PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket", "page", "text", "moon",
          "coins", "clock", "grass", "gravel", "brick", "immunohistochemistry", "hubble_deep_field",
          "motorcycle")
#: the draft keeps at least this many pixels a side (None: full decode; "gray": full size,
#: decoded straight to grey)
DRAFT_SIDES = (None, "gray", 128, 64, 32)


def _photos() -> list[np.ndarray]:
    import skimage.data

    out = []
    for name in PHOTOS:
        try:
            img = getattr(skimage.data, "stereo_motorcycle" if name == "motorcycle" else name)()
        except Exception as exc:  # noqa: BLE001 - a photo the wheel does not ship: skipped
            log(f"  {name}: skipped ({type(exc).__name__})")
            continue
        img = img[0] if isinstance(img, tuple) else img
        if img.dtype != np.uint8:
            img = (255 * (img - img.min()) / max(1e-9, np.ptp(img))).astype(np.uint8)
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[..., :3]
        out.append(img)
    return out


def make_files(folder: Path, count: int, seed: int) -> list[Path]:
    """``count`` random crops (96 px a side up to the whole photo) saved as JPEG q90."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    photos = _photos()
    files = []
    for k in range(count):
        img = photos[k % len(photos)]
        h, w = img.shape[:2]
        ch = int(rng.integers(96, h + 1))
        cw = int(rng.integers(96, w + 1))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        path = folder / f"crop{k:05d}.jpg"
        Image.fromarray(np.ascontiguousarray(img[y:y + ch, x:x + cw])).save(path, quality=90)
        files.append(path)
    return files


def _hash(path: Path, side):
    import imagehash
    from PIL import Image

    with Image.open(path) as im:
        if side == "gray":  # full size, grey made by the decoder (its Y) instead of convert
            im.draft("L", im.size)
        elif side is not None:  # the smallest DCT scale keeping >= side a side, same mode
            im.draft(im.mode, (side, side))
        return imagehash.phash(im)


def measure(files: list[Path], repeat: int) -> dict:
    """Per draft side: identical hashes, the Hamming distances to the full decode, and the
    median seconds of decode + phash over all files."""
    full = [_hash(p, None) for p in files]
    out = {}
    for side in DRAFT_SIDES:
        seconds = []
        for _ in range(repeat):
            start = time.perf_counter()
            hashes = [_hash(p, side) for p in files]
            seconds.append(time.perf_counter() - start)
        distance = np.array([h - f for h, f in zip(hashes, full)])
        name = {None: "full", "gray": "grey from the decoder"}.get(side, f"draft >= {side} px")
        out[name] = {
            "identical": float(np.mean(distance == 0)),
            "mean_distance": float(distance.mean()),
            "max_distance": int(distance.max()),
            "distances": np.bincount(distance, minlength=1).tolist(),
            "seconds": float(np.median(seconds)),
        }
    base = out["full"]["seconds"]
    for row in out.values():
        row["speedup"] = base / row["seconds"]
    return out


def markdown(record: dict) -> str:
    lines = [f"JPEG draft mode, {record['files']} JPEG crops of scikit-image photos, "
             f"{record['machine'].get('cpu_model', '?')}:", "",
             "| decode | phash identical to full decode | mean / max distance | "
             "decode + phash s | speedup |", "|---|---:|---:|---:|---:|"]
    for name, row in record["results"].items():
        lines.append(f"| {name} | {row['identical']:.3f} | {row['mean_distance']:.2f} / "
                     f"{row['max_distance']} | {row['seconds']:.2f} | {row['speedup']:.2f}x |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp), args.files, args.seed)
        sizes = [p.stat().st_size for p in files]
        log(f"{len(files)} files, {sum(sizes) / 2**20:.1f} MB")
        results = measure(files, args.repeat)
    record = {"schema_version": report.SCHEMA_VERSION, "kind": "jpeg_draft",
              "files": len(files), "repeat": args.repeat, "machine": report.machine_info(),
              "versions": report.versions(), "results": results}
    record["table_markdown"] = markdown(record)
    out = args.out or report.RESULTS_DIR / "jpeg-draft.json"
    report.write(record, out)
    print(record["table_markdown"])
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
