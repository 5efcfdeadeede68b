"""FastAPI application speaking DashScope's protocol for the two image models.

Routes (same paths, headers and JSON as the real service):

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

The request handling itself is in ``handlers.py`` (plain functions the FastAPI routes and
``inprocess.InProcessTransport`` share); this module adds the HTTP layer: bodies, uploads, the guard.
"""


from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..cloud import protocol as P
from ..cloud.protocol import MODELS
from .handlers import (
    ApiError,
    Dropped,
    _rid,
    _xml_body,
    check_auth,
    handle_cancel,
    handle_list,
    handle_query,
    handle_result,
    handle_submit,
)
from .state import FakeState

logger = logging.getLogger("person_erase.fakecloud")


def _json_error(
    status: int, code: str, message: str, request_id: str | None = None, headers: dict | None = None
) -> JSONResponse:
    return JSONResponse(
        {"request_id": request_id or _rid(), "code": code, "message": message}, status_code=status, headers=headers
    )


def _xml_error(status: int, code: str, message: str) -> Response:
    return Response(_xml_body(code, message), status_code=status, media_type="application/xml")

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


def _parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[bytes, str | None]]:
    """Form fields of a multipart/form-data body (RFC 7578): name -> (bytes, filename).

    Byte splits on the delimiter, not the ``email`` package: that parses a 1 MB upload in ~0.1 s of pure
    Python, which made the server the bottleneck of the tests that upload many photos.

    Raises:
        ValueError: no boundary, no delimiter, or a part without a header block.
    """
    boundary = next((v.strip().strip('"') for k, _, v in (p.strip().partition("=") for p in content_type.split(";")[1:])
                     if k.strip().lower() == "boundary"), "")
    if not boundary:
        raise ValueError("no multipart boundary")
    chunks = (b"\r\n" + body).split(b"\r\n--" + boundary.encode("latin-1"))
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise ValueError("the body is not delimited by its boundary")
    fields: dict[str, tuple[bytes, str | None]] = {}
    for part in chunks[1:-1]:
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("a part without headers")
        params: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-disposition":
                for item in value.split(";")[1:]:
                    k, _, v = item.strip().partition("=")
                    params[k.strip().lower()] = v.strip().strip('"')
        if params.get("name"):
            fields[params["name"]] = (content, params.get("filename"))
    return fields


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
