"""The fake service's request handling, as plain functions over a ``FakeState``.

``handle_submit``, ``handle_query``, ``handle_list``, ``handle_cancel`` and ``handle_result`` take the
request's headers and body or parameters and return ``(status, JSON body)`` (raising ``ApiError`` for an
error answer, ``Dropped`` after creating a task when the connection must drop). The FastAPI routes
(``app.py``) and ``inprocess.InProcessTransport`` both call them, so both behave the same. Input URLs
are resolved and images validated here too (the service's limits and error codes).
"""

from __future__ import annotations

import io
import json
import time
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

import numpy as np

from ..cloud import protocol as P
from ..cloud.protocol import ACCEPTED_FORMATS, ERASE_MODEL, MAX_SIDE, MIN_SIDE, MODELS, SEGMENT_MODEL
from .state import FakeState

MAX_IMAGE_BYTES = P.MAX_FILE_BYTES


class ApiError(Exception):
    """An error answer: HTTP status, DashScope code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _rid() -> str:
    return str(uuid.uuid4())


def check_auth(headers: Any, state: FakeState, *, control: bool = False) -> None:
    """Bearer key check; ``control`` routes (/_fake/*) are open only when no api_key knob is set."""
    import hmac

    expected = state.knobs.api_key
    if control and expected is None:
        return
    scheme, _, token = str(headers.get("authorization", "")).partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or (expected is not None and not hmac.compare_digest(token, expected)):
        raise ApiError(401, P.INVALID_API_KEY, "Invalid API-key provided.")


# --- input resolution and validation (run in a worker thread) ---------------------------------


def _resolve(state: FakeState, url: str, model: str, oss_resolve: bool) -> bytes | str:
    """The bytes behind an input URL, or a FileDownload reason string."""
    if url.startswith("oss://"):
        if not oss_resolve:
            return "oss:// resources need the header X-DashScope-OssResourceResolve: enable"
        up = state.uploads.get(url[len("oss://") :])
        if up is None:
            return f"no uploaded file at {url}"
        if up.model != model:
            return (
                f"{url} was uploaded for model {up.model}; temporary files are bound to one model — upload again for "
                f"{model}"
            )
        return up.data
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https") and parsed.path.startswith("/results/"):
        parts = parsed.path.split("/")
        if len(parts) == 5:
            task = state.tasks.get(parts[3])
            if task is not None and parts[4] in task.files and (task.expires_at or 0) > time.time():
                return task.files[parts[4]][0]
        return f"download for {url} error (expired or unknown result)"
    if parsed.scheme in ("http", "https"):
        return (
            "download for input error: this offline server only reads its own uploads (oss://) and its own result URLs"
        )
    return f"unsupported URL {url[:80]!r}: use http(s) or oss://"


def _decode(data: bytes, field: str, *, mask: bool) -> np.ndarray:
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    if len(data) > MAX_IMAGE_BYTES:
        raise ApiError(
            400,
            "InvalidParameter",
            f"the parameters must conform to the specification: {field} is {len(data)} bytes, larger than 10 MB "
            f"({MAX_IMAGE_BYTES} bytes)",
        )
    try:
        with PILImage.open(io.BytesIO(data)) as img:
            fmt = img.format
            w, h = img.size
            if fmt not in ACCEPTED_FORMATS:
                raise ApiError(
                    400,
                    "InvalidParameter.ImageFormat",
                    f"read image error: {field} is {fmt}; accepted formats are JPEG, PNG, BMP, WEBP",
                )
            if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
                raise ApiError(
                    400,
                    "InvalidParameter",
                    f"the parameters must conform to the specification: {field} is {w}x{h} px; each side must be "
                    f"within {MIN_SIDE}..{MAX_SIDE}",
                )
            img.load()
            if mask:
                arr = np.asarray(img.convert("L")) > 0 if img.mode not in ("L", "1") else np.asarray(img) > 0
                return arr
            return np.ascontiguousarray(np.asarray(img.convert("RGB")))
    except ApiError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ApiError(
            400, "InvalidParameter.ImageFormat", f"read image error: {field} cannot be decoded ({type(exc).__name__})"
        ) from None


def _prepare_inputs(state: FakeState, model: str, inp: dict[str, Any], oss_resolve: bool) -> dict[str, Any]:
    fields = {"image_url": "image"}
    if model == ERASE_MODEL:
        fields.update({"mask_url": "mask", "foreground_url": "foreground"})
    out: dict[str, Any] = {}
    for field, name in fields.items():
        if field not in inp:
            continue
        got = _resolve(state, inp[field], model, oss_resolve)
        if isinstance(got, str):
            return {"error": ("InvalidParameter.FileDownload", got)}
        out[name] = _decode(got, field, mask=name != "image")
    h, w = out["image"].shape[:2]
    for name in ("mask", "foreground"):
        if name in out and out[name].shape != (h, w):
            mh, mw = out[name].shape
            raise ApiError(
                400,
                "InvalidParameter",
                f"the parameters must conform to the specification: {name} is {mw}x{mh}, the image is {w}x{h}; they "
                "must match",
            )
    return out


def _validate_body(body: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    if not isinstance(body, dict):
        raise ApiError(400, "InvalidParameter.JsonPhrase", "input json error: the body must be a JSON object")
    model = body.get("model")
    if not model:
        raise ApiError(400, "BadRequest.EmptyModel", 'Required parameter "model" missing from request.')
    if not isinstance(model, str) or model not in MODELS:
        raise ApiError(400, "InvalidParameter", "Model not exist.")
    inp = body.get("input")
    if not isinstance(inp, dict) or not inp:
        raise ApiError(400, "BadRequest.EmptyInput", 'Required parameter "input" missing from request.')
    params = body.get("parameters", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ApiError(400, "InvalidParameter", "parameters must be a JSON object")
    required = ("image_url",) if model == SEGMENT_MODEL else ("image_url", "mask_url")
    for field in required:
        value = inp.get(field)
        if not isinstance(value, str) or not value.strip():
            raise ApiError(
                400, "InvalidParameter", f"the parameters must conform to the specification: input.{field} is required"
            )
    if "foreground_url" in inp and (not isinstance(inp["foreground_url"], str) or not inp["foreground_url"].strip()):
        raise ApiError(
            400,
            "InvalidParameter",
            "the parameters must conform to the specification: input.foreground_url must be a URL",
        )
    if model == ERASE_MODEL:
        for name in ("dilate_flag", "fast_mode", "add_watermark"):
            if name in params and not isinstance(params[name], bool):
                raise ApiError(
                    400,
                    "InvalidParameter",
                    f"the parameters must conform to the specification: parameters.{name} must be a boolean",
                )
    return model, inp, params


class Dropped(Exception):
    """The task was created; the connection must now be closed without an answer (fault knob)."""


def _fault_error(state: FakeState) -> tuple[int, dict[str, Any]]:
    status = state.knobs.error_status
    code = P.MODEL_UNAVAILABLE if status == 503 else "InternalError"
    return status, {
        "request_id": _rid(),
        "code": code,
        "message": "An internal error has occurred, please try again later.",
    }


def handle_submit(state: FakeState, headers: Any, raw: bytes) -> tuple[int, dict[str, Any]]:
    """POST …/image-synthesis. Returns (status, JSON body); raises ApiError, or Dropped after creating the task."""
    check_auth(headers, state)
    if str(headers.get("x-dashscope-async", "")).lower() != "enable":
        raise ApiError(403, "AccessDenied", "current user api does not support synchronous calls")
    if state.take_fault("error_next_submits", "submit_errors"):
        return _fault_error(state)
    if state.take_fault("throttle_next_submits", "throttled_burst"):
        state.count_rejected(P.RATE_QUOTA)
        return 429, {"request_id": _rid(), "code": P.RATE_QUOTA, "message": P.RATE_MESSAGE}
    if "application/json" not in str(headers.get("content-type", "")).lower():
        raise ApiError(400, "InvalidParameter", "Content-Type must be application/json")
    if len(raw) > state.knobs.max_body_bytes:
        raise ApiError(413, P.TOO_LARGE, f"request body is larger than {state.knobs.max_body_bytes} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, P.JSON_PHRASE, "input json error") from None
    model, inp, params = _validate_body(body)
    oss = str(headers.get("x-dashscope-ossresourceresolve", "")).lower() == "enable"
    inputs = _prepare_inputs(state, model, inp, oss)
    created = state.create_task(model, inputs, params)
    if isinstance(created, tuple):
        code, message = created
        state.count_rejected(code)
        return (403 if code == P.FREE_TIER_ONLY else 429), {"request_id": _rid(), "code": code, "message": message}
    with state.lock:
        state.stats["last_inputs"][model] = sorted(inp)
        state.stats["last_headers"] = {"oss_resolve": oss}
    if state.take_fault("drop_after_submit", "dropped_submits"):
        raise Dropped()
    return 200, {"request_id": created.request_id, "output": {"task_id": created.task_id, "task_status": "PENDING"}}


def handle_query(state: FakeState, headers: Any, task_id: str) -> tuple[int, dict[str, Any]]:
    check_auth(headers, state)
    if state.take_fault("error_next_queries", "query_errors"):
        return _fault_error(state)
    with state.lock:
        state.stats["queried"] += 1
        task = state.tasks.get(task_id)
        if task is None:
            return 200, {"request_id": _rid(), "output": {"task_id": task_id, "task_status": "UNKNOWN"}}
        out: dict[str, Any] = {"task_id": task.task_id, "task_status": task.status, "submit_time": task.submit_time}
        if task.scheduled_time:
            out["scheduled_time"] = task.scheduled_time
        if task.end_time:
            out["end_time"] = task.end_time
        body: dict[str, Any] = {"request_id": _rid(), "output": out}
        if task.status == "SUCCEEDED":
            if task.model == SEGMENT_MODEL:
                out["output_image_url"] = state.result_url(task, "mask.png")
                out["output_vis_image_url"] = state.result_url(task, "vis.jpg")
            else:
                out["output_image_url"] = state.result_url(task, next(iter(task.files)))
            body["usage"] = {"image_count": 1}
        elif task.status == "FAILED":
            out["code"], out["message"] = task.code, task.message
        elif task.status == "RUNNING":
            out["task_metrics"] = {"TOTAL": 1, "SUCCEEDED": 0, "FAILED": 0}
    return 200, body


def _list_time(value: str | None, name: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        return datetime.strptime(str(value), P.LIST_TIME_FORMAT).replace(tzinfo=P.CST).timestamp()
    except ValueError:
        raise ApiError(400, "InvalidParameter", f"{name} must be {P.LIST_TIME_FORMAT.replace('%', '')}") from None


def handle_list(state: FakeState, headers: Any, params: Any) -> tuple[int, dict[str, Any]]:
    check_auth(headers, state)
    try:
        page_no = int(params.get("page_no", 1))
        page_size = int(params.get("page_size", 10))
    except (TypeError, ValueError):
        raise ApiError(400, "InvalidParameter", "page_no and page_size must be integers") from None
    if page_no < 1 or not 1 <= page_size <= 100:
        raise ApiError(400, "InvalidParameter", "page_no must be >= 1 and page_size within 1..100")
    status = params.get("status") or None
    if status is not None and status not in P.ALL_STATES:
        raise ApiError(400, "InvalidParameter", f"unknown status {str(status)[:40]!r}")
    body = state.list_tasks(model=params.get("model_name") or None, status=status,
                            start=_list_time(params.get("start_time"), "start_time"),
                            end=_list_time(params.get("end_time"), "end_time"), page_no=page_no, page_size=page_size)
    return 200, {"request_id": _rid(), **body}


def handle_cancel(state: FakeState, headers: Any, task_id: str) -> tuple[int, dict[str, Any]]:
    check_auth(headers, state)
    refused = state.cancel_task(task_id)
    if refused:
        status, code, message = refused
        return status, {"request_id": _rid(), "code": code, "message": message}
    return 200, {"request_id": _rid()}


def handle_result(state: FakeState, task_id: str, name: str, expires: str, signature: str) -> tuple[int, bytes, str]:
    """A pre-signed result file: (status, body, media type); errors are OSS-style XML."""
    with state.lock:
        task = state.tasks.get(task_id)
        item = task.files.get(name) if task else None
    if item is None or not expires.isdigit() or not state.verify(f"{task_id}/{name}/{expires}", signature):
        return 403, _xml_body("AccessDenied", "You have no right to access this object."), "application/xml"
    if int(expires) < time.time() or (task.expires_at or 0) < time.time():  # type: ignore[union-attr]
        return 403, _xml_body("AccessDenied", "Request has expired."), "application/xml"
    with state.lock:
        state.stats["downloads"] += 1
    return 200, item[0], item[1]


def _xml_body(code: str, message: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"<RequestId>{_rid()}</RequestId></Error>").encode()
