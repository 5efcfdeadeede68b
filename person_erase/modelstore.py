"""The model store: user-supplied ONNX files registered under a name (``models add NAME FILE_OR_URL``).

Where: ``$PERSON_ERASE_MODELS`` if set, else ``<platformdirs user data dir>/person_erase/models``. The
store is a folder with ``models.json`` (the index) and the files it holds. A registered name works
wherever an engine name does (``eraser="mylama"``, ``segmenter="people"``).

* A **local file** is referenced in place (``copy=False``, the default) or copied into the store.
* A **URL** is fetched only by :func:`add_model` — nothing else in person_erase ever downloads. https
  only (plain http only to a loopback address, for tests), redirects checked the same way, at most
  ``max_bytes``, streamed into a temporary file in the store, sha256-checked when one is given,
  contract-checked, then moved into place with one rename. An interrupted or refused download leaves
  nothing behind (no file, no index entry).
* Every file is checked against the engine families' tensor contracts (:mod:`.onnxmodel`) before it
  is registered; the family decides whether the name is an eraser or a segmenter.
* At use time the file's sha256 must still be the recorded one.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from .errors import EngineError, InputError
from .io import atomic_write, publish, temp_file
from .onnxmodel import FAMILIES, FamilyFit, check_file, describe_fits, forget, model_file, sha256_file

INDEX = "models.json"
#: default download cap (the common LaMa export is 208 MB)
DEFAULT_MAX_BYTES = 2 * 1024**3
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SHA_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class StoredModel:
    """One registered model.

    Attributes:
        name: the name it is used by.
        family: ``lama``, ``migan`` or ``yolo-seg``.
        kind: ``eraser`` or ``segmenter``.
        path: absolute path of the file.
        stored: True when the file lives in the store (downloaded or copied), False when referenced in place.
        size, sha256: of the file when it was added.
        source: the path or URL it came from.
        added: UTC time it was added (ISO 8601).
    """

    name: str
    family: str
    kind: str
    path: str
    stored: bool
    size: int
    sha256: str
    source: str
    added: str


def store_dir() -> Path:
    """The store folder: ``$PERSON_ERASE_MODELS`` or the platform's user data dir (not created here)."""
    from .settings import get_settings

    configured = get_settings().models
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("person_erase", appauthor=False)) / "models"


def _store(store: str | os.PathLike[str] | None) -> Path:
    return Path(store).expanduser() if store is not None else store_dir()


def _read_index(folder: Path) -> dict[str, dict[str, Any]]:
    p = folder / INDEX
    if not p.exists():
        return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        models = data["models"]
        if not isinstance(models, dict):
            raise TypeError("models is not an object")
        return models
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"the model store index {p} is unreadable ({exc}); fix or delete it") from None


def _write_index(folder: Path, models: dict[str, dict[str, Any]]) -> None:
    text = json.dumps({"version": 1, "models": dict(sorted(models.items()))}, indent=2) + "\n"
    atomic_write(folder / INDEX, lambda fh: fh.write(text.encode("utf-8")))


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Serialise read-modify-write of the index between processes (POSIX; a no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(folder / ".lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def list_models(store: str | os.PathLike[str] | None = None) -> list[StoredModel]:
    """Every registered model, by name."""
    folder = _store(store)
    return [_entry(name, e) for name, e in sorted(_read_index(folder).items())]


def _entry(name: str, e: dict[str, Any]) -> StoredModel:
    try:
        return StoredModel(name=name, **{k: e[k] for k in ("family", "kind", "path", "stored", "size", "sha256",
                                                             "source", "added")})
    except KeyError as exc:
        raise InputError(f"the model store entry {name!r} lacks {exc}; remove it and add the model again") from None


def get_model(name: str, store: str | os.PathLike[str] | None = None) -> StoredModel | None:
    """The registered model called ``name``, or None. A missing store is an empty one."""
    if not NAME_RE.match(name):
        return None
    folder = _store(store)
    e = _read_index(folder).get(name)
    return None if e is None else _entry(name, e)


def file_status(m: StoredModel) -> str:
    """``ok``, ``missing`` or ``changed`` (size differs from the recorded one; the hash is checked at use)."""
    p = Path(m.path)
    if not p.is_file():
        return "missing"
    return "ok" if p.stat().st_size == m.size else "changed"


def verify_file(m: StoredModel) -> Path:
    """The model's file after checking it is still the one registered (size and sha256).

    Raises:
        EngineError: the file is gone or changed.
    """
    p = Path(m.path)
    if not p.is_file():
        raise EngineError(f"model {m.name!r}: its file {p} is missing; add it again to the model store")
    info = model_file(p)
    if info.size != m.size or info.sha256 != m.sha256:
        raise EngineError(f"model {m.name!r}: {p} changed since it was added (sha256 {info.sha256[:12]}…, "
                          f"recorded {m.sha256[:12]}…); add it again if the new file is intended")
    return p


def lookup(text: str, registry: Any) -> tuple[Any, StoredModel] | None:
    """A model-store name used where an engine name goes: ``(the family's EngineSpec, the entry)``.

    None when ``text`` is an engine of ``registry`` (or ``name:ARG``) or no model of that name is
    registered.

    Raises:
        EngineError: the model is of the other kind (a segmenter named as the eraser, or back).
    """
    if ":" in text or text in registry:
        return None
    m = get_model(text)
    if m is None:
        return None
    want = registry.what
    if m.kind != want:
        raise EngineError(f"model {text!r} is a {m.family} {m.kind}, not {'an' if want == 'eraser' else 'a'} {want}; "
                          f"use it as the {m.kind}", param=want)
    return registry[m.family], m


def build_stored(text: str, registry: Any, **options: Any) -> Any:
    """Build the engine for model-store name ``text``, or None when it is not one (see :func:`lookup`).

    The file must still be the one registered (size, sha256).
    """
    found = lookup(text, registry)
    if found is None:
        return None
    spec, m = found
    return spec.build(str(verify_file(m)), sha256=m.sha256, **options)


#: the registries a model name is looked up from (``engines.Registry(store=True)`` adds itself:
#: ``erasers.ERASERS``, ``segmenters.SEGMENTERS``); their names are reserved
_REGISTRIES: list[Any] = []


def reserve(registry: Any) -> None:
    """Reserve ``registry``'s names (now and as engines are registered): no model may take one."""
    if not any(r is registry for r in _REGISTRIES):
        _REGISTRIES.append(registry)


def reserved_names() -> set[str]:
    """Names a model may not take: the engines of the store's registries and the family prefixes."""
    names = set(FAMILIES)
    for registry in _REGISTRIES:
        names |= set(registry)
    return names


def _check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise InputError(f"model name {name!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a "
                         "letter or digit", param="name")
    if name in reserved_names():
        raise InputError(f"model name {name!r} is a built-in engine or family name; choose another", param="name")


def _check_sha(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    s = sha256.strip().lower()
    if not SHA_RE.match(s):
        raise InputError(f"`sha256` must be 64 hex digits, got {sha256!r}", param="sha256")
    return s


def _the_family(path: Path, label: str) -> FamilyFit:
    fits = check_file(path)
    good = [f for f in fits if f.ok]
    if not good:
        raise EngineError(f"{label} fits no engine family: {describe_fits(fits)}")
    return good[0]


def is_url(source: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", source))


def add_model(
    name: str,
    source: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    copy: bool = False,
    overwrite: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = 60.0,
    store: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> StoredModel:
    """Register ``source`` (a local ONNX file or an https URL) under ``name``.

    Args:
        name: how the model will be chosen (``eraser=name`` / ``segmenter=name``).
        source: a file path, or an ``https://`` URL (``http://`` only to loopback).
        sha256: the expected hash (64 hex digits); the file is refused when it differs.
        copy: copy a local file into the store instead of referencing it in place.
        overwrite: replace a model already registered under ``name``.
        max_bytes: largest download accepted.
        timeout: seconds without progress before a download is abandoned.
        store: the store folder (default :func:`store_dir`).
        progress: called as ``progress(bytes_so_far, total_or_None)`` while downloading.

    Returns:
        The new :class:`StoredModel`.

    Raises:
        InputError: bad name, hash, URL scheme or source path.
        EngineError: download failed or was interrupted, sha256 mismatch, too large, or the file
            fits no engine family. Nothing is stored then.
    """
    _check_name(name)
    want = _check_sha(sha256)
    if int(max_bytes) < 1:
        raise InputError(f"`max_bytes` must be >= 1, got {max_bytes}", param="max_bytes")
    folder = _store(store)
    src = str(source)
    if not overwrite and get_model(name, folder) is not None:
        raise InputError(f"a model named {name!r} is already registered; remove it first or pass `overwrite=True`",
                         param="overwrite")
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if is_url(src):
        check_url(src)
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{name}.onnx"
        tmp = _download(src, folder, max_bytes=int(max_bytes), timeout=float(timeout), progress=progress)
        try:
            got = sha256_file(tmp)
            if want is not None and got != want:
                raise EngineError(f"sha256 mismatch for {src}: expected {want}, got {got}; nothing was stored",
                                  param="sha256")
            fit = _the_family(tmp, f"the file at {src}")
            forget(tmp)
            size = tmp.stat().st_size
            with _locked(folder):
                publish(tmp, final)
                entry = StoredModel(name=name, family=fit.family, kind=fit.kind, path=str(final.resolve()),
                                    stored=True, size=size, sha256=got, source=src, added=now)
                _register(folder, entry, overwrite=overwrite)
            return entry
        finally:
            forget(tmp)
            tmp.unlink(missing_ok=True)
    p = Path(src).expanduser()
    if not p.is_file():
        raise InputError(f"{p} is not a file (give an ONNX file or an https:// URL)")
    fit = _the_family(p, str(p))
    info = model_file(p)
    if want is not None and info.sha256 != want:
        raise EngineError(f"sha256 mismatch for {p}: expected {want}, got {info.sha256}; nothing was stored",
                          param="sha256")
    folder.mkdir(parents=True, exist_ok=True)
    if not copy:
        entry = StoredModel(name=name, family=fit.family, kind=fit.kind, path=str(p.resolve()), stored=False,
                            size=info.size, sha256=info.sha256, source=str(p.resolve()), added=now)
        with _locked(folder):
            _register(folder, entry, overwrite=overwrite)
        return entry
    final = folder / f"{name}.onnx"
    fd, tmp = temp_file(folder, prefix=f".{name}.", suffix=".part")
    os.close(fd)
    try:
        shutil.copyfile(p, tmp)
        if sha256_file(tmp) != info.sha256:
            raise EngineError(f"{p} changed while it was copied; nothing was stored")
        with _locked(folder):
            publish(tmp, final)
            entry = StoredModel(name=name, family=fit.family, kind=fit.kind, path=str(final.resolve()), stored=True,
                                size=info.size, sha256=info.sha256, source=str(p.resolve()), added=now)
            _register(folder, entry, overwrite=overwrite)
        return entry
    finally:
        tmp.unlink(missing_ok=True)


def _register(folder: Path, entry: StoredModel, *, overwrite: bool) -> None:
    models = _read_index(folder)
    if entry.name in models and not overwrite:
        raise InputError(
            f"a model named {entry.name!r} is already registered; remove it first or pass `overwrite=True`",
            param="overwrite",
        )
    old = models.get(entry.name)
    models[entry.name] = {k: v for k, v in asdict(entry).items() if k != "name"}
    _write_index(folder, models)
    if old and old.get("stored") and Path(old["path"]) != Path(entry.path):
        Path(old["path"]).unlink(missing_ok=True)


def remove_model(name: str, store: str | os.PathLike[str] | None = None) -> StoredModel:
    """Unregister ``name``; a file the store holds is deleted, a file referenced in place is left alone.

    Raises:
        InputError: no model of that name.
    """
    folder = _store(store)
    with _locked(folder) if folder.is_dir() else contextlib.nullcontext():
        models = _read_index(folder)
        if name not in models:
            raise InputError(f"no model named {name!r} in the store {folder}")
        entry = _entry(name, models.pop(name))
        _write_index(folder, models)
    if entry.stored:
        Path(entry.path).unlink(missing_ok=True)
    return entry


# --- downloading ---------------------------------------------------------------------------------


def check_url(url: str) -> None:
    """Refuse anything but https, and plain http to a loopback address.

    Raises:
        InputError: another scheme, or http to a non-loopback host.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme in ("https", "http") and not host:
        raise InputError(f"{url!r} has no host")
    if scheme == "https":
        return
    if scheme == "http" and _loopback(host):
        return
    raise InputError(f"refusing {url}: only https:// URLs are fetched (plain http only to a loopback address)")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _download(url: str, folder: Path, *, max_bytes: int, timeout: float,
              progress: Callable[[int, int | None], None] | None) -> Path:
    """Stream ``url`` into a temporary file in ``folder``; the caller moves or deletes it."""
    import httpx

    fd, tmp = temp_file(folder, prefix=".download.", suffix=".part")
    ok = False
    try:
        with os.fdopen(fd, "wb") as fh, httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False,
                                                     trust_env=False) as client:
            current = url
            for _ in range(MAX_REDIRECTS + 1):
                with client.stream("GET", current) as resp:
                    if resp.status_code in (301, 302, 303, 307, 308) and "location" in resp.headers:
                        current = urljoin(current, resp.headers["location"])
                        check_url(current)
                        continue
                    if resp.status_code != 200:
                        raise EngineError(f"download of {url} failed: HTTP {resp.status_code}; nothing was stored")
                    total = _content_length(resp.headers.get("content-length"))
                    if total is not None and total > max_bytes:
                        raise EngineError(
                            f"{url} is {total} bytes, over the {max_bytes}-byte limit; nothing was stored"
                        )
                    got = 0
                    for block in resp.iter_bytes(1 << 20):
                        got += len(block)
                        if got > max_bytes:
                            raise EngineError(f"{url} is over the {max_bytes}-byte limit; nothing was stored")
                        fh.write(block)
                        if progress is not None:
                            progress(got, total)
                    if total is not None and got != total:
                        raise EngineError(
                            f"download of {url} was interrupted ({got} of {total} bytes); nothing was stored"
                        )
                    if got == 0:
                        raise EngineError(f"{url} sent an empty body; nothing was stored")
                    break
            else:
                raise EngineError(f"download of {url} failed: more than {MAX_REDIRECTS} redirects; nothing was stored")
        ok = True
        return tmp
    except httpx.HTTPError as exc:
        raise EngineError(f"download of {url} failed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
                          "nothing was stored") from None
    finally:
        if not ok:
            tmp.unlink(missing_ok=True)


def _content_length(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        n = int(value)
    except ValueError:
        return None
    return n if n >= 0 else None
