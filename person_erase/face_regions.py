"""Face regions for redaction: which pixels the face pass paints, given the faces found and the people.

``faces.py`` finds faces (CenterFace for the redaction, MediaPipe's full-range model for ``--verify``);
this module decides what to paint from them: an ellipse around each face box grown to take in hair,
ears and jaw (``face_ellipse``), the head of every chosen segmented person (``head_region``; a person
that is only a head is painted whole, ``lone_head``), and optionally a body grown below a face no
segmented person accounts for (``body_from_face``, off by default: measured wrong more often than
right, see ``benchmarks/README.md``). ``find_faces`` runs the detector for the face pass (also on
the photo turned a quarter when someone may be lying, ``may_lie``); ``plan_faces`` puts faces and
heads together into a ``FacePlan`` (a face on a segmented person counts from ``PERSON_FACE_SCORE``);
a face that belongs to a kept person (``policy="passersby"``'s subject) is never added.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .faces import DETECT_SCORE, FACE_SCORE, Faces

#: ``find_faces`` also looks for faces lying sideways when a segmented person's box is wider than
#: tall by this factor (lying, or sitting or bent over) or when nobody was segmented (the segmenter
#: misses most people lying down, so nobody found does not mean no one is lying there).
LYING_ASPECT = 1.0


def may_lie(people: Any) -> bool:
    """Whether a photo may show someone lying: nobody segmented, or a person's box wider than tall
    (by ``LYING_ASPECT``)."""
    if not len(people):
        return True
    b = np.asarray(people.boxes, np.float64)
    return bool(((b[:, 2] - b[:, 0]) > LYING_ASPECT * (b[:, 3] - b[:, 1])).any())


def find_faces(pixels: np.ndarray, people: Any) -> Faces:
    """The faces the face pass starts from: CenterFace's (``faces.detect_faces``, from ``DETECT_SCORE``)
    on the (H, W, 3) uint8 RGB photo, also turned a quarter each way when ``may_lie(people)``.

    The turned passes find faces lying sideways (a baby on a bed, someone on a sofa) that the upright
    pass misses; they cost about a third more, so they run only where someone may lie. Measured on
    the augmented dev photos (``benchmarks/bench_privacy.py --augment``, numbers in
    ``benchmarks/README.md``)."""
    from .faces import detect_faces

    return detect_faces(pixels, min_score=DETECT_SCORE, turned=may_lie(people))


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


#: A face whose centre lies on a segmented person's mask (or within half a face of it) counts from
#: this score instead of ``FACE_SCORE``: a face on a person found by the segmenter is likely right (a
#: half-hidden or turned face scores low), while off every person the weak peaks are mostly round
#: patterns. Measured in ``benchmarks/bench_privacy.py --augment``: in face-only mode 5 more faces of
#: 212 hidden on the augmented dev photos, for 1 % more painted background.
PERSON_FACE_SCORE = 0.1

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
        min_score: faces below this are ignored (default ``FACE_SCORE``), except faces on a segmented
            person, which count from ``min(min_score, PERSON_FACE_SCORE)``.
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
    on_person_score = min(min_score, PERSON_FACE_SCORE)
    for k in range(len(faces)):
        if faces.scores[k] < on_person_score:
            continue
        box = faces.boxes[k]
        x0, y0, x1, y1 = (float(v) for v in box)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        owner = _owner(people, cx, cy, radius=0.5 * max(x1 - x0, y1 - y0))
        if faces.scores[k] < min_score and owner is None:
            continue
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
