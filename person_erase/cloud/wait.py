"""``DashScopeClient``'s waiting: poll a task to its end within the deadline, cancel, give up.

A model's in-flight slot (``limits.Limiters``) is held until the task is final, cancelled or expired.
On a timeout or Ctrl-C a PENDING task is cancelled; a RUNNING one keeps its slot and is probed before the
next submit of that model.
"""

from __future__ import annotations

import logging
import time

from ..errors import CloudError, QuotaExhausted
from . import protocol as P
from .core import ClientCore, TaskResult
from .transport import TransportError

logger = logging.getLogger("person_erase.cloud")


class WaitMixin(ClientCore):
    """Cancel, poll and give up (part of ``DashScopeClient``)."""

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
