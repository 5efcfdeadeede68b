"""Fast engines for the batch tests, importable by worker processes.

``tests._fake_engines_plugin`` registers them through the real registries (importing it is what
``--plugin tests._fake_engines_plugin`` and the batch's worker processes do):

* segmenter ``figures`` — finds the coloured figures that ``make_scene`` draws (colour distance +
  connected components), so any process finds the same people in the same picture. A picture whose
  top-left pixel is pure magenta (255, 0, 255) makes it raise ``EngineError`` (a "bad" image), unless
  ``PE_FAKE_HEAL=1``.
* eraser ``logged_telea`` — the real Telea eraser, plus a log line per call.

Environment knobs (read at call time, so subprocesses see them):
``PE_FAKE_LOG`` — append ``segment <digest>`` / ``erase <digest>`` lines to this file;
``PE_FAKE_DELAY`` — seconds to sleep in each segment call (to kill a run mid-way);
``PE_FAKE_ORT_LOG`` — each segment call opens an onnxruntime session the way the real engines do
(``ortsession.cpu_session``, bundled YOLOX, no ``threads``) and appends ``ort <intra-op threads> <pid>``.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import ClassVar

import cv2
import numpy as np

from person_erase import EngineError, Instances
from person_erase.engineinfo import SegmentInfo
from tests._imagefactory import FIGURE_COLOURS

MAGENTA = (255, 0, 255)


def _log(kind: str, image: np.ndarray) -> None:
    path = os.environ.get("PE_FAKE_LOG")
    if path:
        digest = hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()[:16]
        with open(path, "a") as fh:
            fh.write(f"{kind} {digest} {os.getpid()}\n")


class FigureSegmenter:
    """People = connected blobs of the figure colours (see ``_imagefactory.make_scene``)."""

    name: ClassVar[str] = "figures"
    needs_network: ClassVar[bool] = False

    def __init__(self, **_: object) -> None:
        pass

    def segment(self, image: np.ndarray) -> Instances:
        _log("segment", image)
        ort_log = os.environ.get("PE_FAKE_ORT_LOG")
        if ort_log:
            from person_erase.ortsession import cpu_session
            from person_erase.segmenters._yolox import MODEL_PATH

            threads = cpu_session(MODEL_PATH).get_session_options().intra_op_num_threads
            with open(ort_log, "a") as fh:
                fh.write(f"ort {threads} {os.getpid()}\n")
        delay = float(os.environ.get("PE_FAKE_DELAY", "0") or 0)
        if delay:
            time.sleep(delay)
        if tuple(int(v) for v in image[0, 0]) == MAGENTA and os.environ.get("PE_FAKE_HEAL") != "1":
            raise EngineError("figures: this test picture is marked to fail (magenta corner)")
        n, labels = cv2.connectedComponents(_figure_pixels(image), connectivity=8)
        masks = np.stack([labels == k for k in range(1, n)]) if n > 1 else np.zeros((0, *labels.shape), bool)
        return Instances.from_engine(masks, min_area=20, info=SegmentInfo(engine="figures"))


def _figure_pixels(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8: 1 where a pixel is within L1 distance 30 of a figure colour."""
    fg = np.zeros(image.shape[:2], np.uint8)
    ones = np.ones((1, 3), np.float32)  # channel sum (saturating at 255: only "< 30" matters)
    for colour in FIGURE_COLOURS.astype(np.uint8):
        fg |= (cv2.transform(cv2.absdiff(image, np.broadcast_to(colour, image.shape).copy()), ones) < 30)
    return fg


def figure_labels(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8 label map of the figures (a fast segment backend for the fake DashScope server):
    the people ``FigureSegmenter`` finds (components of 20 px or more), numbered in any order."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(_figure_pixels(image), connectivity=8)
    lut = np.zeros(n, np.uint8)
    big = [k for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] >= 20]
    lut[big] = np.arange(1, len(big) + 1)
    return lut[labels]


def flat_fill(image: np.ndarray, erase: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """A cheap erase backend for the fake server: the hole gets the mean colour outside it."""
    out = image.copy()
    if erase.any() and (~erase).any():
        out[erase] = np.array(cv2.mean(image, mask=(~erase).astype(np.uint8))[:3]).astype(np.uint8)
    return out


class LoggedTelea:
    """The real ``telea`` eraser, logging each call."""

    name: ClassVar[str] = "logged_telea"
    kind: ClassVar[str] = "inpaint"
    needs_network: ClassVar[bool] = False
    honours_keep_mask: ClassVar[bool] = False
    crops: ClassVar[bool] = False

    def __init__(self, **options: object) -> None:
        from person_erase.erasers.telea import TeleaEraser

        self.inner = TeleaEraser(**options)

    def erase(self, image: np.ndarray, erase: np.ndarray, *, keep: np.ndarray | None = None) -> np.ndarray:
        _log("erase", image)
        return self.inner.erase(image, erase, keep=keep)
