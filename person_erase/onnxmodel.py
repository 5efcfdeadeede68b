"""A user's ONNX model file: identity (name, size, sha256), tensor signature, session, family check.

The bring-your-own engines (``lama``, ``migan``, ``yolo-seg``) each write down a tensor contract
(their module docstrings) and a ``check_signature`` function. This module opens a file once, reads
what it declares, and asks every family whether it fits:

* :func:`model_file` — name, size, sha256 of the file (the report records them);
* :func:`read_signature` — the inputs/outputs the file declares (names, shapes, dtypes);
* :func:`check_file` — one :class:`FamilyFit` per family: fits, or exactly why not;
* :func:`open_session` — an onnxruntime session (CPU, at most 2 threads), with one-line errors for
  truncated or non-ONNX files.

Nothing here downloads anything; files come from the user (``lama:PATH``) or the model store.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EngineError, InputError
from .ortsession import cpu_session, default_threads

#: family name -> (module with ``check_signature`` and ``KIND``, kind)
FAMILIES: dict[str, tuple[str, str]] = {
    "lama": ("person_erase.erasers.lama", "eraser"),
    "migan": ("person_erase.erasers.migan", "eraser"),
    "yolo-seg": ("person_erase.segmenters.yolo_seg", "segmenter"),
}

Dim = int | str | None  # a fixed size, a symbolic name, or unknown


@dataclass(frozen=True)
class TensorInfo:
    """One declared input or output: ``dtype`` like ``"float32"``, ``shape`` with ints or symbols."""

    name: str
    dtype: str
    shape: tuple[Dim, ...]

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} {self.dtype}[{dims}]"


@dataclass(frozen=True)
class Signature:
    """What an ONNX file declares."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    def describe(self) -> str:
        ins = "; ".join(t.describe() for t in self.inputs) or "none"
        outs = "; ".join(t.describe() for t in self.outputs) or "none"
        return f"inputs {ins} -> outputs {outs}"


@dataclass(frozen=True)
class ModelFile:
    """A model file as the report records it."""

    path: Path
    name: str
    size: int
    sha256: str

    def to_dict(self, family: str) -> dict[str, Any]:
        return {"family": family, "name": self.name, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class FamilyFit:
    """Whether a file fits one family's contract; ``problems`` says exactly why not."""

    family: str
    kind: str
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


_lock = threading.Lock()
_sha_cache: dict[tuple[str, int, int], str] = {}
_sessions: OrderedDict[tuple[str, int, int, int], Any] = OrderedDict()
#: sessions kept open (a LaMa session holds ~200 MB of weights)
MAX_SESSIONS = 2


def sha256_file(path: str | os.PathLike[str], *, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                return h.hexdigest()
            h.update(block)


def _existing(path: str | os.PathLike[str]) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"model file {p} does not exist")
    if not p.is_file():
        raise InputError(f"model file {p} is not a file")
    return p


def _key(p: Path) -> tuple[str, int, int]:
    st = p.stat()
    return (str(p.resolve()), st.st_size, st.st_mtime_ns)


def model_file(path: str | os.PathLike[str]) -> ModelFile:
    """Name, size and sha256 of ``path`` (the hash is cached while size and mtime stay the same)."""
    p = _existing(path)
    key = _key(p)
    with _lock:
        digest = _sha_cache.get(key)
    if digest is None:
        try:
            digest = sha256_file(p)
        except OSError as exc:
            raise InputError(f"cannot read model file {p}: {exc.strerror or exc}") from None
        with _lock:
            _sha_cache[key] = digest
    return ModelFile(path=p, name=p.name, size=key[1], sha256=digest)


def _dtype(ort_type: str) -> str:
    # onnxruntime spells them "tensor(float)", "tensor(uint8)", "tensor(float16)"
    inner = ort_type[len("tensor(") : -1] if ort_type.startswith("tensor(") else ort_type
    return {"float": "float32", "double": "float64"}.get(inner, inner)


def _info(arg: Any) -> TensorInfo:
    shape = tuple(d if isinstance(d, (int, str)) or d is None else None for d in (arg.shape or ()))
    return TensorInfo(name=str(arg.name), dtype=_dtype(str(arg.type)), shape=shape)


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("…" if len(text) > 300 else "")


def open_session(path: str | os.PathLike[str], *, threads: int | None = None) -> Any:
    """An onnxruntime CPU session for ``path`` (cached: the last ``MAX_SESSIONS`` files stay open).

    Raises:
        InputError: the file does not exist.
        EngineError: the file is not a complete, loadable ONNX model (one line: truncated
            download, not ONNX, an operator this onnxruntime lacks, ...).
    """
    p = _existing(path)
    n_threads = default_threads(threads)
    key = (*_key(p), n_threads)
    with _lock:
        if key in _sessions:
            _sessions.move_to_end(key)
            return _sessions[key]
    try:
        sess = cpu_session(p, threads=n_threads)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's pybind errors have no common base; one line out
        text = _first_line(exc)
        if "protobuf" in text.lower() or "parsing" in text.lower():
            why = "it is not a complete ONNX file (a truncated download, or not ONNX at all)"
        else:
            why = f"onnxruntime cannot load it ({text})"
        size = p.stat().st_size
        raise EngineError(
            f"cannot open model {p.name} ({size} bytes): {why}; check the file's size and sha256"
        ) from None
    with _lock:
        _sessions[key] = sess
        while len(_sessions) > MAX_SESSIONS:
            _sessions.popitem(last=False)
    return sess


def signature_of(session: Any) -> Signature:
    return Signature(inputs=tuple(_info(a) for a in session.get_inputs()),
                     outputs=tuple(_info(a) for a in session.get_outputs()))


def read_signature(path: str | os.PathLike[str]) -> Signature:
    """The inputs and outputs ``path`` declares (opens the file with onnxruntime)."""
    return signature_of(open_session(path))


def _family_module(family: str) -> Any:
    return importlib.import_module(FAMILIES[family][0])


def check_signature(sig: Signature, family: str) -> FamilyFit:
    """Check ``sig`` against one family's contract."""
    if family not in FAMILIES:
        raise EngineError(f"unknown model family {family!r}; choose one of: {', '.join(sorted(FAMILIES))}")
    problems = _family_module(family).check_signature(sig)
    return FamilyFit(family=family, kind=FAMILIES[family][1], problems=tuple(problems))


def check_file(path: str | os.PathLike[str]) -> list[FamilyFit]:
    """Open ``path`` and check it against every family; one :class:`FamilyFit` each (sorted by name).

    Raises:
        InputError, EngineError: the file is missing or not a loadable ONNX model.
    """
    sig = read_signature(path)
    return [check_signature(sig, f) for f in sorted(FAMILIES)]


def require_family(path: str | os.PathLike[str], family: str, *, threads: int | None = None) -> tuple[Any, Signature]:
    """A session for ``path``, after checking it fits ``family`` (else one line saying why, and what it is).

    Raises:
        EngineError: the file does not fit (names the family it does fit, if any).
    """
    sess = open_session(path, threads=threads)
    sig = signature_of(sess)
    fit = check_signature(sig, family)
    if fit.ok:
        return sess, sig
    others = [f for f in (check_signature(sig, o) for o in sorted(FAMILIES) if o != family) if f.ok]
    hint = ""
    if others:
        o = others[0]
        article = "an" if o.kind[0] in "aeiou" else "a"
        hint = (
            f"; it fits the {o.family} contract ({article} {o.kind}): use {o.family}:{Path(path).name} as the {o.kind}"
        )
    raise EngineError(f"model {Path(path).name} is not a {family} model: {'; '.join(fit.problems)}{hint}")


def describe_fits(fits: list[FamilyFit]) -> str:
    """One line: which family fits, or each family's reason."""
    good = [f for f in fits if f.ok]
    if good:
        return ", ".join(f"{f.family} ({f.kind})" for f in good)
    return "; ".join(f"{f.family}: {', '.join(f.problems)}" for f in fits)


def dims_ok(shape: tuple[Dim, ...], expected: tuple[int | None, ...]) -> bool:
    """``shape`` has ``len(expected)`` dims and each fixed one equals its expected int (None: any)."""
    if len(shape) != len(expected):
        return False
    return all(e is None or not isinstance(d, int) or d == e for d, e in zip(shape, expected, strict=True))


def fixed(d: Dim) -> int | None:
    """The size of a dim when the file fixes it (a positive int), else None."""
    return d if isinstance(d, int) and d > 0 else None


def forget(path: str | os.PathLike[str]) -> None:
    """Close cached sessions of ``path`` (e.g. a temporary download about to be moved or deleted)."""
    target = str(Path(path).resolve())
    with _lock:
        for key in [k for k in _sessions if k[0] == target]:
            del _sessions[key]


def check_expected(info: ModelFile, sha256: str | None) -> None:
    """Raise EngineError when ``sha256`` is given and the file's hash differs."""
    if sha256 and info.sha256 != sha256.lower():
        raise EngineError(f"model {info.name}: sha256 is {info.sha256}, expected {sha256.lower()}; "
                          "the file changed or is not the one meant")


def clear_caches() -> None:
    """Forget cached sessions and hashes (tests; a long-running process that swapped files)."""
    with _lock:
        _sessions.clear()
        _sha_cache.clear()
