"""What an engine did with one call, handed back with its result (never left on the engine).

* A segmenter attaches a ``SegmentInfo`` to the ``Instances`` it returns (``people.info``):
  which engine, quality preset, timings, cloud task and request ids, notes for the user, the model
  file it ran, the detector's boxes, and engine-specific details.
* An eraser returns its image, or ``Erased(image, info)`` with an ``EraseInfo`` (task ids, timings,
  the parameters it sent, notes). An eraser that returns a plain array reports nothing more; the
  pipeline (``compose.apply_eraser``) accepts both.

Both records are frozen; ``to_dict`` / ``from_dict`` give the JSON-able form (the batch cache
stores a segmentation's info with its masks). Nothing here holds pixels or secrets.

>>> info = SegmentInfo(engine="dashscope", task_ids=("t1",))
>>> SegmentInfo.from_dict(info.to_dict()) == info
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

#: a value the report can hold as it is
Scalar = bool | int | float | str


@dataclass(frozen=True)
class ModelRecord:
    """A user-supplied model file an engine ran (``lama:``, ``migan:``, ``yolo-seg:``, a model-store name)."""

    family: str
    name: str
    size: int
    sha256: str


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


def _jsonable(details: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``details`` that survive JSON (others are dropped, not stringified)."""
    out = {}
    for k, v in details.items():
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            continue
        out[str(k)] = v
    return out


def _build(cls: type[Any], state: dict[str, Any]) -> Any:
    return cls(**state)


class _Record:
    """Frozen records hold read-only mappings; pickling (worker processes, Ray) sends plain dicts."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        state = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        return _build, (type(self), {k: dict(v) if isinstance(v, MappingProxyType) else v for k, v in state.items()})


@dataclass(frozen=True)
class SegmentInfo(_Record):
    """What a segmenter did for one photo (``Instances.info``).

    Attributes:
        engine: the engine's name (``"local"``, ``"dashscope"``, ``"labels"``); ``""`` when unknown.
        quality: the quality preset used (``"balanced"``), or None for engines without one.
        timings_ms: time per internal step in ms (``{"detect_ms": 12.5, "masks_ms": 40.1}``).
        task_ids: cloud task ids, in order.
        request_ids: the service's request ids (masked as the service's logs allow), in order.
        notes: sentences for the user (the report's ``notes``): e.g. the detector cap was reached.
        model: the model file the engine ran, when it is a user's file.
        detector_boxes: (M, 4) float32 x0, y0, x1, y1 of the detector's boxes (local), or None.
        details: engine-specific facts for people reading them (mask sources, the adaptation sent to
            the service, the label map's path); JSON-able; nothing reads them as a contract.
    """

    engine: str = ""
    quality: str | None = None
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    task_ids: tuple[str, ...] = ()
    request_ids: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    model: ModelRecord | None = None
    detector_boxes: np.ndarray | None = field(default=None, compare=False, repr=False)
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "timings_ms", _frozen({k: float(v) for k, v in self.timings_ms.items()}))
        object.__setattr__(self, "details", _frozen(self.details))
        for name in ("task_ids", "request_ids", "notes"):
            object.__setattr__(self, name, tuple(str(v) for v in getattr(self, name)))
        if isinstance(self.model, Mapping):
            object.__setattr__(self, "model", ModelRecord(**self.model))
        if self.detector_boxes is not None:
            boxes = np.array(self.detector_boxes, dtype=np.float32).reshape(-1, 4)
            boxes.setflags(write=False)
            object.__setattr__(self, "detector_boxes", boxes)

    def replace(self, **changes: Any) -> SegmentInfo:
        """A copy with ``changes`` (field values)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (details that are not JSON-able are dropped)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["timings_ms"] = dict(self.timings_ms)
        for name in ("task_ids", "request_ids", "notes"):
            out[name] = list(out[name])
        out["model"] = asdict(self.model) if self.model else None
        out["detector_boxes"] = None if self.detector_boxes is None else self.detector_boxes.tolist()
        out["details"] = _jsonable(self.details)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SegmentInfo:
        """Back from ``to_dict`` (unknown keys are ignored: an older cache entry still loads)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class EraseInfo(_Record):
    """What one eraser call did (for the report).

    Attributes:
        engine: the engine's name (``"dashscope"``); ``""`` when unknown.
        task_ids: cloud task ids, in order.
        request_ids: the service's request ids, in order.
        timings_ms: time per step in ms (``{"submit": …, "wait": …, "download": …}``).
        parameters: what was sent to the service explicitly (``dilate_flag``, ``fast_mode``, ...).
        model: the model file the engine ran, when it is a user's file.
        details: engine-specific facts (the adaptation, the result size, pixels the service changed
            outside the mask); JSON-able; nothing reads them as a contract.
    """

    engine: str = ""
    task_ids: tuple[str, ...] = ()
    request_ids: tuple[str, ...] = ()
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    parameters: Mapping[str, Scalar] = field(default_factory=dict)
    model: ModelRecord | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "timings_ms", _frozen({k: float(v) for k, v in self.timings_ms.items()}))
        object.__setattr__(self, "parameters", _frozen(self.parameters))
        object.__setattr__(self, "details", _frozen(self.details))
        for name in ("task_ids", "request_ids"):
            object.__setattr__(self, name, tuple(str(v) for v in getattr(self, name)))
        if isinstance(self.model, Mapping):
            object.__setattr__(self, "model", ModelRecord(**self.model))

    def replace(self, **changes: Any) -> EraseInfo:
        """A copy with ``changes`` (field values)."""
        return replace(self, **changes)


@runtime_checkable
class RunsModelFile(Protocol):
    """An engine that runs a user's model file says which: ``model_info()`` -> ``ModelRecord`` fields
    (the ONNX erasers; their plain-array results get it into their ``EraseInfo``)."""

    def model_info(self) -> Mapping[str, Any]: ...


class Erased(NamedTuple):
    """An eraser's result with what the call did: ``image`` (H, W, 3) uint8 RGB and its ``info``."""

    image: np.ndarray
    info: EraseInfo
