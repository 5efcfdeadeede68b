"""Output files: the one atomic write of the package, output-path checks, stale temporary files.

:func:`atomic_write` fills a temporary file in the same folder, flushes and fsyncs it, gives it the
usual permissions (0666 minus umask, or those of the file it replaces) and renames it over the target.
On any failure the temporary file is removed and the target is untouched. A file that is checked before
it may replace the target (a downloaded model) is made with :func:`temp_file` and moved with
:func:`publish`, the same two halves.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..errors import InputError

#: Output extension -> PIL format.
SAVE_FORMATS: dict[str, str] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


#: ``save_image`` writes ``.pe-<8 random>.tmp`` next to the output, then renames it: a short name whatever
#: the output is called (a 250-character output name still fits). Such files older than
#: ``STALE_TEMP_S`` (a write killed half-way) are removed by the next save to that folder, with those of
#: earlier versions (``.<output name>.<8 random>.tmp``).
TEMP_PREFIX = ".pe-"
STALE_TEMP_S = 900.0
_TEMP_NAMES = re.compile(r"^(\.pe-[A-Za-z0-9_]{8}|\..+\.(?:" + "|".join(sorted(e.lstrip(".") for e in SAVE_FORMATS))
                         + r")\.[A-Za-z0-9_]{8})\.tmp$", re.IGNORECASE)
_SWEPT: set[str] = set()


def remove_stale_temps(folder: str | os.PathLike[str], *, older_than_s: float = STALE_TEMP_S) -> list[Path]:
    """Remove our temporary files in ``folder`` (by their name pattern) older than ``older_than_s``.

    Files being written by another save right now are young and stay. Returns what was removed.
    """
    import time

    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        if not _TEMP_NAMES.match(e.name):
            continue
        try:
            if not e.is_file(follow_symlinks=False) or now - e.stat(follow_symlinks=False).st_mtime < older_than_s:
                continue
            os.unlink(e.path)
            removed.append(Path(e.path))
        except OSError:
            continue
    return removed


def _sweep_once(folder: Path) -> None:
    key = os.path.abspath(folder)
    if key not in _SWEPT:  # once per folder and process: a batch saves thousands of files into one folder
        _SWEPT.add(key)
        remove_stale_temps(folder)


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def output_format(path: Path) -> str:
    """The PIL format that ``path``'s extension names (``SAVE_FORMATS``).

    Raises:
        InputError: an extension we do not write (or none).
    """
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unknown output format {path.suffix or '(no extension)'!r}; "
                         f"end the name with one of {', '.join(sorted(SAVE_FORMATS))}")
    return fmt


def _folder(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _check_name_fits(path: Path, folder: Path) -> None:
    limit = _name_max(folder)
    if len(path.name.encode()) > limit:
        raise InputError(f"{path.name[:40]}…: the file name is {len(path.name.encode())} bytes; the folder {folder} "
                         f"allows {limit}; choose a shorter name")


def _not_writable(path: Path, folder: Path, exc: OSError) -> InputError:
    return InputError(f"{path}: the folder {folder} is not writable ({exc.strerror or exc}); "
                      "choose another output folder")


def check_output_path(out: str | os.PathLike[str], *, input_path: str | os.PathLike[str] | None = None,
                      overwrite: bool = False) -> Path:
    """Validate an image output path before any heavy work; returns it as a ``Path``.

    Checks: the extension names a format we write (``SAVE_FORMATS``), then :func:`check_output_file`.

    Raises:
        InputError: one line naming the problem and what to do.
    """
    path = Path(out)
    output_format(path)
    return check_output_file(path, input_path=input_path, overwrite=overwrite)


def check_output_file(out: str | os.PathLike[str], *, input_path: str | os.PathLike[str] | None = None,
                      overwrite: bool = False, example: str = "out.jpg") -> Path:
    """Validate the path of any output file (image, report, mask) before any heavy work.

    Checks: the folder exists, is a folder and is writable (really tried: a nameless temporary file is
    created and removed); the name fits the folder's limit; the output is not a folder (``example``
    names a file to suggest instead); it is not the input file (same resolved path, or the same file
    through a link) unless ``overwrite``.

    Raises:
        InputError: one line naming the problem and what to do.
    """
    path = Path(out)
    folder = _folder(path)
    if not folder.exists():
        raise InputError(f"{path}: the folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise InputError(f"{path}: {folder} is a file, not a folder; choose another output path")
    _check_name_fits(path, folder)  # before anything stats the path (that fails with "File name too long")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name such as {path / example}")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise _not_writable(path, folder, exc) from None
    if input_path is not None and not overwrite and _same_file(path, Path(input_path)):
        raise InputError(f"{path}: refusing to overwrite the input {input_path}; "
                         "pass `overwrite=True` or choose another output path", param="overwrite")
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


class _TempFileError(OSError):
    """The temporary file next to the target could not be created (the folder is not writable)."""


def temp_file(folder: str | os.PathLike[str], *, prefix: str = TEMP_PREFIX, suffix: str = ".tmp") -> tuple[int, Path]:
    """A new temporary file in ``folder`` (open descriptor, path), for :func:`publish` to move into place.

    Raises:
        OSError: a subclass of it when the file cannot be created (the folder is missing or not writable).
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    except OSError as exc:
        raise _TempFileError(exc.errno, exc.strerror, exc.filename) from None
    return fd, Path(tmp)


def publish(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Move a finished temporary file (:func:`temp_file`, same folder) over ``path``: fsynced, given the
    usual permissions (:func:`file_mode`), renamed. ``tmp`` is left where it is if this raises."""
    out = Path(path)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, file_mode(out))
    os.replace(tmp, out)
    return out


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Write a file atomically: ``write(fh)`` fills a temp file in the same folder, which is flushed,
    fsynced, given the usual permissions (0666 minus umask, or those of the file it replaces) and
    renamed over ``path``. On any failure the temp file is removed and ``path`` is untouched.

    The one atomic write of the package (images, label maps, masks, reports, batch summaries,
    segmentation cache entries, the model store's index).

    Raises:
        OSError: the write failed (a subclass, when the temp file could not even be created).
    """
    out = Path(path)
    folder = _folder(out)
    _sweep_once(folder)
    # a short temp name: any output name that fits the folder also fits while it is written
    fd, tmp = temp_file(folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        publish(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def file_mode(path: str | os.PathLike[str]) -> int:
    """The permissions a new file at ``path`` gets: those of the file it replaces, else 0666 minus umask."""
    try:
        return Path(path).stat().st_mode & 0o7777
    except OSError:
        pass
    umask = None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                umask = int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    if umask is None:
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask
