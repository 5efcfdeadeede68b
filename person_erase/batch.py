"""Batch processing: a folder (or a manifest) in, a mirrored folder of outputs out; safe to kill and resume.

``run_batch(IN, OUT_DIR, ...)`` processes every image below ``IN`` (recursively; other files are
counted and left alone) or every row of a manifest (CSV or JSONL with a ``path`` column and optional
per-image ``select`` / ``keep`` / ``policy``), writing ``OUT_DIR/<same relative path>`` plus a report
sidecar ``OUT_DIR/<relative path>.json`` per output and ``OUT_DIR/summary.json`` at the end. Nothing is
ever written outside ``OUT_DIR``: manifest paths that are absolute or contain ``..`` are refused, and
every output path is checked after resolving links.

Restartable (``person_erase.journal``): the SQLite journal ``OUT_DIR/.person_erase/journal.sqlite``
keys each image by its relative path, the sha256 of its bytes and the digest of its parameters.
Outputs are written to temporary files, recorded as written, renamed into place, then marked done; a
cloud task id is committed before the task is polled. After a ``kill -9`` at any moment,
``--resume`` re-does only unfinished images, finishes interrupted renames, and polls cloud tasks
already created instead of submitting them again. ``--retry-failed`` also retries failed images.

Two ways to run:

* local engines: a process pool of ``workers`` processes (default: the number of cores) with at
  most ``workers + 1`` images in flight, so memory stays bounded;
* cloud engines (``dashscope`` segmenter or eraser): stage threads in this process — segmentation of
  the next images overlaps erasing of earlier ones, and each model runs at its own limit (1 task in
  flight, 2 submits/s; the process-wide limiters in ``person_erase.cloud.limits``), so throughput is
  bounded by the slower stage, not by the sum.

Segmentations are cached by content (``OUT_DIR/.person_erase/segments`` or ``cache_dir``): the label
map and the instance table, keyed by the file's sha256 and the segmenter with its options, so a second
run with another selection or eraser does not segment again.

A failure (unreadable file, FAILED cloud task, engine error) marks that image failed with its reason
and the run goes on; the summary and the CLI's exit code say whether anything failed.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib
import io as _io
import json
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import numpy as np

from .errors import CloudError, InputError, PersonEraseError, SelectionError
from .instances import Instances
from .io import METADATA_POLICIES, SAVE_FORMATS
from .journal import Journal
from .report import BatchItem, BatchSummary

logger = logging.getLogger("person_erase.batch")

#: File name extensions treated as images (the formats person_erase reads and writes).
IMAGE_EXTENSIONS = tuple(sorted(SAVE_FORMATS))
#: Folder inside OUT_DIR holding the journal and the segmentation cache.
STATE_DIR = ".person_erase"
JOURNAL_NAME = "journal.sqlite"
SUMMARY_NAME = "summary.json"
#: Manifest columns understood (``path`` is required).
MANIFEST_COLUMNS = ("path", "select", "keep", "policy")
#: Segmenter names whose engine runs in the cloud (pipelined threads instead of a process pool).
CLOUD_ENGINES = ("dashscope",)
CACHE_VERSION = 1
#: Status-query interval of cloud tasks in a batch once a task is due (seconds).
CLOUD_POLL_S = 0.025


# --- what to do ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchParams:
    """The parameters of a run (per-image ``select``/``keep``/``policy`` may override the defaults here).

    Attributes:
        mode: ``"erase"`` or ``"redact"``.
        eraser: eraser name for ``erase`` mode (``patchmatch``, ``telea``, ``dashscope``, …).
        style: redaction style for ``redact`` mode (``blur``, ``pixelate``, ``solid``).
        segmenter: segmenter name (``local``, ``dashscope``, or any registered name).
        segmenter_options: passed to the segmenter factory (e.g. ``{"quality": "fast"}``).
        eraser_options: passed to the eraser factory (e.g. ``{"fast_mode": True}``).
        select, keep, policy: default choice of people (default: policy ``all``).
        dilate: erase-mask dilation in px (None: the pipeline's default).
        metadata: ``keep`` | ``strip-gps`` | ``strip-all`` (default: keep for erase, strip-gps for redact).
        verify: re-detect people in each output and report residues.
        output_format: ``same`` (the input's extension) or an extension such as ``png`` / ``jpg``.
    """

    mode: str = "erase"
    eraser: str = "patchmatch"
    style: str = "blur"
    segmenter: str = "local"
    segmenter_options: dict[str, Any] = field(default_factory=dict)
    eraser_options: dict[str, Any] = field(default_factory=dict)
    select: tuple[int, ...] | None = None
    keep: tuple[int, ...] | None = None
    policy: str | None = None
    dilate: int | None = None
    metadata: str | None = None
    verify: bool = False
    output_format: str = "same"

    def __post_init__(self) -> None:
        if self.mode not in ("erase", "redact"):
            raise InputError(f"unknown batch mode {self.mode!r}; choose erase or redact")
        if self.metadata is not None and self.metadata not in METADATA_POLICIES:
            raise InputError(f"unknown metadata policy {self.metadata!r}; choose one of: {', '.join(METADATA_POLICIES)}")
        fmt = self.output_format.lower().lstrip(".")
        if fmt != "same" and f".{fmt}" not in SAVE_FORMATS:
            raise InputError(f"unknown output format {self.output_format!r}; use same or one of "
                             f"{', '.join(s.lstrip('.') for s in sorted(SAVE_FORMATS))}")
        object.__setattr__(self, "output_format", fmt)
        _check_choice(self.select, self.keep, self.policy, where="the batch options")

    @property
    def metadata_policy(self) -> str:
        return self.metadata or ("strip-gps" if self.mode == "redact" else "keep")

    @property
    def cloud(self) -> bool:
        """True when an engine runs in the cloud (stage threads, not processes)."""
        seg = self.segmenter.partition(":")[0]
        return seg in CLOUD_ENGINES or (self.mode == "erase" and self.eraser in CLOUD_ENGINES)

    def for_item(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """The effective parameters of one image, JSON-ready (these are hashed into the journal key)."""
        sel, kp, pol = self.select, self.keep, self.policy
        if any(overrides.get(k) is not None for k in ("select", "keep", "policy")):
            sel, kp, pol = overrides.get("select"), overrides.get("keep"), overrides.get("policy")
        return {
            "mode": self.mode,
            "eraser": self.eraser if self.mode == "erase" else self.style,
            "eraser_options": dict(sorted(self.eraser_options.items())),
            "segmenter": self.segmenter,
            "segmenter_options": dict(sorted(self.segmenter_options.items())),
            "select": None if sel is None else list(sel),
            "keep": None if kp is None else list(kp),
            "policy": pol,
            "dilate": self.dilate,
            "metadata": self.metadata_policy,
            "verify": bool(self.verify),
            "format": self.output_format,
        }


def _check_choice(select: Any, keep: Any, policy: Any, *, where: str) -> None:
    given = [n for n, v in (("select", select), ("keep", keep), ("policy", policy)) if v is not None]
    if len(given) > 1:
        raise SelectionError(f"{where}: give only one of select, keep and policy (got {' and '.join(given)})")


def parse_numbers(value: Any, *, what: str = "select") -> tuple[int, ...] | None:
    """Person numbers from ``"0,2"``, ``"0 2"``, ``"0;2"``, ``[0, 2]`` or ``2``; None for empty.

    Raises:
        SelectionError: something that is not a list of non-negative integers.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise SelectionError(f"{what} must list person numbers such as 0,2; got {value!r}")
    if isinstance(value, int):
        items: list[Any] = [value]
    elif isinstance(value, str):
        text = value.strip().strip("[]")
        if not text:
            return None
        items = [t for t in text.replace(";", ",").replace(" ", ",").split(",") if t]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise SelectionError(f"{what} must list person numbers such as 0,2; got {value!r}")
    out = []
    for t in items:
        try:
            n = int(str(t).strip()) if not isinstance(t, int) or isinstance(t, bool) else int(t)
        except ValueError:
            raise SelectionError(f"{what} must list person numbers such as 0,2; {t!r} is not a number") from None
        if isinstance(t, bool) or n < 0:
            raise SelectionError(f"{what} must list person numbers (0 or more); got {t!r}")
        out.append(n)
    return tuple(out)


@dataclass(frozen=True)
class ItemSpec:
    """One image to process: where it is, its path relative to IN (mirrored under OUT_DIR), overrides."""

    src: Path
    rel: str
    overrides: dict[str, Any] = field(default_factory=dict)


def _is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in SAVE_FORMATS


def discover(source: str | os.PathLike[str], output_dir: str | os.PathLike[str] | None = None) -> tuple[list[ItemSpec], int, Path]:
    """The images to process from a folder or a manifest.

    A folder is walked recursively in sorted order; hidden folders (``.git``, our own ``.person_erase``)
    and ``output_dir`` (when it lies inside the folder) are not entered; symlinked folders are not
    followed. Files whose extension is not an image format count as non-images.

    Returns:
        (items, number of non-image files, the root that relative paths start from).

    Raises:
        InputError: missing input, an unsupported manifest, or a manifest row that is invalid.
    """
    src = Path(source)
    if not src.exists():
        raise InputError(f"{src}: no such folder or manifest; give a folder of images or a .csv/.jsonl manifest")
    if src.is_file():
        if src.suffix.lower() in (".csv", ".jsonl"):
            return read_manifest(src), 0, src.parent
        if _is_image_name(src.name):
            raise InputError(f"{src}: is one image; use 'person-erase erase' for a single photo, or give its folder")
        raise InputError(f"{src}: not a folder or a manifest; a manifest must end in .csv or .jsonl")
    skip_dir = Path(output_dir).resolve() if output_dir is not None else None
    items: list[ItemSpec] = []
    non_images = 0
    root = src
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (skip_dir is None or (here / d).resolve() != skip_dir))
        for name in sorted(filenames):
            path = here / name
            if _is_image_name(name) and not name.startswith("."):
                items.append(ItemSpec(src=path, rel=path.relative_to(root).as_posix()))
            else:
                non_images += 1
    return items, non_images, root


def _safe_rel(text: str, *, where: str) -> str:
    """A manifest path as a clean relative POSIX path; refuses absolute paths and ``..``."""
    raw = str(text).strip()
    if not raw:
        raise InputError(f"{where}: empty path")
    p = PurePosixPath(raw.replace("\\", "/"))
    if p.is_absolute() or raw.startswith(("/", "\\")) or (len(raw) > 1 and raw[1] == ":"):
        raise InputError(f"{where}: {raw!r} is an absolute path; manifest paths must be relative to the manifest's folder "
                         "(outputs mirror them under OUT_DIR)")
    if any(part == ".." for part in p.parts):
        raise InputError(f"{where}: {raw!r} contains '..'; manifest paths must stay inside the manifest's folder")
    parts = [x for x in p.parts if x not in (".", "")]
    if not parts:
        raise InputError(f"{where}: {raw!r} is not a file path")
    return "/".join(parts)


def read_manifest(path: str | os.PathLike[str]) -> list[ItemSpec]:
    """Rows of a CSV (header row with ``path`` and optional ``select``, ``keep``, ``policy``) or JSONL manifest.

    Paths are relative to the manifest's folder. ``select``/``keep`` take ``"0,2"`` (CSV) or ``[0, 2]`` (JSONL).

    Raises:
        InputError / SelectionError: naming the line that is wrong.
    """
    mpath = Path(path)
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        text = mpath.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{mpath}: cannot read the manifest ({exc})") from None
    if mpath.suffix.lower() == ".csv":
        reader = csv.DictReader(_io.StringIO(text))
        cols = [c.strip() for c in (reader.fieldnames or [])]
        if "path" not in cols:
            raise InputError(f"{mpath}: the CSV manifest needs a header row with a 'path' column (and optional select, keep, policy)")
        unknown = [c for c in cols if c not in MANIFEST_COLUMNS]
        if unknown:
            raise InputError(f"{mpath}: unknown column {unknown[0]!r}; the columns are {', '.join(MANIFEST_COLUMNS)}")
        for lineno, rec in enumerate(reader, start=2):
            rows.append((lineno, {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in rec.items() if k}))
    else:
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{mpath}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(rec, dict):
                raise InputError(f"{mpath}:{lineno}: each line must be a JSON object with a 'path'")
            unknown = [c for c in rec if c not in MANIFEST_COLUMNS]
            if unknown:
                raise InputError(f"{mpath}:{lineno}: unknown field {unknown[0]!r}; the fields are {', '.join(MANIFEST_COLUMNS)}")
            rows.append((lineno, rec))
    items: list[ItemSpec] = []
    seen: dict[str, int] = {}
    for lineno, rec in rows:
        where = f"{mpath}:{lineno}"
        if rec.get("path") in (None, ""):
            raise InputError(f"{where}: missing 'path'")
        rel = _safe_rel(str(rec["path"]), where=where)
        if rel in seen:
            raise InputError(f"{where}: {rel!r} is listed twice (first on line {seen[rel]}); each image once")
        seen[rel] = lineno
        if not _is_image_name(rel):
            raise InputError(f"{where}: {rel!r} does not end in an image extension ({', '.join(IMAGE_EXTENSIONS)})")
        ov: dict[str, Any] = {}
        try:
            ov["select"] = parse_numbers(rec.get("select"), what="select")
            ov["keep"] = parse_numbers(rec.get("keep"), what="keep")
        except SelectionError as exc:
            raise SelectionError(f"{where}: {exc}") from None
        pol = rec.get("policy")
        ov["policy"] = str(pol).strip() if pol not in (None, "") else None
        _check_choice(ov["select"], ov["keep"], ov["policy"], where=where)
        items.append(ItemSpec(src=mpath.parent / rel, rel=rel, overrides={k: v for k, v in ov.items() if v is not None}))
    return items


def output_path(out_dir: Path, rel: str, output_format: str) -> Path:
    """``OUT_DIR/rel``, with the extension changed when ``output_format`` is not ``same``."""
    p = out_dir / rel
    if output_format != "same":
        p = p.with_suffix(f".{output_format}")
    return p


def sidecar_path(out: Path) -> Path:
    """Report sidecar of an output: ``photo.jpg`` → ``photo.jpg.json``."""
    return out.with_name(out.name + ".json")


def _tmp_paths(out: Path, item_id: str) -> tuple[Path, Path]:
    token = item_id[:12]
    return (out.with_name(f".{out.name}.{token}.part{out.suffix}"), out.with_name(f".{out.name}.{token}.part.json"))


def _make_parents_inside(out_dir: Path, out: Path, *, rel: str) -> None:
    """Create ``out``'s folders one level at a time, refusing links: nothing is created outside ``out_dir``.

    Raises:
        InputError: a folder on the way (or ``out`` itself) is a symbolic link, or not a folder.
    """
    here = out_dir
    for part in out.relative_to(out_dir).parts[:-1]:
        here = here / part
        if here.is_symlink():
            raise InputError(f"{rel}: {here} is a symbolic link; outputs are never written through links "
                             "(it could lead outside OUT_DIR)")
        if here.exists() and not here.is_dir():
            raise InputError(f"{rel}: {here} is a file, so the output folder cannot be created")
        here.mkdir(exist_ok=True)
    if out.is_symlink():
        raise InputError(f"{rel}: the output {out} is a symbolic link; refusing to write through it (it could lead outside OUT_DIR)")


def _remove_partials(out: Path) -> None:
    """Remove temporary files an interrupted attempt left next to ``out``: our ``.NAME.<id>.part*``
    files, and ``save_image``'s own temp files for them (``..NAME.<id>.part.EXT.<random>.tmp``), left
    when the kill came in the middle of writing one."""
    if out.parent.is_dir():
        for pattern in (f".{out.name}.*", f"..{out.name}.*"):
            for p in out.parent.glob(pattern):
                if p.is_file():
                    p.unlink(missing_ok=True)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# --- segmentation cache ----------------------------------------------------------------------------


def cache_key(sha256: str, segmenter: str, options: dict[str, Any]) -> str:
    """Cache key of one photo's segmentation: content hash + segmenter name + its options."""
    return _digest({"v": CACHE_VERSION, "sha256": sha256, "segmenter": segmenter, "options": options})


def cacheable(segmenter: str) -> bool:
    """``labels:PATH`` reads a file the user may change: not cached. Everything else is."""
    return segmenter.partition(":")[0] != "labels"


def _jsonable(meta: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in meta.items():
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            continue
        out[str(k)] = v
    return out


def store_segmentation(cache_dir: Path, key: str, people: Instances) -> Path:
    """Write ``people`` (label map + instance table; exact masks too when they overlap) atomically."""
    path = cache_dir / key[:2] / f"{key}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = people.to_label_map() if len(people) else np.zeros(people.shape, np.uint8)
    arrays: dict[str, np.ndarray] = {
        "labels": labels,
        "index": people.index,
        "scores": people.scores,
        "boxes": people.boxes,
        "meta": np.array(json.dumps(_jsonable(people.meta))),
    }
    if len(people) and int(people.masks.sum()) != int((labels > 0).sum()):
        arrays["packed"] = np.packbits(people.masks, axis=-1)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_segmentation(cache_dir: Path, key: str) -> Instances | None:
    """The cached ``Instances`` for ``key``, or None (missing or unreadable entries are a miss)."""
    path = cache_dir / key[:2] / f"{key}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            labels, index = z["labels"], z["index"].astype(np.int64)
            if "packed" in z.files:
                masks = np.unpackbits(z["packed"], axis=-1, count=labels.shape[1]).astype(bool)
            else:
                masks = labels[None, :, :] == (index + 1)[:, None, None]
            meta = json.loads(str(z["meta"]))
            return Instances(masks=masks, boxes=z["boxes"], scores=z["scores"], index=index, meta=meta)
    except (OSError, ValueError, KeyError, PersonEraseError):
        return None


# --- one image (runs in a worker process, or a stage thread) ---------------------------------------

_ENGINES: dict[str, Any] = {}
_ENGINES_LOCK = threading.Lock()


def _engine(kind: str, spec: str, options: dict[str, Any]) -> Any:
    """One engine per (kind, name, options) per process (per thread for cloud engines, see ``_Local``)."""
    from .erasers import get_eraser
    from .segmenters import get_segmenter

    key = _digest([kind, spec, options, threading.get_ident() if spec.partition(":")[0] in CLOUD_ENGINES else 0])
    with _ENGINES_LOCK:
        eng = _ENGINES.get(key)
    if eng is None:
        eng = get_segmenter(spec, **options) if kind == "segmenter" else get_eraser(spec, **options)
        client = getattr(eng, "client", None)
        if client is not None and hasattr(client, "poll_interval_s"):
            # the batch sleeps until shortly before a task is due (see _CloudHooks), then polls finely
            client.poll_interval_s = min(client.poll_interval_s, CLOUD_POLL_S)
            client.max_poll_interval_s = min(client.max_poll_interval_s, 2 * CLOUD_POLL_S)
        with _ENGINES_LOCK:
            _ENGINES[key] = eng
    return eng


def _reason(exc: BaseException) -> str:
    if isinstance(exc, PersonEraseError):
        return " ".join(str(exc).split())
    if isinstance(exc, MemoryError):
        return "out of memory (try fewer --workers)"
    return f"internal error ({type(exc).__name__}: {' '.join(str(exc).split())})"


def _segment(job: dict[str, Any], img: Any, hooks: _CloudHooks | None) -> tuple[Instances, bool, float]:
    """People in ``img``: from the cache, or by the segmenter (then cached). Returns (people, cache hit, ms)."""
    p = job["params"]
    t0 = time.perf_counter()
    key = cache_key(job["sha256"], p["segmenter"], p["segmenter_options"]) if cacheable(p["segmenter"]) else None
    cache_dir = Path(job["cache_dir"])
    if key is not None:
        people = load_segmentation(cache_dir, key)
        if people is not None and people.shape == (img.height, img.width):
            return people, True, (time.perf_counter() - t0) * 1e3
    seg = _engine("segmenter", p["segmenter"], p["segmenter_options"])
    if hooks is not None and hasattr(seg, "submit") and hasattr(seg, "collect"):
        people = hooks.segment(seg, img.pixels)
    else:
        people = seg.segment(img.pixels)
    if people.shape != (img.height, img.width):
        raise InputError(f"the segmenter returned masks of {people.shape[1]}x{people.shape[0]} for a {img.width}x{img.height} photo")
    if "task_id" in people.meta and "task_ids" not in people.meta:
        people = Instances(people.masks, people.boxes, people.scores, people.index,
                           meta={**people.meta, "task_ids": [people.meta["task_id"]]})
    if key is not None:
        store_segmentation(cache_dir, key, people)
    return people, False, (time.perf_counter() - t0) * 1e3


def process_item(job: dict[str, Any], hooks: _CloudHooks | None = None,
                 pre: tuple[Any, Instances, bool, float] | None = None) -> dict[str, Any]:
    """Load, segment (cached), erase/redact, and write the output and its report to temporary files.

    ``pre`` = (image, people, cache hit, segment ms) skips loading and segmenting (the cloud
    pipeline's segment stage did them). Never raises for a bad image: returns
    ``{"ok": False, "stage": ..., "reason": ...}`` instead. The caller renames the temporary files
    into place and records the outcome.
    """
    from . import pipeline
    from .io import load_image, save_image

    t0 = time.perf_counter()
    p = job["params"]
    stage = "load"
    try:
        if pre is None:
            img = load_image(job["src"])
            if img.sha256 != job["sha256"]:
                raise InputError(f"{job['rel']}: the file changed while the batch was running; run again to process the new version")
            stage = "segment"
            people, hit, seg_ms = _segment(job, img, hooks)
        else:
            img, people, hit, seg_ms = pre
        stage = "erase"
        verify: Any = False
        if p["verify"]:
            verify = _engine("segmenter", p["segmenter"], p["segmenter_options"])
        common: dict[str, Any] = dict(select=p["select"], keep=p["keep"], policy=p["policy"],
                                      segmenter=str(people.meta.get("engine", p["segmenter"])), dilate=p["dilate"], verify=verify)
        if p["mode"] == "erase":
            eng = _engine("eraser", p["eraser"], p["eraser_options"])
            if hooks is not None and hasattr(eng, "submit") and hasattr(eng, "collect"):
                eng = hooks.eraser(eng, job)
            result = pipeline.erase(img, people, eraser=eng, **common)
        else:
            result = pipeline.redact(img, people, style=p["eraser"], **common, **p["eraser_options"])
        stage = "save"
        rep = result.report
        rep.output = job["out"]
        rep.metadata_policy = p["metadata"]
        rep.timings_ms = {"segment": round(seg_ms, 2), **{k: v for k, v in rep.timings_ms.items() if k != "segment"}}
        rep.parameters["segment_cache"] = "hit" if hit else "miss"
        if hooks is not None:
            ids = hooks.task_ids(job)
            if ids:
                rep.cloud_task_ids = {k: [v] for k, v in sorted(ids.items())}
        t_save = time.perf_counter()
        tmp_image, tmp_report = Path(job["tmp_image"]), Path(job["tmp_report"])
        tmp_image.parent.mkdir(parents=True, exist_ok=True)
        save_image(result.image, tmp_image, like=result.source, metadata=p["metadata"])
        rep.timings_ms["save"] = round((time.perf_counter() - t_save) * 1e3, 2)
        tmp_report.write_text(rep.to_json())
        return {
            "ok": True,
            "people": len(people),
            "erased": len(result.selection.erase),
            "cache_hit": hit,
            "ms": round((time.perf_counter() - t0) * 1e3, 1),
            "notes": list(rep.notes),
        }
    except BaseException as exc:  # noqa: BLE001 - one bad image must not stop the batch; the reason is recorded
        if isinstance(exc, KeyboardInterrupt):
            raise
        for t in ("tmp_image", "tmp_report"):
            Path(job[t]).unlink(missing_ok=True)
        return {"ok": False, "stage": stage, "reason": _reason(exc), "ms": round((time.perf_counter() - t0) * 1e3, 1)}


def _init_worker(plugins: Sequence[str], threads: int | None) -> None:
    """Process-pool initializer: ignore Ctrl-C (the parent handles it), limit threads, import plugins."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(threads))
        try:
            import cv2

            cv2.setNumThreads(threads)
        except ImportError:  # pragma: no cover
            pass
    for mod in plugins:
        importlib.import_module(mod)


def _worker(job: dict[str, Any]) -> dict[str, Any]:
    return process_item(job)


# --- cloud hooks: task ids journaled before polling ------------------------------------------------


class _CloudHooks:
    """Two-phase cloud calls (``submit`` → journal the task id → ``collect``), resumable by task id."""

    RESUBMIT_CODES = ("UnknownTask", "ResultExpired")

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._local = threading.local()
        self._expected: dict[str, float] = {}

    def _run(self, item_id: str, stage: str, engine: Any, submit: Callable[[], str], collect: Callable[[str], Any]) -> Any:
        st = self.journal.stage(item_id, stage)
        task = st[1] if st else None
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
        task = submit()
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
        call = getattr(engine, "last_call", None)
        wait_ms = (getattr(call, "timings_ms", None) or {}).get("wait")
        took = (t_poll - t_submit) + (wait_ms / 1e3 if wait_ms is not None else time.monotonic() - t_poll)
        logger.debug("%s task %s: slept %.3f s, finished %.3f s after submit, collected %.3f s after submit",
                     stage, task, t_poll - t_submit, took, time.monotonic() - t_submit)
        self._expected[stage] = took if not expected else 0.7 * expected + 0.3 * took
        self.journal.set_stage(item_id, stage, "done")
        return out

    def segment(self, seg: Any, pixels: np.ndarray) -> Instances:
        item_id = self._local.item_id
        people = self._run(item_id, "segment", seg, lambda: seg.submit(pixels), lambda t: seg.collect(t, size=pixels.shape[:2]))
        return people

    def eraser(self, inner: Any, job: dict[str, Any]) -> Any:
        return _JournaledEraser(inner, self, job["id"])

    def task_ids(self, job: dict[str, Any]) -> dict[str, str]:
        return self.journal.task_ids(job["id"])

    def bind(self, item_id: str) -> None:
        self._local.item_id = item_id


class _JournaledEraser:
    """Wraps a two-phase cloud eraser so its task id is journaled before it is polled."""

    def __init__(self, inner: Any, hooks: _CloudHooks, item_id: str) -> None:
        self.inner, self.hooks, self.item_id = inner, hooks, item_id
        for attr in ("name", "kind", "needs_network", "honours_keep_mask", "crops"):
            if hasattr(inner, attr):
                setattr(self, attr, getattr(inner, attr))
        self.last_task_ids: list[str] = []

    def erase(self, image: np.ndarray, erase: np.ndarray, *, keep: np.ndarray | None = None) -> np.ndarray:
        out = self.hooks._run(
            self.item_id, "erase", self.inner,
            lambda: self.inner.submit(image, erase, keep=keep),
            lambda t: self.inner.collect(t, image, erase, keep=keep),
        )
        ids = self.hooks.journal.task_ids(self.item_id)
        self.last_task_ids = [ids["erase"]] if "erase" in ids else []
        return out


# --- progress ------------------------------------------------------------------------------------


class BatchProgress(Protocol):
    """Receives progress: ``start`` once, ``item`` after each image, ``close`` at the end."""

    def start(self, total: int) -> None: ...

    def item(self, item: BatchItem, counts: dict[str, int]) -> None: ...

    def close(self) -> None: ...


class _NoProgress:
    def start(self, total: int) -> None:
        pass

    def item(self, item: BatchItem, counts: dict[str, int]) -> None:
        pass

    def close(self) -> None:
        pass


class TqdmProgress:
    """A tqdm bar on a terminal: rate, ETA and done/failed/skipped counts."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.bar: Any = None

    def start(self, total: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="img", file=self.stream, dynamic_ncols=True, smoothing=0.1)

    def item(self, item: BatchItem, counts: dict[str, int]) -> None:
        if self.bar is None:
            return
        if item.status == "failed":
            self.bar.write(f"failed: {item.input}: {item.reason}", file=self.stream)
        self.bar.set_postfix(done=counts["done"], failed=counts["failed"], skipped=counts["skipped"], refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class LogProgress:
    """Plain log lines (for pipes and CI): one per image, with the running counts and rate."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.total = 0
        self.n = 0
        self.t0 = time.monotonic()

    def start(self, total: int) -> None:
        self.total = total
        self.t0 = time.monotonic()
        print(f"batch: {total} images", file=self.stream, flush=True)

    def item(self, item: BatchItem, counts: dict[str, int]) -> None:
        self.n += 1
        rate = self.n / max(1e-9, time.monotonic() - self.t0)
        extra = ""
        if item.status == "done":
            extra = f" ({item.erased}/{item.people} people{', cached segmentation' if item.cache_hit else ''})"
        elif item.status == "failed":
            extra = f" [{item.stage}] {item.reason}"
        elif item.reason:
            extra = f" ({item.reason})"
        print(f"[{self.n}/{self.total}] {item.status} {item.input}{extra} | done {counts['done']} failed {counts['failed']} "
              f"skipped {counts['skipped']} | {rate:.2f} img/s", file=self.stream, flush=True)

    def close(self) -> None:
        pass


# --- the run -------------------------------------------------------------------------------------


class _Run:
    """State of one ``run_batch`` call (journal, counters, summary items)."""

    def __init__(self, root: Path, out_dir: Path, params: BatchParams, journal: Journal, cache_dir: Path,
                 resume: bool, retry_failed: bool, progress: BatchProgress) -> None:
        self.root, self.out_dir, self.params, self.journal = root, out_dir, params, journal
        self.out_real = out_dir.resolve()
        self.cache_dir = cache_dir
        self.resume, self.retry_failed = resume, retry_failed
        self.progress = progress
        self.items: dict[str, BatchItem] = {}
        self.counts = {"done": 0, "failed": 0, "skipped": 0}
        self.cache_hits = 0
        self.recovered = 0

    def record(self, item: BatchItem) -> None:
        self.items[item.input] = item
        self.counts[item.status] += 1
        if item.cache_hit:
            self.cache_hits += 1
        self.progress.item(item, dict(self.counts))

    def _rel_out(self, out: Path) -> str:
        return out.relative_to(self.out_dir).as_posix()

    def prepare(self, spec: ItemSpec) -> dict[str, Any] | None:
        """A job for ``spec``, or None when it was recorded directly (already done, failed before, missing)."""
        out = output_path(self.out_dir, spec.rel, self.params.output_format)
        try:
            if not spec.src.is_file():
                raise InputError(f"{spec.src}: no such file")
            _make_parents_inside(self.out_dir, out, rel=spec.rel)
            sha = file_sha256(spec.src)
        except (InputError, OSError) as exc:
            msg = _reason(exc) if isinstance(exc, InputError) else f"{spec.src}: {exc.strerror or exc}"
            self.record(BatchItem(input=spec.rel, status="failed", stage="load", reason=msg))
            return None
        params = self.params.for_item(spec.overrides)
        phash = _digest(params)[:16]
        item_id = _digest([spec.rel, sha, phash])[:32]
        row = self.journal.get(item_id)
        rel_out = self._rel_out(out)
        tmp_image, tmp_report = _tmp_paths(out, item_id)
        if row is not None and row.state == "done" and out.exists():
            self.record(BatchItem(input=spec.rel, output=rel_out, status="skipped", reason="already done",
                                  people=row.people, erased=row.erased))
            return None
        if row is not None and row.state == "failed" and not self.retry_failed:
            self.record(BatchItem(input=spec.rel, output=None, status="failed", stage=row.stage,
                                  reason=f"{row.reason} (an earlier run; --retry-failed retries it)"))
            return None
        save = self.journal.stage(item_id, "save")
        if row is not None and row.state == "running" and save is not None and save[0] == "written":
            # killed between "written" and "done": finish the renames instead of redoing the work
            for tmp, final in ((tmp_image, out), (tmp_report, sidecar_path(out))):
                if tmp.exists():
                    os.replace(tmp, final)
            self._done(item_id, spec.rel, out, save[2] or {}, recovered=True)
            return None
        if row is not None and row.state == "failed":
            self.journal.clear_stages(item_id)  # a retry submits anew; the failed task is not polled again
        _remove_partials(out)
        self.journal.start(item_id, rel=spec.rel, sha256=sha, params_hash=phash, params=params)
        return {
            "id": item_id,
            "rel": spec.rel,
            "src": str(spec.src),
            "sha256": sha,
            "out": rel_out,
            "out_path": str(out),
            "tmp_image": str(tmp_image),
            "tmp_report": str(tmp_report),
            "cache_dir": str(self.cache_dir),
            "params": params,
        }

    def commit(self, job: dict[str, Any], res: dict[str, Any]) -> None:
        """Rename a finished job's files into place (journaled) or record its failure."""
        item_id, out = job["id"], Path(job["out_path"])
        if not res.get("ok"):
            self.journal.finish(item_id, "failed", stage=res.get("stage"), reason=res.get("reason"), ms=res.get("ms"))
            _remove_partials(out)
            self.record(BatchItem(input=job["rel"], status="failed", stage=res.get("stage"), reason=res.get("reason"), ms=res.get("ms")))
            return
        self.journal.set_stage(item_id, "segment", "done", detail={"cache": "hit" if res["cache_hit"] else "miss"})
        self.journal.set_stage(item_id, "erase", "done")
        info = {k: res[k] for k in ("people", "erased", "cache_hit", "ms")}
        self.journal.set_stage(item_id, "save", "written", detail=info)
        os.replace(job["tmp_image"], out)
        os.replace(job["tmp_report"], sidecar_path(out))
        self._done(item_id, job["rel"], out, info)

    def _done(self, item_id: str, rel: str, out: Path, info: dict[str, Any], *, recovered: bool = False) -> None:
        self.journal.set_stage(item_id, "save", "done")
        self.journal.finish(item_id, "done", stage="save", output=self._rel_out(out), people=info.get("people"),
                            erased=info.get("erased"), ms=info.get("ms"), cache_hit=info.get("cache_hit"))
        self.recovered += int(recovered)
        self.record(BatchItem(input=rel, output=self._rel_out(out), report=self._rel_out(sidecar_path(out)), status="done",
                              people=info.get("people"), erased=info.get("erased"), ms=info.get("ms"),
                              cache_hit=bool(info.get("cache_hit")),
                              reason="finished an interrupted save" if recovered else None))

    def fail_inflight(self, job: dict[str, Any], reason: str) -> None:
        self.commit(job, {"ok": False, "stage": "erase", "reason": reason})


def _run_local(run: _Run, specs: Iterable[ItemSpec], workers: int, plugins: Sequence[str], stop: threading.Event) -> None:
    """Local engines: ``workers`` processes (inline when 1), at most ``workers + 1`` images in flight."""
    it = iter(specs)
    if workers <= 1:
        for spec in it:
            if stop.is_set():
                return
            job = run.prepare(spec)
            if job is not None:
                run.commit(job, process_item(job))
        return
    window = workers + 1

    def new_pool() -> ProcessPoolExecutor:
        # "spawn": fresh interpreters. Forking a parent whose OpenCV / onnxruntime thread pools already
        # ran can deadlock the children; engines registered at run time come back through ``plugins``.
        import multiprocessing

        return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(tuple(plugins), 1))

    pool = new_pool()
    inflight: dict[Future[dict[str, Any]], dict[str, Any]] = {}
    exhausted = False
    try:
        while True:
            while not exhausted and not stop.is_set() and len(inflight) < window:
                nxt = next(it, None)
                if nxt is None:
                    exhausted = True
                    break
                job = run.prepare(nxt)
                if job is not None:
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
                    run.fail_inflight(job, "the worker process died (out of memory, or a crash in a native library)")
                    continue
                run.commit(job, res)
            if broken:
                for job in list(inflight.values()):
                    run.fail_inflight(job, "the worker process died (out of memory, or a crash in a native library)")
                inflight.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = new_pool()
    except KeyboardInterrupt:
        stop.set()
        # finish (and keep) the images already being worked on; a second Ctrl-C abandons them
        for fut, job in list(inflight.items()):
            try:
                run.commit(job, fut.result())
            except BrokenProcessPool:
                pass
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _preimport_cloud_sdk() -> None:
    """Import the SDK modules the cloud client imports lazily, once, here: several stage threads
    importing them for the first time at the same moment can hit Python's import deadlock detection."""
    for mod in ("requests", "httpx", "dashscope", "dashscope.client.base_api", "dashscope.common.error",
                "dashscope.utils.oss_utils"):
        try:
            importlib.import_module(mod)
        except ImportError:  # pragma: no cover - reported by the engine itself when used
            pass


def _run_cloud(run: _Run, specs: Iterable[ItemSpec], stop: threading.Event, *, threads_per_stage: int = 2) -> None:
    """Cloud engines: a segment stage and an erase stage in threads, overlapping across images.

    Each stage has ``threads_per_stage`` threads, so the next photo's upload happens while the current
    task runs; the per-model limiters keep each model at 1 task in flight and 2 submits/s.
    """
    hooks = _CloudHooks(run.journal)
    _preimport_cloud_sdk()
    with _ENGINES_LOCK:  # cloud clients read the key and base URL when built: build them afresh per run
        for key in [k for k, e in _ENGINES.items() if getattr(e, "needs_network", False)]:
            del _ENGINES[key]
    to_seg: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=threads_per_stage)
    to_erase: queue.Queue[tuple[dict[str, Any], Any] | None] = queue.Queue(maxsize=threads_per_stage)
    results: queue.Queue[tuple[dict[str, Any], dict[str, Any]]] = queue.Queue()

    def seg_worker() -> None:
        from .io import load_image

        while True:
            job = to_seg.get()
            if job is None:
                return
            hooks.bind(job["id"])
            t0 = time.perf_counter()
            try:
                img = load_image(job["src"])
                if img.sha256 != job["sha256"]:
                    raise InputError(f"{job['rel']}: the file changed while the batch was running")
                people, hit, ms = _segment(job, img, hooks)
                job["_pre"] = (img, people, hit, ms)
            except BaseException as exc:  # noqa: BLE001 - recorded as this image's failure
                results.put((job, {"ok": False, "stage": "segment", "reason": _reason(exc),
                                   "ms": round((time.perf_counter() - t0) * 1e3, 1)}))
                continue
            to_erase.put((job, None))

    def erase_worker() -> None:
        while True:
            got = to_erase.get()
            if got is None:
                return
            job = got[0]
            hooks.bind(job["id"])
            results.put((job, process_item(job, hooks, pre=job.pop("_pre"))))

    seg_threads = [threading.Thread(target=seg_worker, name=f"batch-seg-{i}", daemon=True) for i in range(threads_per_stage)]
    erase_threads = [threading.Thread(target=erase_worker, name=f"batch-erase-{i}", daemon=True) for i in range(threads_per_stage)]
    for t in seg_threads + erase_threads:
        t.start()
    inflight = 0
    window = 3 * threads_per_stage + 1
    it = iter(specs)
    exhausted = False
    while True:
        while not exhausted and not stop.is_set() and inflight < window:
            spec = next(it, None)
            if spec is None:
                exhausted = True
                break
            job = run.prepare(spec)
            if job is not None:
                to_seg.put(job)
                inflight += 1
        if inflight == 0:
            break
        job, res = results.get()
        inflight -= 1
        run.commit(job, res)
    for _ in seg_threads:
        to_seg.put(None)
    for t in seg_threads:
        t.join()
    for _ in erase_threads:
        to_erase.put(None)
    for t in erase_threads:
        t.join()


def run_batch(
    source: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    params: BatchParams | None = None,
    resume: bool = False,
    retry_failed: bool = False,
    workers: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    plugins: Sequence[str] = (),
    progress: BatchProgress | None = None,
    stop: threading.Event | None = None,
) -> BatchSummary:
    """Process every image of a folder or manifest into ``output_dir``; see the module docstring.

    Args:
        source: a folder (recursed) or a ``.csv`` / ``.jsonl`` manifest.
        output_dir: where outputs, sidecars, ``summary.json`` and the journal go (created if missing).
        params: what to do (``BatchParams``; default: erase everyone with the local engines).
        resume: continue the run journaled in ``output_dir`` (required when it has one).
        retry_failed: also retry images that failed before (implies ``resume``).
        workers: processes for local engines (default: the number of cores; 1 runs in this process).
        cache_dir: segmentation cache folder (default ``output_dir/.person_erase/segments``).
        plugins: modules to import in every worker (e.g. ones that register engines).
        progress: a ``BatchProgress`` (``TqdmProgress``, ``LogProgress``) or None.
        stop: set it to stop feeding new images (images in flight are finished and recorded).

    Returns:
        The ``BatchSummary`` (also written to ``output_dir/summary.json``).

    Raises:
        InputError: bad folder/manifest, ``output_dir`` equal to the input folder, or an existing
            journal without ``resume``.
    """
    params = params or BatchParams()
    resume = resume or retry_failed
    out_dir = Path(output_dir)
    src = Path(source)
    if src.exists() and src.is_dir() and out_dir.exists() and src.resolve() == out_dir.resolve():
        raise InputError(f"the output folder {out_dir} is the input folder; choose another folder (outputs mirror the inputs)")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: is a file; OUT_DIR must be a folder")
    for mod in plugins:
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            raise InputError(f"cannot import plugin module {mod!r}: {exc}") from None
    plugins = tuple(dict.fromkeys([*plugins, *_engine_modules(params)]))
    specs, non_images, root = discover(src, out_dir)
    outs: dict[str, str] = {}
    for s in specs:
        o = output_path(Path("."), s.rel, params.output_format).as_posix()
        if o in outs:
            raise InputError(f"{s.rel} and {outs[o]} would both be written to {o}; use --format same or rename one")
        outs[o] = s.rel
    out_dir.mkdir(parents=True, exist_ok=True)
    state = out_dir / STATE_DIR
    journal = Journal(state / JOURNAL_NAME)
    try:
        if not resume and journal.count():
            n = journal.count()
            raise InputError(f"{out_dir} already holds a batch journal ({n} images); add --resume to continue it "
                             "(--retry-failed to retry failures too), or choose another output folder")
        cache = Path(cache_dir) if cache_dir is not None else state / "segments"
        prog = progress or _NoProgress()
        run = _Run(root, out_dir, params, journal, cache, resume, retry_failed, prog)
        workers = max(1, int(workers if workers is not None else (os.cpu_count() or 1)))
        stop = stop or threading.Event()
        t0 = time.monotonic()
        interrupted = False
        prog.start(len(specs))
        try:
            if params.cloud:
                _run_cloud(run, specs, stop)
            else:
                _run_local(run, specs, workers, plugins, stop)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            prog.close()
        if stop.is_set():
            interrupted = True
        seconds = time.monotonic() - t0
        items = [run.items[s.rel] for s in specs if s.rel in run.items]
        summary = BatchSummary(
            input_dir=str(src),
            output_dir=str(out_dir),
            total=len(specs),
            done=run.counts["done"],
            failed=run.counts["failed"],
            skipped=run.counts["skipped"],
            non_images=non_images,
            cache_hits=run.cache_hits,
            seconds=round(seconds, 3),
            images_per_s=round(run.counts["done"] / seconds, 4) if seconds > 0 else None,
            pending=len(specs) - len(items),
            interrupted=interrupted,
            engine="cloud pipeline" if params.cloud else f"local, {workers} worker{'s' if workers > 1 else ''}",
            parameters=params.for_item({}),
            items=items,
        )
        _write_text_atomic(out_dir / SUMMARY_NAME, summary.model_dump_json(indent=2))
        if interrupted and not stop.is_set():
            raise KeyboardInterrupt
        return summary
    finally:
        journal.close()


def _engine_modules(params: BatchParams) -> list[str]:
    """Modules that registered the run's engines at run time (imported again in worker processes)."""
    from .erasers import ERASERS
    from .segmenters import SEGMENTERS

    factories = [SEGMENTERS.get(params.segmenter.partition(":")[0]),
                 ERASERS.get(params.eraser if params.mode == "erase" else params.style)]
    mods = []
    for f in factories:
        mod = getattr(f, "__module__", None)
        if mod and mod != "__main__" and not mod.startswith("person_erase.") and mod != "person_erase":
            mods.append(mod)
    return mods


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --- CLI glue ------------------------------------------------------------------------------------


def add_batch_arguments(p: argparse.ArgumentParser) -> None:
    """The ``batch`` subcommand's arguments."""
    p.add_argument("input", metavar="IN", help="a folder of images (recursed) or a manifest .csv/.jsonl "
                   "(columns: path, and optional select, keep, policy per image)")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR",
                   help="output folder: mirrors the input's relative paths; holds summary.json and the journal")
    p.add_argument("--mode", choices=["erase", "redact"], default=None, help="erase (default) or redact; --style implies redact")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--select", metavar="0,2", help="erase these person numbers in every image")
    g.add_argument("--keep", metavar="1", help="keep these person numbers, erase everyone else")
    g.add_argument("--policy", metavar="NAME", help="all (default), largest:N, passersby, passersby+group")
    p.add_argument("--segmenter", default="local", metavar="NAME", help="local (default), dashscope, or a registered name")
    from .cli import add_local_options

    add_local_options(p, privacy_hint=True)
    p.add_argument("--eraser", default="patchmatch", metavar="NAME", help="patchmatch (default), telea, dashscope")
    p.add_argument("--style", default=None, metavar="STYLE", help="redaction style: blur (default), pixelate, solid")
    p.add_argument("--fast", action="store_true", help="quicker, rougher fill (dashscope fast_mode)")
    p.add_argument("--dilate", type=int, metavar="PX", help="grow the erase mask by PX pixels (default scales with the photo)")
    p.add_argument("--metadata", choices=list(METADATA_POLICIES), default=None,
                   help="EXIF/XMP/ICC policy (default keep for erase, strip-gps for redact)")
    p.add_argument("--verify", action="store_true", help="look for people again in each output (reported in the sidecar)")
    p.add_argument("--format", dest="output_format", default="same", metavar="EXT",
                   help="output format: same (default: the input's) or png, jpg, webp, ...")
    p.add_argument("--resume", action="store_true", help="continue the run journaled in OUT_DIR (skips what is done)")
    p.add_argument("--retry-failed", action="store_true", help="like --resume, and retry the images that failed")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes for local engines (default: number of cores); cloud engines use pipelined threads")
    p.add_argument("--cache-dir", metavar="DIR", help="segmentation cache (default OUT_DIR/.person_erase/segments); "
                   "share it between output folders to segment each photo once")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (in every worker), e.g. one that registers extra engines")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or log lines (summary only)")


def params_from_args(args: argparse.Namespace) -> BatchParams:
    """``BatchParams`` from parsed ``batch`` arguments."""
    mode = args.mode or ("redact" if args.style else "erase")
    if mode == "erase" and args.style:
        raise InputError("--style is for redact; use --mode redact (or drop --style)")
    seg_opts: dict[str, Any] = {}
    if args.segmenter == "local":
        if args.quality:
            seg_opts["quality"] = args.quality
        if args.min_score is not None:
            seg_opts["score_threshold"] = args.min_score
    er_opts: dict[str, Any] = {}
    if mode == "erase" and args.eraser == "dashscope":
        er_opts["fast_mode"] = bool(args.fast)
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers must be 1 or more, got {args.workers}")
    return BatchParams(
        mode=mode,
        eraser=args.eraser,
        style=args.style or "blur",
        segmenter=args.segmenter,
        segmenter_options=seg_opts,
        eraser_options=er_opts,
        select=parse_numbers(args.select, what="--select"),
        keep=parse_numbers(args.keep, what="--keep"),
        policy=args.policy,
        dilate=args.dilate,
        metadata=args.metadata,
        verify=bool(args.verify),
        output_format=args.output_format,
    )


def _validate_engines(params: BatchParams) -> None:
    """Unknown engine names fail before any work (without building heavy engines)."""
    from .erasers import ERASERS, REDACT_STYLES
    from .errors import EngineError
    from .segmenters import SEGMENTERS

    name = params.segmenter.partition(":")[0]
    if name not in SEGMENTERS:
        raise EngineError(f"unknown segmenter {params.segmenter!r}; choose one of: {', '.join(sorted(SEGMENTERS))}")
    if params.mode == "erase" and params.eraser not in ERASERS:
        raise EngineError(f"unknown eraser {params.eraser!r}; choose one of: {', '.join(sorted(ERASERS))}")
    if params.mode == "redact" and params.style not in REDACT_STYLES:
        raise SelectionError(f"unknown redaction style {params.style!r}; choose one of: {', '.join(REDACT_STYLES)}")
    if params.cloud:
        from .settings import Settings

        if Settings().dashscope_api_key is None:
            from .cloud.client import MISSING_KEY_HELP

            raise CloudError(MISSING_KEY_HELP, code="MissingApiKey")


def format_summary(summary: BatchSummary, *, max_failures: int = 20) -> str:
    """The end-of-run table (plain text)."""
    rate = f", {summary.images_per_s:.2f} img/s" if summary.images_per_s else ""
    lines = [f"batch: {summary.total} images in {summary.seconds:.1f} s{rate} ({summary.engine}) -> {summary.output_dir}"]
    rows = [
        ("done", summary.done, ""),
        ("skipped", summary.skipped, "already done in an earlier run"),
        ("failed", summary.failed, "see reasons below" if summary.failed else ""),
        ("non-images", summary.non_images, "other files, left alone"),
        ("cache hits", summary.cache_hits, "segmentations reused"),
    ]
    if summary.pending:
        rows.append(("not started", summary.pending, "interrupted: rerun with --resume"))
    w = max(len(r[0]) for r in rows)
    for name, n, note in rows:
        lines.append(f"  {name.ljust(w)}  {n:>6}  {note}".rstrip())
    failed = [it for it in summary.items if it.status == "failed"]
    if failed:
        lines.append("failed:")
        for it in failed[:max_failures]:
            lines.append(f"  {it.input}  [{it.stage or '?'}] {it.reason}")
        if len(failed) > max_failures:
            lines.append(f"  ... and {len(failed) - max_failures} more (all in summary.json)")
        lines.append("rerun with --retry-failed to retry them")
    lines.append(f"summary: {Path(summary.output_dir) / SUMMARY_NAME}")
    return "\n".join(lines)


def run_batch_cli(args: argparse.Namespace) -> int:
    """Run ``person-erase batch``: 0 when every image is done (or skipped), 1 when any failed, 130 on Ctrl-C."""
    params = params_from_args(args)
    for mod in args.plugin:
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            raise InputError(f"cannot import plugin module {mod!r}: {exc}") from None
    _validate_engines(params)
    quiet = getattr(args, "quiet", False) or args.no_progress
    progress: BatchProgress
    if quiet:
        progress = _NoProgress()
    elif sys.stderr.isatty():
        progress = TqdmProgress()
    else:
        progress = LogProgress()
    try:
        summary = run_batch(args.input, args.output, params=params, resume=args.resume, retry_failed=args.retry_failed,
                            workers=args.workers, cache_dir=args.cache_dir, plugins=args.plugin, progress=progress)
    except KeyboardInterrupt:
        print("interrupted: finished images are kept; rerun with --resume to continue", file=sys.stderr)
        return 130
    print(format_summary(summary))
    return 1 if summary.failed else 0


def iter_items(summary: BatchSummary, status: str) -> Iterator[BatchItem]:
    """Items of a summary with the given status."""
    return (it for it in summary.items if it.status == status)
