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
``dashscope`` (DashScope ``image-erase-completion``), ``blur`` / ``pixelate`` / ``solid`` (redaction).
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


def _redact(style: str) -> Callable[..., Eraser]:
    def factory(**options: Any) -> Eraser:
        from .redact import RedactEraser

        return RedactEraser(style=style, **options)

    return factory


ERASERS: dict[str, Callable[..., Eraser]] = {
    "blur": _redact("blur"),
    "dashscope": _dashscope,
    "patchmatch": _patchmatch,
    "pixelate": _redact("pixelate"),
    "solid": _redact("solid"),
    "telea": _telea,
}

REDACT_STYLES = ("blur", "pixelate", "solid")


def register_eraser(name: str, factory: Callable[..., Eraser]) -> None:
    """Add (or replace) an eraser under ``name``; tests register fakes this way."""
    ERASERS[name] = factory


def get_eraser(spec: str | Eraser = "patchmatch", **options: Any) -> Eraser:
    """An eraser by name, or passed through.

    Raises:
        EngineError: unknown name (the message lists the valid ones).
    """
    if not isinstance(spec, str):
        return spec
    factory = ERASERS.get(spec)
    if factory is None:
        raise EngineError(f"unknown eraser {spec!r}; choose one of: {', '.join(sorted(ERASERS))}")
    return factory(**options)
