"""Dev-set loading and instance-mask metrics shared by the benchmarks (and tests).

Dev sets live outside the repo, in ``../shared/data/<name>/`` (``images/``, ``masks/`` label maps
0 = background, 1..N = person, ``manifest.json``). Nothing here is used by the package at run time.

Metrics (all on boolean masks):

* **recall@IoU0.5**: GT people matched one-to-one (Hungarian on mask IoU) to a prediction with
  IoU >= 0.5, overall and per COCO size bucket (mask area: small < 32², medium < 96², large).
* **mean matched IoU**: mean IoU over those matched pairs.
* **unmatched predictions**: predictions with no GT partner (may be unlabelled real people).
* **redaction coverage**: share of GT people with >= 95 % of their pixels inside the union of the
  predicted masks dilated by ~1 % of the image diagonal ("redact everyone").
* **where people are lost** (when the detector boxes are given): a GT person with no mask match is a
  *detector miss* when no box has IoU >= 0.5 with the GT mask's bounding box, else a *mask failure*;
  box recall is the share of GT people with such a box.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
DATA_ROOT = REPO.parent / "shared" / "data"
DEFAULT_SETS = ("persons", "coco-persons-dev")
BUCKETS = ("small", "medium", "large")


def size_bucket(area: int) -> str:
    """COCO size bucket of a mask area in pixels."""
    return "small" if area < 32**2 else "medium" if area < 96**2 else "large"


@dataclass(frozen=True)
class Sample:
    """One dev photo: ``image`` (H, W, 3) uint8 RGB, ``gt`` (N, H, W) bool, ``buckets`` per person."""

    name: str
    image: np.ndarray
    gt: np.ndarray
    buckets: tuple[str, ...]


def dataset_dirs(names: Iterable[str] = DEFAULT_SETS, root: Path = DATA_ROOT) -> list[Path]:
    """Existing dataset folders among ``names`` (absolute paths or names under ``root``)."""
    out = []
    for n in names:
        p = Path(n)
        p = p if p.is_absolute() or p.exists() else root / n
        if (p / "manifest.json").is_file():
            out.append(p)
    return out


def load_samples(directory: Path) -> Iterator[Sample]:
    """Photos and GT masks of one dev set, in manifest order."""
    manifest = json.loads((directory / "manifest.json").read_text())
    for item in manifest["items"]:
        image = np.array(Image.open(directory / item["image"]).convert("RGB"))
        labels = np.array(Image.open(directory / item["mask"]))
        if labels.ndim == 3:
            labels = labels[..., 0]
        ids = np.unique(labels)
        ids = ids[ids > 0]
        gt = labels[None] == ids[:, None, None]
        buckets = tuple(size_bucket(int(a)) for a in gt.reshape(len(gt), -1).sum(axis=1))
        yield Sample(Path(item["image"]).stem, image, gt, buckets)


def iou_matrix(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(P, G) mask IoU between (P, H, W) and (G, H, W) bool stacks."""
    if len(pred) == 0 or len(gt) == 0:
        return np.zeros((len(pred), len(gt)), dtype=np.float64)
    p = pred.reshape(len(pred), -1).astype(np.float32)
    g = gt.reshape(len(gt), -1).astype(np.float32)
    inter = p @ g.T
    union = p.sum(1)[:, None] + g.sum(1)[None, :] - inter
    return inter / np.maximum(union, 1)


def match(pred: np.ndarray, gt: np.ndarray, *, thr: float = 0.5) -> list[tuple[int, int, float]]:
    """One-to-one (pred, gt, IoU) pairs with IoU >= ``thr``, maximising total IoU (Hungarian).

    Falls back to greedy matching (highest IoU first) when scipy is not installed; with
    ``thr`` > 0.5 and disjoint masks (label maps) both give the same pairs: a mask can then overlap
    only one partner that much.
    """
    iou = iou_matrix(pred, gt)
    if iou.size == 0:
        return []
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        pairs, used_p, used_g = [], set(), set()
        for flat in np.argsort(-iou, axis=None):
            r, c = divmod(int(flat), iou.shape[1])
            if iou[r, c] < thr:
                break
            if r not in used_p and c not in used_g:
                pairs.append((r, c, float(iou[r, c])))
                used_p.add(r)
                used_g.add(c)
        return pairs
    rows, cols = linear_sum_assignment(-np.where(iou >= thr, iou, 0.0))
    return [(int(r), int(c), float(iou[r, c])) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= thr]


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """(N, 4) float32 x0, y0, x1, y1 (exclusive) bounding boxes of (N, H, W) bool masks (0s if empty)."""
    out = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
        if len(ys):
            out[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, B) IoU between (A, 4) and (B, 4) x0, y0, x1, y1 boxes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def coverage(pred: np.ndarray, gt: np.ndarray, *, dilate_frac: float = 0.01) -> np.ndarray:
    """(G,) share of each GT person's pixels inside the union of ``pred`` dilated by ~1 % of the diagonal."""
    h, w = gt.shape[1:] if gt.ndim == 3 else pred.shape[1:]
    union = pred.any(axis=0) if len(pred) else np.zeros((h, w), bool)
    r = max(1, round(dilate_frac * float(np.hypot(h, w))))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    union = cv2.dilate(union.astype(np.uint8), k) > 0
    area = gt.reshape(len(gt), -1).sum(axis=1)
    inside = (gt & union[None]).reshape(len(gt), -1).sum(axis=1)
    return inside / np.maximum(area, 1)


@dataclass
class Score:
    """Accumulated metrics over many photos; ``summary()`` gives the numbers."""

    gt: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))
    hit: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))
    ious: list[float] = field(default_factory=list)
    unmatched_pred: int = 0
    images: int = 0
    covered: int = 0
    covered_by_bucket: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))
    misses: list[str] = field(default_factory=list)
    box_hit: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))
    det_miss: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))
    mask_fail: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))
    with_boxes: bool = False

    def add(self, sample: Sample, pred: np.ndarray, boxes: np.ndarray | None = None) -> None:
        """Score one photo's predicted masks; ``boxes`` (detector boxes) adds the miss breakdown."""
        pairs = match(pred, sample.gt)
        matched_gt = {g for _, g, _ in pairs}
        self.images += 1
        self.unmatched_pred += len(pred) - len(pairs)
        cov = coverage(pred, sample.gt)
        box_ok = None
        if boxes is not None:
            self.with_boxes = True
            biou = box_iou(mask_boxes(sample.gt), boxes)
            box_ok = biou.max(axis=1) >= 0.5 if biou.shape[1] else np.zeros(len(sample.gt), bool)
        for g, b in enumerate(sample.buckets):
            self.gt[b] += 1
            boxed = bool(box_ok[g]) if box_ok is not None else False
            self.box_hit[b] += boxed
            if g in matched_gt:
                self.hit[b] += 1
            else:
                self.misses.append(f"{sample.name}#{g + 1}({b}{', box found' if boxed else ''})")
                if box_ok is not None:
                    (self.mask_fail if boxed else self.det_miss)[b] += 1
            if cov[g] >= 0.95:
                self.covered += 1
                self.covered_by_bucket[b] += 1
        self.ious.extend(i for _, _, i in pairs)

    def summary(self) -> dict[str, float | int | dict[str, float]]:
        n = sum(self.gt.values())
        out: dict[str, float | int | dict[str, float]] = {
            "images": self.images,
            "people": n,
            "recall": round(sum(self.hit.values()) / max(n, 1), 3),
            "recall_by_size": {b: round(self.hit[b] / self.gt[b], 3) for b in BUCKETS if self.gt[b]},
            "people_by_size": {b: self.gt[b] for b in BUCKETS if self.gt[b]},
            "mean_matched_iou": round(float(np.mean(self.ious)) if self.ious else 0.0, 3),
            "unmatched_pred_per_image": round(self.unmatched_pred / max(self.images, 1), 2),
            "coverage_share": round(self.covered / max(n, 1), 3),
            "coverage_by_size": {b: round(self.covered_by_bucket[b] / self.gt[b], 3) for b in BUCKETS if self.gt[b]},
        }
        if self.with_boxes:
            out["box_recall"] = round(sum(self.box_hit.values()) / max(n, 1), 3)
            out["box_recall_by_size"] = {b: round(self.box_hit[b] / self.gt[b], 3) for b in BUCKETS if self.gt[b]}
            out["detector_misses_by_size"] = {b: self.det_miss[b] for b in BUCKETS if self.gt[b]}
            out["mask_failures_by_size"] = {b: self.mask_fail[b] for b in BUCKETS if self.gt[b]}
        return out
