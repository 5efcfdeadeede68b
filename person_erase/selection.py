"""Who goes: choose people by number, by a keep list, or by a policy — each choice with a reason.

Policies name who is **erased** (or redacted):

* ``all`` — everyone (the default).
* ``largest:N`` — the N largest people by mask area.
* ``passersby`` — everyone but the main subject; ``passersby+group`` also keeps the people standing
  with the subject. (Computed by ``person_erase.subject``, imported when first used.)

A policy is a small pure function ``(instances, image, arg) -> (erase_numbers, reasons)`` (optionally
a third item: cue scores per person number), kept in
``POLICIES`` so new ones can be added by name. ``select_people`` returns a ``Selection`` — data,
nothing drawn or erased yet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import SelectionError
from .instances import Instances

#: What a policy returns: erase numbers and reasons, optionally cue scores per person number.
PolicyResult = tuple[list[int], dict[int, str]] | tuple[list[int], dict[int, str], dict[int, dict[str, float]]]
PolicyFn = Callable[[Instances, "np.ndarray | None", "str | None"], PolicyResult]


@dataclass(frozen=True)
class Selection:
    """The outcome of a choice.

    Attributes:
        erase: person numbers (``Instances.index`` values) to erase or redact, ascending.
        keep: person numbers to keep, ascending.
        reasons: one short human reason per person number.
        policy: how the choice was made (``"select"``, ``"keep"``, ``"all"``, ``"largest:2"``, …).
        notes: anything the user should hear (e.g. "no people found: nothing to erase").
        scores: per-person cue scores from a policy (e.g. main-subject cues), for reports and tables.
    """

    erase: tuple[int, ...]
    keep: tuple[int, ...]
    reasons: dict[int, str]
    policy: str
    notes: tuple[str, ...] = ()
    scores: dict[int, dict[str, float]] = field(default_factory=dict)

    def positions(self, instances: Instances) -> np.ndarray:
        """Row positions in ``instances`` of the people to erase."""
        return instances.positions(list(self.erase))


def _policy_all(people: Instances, image: np.ndarray | None, arg: str | None) -> tuple[list[int], dict[int, str]]:
    if arg is not None:
        raise SelectionError(f"policy all takes no argument, got all:{arg} (to erase the N largest: largest:N)",
                             param="policy")
    nums = people.index.tolist()
    return nums, {i: "erased: policy all" for i in nums}


def _policy_largest(people: Instances, image: np.ndarray | None, arg: str | None) -> tuple[list[int], dict[int, str]]:
    if arg is None:
        raise SelectionError('largest needs a count: `policy="largest:N"`, e.g. largest:2', param="policy")
    try:
        n = int(arg)
    except ValueError:
        raise SelectionError(f'largest:N needs a whole number N, got {arg!r} (e.g. `policy="largest:2"`)',
                             param="policy") from None
    if n < 0:
        raise SelectionError(f"largest:N needs N >= 0, got {n}", param="policy")
    areas = people.areas
    order = np.argsort(-areas, kind="stable")
    nums = people.index.tolist()
    chosen = [nums[i] for i in order[:n]]
    total = max(1, people.shape[0] * people.shape[1])
    reasons = {}
    for rank, i in enumerate(order):
        share = 100.0 * areas[i] / total
        verb = "erased" if nums[i] in chosen else "kept"
        reasons[nums[i]] = f"{verb}: #{rank + 1} by size ({share:.1f}% of the photo)"
    return chosen, reasons


def _passersby(group: bool) -> PolicyFn:
    def policy(people: Instances, image: np.ndarray | None, arg: str | None) -> PolicyResult:
        from .subject import passersby_policy  # the main-subject cues (and their models) only when used

        return passersby_policy(people, image, arg, group=group)

    policy.__name__ = "policy_passersby_group" if group else "policy_passersby"
    return policy


POLICIES: dict[str, PolicyFn] = {
    "all": _policy_all,
    "largest": _policy_largest,
    "passersby": _passersby(False),
    "passersby+group": _passersby(True),
}


def register_policy(name: str, fn: PolicyFn) -> None:
    """Add a policy under ``name`` (used as ``--policy name`` or ``name:ARG``)."""
    POLICIES[name] = fn


def _policy_names() -> str:
    names = []
    for n in sorted(POLICIES):
        names.append("largest:N" if n == "largest" else n)
    return ", ".join(names)


def parse_indices(text: str | Sequence[int] | None, *, param: str | None = None) -> list[int] | None:
    """``"0,2"`` or ``[0, 2]`` -> ``[0, 2]``; None stays None. ``param`` names the argument in errors.

    Raises:
        SelectionError: not a comma-separated list of whole numbers >= 0.
    """
    if text is None:
        return None
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",")] if text.strip() else []
        if "" in parts:
            raise SelectionError(f"person numbers are a comma-separated list like 0,2 — got {text!r} (an empty item)",
                                 param=param)
        out = []
        for p in parts:
            if not p.lstrip("-").isdigit():
                raise SelectionError(f"person numbers must be whole numbers like 0,2 — got {p!r}", param=param)
            out.append(int(p))
    else:
        out = [int(x) for x in text]
    neg = [x for x in out if x < 0]
    if neg:
        raise SelectionError(f"person numbers start at 0, got {neg[0]}", param=param)
    return out


def check_request(
    *,
    select: Sequence[int] | str | None = None,
    keep: Sequence[int] | str | None = None,
    policy: str | None = None,
) -> tuple[list[int] | None, list[int] | None]:
    """What can be checked before anyone is found: the lists' format, one way given, a known policy.

    Returns the parsed ``(select, keep)``; the people-dependent checks (range, duplicates, the policy's
    own argument) happen in ``select_people``.

    Raises:
        SelectionError: as ``select_people`` would, for these causes.
    """
    sel, kp = parse_indices(select, param="select"), parse_indices(keep, param="keep")
    given = [name for name, v in (("select", sel), ("keep", kp), ("policy", policy)) if v is not None]
    if len(given) > 1:
        raise SelectionError(f"use only one of `select`, `keep` and `policy` "
                             f"(got {' and '.join(f'`{g}`' for g in given)})", param=tuple(given))
    if policy is not None:
        if policy.partition(":")[0] not in POLICIES:
            raise SelectionError(f"unknown policy {policy!r}; choose one of: {_policy_names()}", param="policy")
    return sel, kp


def _check_numbers(people: Instances, numbers: list[int], param: str) -> None:
    """Range and duplicates of ``select``/``keep`` (the error names the parameter)."""
    try:
        people.positions(numbers)
    except SelectionError as exc:
        exc.param = param
        raise


def select_people(
    people: Instances,
    *,
    select: Sequence[int] | str | None = None,
    keep: Sequence[int] | str | None = None,
    policy: str | None = None,
    image: np.ndarray | None = None,
) -> Selection:
    """Decide who is erased, with a reason per person.

    Exactly one of ``select`` (erase these numbers), ``keep`` (erase everyone else) or ``policy`` may be
    given; none means ``policy="all"``.

    Args:
        people: the photo's instances.
        select: person numbers to erase.
        keep: person numbers to keep.
        policy: a policy name, optionally ``name:ARG`` (see module docstring).
        image: (H, W, 3) uint8 RGB, for policies that look at pixels (passersby).

    Raises:
        SelectionError: two ways given at once, an unknown or duplicate number (the message names the
            valid range), or an unknown policy (the message lists the valid ones).
    """
    sel, kp = check_request(select=select, keep=keep, policy=policy)
    all_nums = people.index.tolist()
    notes: list[str] = []
    scores: dict[int, dict[str, float]] = {}
    if sel is not None:
        _check_numbers(people, sel, "select")
        erase = sorted(sel)
        reasons = {i: ("erased: selected" if i in erase else "kept: not selected") for i in all_nums}
        how = "select"
    elif kp is not None:
        _check_numbers(people, kp, "keep")
        erase = sorted(set(all_nums) - set(kp))
        reasons = {i: ("kept: asked to keep" if i in kp else "erased: not in the keep list") for i in all_nums}
        how = "keep"
    else:
        how = policy or "all"
        name, colon, arg = how.partition(":")
        fn = POLICIES[name]  # check_request has refused unknown names
        result = fn(people, image, arg if colon else None)
        erase_list, reasons = result[0], result[1]
        if len(result) == 3:  # policies may return cue scores too
            scores = result[2]
        erase = sorted(int(i) for i in erase_list)
        for i in all_nums:
            reasons.setdefault(i, "erased" if i in erase else "kept")
    if len(people) == 0:
        notes.append("no people were found: nothing to erase")
    elif not erase:
        notes.append("nobody was chosen: the photo is unchanged")
    keep_nums = sorted(set(all_nums) - set(erase))
    return Selection(
        erase=tuple(erase), keep=tuple(keep_nums), reasons=reasons, policy=how, notes=tuple(notes), scores=scores
    )
