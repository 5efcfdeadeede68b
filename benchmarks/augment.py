"""Augmented dev photos for the privacy benchmark (``bench_privacy.py --augment``).

COCO-persons-dev has 43 labelled faces, too few to judge a change by, and it flatters: on unseen
photos the faces missed were a baby's whole face on a bed (a face lying sideways), a girl cut by the
frame, adults half hidden behind others. These augmentations make the dev photos look like that,
transforming the ground truth with them (masks and the COCO face keypoints), so every face stays a
labelled face:

* ``rot90`` / ``rot270`` — the photo turned a quarter (lying people: faces sideways);
* ``cut`` — the photo cropped so that the frame edge nearest to a face runs through its centre (one
  face per photo; the points cut off are dropped, the others stay labelled);
* ``occlude`` — every face half covered (left or right half, alternately) by a patch of the same
  photo's background; the face points and mask pixels under it are dropped (they are not visible);
* ``small`` — four photos at half size in a 2×2 mosaic (640 px wide): smaller faces in a photo of
  the usual size.

Items have the keys of ``bench_privacy._items`` plus ``pixels`` (the augmented photo); names are
``aug-<kind>/<stem>``. Deterministic: no random numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

KINDS = ("rot90", "rot270", "cut", "occlude", "small")

Points = list[tuple[float, float]] | None


def _load(item: dict[str, Any]) -> np.ndarray:
    import person_erase as pe

    return pe.load_image(Path(item["path"])).pixels


def _rot(item: dict[str, Any], pixels: np.ndarray, k: int) -> dict[str, Any]:
    h, w = pixels.shape[:2]

    def pt(x: float, y: float) -> tuple[float, float]:
        return (y, w - 1 - x) if k == 1 else (h - 1 - y, x)

    faces = [None if f is None else [pt(x, y) for x, y in f] for f in item["faces"]]
    gt = np.ascontiguousarray(np.rot90(item["gt"], k, axes=(1, 2)))
    return {"pixels": np.ascontiguousarray(np.rot90(pixels, k)), "gt": gt, "faces": faces}


def _face_size(points: list[tuple[float, float]], gt: np.ndarray) -> float:
    """A face's size in px: the labelled points' spread, or a share of the person's box height."""
    p = np.asarray(points, np.float64)
    spread = float(np.ptp(p, axis=0).max()) if len(p) > 1 else 0.0
    ys = np.flatnonzero(gt.any(axis=1))
    box_h = float(ys[-1] - ys[0] + 1) if ys.size else 0.0
    return max(8.0, 1.6 * spread, box_h / 8)


def _cut(item: dict[str, Any], pixels: np.ndarray) -> dict[str, Any] | None:
    h, w = pixels.shape[:2]
    best = None
    for g, f in enumerate(item["faces"]):
        if not f:
            continue
        cx, cy = np.mean(f, axis=0)
        for dist, side in ((cx, "left"), (w - cx, "right"), (cy, "top"), (h - cy, "bottom")):
            if best is None or dist < best[0]:
                best = (dist, side, int(round(cx)), int(round(cy)), g)
    if best is None:
        return None
    _, side, cx, cy, _ = best
    x0, y0, x1, y1 = 0, 0, w, h
    if side == "left":
        x0 = cx
    elif side == "right":
        x1 = cx + 1
    elif side == "top":
        y0 = cy
    else:
        y1 = cy + 1
    faces: list[Points] = []
    for f in item["faces"]:
        kept = [(x - x0, y - y0) for x, y in (f or []) if x0 <= x < x1 and y0 <= y < y1]
        faces.append(kept or None)
    return {"pixels": np.ascontiguousarray(pixels[y0:y1, x0:x1]), "gt": item["gt"][:, y0:y1, x0:x1].copy(),
            "faces": faces}


def _background_patch(pixels: np.ndarray, anyone: np.ndarray, ph: int, pw: int, seed: int) -> np.ndarray:
    """A (ph, pw, 3) patch of the photo where no annotated person is (mid grey when there is none)."""
    h, w = anyone.shape
    if ph < h and pw < w:
        integ = cv2.integral(anyone.astype(np.uint8))
        occupied = integ[ph:, pw:] - integ[:-ph, pw:] - integ[ph:, :-pw] + integ[:-ph, :-pw]
        ys, xs = np.nonzero(occupied[: h - ph + 1, : w - pw + 1] == 0)
        if ys.size:
            k = (seed * 7919) % ys.size
            return pixels[ys[k] : ys[k] + ph, xs[k] : xs[k] + pw].copy()
    return np.full((ph, pw, 3), 128, np.uint8)


def _occlude(item: dict[str, Any], pixels: np.ndarray) -> dict[str, Any] | None:
    if not any(item["faces"]):
        return None
    h, w = pixels.shape[:2]
    out = pixels.copy()
    gt = item["gt"].copy()
    anyone = gt.any(axis=0) if len(gt) else np.zeros((h, w), bool)
    covered = np.zeros((h, w), bool)
    n = 0
    for g, f in enumerate(item["faces"]):
        if not f:
            continue
        s = _face_size(f, item["gt"][g])
        cx, cy = np.mean(f, axis=0)
        # the left or the right half of the face, from above the brows to below the chin
        xa, xb = (cx - 0.7 * s, cx) if n % 2 == 0 else (cx, cx + 0.7 * s)
        ya, yb = cy - 0.7 * s, cy + 0.7 * s
        xa, xb = int(max(0, round(xa))), int(min(w, round(xb)))
        ya, yb = int(max(0, round(ya))), int(min(h, round(yb)))
        if xb - xa < 2 or yb - ya < 2:
            continue
        out[ya:yb, xa:xb] = _background_patch(pixels, anyone, yb - ya, xb - xa, n)
        covered[ya:yb, xa:xb] = True
        n += 1
    gt &= ~covered[None]
    faces: list[Points] = []
    for f in item["faces"]:
        kept = [(x, y) for x, y in (f or []) if not covered[min(h - 1, int(y)), min(w - 1, int(x))]]
        faces.append(kept or None)
    return {"pixels": out, "gt": gt, "faces": faces}


def _mosaic(group: list[tuple[dict[str, Any], np.ndarray]], cell: int = 320) -> dict[str, Any]:
    scaled = []
    for item, px in group:
        h, w = px.shape[:2]
        s = cell / max(h, w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        img = cv2.resize(px, (nw, nh), interpolation=cv2.INTER_AREA)
        gt = np.stack([cv2.resize(m.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST) > 0
                       for m in item["gt"]]) if len(item["gt"]) else np.zeros((0, nh, nw), bool)
        faces = [None if f is None else [(x * s, y * s) for x, y in f] for f in item["faces"]]
        scaled.append((img, gt, faces))
    rows = [scaled[i : i + 2] for i in range(0, len(scaled), 2)]
    heights = [max(img.shape[0] for img, _, _ in r) for r in rows]
    H, W = sum(heights), 2 * cell
    canvas = np.full((H, W, 3), 128, np.uint8)
    gts, faces_all = [], []
    y = 0
    for r, rh in zip(rows, heights, strict=True):
        for c, (img, gt, faces) in enumerate(r):
            x = c * cell
            ih, iw = img.shape[:2]
            canvas[y : y + ih, x : x + iw] = img
            for m in gt:
                full = np.zeros((H, W), bool)
                full[y : y + ih, x : x + iw] = m
                gts.append(full)
            faces_all += [None if f is None else [(px + x, py + y) for px, py in f] for f in faces]
        y += rh
    gt_arr = np.stack(gts) if gts else np.zeros((0, H, W), bool)
    return {"pixels": canvas, "gt": gt_arr, "faces": faces_all}


def augment(items: list[dict[str, Any]], kinds: tuple[str, ...] = KINDS) -> list[dict[str, Any]]:
    """The augmented items of ``items`` (dicts with ``name``, ``path``, ``gt``, ``faces``), per kind in
    ``kinds``; only photos with at least one labelled face are used."""
    base = [(it, _load(it)) for it in items if any(it["faces"])]
    out: list[dict[str, Any]] = []
    for kind in kinds:
        if kind == "small":
            for i in range(0, len(base), 4):
                group = base[i : i + 4]
                stem = "+".join(Path(it["name"]).name for it, _ in group)
                out.append({"name": f"aug-small/{stem}", **_mosaic(group)})
            continue
        for it, px in base:
            stem = Path(it["name"]).name
            new = (_rot(it, px, 1) if kind == "rot90" else _rot(it, px, 3) if kind == "rot270"
                   else _cut(it, px) if kind == "cut" else _occlude(it, px) if kind == "occlude" else None)
            if new is None:
                if kind not in KINDS:
                    raise ValueError(f"unknown augmentation {kind!r}; choose from {', '.join(KINDS)}")
                continue
            out.append({"name": f"aug-{kind}/{stem}", **new})
    return out
