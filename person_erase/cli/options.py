"""Option groups shared by several commands, and their mapping to library parameters."""

from __future__ import annotations

import argparse
from typing import Any

POLICIES_HELP = "all, largest:N, passersby, passersby+group"


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
                   help=f"local detector confidence to accept a person, 0-1 (default 0.25{hint})")


def add_common_out(p: argparse.ArgumentParser, *, metadata_default: str) -> None:
    """The output, segmenter, mask and report options of erase and redact."""
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output image; format from the extension (.jpg .png .webp .bmp .tif)")
    p.add_argument("--segmenter", default="local", metavar="NAME",
                   help="who finds the people: local (offline, default), dashscope, labels:PATH (your own label map), "
                   "yolo-seg:FILE.onnx or a name from `models list`")
    add_local_options(p, privacy_hint=True)
    p.add_argument("--dilate", type=int, metavar="PX",
                   help="grow the mask by PX pixels (default: erase 9 px at 1 MP, scaled with the photo; "
                   "redact 2%% of the diagonal)")
    p.add_argument("--masks-dir", metavar="DIR",
                   help="also write DIR/<stem>.erase.png and DIR/<stem>.keep.png (0/255)")
    p.add_argument("--report", metavar="FILE.json", help="write the JSON report (people, reasons, masks, timings)")
    p.add_argument("--metadata", choices=["keep", "strip-gps", "strip-all"], default=metadata_default,
                   help=f"what EXIF/XMP/ICC to carry over (default {metadata_default})")
    p.add_argument("--verify", action="store_true",
                   help="look again in the output: erase = people re-detected where someone was erased; "
                   "redact = faces still detectable in the redacted region")
    p.add_argument("--strict", action="store_true",
                   help="with --verify: exit 3 when it finds anything (the output is still written)")
    p.add_argument("--overwrite", action="store_true", help="allow writing over the input file")


def segmenter_options(args: argparse.Namespace, engine: str) -> dict[str, Any]:
    """Keyword options for ``get_segmenter(engine, ...)`` from ``--quality`` / ``--min-score``."""
    if engine.startswith("yolo-seg:") and getattr(args, "min_score", None) is not None:
        return {"score_threshold": args.min_score}
    if engine != "local":
        return {}
    opts: dict[str, Any] = {}
    if getattr(args, "quality", None):
        opts["quality"] = args.quality
    if getattr(args, "min_score", None) is not None:
        opts["score_threshold"] = args.min_score
    return opts
