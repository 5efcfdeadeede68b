"""Segmenters: find every person as a separate instance mask.

Every segmenter follows one Protocol, ``Segmenter.segment(image) -> Instances``, and is chosen by
name from ``SEGMENTERS``, a ``Registry`` of ``EngineSpec`` (``person_erase.engines``): capabilities
are readable before building, and the CLI's choices come from it. Heavy imports (onnxruntime,
dashscope) happen when an engine is built, so importing this package is cheap. What a segmenter did
(engine, timings, task ids, notes) comes back as ``Instances.info`` (``engineinfo.SegmentInfo``).
Cloud segmenters are also a ``TwoPhaseSegmenter`` (spec ``two_phase``).

Names: ``local`` (YOLOX-nano boxes + masks from MediaPipe's models on onnxruntime, offline, the default), ``dashscope``
(DashScope ``image-instance-segmentation``), ``labels:PATH`` (bring your own label map PNG, or a
folder of binary masks), ``yolo-seg:PATH.onnx`` (the user's Ultralytics -seg ONNX export), or the
name of a segmenter model registered in the model store (:mod:`person_erase.modelstore`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ..engines import EngineSpec, Registry
from ..instances import Instances

if TYPE_CHECKING:
    from ..cloud.client import DashScopeClient


@runtime_checkable
class Segmenter(Protocol):
    """Finds people. ``image`` is (H, W, 3) uint8 RGB; the result's masks are (N, H, W)."""

    name: ClassVar[str]
    needs_network: ClassVar[bool]

    def segment(self, image: np.ndarray) -> Instances: ...


@runtime_checkable
class TwoPhaseSegmenter(Protocol):
    """A cloud segmenter in two phases, so the task id can be journaled between them (``batch``).

    ``submit`` uploads the photo and creates the task (``on_intent(intent)`` is called just before
    the request is sent; ``exclude``: task ids of other work, never adopted); ``collect`` waits for
    the task and returns the people of a photo of ``size`` = (H, W), with ``info.task_ids``.
    ``model`` is the service's model name; ``client`` the ``DashScopeClient``.
    """

    model: str
    client: DashScopeClient

    def submit(self, image: np.ndarray, *, on_intent: Any = None, exclude: Any = ()) -> str: ...

    def collect(self, task_id: str, *, size: tuple[int, int]) -> Instances: ...


SEGMENTERS = Registry("segmenter", store=True, specs=[
    EngineSpec("dashscope", "segment", "person_erase.segmenters.dashscope:DashScopeSegmenter", summary="cloud",
               needs_network=True, two_phase=True, forwards="person_erase.cloud.client:DashScopeClient"),
    EngineSpec("labels", "segment", "person_erase.segmenters.labels:LabelSegmenter", summary="your own label map",
               arg="PATH", options=frozenset()),
    EngineSpec("local", "segment", "person_erase.segmenters.local:LocalSegmenter", summary="offline",
               options=frozenset({"quality", "score_threshold", "nms_iou", "max_detections", "threads"})),
    EngineSpec("yolo-seg", "segment", "person_erase.segmenters.yolo_seg:YoloSegSegmenter",
               summary="your Ultralytics -seg ONNX file", arg="PATH",
               options=frozenset({"score_threshold", "nms_iou", "max_detections", "imgsz", "person_class", "sha256",
                                  "threads"})),
])


def register_segmenter(name: str, factory: EngineSpec | Callable[..., Segmenter], **capabilities: Any) -> EngineSpec:
    """Add (or replace) a segmenter under ``name``; tests register fakes this way.

    ``factory`` is an ``EngineSpec`` or a callable returning a segmenter; ``capabilities`` are
    ``EngineSpec`` fields (``needs_network=True``, ``arg="PATH"``, ``options=...``).
    """
    return SEGMENTERS.add(name, factory, **capabilities)


def get_segmenter(spec: str | Segmenter = "local", **options: Any) -> Segmenter:
    """A segmenter by name (``"local"``, ``"dashscope"``, ``"labels:PATH"``, ``"yolo-seg:PATH.onnx"``, a
    model-store name) or passed through.

    Raises:
        EngineError: unknown name (the message lists the valid ones), a model-store name that is not
            a segmenter or whose file changed.
        InputError: an option the segmenter does not take (or options with a segmenter object).
    """
    return SEGMENTERS.build(spec, **options)  # type: ignore[no-any-return]
