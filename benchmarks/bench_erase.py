"""Erase quality and speed benchmark (protocol of shared/reference/erase-quality.md).

Synthetic person-shaped holes: a real person mask from one Penn-Fudan photo (dilated 4 px) is placed
on a person-free region of another photo; each eraser fills it (through ``compose.apply_eraser``,
i.e. cropped like the pipeline does, with the photo's own people as the keep mask) and is compared
with the true pixels:

* ``psnr_db`` inside the hole (higher is better);
* ``texture_ratio`` = mean |Laplacian| of the result inside the hole eroded by 2 px, divided by the
  same for the true pixels (~1 real texture, << 1 smear, >> 1 noise).

Two sets: the photos at native size (~0.2-0.5 MP) and the same holes with the photo scaled to 1 MP
(seconds per person hole at 1 MP is the speed goal: <= 1 s). Plus the crop scaling check: one person
hole in a 1024^2 vs a 4096^2 photo (goal: time ratio <= 1.5).

Usage: python benchmarks/bench_erase.py [--holes N] [--only NAME,...] [--no-1mp] [--no-scale]
                                       [--eraser SPEC ...]
``--eraser`` adds any eraser the pipeline accepts, e.g. ``lama:lama_fp32.onnx``, ``migan:migan_pipeline_v2.onnx``
or a name from ``person-erase models list``; it is measured next to the default PatchMatch (unless ``--only``).
Prints a JSON document, then a table. Needs ../shared/data/persons (skips with a message otherwise).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from person_erase.compose import apply_eraser  # noqa: E402
from person_erase.erasers.patchmatch import PatchMatchEraser  # noqa: E402
from person_erase.erasers.telea import TeleaEraser  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "persons"


@dataclass
class Hole:
    name: str
    image: np.ndarray  # (H, W, 3) uint8, the true photo
    hole: np.ndarray  # (H, W) bool
    keep: np.ndarray  # (H, W) bool, the photo's own people


def load_devset() -> list[tuple[str, np.ndarray, np.ndarray]]:
    items = []
    for p in sorted((DATA / "images").glob("*.png")):
        img = np.array(Image.open(p).convert("RGB"))
        inst = np.array(Image.open(DATA / "masks" / p.name))
        items.append((p.stem, img, inst))
    return items


def _dilate(mask: np.ndarray, px: int) -> np.ndarray:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), k) > 0


def make_holes(items: list[tuple[str, np.ndarray, np.ndarray]], n: int, seed: int = 0) -> list[Hole]:
    """Up to ``n`` holes: person masks of photo i+k placed on person-free spots of photo i."""
    rng = np.random.default_rng(seed)
    people = [(name, inst == k) for name, _, inst in items for k in range(1, int(inst.max()) + 1)]
    people = [(name, m) for name, m in people if m.sum() > 1500]
    holes: list[Hole] = []
    for i, (name, img, inst) in enumerate(items * 3):
        if len(holes) >= n:
            break
        h, w = inst.shape
        busy = _dilate(inst > 0, 12)
        src_name, src = people[(7 * i + 3) % len(people)]
        ys, xs = np.nonzero(src)
        shape = _dilate(src[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1], 4)
        shape = np.pad(src[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1], 4)
        shape = _dilate(shape, 4)
        for scale in (1.0, 0.8, 0.65, 0.5, 0.4):
            sh = cv2.resize(shape.astype(np.uint8), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) > 0
            hh, ww = sh.shape
            if hh >= h - 8 or ww >= w - 8:
                continue
            spots = [(int(rng.integers(4, h - hh - 4)), int(rng.integers(4, w - ww - 4))) for _ in range(200)]
            spot = next((s for s in spots if not (busy[s[0] : s[0] + hh, s[1] : s[1] + ww] & sh).any()), None)
            if spot is not None:
                hole = np.zeros((h, w), bool)
                hole[spot[0] : spot[0] + hh, spot[1] : spot[1] + ww] = sh
                holes.append(Hole(f"{name}<-{src_name}", img, hole, inst > 0))
                break
    return holes


def to_1mp(hole: Hole) -> Hole:
    h, w = hole.hole.shape
    s = (1e6 / (h * w)) ** 0.5
    size = (round(w * s), round(h * s))
    img = cv2.resize(hole.image, size, interpolation=cv2.INTER_CUBIC)
    m = cv2.resize(hole.hole.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    k = cv2.resize(hole.keep.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    return Hole(hole.name, img, m, k & ~m)


def _abs_lap(img: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.abs(cv2.Laplacian(gray, cv2.CV_32F, ksize=1))


def score(result: np.ndarray, truth: np.ndarray, hole: np.ndarray) -> dict[str, float]:
    diff = result[hole].astype(np.float64) - truth[hole].astype(np.float64)
    mse = float(np.mean(diff**2))
    psnr = 10 * np.log10(255.0**2 / max(mse, 1e-9))
    inner = cv2.erode(hole.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    if inner.sum() < 50:
        inner = hole
    tr = float(_abs_lap(result)[inner].mean() / max(_abs_lap(truth)[inner].mean(), 1e-6))
    return {"psnr_db": float(psnr), "texture_ratio": tr}


def run(make: Callable[[], Any], holes: list[Hole]) -> dict[str, Any]:
    eraser = make()
    rows = []
    for h in holes:
        t = time.perf_counter()
        out, stats = apply_eraser(eraser, h.image, h.hole, h.keep)
        dt = time.perf_counter() - t
        rows.append({**score(out, h.image, h.hole), "s": dt, "hole_px": int(h.hole.sum()),
                     "raw_outside_changed_px": stats.raw_outside_changed_px})
    agg = {k: float(np.mean([r[k] for r in rows])) for k in ("psnr_db", "texture_ratio", "s")}
    agg["texture_ratio_median"] = float(np.median([r["texture_ratio"] for r in rows]))
    agg["s_max"] = float(max(r["s"] for r in rows))
    agg["hole_px_mean"] = float(np.mean([r["hole_px"] for r in rows]))
    agg["raw_outside_changed_px"] = int(sum(r["raw_outside_changed_px"] for r in rows))
    agg["holes"] = len(rows)
    return agg


CANDIDATES: dict[str, Callable[[], Any]] = {
    "telea": lambda: TeleaEraser(),
    "patchmatch (default)": lambda: PatchMatchEraser(),
    "patchmatch full-res": lambda: PatchMatchEraser(work_px=None),
    "patchmatch work_px=3000": lambda: PatchMatchEraser(work_px=3000),
    "patchmatch work_px=8000": lambda: PatchMatchEraser(work_px=8000),
    "patchmatch work_px=5000 no detail": lambda: PatchMatchEraser(detail=False),
}


def scale_check(make: Callable[[], Any], repeats: int = 2) -> dict[str, float]:
    """The same person hole in a 1024^2 and a 4096^2 photo; seconds and ratio."""
    items = load_devset()
    name, img, inst = items[0]
    person = inst == 1
    ys, xs = np.nonzero(person)
    patch = img[max(0, ys.min() - 60) : ys.max() + 60, max(0, xs.min() - 60) : xs.max() + 60]
    pmask = _dilate(person, 6)[max(0, ys.min() - 60) : ys.max() + 60, max(0, xs.min() - 60) : xs.max() + 60]
    times = {}
    for side in (1024, 4096):
        reps = int(np.ceil(side / min(patch.shape[:2]))) + 1
        canvas = np.tile(patch, (reps, reps, 1))[:side, :side].copy()
        hole = np.zeros((side, side), bool)
        y, x = side // 2, side // 2
        hole[y : y + pmask.shape[0], x : x + pmask.shape[1]] = pmask[: side - y, : side - x]
        canvas[y : y + patch.shape[0], x : x + patch.shape[1]] = patch[: side - y, : side - x]
        eraser = make()
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            apply_eraser(eraser, canvas, hole, None)
            best = min(best, time.perf_counter() - t)
        times[side] = best
    return {"s_1024": times[1024], "s_4096": times[4096], "ratio_4096_vs_1024": times[4096] / times[1024]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--holes", type=int, default=20)
    ap.add_argument("--only", default="", help="comma-separated candidate names (substring match)")
    ap.add_argument("--no-1mp", action="store_true")
    ap.add_argument("--no-scale", action="store_true")
    ap.add_argument("--eraser", action="append", default=[], metavar="SPEC",
                    help="also measure this eraser (lama:FILE.onnx, migan:FILE.onnx, a model-store name, ...)")
    args = ap.parse_args(argv)
    from person_erase.erasers import get_eraser
    from person_erase.errors import PersonEraseError

    for spec in args.eraser:
        try:
            get_eraser(spec)  # fail now, with the engine's own message, not after the baseline ran
        except PersonEraseError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        CANDIDATES[spec] = lambda spec=spec: get_eraser(spec)
    if args.eraser and not args.only:
        args.only = ",".join(["patchmatch (default)", *args.eraser])
    if not DATA.is_dir():
        print(json.dumps({"skipped": f"{DATA} not found"}))
        return 0
    holes = make_holes(load_devset(), args.holes)
    holes_1mp = [to_1mp(h) for h in holes]
    names = [n for n in CANDIDATES if not args.only or any(o == n or o in n for o in args.only.split(","))]
    results: dict[str, Any] = {"holes": len(holes), "native": {}, "1mp": {}}
    for n in names:
        results["native"][n] = run(CANDIDATES[n], holes)
        if not args.no_1mp:
            results["1mp"][n] = run(CANDIDATES[n], holes_1mp)
        print(f"# done {n}", file=sys.stderr, flush=True)
    if not args.no_scale:
        scaled = ("patchmatch (default)", "telea", *args.eraser)
        results["scale"] = {n: scale_check(CANDIDATES[n]) for n in names if n in scaled}
    print(json.dumps(results, indent=1))
    print()
    width = max([34, *(len(n) for n in names)])
    print(
        f"{'method':{width}s} {'set':6s} {'psnr_db':>8s} {'texture':>8s} {'tex_med':>8s} {'s/hole':>7s} {'s_max':>6s} "
        f"{'hole_px':>8s}"
    )
    for set_name in ("native", "1mp"):
        for n, r in results[set_name].items():
            print(
                f"{n:{width}s} {set_name:6s} {r['psnr_db']:8.2f} {r['texture_ratio']:8.2f} "
                f"{r['texture_ratio_median']:8.2f} "
                f"{r['s']:7.2f} {r['s_max']:6.2f} {r['hole_px_mean']:8.0f}"
            )
    for n, r in results.get("scale", {}).items():
        print(
            f"{n:{width}s} one hole 1024^2 {r['s_1024']:.2f} s, 4096^2 {r['s_4096']:.2f} s, ratio "
            f"{r['ratio_4096_vs_1024']:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
