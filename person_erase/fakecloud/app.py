"""FastAPI application speaking DashScope's protocol for the two image models.

Routes (same paths, headers and JSON as the real service, see DESIGN.md):

* ``POST /api/v1/services/aigc/image2image/image-synthesis`` — create a task (``Authorization: Bearer …``
  and ``X-DashScope-Async: enable`` required; ``oss://`` inputs need ``X-DashScope-OssResourceResolve: enable``).
* ``GET  /api/v1/tasks/{task_id}`` — task status and, once SUCCEEDED, result URLs on this server.
* ``GET  /api/v1/tasks?model_name=…&status=…&start_time=…&end_time=…&page_no=…&page_size=…`` — the batch
  task query (``data`` newest first, ``total``, ``total_page``, ``page_no``, ``page_size``).
* ``POST /api/v1/tasks/{task_id}/cancel`` — cancel a PENDING task.
* ``GET  /api/v1/uploads?action=getPolicy&model=…`` — temporary-upload credentials; the SDK then posts
  the file (multipart) to ``upload_host`` = ``/oss`` on this server and uses ``oss://<key>``.
* ``GET  /results/{task_id}/{name}`` — pre-signed result downloads that expire (OSS-style XML errors);
  like OSS, authorised by their signature, not by the API key.
* ``GET  /_fake/stats`` — counts: ``{"submitted": {model: n}, "queried": n, "throttled": …, "rejected": …}``.
* ``GET/POST /_fake/config`` — read / change the knobs (``Knobs``) at run time; ``/_fake/health``.

With an ``api_key`` knob every ``/api/v1`` and ``/_fake`` route requires ``Authorization: Bearer <key>``.
Result and upload URLs are built from the server's own address (or the ``result_host`` knob), never from a
request's ``Host`` header. Every error is DashScope-style JSON ``{"request_id", "code", "message"}`` (XML on
the OSS-like routes); a bug in a handler answers 500 ``InternalError`` instead of a traceback page.

The request handling itself is in plain functions (``handle_submit``, ``handle_query``, ``handle_list``,
``handle_cancel``, ``handle_result``) that the FastAPI routes and ``inprocess.InProcessTransport`` share.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import io
import json
import logging
import time
import uuid
from typing import Any
from urllib.parse import urlparse

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..cloud import protocol as P
from .state import (
    ACCEPTED_FORMATS,
    ERASE_MODEL,
    MAX_IMAGE_BYTES,
    MAX_SIDE,
    MIN_SIDE,
    MODELS,
    SEGMENT_MODEL,
    FakeState,
)

logger = logging.getLogger("person_erase.fakecloud")


class ApiError(Exception):
    """An error answer: HTTP status, DashScope code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _rid() -> str:
    return str(uuid.uuid4())


def _json_error(
    status: int, code: str, message: str, request_id: str | None = None, headers: dict | None = None
) -> JSONResponse:
    return JSONResponse(
        {"request_id": request_id or _rid(), "code": code, "message": message}, status_code=status, headers=headers
    )


def _xml_error(status: int, code: str, message: str) -> Response:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
        f"<RequestId>{_rid()}</RequestId></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")


async def _read_body(request: Request, cap: int) -> bytes:
    """The request body, or ApiError 413 past ``cap`` bytes (the rest is drained, up to a bound)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > 8 * cap:
        raise ApiError(413, P.TOO_LARGE, f"request body is {declared} bytes; at most {cap} bytes are accepted")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= cap:
            chunks.append(chunk)
        elif size > 8 * cap:
            break
    if size > cap:
        raise ApiError(413, P.TOO_LARGE, f"request body is larger than {cap} bytes")
    return b"".join(chunks)


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


def _parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[bytes, str | None]]:
    """Form fields of a multipart/form-data body: name -> (bytes, filename)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        raise ValueError("not a multipart body")
    fields: dict[str, tuple[bytes, str | None]] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True)
        fields[str(name)] = (payload if isinstance(payload, bytes) else b"", part.get_filename())
    return fields


# --- the app ----------------------------------------------------------------------------------


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
    from datetime import datetime

    from .state import _CST

    if value in (None, ""):
        return None
    try:
        return datetime.strptime(str(value), P.LIST_TIME_FORMAT).replace(tzinfo=_CST).timestamp()
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


def create_app(state: FakeState) -> Any:
    """The ASGI app (FastAPI wrapped in a guard that turns any escaped error into a JSON 500)."""
    app = FastAPI(title="person_erase fake DashScope", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.fake = state

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        state.count_rejected(exc.code)
        return _json_error(exc.status, exc.code, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "InvalidParameter")
        return _json_error(exc.status_code, code, f"{request.method} {request.url.path}: {exc.detail}")

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _json_error(400, "InvalidParameter", "request parameters are invalid")

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, (_Dropped, Dropped)):  # deliberate fault; handled by the guard
            raise exc
        logger.error(
            "fake dashscope: internal error on %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc
        )
        return _json_error(500, "InternalError", "An internal error has occurred, please try again later.")

    def answer(got: tuple[int, dict[str, Any]]) -> JSONResponse:
        return JSONResponse(got[1], status_code=got[0])

    @app.post("/api/v1/services/aigc/image2image/image-synthesis")
    async def submit(request: Request) -> Response:
        check_auth(request.headers, state)
        raw = await _read_body(request, state.knobs.max_body_bytes)
        return answer(await run_in_threadpool(handle_submit, state, request.headers, raw))

    @app.get("/api/v1/tasks")
    async def list_tasks(request: Request) -> Response:
        return answer(handle_list(state, request.headers, request.query_params))

    @app.get("/api/v1/tasks/{task_id}")
    async def query(task_id: str, request: Request) -> Response:
        return answer(handle_query(state, request.headers, task_id))

    @app.post("/api/v1/tasks/{task_id}/cancel")
    async def cancel(task_id: str, request: Request) -> Response:
        return answer(handle_cancel(state, request.headers, task_id))

    @app.get("/api/v1/uploads")
    async def upload_policy(request: Request) -> Response:
        check_auth(request.headers, state)
        action = request.query_params.get("action")
        model = request.query_params.get("model", "")
        if action != "getPolicy":
            raise ApiError(400, "InvalidParameter", "action must be getPolicy")
        if model not in MODELS:
            raise ApiError(400, "InvalidParameter", "Model not exist.")
        return JSONResponse({"request_id": _rid(), "data": state.upload_policy(model)})

    @app.post("/oss")
    async def oss_upload(request: Request) -> Response:
        ctype = request.headers.get("content-type", "")
        if not ctype.lower().startswith("multipart/form-data"):
            return _xml_error(400, "InvalidArgument", "POST object needs multipart/form-data")
        try:
            body = await _read_body(request, state.knobs.max_upload_bytes + 64 * 1024)
        except ApiError:
            return _xml_error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
        try:
            fields = await run_in_threadpool(_parse_multipart, ctype, body)
        except Exception:
            return _xml_error(
                400, "MalformedPOSTRequest", "The body of your POST request is not well-formed multipart/form-data."
            )
        policy = fields.get("policy", (b"", None))[0].decode("ascii", "replace")
        signature = fields.get("Signature", (b"", None))[0].decode("ascii", "replace")
        key = fields.get("key", (b"", None))[0].decode("utf-8", "replace")
        if "file" not in fields or not key:
            return _xml_error(400, "InvalidArgument", "key and file are required")
        if not state.verify(policy, signature):
            return _xml_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        try:
            info = json.loads(base64.b64decode(policy))
        except ValueError:
            return _xml_error(400, "InvalidPolicyDocument", "Invalid Policy")
        if info["expire"] < time.time():
            return _xml_error(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        if not key.startswith(info["dir"] + "/"):
            return _xml_error(403, "AccessDenied", "Invalid according to Policy: key outside the upload dir.")
        data = fields["file"][0]
        if len(data) > info["max"]:
            return _xml_error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
        if key in state.uploads:
            return _xml_error(
                409, "FileAlreadyExists", "The object you specified already exists and can not be overwritten."
            )
        ctype_field = fields.get("x-oss-content-type", (b"application/octet-stream", None))[0].decode(
            "ascii", "replace"
        )
        state.store_upload(key, data, info["model"], ctype_field)
        return Response(status_code=200)

    @app.get("/results/{task_id}/{name}")
    async def result(task_id: str, name: str, request: Request) -> Response:
        status, data, media = handle_result(state, task_id, name, request.query_params.get("Expires", ""),
                                            request.query_params.get("Signature", ""))
        if status == 200 and state.take_fault("drop_next_downloads", "dropped_downloads"):
            return _DroppedResponse(data, media)
        return Response(data, status_code=status, media_type=media)

    @app.get("/_fake/stats")
    async def stats(request: Request) -> Response:
        check_auth(request.headers, state, control=True)
        return JSONResponse(state.snapshot())

    @app.get("/_fake/config")
    async def get_config(request: Request) -> Response:
        check_auth(request.headers, state, control=True)
        return JSONResponse(state.knobs.public())

    @app.post("/_fake/config")
    async def set_config(request: Request) -> Response:
        check_auth(request.headers, state, control=True)
        raw = await _read_body(request, 64 * 1024)
        try:
            changes = json.loads(raw or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("not an object")
            knobs = state.configure(**changes)
        except (ValueError, TypeError) as exc:
            raise ApiError(400, "InvalidParameter", f"bad knobs: {str(exc).splitlines()[0]}") from None
        return JSONResponse(knobs.public())

    @app.post("/_fake/quota/reset")
    async def reset_quota(request: Request) -> Response:
        check_auth(request.headers, state, control=True)
        state.reset_quota()
        return JSONResponse({"quota_used": state.snapshot()["quota_used"]})

    @app.get("/_fake/health")
    async def health(request: Request) -> Response:
        check_auth(request.headers, state, control=True)
        return JSONResponse({"ok": True})

    return _Guard(app)


class _DroppedResponse(Response):
    """Declares the full length, sends half the bytes, then ends without finishing (connection dropped)."""

    def __init__(self, data: bytes, media_type: str) -> None:
        super().__init__(content=b"", media_type=media_type)
        self._data = data

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(self._data)).encode()),
                    (b"content-type", (self.media_type or "application/octet-stream").encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": self._data[: len(self._data) // 2], "more_body": True})
        raise _Dropped()


class _Dropped(Exception):
    """Raised to abandon a response on purpose (fault injection)."""


class _Guard:
    """Outermost ASGI layer: deliberate drops close the connection quietly; nothing else escapes."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.state = app.state.fake

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except _Dropped:
            return
        except Dropped:
            # Close the socket without a byte of answer (the client sees the connection drop after its
            # request was read). uvicorn's ASGI send is a bound method of the request cycle, which owns
            # the asyncio transport; marking the cycle disconnected stops uvicorn from answering 500.
            cycle = getattr(send, "__self__", None)
            transport = getattr(cycle, "transport", None)
            if cycle is not None and hasattr(cycle, "disconnected"):
                cycle.disconnected = True
            if transport is not None:
                transport.close()
            return
        except Exception as exc:  # already answered by the app's 500 handler when possible
            if not started:
                logger.error("fake dashscope: %s on %s: %s", type(exc).__name__, scope.get("path"), exc)
                rsp = _json_error(500, "InternalError", "An internal error has occurred, please try again later.")
                await rsp(scope, receive, send)
