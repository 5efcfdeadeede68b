"""How a batch's jobs are executed, behind one small Protocol, chosen by name.

* ``local`` — a process pool on this machine (models loaded once per process), the default for local engines;
* ``cloud`` — stage threads under the DashScope limits (1 task in flight per model, 2 submits/s), the
  default (and the only executor) for cloud engines;
* ``ray`` — Ray Data ``map_batches`` over actors on a Ray cluster (local engines only).

Every executor takes jobs from ``Driver.prepare``, hands results to ``Driver.commit`` (in the driver's
process: the journal stays there), keeps a bounded number of images in flight, stops feeding new
images when ``stop`` is set, and on ``KeyboardInterrupt`` commits what is finished, then re-raises.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ...errors import InputError

if TYPE_CHECKING:
    from ..driver import Driver
    from ..job import Job
    from ..params import BatchParams
    from ..sources import ItemSpec
    from .cloud import CloudSetup


class Executor(Protocol):
    """Runs the jobs of one batch."""

    name: str

    def describe(self) -> str:
        """How the run was executed, for the summary (e.g. ``local, 2 workers``)."""
        ...

    def run(self, driver: Driver, specs: Iterable[ItemSpec], stop: threading.Event) -> None:
        """Prepare, execute and commit every spec (see the module docstring)."""
        ...


@dataclass(frozen=True)
class ExecutorOptions:
    """What an executor is built with.

    Attributes:
        workers: processes (local) or actors (ray); None: the number of cores (local) / 2 (ray).
        plugins: modules every worker imports first (e.g. ones registering engines).
        address: the Ray cluster (``auto``, ``ray://host:port``); None starts a local Ray.
        cloud: how the cloud executor's engines reach the service (``cloud.CloudSetup``); None: the defaults.
    """

    workers: int | None = None
    plugins: tuple[str, ...] = ()
    address: str | None = None
    cloud: CloudSetup | None = None


#: name -> "module:Class" (imported when chosen: Ray is heavy and optional).
EXECUTORS: dict[str, str] = {
    "local": "person_erase.batch.executors.local:LocalExecutor",
    "cloud": "person_erase.batch.executors.cloud:CloudExecutor",
    "ray": "person_erase.batch.executors.ray:RayExecutor",
}


def default_executor(params: BatchParams) -> str:
    return "cloud" if params.cloud else "local"


def check_executor(name: str, params: BatchParams, options: ExecutorOptions) -> None:
    """Refuse, before any work, an executor that cannot run these engines or options.

    Raises:
        InputError: unknown name, cloud engines outside the cloud executor, local engines in it,
            ``address`` without ray, ``workers`` < 1.
    """
    if name not in EXECUTORS:
        raise InputError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}", param="executor")
    if options.workers is not None and (isinstance(options.workers, bool) or int(options.workers) < 1):
        raise InputError(f"`workers` must be 1 or more, got {options.workers}", param="workers")
    if options.cloud is not None and name != "cloud":
        raise InputError(f"`cloud` is for the cloud executor (got {name!r})", param="cloud")
    if options.address is not None and name != "ray":
        raise InputError(f"`address` is for `executor='ray'` (got {name!r})", param="address")
    if params.cloud and name == "ray":
        raise InputError("`executor='ray'` runs local engines only: the DashScope models allow one task in flight "
                         "per account, which the cloud executor already keeps busy from one machine; "
                         "use `executor='cloud'` (the default for dashscope engines)", param="executor")
    if params.cloud and name == "local":
        raise InputError("dashscope engines run in the cloud executor (pipelined under the service's limits); "
                         "use `executor='cloud'` or leave it unset", param="executor")
    if not params.cloud and name == "cloud":
        raise InputError("`executor='cloud'` is for the dashscope engines; local engines use `executor='local'` "
                         "or `executor='ray'`", param="executor")


def take_jobs(driver: Driver, specs: Iterator[ItemSpec], stop: threading.Event, *,
              room: int | None = None) -> Iterator[Job]:
    """Jobs prepared from ``specs`` one at a time, at most ``room`` (None: no bound); an image the driver
    records at once (done before, missing, …) takes no room. Nothing more once ``stop`` is set or the driver
    has stopped the run (``driver.stopped``: the cloud quota ran out)."""
    taken = 0
    while (room is None or taken < room) and not stop.is_set() and driver.stopped is None:
        spec = next(specs, None)
        if spec is None:
            return
        job = driver.prepare(spec)
        if job is not None:
            taken += 1
            yield job


def get_executor(name: str, options: ExecutorOptions) -> Executor:
    """Build the executor called ``name`` (see ``EXECUTORS``)."""
    mod, _, cls = EXECUTORS[name].partition(":")
    return getattr(importlib.import_module(mod), cls)(options)  # type: ignore[no-any-return]


def import_plugins(plugins: Sequence[str]) -> None:
    """Import plugin modules (engines registered at run time), naming the one that fails.

    Raises:
        InputError: a module that cannot be imported.
    """
    for mod in plugins:
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            raise InputError(f"cannot import plugin module {mod!r}: {exc}") from None
