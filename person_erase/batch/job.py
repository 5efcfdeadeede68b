"""One image's work as data: a frozen, picklable ``Job`` (sent to a worker process or a Ray actor) and
its ``JobResult`` (sent back to the driver, which renames the outputs into place and journals them)."""

from __future__ import annotations

from dataclasses import dataclass

from .params import ItemParams
from .storage import Storage


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to process one image, and nothing it could change for others.

    Attributes:
        id: the journal key (digest of the relative path, the content hash and the parameters).
        rel: the input's path relative to the input root (also its name in messages).
        source: where the inputs are; ``src`` is the input's path in it.
        sha256: the input's content hash, checked again when the worker reads it.
        dest: where the outputs go; ``out`` is the output's path in it, ``tmp_image`` / ``tmp_report``
            the temporary names the worker writes (the driver renames them).
        cache_dir: the segmentation cache folder (local to the worker's machine).
        params: the effective parameters.
        max_pixels: the largest photo accepted (``PERSON_ERASE_MAX_PIXELS``, read once by the driver).
    """

    id: str
    rel: str
    source: Storage
    src: str
    sha256: str
    dest: Storage
    out: str
    tmp_image: str
    tmp_report: str
    cache_dir: str
    params: ItemParams
    max_pixels: int


@dataclass(frozen=True)
class JobResult:
    """What became of a job: the temporary files are written (``ok``) or the reason it failed.

    ``stage`` is where a failure happened: ``load``, ``segment``, ``erase`` or ``save``.
    """

    ok: bool
    ms: float
    stage: str | None = None
    reason: str | None = None
    people: int | None = None
    erased: int | None = None
    cache_hit: bool = False
    notes: tuple[str, ...] = ()
    #: the failure is the cloud quota running out: the image was not started (the run stops)
    quota: bool = False

    @classmethod
    def failed(cls, stage: str, reason: str, ms: float = 0.0, *, quota: bool = False) -> JobResult:
        return cls(ok=False, ms=ms, stage=stage, reason=reason, quota=quota)
