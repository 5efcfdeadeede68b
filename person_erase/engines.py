"""Engine specs and registries: what an engine is and can do, readable before it is built.

An ``EngineSpec`` names an engine, says where its class lives (imported only when it is built) and
declares its capabilities:

- ``kind``: ``"segment"`` (a segmenter), ``"erase"`` (an inpainting eraser) or ``"redact"``
  (a redaction style).
- ``needs_network``: it calls a remote service (batch runs it on threads, not processes; it needs a key).
- ``crops``: the pipeline may hand it one crop per cluster of nearby holes instead of the whole photo.
- ``honours_keep_mask``: it never takes fill pixels from the keep mask.
- ``arg``: it takes an argument after a colon, such as a file (``labels:PATH``); ``arg_required``
  says whether the bare name works too. The text after the colon is passed as ``path=``.
- ``options``: the keyword options its constructor takes, or None when they are not declared
  (then options are passed through unchecked, and ``takes`` reads the constructor's signature).
  Building with an option not declared is an error naming the valid ones, not a ``TypeError``
  from deep inside.
- ``defaults``: keyword options always passed (``{"style": "pixelate"}``), overridable.

A ``Registry`` maps names to specs (``segmenters.SEGMENTERS``, ``erasers.ERASERS``). It is a
mutable mapping, so plugins and tests register and remove engines; a plain factory assigned to a
name is wrapped in a spec whose capabilities are read from the factory's attributes when it has
them (a class with ``needs_network = True`` and so on). The CLI's choices and help text come from
the registries.

>>> from person_erase.erasers import ERASERS
>>> ERASERS.spec("dashscope").needs_network
True
>>> [s.label for s in ERASERS.values() if s.kind == "redact"]
['blur', 'pixelate', 'solid']
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from .errors import EngineError, InputError

Kind = Literal["segment", "erase", "redact"]

_CAPABILITIES = ("needs_network", "crops", "honours_keep_mask")


@dataclass(frozen=True)
class EngineSpec:
    """One engine: name, where it lives, and what it can do.

    Attributes:
        name: the registry name (``"local"``, ``"patchmatch"``, ``"labels"``).
        kind: ``"segment"``, ``"erase"`` or ``"redact"``.
        target: ``"package.module:Class"`` (imported when built) or a callable returning the engine.
        summary: a few words for the CLI's help (``"offline"``, ``"cloud"``, ``"your own label map"``).
        needs_network: calls a remote service.
        crops: accepts crops around the holes instead of the whole photo (erasers).
        honours_keep_mask: never sources fill pixels from the keep mask (erasers).
        arg: metavar of the text after ``name:`` (e.g. ``"PATH"``), or None when it takes none.
        arg_required: with ``arg``: the bare name is refused.
        options: keyword options the engine takes; None = not declared (passed through unchecked).
        defaults: keyword options always passed to the target (the caller's options win).
    """

    name: str
    kind: Kind
    target: str | Callable[..., Any]
    summary: str = ""
    needs_network: bool = False
    crops: bool = False
    honours_keep_mask: bool = False
    arg: str | None = None
    arg_required: bool = True
    options: frozenset[str] | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("segment", "erase", "redact"):
            raise ValueError(f"EngineSpec kind must be 'segment', 'erase' or 'redact', got {self.kind!r}")
        if ":" in self.name or not self.name:
            raise ValueError(f"an engine name is a non-empty word without ':', got {self.name!r}")
        if self.options is not None and not isinstance(self.options, frozenset):
            object.__setattr__(self, "options", frozenset(self.options))
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))

    @property
    def label(self) -> str:
        """How a user writes it: ``"labels:PATH"`` for an engine that takes a path, else the name."""
        return f"{self.name}:{self.arg}" if self.arg else self.name

    @property
    def module(self) -> str | None:
        """The module that defines the engine (plugins: the module to import in worker processes)."""
        if isinstance(self.target, str):
            return self.target.partition(":")[0]
        return getattr(self.target, "__module__", None)

    def takes(self, option: str) -> bool:
        """True when the engine uses keyword option ``option``.

        Declared ``options`` answer it; otherwise the target's signature does (its module is imported,
        nothing is built): only a named parameter counts, not ``**kwargs``.
        """
        if self.options is not None:
            return option in self.options
        try:
            params = inspect.signature(self.load()).parameters
        except (TypeError, ValueError):
            return False
        p = params.get(option)
        return p is not None and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)

    def load(self) -> Callable[..., Any]:
        """The engine's class or factory (imports its module; builds nothing)."""
        if not isinstance(self.target, str):
            return self.target
        mod, _, attr = self.target.partition(":")
        try:
            return getattr(importlib.import_module(mod), attr)  # type: ignore[no-any-return]
        except (ImportError, AttributeError) as exc:
            raise EngineError(f"the {self.name} engine is not available: {exc}") from None

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Refuse keyword options the engine does not declare (nothing to check when undeclared).

        Raises:
            InputError: the message names the unknown options and lists the valid ones.
        """
        if self.options is None:
            return
        unknown = sorted(set(options) - self.options - set(self.defaults))
        if unknown:
            what = "segmenter" if self.kind == "segment" else "eraser"
            valid = ", ".join(f"`{o}`" for o in sorted(self.options)) or "none"
            raise InputError(f"the {self.name} {what} has no option {', '.join(f'`{u}`' for u in unknown)}; "
                             f"its options: {valid}", param=tuple(unknown))

    def build(self, arg: str | None = None, **options: Any) -> Any:
        """A new engine; ``arg`` is the text after ``name:`` (passed as ``path=``).

        Raises:
            EngineError: an argument the engine does not take, or a missing required one.
            InputError: an option the engine does not take (the message lists the ones it does).
        """
        what = "segmenter" if self.kind == "segment" else "eraser"
        if arg and not self.arg:
            raise EngineError(f"the {self.name} {what} takes no ':' argument, got {self.name}:{arg}", param=what)
        if self.arg and self.arg_required and not arg:
            hint = f" ({self.summary})" if self.summary else ""
            raise EngineError(f"the {self.name} {what} needs a {self.arg.lower()}: use {self.label}{hint}", param=what)
        self.check_options(options)
        kwargs = {**self.defaults, **options}
        if arg:
            kwargs["path"] = arg
        return self.load()(**kwargs)


class Registry(MutableMapping[str, EngineSpec]):
    """Engine specs by name, in registration order.

    Assigning a plain factory (``REG["fake"] = factory``) wraps it in a spec of the registry's kind.
    """

    def __init__(self, what: Literal["segmenter", "eraser"], specs: Iterable[EngineSpec] = ()) -> None:
        self.what = what
        self._specs: dict[str, EngineSpec] = {}
        for s in specs:
            self.register(s)

    # --- mapping ---------------------------------------------------------------------------------

    def __getitem__(self, name: str) -> EngineSpec:
        return self._specs[name]

    def __setitem__(self, name: str, value: EngineSpec | Callable[..., Any]) -> None:
        spec = value if isinstance(value, EngineSpec) else self.wrap(name, value)
        if spec.name != name:
            raise ValueError(f"spec {spec.name!r} registered under another name {name!r}")
        self._specs[name] = spec

    def __delitem__(self, name: str) -> None:
        del self._specs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {list(self._specs)})"

    # --- registering -----------------------------------------------------------------------------

    def register(self, spec: EngineSpec) -> EngineSpec:
        """Add (or replace) ``spec`` under its name; returns it."""
        self[spec.name] = spec
        return spec

    def add(self, name: str, factory: EngineSpec | Callable[..., Any], **capabilities: Any) -> EngineSpec:
        """Add (or replace) ``factory`` under ``name``: a spec as it is, a plain factory wrapped (see ``wrap``)."""
        spec = factory if isinstance(factory, EngineSpec) else self.wrap(name, factory, **capabilities)
        self[name] = spec
        return spec

    def wrap(self, name: str, factory: Callable[..., Any], **capabilities: Any) -> EngineSpec:
        """A spec for a plain factory; capabilities not given are read from the factory's attributes."""
        kind = capabilities.pop("kind", None)
        if kind is None:
            declared = getattr(factory, "kind", None)
            kind = "segment" if self.what == "segmenter" else ("redact" if declared == "redact" else "erase")
        for cap in _CAPABILITIES:
            if cap not in capabilities and isinstance(getattr(factory, cap, None), bool):
                capabilities[cap] = getattr(factory, cap)
        return EngineSpec(name=name, kind=kind, target=factory, **capabilities)

    # --- looking up ------------------------------------------------------------------------------

    def parse(self, text: str) -> tuple[EngineSpec, str | None]:
        """``"labels:/x.png"`` -> (the labels spec, ``"/x.png"``).

        Raises:
            EngineError: unknown name; the message lists the valid ones.
        """
        name, colon, arg = text.partition(":")
        spec = self._specs.get(name)
        if spec is None:
            raise EngineError(f"unknown {self.what} {text!r}; choose one of: {', '.join(self.labels())}",
                              param=self.what)
        return spec, (arg if colon else None)

    def spec(self, text: str) -> EngineSpec:
        """The spec of ``text`` (a name, or ``name:ARG``); see ``parse``."""
        return self.parse(text)[0]

    def build(self, text: str, **options: Any) -> Any:
        """A new engine from ``text`` (``"local"``, ``"labels:PATH"``) and keyword options."""
        spec, arg = self.parse(text)
        return spec.build(arg, **options)

    def labels(self, kind: Kind | None = None) -> list[str]:
        """How users write the names (``labels:PATH``), sorted; only those of ``kind`` when given."""
        return sorted(s.label for s in self._specs.values() if kind is None or s.kind == kind)


def engine_name(engine: Any) -> str:
    """The name of an engine object as users choose it: ``"pixelate"`` for a pixelating
    ``RedactEraser`` (whose class name is ``"redact"``), else its ``name`` attribute or class name."""
    style = getattr(engine, "style", None)
    if isinstance(style, str):
        return style
    return str(getattr(engine, "name", type(engine).__name__))
