"""Batch processing: a folder (or a manifest) in, a mirrored folder of outputs out; safe to kill and resume.

``run_batch(IN, OUT_DIR, ...)`` processes every image below ``IN`` (recursively; other files are
counted and left alone) or every row of a manifest (CSV or JSONL with a ``path`` column and optional
per-image ``select`` / ``keep`` / ``policy``), writing ``OUT_DIR/<same relative path>`` plus a report
sidecar ``OUT_DIR/<relative path>.json`` per output and ``OUT_DIR/summary.json`` at the end. ``IN`` and
``OUT_DIR`` are local paths or pyarrow filesystem URIs (``s3://bucket/prefix``). Nothing is ever
written outside ``OUT_DIR``: manifest paths that are absolute or contain ``..`` are refused, and
outputs are never written through symbolic links.

Restartable: the SQLite journal (``OUT_DIR/.person_erase/journal.sqlite``, with the driver) keys each
image by its relative path, the sha256 of its bytes and the digest of its parameters. Outputs are
written under short temporary names, recorded as written, renamed into place, then marked done (an
item is done only when its output and its sidecar exist); a cloud task id is committed before the
task is polled. After a ``kill -9`` at any moment, ``resume`` re-does only unfinished images, finishes
interrupted renames, and polls cloud tasks already created instead of submitting them again;
``retry_failed`` also retries failed images. One batch at a time per OUT_DIR (a lock naming the pid).

The package, one concern per module:

* ``params`` — ``BatchParams`` (checked with the same functions ``erase`` uses) and per-image ``ItemParams``;
* ``sources`` — folders and manifests → ``ItemSpec``; ``storage`` — local disk or pyarrow filesystems;
* ``layout`` — output, sidecar, temporary and state paths; ``cache`` — the segmentation cache;
* ``job`` — the frozen, picklable ``Job`` and its ``JobResult``; ``work`` — one image end to end;
* ``journal`` — the SQLite journal; ``lock`` — one run per OUT_DIR; ``driver`` — jobs out, results in;
* ``progress`` — progress displays and the summary table; ``run`` — ``run_batch``;
* ``executors`` — ``local`` (process pool), ``cloud`` (pipelined stages under the DashScope limits),
  ``ray`` (Ray Data actors on a cluster), behind one ``Executor`` Protocol.

Segmentations are cached by content: a second run with another selection or eraser does not segment
again. A failure (unreadable file, FAILED cloud task, engine error) marks that image failed with its
reason and the run goes on; the summary says whether anything failed or is still pending.
"""

from __future__ import annotations

from ..report import BatchItem, BatchSummary
from .cache import cache_key, cacheable, load_segmentation, store_segmentation
from .executors import EXECUTORS, Executor, ExecutorOptions
from .executors.cloud import CloudSetup
from .job import Job, JobResult
from .layout import JOURNAL_NAME, STATE_DIR, SUMMARY_NAME, output_path, sidecar_path
from .params import BatchParams, Choice, ItemParams, parse_numbers
from .progress import BatchProgress, LogProgress, NoProgress, TqdmProgress, iter_items
from .run import run_batch, validate_engines
from .sources import IMAGE_EXTENSIONS, MANIFEST_COLUMNS, Discovered, ItemSpec, discover, read_manifest
from .storage import ArrowStorage, LocalStorage, Storage, open_storage
from .work import process_item


def file_sha256(path: str) -> str:
    """sha256 (hex) of a local file."""
    from pathlib import Path

    return LocalStorage(Path(path)).sha256("")


__all__ = [
    "EXECUTORS",
    "IMAGE_EXTENSIONS",
    "JOURNAL_NAME",
    "MANIFEST_COLUMNS",
    "STATE_DIR",
    "SUMMARY_NAME",
    "ArrowStorage",
    "BatchItem",
    "BatchParams",
    "BatchProgress",
    "BatchSummary",
    "Choice",
    "CloudSetup",
    "Discovered",
    "Executor",
    "ExecutorOptions",
    "ItemParams",
    "ItemSpec",
    "Job",
    "JobResult",
    "LocalStorage",
    "LogProgress",
    "NoProgress",
    "Storage",
    "TqdmProgress",
    "cache_key",
    "cacheable",
    "discover",
    "file_sha256",
    "iter_items",
    "load_segmentation",
    "open_storage",
    "output_path",
    "parse_numbers",
    "process_item",
    "read_manifest",
    "run_batch",
    "sidecar_path",
    "store_segmentation",
    "validate_engines",
]
