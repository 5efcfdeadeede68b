"""Client-side limits DashScope sets per model: at most 2 task submits per second and 1 task in flight.

These are objects, passed in: a ``Limiters`` holds one ``ModelLimiter`` per model, and everything that
must share the service's limits (the segmenter and eraser of one run, every stage thread of a batch)
is handed the same ``Limiters``. A client built without one gets its own. Thread-safe.

* ``reserve(deadline)`` blocks until a submit may be sent (the interval has passed and an in-flight slot
  is free), then hands out a ``Slot``. ``Slot.bind(task_id)`` ties the slot to the task the service
  created; ``Slot.release()`` frees it when no task was created.
* ``release(task_id)`` frees the slot once the task is final, cancelled or expired — not when a caller
  merely stopped waiting: a task that may still run keeps its slot (``abandon``). While a submit waits
  behind an abandoned task, the limiter asks ``probe(task_id)`` (the client queries the service) at
  most every ``probe_every_s`` whether it has ended, and frees the slot when it has.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import CloudError, QuotaExhausted
from . import protocol as P


@dataclass
class Slot:
    """One in-flight reservation of a ``ModelLimiter``."""

    limiter: ModelLimiter
    key: object = field(default_factory=object)

    def bind(self, task_id: str) -> None:
        """The service created ``task_id`` for this reservation; keep the slot until it ends."""
        self.limiter._rekey(self.key, task_id)
        self.key = task_id

    def release(self) -> None:
        """Free the slot (no task was created, or the task ended)."""
        self.limiter._drop(self.key)


class ModelLimiter:
    """Submit pacing and in-flight accounting for one model (thread-safe)."""

    def __init__(
        self,
        model: str,
        *,
        submits_per_second: float = P.SUBMITS_PER_SECOND,
        max_in_flight: int = P.MAX_IN_FLIGHT,
        probe_every_s: float = 1.0,
    ) -> None:
        if not (submits_per_second > 0 and max_in_flight >= 1):
            raise ValueError("submits_per_second must be > 0 and max_in_flight >= 1")
        self.model = model
        self.min_interval_s = 1.0 / submits_per_second
        self.max_in_flight = max_in_flight
        self.probe_every_s = probe_every_s
        self._cond = threading.Condition()
        self._last_submit = -1e18
        self._held: dict[object, bool] = {}  # key (task id or placeholder) -> abandoned
        self._last_probe = -1e18
        #: set (to the service's message) once the model's free quota is known to be used up: every later
        #: ``reserve`` raises ``QuotaExhausted`` at once, so no thread of the run sends another submit
        self.exhausted: str | None = None

    def __repr__(self) -> str:
        return f"ModelLimiter({self.model!r}, in_flight={len(self._held)})"

    # --- internals (under the lock) ---------------------------------------------------------

    def _rekey(self, old: object, new: str) -> None:
        with self._cond:
            self._held.pop(old, None)
            self._held[new] = False
            self._cond.notify_all()

    def _drop(self, key: object) -> None:
        with self._cond:
            if self._held.pop(key, None) is not None:
                self._cond.notify_all()

    # --- public -----------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        with self._cond:
            return len(self._held)

    def held(self) -> list[str]:
        """Task ids holding slots."""
        with self._cond:
            return [k for k in self._held if isinstance(k, str)]

    def reserve(self, deadline: float, *, probe: Callable[[str], bool] | None = None) -> Slot:
        """Wait (until ``deadline``, a ``time.monotonic()`` value) for permission to submit one task.

        ``probe(task_id) -> True when the task has ended`` is asked about abandoned tasks that hold slots.

        Raises:
            CloudError: code ``"ClientTimeout"`` when no slot became free before the deadline.
        """
        with self._cond:
            while True:
                if self.exhausted is not None:
                    raise QuotaExhausted(f"the free quota of {self.model} is used up ({self.exhausted}); nothing more "
                                         "is submitted to it", code="QuotaExhausted")
                now = time.monotonic()
                wait_rate = self._last_submit + self.min_interval_s - now
                if len(self._held) < self.max_in_flight and wait_rate <= 0:
                    slot = Slot(self)
                    self._held[slot.key] = False
                    self._last_submit = now
                    return slot
                abandoned = [k for k, a in self._held.items() if a and isinstance(k, str)]
                if abandoned and probe is not None and now - self._last_probe >= self.probe_every_s:
                    self._last_probe = now
                    self._cond.release()
                    try:
                        ended = [k for k in abandoned if _safe_probe(probe, k)]
                    finally:
                        self._cond.acquire()
                    for k in ended:
                        self._held.pop(k, None)
                    if ended:
                        continue
                if now >= deadline:
                    if len(self._held) >= self.max_in_flight:
                        ids = ", ".join(self.held()) or "a submit in progress"
                        why = (f"DashScope allows {self.max_in_flight} task in flight per model and another "
                               f"{self.model} task ({ids}) has not ended — wait for it or raise the timeout")
                    else:
                        why = (f"DashScope allows {1 / self.min_interval_s:g} submits per second and the deadline "
                               "came before the next one was allowed — raise the timeout")
                    raise CloudError(f"gave up waiting to submit a {self.model} task: {why}", code="ClientTimeout")
                pause = wait_rate if len(self._held) < self.max_in_flight else 0.25
                if abandoned and probe is not None:
                    pause = min(pause, self.probe_every_s)
                self._cond.wait(timeout=max(0.001, min(pause, deadline - now)))

    def mark_exhausted(self, message: str) -> None:
        """Refuse every later submit of this model (its quota is used up); ``clear_exhausted`` undoes it."""
        with self._cond:
            self.exhausted = message or "quota exhausted"
            self._cond.notify_all()

    def clear_exhausted(self) -> None:
        """Quota is available again (e.g. another key): allow submits."""
        with self._cond:
            self.exhausted = None

    def track(self, task_id: str) -> None:
        """Count an existing task (e.g. one resumed from a journal) as in flight until ``release``."""
        with self._cond:
            self._held.setdefault(task_id, False)

    def abandon(self, task_id: str) -> None:
        """The caller stopped waiting for ``task_id`` but it may still run: keep its slot, probe it later."""
        with self._cond:
            if task_id in self._held:
                self._held[task_id] = True
                self._cond.notify_all()

    def finish(self, task_id: str) -> None:
        """A wait for ``task_id`` ended with a final state: free its slot unless it was abandoned meanwhile."""
        with self._cond:
            if self._held.get(task_id) is False:
                del self._held[task_id]
                self._cond.notify_all()

    def release(self, task_id: str) -> None:
        """The task ended (final, cancelled, expired); free its slot. Unknown ids are ignored."""
        self._drop(task_id)


def _safe_probe(probe: Callable[[str], bool], task_id: str) -> bool:
    try:
        return bool(probe(task_id))
    except Exception:  # noqa: BLE001 - a failed probe just means "not known to have ended"
        return False


class Limiters:
    """One ``ModelLimiter`` per model name, created on first use; share one instance to share limits."""

    def __init__(self, **options: float) -> None:
        self._options = options
        self._lock = threading.Lock()
        self._by_model: dict[str, ModelLimiter] = {}

    def __repr__(self) -> str:
        return f"Limiters({sorted(self._by_model)})"

    def for_model(self, model: str) -> ModelLimiter:
        with self._lock:
            lim = self._by_model.get(model)
            if lim is None:
                lim = self._by_model[model] = ModelLimiter(model, **self._options)  # type: ignore[arg-type]
            return lim

    def release(self, task_id: str) -> None:
        """Free ``task_id``'s slot whichever model holds it."""
        with self._lock:
            lims = list(self._by_model.values())
        for lim in lims:
            lim.release(task_id)
