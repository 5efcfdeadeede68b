"""The configuration and shared helpers of ``DashScopeClient``, and the types its calls return.

``ClientCore`` reads the settings (key, base URL, deadline, result hosts, pinned addresses), builds the
default transport, and holds what every call needs: scrubbing the key from anything shown, errors that
say what was received, deadlines and backoff pauses, task-id checks and one status query. The calls
themselves are grouped by concern in ``tasks`` (upload, submit, adopt), ``wait`` (poll, cancel, give
up) and ``download`` (result URLs); ``client.DashScopeClient`` puts them together.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from pydantic import SecretStr

from ..errors import CloudError, InputError, QuotaExhausted
from ..settings import Settings
from . import protocol as P
from .limits import Limiters
from .transport import Reply, SdkTransport, Transport, quote

logger = logging.getLogger("person_erase.cloud")

SEGMENT_MODEL = P.SEGMENT_MODEL
ERASE_MODEL = P.ERASE_MODEL
OSS_RESOLVE_HEADER = P.OSS_RESOLVE_HEADER
FINAL_STATES = P.FINAL_STATES

MISSING_KEY_HELP = (
    "no DashScope API key: set DASHSCOPE_API_KEY=sk-... (a Model Studio key of the China (Beijing) region) "
    "or pass api_key=...; to try the cloud path offline run `person-erase serve-dashscope --port 8765` and set "
    "DASHSCOPE_API_KEY=sk-test DASHSCOPE_HTTP_BASE_URL=http://127.0.0.1:8765/api/v1"
)



@dataclass(frozen=True)
class Intent:
    """A submit about to be sent: journal it, so a resumed run can adopt the task instead of resubmitting.

    Attributes:
        model: the model name.
        time: wall-clock time (epoch seconds) just before the request was sent.
    """

    model: str
    time: float


@dataclass(frozen=True)
class TaskResult:
    """A finished (SUCCEEDED) DashScope task.

    Attributes:
        task_id: the service's task id.
        model: the model name, when known.
        output: the task's ``output`` object (``output_image_url``, ``output_vis_image_url``, …).
        request_id: request id of the final query (scrubbed).
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
            CloudError: the field is missing or not a string.
        """
        value = self.output.get(name)
        if not isinstance(value, str) or not value:
            raise CloudError(
                f"task succeeded but its output has no usable {name!r}; received {quote(self.output)}",
                code="BadResponse", task_id=self.task_id, request_id=self.request_id,
            )
        return value


def check_timeout(value: Any, *, name: str = "timeout_s") -> float:
    """A finite number of seconds > 0.

    Raises:
        InputError: anything else (``nan``, ``inf``, 0, negative, not a number).
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise InputError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return v


def _parse_resolve(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        host, sep, ip = part.partition("=")
        try:
            ipaddress.ip_address(ip.strip())
        except ValueError:
            raise InputError(f"cloud_resolve: {part!r} is not host=ip (PERSON_ERASE_CLOUD_RESOLVE)") from None
        if not sep or not host.strip():
            raise InputError(f"cloud_resolve: {part!r} is not host=ip (PERSON_ERASE_CLOUD_RESOLVE)")
        out[host.strip().lower()] = ip.strip()
    return out




class ClientCore:
    """Configuration and helpers shared by the parts of ``DashScopeClient`` (see there for the arguments)."""

    def __init__(
        self,
        *,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        settings: Settings | None = None,
        timeout_s: float | None = None,
        transport: Transport | None = None,
        limiters: Limiters | None = None,
        poll_interval_s: float | None = None,
        max_poll_interval_s: float = 5.0,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        max_throttle_retries: int = 8,
        max_download_bytes: int = 64 * 1024 * 1024,
        result_hosts: Iterable[str] = (),
        resolve: dict[str, str] | None = None,
    ) -> None:
        if settings is None:
            from ..settings import get_settings

            settings = get_settings()
        key = api_key if api_key is not None else settings.dashscope_api_key
        if isinstance(key, str):
            key = SecretStr(key)
        if key is None or not key.get_secret_value().strip():
            raise CloudError(MISSING_KEY_HELP, code="MissingApiKey")
        self._key: SecretStr = key
        self.base_url = (base_url or settings.dashscope_base_url).rstrip("/")
        self.timeout_s = check_timeout(timeout_s if timeout_s is not None else settings.cloud_timeout_s)
        self.max_pixels = settings.max_pixels
        self.poll_interval_s = check_timeout(
            poll_interval_s if poll_interval_s is not None else settings.cloud_poll_s, name="poll_interval_s"
        )
        self.max_poll_interval_s = max(self.poll_interval_s,
                                       check_timeout(max_poll_interval_s, name="max_poll_interval_s"))
        self.backoff_s = check_timeout(backoff_s, name="backoff_s")
        self.max_backoff_s = check_timeout(max_backoff_s, name="max_backoff_s")
        self.max_throttle_retries = int(max_throttle_retries)
        self.max_download_bytes = int(max_download_bytes)
        extra = [h.strip() for h in settings.cloud_result_hosts.split(",") if h.strip()]
        self.result_hosts = (*P.RESULT_HOSTS, *extra, *result_hosts)
        self.resolve = {**_parse_resolve(settings.cloud_resolve), **{k.lower(): v for k, v in (resolve or {}).items()}}
        self.transport: Transport = transport or SdkTransport(key.get_secret_value(), self.base_url)
        self.limiters = limiters if limiters is not None else Limiters()
        self._api_host = (urlparse(self.base_url).hostname or "").lower()
        self._api_plain_http = urlparse(self.base_url).scheme == "http"
        self._known: set[str] = set()  # task ids this client submitted or adopted

    def __repr__(self) -> str:
        return f"DashScopeClient(base_url={self.base_url!r}, api_key='set', timeout_s={self.timeout_s})"


    # --- helpers ----------------------------------------------------------------------------

    def scrub(self, text: Any) -> str:
        """``text`` as a string with the API key replaced by ``***`` (for anything shown or stored)."""
        text = str(text)
        secret = self._key.get_secret_value()
        return text.replace(secret, "***") if secret else text

    def _opt(self, value: Any) -> str | None:
        return None if value is None else self.scrub(value)[:200]

    def _error(self, message: Any, *, cls: type[CloudError] = CloudError, code: Any = None,
               request_id: Any = None, task_id: str | None = None, status_code: int | None = None) -> CloudError:
        return cls(self.scrub(message), code=self._opt(code), request_id=self._opt(request_id), task_id=task_id,
                   status_code=status_code)

    def _deadline(self, timeout_s: float | None) -> float:
        return time.monotonic() + (check_timeout(timeout_s) if timeout_s is not None else self.timeout_s)

    def _pause(self, attempt: int, deadline: float, retry_after: float | None = None) -> None:
        delay = retry_after if retry_after is not None else min(self.max_backoff_s, self.backoff_s * 2**attempt)
        delay *= 1.0 + 0.25 * random.random()
        time.sleep(max(0.0, min(delay, deadline - time.monotonic())))

    @staticmethod
    def _retry_after(reply: Reply) -> float | None:
        value = reply.headers.get("retry-after")
        try:
            v = float(value) if value is not None else None
        except ValueError:
            return None
        return min(8.0, v) if v is not None and math.isfinite(v) and v >= 0 else None

    def check_task_id(self, value: Any, *, what: str = "task id") -> str:
        """``value`` if it is a valid task id, else a ``CloudError`` saying what was received."""
        if P.valid_task_id(value):
            return str(value)
        raise self._error(f"the service sent an unusable {what}: {quote(value, 60)} (expected up to 64 letters, "
                          "digits and dashes)", code="BadResponse")

    def _reply_error(self, what: str, reply: Reply, *, task_id: str | None = None) -> CloudError:
        cls = QuotaExhausted if P.is_quota_exhausted(reply.code, reply.message) else CloudError
        if cls is QuotaExhausted:
            msg = (f"the free quota of {what} is used up ({reply.message}); nothing more can be submitted to this "
                   "model with this key")
        elif reply.code or reply.message:
            msg = f"{what} failed: {reply.message or 'no message'}"
        else:
            msg = f"{what} failed: received {reply.received()}"
        return self._error(msg, cls=cls, code=reply.code or f"HTTP{reply.status_code}", request_id=reply.request_id,
                           task_id=task_id, status_code=reply.status_code)


    def fetch(self, task_id: str, *, deadline: float | None = None) -> Reply:
        """One status query (no retries)."""
        task_id = self.check_task_id(task_id)
        return self.transport.get(task_id, deadline=deadline if deadline is not None else self._deadline(None))


    def _ended(self, task_id: str) -> bool:
        """Probe for the limiter: True when ``task_id`` is known to have ended (or is unknown)."""
        reply = self.fetch(task_id, deadline=time.monotonic() + 5.0)
        out = reply.output if reply.status_code == 200 and isinstance(reply.output, dict) else None
        return out is not None and out.get("task_status") in P.FINAL_STATES



class _Retry(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message, self.code = message, code


class _Unknown(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
