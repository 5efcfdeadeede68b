"""Who is the photo about? The main-subject pick behind ``passersby`` and ``passersby+group``.

Each person gets five cues, each in [0, 1] (1 = "looks like the subject"):

* ``area`` — mask area relative to the largest person in the photo (``area / max area``).
* ``centre`` — 1 minus the distance of the mask's centre of mass from the image centre, divided by
  half the image diagonal (1 = dead centre, 0 = a corner).
* ``sharpness`` — variance of the Laplacian of the grey photo inside the person's mask (eroded a
  little so the outline against the background does not count; big people shrunk to
  ``SHARPNESS_REF_PX`` px tall first), divided by the same variance over the whole photo (``sharpness_ratio``,
  comparable between photos), then relative to the sharpest
  person (``ratio / max ratio``). Out-of-focus passers-by score low.
* ``face`` — a face found (MediaPipe's short-range face detection model, bundled as ONNX and run
  with onnxruntime by ``segmenters._mediapipe.FaceDetector``, offline; run on the upper part of
  every person's box in one batched call, where the face is big enough for it — on the dev sets it finds about twice
  as many faces as the full-range model) in the
  upper part of the person's box and lying on their mask, times how squarely it faces the camera
  (``detection score × frontality``; frontality from where the nose sits between the eyes). 0 when
  no face is seen (back turned, too small: box under ``MIN_FACE_BOX_PX`` px tall).
* ``foot`` — how low the box reaches, ``y1 / H`` (lower in the frame = nearer the camera).

The subject score is the weighted mean ``sum(WEIGHTS[c] * cue[c]) / sum(WEIGHTS)``. The pixel cues
(``sharpness``, ``face``) need the photo; without it they are left out and the remaining weights
are used (the reasons say so). The subject is the person with the highest score (ties: the larger).

Group-aware (``passersby+group``): starting from the subject, a person joins the group when they
stand right next to a member — boxes overlapping, or the gap between their boxes at most
``GROUP_GAP`` × the member's box height — at a similar scale (box heights within a factor
``GROUP_SCALE``) and on a similar foot line (bottom edges within ``GROUP_FOOT`` × the member's
height). Growth repeats, so a row of people holding hands is kept whole.

``selection.POLICIES`` runs ``passersby_policy`` for both (importing this module only when used).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError, SelectionError
from .instances import Instances
from .pixels import check_rgb

#: Weights of the cues in the subject score (documented in the module docstring).
WEIGHTS: dict[str, float] = {"area": 0.35, "centre": 0.20, "sharpness": 0.15, "face": 0.20, "foot": 0.10}
PIXEL_CUES = ("sharpness", "face")

#: People with a box shorter than this (px) are not searched for a face (it would be a few pixels).
MIN_FACE_BOX_PX = 40
#: Sharpness is measured with people shrunk to at most this box height (px).
SHARPNESS_REF_PX = 160
#: Group rule: largest box gap, share of the member's box height.
GROUP_GAP = 0.15
#: Group rule: box heights within this factor of each other.
GROUP_SCALE = 2.0
#: Group rule: bottom edges within this share of the member's box height.
GROUP_FOOT = 0.25

_FACE_DETECTOR: Any = None


@dataclass(frozen=True)
class SubjectPick:
    """Outcome of scoring one photo.

    Attributes:
        subject: person number of the main subject, or None when there is nobody.
        group: person numbers kept with the subject by the group rule (includes the subject).
        cues: per person number, the cue values (see module docstring) plus ``score``,
            ``area_share`` (percent of the photo) and ``sharpness_ratio``.
        used_pixels: whether the pixel cues (sharpness, face) were used.
    """

    subject: int | None
    group: tuple[int, ...]
    cues: dict[int, dict[str, float]]
    used_pixels: bool


# --- cues -----------------------------------------------------------------------------------------


def _face_detector() -> Any:
    """One cached face detector: MediaPipe's short-range model (bundled ONNX, onnxruntime; no download).

    Called with a list of RGB crops, it returns per crop a list of ``Detection`` (``score``, relative
    ``box`` = xmin, ymin, width, height, relative ``keypoints``), strongest first; score >= 0.5."""
    global _FACE_DETECTOR
    if _FACE_DETECTOR is None:
        from .segmenters._mediapipe import FaceDetector

        _FACE_DETECTOR = FaceDetector(min_score=0.5)
    return _FACE_DETECTOR


def _frontality(keypoints: list[tuple[float, float]]) -> float:
    """1 for a face looking straight at the camera, towards 0 as it turns to profile.

    MediaPipe's keypoints are right eye, left eye, nose tip, mouth, right ear, left ear. When the head
    turns, the nose moves off the midpoint between the eyes towards one of them.
    """
    (rx, _), (lx, _), (nx, _) = keypoints[0], keypoints[1], keypoints[2]
    half = abs(lx - rx) / 2.0
    if half <= 1e-6:
        return 0.0
    offset = abs(nx - (lx + rx) / 2.0) / half
    return float(np.clip(1.0 - offset, 0.0, 1.0))


def _face_cues(image: np.ndarray, people: Instances) -> np.ndarray:
    """(N,) face cue per row: detection score × frontality of the best face on that person's mask."""
    import cv2

    h, w = people.shape
    out = np.zeros(len(people), dtype=np.float64)
    todo: list[tuple[int, tuple[int, int, int, int], np.ndarray]] = []  # (row, crop window, crop)
    for k in range(len(people)):
        x0, y0, x1, y1 = (int(v) for v in people.boxes[k])
        bw, bh = x1 - x0, y1 - y0
        if bh < MIN_FACE_BOX_PX or bw < MIN_FACE_BOX_PX // 4:
            continue
        # the head is in the upper part of the box: a square-ish top region, with a little margin
        top_h = int(min(bh, max(bw, bh / 2)))
        mx, my = int(0.1 * bw), int(0.05 * bh)
        cx0, cy0 = max(0, x0 - mx), max(0, y0 - my)
        cx1, cy1 = min(w, x1 + mx), min(h, y0 + top_h + my)
        crop = np.ascontiguousarray(image[cy0:cy1, cx0:cx1])
        if crop.shape[0] < 8 or crop.shape[1] < 8:
            continue
        # small crops are enlarged so the face reaches the detector's working size
        scale = max(1.0, 192.0 / max(crop.shape[:2]))
        if scale > 1.0:
            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        todo.append((k, (cx0, cy0, cx1, cy1), crop))
    found = _face_detector()([c for _, _, c in todo])  # every person's head region in one batched run
    for (k, (cx0, cy0, cx1, cy1), _), faces in zip(todo, found, strict=True):
        mask = people.mask(k)
        ch, cw = cy1 - cy0, cx1 - cx0
        for det in faces:
            bx, by, bw_, bh_ = det.box
            fx = cx0 + (bx + bw_ / 2.0) * cw
            fy = cy0 + (by + bh_ / 2.0) * ch
            if not _on_mask(mask, people, k, fx, fy, radius=max(2, int(bh_ * ch / 2))):
                continue
            kps = [(float(x), float(y)) for x, y in det.keypoints]
            value = det.score * (_frontality(kps) if len(kps) >= 3 else 0.5)
            out[k] = max(out[k], value)
    return out


def face_similarity(original: np.ndarray, output: np.ndarray, box: list[int], *, size: int = 16) -> float:
    """How much of the face in ``box`` survives in ``output``: normalised cross-correlation of the two
    crops as ``size``×``size`` grey thumbnails (about the resolution at which a face can still be told
    apart). 1 = unchanged; a blur or pixelation that hides the face scores well below 0.9."""
    import cv2

    h, w = original.shape[:2]
    x0, y0, x1, y1 = box
    sl = np.s_[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)]
    if original[sl].size == 0:
        return 0.0

    def thumb(a: np.ndarray) -> np.ndarray:
        g = cv2.cvtColor(np.ascontiguousarray(a[sl]), cv2.COLOR_RGB2GRAY)
        t = cv2.resize(g, (size, size), interpolation=cv2.INTER_AREA).astype(np.float64)
        return t - t.mean()

    a, b = thumb(original), thumb(output)
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


def _on_mask(mask: np.ndarray, people: Instances, k: int, fx: float, fy: float, *, radius: int) -> bool:
    """Whether a face centred at (fx, fy) belongs to person ``k`` (not to someone else in the crop)."""
    h, w = mask.shape
    xi, yi = int(np.clip(fx, 0, w - 1)), int(np.clip(fy, 0, h - 1))
    if mask[yi, xi]:
        return True
    owners = [j for j in range(len(people)) if j != k and people.mask(j, window=(xi, yi, xi + 1, yi + 1))[0, 0]]
    if owners:
        return False
    ys, xs = slice(max(0, yi - radius), yi + radius + 1), slice(max(0, xi - radius), xi + radius + 1)
    return bool(mask[ys, xs].any())


def _sharpness(image: np.ndarray, people: Instances) -> np.ndarray:
    """(N,) variance of the Laplacian inside each (slightly eroded) mask, over the photo's variance.

    A big person is first shrunk to ``SHARPNESS_REF_PX`` px box height (never enlarged): shrinking packs
    more detail into each pixel, so without this a sharp subject would look blurrier than a smaller,
    equally sharp copy of themselves.
    """
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    photo_var = float(cv2.Laplacian(grey, cv2.CV_32F, ksize=3).var()) + 1e-6
    h, w = people.shape
    out = np.zeros(len(people), dtype=np.float64)
    for k in range(len(people)):
        x0, y0, x1, y1 = (int(v) for v in people.boxes[k])
        pad = 2
        x0, y0, x1, y1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
        g: np.ndarray = grey[y0:y1, x0:x1]
        m: np.ndarray = people.mask(k, window=(x0, y0, x1, y1)).astype(np.uint8)
        f = min(1.0, SHARPNESS_REF_PX / max(1, y1 - y0))
        if f < 1.0:
            size = (max(1, round(g.shape[1] * f)), max(1, round(g.shape[0] * f)))
            g = cv2.resize(g, size, interpolation=cv2.INTER_AREA)
            m = cv2.resize(m, size, interpolation=cv2.INTER_NEAREST)
        lap = cv2.Laplacian(g.astype(np.float32), cv2.CV_32F, ksize=3)
        r = int(np.clip(g.shape[0] // 60, 1, 3))
        inner = cv2.erode(m, np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0
        if inner.sum() < 16:
            inner = m > 0
        vals = lap[inner]
        out[k] = float(vals.var()) / photo_var if vals.size else 0.0
    return out


def score_people(
    people: Instances, image: np.ndarray | None = None, *, faces: bool = True
) -> dict[int, dict[str, float]]:
    """Main-subject cues and score for every person.

    Args:
        people: the photo's instances.
        image: (H, W, 3) uint8 RGB of the same size, or None to use the geometric cues only.
        faces: look for faces (MediaPipe's face model); False leaves the face cue out like a missing image does.

    Returns:
        {person number: {"score", "area", "centre", "sharpness", "face", "foot", "area_share",
        "sharpness_ratio"}}; cues in [0, 1], ``area_share`` in percent; pixel cues are absent
        when not used.

    Raises:
        InputError: ``image`` is not (H, W, 3) uint8 or its size differs from the masks.
    """
    h, w = people.shape
    if image is not None:
        image = check_rgb(image, who="the main-subject cues")
        if image.shape[:2] != (h, w):
            raise InputError(
                f"the photo is {image.shape[1]}x{image.shape[0]} but the people's masks are {w}x{h}; "
                "segment this photo first"
            )
    n = len(people)
    if n == 0:
        return {}
    areas = people.areas.astype(np.float64)
    cues: dict[str, np.ndarray] = {"area": areas / max(1.0, areas.max())}
    ys, xs = np.mgrid[0:h, 0:w]
    centre = np.zeros(n)
    half_diag = 0.5 * float(np.hypot(h, w))
    for k in range(n):
        m = people.mask(k)
        a = max(1.0, areas[k])
        my, mx = float(ys[m].sum()) / a, float(xs[m].sum()) / a
        centre[k] = 1.0 - float(np.hypot(mx - (w - 1) / 2.0, my - (h - 1) / 2.0)) / half_diag
    cues["centre"] = np.clip(centre, 0.0, 1.0)
    ratio = None
    if image is not None:
        ratio = _sharpness(image, people)
        cues["sharpness"] = ratio / max(1e-9, float(ratio.max()))
        if faces:
            cues["face"] = _face_cues(image, people)
    cues["foot"] = people.boxes[:, 3].astype(np.float64) / h
    used = [c for c in WEIGHTS if c in cues]
    total_w = sum(WEIGHTS[c] for c in used)
    score = np.asarray(sum(WEIGHTS[c] * cues[c] for c in used), dtype=np.float64) / total_w
    out: dict[int, dict[str, float]] = {}
    for k, num in enumerate(people.index.tolist()):
        row = {"score": float(score[k])}
        row.update({c: float(cues[c][k]) for c in WEIGHTS if c in cues})
        row["area_share"] = 100.0 * areas[k] / (h * w)
        if ratio is not None:
            row["sharpness_ratio"] = float(ratio[k])
        out[num] = {key: round(v, 4) for key, v in row.items()}
    return out


# --- the pick -------------------------------------------------------------------------------------


def _box_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean gap between two xyxy boxes (0 when they overlap or touch)."""
    dx = max(0, int(max(a[0], b[0]) - min(a[2], b[2])))
    dy = max(0, int(max(a[1], b[1]) - min(a[3], b[3])))
    return float(np.hypot(dx, dy))


def group_with(people: Instances, subject: int) -> list[int]:
    """Person numbers standing with ``subject`` (see the group rule in the module docstring), subject included."""
    pos = {int(v): k for k, v in enumerate(people.index.tolist())}
    members = [pos[subject]]
    boxes = people.boxes
    heights = np.maximum(1, boxes[:, 3] - boxes[:, 1]).astype(np.float64)
    grown = True
    while grown:
        grown = False
        for k in range(len(people)):
            if k in members:
                continue
            for m in members:
                hm = heights[m]
                scale = max(heights[k], hm) / min(heights[k], hm)
                foot = abs(float(boxes[k, 3] - boxes[m, 3])) / hm
                if scale > GROUP_SCALE or foot > GROUP_FOOT:
                    continue
                if _box_gap(boxes[k], boxes[m]) <= GROUP_GAP * hm:  # overlapping boxes: gap 0
                    members.append(k)
                    grown = True
                    break
    return sorted(int(people.index[k]) for k in members)


def pick_subject(people: Instances, image: np.ndarray | None = None, *, group: bool = False) -> SubjectPick:
    """Score everyone and choose the main subject (and, with ``group``, the people with them).

    Args:
        people: the photo's instances.
        image: (H, W, 3) uint8 RGB, or None (geometric cues only).
        group: also keep the people standing with the subject.
    """
    cues = score_people(people, image)
    if not cues:
        return SubjectPick(None, (), {}, image is not None)
    nums = people.index.tolist()
    areas = dict(zip(nums, people.areas.tolist(), strict=True))
    subject = max(nums, key=lambda i: (cues[i]["score"], areas[i], -i))
    members = group_with(people, subject) if group else [subject]
    return SubjectPick(subject, tuple(members), cues, image is not None)


def _describe(c: dict[str, float], best: dict[str, float], subject: bool) -> list[str]:
    """Short words for a person's cues, strongest first."""
    words: list[str] = []
    a = c["area"]
    if a >= 0.999:
        words.append("largest")
    elif a >= 0.6:
        words.append("large")
    elif a < 0.25:
        words.append("small")
    elif not subject:
        words.append("smaller")
    if c["centre"] >= 0.75:
        words.append("central")
    elif c["centre"] < 0.5:
        words.append("off-centre")
    if "sharpness" in c:
        if c["sharpness"] >= 0.999:
            words.append("sharpest")
        elif c["sharpness"] < 0.35:
            words.append("blurred")
    if "face" in c:
        if c["face"] >= 0.5:
            words.append("facing camera")
        elif c["face"] > 0:
            words.append("face turned away")
        elif not subject:
            words.append("no face seen")
    if c["foot"] >= 0.97 and c["foot"] >= best.get("foot", 1.0) - 1e-6:
        words.append("nearest")
    elif c["foot"] < best.get("foot", 0.0) - 0.15:
        words.append("further back")
    return words


def _reasons(people: Instances, pick: SubjectPick) -> tuple[list[int], dict[int, str]]:
    nums = people.index.tolist()
    if pick.subject is None:
        return [], {}
    if len(nums) == 1:
        return [], {nums[0]: "kept: main subject (the only person)"}
    best = {k: max(c[k] for c in pick.cues.values()) for k in ("foot",)}
    subj = pick.cues[pick.subject]
    no_pixels = "" if pick.used_pixels else "; no photo given, geometry only"
    erase, reasons = [], {}
    for i in nums:
        c = pick.cues[i]
        if i == pick.subject:
            words = _describe(c, best, True) or ["highest score"]
            reasons[i] = f"kept: main subject ({', '.join(words)}; score {c['score']:.2f}{no_pixels})"
        elif i in pick.group:
            reasons[i] = f"kept: stands with the main subject #{pick.subject} (score {c['score']:.2f})"
        else:
            erase.append(i)
            words = _describe(c, best, False) or ["lower score"]
            reasons[i] = f"erased: {', '.join(words)} (score {c['score']:.2f} < subject {subj['score']:.2f}{no_pixels})"
    return erase, reasons


def passersby_policy(
    people: Instances, image: np.ndarray | None, arg: str | None, *, group: bool
) -> tuple[list[int], dict[int, str], dict[int, dict[str, float]]]:
    """``passersby`` (``group=False``): erase everyone but the main subject; ``passersby+group``: also
    keep the people standing with them. Returns (erase numbers, reasons, cue scores per person)."""
    name = "passersby+group" if group else "passersby"
    if arg is not None:
        raise SelectionError(f"policy {name} takes no argument, got {name}:{arg}", param="policy")
    pick = pick_subject(people, image, group=group)
    erase, reasons = _reasons(people, pick)
    return erase, reasons, pick.cues
