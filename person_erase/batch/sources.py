"""Where the images come from: a folder (walked recursively) or a manifest (CSV / JSONL).

Every image becomes an ``ItemSpec``: its location, its path relative to the input root (mirrored under
OUT_DIR) and its own choice of people, if the manifest gives one. Folders may be local paths or
filesystem URIs pyarrow understands (``s3://bucket/prefix``, ``file:///…``; see ``storage``).
"""

from __future__ import annotations

import csv
import io as _io
import json
import os
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from ..errors import InputError, SelectionError
from ..io import SAVE_FORMATS
from .params import Choice, check_choice, parse_numbers
from .storage import Storage, open_storage

#: File name extensions treated as images (the formats person_erase reads and writes).
IMAGE_EXTENSIONS = tuple(sorted(SAVE_FORMATS))
#: Manifest columns understood (``path`` is required).
MANIFEST_COLUMNS = ("path", "select", "keep", "policy")


@dataclass(frozen=True)
class ItemSpec:
    """One image to process: where it is, its path relative to the input root, its choice of people."""

    src: str
    rel: str
    choice: Choice = field(default_factory=Choice)


def is_image_name(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in SAVE_FORMATS


@dataclass(frozen=True)
class Discovered:
    """What ``discover`` found: the images, the number of other files, and the input's storage."""

    items: list[ItemSpec]
    non_images: int
    root: Storage


def discover(source: str | os.PathLike[str] | Storage,
             output_dir: str | os.PathLike[str] | Storage | None = None) -> Discovered:
    """The images to process from a folder or a manifest.

    A folder is walked recursively in sorted order; hidden folders (``.git``, our own ``.person_erase``)
    and ``output_dir`` (when it lies inside the folder) are not entered; symlinked folders are not
    followed. Files whose extension is not an image format count as non-images.

    Raises:
        InputError: missing input, an unsupported manifest, or a manifest row that is invalid.
    """
    store = open_storage(source, param="source")
    kind = store.kind("")
    if kind == "missing":
        raise InputError(
            f"{store.display()}: no such folder or manifest; give a folder of images or a .csv/.jsonl manifest"
        )
    if kind == "file":
        name = store.display()
        suffix = PurePosixPath(name).suffix.lower()
        parent = store.parent()
        if suffix in (".csv", ".jsonl"):
            return Discovered(read_manifest(store), 0, parent)
        if is_image_name(name):
            raise InputError(f"{name}: is one image; use 'person-erase erase' for a single photo, or give its folder")
        raise InputError(f"{name}: not a folder or a manifest; a manifest must end in .csv or .jsonl")
    skip = open_storage(output_dir, param="output_dir") if output_dir is not None else None
    items: list[ItemSpec] = []
    non_images = 0
    for rel in store.walk(skip=skip):
        name = rel.rsplit("/", 1)[-1]
        if is_image_name(name) and not name.startswith("."):
            items.append(ItemSpec(src=rel, rel=rel))
        else:
            non_images += 1
    return Discovered(items, non_images, store)


def _safe_rel(text: str, *, where: str) -> str:
    """A manifest path as a clean relative POSIX path; refuses absolute paths and ``..``."""
    raw = str(text).strip()
    if not raw:
        raise InputError(f"{where}: empty path")
    p = PurePosixPath(raw.replace("\\", "/"))
    if p.is_absolute() or raw.startswith(("/", "\\")) or (len(raw) > 1 and raw[1] == ":"):
        raise InputError(
            f"{where}: {raw!r} is an absolute path; manifest paths must be relative to the manifest's folder "
            "(outputs mirror them under OUT_DIR)"
        )
    if any(part == ".." for part in p.parts):
        raise InputError(f"{where}: {raw!r} contains '..'; manifest paths must stay inside the manifest's folder")
    parts = [x for x in p.parts if x not in (".", "")]
    if not parts:
        raise InputError(f"{where}: {raw!r} is not a file path")
    return "/".join(parts)


def read_manifest(path: str | os.PathLike[str] | Storage) -> list[ItemSpec]:
    """Rows of a CSV (header row with ``path`` and optional ``select``, ``keep``, ``policy``) or JSONL manifest.

    Paths are relative to the manifest's folder. ``select``/``keep`` take ``"0,2"`` (CSV) or ``[0, 2]`` (JSONL).

    Raises:
        InputError / SelectionError: naming the line that is wrong.
    """
    store = path if isinstance(path, Storage) else open_storage(path, param="source")
    mpath = store.display()
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        text = store.read_bytes("").decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{mpath}: cannot read the manifest ({exc})") from None
    if PurePosixPath(mpath).suffix.lower() == ".csv":
        reader = csv.DictReader(_io.StringIO(text))
        cols = [c.strip() for c in (reader.fieldnames or [])]
        if "path" not in cols:
            raise InputError(
                f"{mpath}: the CSV manifest needs a header row with a 'path' column (and optional select, keep, policy)"
            )
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
                raise InputError(
                    f"{mpath}:{lineno}: unknown field {unknown[0]!r}; the fields are {', '.join(MANIFEST_COLUMNS)}"
                )
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
        if not is_image_name(rel):
            raise InputError(f"{where}: {rel!r} does not end in an image extension ({', '.join(IMAGE_EXTENSIONS)})")
        try:
            sel = parse_numbers(rec.get("select"), what="select")
            kp = parse_numbers(rec.get("keep"), what="keep")
        except SelectionError as exc:
            raise SelectionError(f"{where}: {exc}") from None
        pol = rec.get("policy")
        policy = str(pol).strip() if pol not in (None, "") else None
        check_choice(sel, kp, policy, where=where)
        items.append(ItemSpec(src=rel, rel=rel, choice=Choice(select=sel, keep=kp, policy=policy)))
    return items

