"""``yolo-seg:PATH.onnx`` — people from the user's Ultralytics YOLOv8 / YOLO11 ``-seg`` ONNX export.

Ultralytics weights are AGPL-3.0 (or an Ultralytics enterprise licence): the user's choice, never
bundled. Export: ``yolo export model=yolo11n-seg.pt format=onnx`` (``nms=False``, the default).

Tensor contract:

=============  ==============================  ==================================================
tensor         shape / dtype                   meaning
=============  ==============================  ==================================================
``images``     [1, 3, H, W] float32 (float16)  RGB (not BGR), 0..1, letterboxed (below); H, W as
                                               the file declares them (640x640 usually; symbolic
                                               dims get 640x640)
``output0``    [1, 4 + nc + nm, A] float32     per anchor: box centre x, centre y, width, height
                                               in input pixels; ``nc`` class scores (sigmoid
                                               applied, COCO order: class 0 = person); ``nm``
                                               mask coefficients
``output1``    [1, nm, mh, mw] float32         ``nm`` (32) prototype masks at 1/4 of the input
                                               size (mh = H/4, mw = W/4)
=============  ==============================  ==================================================

Outputs are told apart by rank (3 = predictions, 4 = prototypes), ``nc = channels - 4 - nm``.

Decoding (what Ultralytics' predictor does, written here from the contract):

1. **Letterbox**: scale ``r = min(H/h, W/w)`` (up or down), resize to ``round(w r) x round(h r)``
   (area when shrinking, bilinear when growing), centre on an H×W canvas of grey 114; the padding
   is split ``round(d/2 - 0.1)`` before and the rest after.
2. **Candidates**: an anchor is a person when its best class is ``person_class`` (0) and that
   score is >= ``score_threshold``; other classes are dropped even if their person score is high.
3. **NMS** (greedy, IoU > ``nms_iou`` suppressed) on boxes in input pixels; at most ``max_detections``.
4. **Un-letterbox** boxes: ``(b - pad) / r``, clipped to the photo.
5. **Masks** at photo resolution ("retina" masks): the mask logit ``coefficients · prototypes`` is
   sampled bilinearly (half-pixel centres) at each photo pixel's centre mapped through the letterbox
   into prototype space; a pixel belongs to the person when its logit is > 0 (sigmoid > 0.5) and its
   centre lies inside the person's box.
6. **Overlaps**: a pixel claimed by several people goes to the one with the highest logit.

Instances come out numbered left to right, boxes tight around the masks, scores the person score.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np

from ..engineinfo import ModelRecord, SegmentInfo
from ..errors import EngineError, InputError
from ..instances import Instances
from ..onnxmodel import ModelFile, Signature, check_expected, fixed, model_file, require_family

DEFAULT_SIZE = 640
PAD_VALUE = 114


def _split_outputs(sig: Signature) -> tuple[int, int] | None:
    ranks = [len(t.shape) for t in sig.outputs]
    if ranks.count(3) >= 1 and ranks.count(4) >= 1:
        return ranks.index(3), ranks.index(4)
    return None


def check_signature(sig: Signature) -> list[str]:
    """Why ``sig`` is not an Ultralytics -seg export (empty: it fits)."""
    problems: list[str] = []
    if len(sig.inputs) != 1:
        return [f"a YOLO-seg export takes 1 input (images), this file has {len(sig.inputs)}"]
    inp = sig.inputs[0]
    if len(inp.shape) != 4:
        problems.append(f"input {inp.describe()} has rank {len(inp.shape)}, expected 4 (1, 3, H, W)")
    elif isinstance(inp.shape[1], int) and inp.shape[1] != 3:
        problems.append(f"input {inp.describe()} has {inp.shape[1]} channels, expected 3 (RGB)")
    if inp.dtype not in ("float32", "float16"):
        problems.append(f"input {inp.name} is {inp.dtype}, expected float32")
    split = _split_outputs(sig)
    if split is None:
        outs = "; ".join(t.describe() for t in sig.outputs) or "none"
        if len(sig.outputs) == 1:
            problems.append(f"one output ({outs}): a detection-only or end-to-end export; a -seg export "
                            "has predictions [1, 4+classes+32, anchors] and prototypes [1, 32, H/4, W/4]")
        else:
            problems.append(f"outputs {outs}: expected predictions [1, 4+classes+32, anchors] and "
                            "prototypes [1, 32, H/4, W/4]")
        return problems
    pred, proto = sig.outputs[split[0]], sig.outputs[split[1]]
    nm = proto.shape[1]
    ch = pred.shape[1]
    if isinstance(ch, int) and isinstance(nm, int) and ch - 4 - nm < 1:
        anchors = pred.shape[2]
        if isinstance(anchors, int) and anchors - 4 - nm >= 1:
            problems.append(f"predictions {pred.describe()} are anchors-first (the YOLOv5-seg layout); "
                            f"expected [1, 4+classes+{nm}, anchors] (Ultralytics YOLOv8/YOLO11 -seg)")
        else:
            problems.append(f"predictions {pred.describe()} leave no class scores next to 4 box values and {nm} "
                            "mask coefficients")
    for t in (pred, proto):
        if t.dtype not in ("float32", "float16"):
            problems.append(f"output {t.name} is {t.dtype}, expected float32")
    return problems


@dataclass(frozen=True)
class Letterbox:
    """How a photo sits on the model's canvas: ``canvas = photo * r + (left, top)``."""

    r: float
    left: int
    top: int
    new_w: int
    new_h: int
    in_w: int
    in_h: int


def letterbox_geometry(h: int, w: int, in_h: int, in_w: int) -> Letterbox:
    """Scale and padding that fit an h×w photo, centred, on an in_h×in_w canvas."""
    r = min(in_h / h, in_w / w)
    new_w, new_h = int(round(w * r)), int(round(h * r))
    dw, dh = (in_w - new_w) / 2, (in_h - new_h) / 2
    return Letterbox(r=r, left=int(round(dw - 0.1)), top=int(round(dh - 0.1)), new_w=new_w, new_h=new_h,
                     in_w=in_w, in_h=in_h)


def letterbox(image: np.ndarray, lb: Letterbox) -> np.ndarray:
    """(in_h, in_w, 3) uint8 canvas: ``image`` resized and centred on grey 114."""
    h, w = image.shape[:2]
    if (lb.new_w, lb.new_h) != (w, h):
        interp = cv2.INTER_AREA if lb.new_w * lb.new_h < w * h else cv2.INTER_LINEAR
        image = cv2.resize(image, (lb.new_w, lb.new_h), interpolation=interp)
    canvas = np.full((lb.in_h, lb.in_w, 3), PAD_VALUE, np.uint8)
    canvas[lb.top : lb.top + lb.new_h, lb.left : lb.left + lb.new_w] = image
    return canvas


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS (highest score first; ties: lower index first)."""
    order = np.argsort(-scores, kind="stable")
    x0, y0, x1, y1 = boxes.T
    area = np.maximum(x1 - x0, 0) * np.maximum(y1 - y0, 0)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        ix0, iy0 = np.maximum(x0[i], x0[rest]), np.maximum(y0[i], y0[rest])
        ix1, iy1 = np.minimum(x1[i], x1[rest]), np.minimum(y1[i], y1[rest])
        inter = np.maximum(ix1 - ix0, 0) * np.maximum(iy1 - iy0, 0)
        union = area[i] + area[rest] - inter
        ov = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        order = rest[ov <= iou]
    return np.asarray(keep, dtype=np.int64)


def _bilinear_weights(pos: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices i0, i1 and weight of i1 for sampling positions ``pos`` (pixel-centre units) in ``size`` cells."""
    pos = np.clip(pos, 0.0, size - 1.0)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, size - 1)
    return i0, i1, (pos - i0).astype(np.float32)


def decode(
    pred: np.ndarray,
    protos: np.ndarray,
    lb: Letterbox,
    photo_hw: tuple[int, int],
    *,
    score_threshold: float = 0.25,
    nms_iou: float = 0.7,
    max_det: int = 100,
    person_class: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """People from raw outputs (batch dim removed).

    Args:
        pred: (4 + nc + nm, A) float — cx, cy, w, h (input px), class scores, mask coefficients.
        protos: (nm, mh, mw) float prototype masks over the whole input canvas.
        lb: the letterbox the photo went through.
        photo_hw: (h, w) of the photo.

    Returns:
        ``(label, scores, boxes)``: an (h, w) int32 map of who owns each pixel (-1 nobody; k = the
        k-th detection, overlaps resolved), (N,) float32 person scores and (N, 4) float32 boxes
        x0, y0, x1, y1 in photo pixels (detector boxes), by score. A label map, not N masks: memory
        stays H·W whatever N is.
    """
    nm, mh, mw = protos.shape
    nc = pred.shape[0] - 4 - nm
    h, w = photo_hw
    empty = (np.full((h, w), -1, np.int32), np.zeros((0,), np.float32), np.zeros((0, 4), np.float32))
    if nc < 1 or person_class >= nc:
        raise EngineError(f"the model has {max(nc, 0)} classes; person_class {person_class} does not exist")
    cls = pred[4 : 4 + nc]
    best = cls.argmax(axis=0)
    conf = cls[person_class]
    cand = np.flatnonzero((best == person_class) & (conf >= score_threshold))
    if cand.size == 0:
        return empty
    cx, cy, bw, bh = (pred[k, cand].astype(np.float64) for k in range(4))
    boxes_in = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    scores = conf[cand].astype(np.float32)
    keep = nms(boxes_in, scores, nms_iou)[: max(0, int(max_det))]
    boxes_in, scores, coef = boxes_in[keep], scores[keep], pred[4 + nc :, cand[keep]].T.astype(np.float32)
    boxes = (boxes_in - np.array([lb.left, lb.top, lb.left, lb.top], np.float64)) / lb.r
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    flat = protos.reshape(nm, -1).astype(np.float32)
    best_logit = np.zeros((h, w), np.float32)  # winning logit per pixel (only > 0 counts)
    label = np.full((h, w), -1, np.int32)
    sx, sy = mw / lb.in_w, mh / lb.in_h  # prototype cells per input pixel
    for k in range(len(keep)):
        # photo pixels whose centre lies in the box
        bx0, by0, bx1, by1 = boxes[k]
        x_lo, x_hi = int(np.ceil(bx0 - 0.5)), int(np.ceil(bx1 - 0.5))
        y_lo, y_hi = int(np.ceil(by0 - 0.5)), int(np.ceil(by1 - 0.5))
        x_lo, y_lo, x_hi, y_hi = max(x_lo, 0), max(y_lo, 0), min(x_hi, w), min(y_hi, h)
        if x_hi <= x_lo or y_hi <= y_lo:
            continue
        logit = (coef[k] @ flat).reshape(mh, mw)
        xs = np.arange(x_lo, x_hi, dtype=np.float64)
        ys = np.arange(y_lo, y_hi, dtype=np.float64)
        # photo pixel centre -> input canvas -> prototype cell coordinates (centres at i + 0.5)
        px = ((xs + 0.5) * lb.r + lb.left) * sx - 0.5
        py = ((ys + 0.5) * lb.r + lb.top) * sy - 0.5
        x0i, x1i, wx = _bilinear_weights(px, mw)
        y0i, y1i, wy = _bilinear_weights(py, mh)
        rows = logit[y0i] * (1 - wy)[:, None] + logit[y1i] * wy[:, None]  # (ny, mw)
        win = rows[:, x0i] * (1 - wx)[None, :] + rows[:, x1i] * wx[None, :]  # (ny, nx)
        sub_best = best_logit[y_lo:y_hi, x_lo:x_hi]
        sub_label = label[y_lo:y_hi, x_lo:x_hi]
        takes = (win > 0) & (win > sub_best)
        sub_best[takes] = win[takes]
        sub_label[takes] = k
    return label, scores, boxes.astype(np.float32)


def to_instances(label: np.ndarray, scores: np.ndarray, boxes: np.ndarray, info: SegmentInfo) -> Instances:
    """Instances from :func:`decode`'s label map: each person's mask cropped to their tight box."""
    h, w = label.shape
    crops, crop_boxes, kept = [], [], []
    for k in range(len(scores)):
        bx0, by0, bx1, by1 = boxes[k]
        x0, y0 = max(0, int(np.floor(bx0))), max(0, int(np.floor(by0)))
        x1, y1 = min(w, int(np.ceil(bx1)) + 1), min(h, int(np.ceil(by1)) + 1)
        sub = label[y0:y1, x0:x1] == k
        ys, xs = np.nonzero(sub.any(axis=1))[0], np.nonzero(sub.any(axis=0))[0]
        if ys.size == 0:
            continue
        ty0, ty1, tx0, tx1 = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
        crops.append(np.ascontiguousarray(sub[ty0:ty1, tx0:tx1]))
        crop_boxes.append((x0 + tx0, y0 + ty0, x0 + tx1, y0 + ty1))
        kept.append(k)
    if not kept:
        return Instances.empty(h, w).with_info(info)
    cb = np.asarray(crop_boxes, np.int64)
    return Instances._numbered((h, w), crops, cb, cb.copy(), np.asarray(scores, np.float32)[kept], info)


class YoloSegSegmenter:
    """People from an Ultralytics -seg ONNX file (see the module docstring for the contract).

    Args:
        path: the ``.onnx`` file.
        score_threshold: person score to accept a detection (0-1, default 0.25).
        nms_iou: IoU above which a lower-scored box is suppressed (default 0.7, Ultralytics' own).
        max_detections: most people kept (highest scores first; like the local segmenter's).
        imgsz: input (height, width) for files with symbolic input dims (default 640x640).
        person_class: the class index meaning person (0 in COCO-trained models).
        sha256: when given, the file must have this hash (the model store passes the recorded one).
        threads: onnxruntime threads (default: up to 2).

    Raises:
        InputError: the file does not exist; bad options.
        EngineError: the file is not loadable, or not a -seg export (says why).
    """

    name: ClassVar[str] = "yolo-seg"
    needs_network: ClassVar[bool] = False

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        score_threshold: float = 0.25,
        nms_iou: float = 0.7,
        max_detections: int = 100,
        imgsz: int | tuple[int, int] | None = None,
        person_class: int = 0,
        sha256: str | None = None,
        threads: int | None = None,
    ) -> None:
        if not 0.0 <= float(score_threshold) <= 1.0:
            raise InputError(f"`score_threshold` must be in [0, 1], got {score_threshold}", param="score_threshold")
        if not 0.0 < float(nms_iou) <= 1.0:
            raise InputError(f"`nms_iou` must be in (0, 1], got {nms_iou}", param="nms_iou")
        if int(max_detections) < 1:
            raise InputError(f"`max_detections` must be >= 1, got {max_detections}", param="max_detections")
        self.score_threshold, self.nms_iou = float(score_threshold), float(nms_iou)
        self.max_detections = int(max_detections)
        self.person_class = int(person_class)
        self.model: ModelFile = model_file(path)
        check_expected(self.model, sha256)
        self._session, sig = require_family(self.model.path, "yolo-seg", threads=threads)
        self.signature = sig
        split = _split_outputs(sig)
        if split is None:  # pragma: no cover - check_signature passed
            raise EngineError(f"model {self.model.name}: no prediction/prototype outputs")
        inp = sig.inputs[0]
        self._input, self._dtype = inp.name, np.dtype(inp.dtype)
        self._outputs = [sig.outputs[split[0]].name, sig.outputs[split[1]].name]
        declared = (fixed(inp.shape[2]), fixed(inp.shape[3]))
        if declared[0] and declared[1]:
            self.input_hw: tuple[int, int] = (int(declared[0]), int(declared[1]))
        elif imgsz is not None:
            hw = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)
            if len(hw) != 2 or min(hw) < 32 or any(int(v) % 32 for v in hw):
                raise InputError(f"`imgsz` must be a multiple of 32 (>= 32), got {imgsz}", param="imgsz")
            self.input_hw = (int(hw[0]), int(hw[1]))
        else:
            self.input_hw = (DEFAULT_SIZE, DEFAULT_SIZE)

    def model_info(self) -> dict[str, Any]:
        return self.model.to_dict("yolo-seg")

    def raw(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, Letterbox]:
        """Run the network on a letterboxed ``image``: (pred (C, A), protos (nm, mh, mw), letterbox)."""
        h, w = image.shape[:2]
        in_h, in_w = self.input_hw
        lb = letterbox_geometry(h, w, in_h, in_w)
        canvas = letterbox(image, lb)
        x = (canvas.astype(np.float32) * np.float32(1 / 255.0)).transpose(2, 0, 1)[None].astype(self._dtype)
        try:
            pred, protos = self._session.run(self._outputs, {self._input: np.ascontiguousarray(x)})
        except Exception as exc:  # noqa: BLE001 - onnxruntime's pybind errors: one line
            raise EngineError(f"model {self.model.name} failed to run: {' '.join(str(exc).split())[:300]}") from None
        pred, protos = np.asarray(pred), np.asarray(protos)
        if protos.ndim != 4 or protos.shape[0] != 1 or protos.shape[1] < 1:
            raise EngineError(f"yolo-seg model {self.model.name} returned prototypes of shape {list(protos.shape)}; "
                              "the contract is [1, 32, H/4, W/4]")
        nm = protos.shape[1]
        if pred.ndim != 3 or pred.shape[0] != 1 or pred.shape[1] < 4 + nm + 1:
            raise EngineError(f"yolo-seg model {self.model.name} returned predictions of shape {list(pred.shape)}; "
                              f"the contract is [1, 4 + classes + {nm}, anchors]")
        if not (np.isfinite(pred).all() and np.isfinite(protos).all()):
            raise EngineError(f"yolo-seg model {self.model.name} returned NaN or infinite values")
        return pred[0].astype(np.float32), protos[0].astype(np.float32), lb

    def segment(self, image: np.ndarray) -> Instances:
        """People in ``image`` ((H, W, 3) uint8 RGB) as numbered instance masks."""
        image = np.asarray(getattr(image, "pixels", image))
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"image must be an (H, W, 3) uint8 RGB array, got shape {image.shape} dtype {image.dtype}")
        pred, protos, lb = self.raw(image)
        label, scores, boxes = decode(
            pred,
            protos,
            lb,
            (image.shape[0], image.shape[1]),
            score_threshold=self.score_threshold,
            nms_iou=self.nms_iou,
            max_det=self.max_detections,
            person_class=self.person_class,
        )
        info = SegmentInfo(engine="yolo-seg", model=ModelRecord(**self.model_info()), detector_boxes=boxes,
                           details={"input_size": list(self.input_hw)})
        return to_instances(label, scores, boxes, info)
