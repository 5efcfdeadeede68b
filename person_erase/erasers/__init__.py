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

What a call did comes back with its result, never on the engine: an eraser returns the image, or
``Erased(image, info)`` with an ``EraseInfo`` (task ids, timings, parameters sent; see
``person_erase.engineinfo``). A user's eraser that returns a plain array keeps working. Cloud
erasers are also a ``TwoPhaseEraser`` (``submit`` returns a task id, ``collect`` waits for it and
returns ``Erased``): the batch journals the id between the two, and ``call_eraser`` (the pipeline's
one way to call an eraser) uses the two phases when the spec says ``two_phase``.

Names: ``patchmatch`` (default, offline), ``telea`` (fast, offline, smeary on big holes),
``dashscope`` (DashScope ``image-erase-completion``), ``blur`` / ``pixelate`` / ``solid`` (redaction),
``lama:PATH.onnx`` / ``migan:PATH.onnx`` (the user's own LaMa / MI-GAN ONNX file), or the name of an
eraser model registered in the model store (:mod:`person_erase.modelstore`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ..engineinfo import Erased, EraseInfo, ModelRecord, RunsModelFile
from ..engines import EngineSpec, Registry

if TYPE_CHECKING:
    from ..cloud.client import DashScopeClient


@runtime_checkable
class Eraser(Protocol):
    """Fills or redacts ``erase``; see the module docstring for the contract."""

    name: ClassVar[str]
    kind: ClassVar[str]
    needs_network: ClassVar[bool]
    honours_keep_mask: ClassVar[bool]
    crops: ClassVar[bool]

    def erase(self, image: np.ndarray, erase: np.ndarray, *, keep: np.ndarray) -> np.ndarray | Erased: ...


@runtime_checkable
class TwoPhaseEraser(Protocol):
    """A cloud eraser in two phases, so the task id can be journaled between them (``batch``).

    ``submit`` uploads and creates the task (``on_intent(intent)`` is called just before the request
    is sent; ``exclude``: task ids of other work, never adopted); ``collect`` waits for the task and
    returns the image brought back to ``image``'s size with what the task did. ``model`` is the
    service's model name; ``client`` the ``DashScopeClient`` (task adoption, shared limits).
    """

    model: str
    client: DashScopeClient

    def submit(self, image: np.ndarray, erase: np.ndarray, *, keep: np.ndarray | None = None,
               on_intent: Any = None, exclude: Any = ()) -> str: ...

    def collect(self, task_id: str, image: np.ndarray, erase: np.ndarray, *,
                keep: np.ndarray | None = None) -> Erased: ...


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


def call_eraser(eraser: Eraser, spec: EngineSpec, image: np.ndarray, erase: np.ndarray, *,
                keep: np.ndarray) -> Erased:
    """One eraser call with what it did: ``erase`` (an array, or ``Erased``), or for a ``two_phase``
    spec ``submit`` then ``collect`` (the submit time is added to the info's timings)."""
    if spec.two_phase and isinstance(eraser, TwoPhaseEraser):
        t0 = time.perf_counter()
        task_id = eraser.submit(image, erase, keep=keep)
        submit_ms = (time.perf_counter() - t0) * 1e3
        out, info = eraser.collect(task_id, image, erase, keep=keep)
        return Erased(out, info.replace(timings_ms={"submit": submit_ms, **info.timings_ms}))
    result = eraser.erase(image, erase, keep=keep)
    if isinstance(result, Erased):
        return result
    model = ModelRecord(**eraser.model_info()) if isinstance(eraser, RunsModelFile) else None
    return Erased(result, EraseInfo(engine=spec.name, model=model))
