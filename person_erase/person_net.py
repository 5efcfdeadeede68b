"""The person net of ``redact``: a second, recall-first look for people the segmentation missed.

Redaction hides what was found, so a person the segmenter did not report stays visible. The
segmenter's detector settings are chosen for erasing (a false person costs an inpainted hole, so
the threshold is 0.25), and YOLOX-nano sees a 640 px photo at most at 1.3x (832 px), where people
under ~40 px tall are at the edge of what it resolves. For privacy a missed passer-by costs more than
a blurred patch of background, so after the body region is built, ``redact`` looks once more:

1. **Detection for recall.** The same bundled detector at 416, 832 and 1280 px (a 640 px photo seen
   at 2x, so small people are twice the size the model needs) with a low score threshold
   (``NET_SCORE`` = 0.07 instead of 0.25).
2. **Only what is new.** A box at least 90 % inside the region already is a person already hidden
   (``COVERED``); a box on a kept person (a third of it on their mask, or two thirds of it inside their
   box) is never used, so the subject under ``passersby`` is never touched.
3. **Hidden like a segmented person.** Each remaining person gets a mask from the local segmenter's
   mask models (``LocalSegmenter.masks_for_boxes``) and the redaction growth of ``masks.privacy_grow_into``:
   people shorter than ``box_below`` px are covered by their grown box, taller ones by their mask
   grown by the margin. The keep mask still wins.

On the dev sets (``benchmarks/README.md``, *Bodies: the person net*) this takes the people covered
>= 95 % from 91.4 % to 97.1 % on COCO-dev (small people boxed by the detector from 33 to 42 of 50) at
1.26x the redacted background, Penn-Fudan staying at 100 % at 1.08x; most people it adds are false
(a blurred patch each). Each person added is listed in the report (``people_added``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import masks as masks_mod

#: Detector input sizes of the net (long side, px): the segmenter's two and a 2x view of a 640 px photo.
NET_SIZES = (416, 832, 1280)
#: Detector confidence from which the net hides a person (the segmenter's default is 0.25).
NET_SCORE = 0.07
#: Preset of the net's segmenter, whose mask models draw each added person (``LocalSegmenter``).
NET_QUALITY = "balanced"
#: A box this much inside the region so far is a person already hidden.
COVERED = 0.9
#: A box with this share on a kept person's mask, or ...
ON_KEPT_MASK = 1 / 3
#: ... this share inside a kept person's box, is that person (or part of them): never used.
IN_KEPT_BOX = 2 / 3

_SEGMENTER: Any = None
_LOCK = threading.Lock()


def _segmenter() -> Any:
    """The net's local segmenter (built once per process; its mask models are shared anyway)."""
    global _SEGMENTER
    with _LOCK:
        if _SEGMENTER is None:
            from .segmenters.local import LocalSegmenter

            _SEGMENTER = LocalSegmenter(NET_QUALITY, score_threshold=NET_SCORE, det_sizes=NET_SIZES)
        return _SEGMENTER


@dataclass(frozen=True)
class NetPlan:
    """What the person net adds.

    Attributes:
        region: (H, W) bool, the pixels to add to the redaction (keep mask not yet removed).
        added: one dict per person added: ``box`` [x0, y0, x1, y1] (int px), ``score``, ``new_px``
            (pixels of the person's region that were outside the region so far) and ``person``: the
            number of the segmented person whose box this is (box IoU >= 0.5; the net then completed
            a partial mask), or None for someone the segmentation did not report.
        boxes: how many boxes the detector reported at ``NET_SCORE`` (before the filters).
    """

    region: np.ndarray
    added: list[dict[str, Any]] = field(default_factory=list)
    boxes: int = 0


def _share(mask: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = box
    win = mask[y0:y1, x0:x1]
    return float(win.mean()) if win.size else 0.0


def _inside(box: tuple[int, int, int, int], other: np.ndarray) -> float:
    """Share of ``box`` lying inside ``other`` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    ix = max(0.0, min(x1, float(other[2])) - max(x0, float(other[0])))
    iy = max(0.0, min(y1, float(other[3])) - max(y0, float(other[1])))
    return ix * iy / max(1.0, float((x1 - x0) * (y1 - y0)))


def _iou(a: tuple[int, int, int, int], b: np.ndarray) -> float:
    inter = _inside(a, b) * max(1.0, float((a[2] - a[0]) * (a[3] - a[1])))
    union = (a[2] - a[0]) * (a[3] - a[1]) + float((b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / max(1.0, union)


def plan_people(
    pixels: np.ndarray,
    people: Any,
    chosen: np.ndarray,
    region: np.ndarray,
    keep: np.ndarray,
    *,
    radius: int,
    margin: float,
    box_below: int,
    boxes: np.ndarray | None = None,
    scores: np.ndarray | None = None,
) -> NetPlan:
    """People the segmentation missed, as a region to add to a body redaction.

    Args:
        pixels: (H, W, 3) uint8 RGB photo.
        people: the photo's ``Instances``.
        chosen: (N,) bool per row of ``people``: selected for redaction (the others are kept).
        region: (H, W) bool, the body redaction region so far.
        keep: (H, W) bool, the keep mask (kept people).
        radius / margin / box_below: the redaction growth (``masks.build_masks``).
        boxes / scores: the detector's boxes and scores to use (default: the net's own detection).

    Returns:
        NetPlan; its region does not yet exclude ``keep`` (the caller removes it, as for every region).
    """
    h, w = region.shape
    if boxes is None or scores is None:
        boxes, scores = _segmenter().detect(pixels)
    kept = np.flatnonzero(~np.asarray(chosen, bool))
    kept_boxes = [people.boxes[j] for j in kept]
    todo: list[tuple[tuple[int, int, int, int], float]] = []
    for b, s in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(scores).reshape(-1), strict=True):
        x0, y0 = max(0, int(np.floor(b[0]))), max(0, int(np.floor(b[1])))
        x1, y1 = min(w, int(np.ceil(b[2]))), min(h, int(np.ceil(b[3])))
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        box = (x0, y0, x1, y1)
        if _share(region, box) >= COVERED:
            continue  # already hidden
        if _share(keep, box) >= ON_KEPT_MASK or any(_inside(box, kb) >= IN_KEPT_BOX for kb in kept_boxes):
            continue  # a kept person, or part of one
        todo.append((box, float(s)))
    out = np.zeros((h, w), bool)
    if not todo:
        return NetPlan(out, [], len(boxes))
    tall = [k for k, (box, _) in enumerate(todo) if box[3] - box[1] >= box_below]
    masks = (_segmenter().masks_for_boxes(pixels, np.array([todo[k][0] for k in tall], np.float32))
             if tall else np.zeros((0, h, w), bool))
    mask_of = dict(zip(tall, masks, strict=True))
    added = []
    for k, (box, s) in enumerate(todo):
        one = np.zeros((h, w), bool)
        mask = mask_of.get(k)
        if mask is None:  # short: covered by its box (``privacy_grow_into``), whatever its mask
            mask = np.zeros((h, w), bool)
            x0, y0, x1, y1 = box
            mask[y0:y1, x0:x1] = True
        elif not mask.any():
            continue  # the mask models see nobody in the box
        masks_mod.privacy_grow_into(one, mask, np.array(box), margin=margin, box_below_px=box_below, radius=radius)
        new = int((one & ~region & ~out).sum())
        if not new:
            continue
        out |= one
        ious = [(_iou(box, people.boxes[j]), int(people.index[j])) for j in np.flatnonzero(chosen)]
        best = max(ious, default=(0.0, None))
        added.append({"box": [int(v) for v in box], "score": round(s, 4), "new_px": new,
                      "person": best[1] if best[0] >= 0.5 else None})
    return NetPlan(out, added, len(boxes))
