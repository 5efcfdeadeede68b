"""Where a batch writes: outputs mirror the inputs' relative paths, a sidecar per output, short temp names.

``photos/x/p.jpg`` → ``OUT_DIR/x/p.jpg`` (extension changed by ``output_format``), its report
``OUT_DIR/x/p.jpg.json``, both written first under temporary names in the same folder —
``.pe-<item id>.part.<ext>`` and ``.pe-<item id>.part.json`` — then renamed into place. Temporary names
are short and do not grow with the output's name, so an output whose name fits the folder's limit
also fits while being written; ``check_name`` refuses, before any work, a name that does not fit with
its sidecar. ``OUT_DIR/.person_erase/`` holds the journal, the lock and the segmentation cache (for
a remote OUT_DIR they live in a local state folder instead, see ``state_dir_for``).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path, PurePosixPath

from ..errors import InputError
from .storage import LocalStorage, Storage

STATE_DIR = ".person_erase"
JOURNAL_NAME = "journal.sqlite"
LOCK_NAME = "lock"
SUMMARY_NAME = "summary.json"
SIDECAR_SUFFIX = ".json"
#: Names the batch uses for its temporary files (and those of earlier versions, which a resumed run also
#: removes): ``.pe-<12 hex>.part.<ext>`` / ``.pe-<12 hex>.part.json``; ``save_image``'s own ``.pe-…tmp``;
#: the former ``.<name>.<12 hex>.part.<ext>`` and their ``..<name>.<12 hex>.part.<ext>.<random>.tmp``.
TEMP_PATTERNS = (
    re.compile(r"^\.pe-[0-9a-f]{12}\.part(\.[A-Za-z0-9]+)?$"),
    re.compile(r"^\.pe-[A-Za-z0-9_-]+\.tmp$"),
    re.compile(r"^\..+\.[0-9a-f]{12}\.part(\.[A-Za-z0-9]+)$"),
    re.compile(r"^\.\..+\.[0-9a-f]{12}\.part\.[A-Za-z0-9]+\..+\.tmp$"),
)
NAME_MAX = 255


def output_rel(rel: str, output_format: str) -> str:
    """``rel`` under OUT_DIR, with the extension changed when ``output_format`` is not ``same``."""
    if output_format == "same":
        return rel
    return PurePosixPath(rel).with_suffix(f".{output_format}").as_posix()


def output_path(out_dir: Path, rel: str, output_format: str) -> Path:
    """``OUT_DIR/rel`` as a local path (see ``output_rel``)."""
    return Path(out_dir) / output_rel(rel, output_format)


def sidecar_rel(out_rel: str) -> str:
    """Report sidecar of an output: ``photo.jpg`` → ``photo.jpg.json``."""
    return out_rel + SIDECAR_SUFFIX


def sidecar_path(out: Path) -> Path:
    return out.with_name(out.name + SIDECAR_SUFFIX)


def _folder(rel: str) -> str:
    return rel.rsplit("/", 1)[0] if "/" in rel else ""


def tmp_rels(out_rel: str, item_id: str) -> tuple[str, str]:
    """Temporary names of an item's output and sidecar (same folder as the output)."""
    folder = _folder(out_rel)
    token = item_id[:12]
    suffix = PurePosixPath(out_rel).suffix
    names = (f".pe-{token}.part{suffix}", f".pe-{token}.part{SIDECAR_SUFFIX}")
    return tuple(f"{folder}/{n}" if folder else n for n in names)  # type: ignore[return-value]


def is_temp_name(name: str) -> bool:
    return any(p.match(name) for p in TEMP_PATTERNS)


def name_limit(dst: Storage, out_rel: str) -> int:
    """The longest file name the output's folder takes (bytes); 255 where it cannot be asked."""
    if isinstance(dst, LocalStorage):
        probe = dst.path(_folder(out_rel))
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            return int(os.pathconf(probe, "PC_NAME_MAX"))
        except (OSError, ValueError, AttributeError):
            return NAME_MAX
    return NAME_MAX


def check_name(dst: Storage, out_rel: str, *, item: str) -> None:
    """Refuse, before any work, an output whose name (with its sidecar's ``.json``) does not fit its folder.

    Raises:
        InputError: naming the length and the limit.
    """
    name = PurePosixPath(out_rel).name
    need = len((name + SIDECAR_SUFFIX).encode())
    limit = name_limit(dst, out_rel)
    if need > limit:
        raise InputError(f"{item}: the output name is {len(name.encode())} bytes and its report {need}; "
                         f"the folder allows {limit}; shorten the file name")


def remove_item_temps(dst: Storage, out_rel: str, item_id: str) -> None:
    """Remove one item's temporary files (a killed or failed attempt's)."""
    for rel in tmp_rels(out_rel, item_id):
        dst.delete(rel)


def sweep_temps(dst: Storage, *, protect: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Remove every temporary file of ours below OUT_DIR (not the state folder), except ``protect``.

    Only safe while no other batch writes there (the OUT_DIR lock). Returns the removed paths.
    """
    removed = []
    for rel in dst.walk_all():
        if rel in protect or not is_temp_name(PurePosixPath(rel).name):
            continue
        dst.delete(rel)
        removed.append(rel)
    return removed


def state_dir_for(dst: Storage, state_dir: str | os.PathLike[str] | None) -> Path:
    """The local folder of the journal, lock and cache: ``OUT_DIR/.person_erase`` for a local OUT_DIR;
    for a remote one ``state_dir`` or ``$XDG_STATE_HOME/person_erase/batch/<digest of OUT_DIR>``.
    The journal stays with the driver: resume a remote run from the same machine (or pass the same
    ``state_dir``)."""
    if state_dir is not None:
        return Path(state_dir)
    if isinstance(dst, LocalStorage):
        return dst.root / STATE_DIR
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "person_erase" / "batch" / hashlib.sha256(dst.display().encode()).hexdigest()[:16]
