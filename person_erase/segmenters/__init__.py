"""Segmenters: find every person as a separate instance mask.

Every segmenter follows one Protocol, ``Segmenter.segment(image) -> Instances``, and is chosen by
name from ``SEGMENTERS`` (the CLI's ``--segmenter`` choices come from the same dict). Heavy imports
(onnxruntime, mediapipe, dashscope) happen inside the factories, so importing this package is cheap.

Names: ``local`` (YOLOX-nano boxes + MediaPipe masks, offline, the default), ``dashscope``
(DashScope ``image-instance-segmentation``), ``labels:PATH`` (bring your own label map PNG, or a
folder of binary masks), ``yolo-seg:PATH.onnx`` (the user's Ultralytics -seg ONNX export), or the
name of a segmenter model registered in the model store (:mod:`person_erase.modelstore`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ..errors import EngineError
from ..instances import Instances


@runtime_checkable
class Segmenter(Protocol):
    """Finds people. ``image`` is (H, W, 3) uint8 RGB; the result's masks are (N, H, W)."""

    name: ClassVar[str]
    needs_network: ClassVar[bool]

    def segment(self, image: np.ndarray) -> Instances: ...


def _local(**options: Any) -> Segmenter:
    from .local import LocalSegmenter

    return LocalSegmenter(**options)


def _dashscope(**options: Any) -> Segmenter:
    from .dashscope import DashScopeSegmenter

    return DashScopeSegmenter(**options)


def _labels(path: str | None = None, **options: Any) -> Segmenter:
    from .labels import LabelSegmenter

    if not path:
        raise EngineError("the labels segmenter needs a path: use labels:PATH (a label-map PNG or a folder of masks)")
    return LabelSegmenter(path, **options)


def _yolo_seg(path: str | None = None, **options: Any) -> Segmenter:
    from .yolo_seg import YoloSegSegmenter

    if not path:
        raise EngineError("the yolo-seg segmenter needs a model file: yolo-seg:PATH.onnx (an Ultralytics -seg "
                          "export), or a name registered in the model store")
    return YoloSegSegmenter(path, **options)


SEGMENTERS: dict[str, Callable[..., Segmenter]] = {
    "dashscope": _dashscope,
    "labels": _labels,
    "local": _local,
    "yolo-seg": _yolo_seg,
}

#: segmenters that take a file or folder: ``NAME:PATH``
FILE_SEGMENTERS = ("labels", "yolo-seg")


def segmenter_names() -> list[str]:
    """The valid names, for messages and help."""
    return sorted(f"{n}:PATH" if n in FILE_SEGMENTERS else n for n in SEGMENTERS)


def register_segmenter(name: str, factory: Callable[..., Segmenter]) -> None:
    """Add (or replace) a segmenter under ``name``; tests register fakes this way."""
    SEGMENTERS[name] = factory


def get_segmenter(spec: str | Segmenter = "local", **options: Any) -> Segmenter:
    """A segmenter by name (``"local"``, ``"dashscope"``, ``"labels:PATH"``, ``"yolo-seg:PATH.onnx"``, a
    model-store name) or passed through.

    Raises:
        EngineError: unknown name (the message lists the valid ones).
    """
    if not isinstance(spec, str):
        return spec
    name, _, arg = spec.partition(":")
    factory = SEGMENTERS.get(name)
    if factory is None:
        from ..modelstore import get_model, verify_file

        stored = get_model(spec)
        if stored is not None:
            if stored.kind != "segmenter":
                raise EngineError(f"model {spec!r} is a {stored.family} {stored.kind}, not a segmenter; use it as "
                                  f"the {stored.kind}")
            return SEGMENTERS[stored.family](path=str(verify_file(stored)), sha256=stored.sha256, **options)
        raise EngineError(f"unknown segmenter {spec!r}; choose one of: {', '.join(segmenter_names())}, or a model "
                          "name registered in the model store")
    if arg:
        options = {"path": arg, **options}
    return factory(**options)
