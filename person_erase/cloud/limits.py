"""Client-side limits DashScope sets per model: at most 2 task submits per second and 1 task in flight.

One ``ModelLimiter`` per model name lives for the whole process (``limiter_for(model)``), so every
client, engine and thread of the batch pipeline shares it. It is thread-safe.

* ``reserve(deadline)`` blocks until a submit may be sent (the per-model interval has passed and an
  in-flight slot is free), then hands out a ``Slot``. ``Slot.bind(task_id)`` ties the slot to the task
  the service created; ``Slot.release()`` frees it when no task was created.
* ``release(task_id)`` frees the slot once the task reached a final state (or the caller gave up on it).
* Slots expire after ``lease_s`` seconds so that a task a caller submitted and then forgot (never waited
  for) cannot block the model for ever; the service's own 429 ``Throttling.AllocationQuota`` then still
  protects the quota, and the client retries it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from ..errors import CloudError

#: DashScope's documented limits for both image models.
SUBMITS_PER_SECOND = 2.0
MAX_IN_FLIGHT = 1


@dataclass
class Slot:
    """One in-flight reservation of a ``ModelLimiter``."""

    limiter: ModelLimiter
    key: object = field(default_factory=object)

    def bind(self, task_id: str) -> None:
        """The service created ``task_id`` for this reservation; keep the slot until it finishes."""
        self.limiter._rekey(self.key, task_id)
        self.key = task_id

    def release(self) -> None:
        """Free the slot (no task was created, or the task finished)."""
        self.limiter._drop(self.key)


class ModelLimiter:
    """Submit pacing and in-flight accounting for one model (thread-safe)."""

    def __init__(
        self,
        model: str,
        *,
        submits_per_second: float = SUBMITS_PER_SECOND,
        max_in_flight: int = MAX_IN_FLIGHT,
        lease_s: float = 600.0,
    ) -> None:
        self.model = model
        self.min_interval_s = 1.0 / submits_per_second
        self.max_in_flight = max_in_flight
        self.lease_s = lease_s
        self._cond = threading.Condition()
        self._last_submit = -1e18
        self._held: dict[object, float] = {}  # key (task id or placeholder) -> expiry (monotonic)

    # --- internals (under the lock) ---------------------------------------------------------

    def _purge(self, now: float) -> None:
        for key in [k for k, exp in self._held.items() if exp <= now]:
            del self._held[key]

    def _rekey(self, old: object, new: str) -> None:
        with self._cond:
            exp = self._held.pop(old, time.monotonic() + self.lease_s)
            self._held[new] = exp
            self._cond.notify_all()

    def _drop(self, key: object) -> None:
        with self._cond:
            if self._held.pop(key, None) is not None:
                self._cond.notify_all()

    # --- public -----------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Slots currently held (expired leases not counted)."""
        with self._cond:
            self._purge(time.monotonic())
            return len(self._held)

    def reserve(self, deadline: float, *, task_hint: str | None = None) -> Slot:
        """Wait (until ``deadline``, a ``time.monotonic()`` value) for permission to submit one task.

        Raises:
            CloudError: code ``"ClientTimeout"`` when no slot became free before the deadline.
        """
        with self._cond:
            while True:
                now = time.monotonic()
                self._purge(now)
                wait_rate = self._last_submit + self.min_interval_s - now
                if len(self._held) < self.max_in_flight and wait_rate <= 0:
                    slot = Slot(self)
                    self._held[slot.key] = now + self.lease_s
                    self._last_submit = now
                    return slot
                if now >= deadline:
                    if len(self._held) >= self.max_in_flight:
                        why = (
                            f"DashScope allows {self.max_in_flight} task in flight per model and another "
                            f"{self.model} task is still running — wait for it or raise the timeout"
                        )
                    else:
                        why = (
                            f"DashScope allows {1 / self.min_interval_s:g} submits per second and the timeout "
                            "ended before the next one was allowed — raise the timeout"
                        )
                    raise CloudError(f"gave up waiting to submit a {self.model} task: {why}", code="ClientTimeout")
                pause = wait_rate if len(self._held) < self.max_in_flight else 0.25
                self._cond.wait(timeout=max(0.001, min(pause, deadline - now)))

    def track(self, task_id: str) -> None:
        """Count an existing task (e.g. one resumed from a journal) as in flight until ``release``."""
        with self._cond:
            self._held.setdefault(task_id, time.monotonic() + self.lease_s)

    def release(self, task_id: str) -> None:
        """The task finished (or was given up); free its slot. Unknown ids are ignored."""
        self._drop(task_id)

    def reset(self) -> None:
        """Forget every slot and the last submit time (for a new server, e.g. between tests)."""
        with self._cond:
            self._held.clear()
            self._last_submit = -1e18
            self._cond.notify_all()


_LIMITERS: dict[str, ModelLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def limiter_for(model: str) -> ModelLimiter:
    """The process-wide limiter of ``model`` (created on first use)."""
    with _LIMITERS_LOCK:
        lim = _LIMITERS.get(model)
        if lim is None:
            lim = _LIMITERS[model] = ModelLimiter(model)
        return lim


def reset_limiters() -> None:
    """``reset`` every process-wide limiter (their state belongs to a service that is gone)."""
    with _LIMITERS_LOCK:
        limiters = list(_LIMITERS.values())
    for lim in limiters:
        lim.reset()
