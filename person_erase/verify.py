"""Verification: look again in an output for what should be gone.

``verify_removal`` re-runs a segmenter on the output: after erasing, a person found again where
someone was erased is a residue; after redacting, a face still detectable (and still like the
original) in the redacted region is. The pipeline calls it for ``verify=True``; benchmarks and
users can call it on any output.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .engines import engine_name
from .report import Residue, Verification
from .segmenters import Segmenter, get_segmenter

#: Face-detection score from which a face left in a redacted region fails verification. MediaPipe's
#: own 0.5 fires on smooth skin-coloured blobs (0.52 on a blurred red figure). On the astronaut
#: (0.96 unredacted) 8 px pixel blocks leave a face scoring 0.88-0.90; blurs of sigma 6-20 px score
#: 0.5-0.76 depending on the region; the default strengths leave none above 0.3.
VERIFY_FACE_SCORE = 0.6
#: With the original at hand, a face left in a redacted region also has to match the original face as
#: a 16×16 thumbnail this well (``subject.face_similarity``): too-weak redactions of the astronaut
#: score 0.93-0.96, the blurred blobs the detector fires on in the dev sets 0.68-0.84.
VERIFY_FACE_SIMILARITY = 0.9


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
      The detector alone fires on smooth blurred blobs; the similarity alone flags faces too small
      to matter. Measured: on the astronaut, 8 px blocks on her 100 px face leave one (score 0.90,
      similarity 0.96); on both dev sets (54 photos, 33 faces before redaction) the default blur
      and pixelation leave none. A heuristic — a face detector, not a person recogniser.
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


def faces_left(output: np.ndarray, region: np.ndarray, original: np.ndarray | None = None) -> list[Residue]:
    """Faces that survive a redaction of ``region`` (the redact rule of ``verify_removal``): found by
    MediaPipe in ``output`` (score >= ``VERIFY_FACE_SCORE``) and, when ``original`` is given, still
    matching it as a 16×16 thumbnail (``subject.face_similarity`` >= ``VERIFY_FACE_SIMILARITY``)."""
    if not region.any():
        return []
    from .subject import face_similarity, faces_in

    out = []
    for box, score in faces_in(np.ascontiguousarray(output), region, min_score=VERIFY_FACE_SCORE):
        if original is not None and face_similarity(original, output, box) < VERIFY_FACE_SIMILARITY:
            continue
        x0, y0, x1, y1 = box
        sub = region[max(0, y0):max(0, y1), max(0, x0):max(0, x1)]
        out.append(Residue(kind="face", box=box, score=round(score, 4), overlap_px=int(sub.sum()),
                           overlap_share=round(float(sub.mean()) if sub.size else 0.0, 4)))
    return out
