"""Privacy benchmark: redaction coverage and removal-verification residue rate (issue 5).

On one or more folders in the dev-set format (``images/``, ``masks/`` label maps 0 = background,
1..N = person, ``manifest.json``; default: both dev sets under ../shared/data):

* **redaction coverage** (goal >= 98 %): under ``--policy all``, the share of ground-truth people
  whose mask is covered >= 95 % by the redaction mask (``result.erase_mask`` of ``pe.redact`` with
  its defaults: each segmented person grown by the privacy margin, people under ``box_below`` px
  covered by their box; exactly the pixels the redaction style paints). Also per COCO size bucket
  (mask area: small < 32², medium < 96², large).
* **faces left**: faces MediaPipe detects inside the redaction region before and after redacting
  (what ``redact --verify`` checks).
* **verification residue rate** (goal <= 2 %): everyone is erased with ``pe.erase(...,
  eraser="telea", verify=True)`` and the local segmenter is run again on the output; a residue is a
  re-detected person with >= 30 % of its mask inside the erased region (``pe.verify_removal``).
  Reported per image (share of images with people where any residue is found) and per person
  (share of GT people whose box is half-covered by a residue box). Telea is used for speed: it
  smears rather than re-textures, so it leaves person-coloured blobs more often than PatchMatch —
  this is a pessimistic estimate for the default eraser.

``--dilate-sweep 0,20,40`` adds the coverage plain dilated masks (no privacy margin) would reach
(``person_erase.masks.build_masks``, the mask algebra ``pe.redact`` uses), and ``detected`` is the
ceiling no dilation can pass: GT people that any segmented person touches at all.

People are segmented once per photo (``pe.segment``, local engine) and the same instances feed both
runs. Usage::

    python benchmarks/bench_privacy.py [DATASET_DIR ...] [--style blur|pixelate|solid] [--limit N]
        [--eraser telea|patchmatch] [--quality fast|balanced|best] [--min-score 0.25]

Prints a JSON document, then a table. Skips (exit 0, with a message) when no dev set is found.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import person_erase as pe  # noqa: E402

DATA = REPO.parent / "shared" / "data"
DEFAULT_SETS = ("persons", "coco-persons-dev")
COVER = 0.95


def _bucket(area: int) -> str:
    return "small" if area < 32**2 else "medium" if area < 96**2 else "large"


def _items(directory: Path, limit: int | None) -> list[tuple[str, Path, np.ndarray]]:
    manifest = json.loads((directory / "manifest.json").read_text())
    out = []
    for item in manifest["items"][:limit]:
        labels = np.array(Image.open(directory / item["mask"]))
        out.append((Path(item["image"]).stem, directory / item["image"], labels[..., 0] if labels.ndim == 3 else labels))
    return out


def _gt_masks(labels: np.ndarray) -> np.ndarray:
    ids = np.unique(labels)
    ids = ids[ids > 0]
    return labels[None] == ids[:, None, None]


def _box_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _covered_by_box(gt_box: tuple[int, int, int, int], box: list[int]) -> float:
    x0, y0 = max(gt_box[0], box[0]), max(gt_box[1], box[1])
    x1, y1 = min(gt_box[2], box[2]), min(gt_box[3], box[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    area = (gt_box[2] - gt_box[0]) * (gt_box[3] - gt_box[1])
    return inter / max(1, area)


def run(
    dirs: list[Path],
    *,
    style: str,
    limit: int | None,
    sweep: list[int],
    eraser: str = "telea",
    quality: str = "balanced",
    min_score: float = 0.25,
) -> dict[str, Any]:
    from person_erase.masks import build_masks
    from person_erase.pipeline import VERIFY_FACE_SCORE, faces_left
    from person_erase.subject import faces_in

    faces_before = faces_after = faces_detected_after = 0

    seg = pe.get_segmenter("local", quality=quality, score_threshold=min_score)
    gt_people = covered = detected = 0
    sweep_covered = dict.fromkeys(sweep, 0)
    by_bucket: dict[str, list[int]] = {}
    images_with_people = images_with_residue = residues = 0
    people_with_residue = 0
    misses: list[str] = []
    residue_images: list[str] = []
    seconds = {"segment": 0.0, "redact": 0.0, "erase+verify": 0.0}
    n_images = 0
    mask_source = f"erase mask of pe.redact(style={style!r})"
    for d in dirs:
        for name, path, labels in _items(d, limit):
            n_images += 1
            img = pe.load_image(path)
            gt = _gt_masks(labels)
            t0 = time.perf_counter()
            people = seg.segment(img.pixels)
            t1 = time.perf_counter()
            everyone = np.arange(len(people))
            sweep_masks = {d_px: build_masks(people, everyone, dilate_px=d_px).erase for d_px in sweep}
            er = None
            try:
                red = pe.redact(img, people, policy="all", style=style)
                mask = red.erase_mask
                if mask.any():
                    faces_before += len(faces_in(img.pixels, mask, min_score=VERIFY_FACE_SCORE))
                    faces_detected_after += len(faces_in(np.ascontiguousarray(red.image), mask,
                                                         min_score=VERIFY_FACE_SCORE))
                    faces_after += len(faces_left(red.image, mask, img.pixels))
            except (ImportError, pe.EngineError):  # no redaction eraser in this build yet
                mask_source = f"erase mask of pe.erase(eraser={eraser!r}) (redaction eraser unavailable)"
                er = pe.erase(img, people, policy="all", eraser=eraser, verify=seg)
                mask = er.erase_mask
            t2 = time.perf_counter()
            seconds["segment"] += t1 - t0
            seconds["redact" if er is None else "erase+verify"] += t2 - t1
            for g in range(len(gt)):
                area = int(gt[g].sum())
                share = float((gt[g] & mask).sum()) / max(1, area)
                b = _bucket(area)
                by_bucket.setdefault(b, [0, 0])
                by_bucket[b][0] += 1
                gt_people += 1
                detected += bool((gt[g] & people.union()).any())
                for d_px, m in sweep_masks.items():
                    sweep_covered[d_px] += float((gt[g] & m).sum()) / max(1, area) >= COVER
                if share >= COVER:
                    covered += 1
                    by_bucket[b][1] += 1
                else:
                    misses.append(f"{d.name}/{name}#{g + 1}({b}, {share:.0%})")
            if len(gt) == 0 and len(people) == 0:
                continue
            images_with_people += 1
            t3 = time.perf_counter()
            if er is None:
                er = pe.erase(img, people, policy="all", eraser=eraser, verify=seg)
            seconds["erase+verify"] += time.perf_counter() - t3
            ver = er.report.verification
            assert ver is not None
            if ver.residues:
                images_with_residue += 1
                residues += len(ver.residues)
                residue_images.append(f"{d.name}/{name}: {len(ver.residues)}")
            for g in range(len(gt)):
                gb = _box_of(gt[g])
                if any(_covered_by_box(gb, r.box) >= 0.5 for r in ver.residues):
                    people_with_residue += 1
    return {
        "datasets": [str(d) for d in dirs],
        "images": n_images,
        "gt_people": gt_people,
        "style": style,
        "segmenter": {"quality": quality, "min_score": min_score},
        "mask_source": mask_source,
        "coverage": {
            "goal": ">= 0.98 of GT people covered >= 95 % by the redaction mask (--policy all)",
            "share": round(covered / max(1, gt_people), 4),
            "covered": covered,
            "by_size": {b: {"people": v[0], "share": round(v[1] / max(1, v[0]), 4)} for b, v in sorted(by_bucket.items())},
            "detected": round(detected / max(1, gt_people), 4),
            "by_dilate_px": {str(k): round(v / max(1, gt_people), 4) for k, v in sweep_covered.items()},
            "misses": misses,
        },
        "faces": {
            "what": "faces MediaPipe detects inside the redaction region (score >= VERIFY_FACE_SCORE); "
            "'left' also match the original face as a 16x16 thumbnail (what redact --verify counts)",
            "before_redaction": faces_before,
            "detected_after": faces_detected_after,
            "left_after": faces_after,
        },
        "residue": {
            "goal": "<= 0.02 (erase everyone, re-segment the output)",
            "eraser": eraser,
            "image_rate": round(images_with_residue / max(1, images_with_people), 4),
            "images_with_people": images_with_people,
            "images_with_residue": images_with_residue,
            "residues": residues,
            "person_rate": round(people_with_residue / max(1, gt_people), 4),
            "residue_images": residue_images,
        },
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }


def table(res: dict[str, Any]) -> str:
    cov, resi = res["coverage"], res["residue"]
    rows = [
        ("metric", "value", "goal"),
        ("images / GT people", f"{res['images']} / {res['gt_people']}", ""),
        (f"redaction coverage ({res['style']})", f"{cov['share']:.1%}", ">= 98 %"),
        *[(f"  coverage at --dilate {k}", f"{v:.1%}", "") for k, v in cov["by_dilate_px"].items()],
        ("faces before / detected after / left after", f"{res['faces']['before_redaction']} / "
         f"{res['faces']['detected_after']} / {res['faces']['left_after']}", "left = 0"),
        ("  detected at all (ceiling)", f"{cov['detected']:.1%}", ""),
        *[(f"  coverage, {b}", f"{v['share']:.1%} of {v['people']}", "") for b, v in cov["by_size"].items()],
        (f"residue rate ({resi['eraser']}), images", f"{resi['image_rate']:.1%} ({resi['images_with_residue']}/{resi['images_with_people']})", "<= 2 %"),
        ("residue rate, GT people", f"{resi['person_rate']:.1%}", "<= 2 %"),
        ("seconds segment / redact / erase+verify",
         " / ".join(f"{res['seconds'][k]:.0f}" for k in ("segment", "redact", "erase+verify")), ""),
    ]
    w = [max(len(r[k]) for r in rows) for k in range(3)]
    return "\n".join("  ".join(c.ljust(w[k]) for k, c in enumerate(r)).rstrip() for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", nargs="*", help="dev-set folders (default: ../shared/data/{persons,coco-persons-dev})")
    ap.add_argument("--style", default="blur", choices=["blur", "pixelate", "solid"],
                    help="redaction style (the mask, hence coverage, is the same for every style; faces left differ)")
    ap.add_argument("--eraser", default="telea", help="eraser for the residue run (telea: fast, pessimistic)")
    ap.add_argument("--quality", default="balanced", help="local segmenter preset (fast|balanced|best)")
    ap.add_argument("--min-score", type=float, default=0.25, help="detector confidence threshold (redact --min-score)")
    ap.add_argument("--limit", type=int, default=None, help="first N photos of each set")
    ap.add_argument("--dilate-sweep", default="0,20,40", help="also report coverage at these dilations (px)")
    args = ap.parse_args(argv)
    sweep = [int(x) for x in args.dilate_sweep.split(",") if x.strip()]
    names = args.datasets or [str(DATA / n) for n in DEFAULT_SETS]
    dirs = [Path(n) for n in names if (Path(n) / "manifest.json").is_file()]
    if not dirs:
        print(f"no dev set found among {names}; nothing to measure", file=sys.stderr)
        return 0
    res = run(dirs, style=args.style, limit=args.limit, sweep=sweep, eraser=args.eraser,
              quality=args.quality, min_score=args.min_score)
    print(json.dumps(res, indent=2))
    print()
    print(table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
