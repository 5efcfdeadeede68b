"""DashScope ``image-instance-segmentation`` as a segmenter.

The photo is fitted into the service's limits (``cloud.adapt``), uploaded through the SDK's temporary
storage, segmented by one async task, and the returned label map (0 background, 1..N one id per person;
channel 0 when the PNG has several channels) is brought back to the photo's size with nearest-neighbour
resampling and turned into ``Instances`` (numbered left to right like every segmenter). The task id,
request id, timings and the adaptation sent travel in ``Instances.info`` (``SegmentInfo``).

Two-phase use for pipelines that journal task ids: ``task_id = seg.submit(image)`` then
``seg.collect(task_id, size=image.shape[:2])`` — ``collect`` also resumes a task stored by an earlier run.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from typing import Any, ClassVar

import numpy as np

from ..cloud.adapt import adapt_image, check_result_size, encode_image, plan_adaptation, restore_labels, write_file
from ..cloud.client import SEGMENT_MODEL, DashScopeClient
from ..engineinfo import SegmentInfo
from ..errors import CloudError
from ..instances import Instances
from ..pixels import check_rgb


def _check_image(image: np.ndarray) -> np.ndarray:
    return check_rgb(image, who="the dashscope segmenter")


def label_map_from_result(raw: np.ndarray, *, task_id: str | None = None) -> np.ndarray:
    """The (h, w) integer label map in a decoded result (channel 0 of multi-channel files).

    Raises:
        CloudError: the array cannot be a label map (code ``"BadResult"``).
    """
    if raw.ndim == 3:
        raw = raw[:, :, 0]
    if raw.ndim != 2 or not np.issubdtype(raw.dtype, np.integer):
        raise CloudError(
            f"the segmentation result of task {task_id} is not a label map (shape {raw.shape}, dtype {raw.dtype})",
            code="BadResult",
            task_id=task_id,
        )
    if raw.dtype == bool:
        raw = raw.astype(np.uint8)
    return raw


class DashScopeSegmenter:
    """Person instance segmentation by DashScope (``image-instance-segmentation``).

    Args:
        client: a ``DashScopeClient`` to use; built from the other arguments and ``Settings`` if omitted.
        api_key, base_url, timeout_s: passed to the client (defaults from ``DASHSCOPE_API_KEY``,
            ``DASHSCOPE_HTTP_BASE_URL``, ``PERSON_ERASE_CLOUD_TIMEOUT_S``).
        **client_options: more ``DashScopeClient`` options (poll intervals, backoff, …).

    Raises:
        CloudError: no API key configured (before any network call).
    """

    name: ClassVar[str] = "dashscope"
    needs_network: ClassVar[bool] = True
    model: ClassVar[str] = SEGMENT_MODEL

    def __init__(
        self,
        *,
        client: DashScopeClient | None = None,
        api_key: Any = None,
        base_url: str | None = None,
        timeout_s: float | None = None,
        **client_options: Any,
    ) -> None:
        self.client = client or DashScopeClient(
            api_key=api_key, base_url=base_url, timeout_s=timeout_s, **client_options
        )

    def __repr__(self) -> str:
        return f"DashScopeSegmenter(base_url={self.client.base_url!r})"

    def submit(self, image: np.ndarray, *, on_intent: Any = None, exclude: Any = ()) -> str:
        """Upload the (adapted) photo and create the task; returns the task id.

        ``on_intent`` / ``exclude``: see ``DashScopeClient.submit`` (journal the intent; ids of other work).
        """
        image = _check_image(image)
        plan = plan_adaptation(*image.shape[:2])
        sent = adapt_image(image, plan)
        with tempfile.TemporaryDirectory(prefix="pe-seg-") as tmp:
            data, ext = encode_image(sent)
            path = write_file(tmp, f"seg-{uuid.uuid4().hex}", data, ext)
            url, _ = self.client.upload(path, model=SEGMENT_MODEL)
        return self.client.submit(
            SEGMENT_MODEL, {"image_url": url}, parameters={}, on_intent=on_intent, exclude=exclude
        )

    def collect(self, task_id: str, *, size: tuple[int, int]) -> Instances:
        """Wait for ``task_id`` and decode its label map for a photo of ``size`` = (H, W)."""
        t0 = time.perf_counter()
        result = self.client.wait(task_id, model=SEGMENT_MODEL)
        t1 = time.perf_counter()
        raw = self.client.download_image(result.url("output_image_url"), task_id=task_id)
        labels = label_map_from_result(raw, task_id=task_id)
        plan = plan_adaptation(*size)
        size_note = check_result_size(labels.shape[:2], plan, task_id=task_id, what="segmentation label map")  # type: ignore[arg-type]
        labels = restore_labels(labels, plan)
        t2 = time.perf_counter()
        info = SegmentInfo(
            engine="dashscope", task_ids=(task_id,), request_ids=(result.request_id,) if result.request_id else (),
            timings_ms={"wait": (t1 - t0) * 1e3, "download": (t2 - t1) * 1e3},
            details={"adaptation": plan.describe(), **({"result_rescaled": size_note} if size_note else {})},
        )
        return Instances.from_label_map(labels, info=info)

    def segment(self, image: np.ndarray) -> Instances:
        """Every person in ``image`` ((H, W, 3) uint8 RGB) as ``Instances`` of the same size."""
        image = _check_image(image)
        t0 = time.perf_counter()
        task_id = self.submit(image)
        submit_ms = (time.perf_counter() - t0) * 1e3
        people = self.collect(task_id, size=(int(image.shape[0]), int(image.shape[1])))
        return people.with_info(people.info.replace(timings_ms={"submit": submit_ms, **people.info.timings_ms}))
