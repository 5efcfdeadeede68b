"""``InProcessTransport``: the client's ``Transport`` answered by a ``FakeState`` in this process, no sockets.

It calls the same request handlers the HTTP routes use (``handlers.handle_*``), so validation, error codes,
quota, the task list, cancel and the fault knobs behave exactly as over HTTP; only the wire is missing.
Like httpx's ``MockTransport``, it serves the unit tests of retries, throttling, timeouts, adoption and
resume in milliseconds. ``https`` result URLs fail to connect (the fake serves plain http), so the
client's https-first rule is exercised too.

Example::

    state = FakeState(Knobs(latency_seg=0.01), segment_backend=..., erase_backend=...)
    client = DashScopeClient(api_key="sk-test", base_url="http://127.0.0.1:1/api/v1",
                             transport=InProcessTransport(state, "sk-test"))
"""

from __future__ import annotations

import json
import mimetypes
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from ..cloud.transport import Download, Reply, TransportError, UploadRefused
from .handlers import (
    ApiError,
    Dropped,
    check_auth,
    handle_cancel,
    handle_list,
    handle_query,
    handle_result,
    handle_submit,
)
from .state import FakeState


class InProcessTransport:
    """A ``Transport`` over ``state``; ``api_key`` is sent as the Bearer key of every call."""

    def __init__(self, state: FakeState, api_key: str) -> None:
        self.state = state
        self.__key = api_key
        self.calls: dict[str, int] = {}

    def __repr__(self) -> str:
        return "InProcessTransport()"

    def _count(self, name: str, deadline: float) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if time.monotonic() > deadline:
            raise TransportError(f"{name}: deadline passed before the call", sent=False, kind="timeout")

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"authorization": f"Bearer {self.__key}", "content-type": "application/json"}
        h.update({k.lower(): v for k, v in (extra or {}).items()})
        return h

    @staticmethod
    def _reply(fn: Any, *args: Any) -> Reply:
        try:
            status, body = fn(*args)
        except ApiError as exc:
            status, body = exc.status, {"request_id": "in-process", "code": exc.code, "message": exc.message}
        return Reply(status, json.loads(json.dumps(body)), "", {})

    def create(self, model: str, input: dict[str, str], parameters: dict[str, Any], *,  # noqa: A002
               headers: dict[str, str], deadline: float) -> Reply:
        self._count("create", deadline)
        raw = json.dumps({"model": model, "input": input, "parameters": parameters}).encode()
        try:
            return self._reply(
                handle_submit, self.state, self._headers({"x-dashscope-async": "enable", **headers}), raw
            )
        except Dropped:
            raise TransportError(
                "the connection dropped after the submit was sent", sent=None, kind="dropped"
            ) from None

    def get(self, task_id: str, *, deadline: float) -> Reply:
        self._count("get", deadline)
        return self._reply(handle_query, self.state, self._headers(), task_id)

    def list(self, *, model: str, start_time: str | None, end_time: str | None, status: str | None,
             page_no: int, page_size: int, deadline: float) -> Reply:
        self._count("list", deadline)
        params = {"model_name": model, "start_time": start_time or "", "end_time": end_time or "",
                  "status": status or "", "page_no": str(page_no), "page_size": str(page_size)}
        return self._reply(handle_list, self.state, self._headers(), params)

    def cancel(self, task_id: str, *, deadline: float) -> Reply:
        self._count("cancel", deadline)
        return self._reply(handle_cancel, self.state, self._headers(), task_id)

    def upload(self, path: Path, *, model: str, certificate: dict[str, Any] | None,
               deadline: float) -> tuple[str, dict[str, Any] | None]:
        self._count("upload", deadline)
        try:
            check_auth(self._headers(), self.state)
        except ApiError as exc:
            raise UploadRefused(Reply(exc.status, {"code": exc.code, "message": exc.message}, "", {})) from None
        cert = certificate or self.state.upload_policy(model)
        data = Path(path).read_bytes()
        if len(data) > self.state.knobs.max_upload_bytes:
            raise TransportError("EntityTooLarge: Your proposed upload exceeds the maximum allowed size.", sent=True,
                                 kind="upload")
        key = f"{cert['upload_dir']}/{Path(path).name}"
        if key in self.state.uploads:
            raise TransportError("FileAlreadyExists", sent=True, kind="upload")
        self.state.store_upload(key, data, model, mimetypes.guess_type(str(path))[0] or "application/octet-stream")
        return f"oss://{key}", cert

    def download(self, url: str, *, connect_to: str | None, max_bytes: int, deadline: float) -> Download:
        self._count("download", deadline)
        parsed = urlparse(url)
        if parsed.scheme == "https":
            raise TransportError("TLS handshake failed (the fake serves plain http)", sent=False, kind="connect")
        parts = parsed.path.split("/")
        if len(parts) != 4 or parts[1] != "results":
            return Download(404, {})
        q = parse_qs(parsed.query)
        status, data, media = handle_result(self.state, parts[2], parts[3], q.get("Expires", [""])[0],
                                            q.get("Signature", [""])[0])
        if status == 200 and self.state.take_fault("drop_next_downloads", "dropped_downloads"):
            raise TransportError("connection dropped mid-download", sent=True, kind="dropped")
        if status == 200 and len(data) > max_bytes:
            raise TransportError(f"more than {max_bytes} bytes", sent=True, kind="too_large")
        return Download(status, {"content-type": media}, data if status == 200 else b"")
