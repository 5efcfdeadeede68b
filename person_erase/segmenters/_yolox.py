"""YOLOX-nano person boxes (bundled ONNX, onnxruntime), at any input size.

The bundled file declares a static ``[1, 3, 416, 416]`` input. Its graph computes everything else
from the input's shape, so it runs at other sizes once the declared dims are made symbolic. The
``onnx`` package is not a dependency, so :func:`dynamic_input_model` edits the protobuf bytes in
memory with a tiny wire-format walker (nothing is written to disk).

Pre-processing (YOLOX ``ValTransform``): BGR, aspect-preserving resize, top-left on a canvas of 114,
float32 0..255. Output rows are ``[dx, dy, log_w, log_h, obj, 80 class probs]`` (sigmoid already
applied), decoded here on the stride 8/16/32 grids.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import EngineError
from ..ortsession import cpu_session

MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "yolox_nano.onnx"
STRIDES = (8, 16, 32)

# --- minimal protobuf wire format ---------------------------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _enc_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _fields(buf: bytes) -> list[tuple[int, int, bytes]]:
    """Split a message into (field number, wire type, raw payload incl. nothing of the key)."""
    out = []
    pos = 0
    n = len(buf)
    while pos < n:
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        start = pos
        if wt == 0:
            _, pos = _varint(buf, pos)
            out.append((num, wt, buf[start:pos]))
        elif wt == 1:
            pos += 8
            out.append((num, wt, buf[start:pos]))
        elif wt == 2:
            ln, pos = _varint(buf, pos)
            out.append((num, wt, buf[pos : pos + ln]))
            pos += ln
        elif wt == 5:
            pos += 4
            out.append((num, wt, buf[start:pos]))
        else:
            raise EngineError(f"cannot parse the bundled ONNX model (wire type {wt}); reinstall person_erase")
    return out


def _join(fields: list[tuple[int, int, bytes]]) -> bytes:
    parts = []
    for num, wt, payload in fields:
        parts.append(_enc_varint((num << 3) | wt))
        if wt == 2:
            parts.append(_enc_varint(len(payload)))
        parts.append(payload)
    return b"".join(parts)


def _edit(buf: bytes, path: tuple[int, ...], fn: Any) -> bytes:
    """Apply ``fn`` to every length-delimited sub-message reached through field numbers ``path``."""
    if not path:
        return fn(buf)
    head, rest = path[0], path[1:]
    return _join(
        [(num, wt, _edit(p, rest, fn) if (num == head and wt == 2) else p) for num, wt, p in _fields(buf)]
    )


def _symbolic_dims(names: dict[int, str]) -> Any:
    """A TensorShapeProto editor that turns dims at the given positions into named (dynamic) ones."""

    def fn(shape: bytes) -> bytes:
        fields = _fields(shape)
        out = []
        k = 0
        for num, wt, p in fields:
            if num == 1 and wt == 2:  # Dimension
                if k in names:
                    p = _join([(2, 2, names[k].encode())])  # dim_param
                k += 1
            out.append((num, wt, p))
        return _join(out)

    return fn


def dynamic_input_model(model: bytes) -> bytes:
    """The ONNX model bytes with input H, W (and the output's anchor count) made symbolic.

    ModelProto.graph=7; GraphProto.input=11, output=12, value_info=13; ValueInfoProto.type=2;
    TypeProto.tensor_type=1; Tensor.shape=2; TensorShapeProto.dim=1; Dimension.dim_param=2.
    """

    def drop_value_info(graph: bytes) -> bytes:
        return _join([f for f in _fields(graph) if f[0] != 13])

    model = _edit(model, (7,), drop_value_info)
    model = _edit(model, (7, 11, 2, 1, 2), _symbolic_dims({2: "height", 3: "width"}))
    model = _edit(model, (7, 12, 2, 1, 2), _symbolic_dims({1: "anchors"}))
    return model


# --- detector -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Detections:
    """Person boxes in photo pixels: ``boxes`` (N, 4) float32 x0, y0, x1, y1; ``scores`` (N,)."""

    boxes: np.ndarray
    scores: np.ndarray


class YoloxPersons:
    """YOLOX-nano person detector; one onnxruntime session, reused across calls."""

    def __init__(self, *, threads: int | None = None) -> None:
        if not MODEL_PATH.is_file():
            raise EngineError(f"the bundled detector {MODEL_PATH} is missing; reinstall person_erase")
        self._session = cpu_session(dynamic_input_model(MODEL_PATH.read_bytes()), threads=threads)
        self._input = self._session.get_inputs()[0].name
        self._grids: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def _grid(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        key = (h, w)
        if key not in self._grids:
            xy, st = [], []
            for s in STRIDES:
                gy, gx = np.mgrid[0 : h // s, 0 : w // s]
                xy.append(np.stack([gx.ravel(), gy.ravel()], axis=1))
                st.append(np.full(gx.size, s))
            self._grids[key] = (np.concatenate(xy).astype(np.float32), np.concatenate(st).astype(np.float32)[:, None])
        return self._grids[key]

    def raw(self, image: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Decoded (boxes, person scores) before thresholding, for one letterboxed pass.

        The canvas is ``size`` on the long side and the short side is rounded up to a multiple of 32
        (less padding than a square canvas; the model is fully convolutional).
        """
        h, w = image.shape[:2]
        r = size / max(h, w)
        nh, nw = max(1, round(h * r)), max(1, round(w * r))
        ch, cw = -(-nh // 32) * 32, -(-nw // 32) * 32
        canvas = np.full((ch, cw, 3), 114, dtype=np.uint8)
        # resized as RGB, then written as BGR: channels are resized independently, so this equals resizing
        # the BGR photo without first copying all of it
        canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
        blob = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32)
        out = self._session.run(None, {self._input: blob})[0][0]
        grid, stride = self._grid(ch, cw)
        cxy = (out[:, :2] + grid) * stride
        wh = np.exp(np.minimum(out[:, 2:4], 10.0)) * stride
        boxes = np.concatenate([cxy - wh / 2, cxy + wh / 2], axis=1) / r
        scores = out[:, 4] * out[:, 5]
        return boxes, scores

    def detect(
        self,
        image: np.ndarray,
        *,
        sizes: tuple[int, ...] = (416,),
        score_threshold: float = 0.25,
        nms_iou: float = 0.45,
        flip: bool = False,
        max_box_px: float = 320.0,
        max_detections: int | None = None,
    ) -> Detections:
        """Person boxes, merged over the given input sizes (and a horizontal flip) with one NMS.

        Passes above the smallest size only contribute boxes whose longer side is under
        ``max_box_px`` canvas pixels: upscaled big people break into fragments, and the smallest
        pass already sees them whole. At most ``max_detections`` boxes are returned (the
        highest-scoring ones; all when None).
        """
        h, w = image.shape[:2]
        all_b, all_s = [], []
        smallest = min(sizes)
        for size in sizes:
            views = [False, True] if flip else [False]
            for flipped in views:
                img = image[:, ::-1] if flipped else image
                b, s = self.raw(img, size)
                keep = s >= score_threshold
                if size != smallest:
                    side = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) * (size / max(h, w))
                    keep &= side < max_box_px
                b, s = b[keep], s[keep]
                if flipped:
                    b = np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], axis=1)
                all_b.append(b)
                all_s.append(s)
        boxes = np.concatenate(all_b) if all_b else np.zeros((0, 4), np.float32)
        scores = np.concatenate(all_s) if all_s else np.zeros((0,), np.float32)
        keep = scores >= score_threshold
        boxes, scores = boxes[keep], scores[keep]
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        ok = (boxes[:, 2] - boxes[:, 0] >= 2) & (boxes[:, 3] - boxes[:, 1] >= 2)
        boxes, scores = boxes[ok], scores[ok]
        if len(boxes) == 0:
            return Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
        kept = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), score_threshold, nms_iou)
        idx = np.asarray(kept, dtype=np.int64).reshape(-1)
        order = idx[np.argsort(-scores[idx], kind="stable")]
        if max_detections is not None:
            order = order[: max(0, int(max_detections))]
        return Detections(boxes[order].astype(np.float32), scores[order].astype(np.float32))
