"""Accuracy of near-duplicate search on real images: the public pipeline, beside imagehash.

Run from the repository root::

    python -m bench.accuracy                     # every installed real set, the whole grid:
                                                 # bench/results/accuracy-real.{json,md}, PNGs
    python -m bench.accuracy --quick             # sampled sets, a small grid, < 1 minute
    python -m bench.accuracy --set fashion --thresholds 8 --shifts 0
    python -m bench.accuracy --diagnostics       # candidate recall per radius, reference score
    python -m bench.accuracy --set synthetic     # the photograph-code table: accuracy.json

Real data (bench/realdata.py, bench/README.md "Accuracy on real data"): each base set is first
deduplicated (exact by bytes; near: pairs at phash distance <= 4 whose reference score says
copy), then copies of every edit kind (realdata.EDITS and the dihedral ones) are planted into a
second split. The default run measures the public call, ``gd.find_overlaps(base, copies)`` and
``gd.find_overlaps(base)``, at every setting of a grid (threshold, min_similarity, shifts,
invariant): per-edit recall, precision over all reported pairs, false pairs per 10,000 images,
wall time; ``imagehash.phash`` on the same images at its best thresholds; the recommended
settings by a stated rule, the false pairs and missed copies there as PNGs; and ``gd.scan`` of
Fashion-MNIST's 70,000 images from HDF5 (seconds, peak RSS) in a fresh process.

``--diagnostics`` keeps the previous measurements behind the verification design: candidate
recall of phash at radius r, the distinct-image pairs each radius brings, the reference score of
copies and distinct candidates, and the "augmented hashes" for shifted copies.

The synthetic mode (``--set synthetic``): the codes of the range-search benchmark
(bench/data.py, ``make_codes``): crops of scikit-image photographs (bases), each with 9
variants made by one transform, split at random into A and B; a pair found between A and B is
true when both codes come from the same base. gpudedup's phash is bit-identical to
``imagehash.phash`` (checked by the throughput benchmark and the tests), so these figures are
imagehash's too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bench import data, report

THRESHOLDS = tuple(range(0, 17))


def measure_synthetic(bases: int, seed: int) -> dict:
    """Precision and recall per threshold on ``bases`` base images with 10 variants each."""
    import gpudedup as gd

    sizes = data.Sizes(phash=(), search_bases=bases, numpy_budget_s=0.0, search_variants=10,
                       thresholds=THRESHOLDS)
    rng = np.random.default_rng(seed)
    levels = data.build_pyramid(data.load_photos())
    a, b, (base_a, base_b), info = data.make_codes(levels, sizes, rng)
    same_base_total = info["same_base_pairs_between_a_and_b"]
    ov = gd.find_overlaps(gd.HashSet.from_phash(a), gd.HashSet.from_phash(b),
                          threshold=max(THRESHOLDS), backend="cpu")
    same = base_a[ov.left] == base_b[ov.right]
    rows = []
    for r in THRESHOLDS:
        within = ov.distance <= r
        found, true = int(within.sum()), int((within & same).sum())
        per_kind = {kind: stats[f"within_{r}"]
                    for kind, stats in info["variant_distance_to_base"].items()}
        rows.append({"threshold": r, "pairs": found, "true_pairs": true,
                     "precision": true / found if found else 1.0,
                     "recall": true / same_base_total, "recall_per_transform": per_kind})
    return {"bases": bases, "seed": seed, "codes": info, "results": rows}


def markdown_synthetic(record: dict) -> str:
    kinds = list(record["codes"]["variant_distance_to_base"])
    lines = [
        f"Near-duplicate accuracy, {record['codes']['total_codes']:,} phash codes of "
        f"{record['bases']:,} photograph crops with 9 variants each, split into A and B:",
        "",
        "| r | pairs found | precision | recall | " + " | ".join(kinds) + " |",
        "|---:|---:|---:|---:|" + "---:|" * len(kinds),
    ]
    for row in record["results"]:
        per = " | ".join(f"{row['recall_per_transform'][k]:.2f}" for k in kinds)
        lines.append(f"| {row['threshold']} | {row['pairs']:,} | {row['precision']:.3f} | "
                     f"{row['recall']:.3f} | {per} |")
    return "\n".join(lines)


# ======================================================================= real data

SETS = ("fashion", "glyphs", "photos64", "photos128", "photos256")
RADII = tuple(range(0, 17))
CUTS = (6.0, 8.0, 10.0, 12.0)
#: near pairs of a base set are looked for at this phash distance when deduplicating it
DEDUP_RADIUS = 4
#: and removed when the reference score is at most this (chosen by looking at the PNG of the
#: borderline pairs: bench/README.md, "Deduplicating the base sets")
DEDUP_CUT = 8.0
#: images symmetric under a dihedral transform (score(x, T x) <= this) are not its targets
SYMMETRY_CUT = max(CUTS)
#: the augmented-hash variants: the query image shifted by every (dy, dx) in [-k, k]^2
AUGMENT_STEPS = (1, 2)
AUGMENT_RADII = (4, 5, 6)


def _kernels():
    # compiled on first use only: importing bench.accuracy stays cheap
    global _hist_within, _hist_cross, _score_pairs
    if "_score_pairs" in globals():
        return
    import numba
    from gpudedup.kernels.cpu import popcount64
    from numba import njit, prange

    @njit(parallel=True, cache=False)
    def hist_within(codes):
        n = codes.size
        nt = numba.get_num_threads()
        h = np.zeros((nt, 65), np.int64)
        for t in prange(nt):
            for i in range(t, n, nt):
                ci = codes[i]
                for j in range(i + 1, n):
                    h[t, np.int64(popcount64(ci ^ codes[j]))] += 1
        return h.sum(axis=0)

    @njit(parallel=True, cache=False)
    def hist_cross(qvars, base, source):
        # pairs (query k, base j != source[k]), distance = min over the query's variants
        k_n, v_n = qvars.shape
        nt = numba.get_num_threads()
        h = np.zeros((nt, 65), np.int64)
        for t in prange(nt):
            for k in range(t, k_n, nt):
                for j in range(base.size):
                    if j == source[k]:
                        continue
                    d = np.int64(64)
                    for v in range(v_n):
                        d = min(d, np.int64(popcount64(qvars[k, v] ^ base[j])))
                    h[t, d] += 1
        return h.sum(axis=0)

    @njit(parallel=True, cache=False)
    def score_pairs(a_imgs, b_imgs, ia, ib, max_shift):
        # the numba twin of realdata.reference_score (raw sums; checked against it each run)
        p_n = ia.size
        h, w = a_imgs.shape[1], a_imgs.shape[2]
        out = np.empty(p_n, np.float64)
        for p in prange(p_n):
            a = a_imgs[ia[p]]
            b = b_imgs[ib[p]]
            lo, hi = np.inf, -np.inf
            for y in range(h):
                for x in range(w):
                    lo = min(lo, a[y, x], b[y, x])
                    hi = max(hi, a[y, x], b[y, x])
            scale = 255.0 / (hi - lo) if hi > lo else 0.0
            best = np.inf
            for dy in range(-max_shift, max_shift + 1):
                for dx in range(-max_shift, max_shift + 1):
                    sa = sb = saa = sbb = sab = 0.0
                    for y in range(max(0, -dy), min(h, h - dy)):
                        for x in range(max(0, -dx), min(w, w - dx)):
                            # on the pair's 0..255 scale: float images sum as well
                            # conditioned as uint8 ones (raw sums cancel otherwise)
                            u = (float(a[y, x]) - lo) * scale
                            v = (float(b[y + dy, x + dx]) - lo) * scale
                            sa += u
                            sb += v
                            saa += u * u
                            sbb += v * v
                            sab += u * v
                    n = (min(h, h - dy) - max(0, -dy)) * (min(w, w - dx) - max(0, -dx))
                    vaa = saa - sa * sa / n
                    vbb = sbb - sb * sb / n
                    vab = sab - sa * sb / n
                    res = vbb - vab * vab / vaa if vaa > 0 else vbb
                    best = min(best, np.sqrt(max(res, 0.0) / n))
            out[p] = best if hi > lo else 0.0
        return out

    _hist_within, _hist_cross, _score_pairs = hist_within, hist_cross, score_pairs


def score_pairs(a_imgs, b_imgs, ia, ib) -> np.ndarray:
    """Reference score of pairs (a_imgs[ia[p]], b_imgs[ib[p]]), fast (numba)."""
    from bench.realdata import MAX_SHIFT

    _kernels()
    ia = np.ascontiguousarray(ia, np.int64)
    ib = np.ascontiguousarray(ib, np.int64)
    if ia.size == 0:
        return np.empty(0)
    return _score_pairs(a_imgs, b_imgs, ia, ib, MAX_SHIFT)


def distance_histogram(codes, queries=None, source=None) -> np.ndarray:
    """Pairs per Hamming distance 0..64: inside ``codes`` (i < j), or between ``queries``
    ((K,) or (K, V) variants: min over them) and ``codes`` with ``codes[source[k]]`` left out."""
    _kernels()
    codes = np.ascontiguousarray(codes, np.uint64)
    if queries is None:
        return _hist_within(codes)
    q = np.ascontiguousarray(np.asarray(queries, np.uint64).reshape(len(queries), -1))
    return _hist_cross(q, codes, np.ascontiguousarray(source, np.int64))


def thumbnail_phash(images, inverse=None) -> np.ndarray:
    """phash through imagehash's own steps (Pillow LANCZOS 32x32, scipy DCT, median), with
    ``inverse`` applied to the 32x32 thumbnail: the variant hash a dihedral search computes
    (DESIGN.md: a flip's variant equals the hash of the flipped image; a transpose's equals
    the hash of the transposed thumbnail)."""
    import scipy.fftpack
    from PIL import Image

    out = np.empty(len(images), np.uint64)
    weights = np.uint64(1) << np.arange(63, -1, -1, dtype=np.uint64)
    for k, img in enumerate(images):
        t = np.asarray(Image.fromarray(img).resize((32, 32), Image.LANCZOS), np.float64)
        if inverse is not None:
            t = inverse(t)
        c = scipy.fftpack.dct(scipy.fftpack.dct(t, axis=0), axis=1)[:8, :8]
        bits = (c > np.median(c)).ravel()
        out[k] = np.bitwise_or.reduce(weights[bits]) if bits.any() else np.uint64(0)
    return out


def _rel(path: Path) -> str:
    """A path as written into the JSON: relative to the repository when inside it."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(report.REPO))
    except ValueError:
        return path.name


def _hamming(a, b) -> np.ndarray:
    return np.bitwise_count(np.asarray(a, np.uint64) ^ np.asarray(b, np.uint64)).astype(np.int64)


def _pairs(a, b, r):
    import gpudedup as gd
    from gpudedup.search import hamming_pairs

    return hamming_pairs(a, b, r, be=gd.backend.resolve("cpu"))


# ----------------------------------------------------------------------------- sets


def load_set(name: str, size: int | None, rng) -> tuple[np.ndarray, dict]:
    """One real base set as uint8 (N, H, W), before deduplication, and where it came from."""
    from bench import realdata

    if name == "fashion":
        imgs, _ = realdata.load_fashion_mnist()
        info = {"source": "Fashion-MNIST train + test, " + str(realdata.FASHION_DIR),
                "install": realdata.FASHION_INSTALL}
    elif name == "glyphs":
        files = realdata.font_files()
        imgs, _, fonts = realdata.render_glyphs(files)
        info = {"source": "letters A-J rendered notMNIST-style from font files under "
                          "/usr/share/fonts", "install": "apt-get install "
                                                         + realdata.FONT_PACKAGES,
                "font_files_found": len(files), "font_faces_used": len(set(fonts))}
    elif name.startswith("photos"):
        side = int(name[len("photos"):])
        imgs = realdata.photo_tiles(side)
        info = {"source": f"skimage.data photographs, {side}x{side} tiles at stride "
                          f"{side // 2} over a LANCZOS pyramid", "install": "pip install "
                                                                            "scikit-image"}
    else:
        raise ValueError(f"unknown set {name!r}; choose from {', '.join(SETS)}")
    info["raw_count"] = int(len(imgs))
    if size is not None and size < len(imgs):
        imgs = imgs[np.sort(rng.choice(len(imgs), size, replace=False))]
        info["sampled_to"] = int(size)
    return np.ascontiguousarray(imgs), info


def render_pairs_png(images, pairs, scores, path: Path, limit: int = 48) -> None:
    """A grid of image pairs side by side with their score, for looking at."""
    from PIL import Image, ImageDraw

    pairs = list(pairs)[:limit]
    cell = 84
    cols = 4
    rows = max(1, -(-len(pairs) // cols))
    sheet = Image.new("L", (cols * (2 * cell + 12), rows * (cell + 16)), 128)
    draw = ImageDraw.Draw(sheet)
    for k, ((i, j), s) in enumerate(zip(pairs, scores)):
        x0, y0 = (k % cols) * (2 * cell + 12), (k // cols) * (cell + 16)
        for m, idx in enumerate((i, j)):
            im = Image.fromarray(images[idx]).resize((cell, cell), Image.NEAREST)
            sheet.paste(im, (x0 + m * (cell + 2), y0))
        draw.text((x0 + 2, y0 + cell + 2), f"{i}-{j} s={s:.1f}", fill=255)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def deduplicate(images, png: Path | None = None, log=None) -> tuple[np.ndarray, dict]:
    """Indices kept by the stated procedure (bench/README.md), and what it removed.

    1. exact: byte-identical images, the first of each kept;
    2. near: pairs at phash distance <= DEDUP_RADIUS scored with the reference score; the
       right image of every pair scoring <= DEDUP_CUT is removed (so no such pair is left).
    """
    import gpudedup as gd

    flat = images.reshape(len(images), -1)
    _, first = np.unique(flat, axis=0, return_index=True)
    keep = np.sort(first)
    exact_removed = len(images) - keep.size
    codes = gd.phash(images[keep], backend="cpu")
    i, j, d = _pairs(codes, None, DEDUP_RADIUS)
    sub = images[keep]
    s = score_pairs(sub, sub, i, j)
    # the borderline band around the cut, 48 pairs evenly spread over it by score rank
    border = np.flatnonzero((s > DEDUP_CUT / 2) & (s <= 2 * DEDUP_CUT))
    border = border[np.argsort(s[border])]
    if border.size > 48:
        border = border[np.linspace(0, border.size - 1, 48).round().astype(int)]
    if png is not None:
        render_pairs_png(sub, zip(i[border], j[border]), s[border], png)
    drop = np.unique(j[s <= DEDUP_CUT])
    mask = np.ones(keep.size, bool)
    mask[drop] = False
    hist = np.histogram(s, bins=[0, 2, 4, 6, 8, 10, 12, 16, 24, 1e9])[0]
    info = {"exact_removed": int(exact_removed), "near_pairs_checked": int(i.size),
            "near_score_histogram": {"bins": [0, 2, 4, 6, 8, 10, 12, 16, 24, "inf"],
                                     "counts": hist.tolist()},
            "near_removed": int(drop.size), "kept": int(mask.sum()),
            "borderline_png": _rel(png) if png is not None else None,
            "borderline_pairs_rendered": int(min(border.size, 48))}
    return keep[mask], info


def plant(base, per_edit: int, rng) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Copies of ``per_edit`` random base images per edit (realdata.EDITS and DIHEDRAL).

    Returns the copies, the base index of each and its edit. An image symmetric under a
    dihedral transform (score(x, T x) <= SYMMETRY_CUT) is never that transform's target.
    """
    from bench.realdata import DIHEDRAL, EDITS

    n = len(base)
    k = min(per_edit, n)
    copies, source, edit = [], [], []
    for name, fn in EDITS.items():
        t = rng.choice(n, k, replace=False)
        copies += [fn(base[i], rng) for i in t]
        source.append(t)
        edit += [name] * k
    for name, (fn, _) in DIHEDRAL.items():
        order = rng.permutation(n)[:4 * k]
        moved = np.stack([fn(base[i]) for i in order])
        sym = score_pairs(base, moved, order, np.arange(order.size)) <= SYMMETRY_CUT
        t = order[~sym][:k]
        copies += list(moved[~sym][:k])
        source.append(t)
        edit += [name] * t.size
    return np.ascontiguousarray(np.stack(copies)), np.concatenate(source), edit


def _cum(hist) -> np.ndarray:
    return np.cumsum(hist)[:max(RADII) + 1]


def _quantiles(x) -> dict:
    if len(x) == 0:
        return {}
    q = np.quantile(x, [0.0, 0.01, 0.05, 0.5, 0.9, 0.95, 1.0])
    return dict(zip(("min", "p01", "p05", "median", "p90", "p95", "max"),
                    (round(float(v), 2) for v in q)))


def _sampled_pairs(i, j, d, cap, rng):
    # all candidates when they fit, else a uniform sample, each standing for `weight` pairs
    if i.size <= cap:
        return i, j, d, 1.0
    pick = np.sort(rng.choice(i.size, cap, replace=False))
    return i[pick], j[pick], d[pick], i.size / cap


def measure_real(name, raw, info, per_edit, score_radius, max_scored, rng, png_dir,
                 log=lambda m: None) -> dict:
    """Every figure of one real set (bench/README.md, "Accuracy on real data")."""
    import gpudedup as gd
    from bench import realdata

    rec = {"set": name, **info}
    keep, rec["dedup"] = deduplicate(raw, png_dir / f"borderline-{name}.png" if png_dir else None)
    base = raw[keep]
    n = len(base)
    rec["base_count"] = n
    rec["image_shape"] = list(base.shape[1:])
    log(f"  {name}: {info['raw_count']} raw, {n} after dedup")
    codes = gd.phash(base, backend="cpu")
    distinct_cum = _cum(distance_histogram(codes))
    rec["distinct_pairs"] = {"radius": list(RADII), "pairs": distinct_cum.tolist(),
                             "per_10k_images": [round(float(c) * 1e4 / n, 2)
                                                for c in distinct_cum]}
    copies, source, edit = plant(base, per_edit, rng)
    edit = np.asarray(edit)
    dihedral = np.isin(edit, list(realdata.DIHEDRAL))
    plain = ~dihedral
    ccodes = gd.phash(copies, backend="cpu")
    dist = _hamming(ccodes, codes[source])
    # the copy's score: verification undoes a dihedral transform (pixels exactly) first
    undone = copies.copy()
    var_dist = dist.copy()
    for dname, (_, inv) in realdata.DIHEDRAL.items():
        idx = np.flatnonzero(edit == dname)
        if idx.size:
            undone[idx] = np.stack([inv(c) for c in copies[idx]])
            var_dist[idx] = _hamming(thumbnail_phash(copies[idx], inv), codes[source[idx]])
    score = score_pairs(base, undone, source, np.arange(len(copies)))
    ref_idx = rng.choice(len(copies), min(200, len(copies)), replace=False)
    ref = realdata.reference_score(base[source[ref_idx]], undone[ref_idx])
    rec["score_numba_vs_reference_max_abs_diff"] = float(np.abs(ref - score[ref_idx]).max())
    thumb_ok = thumbnail_phash(base[:200]) == codes[:200]
    rec["thumbnail_phash_equals_gd_phash"] = f"{int(thumb_ok.sum())}/{thumb_ok.size}"
    edits = list(dict.fromkeys(edit))
    rec["planted"] = {e: int((edit == e).sum()) for e in edits}
    rec["candidate_recall"] = {
        e: [round(float((dist[edit == e] <= r).mean()), 4) for r in RADII] for e in edits}
    rec["dihedral_variant_recall"] = {
        e: [round(float((var_dist[edit == e] <= r).mean()), 4) for r in RADII]
        for e in realdata.DIHEDRAL if e in rec["planted"]}
    rec["copy_distance"] = {e: _quantiles(dist[edit == e]) for e in edits}
    rec["copy_score"] = {e: _quantiles(score[edit == e]) for e in edits}

    # distinct candidates inside the base set, and between copies and other base images
    log(f"  {name}: scoring distinct candidates at r <= {score_radius}")
    wi, wj, wd = _pairs(codes, None, score_radius)
    total_w = wi.size
    wi, wj, wd, w_weight = _sampled_pairs(wi, wj, wd, max_scored, rng)
    ws = score_pairs(base, base, wi, wj)
    ci, cj, cd = _pairs(ccodes[plain], codes, score_radius)
    src_plain = source[plain]
    other = cj != src_plain[ci]
    ci, cj, cd = ci[other], cj[other], cd[other]
    total_c = ci.size
    ci, cj, cd, c_weight = _sampled_pairs(ci, cj, cd, max_scored, rng)
    pidx = np.flatnonzero(plain)
    cs = score_pairs(base, copies, cj, pidx[ci])
    rec["distinct_scored"] = {"radius": score_radius, "within_base_candidates": int(total_w),
                              "within_base_scored": int(wi.size),
                              "cross_candidates": int(total_c), "cross_scored": int(ci.size),
                              "score_within_base": _quantiles(ws),
                              "score_cross": _quantiles(cs)}
    cutoffs = []
    for c in CUTS:
        for r in range(0, score_radius + 1):
            tp = (dist[plain] <= r) & (score[plain] <= c)
            fp_cross = float(np.sum((cd <= r) & (cs <= c)) * c_weight)
            fp_within = float(np.sum((wd <= r) & (ws <= c)) * w_weight)
            found = tp.sum() + fp_cross
            cutoffs.append({
                "cut": c, "radius": r,
                "precision": round(float(tp.sum() / found), 4) if found else None,
                "recall": {e: round(float(((dist <= r) & (score <= c))[edit == e].mean()), 4)
                           for e in edits if e not in realdata.DIHEDRAL},
                "dihedral_recall": {e: round(float(((var_dist <= r) & (score <= c))
                                                   [edit == e].mean()), 4)
                                    for e in rec["dihedral_variant_recall"]},
                "false_pairs_within_base": round(fp_within, 1),
                "false_per_10k_images": round(fp_within * 1e4 / n, 3),
                "false_cross_pairs": round(fp_cross, 1),
                "false_cross_per_10k_copies": round(fp_cross * 1e4 / plain.sum(), 3)})
    rec["verified"] = cutoffs
    rec["sampling"] = {"within_weight": w_weight, "cross_weight": c_weight,
                       "max_scored": max_scored}

    # imagehash's phash alone, at each threshold (bits identical to gd.phash: checked here)
    rec["imagehash_check"] = _imagehash_check(base[:100], codes[:100])
    cross_cum = _cum(distance_histogram(codes, ccodes[plain], src_plain))
    peer = []
    for r in RADII:
        tp = int((dist[plain] <= r).sum())
        fp = int(cross_cum[r])
        prec = tp / (tp + fp) if tp + fp else 1.0
        rcl = tp / int(plain.sum())
        peer.append({"threshold": r, "precision": round(prec, 4), "recall": round(rcl, 4),
                     "f1": round(2 * prec * rcl / (prec + rcl), 4) if prec + rcl else 0.0,
                     "false_cross_per_10k_copies": round(fp * 1e4 / plain.sum(), 2)})
    rec["imagehash_phash"] = {"rows": peer, "best": max(peer, key=lambda x: x["f1"])}

    # dihedral search cost: distinct candidates of the 8 thumbnail variants of each copy
    q = np.flatnonzero(dihedral)[:1000]
    if q.size:
        # the 8 dihedral variants of each query, from its 32x32 thumbnail
        vlist = [thumbnail_phash(copies[q], None)]
        vlist += [thumbnail_phash(copies[q], inv) for _, inv in realdata.DIHEDRAL.values()]
        vlist += [thumbnail_phash(copies[q], np.transpose),
                  thumbnail_phash(copies[q], lambda t: np.rot90(t, 2).T)]
        variants = np.stack(vlist, axis=1)
        cum8 = _cum(distance_histogram(codes, variants, source[q]))
        cum1 = _cum(distance_histogram(codes, variants[:, :1], source[q]))
        rec["dihedral_cost"] = {"queries": int(q.size),
                                "plain_per_10k_queries": [round(float(v) * 1e4 / q.size, 1)
                                                          for v in cum1],
                                "eight_variants_per_10k_queries":
                                    [round(float(v) * 1e4 / q.size, 1) for v in cum8]}

    rec["augmented"] = _augmented(base, codes, copies, source, edit, score)
    if name == "glyphs":
        rec["dtypes"] = _dtype_variants(base, copies, source, edit, plain, codes, dist)
    return rec


def _imagehash_check(images, codes) -> str:
    try:
        import imagehash
        from PIL import Image
    except ImportError:
        return "imagehash not installed"
    ih = np.array([int(str(imagehash.phash(Image.fromarray(x))), 16) for x in images],
                  dtype=np.uint64)
    return f"{int((ih == codes).sum())}/{len(images)} identical"


def _shift_variants(images, step):
    from bench.realdata import _shift

    offs = [(dy, dx) for dy in range(-step, step + 1) for dx in range(-step, step + 1)]
    return np.stack([np.stack([_shift(x, dy, dx) for dy, dx in offs]) for x in images])


def _augmented(base, codes, copies, source, edit, score) -> dict:
    """Hashes of shifted variants of the query side (the seed paper's "augmented hashes")."""
    import gpudedup as gd

    out = {}
    q = np.flatnonzero(np.isin(edit, ["shift1", "shift2"]))
    if q.size == 0:
        return out
    plain1 = gd.phash(copies[q], backend="cpu")[:, None]
    cost_plain = _cum(distance_histogram(codes, plain1, source[q]))
    for step in AUGMENT_STEPS:
        var = _shift_variants(copies[q], step)
        v = var.shape[1]
        vc = gd.phash(var.reshape(-1, *copies.shape[1:]), backend="cpu").reshape(q.size, v)
        dmin = np.bitwise_count(vc ^ codes[source[q]][:, None]).min(axis=1)
        cost = _cum(distance_histogram(codes, vc, source[q]))
        rows = []
        for r in AUGMENT_RADII:
            row = {"radius": r, "hashes_per_query": v,
                   "distinct_candidates_per_10k_queries": round(float(cost[r]) * 1e4 / q.size, 1),
                   "plain_distinct_candidates_per_10k_queries":
                       round(float(cost_plain[r]) * 1e4 / q.size, 1)}
            for e in ("shift1", "shift2"):
                m = edit[q] == e
                row[f"{e}_candidate_recall"] = round(float((dmin[m] <= r).mean()), 4)
                row[f"{e}_plain_candidate_recall"] = round(
                    float((np.bitwise_count(plain1[m, 0] ^ codes[source[q][m]]) <= r).mean()), 4)
                for c in (8.0, 10.0):
                    row[f"{e}_recall_score_le_{c:g}"] = round(
                        float(((dmin[m] <= r) & (score[q][m] <= c)).mean()), 4)
            rows.append(row)
        out[f"pm{step}"] = rows
    return out


def _dtype_variants(base, copies, source, edit, plain, codes_u8, dist_u8) -> dict:
    """The glyphs stored as float32 (notMNIST's (x - 128) / 255) and uint16: phash recall,
    distinct pairs, and whether the scale-free score decides alike."""
    import gpudedup as gd
    from bench import realdata

    out = {}
    for dt in ("float32", "uint16"):
        b = realdata.glyphs_as(base, dt)
        c = realdata.glyphs_as(copies, dt)
        codes = gd.phash(b, backend="cpu")
        cc = gd.phash(c, backend="cpu")
        dist = _hamming(cc, codes[source])
        cum = _cum(distance_histogram(codes))
        k = np.arange(min(2000, len(c)))
        s_dt = score_pairs(b, c, source[k], k)
        s_u8 = score_pairs(base, copies, source[k], k)
        out[dt] = {
            "phash_equal_to_uint8_share": round(float((codes == codes_u8).mean()), 4),
            "candidate_recall": {e: [round(float((dist[edit == e] <= r).mean()), 4)
                                     for r in RADII]
                                 for e in dict.fromkeys(edit[plain])},
            "distinct_per_10k_images": [round(float(v) * 1e4 / len(b), 2) for v in cum],
            "score_max_abs_diff_vs_uint8": float(np.abs(s_dt - s_u8).max()),
        }
    return out


# --------------------------------------------------------------------------- tables

TABLE_RADII = (0, 2, 4, 6, 8, 10, 12, 16)


def markdown_real(record: dict) -> str:
    """The markdown tables of a real-data run."""
    out = []
    for s in record["sets"]:
        name, n = s["set"], s["base_count"]
        d = s["dedup"]
        out += [f"### {name}: {n:,} images {tuple(s['image_shape'])} after dedup "
                f"({s['raw_count']:,} raw; {d['exact_removed']} exact, {d['near_removed']} near "
                f"removed)", "",
                "Candidate recall of phash at radius r (planted copies per edit: "
                f"{max(s['planted'].values())}); dihedral edits with the plain hash and, in "
                "brackets, with the dihedral variant hash:", "",
                "| edit | " + " | ".join(f"r={r}" for r in TABLE_RADII) + " |",
                "|---|" + "---:|" * len(TABLE_RADII)]
        for e, rec in s["candidate_recall"].items():
            var = s["dihedral_variant_recall"].get(e)
            cells = [f"{rec[r]:.2f}" + (f" ({var[r]:.2f})" if var else "") for r in TABLE_RADII]
            out.append(f"| {e} | " + " | ".join(cells) + " |")
        out.append("| distinct pairs / 10k images | " + " | ".join(
            f"{s['distinct_pairs']['per_10k_images'][r]:,.0f}" for r in TABLE_RADII) + " |")
        ds = s["distinct_scored"]
        out += ["", f"Reference score (median / p90 / max) of planted copies; distinct "
                f"candidates at r <= {ds['radius']} ({ds['within_base_candidates']:,} inside "
                f"the set, {ds['cross_candidates']:,} copy-vs-other): min / p01 / p05:", "",
                "| edit | median | p90 | max |", "|---|---:|---:|---:|"]
        for e, q in s["copy_score"].items():
            out.append(f"| {e} | {q['median']} | {q['p90']} | {q['max']} |")
        for label, key in (("distinct, in set", "score_within_base"),
                           ("distinct, copy vs other", "score_cross")):
            q = ds[key]
            if q:
                out.append(f"| {label} (min / p01 / p05) | {q['min']} | {q['p01']} | "
                           f"{q['p05']} |")
        plain_edits = [e for e in s["candidate_recall"] if e not in s["dihedral_variant_recall"]]
        out += ["", "Verified (radius r, score <= cut): precision, per-edit recall, false pairs "
                "per 10,000 distinct images (inside the set):", "",
                "| cut | r | precision | false/10k | " + " | ".join(plain_edits) + " |",
                "|---:|---:|---:|---:|" + "---:|" * len(plain_edits)]
        for row in s["verified"]:
            if row["radius"] not in (4, 6, 8, 10, 12):
                continue
            out.append(f"| {row['cut']:g} | {row['radius']} | {row['precision']} | "
                       f"{row['false_per_10k_images']:g} | "
                       + " | ".join(f"{row['recall'][e]:.2f}" for e in plain_edits) + " |")
        best = s["imagehash_phash"]["best"]
        out += ["", f"imagehash phash alone at its best threshold (F1): t={best['threshold']}, "
                f"precision {best['precision']}, recall {best['recall']} (non-dihedral edits), "
                f"{best['false_cross_per_10k_copies']:,} false pairs per 10k copies.", ""]
        if s.get("augmented"):
            out += ["Augmented hashes (query side shifted by [-k, k]^2, edge fill): candidate "
                    "recall and distinct candidates per 10k queries (plain hash in brackets):",
                    "", "| variants | r | shift1 | shift2 | shift1, score<=10 | "
                    "shift2, score<=10 | distinct / 10k queries |", "|---|---:|---:|---:|---:|"
                    "---:|---:|"]
            for key, rows in s["augmented"].items():
                for row in rows:
                    out.append(
                        f"| {row['hashes_per_query']} ({key}) | {row['radius']} | "
                        f"{row['shift1_candidate_recall']:.2f} "
                        f"({row['shift1_plain_candidate_recall']:.2f}) | "
                        f"{row['shift2_candidate_recall']:.2f} "
                        f"({row['shift2_plain_candidate_recall']:.2f}) | "
                        f"{row['shift1_recall_score_le_10']:.2f} | "
                        f"{row['shift2_recall_score_le_10']:.2f} | "
                        f"{row['distinct_candidates_per_10k_queries']:,.0f} "
                        f"({row['plain_distinct_candidates_per_10k_queries']:,.0f}) |")
            out.append("")
    return "\n".join(out)


def measure_diagnostics(sets, size, per_edit, score_radius, max_scored, seed, png_dir) -> dict:
    """The candidate and reference-score diagnostics (``--diagnostics``): every installed set
    of ``sets``; missing ones say how to get them."""
    import time

    from bench import log, realdata

    t0 = time.perf_counter()
    record = {"schema_version": 1, "kind": "accuracy-diagnostics", "seed": seed, "size": size,
              "per_edit": per_edit, "score_radius": score_radius, "dedup_radius": DEDUP_RADIUS,
              "dedup_cut": DEDUP_CUT, "symmetry_cut": SYMMETRY_CUT, "cuts": list(CUTS),
              "edits": list(realdata.EDITS), "dihedral_edits": list(realdata.DIHEDRAL),
              "machine": report.machine_info(), "versions": report.versions(),
              "sets": [], "missing": {}, "seconds": {}}
    for name in sets:
        rng = np.random.default_rng(seed)
        t = time.perf_counter()
        try:
            raw, info = load_set(name, size, rng)
        except realdata.DataMissing as exc:
            log(f"  {name}: skipped: {exc}")
            record["missing"][name] = str(exc)
            continue
        record["sets"].append(measure_real(name, raw, info, per_edit, score_radius,
                                           max_scored, rng, png_dir, log))
        record["seconds"][name] = round(time.perf_counter() - t, 1)
    record["total_seconds"] = round(time.perf_counter() - t0, 1)
    return record


# ====================================================================== the public pipeline
#
# gd.find_overlaps(base, copies) and gd.find_overlaps(base) at every setting of a grid, on the
# deduplicated real sets with planted copies (bench/README.md, "The public pipeline").

#: the settings measured; each (threshold, shifts, invariant) is run once, at the lowest
#: min_similarity, and the higher ones are read off its pairs (a pure filter on similarity:
#: checked against direct runs on every set, JSON "min_similarity_as_filter")
GRID = {"threshold": (6, 8, 10), "min_similarity": (0.75, 0.70, 0.6875),
        "shifts": (0, 1), "invariant": (None, "dihedral")}
QUICK_GRID = {"threshold": (8,), "min_similarity": (0.75, 0.6875), "shifts": (0, 1),
              "invariant": (None, "dihedral")}
#: --quick: each base set sampled to this many images (None: all), copies per edit
QUICK_SIZES = {"fashion": 3000, "glyphs": None, "photos64": 600, "photos128": 200,
               "photos256": 100}
QUICK_PER_EDIT = 15
#: issue 15's targets at the defaults
MUST_EDITS = ("exact", "jpeg50", "jpeg75", "jpeg90", "noise6", "bright+20", "bright-20",
              "contrast0.8", "contrast1.2", "gamma0.75", "gamma1.33", "shift1")
AIM_EDITS = ("shift2", "blur0.7", "crop1", "crop2")
TARGET = {"precision": 0.97, "recall": 0.97, "aim_recall": 0.9, "false_per_10k": 1.0,
          "dihedral_recall": 0.95}
#: the glyphs are also measured stored as these dtypes (must give the uint8 pairs)
GLYPH_DTYPES = ("float32", "uint16")
PNG_LIMIT = 48
#: sets larger than this predict the self-join's time from this many images first
PROBE_IMAGES = 8000


class Unavailable(RuntimeError):
    """A setting the installed gpudedup cannot run yet (a keyword or column is missing)."""


def _kwargs(fn, setting: dict, backend: str) -> dict:
    """find_overlaps / scan keywords of ``setting``; Unavailable if one is not there yet."""
    import inspect

    params = inspect.signature(fn).parameters
    kw = {"threshold": setting["threshold"], "exact": True, "near": True, "verify": True,
          "backend": backend}
    for key, default in (("min_similarity", object()), ("shifts", 0), ("invariant", None)):
        if key in params:
            kw[key] = setting[key]
        elif setting[key] != default:
            raise Unavailable(f"gd.{fn.__name__} has no keyword {key!r} yet")
    return kw


_COLUMNS = ("left", "right", "distance", "exact", "similarity", "residual", "transform",
            "verified")


def _columns(ov) -> dict:
    missing = [c for c in _COLUMNS if not hasattr(ov, c)]
    if missing:
        raise Unavailable(f"Overlaps has no {', '.join(missing)} yet")
    return {c: np.asarray(getattr(ov, c)) for c in _COLUMNS}


def _kept(cols: dict, min_similarity: float) -> np.ndarray:
    # what find_overlaps reports at this min_similarity: exact pairs and near pairs whose
    # similarity reaches it (an unverified pair, NaN, would be reported: counted, see JSON)
    return cols["exact"] | ~(cols["similarity"] < np.float32(min_similarity))


def _timed(fn, *args, **kw):
    import gc
    import time

    gc.collect()
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def setting_label(s: dict) -> str:
    """A short name of a setting: t8 s>=0.75 sh1 D (D: invariant="dihedral")."""
    return (f"t{s['threshold']} s>={s['min_similarity']:g} sh{s['shifts']}"
            + (" D" if s["invariant"] else ""))


def _expected_transform() -> dict:
    """edit -> the transform code a pair (base, copy) should carry (a[i] = T(b[j]))."""
    from bench.realdata import DIHEDRAL
    from gpudedup import transforms

    x = np.arange(25).reshape(5, 5)
    out = {}
    for name, (fn, _) in DIHEDRAL.items():
        out[name] = next(t for t in range(len(transforms.TRANSFORMS))
                         if np.array_equal(transforms.apply(fn(x), t), x))
    return out


def _score_setting(cross: dict, within: dict, source, edit, n_base: int, m: float) -> tuple:
    """The figures of one setting from the pairs of its two calls; and which copies were found."""
    from bench.realdata import DIHEDRAL

    kc, kw = _kept(cross, m), _kept(within, m)
    left, right = cross["left"][kc], cross["right"][kc]
    true = source[right] == left
    found = np.zeros(source.size, bool)
    found[right[true]] = True
    edits = list(dict.fromkeys(edit))
    recall = {e: round(float(found[edit == e].mean()), 4) for e in edits}
    tp, fc, fw = int(true.sum()), int((~true).sum()), int(kw.sum())
    reported = tp + fc + fw
    rec = {"recall": recall, "pairs_reported": reported, "true_pairs": tp, "false_cross": fc,
           "false_within": fw, "precision": round(tp / reported, 4) if reported else None,
           "false_per_10k_images": round(fw * 1e4 / n_base, 3),
           "false_cross_per_10k_copies": round(fc * 1e4 / source.size, 3),
           "unverified_pairs": int((~cross["verified"][kc]).sum()
                                   + (~within["verified"][kw]).sum())}
    if "near_identical" in cross:
        # false pairs whose two base images the dedup rule (reference score <= DEDUP_CUT)
        # calls copies, beyond the phash radius it looked at: copies it missed
        fni = int((cross["near_identical"][kc] & ~true).sum()
                  + within["near_identical"][kw].sum())
        rec["false_near_identical"] = fni
        rec["precision_counting_near_identical"] = (round((tp + fni) / reported, 4)
                                                    if reported else None)
    must = [recall[e] for e in MUST_EDITS if e in recall]
    dih = [recall[e] for e in DIHEDRAL if e in recall]
    rec["recall_must_min"] = min(must) if must else None
    rec["recall_must_mean"] = round(float(np.mean(must)), 4) if must else None
    rec["recall_dihedral_min"] = min(dih) if dih else None
    expected = _expected_transform()
    e_true = edit[right[true]]
    is_dih = np.isin(e_true, list(expected))
    if is_dih.any():
        want = np.array([expected[e] for e in e_true[is_dih]], np.uint8)
        rec["dihedral_found_with_planted_transform"] = round(
            float((cross["transform"][kc][true][is_dih] == want).mean()), 4)
    return rec, found


def _pair_keys(cols: dict, mask, width: int) -> np.ndarray:
    return np.sort(cols["left"][mask] * width + cols["right"][mask])


def _mark_near_identical(base, copies, source, edit, cross: dict, within: dict) -> None:
    """Flag each pair whose two BASE images the dedup rule calls copies (reference score <=
    DEDUP_CUT after the matched transform): for a pair (i, copy k) the images base[i] and the copy's
    source, moved as the copy was (its dihedral transform) and then by the pair's transform."""
    from bench.realdata import DIHEDRAL
    from gpudedup import transforms

    def flags(left_imgs, right_imgs, tcodes):
        if len(tcodes) == 0:
            return np.zeros(0, bool)
        b = np.stack([transforms.apply(x, int(t)) for x, t in zip(right_imgs, tcodes)])
        return score_pairs(left_imgs, np.ascontiguousarray(b), np.arange(len(tcodes)),
                           np.arange(len(tcodes))) <= DEDUP_CUT

    within["near_identical"] = flags(base[within["left"]], base[within["right"]],
                                     within["transform"])
    false = source[cross["right"]] != cross["left"]
    ni = np.zeros(cross["left"].size, bool)
    idx = np.flatnonzero(false)
    moved = [DIHEDRAL[edit[k]][0](base[source[k]]) if edit[k] in DIHEDRAL else base[source[k]]
             for k in cross["right"][idx]]
    if idx.size:
        ni[idx] = flags(base[cross["left"][idx]], np.stack(moved), cross["transform"][idx])
    cross["near_identical"] = ni


def measure_pipeline(base, copies, source, edit, grid: dict, backend: str, budget_s: float,
                     log=lambda m: None, check_filter: bool = True) -> tuple[list, list, dict]:
    """Every setting of ``grid`` on one set.

    Per (threshold, shifts, invariant): ``gd.find_overlaps(base, copies, ...)`` (recall, and
    false pairs between a copy and another base image) and ``gd.find_overlaps(base, ...)``
    (false pairs inside the deduplicated set: every pair there is false by construction), each
    timed, at the lowest min_similarity of the grid; the figures of each min_similarity from
    those pairs. A (shifts, invariant) whose two calls took over ``budget_s`` seconds at one
    threshold (or whose self-join is predicted to, from PROBE_IMAGES images, N^2 scaling) is
    not run at that and the larger thresholds. Returns the rows (one per setting), the
    runs (one per call pair, with seconds or why skipped) and the pairs of each run.
    """
    import gpudedup as gd

    m_low = min(grid["min_similarity"])
    rows, runs, store = [], [], {}
    for inv in grid["invariant"]:
        for sh in grid["shifts"]:
            too_slow = None
            for t in sorted(grid["threshold"]):
                group = {"threshold": t, "shifts": sh, "invariant": inv}
                if too_slow:
                    runs.append({**group, "skipped": too_slow})
                    continue
                try:
                    kw = _kwargs(gd.find_overlaps, {**group, "min_similarity": m_low}, backend)
                    # warm-up (numba compilation and caches), outside the timing
                    gd.find_overlaps(base[:64], copies[:64], **kw)
                    gd.find_overlaps(base[:64], **kw)
                    if len(base) > PROBE_IMAGES:
                        # the self-join's cost grows as N^2: predicted from a sample first
                        probe = base[np.linspace(0, len(base) - 1, PROBE_IMAGES).astype(int)]
                        _, tp = _timed(gd.find_overlaps, probe, **kw)
                        predicted = tp * (len(base) / PROBE_IMAGES) ** 2
                        if predicted > budget_s:
                            too_slow = (f"not run: the self-join predicted to take "
                                        f"{predicted:.0f} s (from {PROBE_IMAGES:,} images: "
                                        f"{tp:.1f} s), over the budget of {budget_s:g} s")
                            runs.append({**group, "skipped": too_slow})
                            log(f"    {group}: {too_slow}")
                            continue
                    cross, tc = _timed(gd.find_overlaps, base, copies, **kw)
                    within, tw = _timed(gd.find_overlaps, base, **kw)
                    cross, within = _columns(cross), _columns(within)
                except Unavailable as exc:
                    runs.append({**group, "skipped": str(exc)})
                    log(f"    {group}: skipped: {exc}")
                    continue
                except Exception as exc:  # work in progress in the library: say what broke
                    runs.append({**group, "skipped": f"{type(exc).__name__}: {exc}"})
                    log(f"    {group}: failed: {type(exc).__name__}: {exc}")
                    continue
                seconds = {"cross": round(tc, 3), "within": round(tw, 3),
                           "total": round(tc + tw, 3)}
                runs.append({**group, "min_similarity": m_low, "seconds": seconds,
                             "cross_pairs": int(cross["left"].size),
                             "within_pairs": int(within["left"].size)})
                _mark_near_identical(base, copies, source, edit, cross, within)
                store[(t, sh, inv)] = (cross, within)
                log(f"    t={t} shifts={sh} invariant={inv}: {tc:.1f} s + {tw:.1f} s, "
                    f"{cross['left'].size} + {within['left'].size} pairs")
                for m in grid["min_similarity"]:
                    setting = {**group, "min_similarity": m}
                    rec, _ = _score_setting(cross, within, source, edit, len(base), m)
                    rows.append({**setting, "label": setting_label(setting), **rec,
                                 "seconds": seconds})
                if tc + tw > budget_s:
                    too_slow = (f"not run: threshold {t} took {tc + tw:.0f} s, over the "
                                f"budget of {budget_s:g} s per setting")
    filt = {}
    if check_filter and store and len(grid["min_similarity"]) > 1:
        # min_similarity as a pure filter: the lowest run filtered == a direct run
        (t, sh, inv), (cross, within) = next(iter(store.items()))
        m = max(grid["min_similarity"])
        kw = _kwargs(gd.find_overlaps, {"threshold": t, "shifts": sh, "invariant": inv,
                                        "min_similarity": m}, backend)
        dc = _columns(gd.find_overlaps(base, copies, **kw))
        dw = _columns(gd.find_overlaps(base, **kw))
        width = max(len(base), len(copies)) + 1
        same = all(np.array_equal(_pair_keys(d, np.ones(d["left"].size, bool), width),
                                  _pair_keys(lo, _kept(lo, m), width))
                   for d, lo in ((dc, cross), (dw, within)))
        filt = {"setting": setting_label({"threshold": t, "shifts": sh, "invariant": inv,
                                          "min_similarity": m}),
                "filtered_from": m_low, "same_pairs": bool(same)}
    runs.append({"min_similarity_as_filter": filt})
    return rows, runs, store


def imagehash_codes(images) -> np.ndarray:
    """``imagehash.phash`` of each uint8 image, as uint64 (int(str(h), 16))."""
    import imagehash
    from PIL import Image

    return np.array([int(str(imagehash.phash(Image.fromarray(x))), 16) for x in images],
                    dtype=np.uint64)


def measure_imagehash(base, copies, source, edit) -> dict:
    """imagehash.phash on the same images at every threshold: per-edit recall, precision over
    all pairs (copies vs base, and inside the base), false pairs per 10k; the best threshold by
    F1 (over the non-dihedral copies) and the largest threshold with <= 1 false pair per 10k."""
    import time

    from bench.realdata import DIHEDRAL

    try:
        t = time.perf_counter()
        hb, hc = imagehash_codes(base), imagehash_codes(copies)
        secs = time.perf_counter() - t
    except ImportError:
        return {"skipped": "imagehash not installed (pip install imagehash)"}
    d = _hamming(hc, hb[source])
    cross = _cum(distance_histogram(hb, hc, source))
    within = _cum(distance_histogram(hb))
    plain = ~np.isin(edit, list(DIHEDRAL))
    edits = list(dict.fromkeys(edit))
    rows = []
    for r in RADII:
        found = d <= r
        tp, fc, fw = int(found.sum()), int(cross[r]), int(within[r])
        prec = tp / (tp + fc + fw) if tp + fc + fw else 1.0
        rcl = float(found[plain].mean())
        rows.append({"threshold": r, "precision": round(prec, 4), "recall_plain": round(rcl, 4),
                     "f1": round(2 * prec * rcl / (prec + rcl), 4) if prec + rcl else 0.0,
                     "recall": {e: round(float(found[edit == e].mean()), 4) for e in edits},
                     "true_pairs": tp, "false_cross": fc, "false_within": fw,
                     "false_per_10k_images": round(fw * 1e4 / len(base), 3),
                     "false_cross_per_10k_copies": round(fc * 1e4 / len(copies), 3)})
    strict = [r for r in rows if r["false_per_10k_images"] <= TARGET["false_per_10k"]
              and r["false_cross_per_10k_copies"] <= TARGET["false_per_10k"]]
    return {"hash_seconds": round(secs, 2), "images_hashed": int(len(base) + len(copies)),
            "same_as_gd_phash": f"{int((hb[:200] == _gd_phash(base[:200])).sum())}/"
                                f"{min(200, len(base))}",
            "rows": rows, "best_f1": max(rows, key=lambda r: r["f1"])["threshold"],
            "best_strict": strict[-1]["threshold"] if strict else None}


def _gd_phash(images):
    import gpudedup as gd

    return gd.phash(images, backend="cpu")


def _compare_pairs(ref_store: dict, store: dict, grid: dict, width: int) -> list:
    """Per setting: do the pairs equal the reference's (uint8) ones?"""
    out = []
    for key, (cross, within) in store.items():
        if key not in ref_store:
            continue
        rc, rw = ref_store[key]
        for m in grid["min_similarity"]:
            diff = {}
            for part, a, b in (("cross", rc, cross), ("within", rw, within)):
                ka, kb = _pair_keys(a, _kept(a, m), width), _pair_keys(b, _kept(b, m), width)
                diff[part] = {"only_uint8": int(np.setdiff1d(ka, kb).size),
                              "only_this": int(np.setdiff1d(kb, ka).size)}
            t, sh, inv = key
            out.append({"label": setting_label({"threshold": t, "shifts": sh, "invariant": inv,
                                                "min_similarity": m}),
                        "same_pairs": all(v["only_uint8"] == v["only_this"] == 0
                                          for v in diff.values()), **diff})
    return out


def measure_set(name, raw, info, per_edit, grid, backend, budget_s, rng, png_dir,
                log=lambda m: None) -> tuple[dict, dict]:
    """One real set: dedup, plant, the grid, imagehash; and what the PNGs need later."""
    from bench import realdata

    rec = {"set": name, **info}
    keep, rec["dedup"] = deduplicate(raw, png_dir / f"borderline-{name}.png" if png_dir else None)
    base = raw[keep]
    rec["base_count"] = int(len(base))
    rec["image_shape"] = list(base.shape[1:])
    copies, source, edit = plant(base, per_edit, rng)
    edit = np.asarray(edit)
    rec["planted"] = {e: int((edit == e).sum()) for e in dict.fromkeys(edit)}
    rec["copies"] = int(len(copies))
    log(f"  {name}: {info['raw_count']} raw, {len(base)} after dedup, {len(copies)} copies")
    rows, runs, store = measure_pipeline(base, copies, source, edit, grid, backend, budget_s, log)
    rec["pipeline"], rec["runs"] = rows, runs
    rec["imagehash"] = measure_imagehash(base, copies, source, edit)
    held = {"base": base, "copies": copies, "source": source, "edit": edit, "store": store}
    if name == "glyphs":
        rec["dtypes"] = {}
        for dt in GLYPH_DTYPES:
            log(f"  {name} as {dt}")
            b, c = realdata.glyphs_as(base, dt), realdata.glyphs_as(copies, dt)
            r_dt, runs_dt, s_dt = measure_pipeline(b, c, source, edit, grid, backend, budget_s,
                                                   log, check_filter=False)
            rec["dtypes"][dt] = {"pipeline": r_dt, "runs": runs_dt,
                                 "pairs_vs_uint8": _compare_pairs(store, s_dt, grid,
                                                                  max(len(b), len(c)) + 1)}
    return rec, held


# ------------------------------------------------------------------------ recommendation


def recommend(sets: list, invariant) -> dict | None:
    """The setting (among those with this ``invariant``) chosen by the rule in bench/README.md:
    the most sets with precision >= 0.97; then the largest smallest-over-sets mean recall of
    the must edits (plus the dihedral ones with invariant="dihedral"), to 0.01; then the
    fewest false pairs per 10k (in the set plus per copy, summed over the sets); then the
    least time."""
    from bench.realdata import DIHEDRAL

    if not sets:
        return None
    by_label = {}
    for s in sets:
        for row in s["pipeline"]:
            if row["invariant"] == invariant:
                by_label.setdefault(row["label"], []).append(row)
    best, best_key = None, None
    for rows in by_label.values():
        if len(rows) != len(sets):
            continue
        edits = list(MUST_EDITS) + (list(DIHEDRAL) if invariant else [])
        recall = min(float(np.mean([r["recall"][e] for e in edits if e in r["recall"]]))
                     for r in rows)
        key = (sum(r["precision"] is not None and r["precision"] >= TARGET["precision"]
                   for r in rows), round(recall, 2),
               -sum(r["false_per_10k_images"] + r["false_cross_per_10k_copies"] for r in rows),
               -sum(r["seconds"]["total"] for r in rows))
        if best_key is None or key > best_key:
            best, best_key = rows[0], key
    if best is None:
        return None
    return {k: best[k] for k in ("threshold", "min_similarity", "shifts", "invariant", "label")}


def _row(s: dict, setting: dict | None) -> dict | None:
    if setting is None:
        return None
    return next((r for r in s["pipeline"] if all(r[k] == setting[k] for k in
                                                  ("threshold", "min_similarity", "shifts",
                                                   "invariant"))), None)


def _columns_for(record: dict) -> list[dict]:
    """The settings shown as columns: the recommended plain one with each shifts value, and
    the recommended dihedral one."""
    rec = record.get("recommended") or {}
    cols = []
    plain = rec.get("plain")
    if plain:
        for sh in record["grid"]["shifts"]:
            cols.append({**plain, "shifts": sh, "label": setting_label({**plain, "shifts": sh})})
    dih = rec.get("dihedral")
    if dih:
        cols.append(dih)
    return cols


# ------------------------------------------------------------------------------- PNGs


def _for_display(a, b):
    lo = float(min(a.min(), b.min()))
    hi = float(max(a.max(), b.max()))
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return [np.clip(np.rint((np.asarray(x, np.float64) - lo) * scale), 0, 255).astype(np.uint8)
            for x in (a, b)]


def render_pair_sheet(items, path: Path, cell: int = 84, cols: int = 4) -> None:
    """A sheet of image pairs side by side, each with a caption (items: (a, b, text))."""
    from PIL import Image, ImageDraw

    items = list(items)
    rows = max(1, -(-len(items) // cols))
    sheet = Image.new("L", (cols * (2 * cell + 12), rows * (cell + 16)), 128)
    draw = ImageDraw.Draw(sheet)
    for k, (a, b, text) in enumerate(items):
        x0, y0 = (k % cols) * (2 * cell + 12), (k // cols) * (cell + 16)
        for m, img in enumerate(_for_display(a, b)):
            resample = Image.NEAREST if img.shape[0] <= cell else Image.LANCZOS
            sheet.paste(Image.fromarray(img).resize((cell, cell), resample),
                        (x0 + m * (cell + 2), y0))
        draw.text((x0 + 2, y0 + cell + 2), text, fill=255)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def render_settings_pngs(name: str, held: dict, setting: dict, png_dir: Path) -> dict:
    """The false pairs (all, most similar first, up to PNG_LIMIT) and a sample of the missed
    copies (up to 3 per edit) at ``setting``, rendered; their paths relative to the repo."""
    import gpudedup.verify as gv
    from bench.realdata import DIHEDRAL
    from gpudedup import transforms

    key = (setting["threshold"], setting["shifts"], setting["invariant"])
    if key not in held["store"]:
        return {}
    base, copies, source, edit = held["base"], held["copies"], held["source"], held["edit"]
    cross, within = held["store"][key]
    m = setting["min_similarity"]
    tag = setting_label(setting).replace(" ", "_").replace(">=", "")
    items = []
    kc, kw = _kept(cross, m), _kept(within, m)
    false_c = kc & (source[cross["right"]] != cross["left"])
    for part, cols, mask, right_imgs in (("in set", within, kw, base),
                                         ("copy", cross, false_c, copies)):
        for p in np.flatnonzero(mask):
            i, j, t = int(cols["left"][p]), int(cols["right"][p]), int(cols["transform"][p])
            b = transforms.apply(right_imgs[j], t)
            extra = f" {edit[j]}" if part == "copy" else ""
            items.append((float(cols["similarity"][p]), base[i], b,
                          f"{part}{extra} d={cols['distance'][p]} s={cols['similarity'][p]:.2f}"
                          + (f" {transforms.TRANSFORMS[t]}" if t else "")))
    items.sort(key=lambda x: -x[0])
    out = {"false_pairs": len(items), "false_png": None, "missed": 0, "missed_png": None}
    if items:
        path = png_dir / f"false-{name}-{tag}.png"
        render_pair_sheet([x[1:] for x in items[:PNG_LIMIT]], path)
        out["false_png"] = _rel(path)
    _, found = _score_setting(cross, within, source, edit, len(base), m)
    missed = []
    for e in dict.fromkeys(edit):
        if e in DIHEDRAL and not setting["invariant"]:
            continue
        missed += list(np.flatnonzero((edit == e) & ~found)[:3])
    out["missed"] = int((~found).sum())
    if missed:
        missed = np.asarray(missed)
        undone = copies[missed].copy()
        for k, idx in enumerate(missed):
            if edit[idx] in DIHEDRAL:
                undone[k] = DIHEDRAL[edit[idx]][1](copies[idx])
        res, _, _ = gv.score_pairs(base, undone, source[missed], np.arange(missed.size),
                                   backend="cpu")
        dist = _hamming(_gd_phash(copies[missed]), _gd_phash(base[source[missed]]))
        path = png_dir / f"missed-{name}-{tag}.png"
        render_pair_sheet([(base[source[k]], copies[k], f"{edit[k]} d={d} res={r:.1f}")
                           for k, d, r in zip(missed, dist, res)][:PNG_LIMIT], path)
        out["missed_png"] = _rel(path)
    return out


# -------------------------------------------------------------------------- scan timing


def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _scan_child(path: str, warm: str, kw_json: str) -> dict:
    """In a fresh process: gd.scan of the train/test splits of ``path`` at the keywords, after
    one warm-up scan of ``warm`` (compilation excluded); seconds and peak resident memory."""
    import json
    import resource
    import time

    import gpudedup as gd

    kw = json.loads(kw_json)

    def splits(p):
        return {"train": f"{p}:/train", "test": f"{p}:/test"}

    t = time.perf_counter()
    gd.scan(splits(warm), **kw)
    warm_s = time.perf_counter() - t
    rss_before = _proc_status_kib("VmRSS")
    try:  # reset the peak (VmHWM) so that it measures the scan alone (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        peak_reset = True
    except OSError:
        peak_reset = False
    seconds = []
    while len(seconds) < 3 and sum(seconds) < 30:  # up to 3 scans, fewer when slow
        rep, dt = _timed(gd.scan, splits(path), **kw)
        seconds.append(round(dt, 3))
    peak = _proc_status_kib("VmHWM") if peak_reset else None
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pairs = sum(len(ov) for ov in rep.overlaps.values()) + sum(
        len(ov) for ov in rep.duplicates.values())
    return {"seconds": float(np.median(seconds)), "seconds_all": seconds,
            "warm_up_seconds": round(warm_s, 2), "peak_rss_mib": round(peak / 1024, 1),
            "rss_before_scan_mib": round((rss_before or 0) / 1024, 1),
            "peak_is_scan_only": peak_reset, "pairs": int(pairs)}


def scan_timing(settings: list[dict], backend: str, log=lambda m: None) -> dict:
    """gd.scan of the 70,000 Fashion-MNIST images from an HDF5 file (train 60,000, test 10,000)
    at each setting (and unverified), each in a fresh process (so that peak RSS is the scan's)."""
    import json
    import subprocess
    import tempfile

    import h5py

    import gpudedup as gd
    from bench import realdata

    images, _ = realdata.load_fashion_mnist()
    out = {"images": int(len(images)), "splits": {"train": 60000, "test": 10000},
           "file": "HDF5, uint8 datasets /train (60000, 28, 28) and /test (10000, 28, 28), "
                   "contiguous",
           "note": "median of up to 3 scans (fewer past 30 s) after one warm-up scan of 3,500 "
                   "images in the same process; peak RSS = VmHWM reset after the warm-up "
                   "(so it includes the interpreter and libraries, ~rss_before_scan_mib)",
           "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        path, warm = Path(tmp) / "fashion.h5", Path(tmp) / "warm.h5"
        with h5py.File(path, "w") as f:
            f["train"], f["test"] = images[:60000], images[60000:]
        with h5py.File(warm, "w") as f:
            f["train"], f["test"] = images[:3000], images[60000:60500]
        todo = [(setting_label(s), s, True) for s in settings]
        if settings:
            todo.append((f"t{settings[0]['threshold']} unverified", settings[0], False))
        for label, s, verify in todo:
            try:
                kw = _kwargs(gd.scan, s, backend)
            except Unavailable as exc:
                out["runs"].append({"label": label, "skipped": str(exc)})
                continue
            if not verify:
                kw = {k: v for k, v in kw.items() if k != "min_similarity"} | {"verify": False}
            proc = subprocess.run([sys.executable, "-m", "bench.accuracy", "--scan-child",
                                   str(path), str(warm), json.dumps(kw)], cwd=report.REPO,
                                  capture_output=True, text=True)
            if proc.returncode:
                out["runs"].append({"label": label, "skipped": proc.stderr.strip()[-500:]})
                continue
            row = {"label": label, "keywords": kw, **json.loads(proc.stdout.splitlines()[-1])}
            log(f"  scan {label}: {row['seconds']} s, peak RSS {row['peak_rss_mib']} MiB")
            out["runs"].append(row)
    return out


# ---------------------------------------------------------------------------- tables


def _f(x, spec=".2f") -> str:
    return "-" if x is None else format(x, spec)


def _k(x) -> str:
    # a rate per 10,000: two decimals below 10, whole numbers above
    return f"{x:.2f}" if x < 10 else f"{x:,.0f}"


def markdown_pipeline(record: dict) -> str:
    """The tables of a pipeline run (bench/results/accuracy-real.md)."""
    from bench.realdata import DIHEDRAL

    out = []
    rec = record.get("recommended") or {}
    cols = _columns_for(record)
    out += ["Settings shown: " + (", ".join(c["label"] for c in cols) or "none measured")
            + " (t: threshold, s: min_similarity, sh: shifts, D: invariant=\"dihedral\"; "
            "recommended by the rule in bench/README.md: "
            + ", ".join(f"{k} {v['label']}" for k, v in rec.items() if v) + ").", ""]
    if record["sets"] and cols:
        head = ["set (base images)", "setting", "precision", "false/10k", "false/10k copies",
                "must-edit recall (min)", "shift2", "blur0.7", "crop1", "crop2",
                "dihedral (min)", "seconds"]
        out += ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
        for s in record["sets"]:
            for c in cols:
                r = _row(s, c)
                if r is None:
                    continue
                out.append(f"| {s['set']} ({s['base_count']:,}) | {c['label']} | "
                           f"{_f(r['precision'], '.3f')} | {_k(r['false_per_10k_images'])} | "
                           f"{_k(r['false_cross_per_10k_copies'])} | {_f(r['recall_must_min'])} | "
                           + " | ".join(_f(r["recall"].get(e)) for e in AIM_EDITS)
                           + f" | {_f(r['recall_dihedral_min'])} | "
                           f"{r['seconds']['total']:.1f} |")
        out.append("")
    for s in record["sets"]:
        ih = s["imagehash"]
        ih_cols = []
        if "rows" in ih:
            ih_cols.append((f"imagehash t={ih['best_f1']} (best F1)", ih["rows"][ih["best_f1"]]))
            if ih["best_strict"] is not None:
                ih_cols.append((f"imagehash t={ih['best_strict']} (<=1 false/10k)",
                                ih["rows"][ih["best_strict"]]))
        shown = [(c["label"], _row(s, c)) for c in cols]
        shown = [(label, r) for label, r in shown if r is not None] + ih_cols
        d = s["dedup"]
        out += [f"### {s['set']}: {s['base_count']:,} images {tuple(s['image_shape'])} "
                f"after dedup ({s['raw_count']:,} raw; {d['exact_removed']} exact and "
                f"{d['near_removed']} near copies removed), {s['copies']:,} planted copies "
                f"({max(s['planted'].values())} per edit)", ""]
        if not shown:
            out += ["(nothing measured)", ""]
            continue
        out += ["| edit | " + " | ".join(label for label, _ in shown) + " |",
                "|---|" + "---:|" * len(shown)]
        for e in s["planted"]:
            mark = " (dihedral)" if e in DIHEDRAL else ""
            out.append(f"| {e}{mark} | "
                       + " | ".join(_f(r["recall"].get(e)) for _, r in shown) + " |")
        out.append("| **precision** | " + " | ".join(_f(r["precision"], ".3f")
                                                     for _, r in shown) + " |")
        out.append("| **false pairs / 10k images (in set)** | "
                   + " | ".join(f"{_k(r['false_per_10k_images'])}" for _, r in shown) + " |")
        out.append("| **false pairs / 10k copies** | "
                   + " | ".join(f"{_k(r['false_cross_per_10k_copies'])}" for _, r in shown) + " |")
        out.append("| **of the false pairs: near-identical base images** | "
                   + " | ".join(str(r.get("false_near_identical", "-")) if "seconds" in r
                                else "-" for _, r in shown) + " |")
        out.append("| **seconds (copies + in set)** | "
                   + " | ".join(f"{r['seconds']['total']:.1f}" if "seconds" in r
                                else f"hash {ih['hash_seconds']:.1f}" for _, r in shown) + " |")
        out.append("")
        grid_rows = s["pipeline"]
        if grid_rows:
            out += [f"Whole grid on {s['set']}:", "",
                    "| setting | precision | false/10k | false/10k copies | false pairs "
                    "(near-identical) | must min | must mean | shift2 | blur0.7 | crop1 | "
                    "crop2 | dihedral min | seconds |",
                    "|---|" + "---:|" * 12]
            for r in grid_rows:
                out.append(f"| {r['label']} | {_f(r['precision'], '.3f')} | "
                           f"{_k(r['false_per_10k_images'])} | "
                           f"{_k(r['false_cross_per_10k_copies'])} | "
                           f"{r['false_within'] + r['false_cross']} "
                           f"({r.get('false_near_identical', '-')}) | "
                           f"{_f(r['recall_must_min'])} | "
                           f"{_f(r['recall_must_mean'])} | "
                           + " | ".join(_f(r["recall"].get(e)) for e in AIM_EDITS)
                           + f" | {_f(r['recall_dihedral_min'])} | "
                           f"{r['seconds']['total']:.1f} |")
            skipped = [r for r in s["runs"] if "skipped" in r]
            for r in skipped:
                out.append(f"\n(t={r['threshold']} shifts={r['shifts']} "
                           f"invariant={r['invariant']}: {r['skipped']})")
            out.append("")
        for dt, v in s.get("dtypes", {}).items():
            same = [c for c in v["pairs_vs_uint8"] if c["same_pairs"]]
            out.append(f"{s['set']} stored as {dt}: the same pairs as uint8 at {len(same)} of "
                       f"{len(v['pairs_vs_uint8'])} settings"
                       + "".join(f"; {c['label']}: {c['cross']['only_uint8']}+"
                                 f"{c['within']['only_uint8']} pairs only in uint8, "
                                 f"{c['cross']['only_this']}+{c['within']['only_this']} only "
                                 f"in {dt}" for c in v["pairs_vs_uint8"]
                                 if not c["same_pairs"] and c["label"] in
                                 {x["label"] for x in cols}) + ".")
        if s.get("dtypes"):
            out.append("")
        for label, p in s.get("pngs", {}).items():
            out.append(f"PNGs at {label}: {p['false_pairs']} false pairs"
                       + (f" ({p['false_png']})" if p["false_png"] else "")
                       + f", {p['missed']} missed copies"
                       + (f" (sample: {p['missed_png']})" if p["missed_png"] else "") + ".")
        if s.get("pngs"):
            out.append("")
    st = record.get("scan_timing")
    if st and st.get("runs"):
        out += [f"gd.scan of {st['images']:,} Fashion-MNIST images from HDF5 (train/test), "
                f"{record['machine'].get('usable_cpus')} CPUs, compile time excluded:", "",
                "| setting | seconds | peak RSS (MiB) | RSS before (MiB) | pairs |",
                "|---|---:|---:|---:|---:|"]
        for r in st["runs"]:
            if "skipped" in r:
                out.append(f"| {r['label']} | skipped: {r['skipped'][:80]} | | | |")
            else:
                out.append(f"| {r['label']} | {r['seconds']:.2f} | {r['peak_rss_mib']:.0f} | "
                           f"{r['rss_before_scan_mib']:.0f} | {r['pairs']:,} |")
        out.append("")
    for name, why in record.get("missing", {}).items():
        out.append(f"{name}: not measured: {why}")
    return "\n".join(out)


def measure_pipeline_all(sets, sizes, per_edit, grid, backend, budget_s, seed, png_dir,
                         timing: bool) -> dict:
    """The record of a pipeline run: every installed set of ``sets``, the recommendation, the
    PNGs at it, the scan timing."""
    import time

    from bench import log, realdata

    t0 = time.perf_counter()
    record = {"schema_version": 2, "kind": "accuracy-real", "seed": seed, "per_edit": per_edit,
              "backend": backend, "grid": {k: list(v) for k, v in grid.items()},
              "budget_s_per_setting": budget_s, "dedup_radius": DEDUP_RADIUS,
              "dedup_cut": DEDUP_CUT, "symmetry_cut": SYMMETRY_CUT, "targets": TARGET,
              "must_edits": list(MUST_EDITS), "aim_edits": list(AIM_EDITS),
              "edits": list(realdata.EDITS), "dihedral_edits": list(realdata.DIHEDRAL),
              "machine": report.machine_info(), "versions": report.versions(),
              "load_average_1min": {"start": report.load_average()},
              "sets": [], "missing": {}, "seconds": {}}
    held = {}
    for name in sets:
        rng = np.random.default_rng(seed)
        t = time.perf_counter()
        try:
            raw, info = load_set(name, sizes.get(name), rng)
        except realdata.DataMissing as exc:
            log(f"  {name}: skipped: {exc}")
            record["missing"][name] = str(exc)
            continue
        except ImportError as exc:
            log(f"  {name}: skipped: {exc}")
            record["missing"][name] = f"{exc}; install with: pip install scikit-image"
            continue
        rec, held[name] = measure_set(name, raw, info, per_edit, grid, backend, budget_s,
                                      rng, png_dir, log)
        record["sets"].append(rec)
        record["seconds"][name] = round(time.perf_counter() - t, 1)
    record["recommended"] = {"plain": recommend(record["sets"], None),
                             "dihedral": recommend(record["sets"], "dihedral")}
    if png_dir is not None:
        for s in record["sets"]:
            s["pngs"] = {}
            for setting in record["recommended"].values():
                if setting:
                    try:
                        s["pngs"][setting["label"]] = render_settings_pngs(
                            s["set"], held[s["set"]], setting, png_dir)
                    except Exception as exc:  # a figure never costs the measurements
                        log(f"  PNG of {s['set']} failed: {type(exc).__name__}: {exc}")
    if timing:
        try:
            record["scan_timing"] = scan_timing(_columns_for(record), backend, log)
        except Exception as exc:  # DataMissing, or work in progress in the library
            record["scan_timing"] = {"skipped": f"{type(exc).__name__}: {exc}"}
    record["load_average_1min"]["end"] = report.load_average()
    record["total_seconds"] = round(time.perf_counter() - t0, 1)
    return record


def _parse_list(text: str, kind):
    def one(v):
        return None if v.lower() in ("none", "plain") else kind(v)
    return tuple(one(v) for v in text.split(","))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--set", action="append", choices=SETS + ("synthetic",),
                        help="real set(s) to measure (repeatable; default: all real sets), "
                             "or 'synthetic' for the photograph-code table")
    parser.add_argument("--quick", action="store_true",
                        help="a small run (sampled sets, a small grid, no scan timing): under "
                             "a minute; bench/results/accuracy-real-quick.{json,md}")
    parser.add_argument("--size", type=int, default=None,
                        help="sample each real base set to this many images (default: all)")
    parser.add_argument("--per-edit", type=int, default=None,
                        help="planted copies per edit kind (default 300; quick 15)")
    parser.add_argument("--thresholds", default=None, help="grid: comma list (default 6,8,10)")
    parser.add_argument("--min-similarity", default=None,
                        help="grid: comma list (default 0.75,0.70,0.6875)")
    parser.add_argument("--shifts", default=None, help="grid: comma list (default 0,1)")
    parser.add_argument("--invariant", default=None,
                        help="grid: comma list of none/dihedral (default none,dihedral)")
    parser.add_argument("--budget", type=float, default=300.0,
                        help="a (shifts, invariant) whose calls take longer than this many "
                             "seconds at one threshold is not run at larger ones (default 300)")
    parser.add_argument("--backend", default="cpu", help="gpudedup backend (default cpu)")
    parser.add_argument("--no-timing", action="store_true",
                        help="skip the gd.scan timing of Fashion-MNIST from HDF5")
    parser.add_argument("--diagnostics", action="store_true",
                        help="instead: the candidate and reference-score diagnostics "
                             "(bench/results/accuracy-diagnostics.json)")
    parser.add_argument("--score-radius", type=int, default=10,
                        help="diagnostics: distinct candidates up to this radius are scored")
    parser.add_argument("--max-scored", type=int, default=3_000_000,
                        help="diagnostics: score at most this many distinct candidates per "
                             "kind (a uniform sample beyond, weighted)")
    parser.add_argument("--png-dir", type=Path, default=None,
                        help="where the PNGs go (default bench/results/accuracy-png; quick: "
                             "none unless given)")
    parser.add_argument("--bases", type=int, default=20_000, help="synthetic: base images")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None,
                        help="the JSON (the markdown goes beside it, .md)")
    parser.add_argument("--markdown-from", type=Path, default=None,
                        help="only rewrite the tables (.md beside it) from a pipeline JSON")
    parser.add_argument("--scan-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.markdown_from:
        import json

        record = json.loads(args.markdown_from.read_text())
        record["table_markdown"] = markdown_pipeline(record)
        report.write(record, args.markdown_from)
        args.markdown_from.with_suffix(".md").write_text(record["table_markdown"] + "\n")
        print(record["table_markdown"])
        return 0
    if args.scan_child:
        import json

        print(json.dumps(_scan_child(*args.scan_child)))
        return 0
    md = None
    if args.png_dir is None and not args.quick:
        args.png_dir = report.RESULTS_DIR / "accuracy-png"
    if args.set == ["synthetic"]:
        record = measure_synthetic(args.bases, args.seed)
        record["table_markdown"] = markdown_synthetic(record)
        out = args.out or report.RESULTS_DIR / "accuracy.json"
    elif args.diagnostics:
        sets = [s for s in (args.set or SETS) if s != "synthetic"]
        record = measure_diagnostics(sets, args.size, args.per_edit or 300, args.score_radius,
                                     args.max_scored, args.seed, args.png_dir)
        record["table_markdown"] = markdown_real(record)
        out = args.out or report.RESULTS_DIR / "accuracy-diagnostics.json"
    else:
        sets = [s for s in (args.set or SETS) if s != "synthetic"]
        grid = dict(QUICK_GRID if args.quick else GRID)
        for key, text, kind in (("threshold", args.thresholds, int),
                                ("min_similarity", args.min_similarity, float),
                                ("shifts", args.shifts, int), ("invariant", args.invariant, str)):
            if text:
                grid[key] = _parse_list(text, kind)
        sizes = dict(QUICK_SIZES) if args.quick else {}
        if args.size is not None:
            sizes = dict.fromkeys(SETS, args.size)
        per_edit = args.per_edit or (QUICK_PER_EDIT if args.quick else 300)
        record = measure_pipeline_all(sets, sizes, per_edit, grid, args.backend, args.budget,
                                      args.seed, args.png_dir,
                                      timing=not (args.quick or args.no_timing))
        record["quick"] = bool(args.quick)
        record["table_markdown"] = markdown_pipeline(record)
        out = args.out or report.RESULTS_DIR / ("accuracy-real-quick.json" if args.quick
                                                else "accuracy-real.json")
        md = out.with_suffix(".md")
    report.write(record, out)
    if md is not None:
        md.write_text(record["table_markdown"] + "\n")
    print(record["table_markdown"])
    print(f"wrote {out}" + (f" and {md}" if md else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
