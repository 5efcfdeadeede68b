"""``run_batch``: check everything that can be checked, lock OUT_DIR, then let an executor do the work."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import CloudError, InputError, SelectionError
from ..report import BatchItem, BatchSummary
from .driver import Driver
from .executors import ExecutorOptions, check_executor, default_executor, get_executor, import_plugins
from .journal import Journal
from .layout import JOURNAL_NAME, LOCK_NAME, SUMMARY_NAME, output_rel, state_dir_for, sweep_temps, tmp_rels
from .lock import DirLock
from .params import BatchParams
from .progress import BatchProgress, NoProgress
from .sources import discover
from .storage import LocalStorage, open_storage

if TYPE_CHECKING:
    from .executors.cloud import CloudSetup


def validate_engines(params: BatchParams) -> None:
    """Unknown engine names (and a missing API key for cloud engines) fail before any work.

    Raises:
        EngineError / SelectionError / CloudError: naming the valid choices or what to set.
    """
    from ..erasers import ERASERS, REDACT_STYLES
    from ..segmenters import SEGMENTERS

    # the registries' own checks: names with a file (lama:PATH) and model-store names included
    SEGMENTERS.resolve(params.segmenter)
    if params.mode == "erase":
        ERASERS.resolve(params.eraser)
    if params.mode == "redact" and params.style not in REDACT_STYLES:
        raise SelectionError(f"unknown redaction style {params.style!r}; choose one of: {', '.join(REDACT_STYLES)}")
    if params.cloud:
        from ..settings import get_settings

        if get_settings().dashscope_api_key is None:
            from ..cloud.client import MISSING_KEY_HELP

            raise CloudError(MISSING_KEY_HELP, code="MissingApiKey")


def engine_modules(params: BatchParams) -> list[str]:
    """Modules that registered the run's engines at run time (imported again in worker processes)."""
    from ..erasers import ERASERS
    from ..segmenters import SEGMENTERS

    factories = [SEGMENTERS.get(params.segmenter.partition(":")[0]),
                 ERASERS.get(params.eraser if params.mode == "erase" else params.style)]
    mods = []
    for f in factories:
        mod = getattr(f, "module", None)  # EngineSpec.module: where the engine (or its factory) is defined
        if mod and mod != "__main__" and not mod.startswith("person_erase.") and mod != "person_erase":
            mods.append(mod)
    return mods


def run_batch(
    source: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    params: BatchParams | None = None,
    resume: bool = False,
    retry_failed: bool = False,
    workers: int | None = None,
    executor: str | None = None,
    address: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    plugins: Sequence[str] = (),
    progress: BatchProgress | None = None,
    stop: threading.Event | None = None,
    cloud: CloudSetup | None = None,
) -> BatchSummary:
    """Process every image of a folder or manifest into ``output_dir``.

    Outputs mirror the inputs' relative paths, each with a report sidecar (``photo.jpg.json``), plus
    ``summary.json``; the journal makes the run restartable: after a kill at any moment, ``resume``
    re-does only unfinished images and nothing is done twice (see ``person_erase.batch``).

    Args:
        source: a folder (recursed) or a ``.csv`` / ``.jsonl`` manifest; a local path or a pyarrow
            filesystem URI (``s3://bucket/prefix``, ``file:///…``).
        output_dir: where outputs, sidecars and ``summary.json`` go (created if missing); path or URI.
        params: what to do (``BatchParams``; default: erase everyone with the local engines).
        resume: continue the run journaled for ``output_dir`` (required when it has one).
        retry_failed: also retry images that failed before (implies ``resume``).
        workers: processes (``local``, default: the number of cores; 1 runs in this process) or Ray
            actors (``ray``, default 2).
        executor: ``local``, ``cloud`` or ``ray`` (default: ``cloud`` for dashscope engines, else ``local``).
        address: the Ray cluster to join (``auto``, ``ray://host:port``); None starts a local Ray.
        cache_dir: segmentation cache folder (default: ``segments`` in the state folder).
        state_dir: the local folder of the journal and lock (default ``output_dir/.person_erase``; for a
            remote ``output_dir``, a folder under ``$XDG_STATE_HOME/person_erase/batch``).
        plugins: modules to import in every worker (e.g. ones that register engines).
        progress: a ``BatchProgress`` (``TqdmProgress``, ``LogProgress``) or None.
        stop: set it to stop feeding new images (images in flight are finished and recorded).
        cloud: how the dashscope engines reach the service (``CloudSetup``: a transport, shared limiters);
            None: the real SDK over HTTP under the service's limits.

    Returns:
        The ``BatchSummary`` (also written to ``summary.json``).

    Raises:
        InputError: bad folder/manifest, ``output_dir`` equal to the input folder, an existing journal
            without ``resume``, another batch running in ``output_dir``, a bad setting.
        KeyboardInterrupt: after the images in flight were finished and the summary written.
    """
    from ..settings import get_settings

    params = params or BatchParams()
    resume = resume or retry_failed
    name = executor or default_executor(params)
    import_plugins(plugins)
    plugins = tuple(dict.fromkeys([*plugins, *engine_modules(params)]))
    options = ExecutorOptions(workers=workers, plugins=plugins, address=address, cloud=cloud)
    check_executor(name, params, options)
    validate_engines(params)
    settings = get_settings()
    src = open_storage(source, param="source")
    dst = open_storage(output_dir, param="output_dir")
    if src.kind("") == "dir" and dst.kind("") == "dir" and src.same_place(dst):
        raise InputError(
            f"the output folder {dst.display()} is the input folder; choose another folder (outputs mirror the inputs)"
        )
    if dst.kind("") == "file":
        raise InputError(f"{dst.display()}: is a file; OUT_DIR must be a folder")
    found = discover(src, dst)
    specs = found.items
    outs: dict[str, str] = {}
    for s in specs:
        o = output_rel(s.rel, params.output_format)
        if o in outs:
            raise InputError(f"{s.rel} and {outs[o]} would both be written to {o}; use format 'same' or rename one")
        outs[o] = s.rel
    if isinstance(dst, LocalStorage):
        dst.root.mkdir(parents=True, exist_ok=True)
    state = state_dir_for(dst, state_dir)
    with DirLock(state / LOCK_NAME, where=dst.display()):
        journal = Journal(state / JOURNAL_NAME)
        try:
            if not resume and journal.count():
                n = journal.count()
                raise InputError(
                    f"{dst.display()} already holds a batch journal ({n} images); pass `resume=True` to continue "
                    "it (`retry_failed=True` to retry failures too), or choose another output folder",
                    param="resume",
                )
            # no other batch writes here (the lock): every temporary file of ours is stale, except those of
            # saves killed between "written" and "done", which the resume finishes
            keep = {t for item_id, rel, p in journal.unfinished_saves()
                    for t in tmp_rels(output_rel(rel, str(p.get("format", "same"))), item_id)}
            sweep_temps(dst, protect=keep)
            cache = os.fspath(cache_dir) if cache_dir is not None else os.fspath(state / "segments")
            prog = progress or NoProgress()
            from pathlib import Path

            driver = Driver(source=found.root, dest=dst, params=params, journal=journal, cache_dir=Path(cache),
                            retry_failed=retry_failed, progress=prog, max_pixels=settings.max_pixels)
            ex = get_executor(name, options)
            stop = stop or threading.Event()
            t0 = time.monotonic()
            interrupted = False
            prog.start(len(specs))
            try:
                ex.run(driver, specs, stop)
            except KeyboardInterrupt:
                interrupted = True
            finally:
                prog.close()
            seconds = time.monotonic() - t0
            items = [driver.items[s.rel] for s in specs if s.rel in driver.items]
            if driver.stopped:
                items += [BatchItem(input=s.rel, status="not_started", reason="not started: quota exhausted")
                          for s in specs if s.rel not in driver.items]
            summary = BatchSummary(
                input_dir=os.fspath(source),
                output_dir=dst.display(),
                total=len(specs),
                done=driver.counts["done"],
                failed=driver.counts["failed"],
                skipped=driver.counts["skipped"],
                non_images=found.non_images,
                cache_hits=driver.cache_hits,
                seconds=round(seconds, 3),
                images_per_s=round(driver.counts["done"] / seconds, 4) if seconds > 0 else None,
                pending=len(specs) - sum(1 for it in items if it.status != "not_started"),
                interrupted=(interrupted or stop.is_set()) and not driver.stopped,
                stopped=driver.stopped,
                engine=ex.describe(),
                parameters=params.for_item().to_json(),
                items=items,
            )
            dst.write_text(SUMMARY_NAME, summary.model_dump_json(indent=2))
            if interrupted:
                raise KeyboardInterrupt
            return summary
        finally:
            journal.close()
