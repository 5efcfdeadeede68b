"""Option groups shared by several commands, and their mapping to library parameters."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..engines import Registry

POLICIES_HELP = "all, largest:N, passersby, passersby+group"


def engine_help(registry: Registry, *, default: str, kinds: tuple[str, ...] = ("segment", "erase")) -> str:
    """``"local (default, offline), dashscope (cloud), labels:PATH (your own label map)"`` from a registry."""
    specs = sorted((s for s in registry.values() if s.kind in kinds), key=lambda s: (s.name != default, s.name))
    parts = []
    for s in specs:
        notes = ", ".join(n for n in ("default" if s.name == default else "", s.summary) if n)
        parts.append(f"{s.label} ({notes})" if notes else s.label)
    return ", ".join(parts).replace("%", "%%")


def segmenter_help(default: str = "local") -> str:
    """The registered segmenters, for ``--segmenter`` / ``--engine`` help."""
    from ..segmenters import SEGMENTERS

    return f"{engine_help(SEGMENTERS, default=default, kinds=('segment',))}, or a name from `models list`"


def eraser_help(default: str = "patchmatch") -> str:
    """The registered erasers and redaction styles, for ``--eraser`` help."""
    from ..erasers import ERASERS

    styles = ", ".join(ERASERS.labels("redact"))
    return (f"{engine_help(ERASERS, default=default, kinds=('erase',))}, a name from `models list`, "
            f"or a redaction style: {styles}")


def style_help(default: str = "blur") -> str:
    """The registered redaction styles, for ``--style`` help."""
    from ..erasers import ERASERS

    return engine_help(ERASERS, default=default, kinds=("redact",))


def add_selection(p: argparse.ArgumentParser, *, policies: str = POLICIES_HELP, verb: str = "erase") -> None:
    """``--select`` / ``--keep`` / ``--policy`` (erase, redact)."""
    g = p.add_argument_group("who goes (pick at most one; default --policy all)")
    g.add_argument("--select", metavar="0,2", help=f"{verb} these person numbers (see `segment`)")
    g.add_argument("--keep", metavar="1", help=f"keep these person numbers, {verb} everyone else")
    g.add_argument("--policy", metavar="NAME", help=f"choose by policy: {policies}")


def add_local_options(p: argparse.ArgumentParser, *, privacy_hint: bool = False) -> None:
    """``--quality`` and ``--min-score`` of the local segmenter (segment, erase, redact, batch)."""
    p.add_argument("--quality", choices=["fast", "balanced", "best"], default=None,
                   help="local segmenter speed/quality preset (default balanced)")
    hint = "; lower finds more people and more false ones: for privacy, e.g. 0.1" if privacy_hint else ""
    p.add_argument("--min-score", type=float, default=None, metavar="S",
                   help=f"local detector confidence to accept a person, 0.01-1 (default 0.25{hint})")
    p.add_argument("--max-people", type=int, default=None, metavar="N",
                   help="local detector: report at most N people per photo, the highest-scoring "
                   "(default 100, at most 1000)")


def add_face_options(p: argparse.ArgumentParser, *, default_target: str | None = "body") -> None:
    """``--target``, ``--no-face-net`` and ``--no-person-net`` (the redaction's extra passes; ``redact``
    and ``batch``)."""
    p.add_argument("--target", default=default_target, choices=("body", "faces"),
                   help="body (default): hide whole people; faces: hide only faces (face detector + heads of "
                   "the chosen people), bodies stay visible")
    p.add_argument(
        "--no-face-net",
        dest="face_net",
        action="store_false",
        help="do not look for faces the body masks missed (on by default; faces of kept people are never touched)",
    )
    p.add_argument(
        "--no-person-net",
        dest="person_net",
        action="store_false",
        help="do not look again, for recall, for people the segmentation missed (on by default with --policy "
        "all/passersby/passersby+group or --keep; kept people are never touched)",
    )


#: --dilate's default, per command (masks.default_dilate / default_redact_dilate)
DILATE_DEFAULT_HELP = {"erase": "9 px at 1 MP, scaled with the photo", "redact": "2%% of the photo's diagonal"}
#: what --verify looks for, per command (verify.verify_removal)
VERIFY_HELP = {"erase": "people where someone was erased",
               "redact": "faces still detectable in the redacted region"}


def add_common_out(p: argparse.ArgumentParser, *, metadata_default: str, mode: str = "erase") -> None:
    """The output, segmenter, mask and report options of erase and redact (``mode``: which command)."""
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output image; format from the extension (.jpg .png .webp .bmp .tif)")
    p.add_argument("--segmenter", default="local", metavar="NAME",
                   help=f"who finds the people: {segmenter_help()}")
    add_local_options(p, privacy_hint=True)
    p.add_argument("--dilate", type=int, metavar="PX",
                   help=f"grow the {'erase' if mode == 'erase' else 'redaction'} mask by PX pixels "
                   f"(default {DILATE_DEFAULT_HELP[mode]})")
    p.add_argument("--masks-dir", metavar="DIR",
                   help="also write DIR/<stem>.erase.png and DIR/<stem>.keep.png (0/255)")
    p.add_argument("--report", metavar="FILE.json", help="write the JSON report (people, reasons, masks, timings)")
    p.add_argument("--metadata", choices=["keep", "strip-gps", "strip-all"], default=metadata_default,
                   help=f"what EXIF/XMP/ICC to carry over (default {metadata_default})")
    p.add_argument("--verify", action="store_true",
                   help=f"look again in the output for {VERIFY_HELP[mode]} (a warning line when found; "
                   "details in --report)")
    p.add_argument("--strict", action="store_true",
                   help="with --verify: exit 3 when it finds anything (the output is still written)")
    p.add_argument("--overwrite", action="store_true", help="allow writing over the input file")


#: segmenter flags: (argparse dest, the segmenter's keyword option)
SEGMENTER_FLAGS = (("quality", "quality"), ("min_score", "score_threshold"), ("max_people", "max_detections"))


def segmenter_options(args: argparse.Namespace, engine: str, *, flag: str = "--segmenter") -> dict[str, Any]:
    """Keyword options for ``get_segmenter(engine, ...)`` from ``--quality`` / ``--min-score``.

    Raises:
        EngineError: unknown segmenter.
        InputError: a flag was given that this segmenter does not use (refused, not dropped).
    """
    from ..errors import InputError
    from ..segmenters import SEGMENTERS

    spec = SEGMENTERS.resolve(engine)
    opts: dict[str, Any] = {}
    for dest, option in SEGMENTER_FLAGS:
        value = getattr(args, dest, None)
        if value is None:
            continue
        name = "--" + dest.replace("_", "-")
        if not spec.takes(option):
            users = [s.label for s in SEGMENTERS.values() if s.takes(option)]
            raise InputError(f"{name} is not used by {flag} {engine}; it is an option of: {', '.join(users)}",
                             param=option)
        opts[option] = value
    return opts


def eraser_options(args: argparse.Namespace, eraser: str) -> dict[str, Any]:
    """Keyword options for ``get_eraser(eraser, ...)`` from ``--fast``.

    Raises:
        EngineError: unknown eraser.
        InputError: ``--fast`` with an eraser that has no fast mode.
    """
    from ..erasers import ERASERS
    from ..errors import InputError

    spec = ERASERS.resolve(eraser)
    if spec.takes("fast_mode"):
        return {"fast_mode": bool(args.fast)}
    if args.fast:
        users = [s.label for s in ERASERS.values() if s.takes("fast_mode")]
        raise InputError(f"--fast is not used by --eraser {eraser}; it is an option of: {', '.join(users)}",
                         param="fast_mode")
    return {}
