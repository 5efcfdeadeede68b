"""State of the DashScope-compatible server: tasks, uploads, results, quota and rate limits, stats, runners.

Everything here is plain Python guarded by one lock; the request handlers (``handlers.py``, shared by the
FastAPI routes in ``app.py`` and ``inprocess.py``) call into it. The knobs are in ``knobs.py``, the image
encoders in ``images.py``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import random
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from ..cloud import protocol as P
from ..cloud.protocol import CST, MODELS, SEGMENT_MODEL
from .images import encode_labels, encode_result, telea_erase, visualise, watermark
from .knobs import Knobs

__all__ = ["EraseBackend", "FakeState", "Knobs", "SegmentBackend", "Task", "Upload", "telea_erase"]

logger = logging.getLogger("person_erase.fakecloud")

SegmentBackend = Callable[[np.ndarray], np.ndarray]
EraseBackend = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def cst_now() -> str:
    return datetime.now(CST).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


@dataclass
class Task:
    task_id: str
    model: str
    inputs: dict[str, Any]
    parameters: dict[str, Any]
    status: str = "PENDING"
    submit_time: str = field(default_factory=cst_now)
    scheduled_time: str | None = None
    end_time: str | None = None
    code: str | None = None
    message: str | None = None
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    expires_at: float | None = None  # epoch seconds
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))  # of the submit that created it
    #: set when the task is cancelled or the state reset or shut down: its runner stops waiting at once
    #: (the next task of the model never waits out a task nobody wants any more)
    stop: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    @property
    def in_flight(self) -> bool:
        return self.status in ("PENDING", "RUNNING")


def _ms(t: float | None) -> int | None:
    return None if t is None else int(t * 1000)


def _list_item(t: Task) -> dict[str, Any]:
    """One task of the batch task query, with the fields ``protocol.LIST_TASK_FIELDS`` names (times in ms)."""
    return {
        "api_key_id": "fake-api-key-id",
        "caller_parent_id": "0",
        "caller_uid": "0",
        "end_time": _ms(t.finished),
        "gmt_create": _ms(t.created),
        "model_name": t.model,
        "region": "cn-beijing",
        "request_id": t.request_id,
        "start_time": _ms(t.started),
        "status": t.status,
        "task_id": t.task_id,
        "user_api_unique_key": f"apikey:v1:{P.TASK_GROUP}:{P.TASK}:{P.FUNCTION}:{t.model}",
    }


@dataclass
class Upload:
    data: bytes
    model: str
    content_type: str
    created: float


class FakeState:
    """Shared state of one running fake service."""

    def __init__(
        self,
        knobs: Knobs | None = None,
        *,
        segment_backend: str | SegmentBackend = "local",
        erase_backend: str | EraseBackend = "patchmatch",
        max_workers: int = 2,
    ) -> None:
        self.knobs = knobs or Knobs()
        self.initial_knobs = self.knobs
        self.lock = threading.RLock()
        self.stop_event = threading.Event()
        self.tasks: dict[str, Task] = {}
        self.uploads: dict[str, Upload] = {}
        self.upload_bytes = 0
        self.max_upload_store = 1024 * 1024 * 1024
        self.max_tasks = 500
        self.accepted: dict[str, deque[float]] = {m: deque() for m in MODELS}
        self.secret = secrets.token_bytes(32)
        self.rng = random.Random(self.knobs.seed)
        # one runner per model: a second task of a model waits PENDING until the first has ended
        self.executors = {
            m: ThreadPoolExecutor(max_workers=self.knobs.max_in_flight, thread_name_prefix="fake-dashscope-task")
            for m in MODELS
        }
        self.quota_used: dict[str, int] = {m: 0 for m in MODELS}
        #: ``http://host:port`` of this server as clients reach it (set by the server after binding).
        self.root = "http://127.0.0.1"
        self.segment_spec = segment_backend
        self.erase_spec = erase_backend
        self._segment: SegmentBackend | None = None
        self._erasers: dict[str, EraseBackend] = {}
        self.stats: dict[str, Any] = {}
        self.reset_stats()

    # --- configuration / stats -------------------------------------------------------------

    def configure(self, **changes: Any) -> Knobs:
        with self.lock:
            self.knobs = Knobs.model_validate({**self.knobs.model_dump(), **changes})
            if "seed" in changes:
                self.rng = random.Random(self.knobs.seed)
            return self.knobs

    def reset_stats(self) -> None:
        with self.lock:
            self.stats = {
                "submitted": {m: 0 for m in MODELS},
                "queried": 0,
                "throttled": {m: 0 for m in MODELS},
                "rejected": {},
                "succeeded": {m: 0 for m in MODELS},
                "failed": {m: 0 for m in MODELS},
                "uploads": 0,
                "downloads": 0,
                "last_parameters": {},
                "last_inputs": {},
                "last_image_size": {},
                "faults": {
                    "dropped_submits": 0,
                    "submit_errors": 0,
                    "query_errors": 0,
                    "throttled_burst": 0,
                    "dropped_downloads": 0,
                    "failed_tasks": 0,
                },
            }

    def snapshot(self) -> dict[str, Any]:
        import copy

        with self.lock:
            snap = copy.deepcopy(self.stats)
            snap["in_flight"] = {m: sum(1 for t in self.tasks.values() if t.model == m and t.in_flight) for m in MODELS}
            snap["tasks"] = len(self.tasks)
            snap["quota_used"] = dict(self.quota_used)
            return snap

    def reset(self) -> None:
        """Initial knobs, no tasks (running ones are cancelled), uploads, counts or used quota."""
        with self.lock:
            for t in self.tasks.values():
                if t.in_flight:
                    t.status = P.CANCELED
                t.stop.set()
            self.tasks.clear()
            self.uploads.clear()
            self.upload_bytes = 0
            self.knobs = self.initial_knobs
            self.rng = random.Random(self.knobs.seed)
            self.accepted = {m: deque() for m in MODELS}
            self.quota_used = {m: 0 for m in MODELS}
        self.reset_stats()

    def reset_quota(self) -> None:
        with self.lock:
            self.quota_used = {m: 0 for m in MODELS}

    def public_root(self) -> str:
        """Root URL for result and upload links: the bound address, or ``result_host`` on the bound port."""
        if not self.knobs.result_host:
            return self.root
        port = self.root.rsplit(":", 1)[-1]
        return f"http://{self.knobs.result_host}:{port}"

    def count_rejected(self, code: str) -> None:
        with self.lock:
            self.stats["rejected"][code] = self.stats["rejected"].get(code, 0) + 1

    def take_fault(self, knob: str, stat: str) -> bool:
        """Consume one unit of a "next N" fault knob; True when it fired."""
        with self.lock:
            n = getattr(self.knobs, knob)
            if n <= 0:
                return False
            self.knobs = self.knobs.model_copy(update={knob: n - 1})
            self.stats["faults"][stat] += 1
            return True

    # --- signing (uploads and result URLs) --------------------------------------------------

    def sign(self, text: str) -> str:
        return base64.urlsafe_b64encode(hmac.new(self.secret, text.encode(), hashlib.sha256).digest()[:18]).decode()

    def verify(self, text: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(text), signature or "")

    def upload_policy(self, model: str) -> dict[str, Any]:
        upload_dir = f"dashscope-instant/{uuid.uuid4().hex}/{datetime.now(CST):%Y-%m-%d}"
        expire = int(time.time()) + 300
        policy = base64.b64encode(
            f'{{"model":"{model}","dir":"{upload_dir}","expire":{expire},"max":{self.knobs.max_upload_bytes}}}'.encode()
        ).decode()
        return {
            "policy": policy,
            "signature": self.sign(policy),
            "upload_dir": upload_dir,
            "upload_host": f"{self.root}/oss",
            "expire_in_seconds": 300,
            "max_file_size_mb": max(1, self.knobs.max_upload_bytes // (1024 * 1024)),
            "capacity_limit_mb": 999999999,
            "oss_access_key_id": "FAKE-OSS-ACCESS-KEY",
            "x_oss_object_acl": "private",
            "x_oss_forbid_overwrite": "true",
        }

    def store_upload(self, key: str, data: bytes, model: str, content_type: str) -> None:
        with self.lock:
            self.uploads[key] = Upload(data, model, content_type, time.time())
            self.upload_bytes += len(data)
            self.stats["uploads"] += 1
            while self.upload_bytes > self.max_upload_store and self.uploads:
                old = next(iter(self.uploads))
                self.upload_bytes -= len(self.uploads.pop(old).data)

    def result_url(self, task: Task, name: str) -> str:
        expires = int(task.expires_at or 0)
        sig = self.sign(f"{task.task_id}/{name}/{expires}")
        return (
            f"{self.public_root()}/results/{task.task_id}/{name}"
            f"?Expires={expires}&OSSAccessKeyId=FAKE-OSS-ACCESS-KEY&Signature={sig}"
        )

    # --- rate limits ------------------------------------------------------------------------

    def admit(self, model: str) -> tuple[str, str] | None:
        """Check the per-model limits (under the lock); None when a task may be created."""
        now = time.monotonic()
        window = self.accepted[model]
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= self.knobs.submits_per_second:
            return P.RATE_QUOTA, P.RATE_MESSAGE
        active = sum(1 for t in self.tasks.values() if t.model == model and t.in_flight)
        if self.quota_used[model] + active >= self.knobs.free_quota:
            if self.knobs.quota_answer == "free_tier_only":
                return P.FREE_TIER_ONLY, P.FREE_TIER_ONLY_MESSAGE
            return P.ALLOCATION_QUOTA, P.FREE_QUOTA_MESSAGE
        return None

    def cancel_task(self, task_id: str) -> tuple[int, str, str] | None:
        """Cancel a PENDING task; None when done, else (status, code, message)."""
        with self.lock:
            task = self.tasks.get(task_id)
            if task is None:
                return 404, "InvalidParameter", f"task {task_id} does not exist"
            if task.status != P.PENDING:
                return (
                    400,
                    "UnsupportedOperation",
                    f"only PENDING tasks can be canceled; task {task_id} is {task.status}",
                )
            task.status = P.CANCELED
            task.stop.set()
            task.end_time = cst_now()
            task.finished = time.time()
            task.inputs = {}
            self.stats.setdefault("canceled", {m: 0 for m in MODELS})[task.model] += 1
            return None

    def list_tasks(self, *, model: str | None, status: str | None, start: float | None, end: float | None,
                   page_no: int, page_size: int) -> dict[str, Any]:
        """The batch task query's answer (``data`` newest first, with paging fields)."""
        with self.lock:
            rows = [t for t in self.tasks.values()
                    if (model is None or t.model == model) and (status is None or t.status == status)
                    and (start is None or t.created >= start) and (end is None or t.created <= end)]
            rows.sort(key=lambda t: t.created, reverse=True)
            total = len(rows)
            page = rows[(page_no - 1) * page_size : page_no * page_size]
            data = [_list_item(t) for t in page]
            self.stats["listed"] = self.stats.get("listed", 0) + 1
        return {"data": data, "total": total, "total_page": -(-total // page_size) if page_size else 0,
                "page_no": page_no, "page_size": page_size}

    def create_task(self, model: str, inputs: dict[str, Any], parameters: dict[str, Any]) -> Task | tuple[str, str]:
        with self.lock:
            refused = self.admit(model)
            if refused:
                self.stats["throttled"][model] += 1
                return refused
            task = Task(task_id=str(uuid.uuid4()), model=model, inputs=inputs, parameters=parameters)
            self.tasks[task.task_id] = task
            self.accepted[model].append(time.monotonic())
            self.stats["submitted"][model] += 1
            self.stats["last_parameters"][model] = dict(parameters)
            if "image" in inputs:
                h, w = inputs["image"].shape[:2]
                self.stats["last_image_size"][model] = [int(w), int(h)]
            while len(self.tasks) > self.max_tasks:
                oldest = next((k for k, t in self.tasks.items() if not t.in_flight), None)
                if oldest is None:
                    break
                del self.tasks[oldest]
        if not self.stop_event.is_set():
            self.executors[model].submit(self._run, task)
        return task

    # --- task execution ---------------------------------------------------------------------

    def _segmenter(self) -> SegmentBackend:
        if self._segment is None:
            spec = self.segment_spec
            if callable(spec):
                self._segment = spec
            else:
                from ..segmenters import get_segmenter

                engine = get_segmenter(spec)
                self._segment = lambda img: engine.segment(img).to_label_map()
        return self._segment

    def _eraser(self, fast: bool) -> EraseBackend:
        spec = self.erase_spec
        if callable(spec):
            return spec
        name = "telea" if fast else spec
        if name not in self._erasers:  # no fallback: an unavailable eraser fails the task, visibly
            from ..erasers import ERASERS, call_eraser, get_eraser

            engine = get_eraser(name)
            espec = ERASERS.describe(name)
            self._erasers[name] = lambda img, er, kp: call_eraser(engine, espec, img, er, keep=kp).image
        return self._erasers[name]

    def _run(self, task: Task) -> None:
        knobs = self.knobs
        latency = knobs.latency_seg if task.model == SEGMENT_MODEL else knobs.latency_erase
        with self.lock:
            if task.status != P.PENDING:  # cancelled while it waited
                return
        start = time.monotonic()
        if self._stopped(task, min(0.05, latency * 0.2)):
            return
        with self.lock:
            if task.status != P.PENDING:
                return
            task.status = "RUNNING"
            task.scheduled_time = cst_now()
            task.started = time.time()
            fail = False
            if self.knobs.fail_next_tasks > 0:
                self.knobs = self.knobs.model_copy(update={"fail_next_tasks": self.knobs.fail_next_tasks - 1})
                self.stats["faults"]["failed_tasks"] += 1
                fail = True
            elif knobs.failure_rate > 0 and self.rng.random() < knobs.failure_rate:
                self.stats["faults"]["failed_tasks"] += 1
                fail = True
        code = message = None
        files: dict[str, tuple[bytes, str]] = {}
        if fail:
            code, message = P.ALGO_ERROR, "algorithm process error"
        elif "error" in task.inputs:
            code, message = task.inputs["error"]
        else:
            try:
                files = self._compute(task)
            except Exception as exc:  # a backend failure becomes a FAILED task, like the real service
                logger.warning(
                    "fake dashscope: task %s failed in the backend: %s: %s", task.task_id, type(exc).__name__, exc
                )
                code, message = P.ALGO_ERROR, f"algorithm process error ({type(exc).__name__})"
        remaining = latency - (time.monotonic() - start)
        if remaining > 0 and self._stopped(task, remaining):
            return
        with self.lock:
            if self.tasks.get(task.task_id) is not task or task.status != "RUNNING":  # reset or cancelled meanwhile
                return
            task.end_time = cst_now()
            task.finished = time.time()
            task.expires_at = time.time() + self.knobs.result_ttl_s
            task.inputs = {}
            if code:
                task.status, task.code, task.message = "FAILED", code, message
                self.stats["failed"][task.model] += 1
            else:
                task.status, task.files = "SUCCEEDED", files
                self.stats["succeeded"][task.model] += 1
                self.quota_used[task.model] += 1  # billing counts successful images only

    def _stopped(self, task: Task, seconds: float) -> bool:
        """Wait ``seconds`` of the task's latency; True when it was cancelled, reset or shut down meanwhile."""
        return task.stop.wait(seconds) or self.stop_event.is_set()

    def _compute(self, task: Task) -> dict[str, tuple[bytes, str]]:
        image = task.inputs["image"]
        if task.model == SEGMENT_MODEL:
            labels = np.asarray(self._segmenter()(image))
            if labels.shape != image.shape[:2]:
                raise ValueError(f"segment backend returned shape {labels.shape}, expected {image.shape[:2]}")
            return {
                "mask.png": (encode_labels(labels), "image/png"),
                "vis.jpg": (visualise(image, labels), "image/jpeg"),
            }
        erase = task.inputs["mask"]
        keep = task.inputs.get("foreground")
        keep = np.zeros_like(erase) if keep is None else keep & ~erase
        if task.parameters.get("dilate_flag", True):
            import cv2

            r = max(2, min(image.shape[:2]) // 100)
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
            erase = cv2.dilate(erase.astype(np.uint8), kernel) > 0
            erase &= ~keep
        out = np.asarray(self._eraser(bool(task.parameters.get("fast_mode", False)))(image, erase, keep))
        if out.shape != image.shape or out.dtype != np.uint8:
            raise ValueError(f"erase backend returned {out.shape} {out.dtype}, expected {image.shape} uint8")
        if task.parameters.get("add_watermark", True):
            out = watermark(out)
        fmt = self.knobs.result_format
        name, media = ("result.png", "image/png") if fmt == "png" else ("result.jpg", "image/jpeg")
        return {name: (encode_result(out, fmt), media)}

    def shutdown(self) -> None:
        self.stop_event.set()
        with self.lock:
            for t in self.tasks.values():
                t.stop.set()
        for ex in self.executors.values():
            ex.shutdown(wait=True, cancel_futures=True)
