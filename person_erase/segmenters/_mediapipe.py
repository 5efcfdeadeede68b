"""MediaPipe 0.10.21's person models run as ONNX on onnxruntime (no ``mediapipe`` package).

Four of the six ``.tflite`` models of the ``mediapipe==0.10.21`` wheel, converted once to ONNX with a
symbolic batch dimension, ship in ``person_erase/models/`` (see its README for provenance and licence):

* ``selfie_segmentation.onnx`` (general 256x256): class-level person probability (:class:`SelfieMasks`);
* ``pose_detection.onnx`` + ``pose_landmark_full.onnx``: the one person whose pose is found in a crop
  and its segmentation (:class:`PoseMasks`);
* ``face_detection_short_range.onnx`` (128x128): faces with 6 keypoints (:class:`FaceDetector`).

What MediaPipe's graphs did around the models is re-implemented here from the graph descriptions
(``mediapipe/modules/*/...pbtxt`` and their calculators at tag v0.10.21), so the masks match what
``mediapipe.solutions`` returned (static image mode):

* image to tensor: the region of interest (a possibly rotated rectangle) is mapped onto the tensor
  with one perspective warp of the uint8 image (bilinear), as ``ImageToTensorCalculator`` does;
  ``keep_aspect_ratio`` letterboxes by growing the ROI (``PadRoi``);
* detectors: SSD anchors (fixed size, centres only), box/keypoint decode relative to the anchors,
  sigmoid scores (logits clipped to +-100), weighted non-max suppression (IoU > 0.3 clusters are
  averaged by score), letterbox removal;
* pose: ROI from the first detection (centre = hip keypoint, side = 2 x distance to the
  full-body keypoint, rotated so that line points up, squared, scaled 1.25), landmark model on that
  ROI (border replicated), pose presence >= 0.5, sigmoid on the mask logits, mask warped back into
  the crop with the inverse ROI transform (zero outside).

All crops of a call go through each model in one ``session.run`` (at most :data:`MAX_BATCH` at a time).
onnxruntime sessions are thread-safe and shared by everything in the process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import EngineError
from ..ortsession import cpu_session

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
#: Longest side of the crop the models are fed from (the models work at 128-256 px internally).
INPUT_SIDE = 512
#: Most crops in one onnxruntime call (bounds the memory of a photo with many people).
MAX_BATCH = 8
#: Pose detector score needed inside a person crop (``min_detection_confidence``).
POSE_MIN_SCORE = 0.5
#: Landmark model's pose presence needed to accept a pose (``min_tracking_confidence``).
POSE_PRESENCE = 0.5
#: Weighted NMS: detections overlapping the strongest by more than this IoU are merged into it.
NMS_IOU = 0.3


# --- sessions -----------------------------------------------------------------------------------


@cache
def session(name: str, threads: int | None = None) -> Any:
    """The onnxruntime session of bundled model ``name`` (file stem), built once per process."""
    path = MODELS_DIR / f"{name}.onnx"
    if not path.is_file():
        raise EngineError(f"the bundled model {path} is missing; reinstall person_erase")
    return cpu_session(path, threads=threads)


def _run(sess: Any, batch: np.ndarray, outputs: list[str] | None = None) -> list[np.ndarray]:
    """The ``outputs`` (default: all) of ``sess`` for ``batch`` (N, H, W, 3) float32, in chunks of at
    most MAX_BATCH."""
    name = sess.get_inputs()[0].name
    parts = [sess.run(outputs, {name: batch[i : i + MAX_BATCH]}) for i in range(0, len(batch), MAX_BATCH)]
    if len(parts) == 1:
        return list(parts[0])
    return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]


# --- image to tensor ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Roi:
    """A rotated rectangle in pixels: centre, size, rotation (radians, MediaPipe's convention)."""

    cx: float
    cy: float
    w: float
    h: float
    rotation: float = 0.0


def full_roi(shape: tuple[int, ...]) -> Roi:
    h, w = shape[:2]
    return Roi(0.5 * w, 0.5 * h, float(w), float(h))


def pad_roi(roi: Roi, out_w: int, out_h: int) -> tuple[Roi, tuple[float, float]]:
    """Grow ``roi`` to the tensor's aspect ratio (letterbox); returns it and the (x, y) padding share."""
    tensor_aspect = out_h / out_w
    roi_aspect = roi.h / roi.w
    if tensor_aspect > roi_aspect:
        return Roi(roi.cx, roi.cy, roi.w, roi.w * tensor_aspect, roi.rotation), (
            0.0,
            (1.0 - roi_aspect / tensor_aspect) / 2.0,
        )
    return Roi(roi.cx, roi.cy, roi.h / tensor_aspect, roi.h, roi.rotation), (
        (1.0 - tensor_aspect / roi_aspect) / 2.0,
        0.0,
    )


def to_tensor(image: np.ndarray, roi: Roi, out_w: int, out_h: int, *, replicate: bool = False) -> np.ndarray:
    """``roi`` of ``image`` warped onto an (out_h, out_w, 3) uint8 tensor image (bilinear): the ROI's
    corners map to the tensor's corners by a perspective transform, as in ``ImageToTensorCalculator``."""
    src = cv2.boxPoints(((roi.cx, roi.cy), (roi.w, roi.h), roi.rotation * 180.0 / math.pi)).astype(np.float32)
    dst = np.array([[0, out_h], [0, 0], [out_w, 0], [out_w, out_h]], np.float32)
    inverse = cv2.invert(cv2.getPerspectiveTransform(src, dst))[1]  # as warpPerspective does
    return _remap(image, *_perspective_maps(inverse, out_w, out_h), replicate=replicate)


def warp_back(tensor: np.ndarray, tensor_from_image: np.ndarray, w: int, h: int) -> np.ndarray:
    """A tensor-space float image warped back onto a (h, w) image (bilinear, zero outside);
    ``tensor_from_image`` maps image pixels to tensor pixels (2x3)."""
    return _remap(tensor, *_affine_maps(tensor_from_image, w, h), replicate=False)


# OpenCV 4's warps, reproduced: MediaPipe 0.10.21 ran cv2.warpPerspective / cv2.warpAffine from
# OpenCV 4, which quantise source coordinates to 1/32 px (INTER_BITS = 5). OpenCV 5 interpolates at
# the exact position, which moves mask edges (0.8 % of the astronaut's pose mask). The source
# coordinates are computed here exactly as OpenCV 4's WarpPerspectiveInvoker / WarpAffineInvoker do
# and handed to cv2.remap as fixed-point maps, which OpenCV 4 and 5 interpolate the same way. (Bit-exact
# with OpenCV 4; OpenCV 5's getPerspectiveTransform differs in the last digits, which flips a
# coordinate's rounding now and then.)
_TAB = 32  # INTER_TAB_SIZE


def _fixed_maps(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source coordinates in 1/32 px (int) as cv2.remap's (CV_16SC2 integer part, CV_16UC1 fraction index).

    ``x`` and ``y`` broadcast to the map's (h, w): a (1, w) row and an (h, 1) column when the warp
    is axis-aligned, so the per-pixel work is one broadcast per map."""
    shape = np.broadcast_shapes(x.shape, y.shape)
    xy = np.empty((*shape, 2), np.int16)
    xy[..., 0] = np.clip(x >> 5, -32768, 32767)
    xy[..., 1] = np.clip(y >> 5, -32768, 32767)
    frac = np.empty(shape, np.uint16)
    np.bitwise_or(((y & (_TAB - 1)) * _TAB).astype(np.uint16), (x & (_TAB - 1)).astype(np.uint16), out=frac)
    return xy, frac


def _to_fixed(v: np.ndarray) -> np.ndarray:
    """Scaled source coordinates, clipped to int32 as OpenCV 4 does, rounded to the nearest integer."""
    np.clip(v, -(2.0**31), 2.0**31 - 1, out=v)
    return np.rint(v, out=v).astype(np.int32)


def _perspective_maps(m: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point maps for destination -> source matrix ``m`` (3x3), as OpenCV 4's warpPerspective:
    source x = (m0 x + m1 y + m2) / (m6 x + m7 y + m8) in 1/32 px (same for y with m3, m4, m5)."""
    m = m.ravel()
    x = np.arange(w, dtype=np.float64)[None, :]
    y = np.arange(h, dtype=np.float64)[:, None]
    if m[1] == 0 and m[3] == 0 and m[6] == 0 and m[7] == 0:
        # axis-aligned (letterbox, stretch): the same float operations, on one row and one column
        den = _TAB / m[8] if m[8] != 0 else 0.0
        return _fixed_maps(_to_fixed((m[2] + m[0] * x) * den), _to_fixed((m[4] * y + m[5]) * den))
    den = m[7] * y + m[8] + m[6] * x
    scale = np.zeros_like(den)
    np.divide(_TAB, den, out=scale, where=den != 0)
    return _fixed_maps(_to_fixed((m[1] * y + m[2] + m[0] * x) * scale), _to_fixed((m[4] * y + m[5] + m[3] * x) * scale))


def _affine_maps(m: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point maps for destination -> source matrix ``m`` (2x3, float32 like MediaPipe's), as OpenCV
    4's warpAffine (coordinates in 1/1024 px, rounded to 1/32)."""
    m = np.asarray(m, np.float32).astype(np.float64).ravel()
    scale = 1 << 10
    x = np.arange(w, dtype=np.float64)
    y = np.arange(h, dtype=np.float64)
    dx, dy = np.rint(m[0] * x * scale).astype(np.int64), np.rint(m[3] * x * scale).astype(np.int64)
    x0 = np.rint((m[1] * y + m[2]) * scale).astype(np.int64) + scale // _TAB // 2
    y0 = np.rint((m[4] * y + m[5]) * scale).astype(np.int64) + scale // _TAB // 2
    # the per-pixel sums in int32 when they cannot overflow it (they always fit for real ROIs)
    bound = max(int(np.abs(v).max(initial=0)) for v in (dx, dy, x0, y0))
    if 2 * bound < 2**31:
        dx, dy, x0, y0 = (v.astype(np.int32) for v in (dx, dy, x0, y0))
    return _fixed_maps((x0[:, None] + dx[None, :]) >> 5, (y0[:, None] + dy[None, :]) >> 5)


def _remap(image: np.ndarray, xy: np.ndarray, frac: np.ndarray, *, replicate: bool) -> np.ndarray:
    border = cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT
    return cv2.remap(image, xy, frac, cv2.INTER_LINEAR, borderMode=border, borderValue=0)  # type: ignore[call-overload]


def _unit(t: np.ndarray) -> np.ndarray:
    return t.astype(np.float32) * np.float32(1.0 / 255.0)


def _signed(t: np.ndarray) -> np.ndarray:
    return t.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)


def _fit(crop: np.ndarray, max_side: int) -> np.ndarray:
    h, w = crop.shape[:2]
    s = max_side / max(h, w)
    if s >= 1:
        return np.ascontiguousarray(crop)
    return cv2.resize(crop, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def _back(prob: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    if prob.shape == (h, w):
        return prob.astype(np.float32, copy=False)
    return cv2.resize(prob.astype(np.float32, copy=False), (w, h), interpolation=cv2.INTER_LINEAR)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # logits clipped so exp cannot overflow (sigmoid(+-80) is 1 / 0 in float32 anyway)
    return (1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))).astype(np.float32)


# --- SSD detectors (pose, face) -----------------------------------------------------------------


def ssd_anchors(input_size: int, strides: Sequence[int]) -> np.ndarray:
    """(A, 2) anchor centres (x, y) in [0, 1]: ``SsdAnchorsCalculator`` with fixed anchor size, aspect
    ratio 1 plus the interpolated scale (2 anchors per layer); layers of equal stride share one grid."""
    out = []
    layer = 0
    while layer < len(strides):
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            last += 1
        per_cell = 2 * (last - layer)
        fm = math.ceil(input_size / strides[layer])
        gy, gx = np.mgrid[0:fm, 0:fm]
        centres = np.stack([(gx.ravel() + 0.5) / fm, (gy.ravel() + 0.5) / fm], axis=1)
        out.append(np.repeat(centres, per_cell, axis=0))
        layer = last
    return np.concatenate(out).astype(np.float32)


@dataclass(frozen=True)
class Detection:
    """One detector result, relative to the image it ran on: score, box (xmin, ymin, width, height),
    keypoints (K, 2) as (x, y)."""

    score: float
    box: tuple[float, float, float, float]
    keypoints: np.ndarray


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xmin, ymin, xmax, ymax box ``a`` (4,) against boxes ``b`` (M, 4)."""
    iw = np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0])
    ih = np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1])
    inter = np.where((iw >= 0) & (ih >= 0), np.maximum(iw, 0) * np.maximum(ih, 0), 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def decode(
    raw: np.ndarray,
    logits: np.ndarray,
    anchors: np.ndarray,
    scale: float,
    num_keypoints: int,
    min_score: float,
    pad: tuple[float, float],
    *,
    max_out: int | None = None,
) -> list[Detection]:
    """Detections of one image from raw regressors (A, C) and score logits (A, 1): decode, weighted NMS,
    letterbox removal (``pad`` = x, y padding share of the letterboxed tensor). Strongest first."""
    scores = _sigmoid(np.clip(logits[:, 0], -100.0, 100.0))
    keep = np.nonzero(scores >= min_score)[0]
    if len(keep) == 0:
        return []
    r = raw[keep].astype(np.float64)
    a = anchors[keep].astype(np.float64)
    cx = r[:, 0] / scale + a[:, 0]
    cy = r[:, 1] / scale + a[:, 1]
    w, h = r[:, 2] / scale, r[:, 3] / scale
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kx = r[:, 4 : 4 + 2 * num_keypoints : 2] / scale + a[:, :1]
    ky = r[:, 5 : 5 + 2 * num_keypoints : 2] / scale + a[:, 1:2]
    kps = np.stack([kx, ky], axis=2)
    sc = scores[keep].astype(np.float64)
    ok = (w >= 0) & (h >= 0) & np.isfinite(w) & np.isfinite(h)
    boxes, kps, sc = boxes[ok], kps[ok], sc[ok]
    order = np.argsort(-sc, kind="stable")
    boxes, kps, sc = boxes[order], kps[order], sc[order]
    px, py = pad
    out: list[Detection] = []
    remain = np.arange(len(sc))
    while len(remain) and (max_out is None or len(out) < max_out):
        top = remain[0]
        near = _iou(boxes[top], boxes[remain]) > NMS_IOU
        cand = remain[near]
        wts = sc[cand][:, None]
        total = float(wts.sum())
        b = (boxes[cand] * wts).sum(axis=0) / total
        k = (kps[cand] * wts[:, :, None]).sum(axis=0) / total
        # letterbox removal
        b = np.array(
            [
                (b[0] - px) / (1 - 2 * px),
                (b[1] - py) / (1 - 2 * py),
                (b[2] - px) / (1 - 2 * px),
                (b[3] - py) / (1 - 2 * py),
            ]
        )
        k = np.stack([(k[:, 0] - px) / (1 - 2 * px), (k[:, 1] - py) / (1 - 2 * py)], axis=1)
        out.append(Detection(float(sc[top]), (float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])), k))
        remain = remain[~near]
    return out


def _letterboxed(images: Sequence[np.ndarray], side: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Images letterboxed (zero border) onto side x side tensors in [-1, 1], and their padding shares."""
    batch = np.empty((len(images), side, side, 3), np.float32)
    pads = []
    for i, img in enumerate(images):
        roi, pad = pad_roi(full_roi(img.shape), side, side)
        batch[i] = _signed(to_tensor(img, roi, side, side))
        pads.append(pad)
    return batch, pads


# --- selfie -------------------------------------------------------------------------------------


class SelfieMasks:
    """Class-level "any person" probability per crop (general 256x256 selfie model, ~2 ms a crop)."""

    SIDE = 256

    def __init__(self, *, threads: int | None = None) -> None:
        self._session = session("selfie_segmentation", threads)

    def __call__(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        """(h, w) float32 in [0, 1] for each (h, w, 3) uint8 RGB crop; all crops in one batched run."""
        if not crops:
            return []
        smalls = [_fit(c, INPUT_SIDE) for c in crops]
        batch = np.empty((len(crops), self.SIDE, self.SIDE, 3), np.float32)
        for i, s in enumerate(smalls):  # stretched onto the square tensor (keep_aspect_ratio: false)
            batch[i] = _unit(to_tensor(s, full_roi(s.shape), self.SIDE, self.SIDE))
        probs = _run(self._session, batch)[0][..., 0]
        out = []
        for prob, s, c in zip(probs, smalls, crops, strict=True):
            sh, sw = s.shape[:2]
            out.append(_back(cv2.resize(prob, (sw, sh), interpolation=cv2.INTER_LINEAR), c.shape[:2]))  # type: ignore[arg-type]
        return out


# --- pose ---------------------------------------------------------------------------------------


def _normalize_radians(a: float) -> float:
    return a - 2 * math.pi * math.floor((a + math.pi) / (2 * math.pi))


def pose_roi(det: Detection, w: int, h: int) -> Roi:
    """``PoseDetectionToRoi``: centre on keypoint 0, side 2x its distance to keypoint 1, rotated so
    that keypoint 0 -> 1 points up, squared on the long side and scaled 1.25."""
    x0, y0 = det.keypoints[0, 0] * w, det.keypoints[0, 1] * h
    x1, y1 = det.keypoints[1, 0] * w, det.keypoints[1, 1] * h
    size = 2.0 * math.hypot(x1 - x0, y1 - y0)
    rotation = _normalize_radians(math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0))
    side = 1.25 * size  # square_long: width and height are both the long side in pixels
    return Roi(x0, y0, side, side, rotation)


def roi_to_image(roi: Roi, w: int, h: int, tensor_w: int, tensor_h: int) -> np.ndarray:
    """2x3 map from image pixels to tensor pixels for ``roi`` (``GetRotatedSubRectToRectTransformMatrix``,
    inverted and scaled as MediaPipe's ``WarpAffineCalculator`` does, for ``cv2.WARP_INVERSE_MAP``)."""
    a, b = roi.w, roi.h
    c, d = math.cos(roi.rotation), math.sin(roi.rotation)
    fwd = np.array(
        [
            [a * c / w, -b * d / w, (-0.5 * a * c + 0.5 * b * d + roi.cx) / w],
            [a * d / h, b * c / h, (-0.5 * b * c - 0.5 * a * d + roi.cy) / h],
            [0.0, 0.0, 1.0],
        ]
    )
    m = np.diag([tensor_w, tensor_h, 1.0]) @ np.linalg.inv(fwd) @ np.diag([1.0 / w, 1.0 / h, 1.0])
    return m[:2].astype(np.float32)


class PoseMasks:
    """Instance-level mask of the one person pose finds in each crop (full landmark model), or None."""

    DET_SIDE = 224
    LM_SIDE = 256

    def __init__(self, *, min_confidence: float = POSE_MIN_SCORE, threads: int | None = None) -> None:
        self.min_confidence = float(min_confidence)
        self._det = session("pose_detection", threads)
        self._lm = session("pose_landmark_full", threads)
        outs = [o.name for o in self._lm.get_outputs()]
        self._lm_outputs = [outs[1], outs[2]]  # pose presence [N, 1], segmentation logits [N, 256, 256, 1]
        self._anchors = ssd_anchors(self.DET_SIDE, (8, 16, 32, 32, 32))

    def detect(self, images: Sequence[np.ndarray]) -> list[Detection | None]:
        """The strongest pose detection per image (relative to it), or None."""
        if not images:
            return []
        batch, pads = _letterboxed(images, self.DET_SIDE)
        raw, logits = _run(self._det, batch)
        return [
            next(iter(decode(r, s, self._anchors, self.DET_SIDE, 4, self.min_confidence, p, max_out=1)), None)
            for r, s, p in zip(raw, logits, pads, strict=True)
        ]

    def __call__(self, crops: Sequence[np.ndarray]) -> list[np.ndarray | None]:
        """(h, w) float32 in [0, 1] per (h, w, 3) uint8 RGB crop, or None when no pose was found."""
        out: list[np.ndarray | None] = [None] * len(crops)
        if not crops:
            return out
        smalls = [_fit(c, INPUT_SIDE) for c in crops]
        dets = self.detect(smalls)
        todo = [i for i, d in enumerate(dets) if d is not None]
        if not todo:
            return out
        rois = []
        batch = np.empty((len(todo), self.LM_SIDE, self.LM_SIDE, 3), np.float32)
        for j, i in enumerate(todo):
            sh, sw = smalls[i].shape[:2]
            roi, _ = pad_roi(pose_roi(dets[i], sw, sh), self.LM_SIDE, self.LM_SIDE)  # type: ignore[arg-type]
            rois.append(roi)
            batch[j] = _unit(to_tensor(smalls[i], roi, self.LM_SIDE, self.LM_SIDE, replicate=True))
        # only the pose flag and the segmentation (not the landmarks, heatmap, world landmarks)
        flag_out, seg_out = self._lm_outputs
        flags, seg = (r[..., 0] for r in _run(self._lm, batch, [flag_out, seg_out]))
        for j, i in enumerate(todo):
            if not flags[j] >= POSE_PRESENCE:
                continue
            sh, sw = smalls[i].shape[:2]
            m = roi_to_image(rois[j], sw, sh, self.LM_SIDE, self.LM_SIDE)
            prob = warp_back(_sigmoid(seg[j]), m, sw, sh)
            out[i] = _back(prob, crops[i].shape[:2])  # type: ignore[arg-type]
        return out


# --- faces --------------------------------------------------------------------------------------


class FaceDetector:
    """MediaPipe's short-range face detector (faces up to ~2 m from the camera; 6 keypoints: right eye,
    left eye, nose tip, mouth, right ear, left ear)."""

    SIDE = 128

    def __init__(self, *, min_score: float = 0.5, threads: int | None = None) -> None:
        self.min_score = float(min_score)
        self._session = session("face_detection_short_range", threads)
        self._anchors = ssd_anchors(self.SIDE, (8, 16, 16, 16))

    def __call__(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Faces per (h, w, 3) uint8 RGB image (boxes and keypoints relative to it), strongest first."""
        if not images:
            return []
        batch, pads = _letterboxed(images, self.SIDE)
        raw, logits = _run(self._session, batch)
        return [
            decode(r, s, self._anchors, self.SIDE, 6, self.min_score, p)
            for r, s, p in zip(raw, logits, pads, strict=True)
        ]
