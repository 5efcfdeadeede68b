"""The driver's side of a run: jobs out, results in, everything journaled, whatever executes the jobs.

``Driver.prepare(spec)`` turns an image into a ``Job`` (or records it at once: already done, failed
before, missing, a name that cannot fit); ``Driver.commit(job, result)`` renames a finished job's
temporary files into place — journaled as ``save: written`` first, so a run killed between the two
finishes the renames on resume — or records its failure. An item is done only when its output *and*
its sidecar exist. Executors call nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..errors import InputError
from ..report import BatchItem
from .job import Job, JobResult
from .journal import Journal
from .layout import check_name, output_rel, remove_item_temps, sidecar_rel, tmp_rels
from .params import BatchParams, digest
from .progress import BatchProgress
from .sources import ItemSpec
from .storage import Storage
from .work import reason


class Driver:
    """State of one ``run_batch`` call (journal, counters, summary items)."""

    def __init__(self, *, source: Storage, dest: Storage, params: BatchParams, journal: Journal, cache_dir: Path,
                 retry_failed: bool, progress: BatchProgress, max_pixels: int) -> None:
        self.source, self.dest, self.params, self.journal = source, dest, params, journal
        self.cache_dir = cache_dir
        self.retry_failed = retry_failed
        self.progress = progress
        self.max_pixels = max_pixels
        self.items: dict[str, BatchItem] = {}
        self.counts = {"done": 0, "failed": 0, "skipped": 0}
        self.cache_hits = 0
        self.recovered = 0
        #: why the run stopped early (the cloud quota ran out), or None
        self.stopped: str | None = None

    def record(self, item: BatchItem) -> None:
        self.items[item.input] = item
        self.counts[item.status] += 1
        if item.cache_hit:
            self.cache_hits += 1
        self.progress.item(item, dict(self.counts))

    def _complete(self, out: str) -> bool:
        return self.dest.exists(out) and self.dest.exists(sidecar_rel(out))

    def prepare(self, spec: ItemSpec) -> Job | None:
        """A job for ``spec``, or None when it was recorded directly (already done, failed before, missing)."""
        out = output_rel(spec.rel, self.params.output_format)
        try:
            if self.source.kind(spec.src) != "file":
                raise InputError(f"{self.source.display(spec.src)}: no such file")
            check_name(self.dest, out, item=spec.rel)
            self.dest.make_parents(out, item=spec.rel)
            sha = self.source.sha256(spec.src)
        except (InputError, OSError) as exc:
            msg = (
                reason(exc)
                if isinstance(exc, InputError)
                else f"{self.source.display(spec.src)}: {exc.strerror or exc}"
            )
            self.record(BatchItem(input=spec.rel, status="failed", stage="load", reason=msg))
            return None
        params = self.params.for_item(spec.choice)
        phash = params.digest()
        item_id = digest([spec.rel, sha, phash])[:32]
        row = self.journal.get(item_id)
        tmp_image, tmp_report = tmp_rels(out, item_id)
        if row is not None and row.state == "done" and self._complete(out):
            self.record(BatchItem(input=spec.rel, output=out, status="skipped", reason="already done",
                                  people=row.people, erased=row.erased))
            return None
        if row is not None and row.state == "failed" and not self.retry_failed:
            self.record(BatchItem(input=spec.rel, output=None, status="failed", stage=row.stage,
                                  reason=f"{row.reason} (in an earlier run; not retried unless asked)"))
            return None
        save = self.journal.stage(item_id, "save")
        if row is not None and row.state == "running" and save is not None and save[0] == "written":
            # killed between "written" and "done": finish the renames instead of redoing the work
            for tmp, final in ((tmp_image, out), (tmp_report, sidecar_rel(out))):
                if self.dest.exists(tmp):
                    self.dest.move(tmp, final)
            if self._complete(out):
                self._done(item_id, spec.rel, out, save[2] or {}, recovered=True)
                return None
        if row is not None and row.state == "failed":
            self.journal.clear_stages(item_id)  # a retry submits anew; the failed task is not polled again
        remove_item_temps(self.dest, out, item_id)
        self.journal.start(item_id, rel=spec.rel, sha256=sha, params_hash=phash, params=params.to_json())
        return Job(id=item_id, rel=spec.rel, source=self.source, src=spec.src, sha256=sha, dest=self.dest, out=out,
                   tmp_image=tmp_image, tmp_report=tmp_report, cache_dir=str(self.cache_dir), params=params,
                   max_pixels=self.max_pixels)

    def commit(self, job: Job, res: JobResult) -> None:
        """Rename a finished job's files into place (journaled) or record its failure."""
        if not res.ok:
            self.journal.finish(job.id, "failed", stage=res.stage, reason=res.reason, ms=res.ms)
            remove_item_temps(self.dest, job.out, job.id)
            self.record(BatchItem(input=job.rel, status="failed", stage=res.stage, reason=res.reason, ms=res.ms))
            return
        self.journal.set_stage(job.id, "segment", "done", detail={"cache": "hit" if res.cache_hit else "miss"})
        self.journal.set_stage(job.id, "erase", "done")
        info = {"people": res.people, "erased": res.erased, "cache_hit": res.cache_hit, "ms": res.ms}
        self.journal.set_stage(job.id, "save", "written", detail=info)
        try:
            self.dest.move(job.tmp_image, job.out)
            self.dest.move(job.tmp_report, sidecar_rel(job.out))
        except OSError as exc:
            why = f"could not put the output in place ({exc.strerror or ' '.join(str(exc).split())})"
            self.commit(job, JobResult.failed("save", why, res.ms))
            return
        self._done(job.id, job.rel, job.out, info)

    def _done(self, item_id: str, rel: str, out: str, info: Mapping[str, object], *, recovered: bool = False) -> None:
        self.journal.set_stage(item_id, "save", "done")
        people, erased, ms = info.get("people"), info.get("erased"), info.get("ms")
        self.journal.finish(item_id, "done", stage="save", output=out, people=people,  # type: ignore[arg-type]
                            erased=erased, ms=ms, cache_hit=bool(info.get("cache_hit")))  # type: ignore[arg-type]
        self.recovered += int(recovered)
        self.record(BatchItem(input=rel, output=out, report=sidecar_rel(out), status="done",
                              people=people, erased=erased, ms=ms,  # type: ignore[arg-type]
                              cache_hit=bool(info.get("cache_hit")),
                              reason="finished an interrupted save" if recovered else None))

    def fail_inflight(self, job: Job, why: str) -> None:
        self.commit(job, JobResult.failed("erase", why))
