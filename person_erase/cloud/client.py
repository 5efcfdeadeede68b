"""DashScope task client: submit, wait, adopt, cancel, upload, download — policy over a ``Transport``.

The client holds the rules; the transport (``transport.SdkTransport`` by default, the only place that
imports ``dashscope``) performs single calls. Configuration comes from ``person_erase.settings.Settings``
(``DASHSCOPE_API_KEY``, ``DASHSCOPE_HTTP_BASE_URL``, ``PERSON_ERASE_CLOUD_*``) unless given explicitly.

Rules:

* **Deadlines.** Every call has a total budget (``timeout_s``, finite and > 0); each request gets what is
  left of it, downloads included (a server dripping bytes is cut off at the deadline).
* **Never two tasks for one submit.** Before each submit the caller may journal an ``Intent`` (model,
  time) through ``on_intent``. When a submit ends without a task id (connection dropped after sending,
  timeout, 5xx, an answer without a usable id) the client lists the model's tasks created since the
  intent (the service's batch task query) and adopts the one it finds instead of submitting again; only
  when the list shows none is the submit repeated. The SDK's own silent POST resend is refused by the
  transport. A batch that resumes with an intent and no task id calls ``adopt`` the same way. With one
  task in flight per model the newest task after the intent is ours; if several are found, the newest
  is adopted and the others are named in a warning and left alone (they may be another program's on
  the same account).
* **Quota vs throttling**, by code *and* message (``protocol.is_quota_exhausted``): quota exhausted
  raises ``QuotaExhausted`` at once; throttling is retried with backoff within the deadline.
* **Slots.** A model's in-flight slot (``limits.Limiters``, passed in) is held until the task is final,
  cancelled or expired. On a timeout or Ctrl-C a PENDING task is cancelled; a RUNNING one keeps its slot
  and is probed before the next submit of that model.
* **Untrusted answers.** Task ids must match ``[A-Za-z0-9-]{1,64}``; every string from the service is
  scrubbed of the API key before it is shown or stored; unexpected answers are quoted (shortened) in the
  error ("say what was received").
* **Result downloads.** Only from allowed hosts (``protocol.RESULT_HOSTS``, ``PERSON_ERASE_CLOUD_RESULT_HOSTS``
  and the API's own host), https tried first and http accepted for those hosts only, no redirect to
  another host, never to a private / link-local / reserved address (loopback only when the API itself is
  on loopback, i.e. the bundled server), size-capped.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import random
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse, urlunparse

import numpy as np
from pydantic import SecretStr

from ..errors import CloudError, InputError, QuotaExhausted
from ..settings import DEFAULT_MAX_PIXELS, Settings
from . import protocol as P
from .limits import Limiters
from .transport import Reply, SdkTransport, Transport, TransportError, UploadRefused, bounded, quote

logger = logging.getLogger("person_erase.cloud")

SEGMENT_MODEL = P.SEGMENT_MODEL
ERASE_MODEL = P.ERASE_MODEL
OSS_RESOLVE_HEADER = P.OSS_RESOLVE_HEADER
FINAL_STATES = P.FINAL_STATES
_CST = timezone(timedelta(hours=8))

#: Seconds before an intent from which the task list is searched (clock differences with the service).
ADOPT_MARGIN_S = 30.0
#: Tasks whose creation time (``gmt_create``) is this much before the intent still count as after it.
CLOCK_SKEW_S = 5.0

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


@dataclass
class CallLog:
    """What one engine call did on the service (for reports): task ids, timings and notes."""

    task_ids: dict[str, str] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


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


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    host = host.lower().rstrip(".")
    for pat in patterns:
        pat = pat.lower().strip()
        if pat.startswith("*."):
            if host.endswith(pat[1:]) and host != pat[2:]:
                return True
        elif host == pat:
            return True
    return False


def created_s(task: dict[str, Any]) -> float | None:
    """A listed task's creation time in epoch seconds: ``gmt_create`` is epoch milliseconds (see
    ``protocol.LIST_TASK_FIELDS``); a numeric string is read too; None when absent or unreadable."""
    value = task.get("gmt_create")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value) / 1000.0


def _is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class DashScopeClient:
    """Submit, poll, adopt, cancel, upload and download for DashScope's async image models.

    Args:
        api_key: the key (str or ``SecretStr``); defaults to ``DASHSCOPE_API_KEY`` via ``Settings``.
        base_url: the API base (``DASHSCOPE_HTTP_BASE_URL``); default ``https://dashscope.aliyuncs.com/api/v1``.
        settings: a ``Settings`` to read defaults from (a fresh one from the environment if omitted).
        timeout_s: total seconds of one call (submit, wait, download…); finite, > 0
            (default ``settings.cloud_timeout_s``).
        transport: a ``Transport`` (default ``SdkTransport`` over the real SDK).
        limiters: the ``Limiters`` to share with other clients of the same account (default: own ones).
        poll_interval_s: first pause between status queries; grows ×1.5 up to ``max_poll_interval_s``.
        backoff_s: first pause after a 429 / 5xx / dropped connection; doubles up to ``max_backoff_s``.
        max_throttle_retries: throttling answers tolerated per submit before giving up.
        max_download_bytes: largest result file accepted.
        result_hosts: extra allowed result hosts (added to ``protocol.RESULT_HOSTS``).
        resolve: ``{host: ip}`` pinning result hosts' addresses (like curl ``--resolve``).

    Raises:
        CloudError: no API key is configured (code ``"MissingApiKey"``); nothing is sent.
        InputError: ``timeout_s`` (or ``PERSON_ERASE_CLOUD_TIMEOUT_S``) is not finite and > 0.
    """

    def __init__(
        self,
        *,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        settings: Settings | None = None,
        timeout_s: float | None = None,
        transport: Transport | None = None,
        limiters: Limiters | None = None,
        poll_interval_s: float = 1.0,
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
        self.poll_interval_s = check_timeout(poll_interval_s, name="poll_interval_s")
        self.max_poll_interval_s = check_timeout(max_poll_interval_s, name="max_poll_interval_s")
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

    # --- uploads ----------------------------------------------------------------------------

    def upload(self, source: str | Path, *, model: str, certificate: dict | None = None,
               timeout_s: float | None = None) -> tuple[str, dict | None]:
        """Turn a local file into an ``oss://`` URL for ``model`` (http(s) and oss:// URLs pass through).

        Temporary uploads are bound to one model: upload again for another model.

        Returns:
            (URL to put in the task input, upload certificate to reuse for more files of this model).

        Raises:
            CloudError: the credential was refused (the service's code), the upload failed
                (``"UploadFailed"``), or the deadline passed (``"Timeout"``).
            InputError: the file does not exist.
        """
        text = str(source)
        if text.startswith(("http://", "https://", "oss://")):
            return text, certificate
        path = Path(text).expanduser()
        if not path.is_file():
            raise InputError(f"cannot upload {text!r} to DashScope: no such file")
        deadline = self._deadline(timeout_s)
        try:
            url, cert = self.transport.upload(path, model=model, certificate=certificate, deadline=deadline)
        except UploadRefused as exc:
            raise self._reply_error(f"the upload credential request for {model}", exc.reply) from None
        except TransportError as exc:
            code = (
                "Timeout" if exc.kind == "timeout" else ("ConnectionError" if exc.kind == "connect" else "UploadFailed")
            )
            raise self._error(f"uploading {path.name} for {model} to DashScope temporary storage failed: {exc}",
                              code=code) from None
        logger.debug("uploaded %s for %s", path.name, model)
        return url, cert

    # --- submit / adopt ---------------------------------------------------------------------

    def submit(
        self,
        model: str,
        input: dict[str, str],  # noqa: A002 - the service's field name
        *,
        parameters: dict[str, Any] | None = None,
        timeout_s: float | None = None,
        on_intent: Callable[[Intent], None] | None = None,
        exclude: Iterable[str] = (),
    ) -> str:
        """Create one task and return its id (see the module docstring for the no-double-submit rule).

        Args:
            on_intent: called with the ``Intent`` just before each request is sent (journal it).
            exclude: task ids known to belong to other work (never adopted).

        Raises:
            QuotaExhausted: the model's free quota is used up.
            CloudError: the service refused the task (its code, message, request id), no slot was free
                before the deadline (``"ClientTimeout"``), or the outcome stayed unknown
                (``"SubmitOutcomeUnknown"``).
        """
        deadline = self._deadline(timeout_s)
        limiter = self.limiters.for_model(model)
        oss = any(isinstance(v, str) and v.startswith("oss://") for v in input.values())
        headers = {P.OSS_RESOLVE_HEADER: "enable"} if oss else {}
        throttled = failures = 0
        while True:
            slot = limiter.reserve(deadline, probe=self._ended)
            intent = Intent(model, time.time())
            try:
                if on_intent is not None:
                    on_intent(intent)
                try:
                    reply = self.transport.create(model, dict(input), dict(parameters or {}), headers=headers,
                                                  deadline=deadline)
                except TransportError as exc:
                    if exc.sent is False:
                        raise _Retry(f"cannot reach DashScope at {self.base_url}: {exc}", "ConnectionError") from None
                    raise _Unknown(f"the {model} submit ended without an answer ({exc})") from None
                output = reply.output if isinstance(reply.output, dict) else {}
                if reply.status_code == 200:
                    if "task_id" not in output:
                        raise _Unknown(
                            f"the {model} submit was answered without a task id: received {reply.received()}"
                        )
                    task_id = self.check_task_id(output.get("task_id"))
                    slot.bind(task_id)
                    self._known.add(task_id)
                    logger.info("submitted %s task %s (request %s)", model, task_id, self._opt(reply.request_id))
                    return task_id
                if P.is_quota_exhausted(reply.code, reply.message):
                    limiter.mark_exhausted(self.scrub(reply.message or reply.code))
                    raise self._reply_error(f"{model}", reply)
                if reply.status_code == 429 or P.is_throttled(reply.status_code, reply.code, reply.message):
                    throttled += 1
                    if throttled > self.max_throttle_retries or time.monotonic() >= deadline:
                        raise self._reply_error(f"submitting a {model} task (throttled {throttled} times)", reply)
                    slot.release()
                    logger.info("%s submit throttled (%s); retry %d", model, reply.code, throttled)
                    self._pause(throttled - 1, deadline, self._retry_after(reply))
                    continue
                if reply.status_code >= 500:
                    raise _Unknown(f"the {model} submit was answered {reply.received()}")
                raise self._reply_error(f"the {model} task", reply)
            except _Retry as r:
                slot.release()
                failures += 1
                if failures > 3 or time.monotonic() >= deadline:
                    raise self._error(r.message, code=r.code) from None
                logger.warning("%s; retrying the submit", r.message)
                self._pause(failures, deadline)
                continue
            except _Unknown as u:
                logger.warning("%s; looking for the task in the task list", u.message)
                try:
                    task_id = self._adopt(model, since=intent.time, exclude=exclude, deadline=deadline)  # type: ignore[assignment]
                except CloudError as exc:
                    slot.release()
                    raise self._error(f"{u.message}; a task may have been created, and listing the tasks to find "
                                      f"it failed too ({exc}) — it is not resubmitted automatically",
                                      code="SubmitOutcomeUnknown") from None
                if task_id is not None:
                    slot.bind(task_id)
                    return task_id
                slot.release()
                failures += 1
                if failures > 3 or time.monotonic() >= deadline:
                    raise self._error(f"{u.message}; no task was created (the task list shows none) and the "
                                      "deadline or retry limit is reached", code="SubmitFailed") from None
                self._pause(failures, deadline)
                continue
            except BaseException:
                slot.release()
                raise

    def list_tasks(self, model: str, *, since: float, deadline: float | None = None,
                   status: str | None = None, max_pages: int = 5) -> list[dict[str, Any]]:
        """The model's tasks created since ``since`` (epoch seconds), from the service's batch task query.

        Each item has at least ``task_id`` (validated) and ``task_status`` (the list's ``status``); the raw
        fields (``protocol.LIST_TASK_FIELDS``) are kept. A 400 answer to the time window is retried once
        without it (its format is not settled, see ``protocol``); ``_adopt`` filters by ``gmt_create``.

        Raises:
            CloudError: the query failed or its answer is not a task list (saying what was received).
        """
        deadline = deadline if deadline is not None else self._deadline(None)
        start: str | None = datetime.fromtimestamp(since, _CST).strftime(P.LIST_TIME_FORMAT)
        found: list[dict[str, Any]] = []
        page = 1
        while page <= max_pages:
            try:
                reply = self.transport.list(model=model, start_time=start, end_time=None, status=status, page_no=page,
                                            page_size=P.LIST_PAGE_SIZE, deadline=deadline)
            except TransportError as exc:
                raise self._error(f"the task list query failed ({exc})", code="ListFailed") from None
            if reply.status_code == 400 and start is not None and page == 1:
                logger.warning("the task list refused the time window (%s); listing without it",
                               self.scrub(reply.received()))
                start = None
                continue
            if reply.status_code != 200:
                raise self._reply_error("the task list query", reply)
            data = reply.json_object.get("data")
            if not isinstance(data, list):
                raise self._error(f"the task list answer has no list of tasks: received {reply.received()}",
                                  code="BadResponse")
            for item in data:
                if not isinstance(item, dict) or not P.valid_task_id(item.get("task_id")):
                    continue
                if item.get("model_name") not in (None, model):
                    continue
                item = {**item, "task_status": item.get("task_status", item.get("status"))}
                found.append(item)
            total = reply.json_object.get("total")
            if (
                not data
                or len(data) < P.LIST_PAGE_SIZE
                or (isinstance(total, int) and page * P.LIST_PAGE_SIZE >= total)
            ):
                break
            page += 1
        return found

    def adopt(
        self, model: str, *, since: float, exclude: Iterable[str] = (), timeout_s: float | None = None
    ) -> str | None:
        """The task of ``model`` created at or after ``since`` (minus a margin) that is not in ``exclude``.

        For a resumed batch with a journaled intent and no task id: returns the task to poll instead of
        submitting again (it then holds the model's in-flight slot), or None when the service shows none.
        The model's slot is reserved while the list is read, so no submit of this process's other threads
        can be mistaken for it. Several candidates: the newest is taken (one task in flight per model),
        the others are named in a warning.

        Raises:
            CloudError: the task list could not be read, or no slot became free before the deadline.
        """
        deadline = self._deadline(timeout_s)
        slot = self.limiters.for_model(model).reserve(deadline, probe=self._ended)
        try:
            task = self._adopt(model, since=since, exclude=exclude, deadline=deadline)
        except BaseException:
            slot.release()
            raise
        if task is None:
            slot.release()
        else:
            slot.bind(task)
        return task

    def _adopt(
        self, model: str, *, since: float, exclude: Iterable[str] = (), deadline: float | None = None
    ) -> str | None:
        skip = set(exclude) | self._known

        def recent(t: dict[str, Any]) -> bool:  # created after the intent (small clock skew allowed)
            created = created_s(t)
            return created is None or created >= since - CLOCK_SKEW_S

        tasks = [t for t in self.list_tasks(model, since=since - ADOPT_MARGIN_S, deadline=deadline)
                 if t["task_id"] not in skip and recent(t)]
        if not tasks:
            return None
        # newest first: the slot is held, so nothing of ours was submitted after it; older candidates are
        # earlier work (e.g. the previous image's task, within the clock-skew margin)
        tasks.sort(key=lambda t: created_s(t) or 0.0, reverse=True)
        chosen = str(tasks[0]["task_id"])
        if len(tasks) > 1:
            logger.warning("%d %s tasks appeared around the submit; adopted the newest (%s), left alone: %s",
                           len(tasks), model, chosen, ", ".join(str(t["task_id"]) for t in tasks[1:]))
        self._known.add(chosen)
        logger.info("adopted %s task %s from the task list", model, chosen)
        return chosen

    # --- query / cancel / wait ----------------------------------------------------------------

    def fetch(self, task_id: str, *, deadline: float | None = None) -> Reply:
        """One status query (no retries)."""
        task_id = self.check_task_id(task_id)
        return self.transport.get(task_id, deadline=deadline if deadline is not None else self._deadline(None))

    def cancel(self, task_id: str, *, timeout_s: float = 5.0) -> bool:
        """Cancel a PENDING task; True when the service confirmed it (never raises)."""
        try:
            reply = self.transport.cancel(self.check_task_id(task_id), deadline=time.monotonic() + timeout_s)
        except (TransportError, CloudError) as exc:
            logger.warning("cancelling task %s failed: %s", task_id, self.scrub(exc))
            return False
        ok = reply.status_code == 200
        logger.info("cancel of task %s: %s", task_id, "done" if ok else self.scrub(reply.received()))
        if ok:
            self.limiters.release(task_id)
        return ok

    def _ended(self, task_id: str) -> bool:
        """Probe for the limiter: True when ``task_id`` is known to have ended (or is unknown)."""
        reply = self.fetch(task_id, deadline=time.monotonic() + 5.0)
        out = reply.output if reply.status_code == 200 and isinstance(reply.output, dict) else None
        return out is not None and out.get("task_status") in P.FINAL_STATES

    def _status(self, task_id: str, deadline: float) -> str | None:
        try:
            reply = self.fetch(task_id, deadline=deadline)
        except (TransportError, CloudError):
            return None
        out = reply.output if reply.status_code == 200 and isinstance(reply.output, dict) else {}
        s = out.get("task_status")
        return s if isinstance(s, str) else None

    def _give_up(self, task_id: str, *, reachable: bool = True) -> str:
        """Stop waiting for ``task_id``: cancel it if PENDING, else leave it holding its slot. Returns what was done.

        The budget is spent, so this is kept short (and skipped when the service did not answer at all).
        """
        status = self._status(task_id, time.monotonic() + 0.5) if reachable else None
        if status == P.PENDING and self.cancel(task_id, timeout_s=0.5):
            return "it was still PENDING and has been cancelled"
        if status in P.FINAL_STATES:
            self.limiters.release(task_id)
            return f"it is {status}"
        for model in P.MODELS:
            self.limiters.for_model(model).abandon(task_id)
        return "it may still finish; its model's one slot stays taken until it ends"

    def wait(self, task_id: str, *, model: str | None = None, timeout_s: float | None = None) -> TaskResult:
        """Poll ``task_id`` until it reaches a final state, with growing pauses and a deadline.

        Works for any task id, including one stored by an earlier process. The model's in-flight slot is
        freed when the task ends; on a timeout or Ctrl-C a PENDING task is cancelled.

        Raises:
            QuotaExhausted: the task failed because the free quota is used up.
            CloudError: FAILED / CANCELED / UNKNOWN task (the service's code and message, with the task id),
                an answer that is not a task status (saying what was received), a non-retryable query error,
                or code ``"Timeout"`` when the deadline passed.
        """
        task_id = self.check_task_id(task_id)
        deadline = self._deadline(timeout_s)
        total = deadline - time.monotonic()
        if model:
            self.limiters.for_model(model).track(task_id)
        interval = self.poll_interval_s
        errors = bad = 0
        last = "no answer yet"
        answered = False  # did the service answer at all (else cancelling is pointless)
        finished = False
        try:
            while True:
                try:
                    reply = self.fetch(task_id, deadline=deadline)
                except TransportError as exc:
                    errors += 1
                    last = f"no answer ({exc})"
                    logger.warning("query of task %s failed (%s); retrying", task_id, exc)
                    if time.monotonic() >= deadline:
                        break
                    self._pause(min(errors - 1, 5), deadline)
                    continue
                answered = True
                if reply.status_code == 200:
                    out = reply.output
                    status = out.get("task_status") if isinstance(out, dict) else None
                    if not isinstance(out, dict) or status not in P.ALL_STATES:
                        bad += 1
                        last = f"an answer that is not a task status: {self.scrub(reply.received())}"
                        if bad >= 3 or time.monotonic() >= deadline:
                            finished = True
                            raise self._error(f"querying task {task_id} gave {last}", code="BadResponse",
                                              task_id=task_id, request_id=reply.request_id)
                        self._pause(bad - 1, deadline)
                        continue
                    errors = bad = 0
                    last = str(status)
                    rid = self._opt(reply.request_id)
                    if status == P.SUCCEEDED:
                        finished = True
                        logger.info("task %s succeeded", task_id)
                        usage = reply.json_object.get("usage")
                        return TaskResult(task_id, model, dict(out), rid, usage if isinstance(usage, dict) else None)
                    if status == P.UNKNOWN:
                        finished = True
                        raise self._error(
                            f"DashScope does not know task {task_id}: it ended more than 24 h ago (tasks are purged) "
                            "or belongs to another key or workspace",
                            code=out.get("code") or "UnknownTask", task_id=task_id, request_id=rid)
                    if status in (P.FAILED, P.CANCELED):
                        finished = True
                        code, message = out.get("code"), out.get("message")
                        cls = QuotaExhausted if P.is_quota_exhausted(code, message) else CloudError
                        raise self._error(
                            f"{model or 'DashScope'} task {status.lower()}: {message or 'no message'}", cls=cls,
                            code=code or f"Task{status.title()}", task_id=task_id, request_id=rid)
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
                    interval = min(self.max_poll_interval_s, interval * 1.5)
                    continue
                if P.is_quota_exhausted(reply.code, reply.message):
                    finished = True
                    raise self._reply_error(f"querying task {task_id}", reply, task_id=task_id)
                if reply.status_code in (408, 429) or reply.status_code >= 500:
                    errors += 1
                    last = self.scrub(reply.received())
                    logger.info("query of task %s answered %s; retrying", task_id, last)
                    if time.monotonic() >= deadline:
                        break
                    self._pause(min(errors - 1, 5), deadline, self._retry_after(reply))
                    continue
                finished = True
                raise self._reply_error(f"querying task {task_id}", reply, task_id=task_id)
            done = self._give_up(task_id, reachable=answered)
            finished = True  # _give_up took care of the slot
            raise self._error(
                f"task {task_id} did not finish within {total:.3g} s (last answer: {last}); {done} — raise the "
                "cloud timeout (PERSON_ERASE_CLOUD_TIMEOUT_S) or resume later with the same task id",
                code="Timeout", task_id=task_id)
        except KeyboardInterrupt:
            if not finished:
                finished = True
                self._give_up(task_id)
            raise
        finally:
            for m in P.MODELS:
                lim = self.limiters.for_model(m)
                if finished:
                    lim.finish(task_id)
                else:  # an unexpected error: the task may still run
                    lim.abandon(task_id)

    def run(self, model: str, input: dict[str, str], *, parameters: dict[str, Any] | None = None,  # noqa: A002
            timeout_s: float | None = None) -> TaskResult:
        """``submit`` then ``wait`` within one overall budget."""
        deadline = self._deadline(timeout_s)
        task_id = self.submit(model, input, parameters=parameters, timeout_s=max(0.05, deadline - time.monotonic()))
        return self.wait(task_id, model=model, timeout_s=max(0.05, deadline - time.monotonic()))

    # --- downloads --------------------------------------------------------------------------

    def _addresses(self, host: str, deadline: float) -> list[str]:
        pinned = self.resolve.get(host.lower())
        if pinned:
            return [pinned]
        try:
            ipaddress.ip_address(host.strip("[]"))
            return [host.strip("[]")]
        except ValueError:
            pass
        infos = bounded(lambda: socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP), deadline, what="dns")
        return list(dict.fromkeys(str(i[4][0]) for i in infos))

    def _check_url(self, url: str, task_id: str | None, deadline: float) -> tuple[Any, str]:
        """(parsed URL, the address to connect to) for an allowed result URL, else ``BadResultUrl``."""
        parsed = urlparse(url)
        host = (parsed.hostname or "").lower()

        def refuse(why: str) -> CloudError:
            return self._error(f"refusing to download the result of task {task_id} from {quote(url, 100)}: {why}",
                               code="BadResultUrl", task_id=task_id)

        if parsed.scheme not in ("http", "https") or not host:
            raise refuse("only http(s) URLs of DashScope's result hosts are accepted")
        if not (host == self._api_host or host_allowed(host, self.result_hosts)):
            raise refuse(f"{host} is not one of DashScope's result hosts (add it to PERSON_ERASE_CLOUD_RESULT_HOSTS "
                         "if you trust it)")
        try:
            addrs = self._addresses(host, deadline)
        except (OSError, TransportError) as exc:
            raise self._error(f"cannot resolve {host} to download the result of task {task_id} ({exc})",
                              code="DownloadFailed", task_id=task_id) from None
        api_loopback = _is_loopback_host(self._api_host) or (
            self._api_host in self.resolve and ipaddress.ip_address(self.resolve[self._api_host]).is_loopback)
        for a in addrs:
            ip = ipaddress.ip_address(a)
            if ip.is_loopback:
                if api_loopback:
                    return parsed, a
                continue
            if ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_multicast or ip.is_unspecified:
                continue
            return parsed, a
        raise refuse(f"{host} resolves to {', '.join(addrs)}: private, link-local and (unless the API itself is "
                     "on this machine) loopback addresses are never contacted")

    def download(self, url: str, *, task_id: str | None = None, timeout_s: float | None = None) -> bytes:
        """Fetch a result URL under the rules in the module docstring, within one total deadline.

        Raises:
            CloudError: refused URL or redirect (``"BadResultUrl"``), expired result (``"ResultExpired"``),
                too large (``"ResultTooLarge"``), timeout (``"Timeout"``), or repeated failures (``"DownloadFailed"``).
        """
        deadline = self._deadline(timeout_s)
        last = ""
        for attempt in range(4):
            for _hop in range(4):
                parsed, addr = self._check_url(url, task_id, deadline)
                schemes = ["https", "http"] if parsed.scheme == "http" else ["https"]
                got = None
                for scheme in schemes:
                    try:
                        got = self.transport.download(urlunparse(parsed._replace(scheme=scheme)), connect_to=addr,
                                                      max_bytes=self.max_download_bytes, deadline=deadline)
                        break
                    except TransportError as exc:
                        if exc.kind == "too_large":
                            raise self._error(
                                f"the result of task {task_id} is larger than {self.max_download_bytes} "
                                f"bytes ({exc}); refusing it",
                                code="ResultTooLarge",
                                task_id=task_id,
                            ) from None
                        if exc.kind == "timeout" or time.monotonic() >= deadline:
                            raise self._error(f"downloading the result of task {task_id} did not finish within the "
                                              f"deadline ({exc})", code="Timeout", task_id=task_id) from None
                        last = f"{scheme}: {exc}"
                        if scheme == "https" and len(schemes) > 1 and exc.kind in ("connect", "dropped", "other"):
                            continue  # http is allowed for these hosts: the service's own URLs are often http
                        got = None
                        break
                if got is None:
                    break
                if got.status_code in (301, 302, 303, 307, 308):
                    target = urljoin(url, got.headers.get("location", ""))
                    if (urlparse(target).hostname or "").lower() != (parsed.hostname or "").lower():
                        raise self._error(f"the result of task {task_id} redirects to another host "
                                          f"({quote(urlparse(target).hostname, 80)}); refusing it",
                                          code="BadResultUrl", task_id=task_id)
                    url = target
                    continue
                if got.status_code == 200:
                    return got.content
                if got.status_code in (403, 404, 410):
                    raise self._error(f"the result of task {task_id} is no longer available (HTTP {got.status_code}); "
                                      "DashScope keeps results for 24 h — submit the photo again",
                                      code="ResultExpired", task_id=task_id, status_code=got.status_code)
                if got.status_code < 500:
                    raise self._error(f"downloading the result of task {task_id} failed with HTTP {got.status_code}",
                                      code="DownloadFailed", task_id=task_id, status_code=got.status_code)
                last = f"HTTP {got.status_code}"
                break
            else:
                raise self._error(
                    f"the result of task {task_id} redirects too often", code="BadResultUrl", task_id=task_id
                )
            logger.warning("download of task %s result failed (%s); retrying", task_id, last)
            if time.monotonic() >= deadline:
                break
            self._pause(attempt, deadline)
        raise self._error(f"downloading the result of task {task_id} failed ({last})", code="DownloadFailed",
                          task_id=task_id)

    def download_image(self, url: str, *, task_id: str | None = None, rgb: bool = False,
                       timeout_s: float | None = None) -> np.ndarray:
        """Download and decode a result image, raw values kept (mode L → (H, W), RGB → (H, W, 3), …).

        Raises:
            CloudError: as ``download``, or code ``"BadResult"`` when the bytes are not an image.
            InputError: the image has too many pixels (a decompression bomb), with ``load_image``'s message.
        """
        data = self.download(url, task_id=task_id, timeout_s=timeout_s)
        return decode_image_bytes(data, task_id=task_id, max_pixels=self.max_pixels, rgb=rgb)


class _Retry(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message, self.code = message, code


class _Unknown(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def decode_image_bytes(
    data: bytes, *, task_id: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS, rgb: bool = False
) -> np.ndarray:
    """Decode image bytes into a numpy array.

    With ``rgb=True`` the result is (H, W, 3) uint8 RGB; otherwise the file's raw values are kept
    (palette images give their indices, 16-bit greys stay uint16).

    Raises:
        InputError: more than ``max_pixels`` pixels or a decompression bomb (``load_image``'s message).
        CloudError: not a readable image (code ``"BadResult"``).
    """
    import io
    import warnings

    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    from ..io import _too_big

    label = f"the result of task {task_id}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data)) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise InputError(_too_big(label, w, h, max_pixels))
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
    except PILImage.DecompressionBombError as exc:
        raise InputError(
            f"{label}: {exc.args[0] if exc.args else 'too many pixels'}; downscale it first "
            "(or raise PIL.Image.MAX_IMAGE_PIXELS and PERSON_ERASE_MAX_PIXELS / max_pixels if you trust the file)"
        ) from None
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise CloudError(
            f"{label} is not a readable image ({type(exc).__name__}: {quote(str(exc), 100)}; received "
            f"{len(data)} bytes starting {quote(data[:16].hex(), 40)})",
            code="BadResult", task_id=task_id,
        ) from None
