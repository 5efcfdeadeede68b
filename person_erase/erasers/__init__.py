"""Erasers: fill (inpaint) or redact the erase mask.

Every eraser follows one Protocol, ``Eraser.erase(image, erase, *, keep) -> image``, and is chosen
by name from ``ERASERS``, a ``Registry`` of ``EngineSpec`` (``person_erase.engines``); the CLI's
``--eraser`` choices come from it. Capabilities are readable from the spec before building, and the
classes carry the same ones as class attributes: ``needs_network``, ``honours_keep_mask`` (never
copies fill from the keep mask), ``kind`` (spec ``"erase"`` / class ``"inpaint"``, or ``"redact"``),
``crops`` (the pipeline may hand it one crop per cluster of nearby people, with a context margin,
so cost follows the holes and not the photo; False for engines that must see the whole photo, such
as the cloud one).

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

from ..engines import EngineSpec, Registry


@runtime_checkable
class Eraser(Protocol):
    """Fills or redacts ``erase``; see the module docstring for the contract."""

    name: ClassVar[str]
    kind: ClassVar[str]
    needs_network: ClassVar[bool]
    honours_keep_mask: ClassVar[bool]
    crops: ClassVar[bool]

    def erase(self, image: np.ndarray, erase: np.ndarray, *, keep: np.ndarray) -> np.ndarray: ...


ERASERS = Registry("eraser", store=True, specs=[
    EngineSpec("blur", "redact", "person_erase.erasers.redact:RedactEraser", crops=True, honours_keep_mask=True,
               options=frozenset({"strength"}), defaults={"style": "blur"}),
    EngineSpec("dashscope", "erase", "person_erase.erasers.dashscope:DashScopeEraser", summary="cloud",
               needs_network=True, honours_keep_mask=True, two_phase=True,
               forwards="person_erase.cloud.client:DashScopeClient"),
    EngineSpec("lama", "erase", "person_erase.erasers.lama:LamaEraser", summary="your LaMa ONNX file", crops=True,
               square_crops=True, honours_keep_mask=True, arg="PATH",
               options=frozenset({"output_range", "sha256", "threads"})),
    EngineSpec("migan", "erase", "person_erase.erasers.migan:MiganEraser", summary="your MI-GAN pipeline ONNX file",
               crops=True, square_crops=True, honours_keep_mask=True, arg="PATH",
               options=frozenset({"work_side", "sha256", "threads"})),
    EngineSpec("patchmatch", "erase", "person_erase.erasers.patchmatch:PatchMatchEraser", summary="offline",
               crops=True, honours_keep_mask=True,
               options=frozenset({"patch_size", "seed", "work_px", "min_scale", "detail"})),
    EngineSpec("pixelate", "redact", "person_erase.erasers.redact:RedactEraser", crops=True, honours_keep_mask=True,
               options=frozenset({"strength"}), defaults={"style": "pixelate"}),
    EngineSpec("solid", "redact", "person_erase.erasers.redact:RedactEraser", crops=True, honours_keep_mask=True,
               options=frozenset({"color"}), defaults={"style": "solid"}),
    EngineSpec("telea", "erase", "person_erase.erasers.telea:TeleaEraser", summary="fast preview", crops=True,
               options=frozenset({"radius", "work_px"})),
])

#: The built-in redaction styles (``pe.redact(style=...)``).
REDACT_STYLES = tuple(ERASERS.labels("redact"))


def register_eraser(name: str, factory: EngineSpec | Callable[..., Eraser], **capabilities: Any) -> EngineSpec:
    """Add (or replace) an eraser under ``name``; tests register fakes this way.

    ``factory`` is an ``EngineSpec`` or a callable returning an eraser; ``capabilities`` are
    ``EngineSpec`` fields (``kind="redact"``, ``crops=True``, ``honours_keep_mask=True``, ...).
    """
    return ERASERS.add(name, factory, **capabilities)


def get_eraser(spec: str | Eraser = "patchmatch", **options: Any) -> Eraser:
    """An eraser by name (``"patchmatch"``, ``"blur"``, ``"lama:PATH.onnx"``, a model-store name) or passed through.

    Raises:
        EngineError: unknown name (the message lists the valid ones), a model-store name that is not
            an eraser or whose file changed.
        InputError: an option the eraser does not take (or options with an eraser object).
    """
    return ERASERS.build(spec, **options)  # type: ignore[no-any-return]
