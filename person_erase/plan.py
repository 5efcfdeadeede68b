"""Plan: a frozen, checked description of one erase/redact run, made before any engine runs.

Everything that can be wrong without looking at the people is refused here, so a bad value never
costs a segmentation (which may be a billed cloud call): the choice of people (format, one way
given, a known policy), the mask growth (``dilate``, ``margin``, ``box_below``), the redaction
target, the engines (names resolved to their specs, engine objects described by one) and the
eraser's options, checked against the options the eraser takes (every engine: declared, or read
from its constructor's signature). ``Plan.dilate_for(height, width)`` adds the checks that need
only the photo's size (``dilate`` beyond the longest side), run right after loading.

>>> plan = Plan.build("erase", select="0,2", eraser="telea")
>>> plan.select, plan.eraser_spec.name
((0, 2), 'telea')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, cast

from . import masks as masks_mod
from .engines import EngineSpec
from .errors import SelectionError
from .selection import check_request

Mode = Literal["erase", "redact"]
Target = Literal["body", "faces"]

#: What ``redact`` hides: whole people (the default) or only their faces.
TARGETS: tuple[Target, ...] = ("body", "faces")


@dataclass(frozen=True)
class Plan:
    """One run, checked. Build it with ``Plan.build``; the pipeline reads it, nobody changes it.

    Attributes:
        mode: ``"erase"`` or ``"redact"``.
        select / keep: parsed person numbers, or None.
        policy: the policy text (``"largest:2"``), or None (with no select/keep: ``"all"``).
        dilate: mask growth in px, or None for the default of the photo's size (``dilate_for``).
        margin / box_below: redaction growth (share of each person's height) and box cover (px).
        face_net / target: the redaction face pass (``"body"`` or ``"faces"``).
        person_net: the redaction's second look for people the segmentation missed (``person_net``).
        eraser / segmenter: names as given, or engine objects.
        eraser_spec / segmenter_spec: their specs (resolved from the registry, or ``Registry.describe``
            of an engine object): the capabilities the pipeline reads.
        eraser_options: keyword options for the eraser's constructor (checked).
        verify: False, True (the same segmenter), a segmenter name or object.
    """

    mode: Mode
    eraser: Any
    eraser_spec: EngineSpec
    segmenter_spec: EngineSpec
    segmenter: Any = "local"
    select: tuple[int, ...] | None = None
    keep: tuple[int, ...] | None = None
    policy: str | None = None
    dilate: int | None = None
    margin: float = 0.0
    box_below: int = 0
    face_net: bool = False
    person_net: bool = False
    target: Target = "body"
    verify: Any = False
    eraser_options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        mode: Mode,
        *,
        eraser: Any,
        segmenter: Any = "local",
        select: Sequence[int] | str | None = None,
        keep: Sequence[int] | str | None = None,
        policy: str | None = None,
        dilate: int | None = None,
        margin: float = 0.0,
        box_below: int = 0,
        face_net: bool = False,
        person_net: bool = False,
        target: str = "body",
        verify: Any = False,
        eraser_options: Mapping[str, Any] | None = None,
    ) -> Plan:
        """Check every parameter that does not need the people; see the module docstring.

        Raises:
            SelectionError: bad person numbers, more than one of select/keep/policy, unknown policy,
                target or redaction style.
            InputError: negative or non-finite growth, an option the eraser does not take.
            EngineError: unknown engine names.
        """
        from .erasers import ERASERS, REDACT_STYLES
        from .segmenters import SEGMENTERS

        sel, kp = check_request(select=select, keep=keep, policy=policy)
        if dilate is not None:
            dilate = int(dilate)
        margin, box_below = float(margin), int(box_below)
        masks_mod.check_growth(dilate, margin, box_below)
        if target not in TARGETS:
            raise SelectionError(f"unknown target {target!r}; choose one of: {', '.join(TARGETS)}", param="target")
        options = dict(eraser_options or {})
        eraser_spec = ERASERS.describe(eraser)  # a model-store name: its family's spec
        if mode == "redact" and eraser_spec.kind != "redact":
            raise SelectionError(f"redact needs a redaction style; choose one of: {', '.join(REDACT_STYLES)}",
                                 param="style")
        if isinstance(eraser, str):
            eraser_spec.check_options(options)
        elif options:
            ERASERS.build(eraser, **options)  # refused: options go to the constructor of an object built already
        segmenter_spec = SEGMENTERS.describe(segmenter)
        if isinstance(verify, str):
            SEGMENTERS.resolve(verify)
        return cls(mode=mode, eraser=eraser, segmenter=segmenter, select=None if sel is None else tuple(sel),
                   keep=None if kp is None else tuple(kp), policy=policy, dilate=dilate, margin=margin,
                   box_below=box_below, face_net=bool(face_net), person_net=bool(person_net),
                   target=cast(Target, target), verify=verify,
                   eraser_spec=eraser_spec, segmenter_spec=segmenter_spec,
                   eraser_options=MappingProxyType(options))

    def dilate_for(self, height: int, width: int) -> int:
        """The dilation for a ``height``×``width`` photo (the default when none was given).

        Raises:
            InputError: ``dilate`` is more than the photo's longest side (every pixel would go).
        """
        if self.dilate is None:
            if self.mode == "redact":
                return masks_mod.default_redact_dilate(height, width)
            return masks_mod.default_dilate(height, width)
        masks_mod.check_fits(self.dilate, height, width)
        return self.dilate
