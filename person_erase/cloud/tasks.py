"""``DashScopeClient``'s uploads, submits and adoption: never two tasks for one submit.

Before each submit the caller may journal an ``Intent`` (model, time) through ``on_intent``. When a
submit ends without a task id (connection dropped after sending, timeout, 5xx, an answer without a usable
id) the model's tasks created since the intent are listed (the service's batch task query, answer fields
in ``protocol.LIST_TASK_FIELDS``) and the one found is adopted instead of submitting again; only when
the list shows none is the submit repeated. See ``client`` for the whole set of rules.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import CloudError, InputError
from . import protocol as P
from .core import ClientCore, Intent, _Retry, _Unknown
from .transport import TransportError, UploadRefused

logger = logging.getLogger("person_erase.cloud")

#: Task ids never to adopt: a collection, or a callable returning one (evaluated with the slot held).
Exclude = Iterable[str] | Callable[[], Iterable[str]]

#: Seconds before an intent from which the task list is searched (clock differences with the service).
ADOPT_MARGIN_S = 30.0
#: Tasks whose creation time (``gmt_create``) is this much before the intent still count as after it.
CLOCK_SKEW_S = 5.0


def created_s(task: dict[str, Any]) -> float | None:
    """A listed task's creation time in epoch seconds: ``gmt_create`` is epoch milliseconds (see
    ``protocol.LIST_TASK_FIELDS``); a numeric string is read too; None when absent or unreadable."""
    value = task.get("gmt_create")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value) / 1000.0




class SubmitMixin(ClientCore):
    """Upload, submit, list and adopt (part of ``DashScopeClient``)."""

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
        exclude: Exclude = (),
    ) -> str:
        """Create one task and return its id (see the module docstring for the no-double-submit rule).

        Args:
            on_intent: called with the ``Intent`` just before each request is sent (journal it).
            exclude: task ids known to belong to other work (never adopted), or a callable returning them:
                it is called only once the model's slot is held, so ids journaled meanwhile count too.

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
        start: str | None = datetime.fromtimestamp(since, P.CST).strftime(P.LIST_TIME_FORMAT)
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
        self, model: str, *, since: float, exclude: Exclude = (), timeout_s: float | None = None
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
        self, model: str, *, since: float, exclude: Exclude = (), deadline: float | None = None
    ) -> str | None:
        # read now, with the slot held: a snapshot taken before waiting for the slot misses the task another
        # image of this run created (and journaled) meanwhile, which then looked like ours
        skip = set(exclude() if callable(exclude) else exclude) | self._known

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
