"""The local executor: a process pool on this machine, at most ``workers + 1`` images in flight.

``workers=1`` runs in the driver's process (with the usual thread defaults). Each pool worker gets an
equal share of the cores as its thread budget (``thread_budget``: cores // workers, at least 1) for
onnxruntime and OpenCV: 2 workers on 2 cores run one model thread each, not two. Pool workers are fresh
interpreters (``spawn``: forking a parent whose OpenCV / onnxruntime thread pools already ran can
deadlock the children); each loads its models once. Workers die with the driver: on Linux the kernel
sends them SIGKILL when it goes (``PR_SET_PDEATHSIG``), elsewhere a watcher thread exits when the
parent is gone. They ignore SIGINT and SIGTERM — the driver handles those, finishes the images in
flight and shuts the pool down; a second interrupt kills the workers at once.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

from ..job import Job, JobResult
from ..work import process_item
from . import ExecutorOptions, import_plugins, take_jobs

if TYPE_CHECKING:
    from ..driver import Driver
    from ..sources import ItemSpec

DIED = "the worker process died (out of memory, or a crash in a native library)"
PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Make this process end when ``parent_pid`` does (SIGKILL from the kernel on Linux, else a watcher)."""
    done = False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        done = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        done = False
    if os.getppid() != parent_pid:  # the parent was gone before the signal was armed
        os._exit(1)
    if not done:
        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells, else the machine's)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def thread_budget(workers: int, available: int | None = None) -> int:
    """Threads each of ``workers`` processes may use: an equal share of the cores, at least 1."""
    return max(1, (cores() if available is None else available) // max(1, workers))


def limit_threads(threads: int | None) -> None:
    """Hold this worker process to ``threads`` threads per pool: onnxruntime sessions opened from now on
    (``ortsession.set_process_threads``: every model the worker loads, the face nets included), OpenCV,
    and OpenMP/BLAS libraries not yet loaded. None: leave the defaults."""
    if threads is None:
        return
    from ...ortsession import set_process_threads

    set_process_threads(threads)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:  # pragma: no cover
        pass


def init_worker(plugins: Sequence[str], threads: int | None, parent_pid: int) -> None:
    """Pool initializer: die with the parent, leave interrupts to it, limit threads, import plugins."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    limit_threads(threads)
    import_plugins(plugins)
    from multiprocessing.util import Finalize

    Finalize(None, _finalize_s3, exitpriority=0)  # pool workers end with os._exit: atexit hooks do not run


def _finalize_s3() -> None:
    """pyarrow's S3 client must be finalised before the process ends, or it may crash on the way out."""
    import sys

    if "pyarrow._s3fs" in sys.modules:
        import pyarrow.fs

        pyarrow.fs.finalize_s3()


def _worker(job: Job) -> JobResult:
    return process_item(job)


class LocalExecutor:
    """``workers`` processes (inline when 1); see the module docstring."""

    name = "local"

    def __init__(self, options: ExecutorOptions) -> None:
        self.workers = max(1, int(options.workers if options.workers is not None else cores()))
        self.plugins = tuple(options.plugins)

    def describe(self) -> str:
        return f"local, {self.workers} worker{'s' if self.workers > 1 else ''}"

    def _pool(self) -> ProcessPoolExecutor:
        import multiprocessing

        return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=init_worker,
                                   initargs=(self.plugins, thread_budget(self.workers), os.getpid()))

    def run(self, driver: Driver, specs: Iterable[ItemSpec], stop: threading.Event) -> None:
        it = iter(specs)
        if self.workers <= 1:
            for job in take_jobs(driver, it, stop):
                driver.commit(job, process_item(job))
            return
        window = self.workers + 1
        pool = self._pool()
        inflight: dict[Future[JobResult], Job] = {}
        try:
            while True:
                for job in take_jobs(driver, it, stop, room=window - len(inflight)):
                    inflight[pool.submit(_worker, job)] = job
                if not inflight:
                    break
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                broken = False
                for fut in done:
                    job = inflight.pop(fut)
                    try:
                        res = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        driver.fail_inflight(job, DIED)
                        continue
                    driver.commit(job, res)
                if broken:
                    for job in list(inflight.values()):
                        driver.fail_inflight(job, DIED)
                    inflight.clear()
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = self._pool()
        except KeyboardInterrupt:
            stop.set()
            # finish (and keep) the images already being worked on; a second interrupt abandons them
            try:
                for fut, job in list(inflight.items()):
                    try:
                        driver.commit(job, fut.result())
                    except BrokenProcessPool:
                        pass
            except KeyboardInterrupt:
                _kill(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _kill(pool: ProcessPoolExecutor) -> None:
    """End the pool's processes now (a second interrupt)."""
    procs = list(getattr(pool, "_processes", {}).values())
    for p in procs:
        p.kill()
    pool.shutdown(wait=False, cancel_futures=True)
