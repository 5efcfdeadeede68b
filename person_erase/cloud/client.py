"""DashScope task client over the official ``dashscope`` SDK.

Submit and query go through the SDK's generic async-task API
(``dashscope.client.base_api.BaseAsyncApi``: ``async_call`` with ``task_group="aigc"``,
``task="image2image"``, ``function="image-synthesis"``, then ``fetch`` by task id in our own bounded
poll loop). Local files go through the SDK's temporary-upload flow
(``dashscope.utils.oss_utils.check_and_upload_local`` → ``oss://`` URLs, sent with the header
``X-DashScope-OssResourceResolve: enable``); ``http(s)`` URLs pass through untouched.

Configuration comes from ``person_erase.settings.Settings`` (``DASHSCOPE_API_KEY``,
``DASHSCOPE_HTTP_BASE_URL``) unless given explicitly. The SDK reads the environment once, at import; we
pass the key and the base URL on every call instead (``api_key=``, ``base_address=``), so a client built
later — e.g. in a test pointing at a fresh port — always uses its own values.

Safety rules:

* A missing key raises ``CloudError`` before any network call.
* The key is held as a ``SecretStr`` and never appears in a log line, an exception or a repr.
* Only what is provably safe is retried: 429 throttling and connection failures that happened before the
  request was sent. Once a task id may exist the same work is never submitted again — callers poll it.
  ``submit`` returns the task id, so a caller can store it (journal) before ``wait``-ing, and ``wait`` can
  resume any task id later.
* Query errors 408/429/5xx and dropped connections are retried with backoff until the timeout.
* Result downloads: https only (plus plain http to a loopback host, for the bundled test server),
  size-capped, streamed to a temporary file and verified as an image.
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from pydantic import SecretStr

from ..errors import CloudError, InputError
from ..settings import Settings
from .limits import _LIMITERS, limiter_for

logger = logging.getLogger("person_erase.cloud")

SEGMENT_MODEL = "image-instance-segmentation"
ERASE_MODEL = "image-erase-completion"
TASK_GROUP, TASK, FUNCTION = "aigc", "image2image", "image-synthesis"
OSS_RESOLVE_HEADER = "X-DashScope-OssResourceResolve"
FINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN")
RETRYABLE_QUERY_STATUS = (408, 429, 500, 502, 503, 504)
LOOPBACK_HOSTS = ("localhost", "::1")

MISSING_KEY_HELP = (
    "no DashScope API key: set DASHSCOPE_API_KEY=sk-... (a Model Studio key of the China (Beijing) region) "
    "or pass api_key=...; to try the cloud path offline run `person-erase serve-dashscope --port 8765` and set "
    "DASHSCOPE_API_KEY=sk-test DASHSCOPE_HTTP_BASE_URL=http://127.0.0.1:8765/api/v1"
)


@dataclass(frozen=True)
class TaskResult:
    """A finished (SUCCEEDED) DashScope task.

    Attributes:
        task_id: the service's task id.
        model: the model name, when known.
        output: the task's ``output`` object (``output_image_url``, ``output_vis_image_url``, …).
        request_id: request id of the final query.
        usage: the ``usage`` object (``image_count``), when returned.
    """

    task_id: str
    model: str | None
    output: dict[str, Any]
    request_id: str | None = None
    usage: dict[str, Any] | None = None

    def url(self, name: str = "output_image_url") -> str:
        """A result URL from the output.

        Raises:
            CloudError: the field is missing or empty.
        """
        value = self.output.get(name)
        if not isinstance(value, str) or not value:
            raise CloudError(
                f"task succeeded but its output has no {name!r}; got fields {sorted(self.output)}",
                code="BadResponse",
                task_id=self.task_id,
                request_id=self.request_id,
            )
        return value


@dataclass
class CallLog:
    """What one engine call did on the service (for reports): task ids, timings and notes."""

    task_ids: dict[str, str] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


def _sdk() -> Any:
    """The SDK's async task API (imported late: ``import dashscope`` takes about a second)."""
    from dashscope.client.base_api import BaseAsyncApi

    return BaseAsyncApi


def _proves_not_sent(exc: BaseException) -> bool:
    """True when a requests exception shows the request never reached the server."""
    import requests

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        inner = getattr(reason, "reason", reason)
        name = type(inner).__name__
        return name in ("NewConnectionError", "ConnectTimeoutError", "NameResolutionError")
    return False


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    parts = host.split(".")
    return len(parts) == 4 and parts[0] == "127" and all(p.isdigit() for p in parts)


class DashScopeClient:
    """Submit, poll, upload and download for DashScope's async image models.

    Args:
        api_key: the key (str or ``SecretStr``); defaults to ``DASHSCOPE_API_KEY`` via ``Settings``.
        base_url: the API base, e.g. ``https://dashscope.aliyuncs.com/api/v1``; defaults to
            ``DASHSCOPE_HTTP_BASE_URL`` via ``Settings``.
        settings: a ``Settings`` to read defaults from (a fresh one from the environment if omitted).
        timeout_s: seconds one task may take from submit to final state (default ``settings.cloud_timeout_s``).
        poll_interval_s: first pause between status queries; grows ×1.5 up to ``max_poll_interval_s``.
        backoff_s: first pause after a 429 / 5xx / dropped connection; doubles up to ``max_backoff_s``.
        max_throttle_retries: 429 answers tolerated per submit before giving up.
        max_download_bytes: largest result file accepted.
        request_timeout_s: HTTP timeout of one submit request.

    Raises:
        CloudError: no API key is configured (code ``"MissingApiKey"``); nothing is sent.
    """

    def __init__(
        self,
        *,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        settings: Settings | None = None,
        timeout_s: float | None = None,
        poll_interval_s: float = 1.0,
        max_poll_interval_s: float = 5.0,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        max_throttle_retries: int = 8,
        max_download_bytes: int = 64 * 1024 * 1024,
        request_timeout_s: float = 120.0,
    ) -> None:
        if settings is None and (api_key is None or base_url is None or timeout_s is None):
            settings = Settings()
        key = api_key if api_key is not None else settings.dashscope_api_key  # type: ignore[union-attr]
        if isinstance(key, str):
            key = SecretStr(key)
        if key is None or not key.get_secret_value().strip():
            raise CloudError(MISSING_KEY_HELP, code="MissingApiKey")
        self._key: SecretStr = key
        self.base_url = (base_url or settings.dashscope_base_url).rstrip("/")  # type: ignore[union-attr]
        self.timeout_s = float(timeout_s if timeout_s is not None else settings.cloud_timeout_s)  # type: ignore[union-attr]
        self.max_pixels = settings.max_pixels if settings is not None else 100_000_000
        self.poll_interval_s = poll_interval_s
        self.max_poll_interval_s = max_poll_interval_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_throttle_retries = max_throttle_retries
        self.max_download_bytes = max_download_bytes
        self.request_timeout_s = request_timeout_s

    def __repr__(self) -> str:
        return f"DashScopeClient(base_url={self.base_url!r}, api_key='set', timeout_s={self.timeout_s})"

    # --- helpers ----------------------------------------------------------------------------

    def _scrub(self, text: Any) -> str:
        text = str(text)
        secret = self._key.get_secret_value()
        return text.replace(secret, "***") if secret else text

    def _error(self, message: Any, **kw: Any) -> CloudError:
        return CloudError(self._scrub(message), **kw)

    def _pause(self, attempt: int, deadline: float, retry_after: float | None = None) -> None:
        delay = retry_after if retry_after is not None else min(self.max_backoff_s, self.backoff_s * 2**attempt)
        delay *= 1.0 + 0.25 * random.random()
        time.sleep(max(0.0, min(delay, deadline - time.monotonic())))

    @staticmethod
    def _retry_after(rsp: Any) -> float | None:
        headers = getattr(rsp, "headers", None) or {}
        for name, value in dict(headers).items():
            if name.lower() == "retry-after":
                try:
                    return min(8.0, float(value))
                except ValueError:
                    return None
        return None

    # --- uploads ----------------------------------------------------------------------------

    def upload(self, source: str | Path, *, model: str, certificate: dict | None = None) -> tuple[str, dict | None]:
        """Turn a local file into an ``oss://`` URL for ``model`` (http(s) and oss:// URLs pass through).

        Temporary uploads are bound to one model: upload again for another model.

        Returns:
            (URL to put in the task input, upload certificate to reuse for more files of this model).

        Raises:
            CloudError: the upload failed (code ``"UploadFailed"``) or the file does not exist.
        """
        text = str(source)
        if text.startswith(("http://", "https://", "oss://")):
            return text, certificate
        if not Path(text).expanduser().is_file():
            raise InputError(f"cannot upload {text!r} to DashScope: no such file")
        import requests
        from dashscope.common.error import DashScopeException
        from dashscope.utils.oss_utils import OssUtils, check_and_upload_local

        if certificate is None:  # fetched here so a refusal keeps the service's code (e.g. InvalidApiKey)
            try:
                rsp = OssUtils.get_upload_certificate(
                    model=model, api_key=self._key.get_secret_value(), base_address=self.base_url
                )
            except requests.RequestException as exc:
                raise self._error(
                    f"cannot reach DashScope at {self.base_url} for an upload credential: {type(exc).__name__}",
                    code="ConnectionError",
                ) from None
            if rsp.status_code != 200 or not isinstance(rsp.output, dict):
                raise self._error(
                    f"DashScope refused an upload credential for {model}: {rsp.message or 'no message'}",
                    code=rsp.code or f"HTTP{rsp.status_code}",
                    request_id=rsp.request_id or None,
                    status_code=int(rsp.status_code),
                )
            certificate = rsp.output
        try:
            _, url, cert = check_and_upload_local(
                model=model,
                content=text,
                api_key=self._key.get_secret_value(),
                upload_certificate=certificate,
                base_address=self.base_url,
            )
        except (DashScopeException, requests.RequestException, KeyError, TypeError) as exc:
            raise self._error(
                f"uploading {Path(text).name} for {model} to DashScope temporary storage failed: {exc}",
                code="UploadFailed",
            ) from None
        logger.debug("uploaded %s for %s", Path(text).name, model)
        return url, cert

    # --- submit / wait ----------------------------------------------------------------------

    def submit(
        self,
        model: str,
        input: dict[str, str],  # noqa: A002 - the service's field name
        *,
        parameters: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> str:
        """Create one task and return its id (store it before polling, to resume later).

        Waits for the process-wide per-model limiter (2 submits/s, 1 task in flight) first. Retries
        429 throttling with backoff, and connection failures that prove nothing was sent; never
        resubmits once the service may have created a task.

        Raises:
            CloudError: the service refused the task (its ``code``, ``message``, ``request_id``), the
                outcome of a sent request is unknown (code ``"SubmitOutcomeUnknown"``), or no slot was
                free before the timeout.
        """
        import requests
        from dashscope.common.error import DashScopeException

        api = _sdk()
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.timeout_s)
        limiter = limiter_for(model)
        oss = any(isinstance(v, str) and v.startswith("oss://") for v in input.values())
        throttled = connect_failures = 0
        while True:
            slot = limiter.reserve(deadline)
            headers = {OSS_RESOLVE_HEADER: "enable"} if oss else {}
            try:
                rsp = api.async_call(
                    model=model,
                    input=dict(input),
                    task_group=TASK_GROUP,
                    task=TASK,
                    function=FUNCTION,
                    api_key=self._key.get_secret_value(),
                    base_address=self.base_url,
                    headers=headers,
                    request_timeout=self.request_timeout_s,
                    **(parameters or {}),
                )
            except requests.RequestException as exc:
                slot.release()
                if _proves_not_sent(exc) and connect_failures < 3 and time.monotonic() < deadline:
                    connect_failures += 1
                    logger.warning("cannot reach %s (%s); retrying the submit", self.base_url, type(exc).__name__)
                    self._pause(connect_failures, deadline)
                    continue
                if _proves_not_sent(exc):
                    raise self._error(f"cannot reach DashScope at {self.base_url}: {exc}", code="ConnectionError") from None
                raise self._error(
                    f"the {model} submit failed after it was sent ({type(exc).__name__}); a task may have been "
                    "created, so it is not resubmitted automatically — check the service before retrying",
                    code="SubmitOutcomeUnknown",
                ) from None
            except DashScopeException as exc:
                slot.release()
                raise self._error(f"the dashscope SDK refused the {model} request: {exc}", code="SdkError") from None
            output = rsp.output or {}
            task_id = output.get("task_id") if isinstance(output, dict) else None
            if rsp.status_code == 200 and task_id:
                slot.bind(task_id)
                logger.info("submitted %s task %s (request %s)", model, task_id, rsp.request_id)
                return str(task_id)
            slot.release()
            if rsp.status_code == 429 and throttled < self.max_throttle_retries and time.monotonic() < deadline:
                throttled += 1
                logger.info("%s submit throttled (%s); retry %d", model, rsp.code, throttled)
                self._pause(throttled - 1, deadline, self._retry_after(rsp))
                continue
            hint = ""
            if rsp.status_code >= 500:
                hint = " (a server error on submit is not retried: a task may have been created)"
            elif rsp.status_code == 200:
                hint = " (the answer carried no task id)"
            raise self._error(
                f"DashScope refused the {model} task: {rsp.message or 'no message'}{hint}",
                code=rsp.code or ("BadResponse" if rsp.status_code == 200 else f"HTTP{rsp.status_code}"),
                request_id=rsp.request_id or None,
                status_code=int(rsp.status_code),
            )

    def fetch(self, task_id: str) -> Any:
        """One status query (the SDK's ``DashScopeAPIResponse``); no retries."""
        return _sdk().fetch(task_id, api_key=self._key.get_secret_value(), base_address=self.base_url)

    def wait(self, task_id: str, *, model: str | None = None, timeout_s: float | None = None) -> TaskResult:
        """Poll ``task_id`` until it reaches a final state, with growing pauses and a deadline.

        Works for any task id, including one stored by an earlier process. Frees the model's
        in-flight slot when it returns or raises.

        Raises:
            CloudError: FAILED / CANCELED / UNKNOWN task (the service's code and message, with the
                task id), a non-retryable query error, or code ``"Timeout"`` when the deadline passed
                (the task may still finish: call ``wait`` again with the same id).
        """
        import requests

        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.timeout_s)
        if model:
            limiter_for(model).track(task_id)
        interval = self.poll_interval_s
        errors = 0
        last = "PENDING"
        try:
            while True:
                try:
                    rsp = self.fetch(task_id)
                except requests.RequestException as exc:
                    errors += 1
                    logger.warning("query of task %s failed (%s); retrying", task_id, type(exc).__name__)
                    if time.monotonic() >= deadline:
                        break
                    self._pause(min(errors - 1, 5), deadline)
                    continue
                if rsp.status_code == 200:
                    errors = 0
                    out = rsp.output if isinstance(rsp.output, dict) else {}
                    last = str(out.get("task_status", "UNKNOWN"))
                    if last == "SUCCEEDED":
                        logger.info("task %s succeeded", task_id)
                        return TaskResult(task_id, model, dict(out), rsp.request_id or None, rsp.usage or None)
                    if last == "UNKNOWN":
                        raise self._error(
                            f"DashScope does not know task {task_id}: it ended more than 24 h ago (tasks are purged) "
                            "or belongs to another key or workspace",
                            code=out.get("code") or "UnknownTask",
                            task_id=task_id,
                            request_id=rsp.request_id or None,
                        )
                    if last in ("FAILED", "CANCELED"):
                        raise self._error(
                            f"{model or 'DashScope'} task {last.lower()}: {out.get('message') or 'no message'}",
                            code=out.get("code") or f"Task{last.title()}",
                            task_id=task_id,
                            request_id=rsp.request_id or None,
                        )
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
                    interval = min(self.max_poll_interval_s, interval * 1.5)
                    continue
                if rsp.status_code in RETRYABLE_QUERY_STATUS:
                    errors += 1
                    logger.info("query of task %s answered %s %s; retrying", task_id, rsp.status_code, rsp.code)
                    if time.monotonic() >= deadline:
                        break
                    self._pause(min(errors - 1, 5), deadline, self._retry_after(rsp))
                    continue
                raise self._error(
                    f"querying task {task_id} failed: {rsp.message or 'no message'}",
                    code=rsp.code or f"HTTP{rsp.status_code}",
                    task_id=task_id,
                    request_id=rsp.request_id or None,
                    status_code=int(rsp.status_code),
                )
            total = timeout_s if timeout_s is not None else self.timeout_s
            raise self._error(
                f"task {task_id} was still {last} after {total:g} s; it may finish later — call wait() with the "
                "same task id to resume, or raise the timeout (PERSON_ERASE_CLOUD_TIMEOUT_S)",
                code="Timeout",
                task_id=task_id,
            )
        finally:
            for lim in list(_LIMITERS.values()):
                lim.release(task_id)

    def run(
        self,
        model: str,
        input: dict[str, str],  # noqa: A002
        *,
        parameters: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> TaskResult:
        """``submit`` then ``wait`` within one overall timeout."""
        total = timeout_s if timeout_s is not None else self.timeout_s
        start = time.monotonic()
        task_id = self.submit(model, input, parameters=parameters, timeout_s=total)
        remaining = max(1.0, total - (time.monotonic() - start))
        return self.wait(task_id, model=model, timeout_s=remaining)

    # --- downloads --------------------------------------------------------------------------

    def download(self, url: str, *, task_id: str | None = None, attempts: int = 4) -> bytes:
        """Fetch a result URL: https only (http only to loopback), size-capped, streamed to a temp file.

        Retries dropped connections and 5xx a few times (a GET is safe to repeat).

        Raises:
            CloudError: refused URL (code ``"BadResultUrl"``), expired result (``"ResultExpired"``,
                naming the task id), too large (``"ResultTooLarge"``), or repeated failures (``"DownloadFailed"``).
        """
        import httpx

        parsed = urlparse(url)
        host = (parsed.hostname or "").lower()
        if not (parsed.scheme == "https" or (parsed.scheme == "http" and _is_loopback(host))):
            raise self._error(
                f"refusing to download the result of task {task_id} from {parsed.scheme}://{host}: only https URLs "
                "(or http on loopback, for the bundled test server) are accepted",
                code="BadResultUrl",
                task_id=task_id,
            )
        deadline = time.monotonic() + self.timeout_s
        last_error = ""
        for attempt in range(attempts):
            try:
                with tempfile.TemporaryFile() as tmp, httpx.stream(
                    "GET", url, timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=False
                ) as rsp:
                    if rsp.status_code in (403, 404, 410):
                        raise self._error(
                            f"the result of task {task_id} is no longer available (HTTP {rsp.status_code}); "
                            "DashScope keeps results for 24 h — submit the photo again",
                            code="ResultExpired",
                            task_id=task_id,
                            status_code=rsp.status_code,
                        )
                    if rsp.status_code >= 500:
                        raise httpx.TransportError(f"HTTP {rsp.status_code}")
                    if rsp.status_code != 200:
                        raise self._error(
                            f"downloading the result of task {task_id} failed with HTTP {rsp.status_code}",
                            code="DownloadFailed",
                            task_id=task_id,
                            status_code=rsp.status_code,
                        )
                    declared = int(rsp.headers.get("content-length") or 0)
                    if declared > self.max_download_bytes:
                        raise self._too_large(task_id, declared)
                    size = 0
                    for chunk in rsp.iter_bytes(1 << 16):
                        size += len(chunk)
                        if size > self.max_download_bytes:
                            raise self._too_large(task_id, size)
                        tmp.write(chunk)
                    tmp.seek(0)
                    return tmp.read()
            except httpx.HTTPError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("download of task %s result failed (%s); retrying", task_id, last_error)
                if time.monotonic() >= deadline:
                    break
                self._pause(attempt, deadline)
        raise self._error(
            f"downloading the result of task {task_id} failed {attempts} times ({last_error})",
            code="DownloadFailed",
            task_id=task_id,
        )

    def _too_large(self, task_id: str | None, size: int) -> CloudError:
        return self._error(
            f"the result of task {task_id} is larger than {self.max_download_bytes} bytes ({size}); refusing it",
            code="ResultTooLarge",
            task_id=task_id,
        )

    def download_image(self, url: str, *, task_id: str | None = None, rgb: bool = False) -> np.ndarray:
        """Download and decode a result image, raw values kept (mode L → (H, W), RGB → (H, W, 3), …).

        Raises:
            CloudError: as ``download``, or code ``"BadResult"`` when the bytes are not an image.
        """
        data = self.download(url, task_id=task_id)
        return decode_image_bytes(data, task_id=task_id, max_pixels=self.max_pixels, rgb=rgb)


def decode_image_bytes(
    data: bytes, *, task_id: str | None = None, max_pixels: int = 100_000_000, rgb: bool = False
) -> np.ndarray:
    """Decode image bytes into a numpy array.

    With ``rgb=True`` the result is (H, W, 3) uint8 RGB; otherwise the file's raw values are kept
    (palette images give their indices, 16-bit greys stay uint16).

    Raises:
        CloudError: not a readable image, or more than ``max_pixels`` pixels (code ``"BadResult"``).
    """
    import io

    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with PILImage.open(io.BytesIO(data)) as probe:
            probe.verify()
        with PILImage.open(io.BytesIO(data)) as img:
            w, h = img.size
            if w * h > max_pixels:
                raise CloudError(
                    f"the result of task {task_id} is {w}x{h} px, above the {max_pixels} pixel limit",
                    code="BadResult",
                    task_id=task_id,
                )
            img.load()
            if rgb:
                return np.asarray(img.convert("RGB")).copy()
            if img.mode in ("I;16", "I;16B", "I;16L"):
                return np.asarray(img, dtype=np.uint16).copy()
            if img.mode == "I":
                return np.asarray(img, dtype=np.int32).copy()
            if img.mode not in ("L", "P", "RGB", "RGBA", "LA", "1"):
                return np.asarray(img.convert("RGB")).copy()
            return np.asarray(img).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CloudError(
            f"the result of task {task_id} is not a readable image ({type(exc).__name__}: {exc})",
            code="BadResult",
            task_id=task_id,
        ) from None


