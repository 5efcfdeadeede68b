"""The seam between the DashScope client and the network.

``Transport`` is a small Protocol: create task, get task, list tasks, cancel, upload, download. The
client (``client.DashScopeClient``) holds the policy (limits, retries, deadlines, adoption, the result
host allow-list); a transport only performs one call and reports what came back:

* ``SdkTransport`` — the real thing, and the only module that imports ``dashscope``. Submits and uploads
  go through the SDK (``BaseAsyncApi.async_call`` and ``oss_utils``); task queries, the batch task query
  and cancel are plain ``httpx`` calls to the same URLs with the SDK's own headers, because the SDK's
  ``fetch`` has a fixed 300 s timeout and its ``list``/``cancel`` none at all. Every call gets the
  remaining budget of the caller's deadline and is cut off there even when the server drips bytes.
* ``fakecloud.inprocess.InProcessTransport`` — the same calls answered by a ``FakeState`` in this
  process, no sockets (httpx's ``MockTransport`` is the model): the fast unit tests use it.

Errors: a transport raises ``TransportError`` (not a ``PersonEraseError``: the client turns it into a
``CloudError``). ``sent`` says whether the request may have reached the service: ``False`` only when
that is proven impossible (connection refused, DNS failure), ``None`` when unknown.

The SDK resends a POST once on any ``requests.ConnectionError`` — also when the service had already read
it (``api_entities/http_request.py::_send_with_retry``), which can create two tasks for one submit. The
SDK transport hands the SDK a session that sends at most one request: the resend is refused, the
submit ends as "outcome unknown", and the client adopts the task from the task list instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from . import protocol as P

logger = logging.getLogger("person_erase.cloud")

T = TypeVar("T")

#: At most this much of an unexpected answer is quoted in messages.
QUOTE_CHARS = 160


@dataclass(frozen=True)
class Reply:
    """One answer of the service's JSON API.

    Attributes:
        status_code: HTTP status.
        body: the decoded JSON body (any JSON value), or None when it was not JSON.
        text: a short quote of the raw body when it was not JSON (for messages), else "".
        headers: response headers, lower-case names.
    """

    status_code: int
    body: Any = None
    text: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def json_object(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {}

    @property
    def code(self) -> str | None:
        c = self.json_object.get("code")
        return c if isinstance(c, str) and c else None

    @property
    def message(self) -> str | None:
        m = self.json_object.get("message")
        return m if isinstance(m, str) and m else None

    @property
    def request_id(self) -> str | None:
        r = self.json_object.get("request_id")
        return r if isinstance(r, str) and r else None

    @property
    def output(self) -> Any:
        return self.json_object.get("output")

    def received(self) -> str:
        """What was received, in a few words (for error messages)."""
        if self.body is None:
            return (
                f"HTTP {self.status_code} with a non-JSON body {self.text!r}"
                if self.text
                else f"HTTP {self.status_code} with an empty body"
            )
        if not isinstance(self.body, dict):
            return f"HTTP {self.status_code} with JSON {type(self.body).__name__} {quote(self.body)}"
        return f"HTTP {self.status_code} {quote(self.body)}"


@dataclass(frozen=True)
class Download:
    """One result-file GET: status, headers (lower-case) and the body (empty unless 200)."""

    status_code: int
    headers: dict[str, str]
    content: bytes = b""


class TransportError(Exception):
    """A call did not produce an answer (connection refused or dropped, timeout, deadline).

    Attributes:
        sent: False when the request provably never reached the service; None when unknown.
        kind: ``"connect"``, ``"dropped"``, ``"timeout"``, ``"too_large"``, ``"upload"`` or ``"other"``.
    """

    def __init__(self, message: str, *, sent: bool | None = None, kind: str = "other") -> None:
        super().__init__(message)
        self.sent = sent
        self.kind = kind


def quote(value: Any, limit: int = QUOTE_CHARS) -> str:
    """A short printable rendering of a received value."""
    try:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: Largest JSON answer read (task query, list, cancel).
MAX_ANSWER_BYTES = 4 * 1024 * 1024


def read_capped(chunks: Iterable[bytes], *, max_bytes: int, deadline: float, what: str, sent: bool | None) -> bytes:
    """Join ``chunks`` as they arrive, at most ``max_bytes``, all before ``deadline``.

    Raises:
        TransportError: kind ``"too_large"`` past ``max_bytes``; ``"timeout"`` past the deadline.
    """
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise TransportError(f"{what} is larger than {max_bytes} bytes", sent=True, kind="too_large")
        parts.append(chunk)
        if time.monotonic() > deadline:
            raise TransportError(f"{what}: only {size} bytes arrived before the deadline", sent=sent, kind="timeout")
    return b"".join(parts)


def decode_reply(status: int, content: bytes, headers: dict[str, str]) -> Reply:
    try:
        body = json.loads(content) if content else None
        text = ""
    except (ValueError, UnicodeDecodeError):
        body, text = None, quote(content[:QUOTE_CHARS].decode("utf-8", "replace"))
    return Reply(status, body, text, {k.lower(): v for k, v in headers.items()})


@runtime_checkable
class Transport(Protocol):
    """One network call each; ``deadline`` is a ``time.monotonic()`` value the call must not outlive."""

    def create(self, model: str, input: dict[str, str], parameters: dict[str, Any], *,  # noqa: A002
               headers: dict[str, str], deadline: float) -> Reply: ...

    def get(self, task_id: str, *, deadline: float) -> Reply: ...

    def list(self, *, model: str, start_time: str | None, end_time: str | None, status: str | None,
             page_no: int, page_size: int, deadline: float) -> Reply: ...

    def cancel(self, task_id: str, *, deadline: float) -> Reply: ...

    def upload(self, path: Path, *, model: str, certificate: dict[str, Any] | None,
               deadline: float) -> tuple[str, dict[str, Any] | None]: ...

    def download(self, url: str, *, connect_to: str | None, max_bytes: int, deadline: float) -> Download: ...


_HTTP_LOCK = threading.Lock()
_HTTP: Any = None


def _http() -> Any:
    """One shared ``httpx.Client`` (building one loads the CA bundle: far too slow to do per call)."""
    global _HTTP
    with _HTTP_LOCK:
        if _HTTP is None:
            import httpx

            _HTTP = httpx.Client(
                follow_redirects=False, trust_env=False, limits=httpx.Limits(max_keepalive_connections=8)
            )
        return _HTTP


def remaining(deadline: float, *, floor: float = 0.05) -> float:
    """Seconds left until ``deadline`` (at least ``floor``, so a call can still fail cleanly)."""
    return max(floor, deadline - time.monotonic())


def bounded(fn: Callable[[], T], deadline: float, *, what: str) -> T:
    """Run ``fn`` on a helper thread and give up at ``deadline`` (the thread is left to its own timeout).

    For SDK calls whose internal timeouts are per socket operation, not per call.

    Raises:
        TransportError: kind ``"timeout"`` (sent unknown) when the deadline passed first.
    """
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name=f"dashscope-{what}", daemon=True).start()
    if not done.wait(max(0.0, deadline - time.monotonic())):
        raise TransportError(f"{what} did not finish before the deadline", sent=None, kind="timeout")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


_SDK_LOCK = threading.Lock()
_SDK_MODULES = ("requests", "dashscope", "dashscope.client.base_api", "dashscope.common.error",
                "dashscope.common.utils", "dashscope.utils.oss_utils")


def import_sdk() -> None:
    """Import the SDK once, under a lock: two threads importing ``dashscope`` for the first time at the
    same moment can hit Python's import deadlock detection (its modules import each other)."""
    import importlib
    import sys

    if all(m in sys.modules for m in _SDK_MODULES):
        return
    with _SDK_LOCK:
        for mod in _SDK_MODULES:
            importlib.import_module(mod)


class _ResendRefused(Exception):
    """Raised by ``_OneShotSession`` instead of sending a request a second time."""


def _one_shot_session() -> Any:
    import requests

    class OneShotSession(requests.Session):
        """A requests session that sends one request, then refuses (stops the SDK's silent POST resend)."""

        sent = 0

        def send(self, request: Any, **kwargs: Any) -> Any:
            self.sent += 1
            if self.sent > 1:
                raise _ResendRefused("the SDK tried to send the submit a second time")
            return super().send(request, **kwargs)

    return OneShotSession()


class SdkTransport:
    """The ``dashscope`` SDK (submit, upload) plus ``httpx`` (task query/list/cancel, downloads).

    Args:
        api_key: the key, as a plain string (held privately, never in a repr).
        base_url: the API base, e.g. ``https://dashscope.aliyuncs.com/api/v1``.
    """

    def __init__(self, api_key: str, base_url: str) -> None:
        self.__key = api_key
        self.base_url = base_url.rstrip("/")

    def __repr__(self) -> str:
        return f"SdkTransport(base_url={self.base_url!r})"

    # --- helpers --------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        import_sdk()
        from dashscope.common.utils import default_headers

        return {**default_headers(self.__key, module="tasks")}

    def _json_call(self, method: str, url: str, *, deadline: float, params: dict[str, Any] | None = None) -> Reply:
        """One JSON request with a total deadline (also against a server that drips its answer)."""
        return bounded(lambda: self._json_call_inner(method, url, deadline=deadline, params=params), deadline,
                       what=f"{method} {url}")

    def _json_call_inner(self, method: str, url: str, *, deadline: float, params: dict[str, Any] | None) -> Reply:
        import httpx

        timeout = remaining(deadline)
        try:
            with _http().stream(method, url, params=params, headers=self._headers(),
                                timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0))) as rsp:
                body = read_capped(rsp.iter_raw(), max_bytes=MAX_ANSWER_BYTES, deadline=deadline,
                                   what=f"{method} {url}: the answer", sent=None)
                return decode_reply(rsp.status_code, body, dict(rsp.headers))
        except httpx.ConnectError as exc:
            raise TransportError(f"cannot connect to {url}: {type(exc).__name__}", sent=False, kind="connect") from None
        except httpx.TimeoutException as exc:
            raise TransportError(f"{method} {url}: {type(exc).__name__}", sent=None, kind="timeout") from None
        except httpx.HTTPError as exc:
            raise TransportError(f"{method} {url}: {type(exc).__name__}", sent=None, kind="dropped") from None

    # --- Transport --------------------------------------------------------------------------------

    def create(self, model: str, input: dict[str, str], parameters: dict[str, Any], *,  # noqa: A002
               headers: dict[str, str], deadline: float) -> Reply:
        import_sdk()
        import requests
        from dashscope.client.base_api import BaseAsyncApi
        from dashscope.common.error import DashScopeException

        session = _one_shot_session()

        def call() -> Any:
            return BaseAsyncApi.async_call(
                model=model, input=dict(input), task_group=P.TASK_GROUP, task=P.TASK, function=P.FUNCTION,
                api_key=self.__key, base_address=self.base_url, headers=dict(headers),
                request_timeout=max(1, int(remaining(deadline) + 0.999)), session=session, **parameters)

        try:
            rsp = bounded(call, deadline, what="submit")
        except _ResendRefused:
            raise TransportError(
                "the connection dropped after the submit was sent", sent=None, kind="dropped"
            ) from None
        except requests.exceptions.ConnectTimeout:
            raise TransportError("connecting timed out", sent=False, kind="connect") from None
        except requests.exceptions.ConnectionError as exc:
            inner = exc.args[0] if exc.args else None
            name = type(getattr(inner, "reason", inner)).__name__
            if name in ("NewConnectionError", "ConnectTimeoutError", "NameResolutionError") and session.sent <= 1:
                raise TransportError(f"cannot connect ({name})", sent=False, kind="connect") from None
            raise TransportError(
                f"the connection failed after the submit was sent ({name})", sent=None, kind="dropped"
            ) from None
        except requests.exceptions.Timeout:
            raise TransportError("no answer to the submit before the deadline", sent=None, kind="timeout") from None
        except requests.RequestException as exc:
            raise TransportError(f"the submit failed ({type(exc).__name__})", sent=None, kind="dropped") from None
        except (DashScopeException, ValueError, KeyError, TypeError) as exc:
            # the SDK could not read the answer (e.g. not JSON): a task may exist
            raise TransportError(
                f"the SDK could not read the submit's answer ({type(exc).__name__})", sent=None, kind="other"
            ) from None
        body: dict[str, Any] = {"request_id": rsp.request_id or None, "output": rsp.output}
        if rsp.status_code != 200:
            body.update(code=rsp.code, message=rsp.message)
        return Reply(int(rsp.status_code), body, "", {k.lower(): str(v) for k, v in dict(rsp.headers or {}).items()})

    def get(self, task_id: str, *, deadline: float) -> Reply:
        return self._json_call("GET", f"{self.base_url}{P.TASKS_PATH}/{task_id}", deadline=deadline)

    def list(self, *, model: str, start_time: str | None, end_time: str | None, status: str | None,
             page_no: int, page_size: int, deadline: float) -> Reply:
        params: dict[str, Any] = {"page_no": page_no, "page_size": page_size, "model_name": model}
        if start_time:
            params["start_time"] = start_time
        if end_time:
            params["end_time"] = end_time
        if status:
            params["status"] = status
        return self._json_call("GET", f"{self.base_url}{P.TASKS_PATH}", deadline=deadline, params=params)

    def cancel(self, task_id: str, *, deadline: float) -> Reply:
        return self._json_call("POST", f"{self.base_url}{P.TASKS_PATH}/{task_id}/cancel", deadline=deadline)

    def upload(self, path: Path, *, model: str, certificate: dict[str, Any] | None,
               deadline: float) -> tuple[str, dict[str, Any] | None]:
        import_sdk()
        import requests
        from dashscope.common.error import DashScopeException
        from dashscope.utils.oss_utils import OssUtils, check_and_upload_local

        if certificate is None:  # fetched here so a refusal keeps the service's code (e.g. InvalidApiKey)
            def policy() -> Any:
                return OssUtils.get_upload_certificate(model=model, api_key=self.__key, base_address=self.base_url)

            try:
                rsp = bounded(policy, deadline, what="upload credential")
            except requests.RequestException as exc:
                raise TransportError(f"cannot reach {self.base_url} for an upload credential ({type(exc).__name__})",
                                     sent=None, kind="connect") from None
            except (DashScopeException, ValueError, KeyError, TypeError) as exc:
                raise TransportError(f"the upload credential answer was not readable ({type(exc).__name__}: "
                                     f"{quote(str(exc))})", sent=True, kind="upload") from None
            if rsp.status_code != 200 or not isinstance(rsp.output, dict):
                raise UploadRefused(Reply(int(rsp.status_code), {"code": rsp.code, "message": rsp.message,
                                                                  "request_id": rsp.request_id, "output": rsp.output}))
            certificate = rsp.output

        def send() -> Any:
            return check_and_upload_local(model=model, content=str(path), api_key=self.__key,
                                          upload_certificate=certificate, base_address=self.base_url)

        try:
            _, url, cert = bounded(send, deadline, what="upload")
        except TransportError:
            raise
        except (DashScopeException, requests.RequestException, KeyError, TypeError, ValueError) as exc:
            raise TransportError(f"{type(exc).__name__}: {quote(str(exc))}", sent=True, kind="upload") from None
        return str(url), cert

    def download(self, url: str, *, connect_to: str | None, max_bytes: int, deadline: float) -> Download:
        # bounded: httpx's timeouts are per read, so a server dripping one byte per read could overrun
        return bounded(lambda: http_download(url, connect_to=connect_to, max_bytes=max_bytes, deadline=deadline),
                       deadline, what="download")


class UploadRefused(Exception):
    """The service answered the upload-credential request with an error (carries its ``Reply``)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.received())
        self.reply = reply


def http_download(url: str, *, connect_to: str | None, max_bytes: int, deadline: float) -> Download:
    """GET ``url`` (connecting to the IP ``connect_to`` when given, TLS still checked against the host name),
    no redirects followed, at most ``max_bytes``, all of it before ``deadline``.

    Raises:
        TransportError: connection failure, timeout / deadline (``"timeout"``), or too large (``"too_large"``).
    """
    import httpx

    parsed = httpx.URL(url)
    host = parsed.host
    target = parsed
    extensions: dict[str, Any] = {}
    headers = {"Host": parsed.netloc.decode("ascii")}
    if connect_to:
        target = parsed.copy_with(host=connect_to)
        if parsed.scheme == "https":
            extensions["sni_hostname"] = host
    timeout = remaining(deadline)
    try:
        http = _http()
        req = http.build_request("GET", target, headers=headers, extensions=extensions,
                                 timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))
        with contextlib.closing(http.send(req, stream=True)) as rsp:
            hdrs = {k.lower(): v for k, v in rsp.headers.items()}
            if rsp.status_code != 200:
                return Download(rsp.status_code, hdrs)
            declared = hdrs.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise TransportError(f"declared {declared} bytes", sent=True, kind="too_large")
            # as received: a drip is checked against the deadline
            body = read_capped(rsp.iter_bytes(), max_bytes=max_bytes, deadline=deadline, what="the result", sent=True)
            return Download(200, hdrs, body)
    except httpx.ConnectError as exc:
        raise TransportError(
            f"cannot connect ({type(exc).__name__}: {quote(str(exc))})", sent=False, kind="connect"
        ) from None
    except httpx.TimeoutException as exc:
        raise TransportError(f"timed out ({type(exc).__name__})", sent=True, kind="timeout") from None
    except httpx.HTTPError as exc:
        raise TransportError(f"{type(exc).__name__}: {quote(str(exc))}", sent=True, kind="dropped") from None
