"""The Ray executor: Ray Data ``map_batches`` over a pool of actors, on a local Ray or a cluster.

The driver (this process) prepares every image first (content hash, journal lookup: done images are
skipped exactly as with the local executor), then streams the jobs through one Ray Data dataset whose
``map_batches`` stage is a callable class: each of ``workers`` actors loads its models once and runs
``process_item`` on one image per call (at most 2 calls queued per actor, so memory stays flat). Results
stream back to the driver in completion order; the driver renames each output into place and journals
it — the journal never leaves the driver, so killing the driver and resuming loses nothing and commits
nothing twice (images that were in flight are processed again).

* ``address=None`` starts a local Ray on this machine (127.0.0.1, ``max(2, workers)`` CPUs, no
  dashboard, usage statistics off) and stops it at the end; ``address="auto"`` or ``"ray://host:port"``
  joins a cluster; a Ray already initialised in this process is used as it is.
* On a cluster, every node needs person_erase installed, and the inputs and outputs must be reachable
  from every node: an object store (``s3://…``, credentials in the nodes' environment) or a shared mount.
* Cloud engines are refused (``check_executor``): the DashScope models allow one task in flight per
  account, which the ``cloud`` executor already keeps busy from one machine; fanning them out over a
  cluster would only queue behind that limit.
"""

from __future__ import annotations

import os
import pickle
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import EngineError, InputError
from ..job import JobResult
from . import ExecutorOptions, import_plugins, take_jobs

if TYPE_CHECKING:
    from ..driver import Driver
    from ..sources import ItemSpec

#: Calls queued per actor beyond the running one (bounded in flight).
MAX_IN_FLIGHT_PER_ACTOR = 2
DEFAULT_ACTORS = 2


class PhotoEraser:
    """The ``map_batches`` callable class: one per actor, models loaded on first use and kept."""

    def __init__(self, plugins: tuple[str, ...] = ()) -> None:
        from .local import limit_threads

        limit_threads(1)  # the actor holds num_cpus=1: one model thread (onnxruntime, OpenCV)
        import_plugins(plugins)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ..work import process_item

        results = [pickle.dumps(process_item(pickle.loads(blob))) for blob in batch["job"]]
        return {"i": np.asarray(batch["i"]), "result": np.array(results, dtype=object)}


_REAPER = r"""
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
targets = [tuple(int(v) for v in a.split(":")) for a in sys.argv[1:]]
def started(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None
if sys.stdin.read().strip() == "done":
    sys.exit(0)
time.sleep(1.0)  # the driver died: Ray's own fate-sharing ends most processes; end what is left
for pid, start in targets:
    if started(pid) == start:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
"""


def _proc_start(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _children(pids: set[int]) -> set[int]:
    out: set[int] = set()
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return out
    for e in entries:
        try:
            with open(f"/proc/{e}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid in pids:
            out.add(int(e))
    return out


class _Reaper:
    """Ends the processes of a local Ray this driver started if the driver is killed (``kill -9``).

    Ray ends its GCS, raylet and workers with the driver, but its per-node agents outlive it; a small
    watcher process (own session, deaf to SIGINT/SIGTERM) waits for the driver's pipe to close and,
    unless told the run ended normally, kills those it was given (pid + start time: never a reused pid).
    """

    def __init__(self, ray: Any) -> None:
        import subprocess
        import sys

        self.proc: Any = None
        if not os.path.isdir("/proc"):  # pragma: no cover - Linux only; elsewhere Ray's own clean-up
            return
        node = ray._private.worker._global_node
        pids = {p.process.pid for procs in node.all_processes.values() for p in procs if p.process is not None}
        pids |= _children(pids)
        targets = [f"{pid}:{st}" for pid in sorted(pids) if (st := _proc_start(pid)) is not None]
        self.proc = subprocess.Popen([sys.executable, "-c", _REAPER, *targets], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.proc.stdin.write(b"done\n")
                self.proc.stdin.close()
            except OSError:
                pass
            self.proc.wait(timeout=30)


def _loopback_only() -> None:
    """Keep a local Ray on 127.0.0.1 even when ray was imported before the variable above was set."""
    try:
        from ray._private import ray_constants
    except ImportError:  # pragma: no cover - a Ray without it reads only the variable
        return
    if hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        ray_constants.ENABLE_RAY_CLUSTER = False


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data is the part used
    except ImportError:
        raise EngineError("executor='ray' needs Ray Data: pip install 'person_erase[ray]'") from None
    return ray


class RayExecutor:
    """Ray Data actors; see the module docstring."""

    name = "ray"

    def __init__(self, options: ExecutorOptions) -> None:
        self.actors = int(options.workers) if options.workers is not None else DEFAULT_ACTORS
        self.plugins = tuple(options.plugins)
        self.address = options.address
        self._reaper: _Reaper | None = None

    def describe(self) -> str:
        where = self.address or "local Ray"
        return f"ray ({where}), {self.actors} actor{'s' if self.actors > 1 else ''}"

    def _connect(self) -> bool:
        """Connect (or start) Ray; True when this call started it (and so must stop it)."""
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine by itself
        if self.address is None:
            # a local Ray on loopback only (read when ray is imported; Linux otherwise picks the LAN address)
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        ray = _ray()
        if ray.is_initialized():
            return False
        if self.address is None:
            _loopback_only()
        try:
            if self.address is None:
                ray.init(num_cpus=max(2, self.actors), include_dashboard=False, _node_ip_address="127.0.0.1",
                         log_to_driver=False, configure_logging=False)
            else:
                ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise InputError(
                f"cannot {'start a local Ray' if self.address is None else f'join the Ray cluster at {self.address}'} "
                f"({' '.join(str(exc).split())[:300]})"
            ) from None
        if self.address is None:
            self._reaper = _Reaper(ray)
        return True

    def _disconnect(self) -> None:
        _ray().shutdown()
        reaper, self._reaper = self._reaper, None
        if reaper is not None:
            reaper.close()

    def run(self, driver: Driver, specs: Iterable[ItemSpec], stop: threading.Event) -> None:
        jobs = list(take_jobs(driver, iter(specs), stop))
        if not jobs:
            return
        started = self._connect()
        ray = _ray()
        try:
            ctx = ray.data.DataContext.get_current()
            ctx.execution_options.preserve_order = False
            ctx.enable_progress_bars = bool(getattr(driver.progress, "ray_bars", False))
            ctx.print_on_execution_start = False
            ds = ray.data.from_items([{"i": k, "job": pickle.dumps(j)} for k, j in enumerate(jobs)],
                                     override_num_blocks=len(jobs))
            ds = ds.map_batches(
                PhotoEraser,
                fn_constructor_kwargs={"plugins": self.plugins},
                batch_size=1,
                batch_format="numpy",
                num_cpus=1,
                compute=ray.data.ActorPoolStrategy(size=self.actors,
                                                   max_tasks_in_flight_per_actor=MAX_IN_FLIGHT_PER_ACTOR),
            )
            rows = ds.iter_rows()
            try:
                for row in rows:
                    k = int(row["i"])
                    driver.commit(jobs[k], _result(row["result"]))
                    if stop.is_set():
                        break
            finally:
                close = getattr(rows, "close", None)
                if close is not None:
                    close()
        finally:
            if started:
                self._disconnect()


def _result(blob: Any) -> JobResult:
    res = pickle.loads(bytes(blob))
    if not isinstance(res, JobResult):  # pragma: no cover - only our own actors answer
        raise EngineError(f"a Ray actor returned {type(res).__name__}, not a JobResult")
    return res
