"""One image end to end, wherever it runs (the driver, a pool worker, a Ray actor, a cloud stage thread).

``process_item(job)`` loads the image (``max_pixels`` applies, as in ``erase``), segments it (from the
cache when it can), erases or redacts it through ``pipeline`` (so every check ``erase`` makes applies)
and writes the output and its report under their temporary names. It never raises for a bad image:
the ``JobResult`` says what failed, and the driver records it.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from ..engines import EngineSpec
from ..erasers import TwoPhaseEraser
from ..errors import InputError, PersonEraseError
from ..instances import Instances
from ..report import finish_report
from ..segmenters import TwoPhaseSegmenter
from .cache import cache_key, cacheable, load_segmentation, store_segmentation
from .job import Job, JobResult
from .params import Options, digest
from .storage import LocalStorage

_ENGINES: dict[str, tuple[EngineSpec, Any]] = {}
_ENGINES_LOCK = threading.Lock()


class StageHooks(Protocol):
    """How the cloud executor journals task ids around two-phase (submit / collect) engines."""

    def segment(self, seg: TwoPhaseSegmenter, pixels: np.ndarray) -> Instances: ...

    def eraser(self, inner: TwoPhaseEraser, spec: EngineSpec, job: Job) -> Any:
        """An eraser doing what ``inner`` (described by ``spec``) does, its task id journaled."""

    def configure(self, engine: Any) -> None:
        """Connect an engine the batch built to the run (the cloud executor: transport, limiters, polling)."""


def engine(kind: Literal["segmenter", "eraser"], name: str, options: Options,
           hooks: StageHooks | None = None) -> tuple[EngineSpec, Any]:
    """(spec, engine) per (kind, name, options) per process: models load once.

    Threads share them: an engine keeps nothing of a call (what it did comes back with its result).
    ``hooks.configure`` connects it to the current run (the cloud executor hands every client the run's
    transport and limiters); it is applied on every call, so a cached engine follows the run using it.
    """
    from ..erasers import ERASERS
    from ..segmenters import SEGMENTERS

    registry = SEGMENTERS if kind == "segmenter" else ERASERS
    opts = dict(options)
    key = digest([kind, name, opts])
    with _ENGINES_LOCK:
        built = _ENGINES.get(key)
    if built is None:
        built = (registry.resolve(name), registry.build(name, **opts))
        with _ENGINES_LOCK:
            built = _ENGINES.setdefault(key, built)
    if hooks is not None:
        hooks.configure(built[1])
    return built


def forget_network_engines() -> None:
    """Drop cached cloud clients (they read the key and base URL when built)."""
    with _ENGINES_LOCK:
        for key in [k for k, (spec, _) in _ENGINES.items() if spec.needs_network]:
            del _ENGINES[key]


def reason(exc: BaseException) -> str:
    """One line for the summary: our messages as they are, anything else as an internal error."""
    if isinstance(exc, PersonEraseError):
        return " ".join(str(exc).split())
    if isinstance(exc, MemoryError):
        return "out of memory (try fewer workers)"
    return f"internal error ({type(exc).__name__}: {' '.join(str(exc).split())})"


class _Staging:
    """Local files for one job: the input (downloaded when remote) and outputs (uploaded when remote)."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def _dir(self) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="pe-batch-")
        return Path(self._tmp.name)

    def input(self) -> Path:
        local = self.job.source.local_path(self.job.src)
        if local is not None:
            return local
        folder = self._dir() / "in"
        folder.mkdir(exist_ok=True)
        path = folder / Path(self.job.src).name  # the report names the input as it is called
        self.job.source.download(self.job.src, path)
        return path

    def output(self, rel: str) -> Path:
        if isinstance(self.job.dest, LocalStorage):
            return self.job.dest.path(rel)
        return self._dir() / Path(rel).name

    def publish(self, local: Path, rel: str) -> None:
        self.job.dest.upload(local, rel)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def load(job: Job, staging: _Staging) -> Any:
    """The job's image, checked to be the file that was hashed (raises ``InputError`` otherwise)."""
    from ..io import load_image

    img = load_image(staging.input(), max_pixels=job.max_pixels)
    if img.sha256 != job.sha256:
        raise InputError(
            f"{job.rel}: the file changed while the batch was running; run again to process the new version"
        )
    return img


def segment(job: Job, img: Any, hooks: StageHooks | None) -> tuple[Instances, bool, float]:
    """People in ``img``: from the cache, or by the segmenter (then cached). Returns (people, cache hit, ms)."""
    p = job.params
    t0 = time.perf_counter()
    key = cache_key(job.sha256, p.segmenter, p.segmenter_options) if cacheable(p.segmenter) else None
    cache_dir = Path(job.cache_dir)
    if key is not None:
        people = load_segmentation(cache_dir, key)
        if people is not None and people.shape == (img.height, img.width):
            # this run made no task for it: the report lists only the tasks of this run
            people = people.with_info(people.info.replace(task_ids=(), request_ids=()))
            return people, True, (time.perf_counter() - t0) * 1e3
    spec, seg = engine("segmenter", p.segmenter, p.segmenter_options, hooks)
    if hooks is not None and spec.two_phase and isinstance(seg, TwoPhaseSegmenter):
        people = hooks.segment(seg, img.pixels)
    else:
        people = seg.segment(img.pixels)
    if people.shape != (img.height, img.width):
        raise InputError(
            f"the segmenter returned masks of {people.shape[1]}x{people.shape[0]} for a {img.width}x{img.height} photo"
        )
    if key is not None:
        store_segmentation(cache_dir, key, people)
    return people, False, (time.perf_counter() - t0) * 1e3


def load_and_segment(job: Job, hooks: StageHooks | None = None) -> tuple[Any, Instances, bool, float]:
    """The cloud executor's first stage: (image, people, cache hit, segment ms)."""
    staging = _Staging(job)
    try:
        img = load(job, staging)
    finally:
        staging.close()
    return (img, *segment(job, img, hooks))


def process_item(job: Job, hooks: StageHooks | None = None,
                 pre: tuple[Any, Instances, bool, float] | None = None) -> JobResult:
    """Load, segment (cached), erase/redact, and write the output and its report under their temporary names.

    ``pre`` = (image, people, cache hit, segment ms) skips loading and segmenting (the cloud
    pipeline's segment stage did them). Never raises for a bad image (only for ``KeyboardInterrupt``).
    """
    from .. import pipeline
    from ..io import save_image

    t0 = time.perf_counter()
    p = job.params
    stage = "load"
    staging = _Staging(job)
    written: list[str] = []
    try:
        if pre is None:
            img = load(job, staging)
            stage = "segment"
            people, hit, seg_ms = segment(job, img, hooks)
        else:
            img, people, hit, seg_ms = pre
        stage = "erase"
        verify: Any = False
        if p.verify:
            verify = engine("segmenter", p.segmenter, p.segmenter_options, hooks)[1]
        common: dict[str, Any] = dict(
            select=None if p.select is None else list(p.select),
            keep=None if p.keep is None else list(p.keep),
            policy=p.policy,
            segmenter=people.info.engine or p.segmenter,
            dilate=p.dilate,
            verify=verify,
        )
        if p.mode == "erase":
            spec, eng = engine("eraser", p.eraser, p.eraser_options, hooks)
            if hooks is not None and spec.two_phase and isinstance(eng, TwoPhaseEraser):
                eng = hooks.eraser(eng, spec, job)
            result = pipeline.erase(img, people, eraser=eng, **common)
        else:
            result = pipeline.redact(img, people, style=p.eraser, face_net=p.face_net, person_net=p.person_net,
                                     target=p.target, **common,
                                     **dict(p.eraser_options))
        stage = "save"
        t_save = time.perf_counter()
        local_image = staging.output(job.tmp_image)
        save_image(result.image, local_image, like=result.source, metadata=p.metadata)  # type: ignore[arg-type]
        written.append(job.tmp_image)
        staging.publish(local_image, job.tmp_image)
        rep = finish_report(
            result.report, output=job.out, metadata_policy=p.metadata,
            # the segment stage ran here (or in the cloud pipeline's first stage), not in ``pipeline.erase``
            timings_ms={"segment": round(seg_ms, 2), **{k: v for k, v in result.report.timings_ms.items()
                                                        if k != "segment"},
                        "save": round((time.perf_counter() - t_save) * 1e3, 2)},
            parameters={"segment_cache": "hit" if hit else "miss"},
        )
        local_report = staging.output(job.tmp_report)
        written.append(job.tmp_report)
        local_report.write_text(rep.to_json())
        staging.publish(local_report, job.tmp_report)
        return JobResult(ok=True, ms=round((time.perf_counter() - t0) * 1e3, 1), people=len(people),
                         erased=len(result.selection.erase), cache_hit=hit, notes=tuple(rep.notes))
    except BaseException as exc:  # noqa: BLE001 - one bad image must not stop the batch; the reason is recorded
        if isinstance(exc, KeyboardInterrupt):
            raise
        for rel in written:
            try:
                job.dest.delete(rel)
            except Exception:  # noqa: BLE001 - best effort; the driver removes temporary files again
                pass
        from ..errors import QuotaExhausted

        return JobResult.failed(stage, reason(exc), round((time.perf_counter() - t0) * 1e3, 1),
                                quota=isinstance(exc, QuotaExhausted))
    finally:
        staging.close()
