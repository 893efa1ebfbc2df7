"""Accuracy of near-duplicate search: planted copies in real images, and in photograph codes.

Run from the repository root::

    python -m bench.accuracy                     # real data (all sets that are installed):
                                                 # bench/results/accuracy-real.json + a table
    python -m bench.accuracy --set fashion --size 20000
    python -m bench.accuracy --set synthetic     # the photograph-code table: accuracy.json

Real data (bench/realdata.py, bench/README.md "Accuracy on real data"): each base set is first
deduplicated (exact by bytes; near: pairs at phash distance <= 4 whose reference score says
copy), then copies of every edit kind (realdata.EDITS, and the dihedral ones measured apart)
are planted into a second split. Per set and edit the harness measures the candidate recall of
phash at radius r, the distinct-image pairs each radius brings, imagehash's phash at its best
threshold, the reference verification score of copies and of distinct candidates, precision,
recall and false pairs at score cut-offs, and the "augmented hashes" for shifted copies.

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
            "borderline_png": str(png) if png is not None else None,
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


def measure_all(sets, size, per_edit, score_radius, max_scored, seed, png_dir) -> dict:
    """The real-data record: every installed set of ``sets``; missing ones say how to get them."""
    import time

    from bench import log, realdata

    t0 = time.perf_counter()
    record = {"schema_version": 1, "kind": "accuracy-real", "seed": seed, "size": size,
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--set", action="append", choices=SETS + ("synthetic",),
                        help="real set(s) to measure (repeatable; default: all real sets), "
                             "or 'synthetic' for the photograph-code table")
    parser.add_argument("--size", type=int, default=None,
                        help="sample each real base set to this many images (default: all)")
    parser.add_argument("--per-edit", type=int, default=300,
                        help="planted copies per edit kind (default 300)")
    parser.add_argument("--score-radius", type=int, default=10,
                        help="distinct candidates up to this phash radius are scored")
    parser.add_argument("--max-scored", type=int, default=3_000_000,
                        help="score at most this many distinct candidates per kind (a uniform "
                             "sample beyond, weighted)")
    parser.add_argument("--png-dir", type=Path, default=report.RESULTS_DIR / "accuracy-png")
    parser.add_argument("--bases", type=int, default=20_000, help="synthetic: base images")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.set == ["synthetic"]:
        record = measure_synthetic(args.bases, args.seed)
        record["table_markdown"] = markdown_synthetic(record)
        out = args.out or report.RESULTS_DIR / "accuracy.json"
    else:
        sets = [s for s in (args.set or SETS) if s != "synthetic"]
        record = measure_all(sets, args.size, args.per_edit, args.score_radius,
                             args.max_scored, args.seed, args.png_dir)
        record["table_markdown"] = markdown_real(record)
        out = args.out or report.RESULTS_DIR / "accuracy-real.json"
    report.write(record, out)
    print(record["table_markdown"])
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
