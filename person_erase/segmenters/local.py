"""The offline segmenter: YOLOX-nano person boxes, then one mask per person from MediaPipe's models.

Pipeline for one photo (all models are bundled; nothing is downloaded):

1. **Boxes.** YOLOX-nano (COCO, person class) at one or more input sizes. The bundled ONNX is
   made size-dynamic in memory (``_yolox.dynamic_input_model``). A larger second pass finds the
   small people the 416 pass misses; it only contributes boxes that are small in its canvas, because
   upscaled big people break into fragments. One NMS merges all passes.
2. **Masks per box**, on a crop with a margin around the box, with MediaPipe 0.10.21's models run as
   ONNX on onnxruntime (``_mediapipe``; no ``mediapipe`` package):
   * **pose segmentation** (instance-level: it segments the one person whose pose it
     finds), joined with the **selfie segmentation** (class-level, recovers arms, bags and clothing
     the pose mask leaves out) — used whenever pose finds someone;
   * no pose: selfie segmentation for people taller than 64 px, else an **ellipse** inscribed in the
     box (no model resolves people that small; an ellipse overlaps them better than the box does);
   * ``balanced``/``best`` also run selfie on the crop **padded to a square** (the model stretches
     its input to 256x256, so tall crops come out squeezed) and keep that mask instead when its
     extent fits the detector box better (box IoU higher by > 0.1): this catches pose masks that
     latched onto a neighbour or covered only part of the person.
   Every mask stays within its box (plus 4 %). All people of the photo go through each model in one
   batched call (pose detector, pose landmarks, selfie, square-padded selfie; at most
   ``_mediapipe.MAX_BATCH`` crops per run); onnxruntime spreads each call over its threads.
3. **Overlaps.** Each pixel goes to at most one person: the one with the highest mask probability
   times a prior that falls off from the box centre, so a pixel between two people goes to the
   person it is most central to. Specks under 10 % of a person's largest part are dropped.

Measured numbers per preset: ``benchmarks/README.md`` (printed by ``benchmarks/bench_segment.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, ClassVar, NamedTuple

import cv2
import numpy as np

from ..engineinfo import SegmentInfo
from ..errors import InputError
from ..instances import Instances


@dataclass(frozen=True)
class _Preset:
    det_sizes: tuple[int, ...]
    flip: bool = False
    pose_min_h: float = 1e9  # box height (px) from which pose segmentation is tried
    pose_conf: float = 0.1  # pose detector confidence inside a person crop
    union_min_h: float = 0.0  # box height (px) from which a found pose mask is joined with selfie
    shape_max_h: float = 0.0  # without a pose: box height (px) below which the mask is an ellipse
    pose_mode: str = "union"  # how pose and selfie combine: "pose" | "union" | "gated"
    refine: str = "none"  # "none" | "guided" | "grabcut"
    margin: float = 0.3  # crop margin around the box, share of its size
    clip: float = 0.04  # mask may leave the box by this share of its size
    prior: float = 0.35  # how fast ownership falls off from the box centre
    threshold: float = 0.5
    ellipse_scale: float = 1.0
    selfie_join: float = 0.5  # selfie probability needed to add a pixel to a pose mask
    w_selfie: float = 0.6  # weight of selfie-only evidence against pose evidence in overlaps
    w_shape: float = 0.4  # weight of an ellipse (no model evidence) in overlaps
    resolve: bool = True  # (diagnostic) False keeps overlapping raw masks
    # also compute selfie on the crop padded to a square (the model stretches its input to 256x256)
    # and keep it when its extent fits the detector box better by more than ``select_margin`` (IoU)
    select: bool = False
    select_margin: float = 0.1


class _Models(NamedTuple):
    pose: Any  # PoseMasks, or None when the preset never tries pose
    selfie: Any  # SelfieMasks


WORK_SIDE = 1024  # longest side of a person crop while its mask is computed

#: Most people the detector may report in one photo (the highest-scoring are kept; COCO's
#: evaluation uses the same 100). Each costs a mask computation, so this bounds the time per photo.
MAX_DETECTIONS = 100
#: Lowest detector confidence accepted as ``score_threshold``: below it YOLOX reports thousands of
#: background boxes (1e-30 on a one-person photo: 2,651 "people" in 100 s).
MIN_SCORE_THRESHOLD = 0.01

PRESETS: dict[str, _Preset] = {
    "fast": _Preset(det_sizes=(416,), shape_max_h=64),
    "balanced": _Preset(det_sizes=(416, 832), shape_max_h=64, pose_min_h=0.0, select=True),
    "best": _Preset(det_sizes=(416, 1024), flip=True, shape_max_h=64, pose_min_h=0.0, select=True),
}


class LocalSegmenter:
    """Offline person instances: YOLOX-nano boxes + MediaPipe pose/selfie masks (see module doc).

    Build it once and call ``segment`` many times: the onnxruntime sessions are created on first use
    and reused (the mask models' sessions are shared by every segmenter in the process). Output is
    deterministic for a given image; the models keep no state between calls (what a call did, its
    timings and the detector's boxes included, comes back in ``Instances.info``).

    Quality presets (recall, mask IoU and cost of each, measured by ``benchmarks/bench_segment.py``:
    ``benchmarks/README.md``):

    * ``"fast"`` — one detector pass at 416 px; selfie mask per person (ellipse under 64 px); no
      pose. The cheapest; misses most people under ~40 px tall.
    * ``"balanced"`` (default) — detector at 416 and 832 px; pose + selfie per person (selfie or
      ellipse when pose finds nobody), replaced by the square-padded selfie mask when that fits the
      box better; pose detection + landmarks are batched per photo. Mask threshold and selfie join
      stay at 0.5: higher ones gave tighter masks that dropped whole hands, bags and legs.
    * ``"best"`` — detector at 416 and 1024 px, each also on the mirrored photo; masks as balanced.
      Finds more small people, with more false boxes.

    Args:
        quality: ``"fast"``, ``"balanced"`` or ``"best"``.
        score_threshold: detector confidence (objectness x person) to keep a box, in
            [``MIN_SCORE_THRESHOLD`` = 0.01, 1).
        nms_iou: IoU above which overlapping boxes are merged, in (0, 1].
        max_detections: most people reported per photo (the highest-scoring; default
            ``MAX_DETECTIONS`` = 100, at most ``instances.MAX_INSTANCES``); when the detector finds
            more, ``info.notes`` says so (and so does the report).
        threads: onnxruntime threads per session (default: up to 2).
        **overrides: expert knobs of the preset (fields of ``_Preset``), for experiments.

    Raises:
        InputError: unknown quality or out-of-range threshold; ``segment`` on a non-RGB-uint8 array.
        EngineError: a bundled model file is missing.
    """

    name: ClassVar[str] = "local"
    needs_network: ClassVar[bool] = False

    def __init__(
        self,
        quality: str = "balanced",
        *,
        score_threshold: float = 0.25,
        nms_iou: float = 0.45,
        max_detections: int = MAX_DETECTIONS,
        threads: int | None = None,
        **overrides: Any,
    ) -> None:
        from ..instances import MAX_INSTANCES

        if quality not in PRESETS:
            raise InputError(f"unknown quality {quality!r}; choose one of: {', '.join(PRESETS)}", param="quality")
        score_threshold = _number(score_threshold, "score_threshold")
        if not MIN_SCORE_THRESHOLD <= score_threshold < 1.0:
            raise InputError(f"`score_threshold`, the detector confidence, must be in [{MIN_SCORE_THRESHOLD}, 1), "
                             f"got {score_threshold}" + (" (lower values only add background boxes)"
                                                         if score_threshold < MIN_SCORE_THRESHOLD else ""),
                             param="score_threshold")
        nms_iou = _number(nms_iou, "nms_iou")
        if not 0.0 < nms_iou <= 1.0:
            raise InputError(f"`nms_iou` must be in (0, 1], got {nms_iou}", param="nms_iou")
        if isinstance(max_detections, bool) or not isinstance(max_detections, (int, np.integer)) \
                or not 1 <= int(max_detections) <= MAX_INSTANCES:
            raise InputError(f"`max_detections`, the most people per photo, must be a whole number in "
                             f"1..{MAX_INSTANCES}, got {max_detections!r}", param="max_detections")
        self.quality = quality
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.max_detections = int(max_detections)
        self.threads = threads
        self.preset = replace(PRESETS[quality], **overrides)
        self._detector: Any = None
        self._mask_models: _Models | None = None

    # --- lazily built engines ------------------------------------------------------------------

    def _det(self) -> Any:
        if self._detector is None:
            from ._yolox import YoloxPersons

            self._detector = YoloxPersons(threads=self.threads)
        return self._detector

    def _models(self) -> _Models:
        """The pose and selfie models (onnxruntime sessions, shared by every segmenter in the process)."""
        if self._mask_models is None:
            from ._mediapipe import PoseMasks, SelfieMasks

            pose_needed = self.preset.pose_min_h < 1e8
            self._mask_models = _Models(
                PoseMasks(min_confidence=self.preset.pose_conf, threads=self.threads) if pose_needed else None,
                SelfieMasks(threads=self.threads),
            )
        return self._mask_models

    # --- the work ------------------------------------------------------------------------------

    def segment(self, image: np.ndarray) -> Instances:
        """People in ``image`` ((H, W, 3) uint8 RGB) as numbered instance masks."""
        image = _check_image(image)
        p = self.preset
        t0 = time.perf_counter()
        det = self._detect(image, self.max_detections + 1)  # one more, to tell whether the cap cut anything
        capped = len(det.scores) > self.max_detections
        if capped:
            det = type(det)(det.boxes[: self.max_detections], det.scores[: self.max_detections])
        t1 = time.perf_counter()
        masks, sources = self._masks(image, det.boxes)
        t2 = time.perf_counter()
        notes = [f"the detector found more than {self.max_detections} people; the {self.max_detections} "
                 "highest-scoring were kept (raise max_detections for more)"] if capped else []
        info = SegmentInfo(
            engine="local", quality=self.quality, notes=tuple(notes), detector_boxes=det.boxes,
            timings_ms={"detect_ms": (t1 - t0) * 1e3, "masks_ms": (t2 - t1) * 1e3},
            details={"detector": "yolox_nano", "detector_sizes": list(p.det_sizes),
                     "max_detections": self.max_detections,
                     "mask_sources": {k: sources.count(k) for k in sorted(set(sources))}},
        )
        return Instances.from_engine(masks, scores=det.scores, info=info)

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The detector's person boxes alone (no masks): (N, 4) float32 x0, y0, x1, y1 photo px and
        (N,) scores, highest first, at most ``max_detections``; ``image`` is (H, W, 3) uint8 RGB."""
        det = self._detect(_check_image(image), self.max_detections)
        return det.boxes, det.scores

    def _detect(self, image: np.ndarray, limit: int) -> Any:
        """The detector's boxes and scores (the preset's sizes and flip, this segmenter's thresholds), at
        most ``limit``, highest first."""
        p = self.preset
        return self._det().detect(image, sizes=p.det_sizes, score_threshold=self.score_threshold,
                                  nms_iou=self.nms_iou, flip=p.flip, max_detections=limit)

    def masks_for_boxes(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(N, H, W) bool masks for given person ``boxes`` ((N, 4) x0, y0, x1, y1 photo px), in their
        order, computed as ``segment`` computes them for the detector's boxes."""
        image = _check_image(image)
        return self._masks(image, np.asarray(boxes, np.float32).reshape(-1, 4))[0]

    def _masks(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """(N, H, W) bool masks for ``boxes`` (each pixel owned by at most one person) and their sources."""
        h, w = image.shape[:2]
        p = self.preset
        n = len(boxes)
        best = np.zeros((h, w), np.float32)  # winning ownership score per pixel
        label = np.full((h, w), -1, np.int32)  # winning instance per pixel
        owns = self._ownerships(image, boxes)
        sources = []
        raw = []
        for i, (own, window, src) in enumerate(owns):
            sources.append(src)
            if not p.resolve:
                best[:] = 0
                label[:] = -1
            if own is not None:
                cy0, cy1, cx0, cx1 = window
                b = best[cy0:cy1, cx0:cx1]
                lab = label[cy0:cy1, cx0:cx1]
                win = own > b
                np.copyto(b, own, where=win)
                np.copyto(lab, i, where=win)
            if not p.resolve:
                raw.append(label == i)
        windows = [window for _, window, _ in owns]
        if not p.resolve:
            masks = np.array(raw, dtype=bool).reshape(n, h, w)
        else:
            # a person's pixels lie within its crop window: compare the label map there only
            masks = np.zeros((n, h, w), bool)
            for i, (cy0, cy1, cx0, cx1) in enumerate(windows):
                np.equal(label[cy0:cy1, cx0:cx1], i, out=masks[i, cy0:cy1, cx0:cx1])
        return _clean(masks, windows), sources

    def _ownerships(self, image: np.ndarray, boxes: np.ndarray) -> list[tuple[np.ndarray | None, tuple, str]]:
        """Per box: (ownership map over its crop window, (y0, y1, x0, x1) window, mask source).

        The people of the photo go through each model together: one batched pose call for everyone
        pose is tried on, one selfie call for everyone who needs it, one more for the square-padded
        selfie of those ``select`` looks at again.
        """
        if len(boxes) == 0:
            return []
        p = self.preset
        crops = [_crop(image, b, p) for b in boxes]
        live = {i: c for i, c in enumerate(crops) if c is not None}
        models = self._models()
        poses: dict[int, np.ndarray | None] = {}
        if models.pose is not None:
            tried = [i for i, c in live.items() if c.bh >= p.pose_min_h]
            poses = dict(zip(tried, models.pose([live[i].image for i in tried]), strict=True))
        need_selfie = [
            i
            for i, c in live.items()
            if (poses.get(i) is not None and c.bh >= p.union_min_h) or (poses.get(i) is None and c.bh >= p.shape_max_h)
        ]
        selfies = dict(zip(need_selfie, models.selfie([live[i].image for i in need_selfie]), strict=True))
        first = {i: self._first_mask(c, poses.get(i), selfies.get(i)) for i, c in live.items()}
        if p.select:
            again = [i for i in live if first[i][1] != "ellipse" and first[i][3] + p.select_margin < 1.0]
            for i, alt in zip(again, _square(models.selfie, [live[i].image for i in again]), strict=True):
                c = live[i]
                if _box_fit(alt >= p.threshold, c.inside, c.ys, c.xs) > first[i][3] + p.select_margin:
                    first[i] = (alt, "selfie-square", p.w_selfie * alt, 0.0)
        out: list[tuple[np.ndarray | None, tuple, str]] = []
        for i, c in enumerate(crops):  # type: ignore[assignment]
            if c is None:
                out.append((None, (0, 0, 0, 0), "none"))
                continue
            prob, source, evidence, _ = first[i]
            if p.refine != "none" and source != "ellipse":
                prob = _refine(c.image, prob, p.refine)
            prior = np.clip(1.0 - p.prior * c.d, 0.05, 1.0)
            own = np.where(c.inside & (prob >= p.threshold), evidence * prior, 0.0).astype(np.float32)
            if own.shape != c.size:
                own = cv2.resize(own, (c.size[1], c.size[0]), interpolation=cv2.INTER_LINEAR)  # type: ignore[assignment]
            out.append((own, c.window, source))
        return out

    def _first_mask(
        self, c: _Crop, pose: np.ndarray | None, selfie: np.ndarray | None
    ) -> tuple[np.ndarray, str, np.ndarray, float]:
        """(probability, source, evidence, box fit) of one person from the pose and selfie masks."""
        p = self.preset
        if pose is not None:
            if selfie is not None:
                prob, source = (
                    _combine(pose, np.where(selfie >= p.selfie_join, selfie, 0.0), p.pose_mode),
                    "pose+selfie",
                )
                # pixels only the class-level selfie model claims count for less when people overlap
                evidence = np.maximum(pose, p.w_selfie * selfie)
            else:
                prob, source, evidence = pose, "pose", pose
        elif selfie is None:
            prob, source = (c.d <= p.ellipse_scale).astype(np.float32), "ellipse"
            evidence = p.w_shape * prob
        else:
            prob, source, evidence = selfie, "selfie", p.w_selfie * selfie
        fit = _box_fit(prob >= p.threshold, c.inside, c.ys, c.xs) if p.select and source != "ellipse" else 1.0
        return prob, source, evidence, fit


class _Crop(NamedTuple):
    """One person's crop window and its working grid (see ``_crop``)."""

    image: np.ndarray  # the crop, at most WORK_SIDE px on its long side
    window: tuple[int, int, int, int]  # (y0, y1, x0, x1) in the photo
    size: tuple[int, int]  # (h, w) of the window in the photo
    bh: float  # box height in photo px
    ys: np.ndarray  # normalised row distance from the box centre (box edge = 1)
    xs: np.ndarray
    d: np.ndarray  # normalised distance from the box centre
    inside: np.ndarray  # within the box plus the clip margin


def _crop(image: np.ndarray, box: np.ndarray, p: _Preset) -> _Crop | None:
    """Person ``box``'s crop with a margin; big crops are worked on at <= WORK_SIDE px (the models see
    256 px anyway) and only the ownership map is scaled back, so memory stays bounded on large photos."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    bw, bh = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    mx, my = p.margin * bw, p.margin * bh
    cx0, cy0 = int(max(0, np.floor(x0 - mx))), int(max(0, np.floor(y0 - my)))
    cx1, cy1 = int(min(w, np.ceil(x1 + mx))), int(min(h, np.ceil(y1 + my)))
    ch, cw = cy1 - cy0, cx1 - cx0
    if ch < 1 or cw < 1:
        return None
    f = min(1.0, WORK_SIDE / max(ch, cw))
    wh, ww = max(1, round(ch * f)), max(1, round(cw * f))
    crop = image[cy0:cy1, cx0:cx1]
    if f < 1.0:
        crop = cv2.resize(crop, (ww, wh), interpolation=cv2.INTER_AREA)
    ys = (cy0 + (np.arange(wh, dtype=np.float32) + 0.5) * (ch / wh) - (y0 + y1) / 2) / (bh / 2)
    xs = (cx0 + (np.arange(ww, dtype=np.float32) + 0.5) * (cw / ww) - (x0 + x1) / 2) / (bw / 2)
    d = np.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
    inside = (np.abs(ys)[:, None] <= 1 + 2 * p.clip) & (np.abs(xs)[None, :] <= 1 + 2 * p.clip)
    return _Crop(np.ascontiguousarray(crop), (cy0, cy1, cx0, cx1), (ch, cw), bh, ys, xs, d, inside)


def _square(model: Any, crops: list[np.ndarray]) -> list[np.ndarray]:
    """``model``'s probability for each crop, computed on it centred in a black square (selfie
    segmentation stretches its input to 256x256, so tall crops would come out squeezed)."""
    pads, offsets = [], []
    for crop in crops:
        ch, cw = crop.shape[:2]
        side = max(ch, cw)
        oy, ox = (side - ch) // 2, (side - cw) // 2
        pad = np.zeros((side, side, 3), np.uint8)
        pad[oy : oy + ch, ox : ox + cw] = crop
        pads.append(pad)
        offsets.append((oy, ox, ch, cw))
    return [prob[oy : oy + ch, ox : ox + cw] for prob, (oy, ox, ch, cw) in zip(model(pads), offsets, strict=True)]


def _box_fit(mask: np.ndarray, inside: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> float:
    """IoU between the extent of ``mask`` (within ``inside``) and the box (|x|, |y| <= 1), normalised units."""
    m = mask & inside
    rows, cols = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
    if len(rows) == 0:
        return 0.0
    my0, my1 = max(float(ys[rows[0]]), -1.0), min(float(ys[rows[-1]]), 1.0)
    mx0, mx1 = max(float(xs[cols[0]]), -1.0), min(float(xs[cols[-1]]), 1.0)
    inter = max(0.0, my1 - my0) * max(0.0, mx1 - mx0)
    a = (float(ys[rows[-1]]) - float(ys[rows[0]])) * (float(xs[cols[-1]]) - float(xs[cols[0]]))
    return inter / max(a + 4.0 - inter, 1e-9)


def _combine(pose: np.ndarray, selfie: np.ndarray, mode: str) -> np.ndarray:
    if mode == "pose":
        return pose
    if mode == "union":
        return np.maximum(pose, selfie)
    # gated: selfie may add pixels only near the pose mask (recovers arms/feet, not neighbours)
    near = cv2.dilate((pose >= 0.5).astype(np.uint8), np.ones((1, 1), np.uint8))
    k = max(3, int(0.08 * max(pose.shape)) | 1)
    near = cv2.dilate(near, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0  # type: ignore[assignment]
    return np.maximum(pose, np.where(near, selfie, 0.0)).astype(np.float32)


def _refine(crop: np.ndarray, prob: np.ndarray, how: str) -> np.ndarray:
    if how == "guided":
        guide = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
        r = max(2, int(0.02 * max(crop.shape[:2])))
        return np.clip(_guided_filter(guide.astype(np.float32) / 255.0, prob.astype(np.float32), r, 1e-3), 0, 1)
    if how == "grabcut":
        gc = np.full(prob.shape, cv2.GC_PR_BGD, np.uint8)
        gc[prob >= 0.5] = cv2.GC_PR_FGD
        gc[prob >= 0.9] = cv2.GC_FGD
        gc[prob < 0.05] = cv2.GC_BGD
        if not (gc == cv2.GC_FGD).any() or not (gc == cv2.GC_BGD).any():
            return prob
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.grabCut(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), gc, None, bgd, fgd, 3, cv2.GC_INIT_WITH_MASK)  # type: ignore[call-overload]
        fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
        return np.where(fg, np.maximum(prob, 0.75), np.minimum(prob, 0.25)).astype(np.float32)
    raise InputError(f"unknown refine mode {how!r}")


def _guided_filter(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter (grey guide in [0, 1], box radius ``r``), with plain OpenCV box filters
    (``cv2.ximgproc`` is only in opencv-contrib)."""
    k = (2 * r + 1, 2 * r + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = box(guide), box(src)
    var_i = box(guide * guide) - mean_i * mean_i
    cov_ip = box(guide * src) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box(a) * guide + box(b)


def _clean(masks: np.ndarray, windows: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Drop specks: keep each person's components that are at least 10 % of its largest one.

    Works in place on ``masks`` (and returns it); person ``i``'s pixels lie within its crop window
    ``windows[i]`` = (y0, y1, x0, x1), so only that part of its mask is searched."""
    for i, (wy0, wy1, wx0, wx1) in enumerate(windows):
        m = masks[i, wy0:wy1, wx0:wx1]
        ys, xs = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
        if len(ys) == 0:
            continue
        sub = m[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1]
        k, lab, stats, _ = cv2.connectedComponentsWithStats(sub.astype(np.uint8), connectivity=8)
        if k <= 2:
            continue
        areas = stats[1:, cv2.CC_STAT_AREA]
        keep = np.zeros(k, bool)
        keep[1:] = areas >= 0.1 * areas.max()
        sub[...] = keep[lab]
    return masks


def _number(value: Any, name: str) -> float:
    """``value`` as a float, or an InputError naming ``name`` (bools and strings are not numbers)."""
    if isinstance(value, (bool, str)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"`{name}` must be a number, got {value!r}", param=name)
    return float(value)


def _check_image(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(getattr(image, "pixels", image))
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise InputError(f"segment needs an (H, W, 3) uint8 RGB image, got shape {arr.shape} dtype {arr.dtype}")
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise InputError(f"the image is too small to segment ({arr.shape[1]}x{arr.shape[0]})")
    return arr
