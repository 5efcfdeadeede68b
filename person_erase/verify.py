"""Verification: look again in an output for what should be gone.

``verify_removal`` re-runs a segmenter on the output: after erasing, a person found again where
someone was erased is a residue; after redacting, a face still detectable (and still like the
original) in the redacted region is. The pipeline calls it for ``verify=True``; benchmarks and
users can call it on any output.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .engines import engine_name
from .report import Residue, Verification
from .segmenters import Segmenter, get_segmenter

#: Face-detection score from which a face left in a redacted region fails verification: MediaPipe's
#: own threshold for the full-range model (``faces.FULL_RANGE_SCORE``); the weaker hits are smooth
#: blurred blobs. Measured in ``benchmarks/bench_privacy.py --verify-faces`` (benchmarks/README.md).
VERIFY_FACE_SCORE = 0.6
#: With the original at hand, a face left in a redacted region also has to match the original face as
#: a 16×16 thumbnail this well (``subject.face_similarity``): too-weak redactions of a face match it
#: closely, the blurred blobs a detector fires on do not.
VERIFY_FACE_SIMILARITY = 0.9
#: Smallest tile side (px) the region is searched in (a region part smaller than this is one tile).
VERIFY_TILE_MIN_PX = 64
#: At most this many tiles per connected part of the region (larger parts get larger tiles).
VERIFY_TILES = 24


def verify_removal(
    output: np.ndarray,
    erase_mask: np.ndarray,
    segmenter: str | Segmenter = "local",
    *,
    mode: Literal["erase", "redact"] = "erase",
    original: np.ndarray | None = None,
    min_share: float = 0.3,
) -> Verification:
    """Re-run a segmenter on ``output`` and report what is still there where people were removed.

    A re-detected person with at least ``min_share`` of its mask inside ``erase_mask`` overlaps the
    removed region (kept people standing next to it do not count).

    * ``erase``: each such person is a residue: someone was not fully erased.
    * ``redact``: a blurred, pixelated or filled body keeps its outline, so being found again is
      expected: such people are listed as ``silhouettes``, for information. The residues are
      faces that survive: MediaPipe still detects a face inside the region (score >=
      ``VERIFY_FACE_SCORE``) *and*, when ``original`` is given, the output still matches the
      original there as a 16×16 thumbnail (``subject.face_similarity`` >= ``VERIFY_FACE_SIMILARITY``).
      The detector is MediaPipe's full-range face model, not the CenterFace model that drew the
      face regions, so the check is not the redaction's detector grading itself. The detector alone
      fires on smooth blurred blobs; the similarity alone flags faces too small to matter. A
      heuristic — a face detector, not a person recogniser.
    """
    seg = get_segmenter(segmenter)
    found = seg.segment(np.ascontiguousarray(output))
    overlapping = []
    for k in range(len(found)):
        m = found.mask(k)
        area = int(m.sum())
        inside = int((m & erase_mask).sum())
        share = inside / max(1, area)
        if share >= min_share:
            overlapping.append(Residue(kind="person", box=[int(v) for v in found.boxes[k]],
                                       score=round(float(found.scores[k]), 4), overlap_px=inside,
                                       overlap_share=round(share, 4)))
    if mode == "erase":
        return Verification(segmenter=engine_name(seg), people_found=len(found), residues=overlapping,
                            ok=not overlapping)
    faces = faces_left(output, erase_mask, original)
    return Verification(segmenter=engine_name(seg), people_found=len(found), residues=faces,
                        silhouettes=overlapping, ok=not faces)


def faces_in(
    image: np.ndarray, region: np.ndarray, *, min_score: float = VERIFY_FACE_SCORE
) -> list[tuple[list[int], float]]:
    """Faces MediaPipe's full-range face model (``faces.FullRangeFaces``; not the redaction's CenterFace)
    finds inside ``region`` of ``image``.

    Each connected part of ``region`` is searched in square tiles of its short side (at least
    ``VERIFY_TILE_MIN_PX``, at most ``VERIFY_TILES`` per part: a face is small in a whole-body or group
    region), with an eighth of margin, every tile seen at the model's 192 px. A face counts when its
    centre lies in ``region``.

    Returns:
        [(box x0, y0, x1, y1 in pixels, detection score)], strongest first.
    """
    import cv2

    from .faces import _tiles

    h, w = region.shape
    n, _, stats, _ = cv2.connectedComponentsWithStats(region.astype(np.uint8), connectivity=8)
    crops: list[np.ndarray] = []
    offsets: list[tuple[int, int]] = []
    for c in range(1, n):
        x0, y0, bw, bh = (int(v) for v in stats[c, :4])
        if bw < 8 or bh < 8:
            continue
        mx, my = max(1, bw // 8), max(1, bh // 8)
        cx0, cy0, cx1, cy1 = max(0, x0 - mx), max(0, y0 - my), min(w, x0 + bw + mx), min(h, y0 + bh + my)
        part = image[cy0:cy1, cx0:cx1]
        side = max(VERIFY_TILE_MIN_PX, min(part.shape[:2]))
        while len(_tiles(part, side)) > VERIFY_TILES:
            side = int(side * 1.5)
        for ty, tx, tile in _tiles(part, side):
            crops.append(np.ascontiguousarray(tile))
            offsets.append((cx0 + tx, cy0 + ty))
    hits: list[tuple[list[int], float]] = []
    for faces, (ox, oy) in zip(_verify_detector()(crops), offsets, strict=True):
        for k in range(len(faces)):
            score = float(faces.scores[k])
            fx0, fy0, fx1, fy1 = (float(v) for v in faces.boxes[k])
            fx0, fy0, fx1, fy1 = fx0 + ox, fy0 + oy, fx1 + ox, fy1 + oy
            xi = int(np.clip((fx0 + fx1) / 2, 0, w - 1))
            yi = int(np.clip((fy0 + fy1) / 2, 0, h - 1))
            if score >= min_score and region[yi, xi]:
                hits.append(([int(round(fx0)), int(round(fy0)), int(round(fx1)), int(round(fy1))], score))
    found: list[tuple[list[int], float]] = []
    for box, score in sorted(hits, key=lambda f: -f[1]):  # overlapping tiles: the strongest of a face
        if not any(_iou(box, b) > 0.3 for b, _ in found):
            found.append((box, score))
    return found


_VERIFY_DETECTOR: Any = None


def _verify_detector() -> Any:
    """The process-wide verification detector (MediaPipe full range, scores from 0.3 kept so callers
    can ask ``faces_in`` for weaker faces than ``VERIFY_FACE_SCORE``)."""
    global _VERIFY_DETECTOR
    if _VERIFY_DETECTOR is None:
        from .faces import FullRangeFaces

        _VERIFY_DETECTOR = FullRangeFaces(min_score=0.3)
    return _VERIFY_DETECTOR


def _iou(a: list[int], b: list[int]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def faces_left(output: np.ndarray, region: np.ndarray, original: np.ndarray | None = None) -> list[Residue]:
    """Faces that survive a redaction of ``region`` (the redact rule of ``verify_removal``): found by
    MediaPipe in ``output`` (score >= ``VERIFY_FACE_SCORE``) and, when ``original`` is given, still
    matching it as a 16×16 thumbnail (``subject.face_similarity`` >= ``VERIFY_FACE_SIMILARITY``)."""
    if not region.any():
        return []
    from .subject import face_similarity

    out = []
    for box, score in faces_in(np.ascontiguousarray(output), region, min_score=VERIFY_FACE_SCORE):
        if original is not None and face_similarity(original, output, box) < VERIFY_FACE_SIMILARITY:
            continue
        x0, y0, x1, y1 = box
        sub = region[max(0, y0):max(0, y1), max(0, x0):max(0, x1)]
        out.append(Residue(kind="face", box=box, score=round(score, 4), overlap_px=int(sub.sum()),
                           overlap_share=round(float(sub.mean()) if sub.size else 0.0, 4)))
    return out
