"""What a batch run does: ``BatchParams`` (checked before any work) and ``ItemParams`` (one image's).

The choice of people and the mask growth are checked by the same functions ``erase`` uses
(``selection.check_request``, ``masks.check_growth``), so a batch refuses exactly what ``erase`` refuses,
before anyone is segmented.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError, SelectionError
from ..io import METADATA_POLICIES, SAVE_FORMATS

MODES = ("erase", "redact")

Options = tuple[tuple[str, Any], ...]


def _options(value: Any, *, name: str) -> Options:
    """Engine options as a sorted tuple of (name, value) pairs (hashable, picklable, order-free)."""
    if value is None:
        return ()
    if isinstance(value, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        items = list(value)
    elif isinstance(value, dict):
        items = list(value.items())
    else:
        raise InputError(f"{name} must be a dict of engine options, got {type(value).__name__}")
    for k, v in items:
        if not isinstance(k, str):
            raise InputError(f"{name}: option names are strings, got {k!r}")
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            raise InputError(
                f"{name}: option {k!r} must be a plain value (number, string, bool, list), got {type(v).__name__}"
            ) from None
    return tuple(sorted(items))


def digest(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj`` (hex)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def parse_numbers(value: Any, *, what: str = "select") -> tuple[int, ...] | None:
    """Person numbers from ``"0,2"``, ``"0 2"``, ``"0;2"``, ``[0, 2]`` or ``2``; None for empty.

    Raises:
        SelectionError: something that is not a list of non-negative integers.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise SelectionError(f"{what} must list person numbers such as 0,2; got {value!r}")
    if isinstance(value, int):
        items: list[Any] = [value]
    elif isinstance(value, str):
        text = value.strip().strip("[]")
        if not text:
            return None
        items = [t for t in text.replace(";", ",").replace(" ", ",").split(",") if t]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise SelectionError(f"{what} must list person numbers such as 0,2; got {value!r}")
    out = []
    for t in items:
        try:
            n = int(str(t).strip()) if not isinstance(t, int) or isinstance(t, bool) else int(t)
        except ValueError:
            raise SelectionError(f"{what} must list person numbers such as 0,2; {t!r} is not a number") from None
        if isinstance(t, bool) or n < 0:
            raise SelectionError(f"{what} must list person numbers (0 or more); got {t!r}")
        out.append(n)
    return tuple(out)


@dataclass(frozen=True)
class Choice:
    """Who to erase in one image: at most one of ``select``, ``keep``, ``policy`` (None: the run's default)."""

    select: tuple[int, ...] | None = None
    keep: tuple[int, ...] | None = None
    policy: str | None = None

    def __post_init__(self) -> None:
        check_choice(self.select, self.keep, self.policy, where="the choice of people")

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.select, self.keep, self.policy))


def check_choice(select: Any, keep: Any, policy: Any, *, where: str) -> None:
    """One way of choosing people, a known policy: ``selection.check_request`` (what ``erase`` checks).

    Raises:
        SelectionError: naming ``where``.
    """
    from ..selection import check_request

    try:
        check_request(
            select=None if select is None else list(select), keep=None if keep is None else list(keep), policy=policy
        )
    except SelectionError as exc:
        raise SelectionError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class ItemParams:
    """The effective parameters of one image (hashed into its journal key; JSON in the journal).

    ``eraser`` is the eraser name in erase mode and the redaction style in redact mode.
    """

    mode: str
    eraser: str
    eraser_options: Options
    segmenter: str
    segmenter_options: Options
    select: tuple[int, ...] | None
    keep: tuple[int, ...] | None
    policy: str | None
    dilate: int | None
    metadata: str
    verify: bool
    format: str
    face_net: bool = True
    target: str = "body"
    person_net: bool = True

    def to_json(self) -> dict[str, Any]:
        """The JSON form (the journal's ``params`` column and the summary's ``parameters``); the face
        pass (``face_net``, ``target``) only in redact mode, where it applies."""
        out: dict[str, Any] = {
            "mode": self.mode,
            "eraser": self.eraser,
            "eraser_options": dict(self.eraser_options),
            "segmenter": self.segmenter,
            "segmenter_options": dict(self.segmenter_options),
            "select": None if self.select is None else list(self.select),
            "keep": None if self.keep is None else list(self.keep),
            "policy": self.policy,
            "dilate": self.dilate,
            "metadata": self.metadata,
            "verify": self.verify,
            "format": self.format,
        }
        if self.mode == "redact":
            out.update(face_net=self.face_net, target=self.target)
            if not self.person_net:  # only when off: journals written before the person net keep their digest
                out.update(person_net=False)
        return out

    def digest(self) -> str:
        """Digest of ``to_json()`` (16 hex digits), part of each image's journal key."""
        return digest(self.to_json())[:16]


@dataclass(frozen=True)
class BatchParams:
    """The parameters of a run (per-image ``select``/``keep``/``policy`` may override the defaults here).

    Attributes:
        mode: ``"erase"`` or ``"redact"``.
        eraser: eraser name for ``erase`` mode (``patchmatch``, ``telea``, ``dashscope``, …).
        style: redaction style for ``redact`` mode (``blur``, ``pixelate``, ``solid``).
        segmenter: segmenter name (``local``, ``dashscope``, or any registered name).
        segmenter_options: passed to the segmenter factory (e.g. ``{"quality": "fast"}``).
        eraser_options: passed to the eraser factory (e.g. ``{"fast_mode": True}``).
        select, keep, policy: default choice of people (default: policy ``all``).
        dilate: erase-mask dilation in px (None: the pipeline's default).
        metadata: ``keep`` | ``strip-gps`` | ``strip-all`` (default: keep for erase, strip-gps for redact).
        verify: re-detect people in each output and report residues.
        output_format: ``same`` (the input's extension) or an extension such as ``png`` / ``jpg``.
        face_net: redact mode: also hide faces the body masks missed (``pipeline.redact``'s ``face_net``).
        target: redact mode: ``"body"`` (whole people) or ``"faces"`` (faces only).
        person_net: redact mode: also hide people the segmentation missed (``pipeline.redact``'s ``person_net``).

    Raises:
        InputError / SelectionError: a value ``erase`` would refuse (checked by the same functions).
    """

    mode: str = "erase"
    eraser: str = "patchmatch"
    style: str = "blur"
    segmenter: str = "local"
    segmenter_options: dict[str, Any] = field(default_factory=dict)
    eraser_options: dict[str, Any] = field(default_factory=dict)
    select: tuple[int, ...] | None = None
    keep: tuple[int, ...] | None = None
    policy: str | None = None
    dilate: int | None = None
    metadata: str | None = None
    verify: bool = False
    output_format: str = "same"
    face_net: bool = True
    target: str = "body"
    person_net: bool = True

    def __post_init__(self) -> None:
        from ..masks import check_growth
        from ..plan import TARGETS

        if self.mode not in MODES:
            raise InputError(f"unknown batch `mode` {self.mode!r}; choose erase or redact", param="mode")
        if self.metadata is not None and self.metadata not in METADATA_POLICIES:
            raise InputError(
                f"unknown `metadata` policy {self.metadata!r}; choose one of: {', '.join(METADATA_POLICIES)}",
                param="metadata",
            )
        fmt = str(self.output_format).lower().lstrip(".")
        if fmt != "same" and f".{fmt}" not in SAVE_FORMATS:
            raise InputError(f"unknown `output_format` {self.output_format!r}; use same or one of "
                             f"{', '.join(s.lstrip('.') for s in sorted(SAVE_FORMATS))}", param="output_format")
        object.__setattr__(self, "output_format", fmt)
        if self.target not in TARGETS:
            raise InputError(f"unknown `target` {self.target!r}; choose one of: {', '.join(TARGETS)}", param="target")
        if self.mode != "redact" and (self.target != "body" or not self.face_net or not self.person_net):
            raise InputError("`target`, `face_net` and `person_net` are for redact mode",
                             param=("target", "face_net", "person_net"))
        for name in ("select", "keep"):
            object.__setattr__(self, name, parse_numbers(getattr(self, name), what=name))
        check_choice(self.select, self.keep, self.policy, where="the batch options")
        if self.dilate is not None and (isinstance(self.dilate, bool) or not isinstance(self.dilate, int)):
            raise InputError(f"`dilate` must be a whole number of pixels, got {self.dilate!r}", param="dilate")
        check_growth(self.dilate)
        _options(self.segmenter_options, name="segmenter_options")
        _options(self.eraser_options, name="eraser_options")
        if str(self.segmenter).partition(":")[0] in ("local", "labels"):
            # cheap to build (models load on first use): bad options or a FIFO as the label map are
            # one error before any image, not the same failure once per image
            from ..segmenters import get_segmenter

            get_segmenter(self.segmenter, **self.segmenter_options)

    @property
    def metadata_policy(self) -> str:
        return self.metadata or ("strip-gps" if self.mode == "redact" else "keep")

    @property
    def cloud(self) -> bool:
        """True when an engine calls a remote service (its spec's ``needs_network``): the cloud
        executor's stage threads run the batch, not processes.

        Raises:
            EngineError: an unknown engine name (the message lists the valid ones).
        """
        from ..erasers import ERASERS
        from ..segmenters import SEGMENTERS

        if SEGMENTERS.resolve(self.segmenter).needs_network:
            return True
        return self.mode == "erase" and ERASERS.resolve(self.eraser).needs_network

    def for_item(self, choice: Choice | None = None) -> ItemParams:
        """The effective parameters of one image (its own choice of people replaces the run's)."""
        sel, kp, pol = self.select, self.keep, self.policy
        if choice is not None and choice.given:
            sel, kp, pol = choice.select, choice.keep, choice.policy
        return ItemParams(
            mode=self.mode,
            eraser=self.eraser if self.mode == "erase" else self.style,
            eraser_options=_options(self.eraser_options, name="eraser_options"),
            segmenter=self.segmenter,
            segmenter_options=_options(self.segmenter_options, name="segmenter_options"),
            select=sel,
            keep=kp,
            policy=pol,
            dilate=self.dilate,
            metadata=self.metadata_policy,
            verify=bool(self.verify),
            format=self.output_format,
            face_net=bool(self.face_net),
            target=self.target,
            person_net=bool(self.person_net),
        )
