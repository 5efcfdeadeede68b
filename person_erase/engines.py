"""Engine specs and registries: what an engine is and can do, readable before it is built.

An ``EngineSpec`` names an engine, says where its class lives (imported only when it is built) and
declares its capabilities:

- ``kind``: ``"segment"`` (a segmenter), ``"erase"`` (an inpainting eraser) or ``"redact"``
  (a redaction style).
- ``needs_network``: it calls a remote service (batch runs it on threads, not processes; it needs a key).
- ``crops``: the pipeline may hand it one crop per cluster of nearby holes instead of the whole photo.
- ``honours_keep_mask``: it never takes fill pixels from the keep mask.
- ``square_crops``: with ``crops``, each crop is grown to a square where the photo allows (networks
  with a square input).
- ``two_phase``: it also offers ``submit``/``collect`` (``TwoPhaseSegmenter`` / ``TwoPhaseEraser`` in
  ``segmenters`` / ``erasers``), so a batch can journal the task id between the two.
- ``arg``: it takes an argument after a colon, such as a file (``labels:PATH``); ``arg_required``
  says whether the bare name works too. The text after the colon is passed as ``path=``.
- ``options``: the keyword options its constructor takes, or None when they are not declared
  (then the constructor's signature says: its named keyword parameters; a factory taking
  ``**kwargs`` takes anything). Building with an option it does not take is an ``InputError``
  naming the valid ones (``param=`` the unknown ones), not a ``TypeError`` from deep inside.
- ``defaults``: keyword options always passed (``{"style": "pixelate"}``), overridable.

A ``Registry`` maps names to specs (``segmenters.SEGMENTERS``, ``erasers.ERASERS``). It is a
mutable mapping, so plugins and tests register and remove engines; a plain factory assigned to a
name is wrapped in a spec whose capabilities are read from the factory's attributes when it has
them (a class with ``needs_network = True`` and so on). ``Registry.resolve`` turns what a user
wrote (a name, ``name:ARG``, or a model-store name) into a spec, ``Registry.build`` into an engine,
and ``Registry.describe`` gives an engine object built elsewhere a spec too, so the pipeline reads
every engine's capabilities from a spec. An ``EngineWrapper`` (an object standing in for a built
engine, such as the batch's journaled cloud eraser) carries its spec, and ``describe`` returns it.
The CLI's choices and help text come from the registries.

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

_CAPABILITIES = ("needs_network", "crops", "honours_keep_mask", "square_crops")


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
        square_crops: with ``crops``: each crop is grown to a square where the photo allows.
        two_phase: offers ``submit``/``collect`` besides the one-call method (cloud engines).
        arg: metavar of the text after ``name:`` (e.g. ``"PATH"``), or None when it takes none.
        arg_required: with ``arg``: the bare name is refused.
        options: keyword options the engine takes; None = read from the constructor's signature.
        forwards: with ``options`` None: ``"module:Callable"`` the constructor's ``**kwargs`` go to
            (its named parameters are accepted too: the cloud engines forward them to the client).
        defaults: keyword options always passed to the target (the caller's options win).
    """

    name: str
    kind: Kind
    target: str | Callable[..., Any]
    summary: str = ""
    needs_network: bool = False
    crops: bool = False
    honours_keep_mask: bool = False
    square_crops: bool = False
    two_phase: bool = False
    arg: str | None = None
    arg_required: bool = True
    options: frozenset[str] | None = None
    forwards: str | None = None
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

    def accepted_options(self) -> frozenset[str] | None:
        """The keyword options the engine takes; None when it takes any (a factory with ``**kwargs``).

        Declared ``options`` answer it; otherwise the target's signature does (its module is imported,
        nothing is built): its named keyword parameters, except ``path`` (the text after the colon).
        """
        if self.options is not None:
            return self.options
        named = _named_parameters(self.load())
        if named is None and self.forwards:
            own = _named_parameters(self.load(), any_kwargs=False) or frozenset()
            forwarded = _named_parameters(_import(self.forwards, self.name), any_kwargs=False)
            return None if forwarded is None else own | forwarded
        return named

    def takes(self, option: str) -> bool:
        """True when the engine names keyword option ``option`` (declared, or a named parameter of the
        target's signature; ``**kwargs`` does not count)."""
        accepted = self.accepted_options()
        if accepted is not None:
            return option in accepted
        try:
            p = inspect.signature(self.load()).parameters.get(option)
        except (TypeError, ValueError):
            return False
        return p is not None and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)

    def load(self) -> Callable[..., Any]:
        """The engine's class or factory (imports its module; builds nothing)."""
        if not isinstance(self.target, str):
            return self.target
        return _import(self.target, self.name)

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Refuse keyword options the engine does not take (see ``accepted_options``).

        Raises:
            InputError: the message names the unknown options and lists the valid ones; ``param`` is
                the tuple of unknown option names.
        """
        accepted = self.accepted_options()
        if accepted is None:
            return
        unknown = sorted(set(options) - accepted - set(self.defaults))
        if unknown:
            what = "segmenter" if self.kind == "segment" else "eraser"
            valid = ", ".join(f"`{o}`" for o in sorted(accepted)) or "none"
            raise InputError(f"the {self.name} {what} has no option {', '.join(f'`{u}`' for u in unknown)}; "
                             f"its options: {valid}", param=tuple(unknown))

    def check_arg(self, arg: str | None) -> None:
        """Refuse ``arg`` (the text after ``name:``) as ``build`` would, building nothing.

        Raises:
            EngineError: an argument the engine does not take, or a missing required one.
        """
        what = "segmenter" if self.kind == "segment" else "eraser"
        if arg and not self.arg:
            raise EngineError(f"the {self.name} {what} takes no ':' argument, got {self.name}:{arg}", param=what)
        if self.arg and self.arg_required and not arg:
            hint = f" ({self.summary})" if self.summary else ""
            raise EngineError(f"the {self.name} {what} needs a {self.arg.lower()}: use {self.label}{hint}", param=what)

    def build(self, arg: str | None = None, **options: Any) -> Any:
        """A new engine; ``arg`` is the text after ``name:`` (passed as ``path=``).

        Raises:
            EngineError: an argument the engine does not take, or a missing required one.
            InputError: an option the engine does not take (the message lists the ones it does).
        """
        self.check_arg(arg)
        self.check_options(options)
        kwargs = {**self.defaults, **options}
        if arg:
            kwargs["path"] = arg
        return self.load()(**kwargs)


def _import(target: str, name: str) -> Callable[..., Any]:
    mod, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(mod), attr)  # type: ignore[no-any-return]
    except (ImportError, AttributeError) as exc:
        raise EngineError(f"the {name} engine is not available: {exc}") from None


def _named_parameters(target: Callable[..., Any], *, any_kwargs: bool = True) -> frozenset[str] | None:
    """The keyword parameters ``target`` names (not ``path``: the text after the colon); None when it
    takes ``**kwargs`` (and ``any_kwargs``) or has no readable signature."""
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    if any_kwargs and any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "path")


class EngineWrapper:
    """Base of an engine object that stands in for another engine (the batch's journaled cloud eraser
    calls its inner eraser's ``submit``/``collect``): it carries the spec of what it does, so
    ``Registry.describe`` returns that spec instead of reading the wrapper's attributes.

    Args:
        spec: the wrapped engine's spec, with what the wrapper does not offer turned off
            (``dataclasses.replace(spec, two_phase=False)`` for a one-call wrapper).
    """

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec

    @property
    def name(self) -> str:
        """The spec's name (``engine_name`` and reports use it)."""
        return self.spec.name


class Registry(MutableMapping[str, EngineSpec]):
    """Engine specs by name, in registration order.

    Assigning a plain factory (``REG["fake"] = factory``) wraps it in a spec of the registry's kind.
    With ``store=True`` (the built-in ``ERASERS`` and ``SEGMENTERS``) names of models registered in
    the model store (:mod:`person_erase.modelstore`) resolve to their family's spec, and the store
    refuses to register a model under one of this registry's names.
    """

    def __init__(self, what: Literal["segmenter", "eraser"], specs: Iterable[EngineSpec] = (), *,
                 store: bool = False) -> None:
        self.what = what
        self.store = store
        self._specs: dict[str, EngineSpec] = {}
        for s in specs:
            self.register(s)
        if store:
            from .modelstore import reserve

            reserve(self)

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
        return EngineSpec(name=name, target=factory, **self._capabilities(factory, capabilities))

    def _capabilities(self, source: Any, given: dict[str, Any]) -> dict[str, Any]:
        """``given`` completed from ``source``'s attributes (a class, factory or engine object)."""
        caps = dict(given)
        if "kind" not in caps:
            declared = getattr(source, "kind", None)
            caps["kind"] = "segment" if self.what == "segmenter" else ("redact" if declared == "redact" else "erase")
        for cap in _CAPABILITIES:
            if cap not in caps and isinstance(getattr(source, cap, None), bool):
                caps[cap] = getattr(source, cap)
        if "two_phase" not in caps:
            caps["two_phase"] = callable(getattr(source, "submit", None)) and callable(getattr(source, "collect", None))
        return caps

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

    def resolve(self, text: str) -> EngineSpec:
        """The spec behind what a user wrote: a name, ``name:ARG``, or (``store``) a model-store name
        (its family's spec).

        Raises:
            EngineError: unknown name (the message lists the valid ones), or a model-store name of the
                other kind.
        """
        if self.store:
            from .modelstore import lookup

            found = lookup(text, self)
            if found is not None:
                return found[0]  # type: ignore[no-any-return]
            if text.partition(":")[0] not in self._specs:
                raise EngineError(f"unknown {self.what} {text!r}; choose one of: {', '.join(self.labels())}, or the "
                                  f"name of {'an' if self.what == 'eraser' else 'a'} {self.what} model in the model "
                                  "store", param=self.what)
        return self.parse(text)[0]

    def check(self, text: str) -> EngineSpec:
        """The spec of what a user wrote (see ``resolve``), its ``:ARG`` checked as ``build`` would (a
        model-store name needs none); builds nothing, so it is cheap enough for refusing early.

        Raises:
            EngineError: see ``resolve`` and ``EngineSpec.check_arg``.
        """
        spec = self.resolve(text)
        name, colon, arg = text.partition(":")
        if name in self._specs:  # not a model-store name
            spec.check_arg(arg if colon else None)
        return spec

    def build(self, engine: Any, **options: Any) -> Any:
        """A new engine from ``engine`` (``"local"``, ``"labels:PATH"``, a model-store name) and keyword
        options; an engine object is returned as it is.

        Raises:
            EngineError: see ``resolve``; a model-store file that changed since it was added.
            InputError: an option the engine does not take, or options given with an engine object
                (they go to the constructor, and the object is built already).
        """
        if not isinstance(engine, str):
            if options:
                raise InputError(f"options {', '.join(f'`{o}`' for o in sorted(options))} go to the {self.what}'s "
                                 f"constructor, but {self.what} {engine!r} is an object built already; pass them "
                                 "when building it", param=tuple(sorted(options)))
            return engine
        if self.store:
            from .modelstore import build_stored

            stored = build_stored(engine, self, **options)
            if stored is not None:
                return stored
        spec = self.resolve(engine)
        return spec.build(self.parse(engine)[1], **options)

    def describe(self, engine: Any) -> EngineSpec:
        """The spec of ``engine``: resolved for a name; for an engine object, read from its attributes
        (``name``, else its class name; ``kind``, ``needs_network``, ``crops``, ...: missing ones are
        False; an ``EngineWrapper`` gives its own spec). The one place an engine object's capabilities
        are read."""
        if isinstance(engine, str):
            return self.resolve(engine)
        if isinstance(engine, EngineWrapper):
            return engine.spec
        return EngineSpec(name=engine_name(engine).replace(":", "-"), target=lambda: engine,
                          **self._capabilities(engine, {}))

    def labels(self, kind: Kind | None = None) -> list[str]:
        """How users write the names (``labels:PATH``), sorted; only those of ``kind`` when given."""
        return sorted(s.label for s in self._specs.values() if kind is None or s.kind == kind)


def engine_name(engine: Any) -> str:
    """The name of an engine object: its ``name`` (the Protocols' member), else its class name.

    An engine chosen by name is named by its spec (``"pixelate"``, not the class's ``"redact"``).
    """
    return str(getattr(engine, "name", "") or type(engine).__name__)
