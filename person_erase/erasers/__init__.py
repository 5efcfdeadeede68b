"""Erasers: fill (inpaint) or redact the erase mask.

Every eraser follows one Protocol, ``Eraser.erase(image, erase, *, keep) -> image``, and is chosen
by name from ``ERASERS`` (the CLI's ``--eraser`` choices come from the same dict). Capabilities are
class attributes: ``needs_network``, ``honours_keep_mask`` (never copies fill from the keep mask),
``kind`` (``"inpaint"`` or ``"redact"``), ``crops`` (the pipeline may hand it one crop per cluster of
nearby people, with a context margin, so cost follows the holes and not the photo; False for engines
that must see the whole photo, such as the cloud one).

Contract for every eraser: ``image`` is (H, W, 3) uint8 RGB, ``erase`` and ``keep`` are (H, W)
bool with ``erase & keep`` empty; the result is a new (H, W, 3) uint8 RGB array whose pixels
outside ``erase`` are byte-identical to ``image``. The caller's arrays are never modified.
Local erasers keep that promise themselves; the ``dashscope`` eraser returns what the service sent
back, and ``compose.apply_eraser`` (used by the pipeline for every engine) pastes only the erase
mask's pixels onto the input and counts how many the engine changed outside it.

Names: ``patchmatch`` (default, offline), ``telea`` (fast, offline, smeary on big holes),
``dashscope`` (DashScope ``image-erase-completion``), ``blur`` / ``pixelate`` / ``solid`` (redaction),
``lama:PATH.onnx`` / ``migan:PATH.onnx`` (the user's own LaMa / MI-GAN ONNX file), or the name of an
eraser model registered in the model store (:mod:`person_erase.modelstore`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ..errors import EngineError


@runtime_checkable
class Eraser(Protocol):
    """Fills or redacts ``erase``; see the module docstring for the contract."""

    name: ClassVar[str]
    kind: ClassVar[str]
    needs_network: ClassVar[bool]
    honours_keep_mask: ClassVar[bool]
    crops: ClassVar[bool]

    def erase(self, image: np.ndarray, erase: np.ndarray, *, keep: np.ndarray) -> np.ndarray: ...


def _patchmatch(**options: Any) -> Eraser:
    from .patchmatch import PatchMatchEraser

    return PatchMatchEraser(**options)


def _telea(**options: Any) -> Eraser:
    from .telea import TeleaEraser

    return TeleaEraser(**options)


def _dashscope(**options: Any) -> Eraser:
    from .dashscope import DashScopeEraser

    return DashScopeEraser(**options)


def _lama(path: str | None = None, **options: Any) -> Eraser:
    from .lama import LamaEraser

    if not path:
        raise EngineError("the lama eraser needs a model file: lama:PATH.onnx, or a name registered in the model store")
    return LamaEraser(path, **options)


def _migan(path: str | None = None, **options: Any) -> Eraser:
    from .migan import MiganEraser

    if not path:
        raise EngineError("the migan eraser needs a model file: migan:PATH.onnx (the MI-GAN pipeline export), or a "
                          "name registered in the model store")
    return MiganEraser(path, **options)


def _redact(style: str) -> Callable[..., Eraser]:
    def factory(**options: Any) -> Eraser:
        from .redact import RedactEraser

        return RedactEraser(style=style, **options)

    return factory


ERASERS: dict[str, Callable[..., Eraser]] = {
    "blur": _redact("blur"),
    "dashscope": _dashscope,
    "lama": _lama,
    "migan": _migan,
    "patchmatch": _patchmatch,
    "pixelate": _redact("pixelate"),
    "solid": _redact("solid"),
    "telea": _telea,
}

REDACT_STYLES = ("blur", "pixelate", "solid")
#: erasers that take a file: ``NAME:PATH``
FILE_ERASERS = ("lama", "migan")


def register_eraser(name: str, factory: Callable[..., Eraser]) -> None:
    """Add (or replace) an eraser under ``name``; tests register fakes this way."""
    ERASERS[name] = factory


def eraser_names() -> list[str]:
    """The valid names, for messages and help: built-ins, ``lama:PATH``-style ones."""
    return sorted(f"{n}:PATH" if n in FILE_ERASERS else n for n in ERASERS)


def get_eraser(spec: str | Eraser = "patchmatch", **options: Any) -> Eraser:
    """An eraser by name (``"patchmatch"``, ``"lama:PATH.onnx"``, a model-store name), or passed through.

    Raises:
        EngineError: unknown name (the message lists the valid ones), or a model-store name that is
            not an eraser.
    """
    if not isinstance(spec, str):
        return spec
    factory = ERASERS.get(spec)
    if factory is not None:
        return factory(**options)
    name, sep, arg = spec.partition(":")
    if sep and name in FILE_ERASERS:
        return ERASERS[name](path=arg, **options)
    from ..modelstore import get_model, verify_file

    stored = get_model(spec)
    if stored is not None:
        if stored.kind != "eraser":
            raise EngineError(f"model {spec!r} is a {stored.family} {stored.kind}, not an eraser; use it as the "
                              f"{stored.kind}")
        return ERASERS[stored.family](path=str(verify_file(stored)), sha256=stored.sha256, **options)
    raise EngineError(f"unknown eraser {spec!r}; choose one of: {', '.join(eraser_names())}, or a model name "
                      "registered in the model store")
