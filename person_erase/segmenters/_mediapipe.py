"""MediaPipe 0.10.21 person masks per crop: selfie segmentation and pose segmentation.

Both models ship inside the ``mediapipe==0.10.21`` wheel. Pose MUST use ``model_complexity=1``:
0 and 2 download their model at construction time, which fails offline.

MediaPipe's C++ side writes INFO/WARNING lines straight to file descriptor 2 (TFLite delegate
notices, absl warnings from its worker threads). ``quiet_stderr`` points fd 2 at /dev/null around
construction and each call, so the CLI's stderr stays clean.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np

from ..errors import EngineError

_LOCK = threading.Lock()
#: Longest side of the crop handed to MediaPipe (its models work at 256 px internally).
INPUT_SIDE = 512


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence fd 2 (C/C++ logging) for the duration; Python-level errors still propagate."""
    with _LOCK:
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError, OSError):
            pass
        try:
            saved = os.dup(2)
        except OSError:  # no real fd 2 (some embedded hosts): nothing to silence
            yield
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def _solutions() -> Any:
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with quiet_stderr():
            from mediapipe.python import solutions  # type: ignore[import-untyped]

            try:
                from absl import logging as absl_logging

                absl_logging.set_verbosity(absl_logging.ERROR)
            except ImportError:  # pragma: no cover - absl comes with mediapipe
                pass
    except ImportError as exc:  # pragma: no cover - mediapipe is a dependency
        raise EngineError("the local segmenter needs mediapipe==0.10.21 (pip install 'mediapipe==0.10.21')") from exc
    return solutions


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


class SelfieMasks:
    """Class-level "any person" probability for a crop (general 256x256 model, ~3 ms)."""

    def __init__(self) -> None:
        solutions = _solutions()
        with quiet_stderr():
            self._model = solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)

    def __call__(self, crop: np.ndarray, *, quiet: bool = True) -> np.ndarray:
        """(h, w) float32 in [0, 1] for an (h, w, 3) uint8 RGB crop.

        ``quiet=False`` skips silencing stderr: for callers that already hold ``quiet_stderr()``
        around many calls (possibly from several threads, one model per thread).
        """
        small = _fit(crop, INPUT_SIDE)
        with quiet_stderr() if quiet else contextlib.nullcontext():
            res = self._model.process(small)
        if res.segmentation_mask is None:
            return np.zeros(crop.shape[:2], np.float32)
        return _back(res.segmentation_mask, crop.shape[:2])

    def close(self) -> None:
        self._model.close()


class PoseMasks:
    """Instance-level mask of the one person pose finds in a crop (full model, ~15-40 ms), or None."""

    def __init__(self, *, min_confidence: float = 0.5) -> None:
        solutions = _solutions()
        with quiet_stderr():
            self._model = solutions.pose.Pose(
                static_image_mode=True,
                model_complexity=1,
                enable_segmentation=True,
                min_detection_confidence=min_confidence,
            )

    def __call__(self, crop: np.ndarray, *, quiet: bool = True) -> np.ndarray | None:
        """(h, w) float32 in [0, 1], or None when no pose was found (``quiet`` as for selfie)."""
        small = _fit(crop, INPUT_SIDE)
        with quiet_stderr() if quiet else contextlib.nullcontext():
            res = self._model.process(small)
        if res.segmentation_mask is None or res.pose_landmarks is None:
            return None
        return _back(res.segmentation_mask, crop.shape[:2])

    def close(self) -> None:
        self._model.close()
