"""Folders the batch reads and writes: the local disk, or any filesystem pyarrow understands.

``open_storage("photos/")`` or ``open_storage("s3://bucket/prefix")`` gives a ``Storage``: a root
plus operations on paths relative to it (POSIX ``a/b.jpg``). Two kinds:

* ``LocalStorage`` — a local folder (or ``file://`` URI). Outputs are never written through symbolic
  links and folders are created one level at a time, so nothing lands outside OUT_DIR.
* ``ArrowStorage`` — a ``pyarrow.fs`` filesystem (``s3://``, ``gs://``, ``hdfs://`` …; pyarrow's own
  URI options work, e.g. ``s3://b/p?endpoint_override=127.0.0.1:9000&scheme=http``; credentials come
  from the usual environment variables such as ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``).
  Object stores have no rename: an output is uploaded under a temporary key (visible only once its
  upload completed) and then moved (server-side copy + delete), so the final key is either absent or
  complete.

Both are picklable: workers in other processes (or on other machines, for Ray) open the same files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from ..errors import InputError

Kind = Literal["file", "dir", "missing"]
_CHUNK = 1 << 20


def is_uri(text: str) -> bool:
    """True for ``scheme://…`` (one letter before ``:`` is a Windows drive, not a scheme)."""
    head, sep, _ = text.partition("://")
    return bool(sep) and len(head) > 1 and head.replace("+", "").replace("-", "").isalnum()


def open_storage(location: str | os.PathLike[str] | Storage | None, *, param: str = "path") -> Storage:
    """A ``Storage`` for a local path, a ``file://`` URI or a pyarrow filesystem URI.

    Raises:
        InputError: a URI pyarrow cannot open (unknown scheme, missing filesystem support).
    """
    if isinstance(location, Storage):
        return location
    if location is None:
        raise InputError(f"{param}: no location given")
    text = os.fspath(location)
    if not isinstance(text, str) or not is_uri(text):
        return LocalStorage(Path(text))
    try:
        import pyarrow.fs as pafs
    except ImportError:  # pragma: no cover - pyarrow comes with the ray extra
        raise InputError(f"{text}: filesystem URIs need pyarrow (pip install 'person_erase[ray]')") from None
    try:
        fs, path = pafs.FileSystem.from_uri(text)
    except (ValueError, OSError) as exc:  # pyarrow raises ArrowInvalid (a ValueError) / ArrowIOError
        raise InputError(f"{_strip_query(text)}: cannot open this location ({' '.join(str(exc).split())})") from None
    if isinstance(fs, pafs.LocalFileSystem):
        return LocalStorage(Path(path))
    return ArrowStorage(fs, path.rstrip("/"), display_uri=_strip_query(text).rstrip("/"))


def _strip_query(uri: str) -> str:
    """The URI without its ``?…`` options (which may hold settings the user did not mean to print)."""
    return uri.split("?", 1)[0]


def _join(base: str, rel: str) -> str:
    if not rel:
        return base
    return f"{base}/{rel}" if base else rel


class Storage:
    """A folder (or one file, for a manifest) plus operations on paths relative to it."""

    def display(self, rel: str = "") -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def kind(self, rel: str) -> Kind:  # pragma: no cover - interface
        raise NotImplementedError

    def parent(self) -> Storage:  # pragma: no cover - interface
        raise NotImplementedError

    def walk(self, *, skip: Storage | None = None) -> Iterator[str]:  # pragma: no cover - interface
        """Relative paths of every file below, sorted; hidden folders and ``skip`` are not entered."""
        raise NotImplementedError

    def same_place(self, other: Storage) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def open_read(self, rel: str) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def read_bytes(self, rel: str) -> bytes:
        with self.open_read(rel) as fh:
            return bytes(fh.read())

    def sha256(self, rel: str) -> str:
        h = hashlib.sha256()
        with self.open_read(rel) as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                h.update(chunk)
        return h.hexdigest()

    def local_path(self, rel: str) -> Path | None:
        """The file on this machine's disk, or None when it lives elsewhere."""
        return None

    def exists(self, rel: str) -> bool:
        return self.kind(rel) == "file"

    def make_parents(self, rel: str, *, item: str) -> None:  # pragma: no cover - interface
        """Create the folders ``rel`` needs (nothing outside the root, never through links)."""
        raise NotImplementedError

    def upload(self, local: Path, rel: str) -> None:  # pragma: no cover - interface
        """Copy the local file ``local`` to ``rel`` (complete or absent, never half-written)."""
        raise NotImplementedError

    def download(self, rel: str, local: Path) -> None:
        with self.open_read(rel) as src, open(local, "wb") as dst:
            shutil.copyfileobj(src, dst, _CHUNK)

    def move(self, src: str, dst: str) -> None:  # pragma: no cover - interface
        """Rename ``src`` to ``dst`` (replacing it); on object stores a server-side copy + delete."""
        raise NotImplementedError

    def delete(self, rel: str) -> None:  # pragma: no cover - interface
        """Remove a file if it is there."""
        raise NotImplementedError

    def walk_all(self) -> Iterator[str]:  # pragma: no cover - interface
        """Every file below, hidden ones included (to sweep temporary files)."""
        raise NotImplementedError

    def list_files(self, rel_dir: str) -> list[str]:  # pragma: no cover - interface
        """Names of the files directly in ``rel_dir`` (empty when it does not exist)."""
        raise NotImplementedError

    def write_text(self, rel: str, text: str) -> None:  # pragma: no cover - interface
        """Write a small text file atomically."""
        raise NotImplementedError


class LocalStorage(Storage):
    """A folder (or file) on this machine."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalStorage) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    def path(self, rel: str = "") -> Path:
        return self.root / rel if rel else self.root

    def display(self, rel: str = "") -> str:
        return str(self.path(rel))

    def kind(self, rel: str) -> Kind:
        p = self.path(rel)
        if p.is_file():
            return "file"
        if p.is_dir():
            return "dir"
        return "missing" if not p.exists() else "file"

    def parent(self) -> Storage:
        return LocalStorage(self.root.parent)

    def same_place(self, other: Storage) -> bool:
        return isinstance(other, LocalStorage) and self.root.exists() and other.root.exists() and \
            self.root.resolve() == other.root.resolve()

    def walk(self, *, skip: Storage | None = None) -> Iterator[str]:
        skip_dir = skip.root.resolve() if isinstance(skip, LocalStorage) else None
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames
                                 if not d.startswith(".") and (skip_dir is None or (here / d).resolve() != skip_dir))
            for name in sorted(filenames):
                yield (here / name).relative_to(self.root).as_posix()

    def open_read(self, rel: str) -> Any:
        return open(self.path(rel), "rb")

    def local_path(self, rel: str) -> Path | None:
        return self.path(rel)

    def make_parents(self, rel: str, *, item: str) -> None:
        """Create ``rel``'s folders one level at a time, refusing links: nothing is created outside the root.

        Raises:
            InputError: a folder on the way (or the file itself) is a symbolic link, or not a folder.
        """
        here = self.root
        parts = PurePosixPath(rel).parts
        for part in parts[:-1]:
            here = here / part
            if here.is_symlink():
                raise InputError(f"{item}: {here} is a symbolic link; outputs are never written through links "
                                 "(it could lead outside OUT_DIR)")
            if here.exists() and not here.is_dir():
                raise InputError(f"{item}: {here} is a file, so the output folder cannot be created")
            here.mkdir(exist_ok=True)
        out = self.path(rel)
        if out.is_symlink():
            raise InputError(f"{item}: the output {out} is a symbolic link; refusing to write through it "
                             "(it could lead outside OUT_DIR)")

    def walk_all(self) -> Iterator[str]:
        """Every file below, hidden ones included, except our state folder (to sweep temporary files)."""
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if d != ".person_erase")
            here = Path(dirpath)
            for name in filenames:
                yield (here / name).relative_to(self.root).as_posix()

    def upload(self, local: Path, rel: str) -> None:
        if Path(local) != self.path(rel):
            os.replace(local, self.path(rel))

    def move(self, src: str, dst: str) -> None:
        os.replace(self.path(src), self.path(dst))

    def delete(self, rel: str) -> None:
        self.path(rel).unlink(missing_ok=True)

    def list_files(self, rel_dir: str) -> list[str]:
        d = self.path(rel_dir)
        try:
            return sorted(e.name for e in os.scandir(d) if e.is_file(follow_symlinks=False))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def write_text(self, rel: str, text: str) -> None:
        from ..io import atomic_write

        atomic_write(self.path(rel), lambda fh: fh.write(text.encode()))


class ArrowStorage(Storage):
    """A folder on a ``pyarrow.fs`` filesystem (S3, GCS, HDFS …)."""

    def __init__(self, fs: Any, base: str, *, display_uri: str) -> None:
        self.fs, self.base, self.uri = fs, base, display_uri

    def __repr__(self) -> str:
        return f"ArrowStorage({self.uri!r})"

    def _p(self, rel: str) -> str:
        return _join(self.base, rel)

    def display(self, rel: str = "") -> str:
        return _join(self.uri, rel) if rel else self.uri

    def _info(self, rel: str) -> Any:
        try:
            return self.fs.get_file_info(self._p(rel))
        except OSError as exc:
            raise InputError(f"{self.display(rel)}: cannot reach the store ({' '.join(str(exc).split())})") from None

    def kind(self, rel: str) -> Kind:
        import pyarrow.fs as pafs

        t = self._info(rel).type
        if t == pafs.FileType.File:
            return "file"
        if t == pafs.FileType.Directory:
            return "dir"
        return "missing"

    def parent(self) -> Storage:
        return ArrowStorage(self.fs, self.base.rsplit("/", 1)[0] if "/" in self.base else "",
                            display_uri=self.uri.rsplit("/", 1)[0])

    def same_place(self, other: Storage) -> bool:
        return isinstance(other, ArrowStorage) and other.uri == self.uri

    def walk(self, *, skip: Storage | None = None) -> Iterator[str]:
        import pyarrow.fs as pafs

        skip_base = skip.base if isinstance(skip, ArrowStorage) and skip.fs.type_name == self.fs.type_name else None
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.base, recursive=True))
        except OSError as exc:
            raise InputError(f"{self.uri}: cannot list the folder ({' '.join(str(exc).split())})") from None
        out = []
        prefix = self.base + "/" if self.base else ""
        for info in infos:
            if info.type != pafs.FileType.File:
                continue
            rel = info.path[len(prefix):] if info.path.startswith(prefix) else info.path
            parts = rel.split("/")
            if any(p.startswith(".") for p in parts[:-1]):
                continue
            if skip_base is not None and (info.path + "/").startswith(skip_base.rstrip("/") + "/"):
                continue
            out.append(rel)
        yield from sorted(out)

    def open_read(self, rel: str) -> Any:
        try:
            return self.fs.open_input_stream(self._p(rel))
        except OSError as exc:
            raise InputError(f"{self.display(rel)}: cannot read ({' '.join(str(exc).split())})") from None

    def make_parents(self, rel: str, *, item: str) -> None:
        parent = rel.rsplit("/", 1)[0] if "/" in rel else ""
        try:
            self.fs.create_dir(self._p(parent), recursive=True)
        except OSError as exc:
            raise InputError(f"{item}: cannot create {self.display(parent)} ({' '.join(str(exc).split())})") from None

    def upload(self, local: Path, rel: str) -> None:
        with open(local, "rb") as src, self.fs.open_output_stream(self._p(rel)) as dst:
            shutil.copyfileobj(src, dst, _CHUNK)

    def move(self, src: str, dst: str) -> None:
        self.fs.move(self._p(src), self._p(dst))

    def delete(self, rel: str) -> None:
        try:
            self.fs.delete_file(self._p(rel))
        except FileNotFoundError:
            pass

    def list_files(self, rel_dir: str) -> list[str]:
        import pyarrow.fs as pafs

        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self._p(rel_dir), allow_not_found=True, recursive=False))
        except OSError:
            return []
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.File)

    def walk_all(self) -> Iterator[str]:
        """Every file below, hidden ones included (to sweep temporary keys)."""
        import pyarrow.fs as pafs

        prefix = self.base + "/" if self.base else ""
        infos = self.fs.get_file_info(pafs.FileSelector(self.base, allow_not_found=True, recursive=True))
        for info in infos:
            if info.type == pafs.FileType.File:
                rel = info.path[len(prefix):] if info.path.startswith(prefix) else info.path
                if not rel.startswith(".person_erase/"):
                    yield rel

    def write_text(self, rel: str, text: str) -> None:
        # not io.atomic_write: an object store shows the key only once the stream is closed (and has no rename)
        with self.fs.open_output_stream(self._p(rel)) as dst:
            dst.write(text.encode())
