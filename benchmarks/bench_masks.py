"""Mask algebra speed and whole-pipeline memory at 4096² (a benchmark, not a test).

    python benchmarks/bench_masks.py [--size 4096] [--people 10] [--rss-people 20]

Prints JSON and a table:
- ``build_masks`` for N people at SIZE² (half erased, half kept: union, dilation, cleaning, overlap
  resolution) next to a bare ``cv2.dilate`` of the chosen people's union on the full frame, measured in
  the same run; goal: ratio <= 3.
- peak RSS of a child process that loads a SIZE² photo with ``--rss-people`` people and erases them all
  (label-map segmenter, Telea eraser, so the number measures our arrays, not an engine); goal <= 1.5 GB.
  The same for ``redact`` (blur with its default margins: the largest regions this tool builds).
- redaction at scale: ``pe.redact`` (blur, defaults) of the same scene at SIZE/4 and SIZE; the time
  ratio next to the pixel ratio (16). Blur sigma and margins grow with the people, so a cost that
  grew with them too would show as a ratio far above 16 (before the pyramid blur: 5 people at 4096²
  took 290 s).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def scene_labels(size: int, people: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.zeros((size, size), np.uint8)
    cols = int(np.ceil(np.sqrt(people)))
    cell = size // cols
    for k in range(people):
        r, c = divmod(k, cols)
        cx = c * cell + cell // 2 + int(rng.integers(-cell // 10, cell // 10 + 1))
        cy = r * cell + cell // 2
        cv2.ellipse(labels, (cx, cy), (cell // 6, int(cell * 0.42)), 0, 0, 360, k + 1, -1)
        cv2.circle(labels, (cx, cy - int(cell * 0.42)), cell // 12, k + 1, -1)
    return labels


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1000.0


def bench_algebra(size: int, people: int) -> dict:
    from person_erase import Instances
    from person_erase import masks as M

    inst = Instances.from_label_map(scene_labels(size, people))
    chosen = list(range(0, len(inst), 2))
    radius = M.default_dilate(size, size)
    union_chosen = inst.masks[chosen].any(axis=0).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    ms_ours = best_of(lambda: M.build_masks(inst, chosen, dilate_px=radius))
    ms_bare = best_of(lambda: cv2.dilate(union_chosen, kernel))
    return {"size": size, "people": len(inst), "dilate_px": radius, "build_masks_ms": round(ms_ours, 1),
            "bare_cv2_dilate_ms": round(ms_bare, 1), "ratio": round(ms_ours / ms_bare, 2), "goal_ratio": 3.0}


CHILD = r"""
import sys, resource, numpy as np
from PIL import Image as PILImage
import person_erase as pe
img_path, lab_path = sys.argv[1], sys.argv[2]
if sys.argv[3] == "redact":
    res = pe.redact(img_path, segmenter=f"labels:{lab_path}", style="blur")
else:
    res = pe.erase(img_path, segmenter=f"labels:{lab_path}", eraser="telea")
assert res.report.outside_mask_changed_px == 0
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def bench_rss(size: int, people: int, mode: str = "erase") -> dict:
    labels = scene_labels(size, people, seed=1)
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.stack(
        [(128 + 60 * np.sin(xx / 23.0)), (128 + 60 * np.cos(yy / 17.0)), rng.integers(60, 200, (size, size))], 2
    )
    img = img.clip(0, 255).astype(np.uint8)
    img[labels > 0] = (200, 30, 30)
    with tempfile.TemporaryDirectory() as d:
        ip, lp = Path(d) / "big.png", Path(d) / "big.labels.png"
        from PIL import Image as PILImage

        PILImage.fromarray(img).save(ip, compress_level=1)
        PILImage.fromarray(labels).save(lp)
        del img, labels
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(ip), str(lp), mode], capture_output=True, text=True, check=True
        )
        secs = time.perf_counter() - t0
    kb = int(out.stdout.strip().splitlines()[-1])
    return {
        "mode": mode,
        "size": size,
        "people": people,
        "peak_rss_mb": round(kb / 1024, 1),
        "goal_mb": 1536,
        "seconds": round(secs, 1),
    }


def bench_redact_scale(size: int, people: int) -> dict:
    import person_erase as pe
    from person_erase import Instances

    out = {}
    for s in (size // 4, size):
        labels = scene_labels(s, people, seed=3)
        rng = np.random.default_rng(4)
        img = rng.integers(0, 255, (s, s, 3), np.uint8)
        inst = Instances.from_label_map(labels)
        out[s] = best_of(
            lambda img=img, inst=inst: pe.redact(img, inst, policy="all", style="blur"), repeat=2 if s < size else 1
        )
    small, big = out[size // 4], out[size]
    return {"people": people, "small": size // 4, "big": size, "small_ms": round(small, 1), "big_ms": round(big, 1),
            "ratio": round(big / small, 1), "pixel_ratio": 16}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--people", type=int, default=10)
    ap.add_argument("--rss-people", type=int, default=20)
    args = ap.parse_args()
    alg = bench_algebra(args.size, args.people)
    rss = bench_rss(args.size, args.rss_people)
    rss_red = bench_rss(args.size, args.rss_people, mode="redact")
    red = bench_redact_scale(args.size, 5)
    print(
        json.dumps(
            {"mask_algebra": alg, "pipeline_memory": rss, "redact_memory": rss_red, "redact_scale": red}, indent=2
        )
    )
    print()
    print(f"{'measure':<44}{'value':>12}{'goal':>10}")
    what = f"build_masks / bare cv2.dilate ({alg['people']} people, {args.size}²)"
    print(f"{what:<44}{alg['ratio']:>12}{'<= 3':>10}")
    print(f"{'  build_masks ms':<44}{alg['build_masks_ms']:>12}")
    print(f"{'  bare dilate ms':<44}{alg['bare_cv2_dilate_ms']:>12}")
    what = f"peak RSS MB ({rss['people']} people, {args.size}², erase all)"
    print(f"{what:<44}{rss['peak_rss_mb']:>12}{'<= 1536':>10}")
    what = f"peak RSS MB ({rss_red['people']} people, {args.size}², redact all)"
    print(f"{what:<44}{rss_red['peak_rss_mb']:>12}{'<= 1536':>10}")
    print(f"{'redact time ' + str(red['big']) + '² / ' + str(red['small']) + '² (pixels 16x)':<44}{red['ratio']:>12}")
    print(f"{'  redact ms at ' + str(red['big']) + '², 5 people':<44}{red['big_ms']:>12}")
    _ = resource  # keep the import for readers of CHILD


if __name__ == "__main__":
    main()
