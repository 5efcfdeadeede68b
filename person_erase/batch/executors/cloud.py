"""The cloud executor: the DashScope engines in stage threads of the driver's process, pipelined.

A segment stage and an erase stage overlap across images (the next photo's upload happens while the
current task runs); one ``cloud.limits.Limiters`` per run, handed to every engine's client, keeps each
model at 1 task in flight and 2 submits/s, so throughput is bounded by the slower stage, not by the sum.

Cloud calls are two-phase and journaled so that no photo is ever submitted twice for one stage:

* just before each submit request the intent (model, time) is committed (stage ``submitting``);
* the task id is committed (``submitted``) before the task is polled;
* a run resumed after a kill polls a journaled task id; with an intent but no id (killed between the
  service accepting and the journal saving) it adopts the task from the service's task list
  (``DashScopeClient.adopt``, never a task id the journal knows for another image) and submits only when
  the list shows none.

How the engines reach the service is the run's ``CloudSetup`` (``run_batch(cloud=...)``): a transport
every client talks through (default: the SDK over HTTP) and the limiters they share (default: the
service's limits). It is where, not what: it is not part of any image's journal key.

When the free quota of a model runs out (``QuotaExhausted``) the run stops submitting at once (both
models' limiters refuse further submits, queued images are not started), finishes what is in flight,
and the driver records the rest as "not started: quota exhausted".
"""

from __future__ import annotations

import importlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ...cloud import protocol as P
from ...cloud.limits import Limiters
from ...cloud.transport import Transport
from ...engineinfo import Erased
from ...engines import EngineSpec, EngineWrapper
from ...erasers import TwoPhaseEraser
from ...errors import CloudError, QuotaExhausted
from ...instances import Instances
from ...segmenters import TwoPhaseSegmenter
from ..job import Job, JobResult
from ..journal import Journal
from ..layout import remove_item_temps
from ..work import forget_network_engines, load_and_segment, process_item, reason
from . import ExecutorOptions, take_jobs

if TYPE_CHECKING:
    from ..driver import Driver
    from ..sources import ItemSpec

logger = logging.getLogger("person_erase.batch")

Pre = tuple[Any, Instances, bool, float]


#: Status-query interval of cloud tasks in a batch once a task is due (seconds).
CLOUD_POLL_S = 0.025


@dataclass(frozen=True)
class CloudSetup:
    """How the cloud engines of one batch run reach DashScope (``run_batch(cloud=CloudSetup(...))``).

    Attributes:
        transport: the ``cloud.Transport`` every client of the run talks through; None: each client's
            own ``SdkTransport`` (the real SDK over HTTP, to ``DASHSCOPE_HTTP_BASE_URL``). Tests pass
            ``fakecloud.inprocess.InProcessTransport`` (no sockets).
        limiters: the per-model ``cloud.Limiters`` every engine and stage thread shares; None: a fresh
            ``Limiters()`` per run (the service's 2 submits/s and 1 task in flight per model).
    """

    transport: Transport | None = None
    limiters: Limiters | None = None


class CloudHooks:
    """Two-phase cloud calls (``submit`` → journal the task id → ``collect``), resumable by task id."""

    RESUBMIT_CODES = ("UnknownTask", "ResultExpired")

    def __init__(self, journal: Journal, setup: CloudSetup | None = None) -> None:
        self.journal = journal
        self.setup = setup or CloudSetup()
        self._local = threading.local()
        self._expected: dict[str, float] = {}
        #: one set of per-model limits for every engine (and stage thread) of this run
        self.limiters = self.setup.limiters if self.setup.limiters is not None else Limiters()

    def configure(self, engine: Any) -> None:
        """Hand a two-phase cloud engine's client this run's transport and limiters, and poll finely: the
        batch sleeps until shortly before a task is due (see ``_run``), then polls every ``CLOUD_POLL_S``."""
        if not isinstance(engine, (TwoPhaseSegmenter, TwoPhaseEraser)):
            return  # a local engine (or a plugin's one-call cloud engine): nothing of the run to hand it
        client = engine.client
        client.limiters = self.limiters
        if self.setup.transport is not None:
            client.transport = self.setup.transport
        client.poll_interval_s = min(client.poll_interval_s, CLOUD_POLL_S)
        client.max_poll_interval_s = min(client.max_poll_interval_s, 2 * CLOUD_POLL_S)

    def _run(
        self, item_id: str, stage: str, engine: TwoPhaseSegmenter | TwoPhaseEraser, submit: Callable[..., str],
        collect: Callable[[str], Any],
    ) -> Any:
        client = engine.client
        st = self.journal.stage(item_id, stage)
        task = st[1] if st else None
        detail = (st[2] if st else None) or {}
        if not task and st and st[0] == "submitting" and "intent" in detail and client is not None:
            # killed between the submit and journaling its id: adopt the task from the service's list
            task = client.adopt(engine.model, since=float(detail["intent"]), exclude=self.journal.all_task_ids)
            if task:
                logger.info("%s %s: adopted task %s submitted by an earlier run", item_id, stage, task)
                self.journal.set_stage(item_id, stage, "submitted", task_id=task)
        if task:
            try:
                out = collect(task)
            except CloudError as exc:
                if exc.code not in self.RESUBMIT_CODES:
                    raise
                self.journal.clear_task(item_id, stage)
            else:
                self.journal.set_stage(item_id, stage, "done")
                return out
        self.journal.set_stage(item_id, stage, "submitting")

        def on_intent(intent: Any) -> None:  # committed before the request is sent
            self.journal.set_stage(item_id, stage, "submitting", detail={"intent": intent.time, "model": intent.model})

        task = submit(on_intent, self.journal.all_task_ids)  # read by the client once it holds the slot
        t_submit = time.monotonic()
        self.journal.set_stage(item_id, stage, "submitted", task_id=task)  # committed before any polling
        # Poll finely, but only from shortly before the task is expected to end (learnt from earlier
        # tasks): a result is picked up within ~0.1 s without querying the service many times a second.
        expected = self._expected.get(stage)
        if expected:
            time.sleep(max(0.0, t_submit + 0.9 * expected - time.monotonic()))
        t_poll = time.monotonic()
        out = collect(task)
        # how long the task itself took: until the poll that saw it finished (not the download after it)
        wait_ms = out.info.timings_ms.get("wait")  # Instances and Erased both carry what the task did
        took = (t_poll - t_submit) + (wait_ms / 1e3 if wait_ms is not None else time.monotonic() - t_poll)
        logger.debug("%s task %s: slept %.3f s, finished %.3f s after submit, collected %.3f s after submit",
                     stage, task, t_poll - t_submit, took, time.monotonic() - t_submit)
        self._expected[stage] = took if not expected else 0.7 * expected + 0.3 * took
        self.journal.set_stage(item_id, stage, "done")
        return out

    def segment(self, seg: Any, pixels: np.ndarray) -> Instances:
        item_id = self._local.item_id
        people = self._run(item_id, "segment", seg, lambda cb, ex: seg.submit(pixels, on_intent=cb, exclude=ex),
                           lambda t: seg.collect(t, size=pixels.shape[:2]))
        return people

    def eraser(self, inner: TwoPhaseEraser, spec: EngineSpec, job: Job) -> JournaledEraser:
        return JournaledEraser(inner, spec, self, job.id)

    def bind(self, item_id: str) -> None:
        self._local.item_id = item_id


class JournaledEraser(EngineWrapper):
    """Wraps a two-phase cloud eraser so its task id is journaled before it is polled; ``erase``
    returns ``Erased`` (the image with what the task did: its id goes into the report). It does what
    ``spec`` (the inner eraser's) says, in one call."""

    def __init__(self, inner: TwoPhaseEraser, spec: EngineSpec, hooks: CloudHooks, item_id: str) -> None:
        super().__init__(replace(spec, two_phase=False))
        self.inner, self.hooks, self.item_id = inner, hooks, item_id

    def erase(self, image: np.ndarray, erase: np.ndarray, *, keep: np.ndarray | None = None) -> Erased:
        return self.hooks._run(  # type: ignore[no-any-return]
            self.item_id, "erase", self.inner,
            lambda cb, ex: self.inner.submit(image, erase, keep=keep, on_intent=cb, exclude=ex),
            lambda t: self.inner.collect(t, image, erase, keep=keep),
        )


def _preimport_cloud_sdk() -> None:
    """Import the SDK modules the cloud client imports lazily, once, here: several stage threads
    importing them for the first time at the same moment can hit Python's import deadlock detection."""
    for mod in ("requests", "httpx", "dashscope", "dashscope.client.base_api", "dashscope.common.error",
                "dashscope.utils.oss_utils"):
        try:
            importlib.import_module(mod)
        except ImportError:  # pragma: no cover - reported by the engine itself when used
            pass


class CloudExecutor:
    """Stage threads for the cloud engines; see the module docstring."""

    name = "cloud"

    def __init__(self, options: ExecutorOptions, *, threads_per_stage: int = 2) -> None:
        self.threads_per_stage = threads_per_stage
        self.setup = options.cloud if options.cloud is not None else CloudSetup()

    def describe(self) -> str:
        return "cloud pipeline"

    def run(self, driver: Driver, specs: Iterable[ItemSpec], stop: threading.Event) -> None:
        n = self.threads_per_stage
        hooks = CloudHooks(driver.journal, self.setup)
        if self.setup.transport is None:  # the clients will use the SDK (another transport needs none of it)
            _preimport_cloud_sdk()
        forget_network_engines()  # cloud clients read the key and base URL when built: build them afresh per run
        to_seg: queue.Queue[Job | None] = queue.Queue(maxsize=n)
        to_erase: queue.Queue[tuple[Job, Pre] | None] = queue.Queue(maxsize=n)
        results: queue.Queue[tuple[Job, JobResult]] = queue.Queue()

        def not_started(job: Job) -> None:
            results.put((job, JobResult.failed("segment", "not started: quota exhausted", quota=True)))

        def seg_worker() -> None:
            while True:
                job = to_seg.get()
                if job is None:
                    return
                if driver.stopped is not None:  # the quota ran out: submit nothing more
                    not_started(job)
                    continue
                hooks.bind(job.id)
                t0 = time.perf_counter()
                try:
                    pre = load_and_segment(job, hooks)
                except BaseException as exc:  # noqa: BLE001 - recorded as this image's failure
                    results.put(
                        (
                            job,
                            JobResult.failed(
                                "segment",
                                reason(exc),
                                round((time.perf_counter() - t0) * 1e3, 1),
                                quota=isinstance(exc, QuotaExhausted),
                            ),
                        )
                    )
                    continue
                to_erase.put((job, pre))

        def erase_worker() -> None:
            while True:
                got = to_erase.get()
                if got is None:
                    return
                job, pre = got
                if driver.stopped is not None:
                    not_started(job)
                    continue
                hooks.bind(job.id)
                results.put((job, process_item(job, hooks, pre=pre)))

        seg_threads = [threading.Thread(target=seg_worker, name=f"batch-seg-{i}", daemon=True) for i in range(n)]
        erase_threads = [threading.Thread(target=erase_worker, name=f"batch-erase-{i}", daemon=True) for i in range(n)]
        for t in seg_threads + erase_threads:
            t.start()
        inflight = 0
        window = 3 * n + 1
        it = iter(specs)
        try:
            while True:
                for job in take_jobs(driver, it, stop, room=window - inflight):
                    to_seg.put(job)
                    inflight += 1
                if inflight == 0:
                    break
                job, res = results.get()
                inflight -= 1
                if res.quota:
                    # the free quota is used up: submit nothing more; this image was not started (no task
                    # exists), so it stays pending like the rest and a --resume after a quota reset does it
                    if driver.stopped is None:
                        model = P.ERASE_MODEL if res.stage == "erase" else P.SEGMENT_MODEL
                        driver.stopped = f"the free quota of {model} is used up"
                        logger.warning("%s: stopping the batch (%s)", driver.stopped, res.reason)
                        for m in P.MODELS:
                            hooks.limiters.for_model(m).mark_exhausted(driver.stopped)
                    remove_item_temps(driver.dest, job.out, job.id)
                    continue
                driver.commit(job, res)
        except KeyboardInterrupt:
            stop.set()  # the stage threads are daemons: tasks in flight are journaled and polled on resume
            raise
        for _ in seg_threads:
            to_seg.put(None)
        for t in seg_threads:
            t.join()
        for _ in erase_threads:
            to_erase.put(None)
        for t in erase_threads:
            t.join()
