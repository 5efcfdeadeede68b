"""``person-erase erase`` and ``person-erase redact``: one photo in, one photo out (plus masks and report)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import helpers
from .helpers import Say
from .options import (
    POLICIES_HELP,
    add_common_out,
    add_face_options,
    add_selection,
    eraser_help,
    eraser_options,
    segmenter_options,
    style_help,
)

NAMES = ("erase", "redact")

EXAMPLES_ERASE = """\
examples:
  person-erase erase photo.jpg -o out.jpg                       # everyone goes
  person-erase erase photo.jpg -o out.jpg --select 0,2          # persons 0 and 2 go
  person-erase erase photo.jpg -o out.jpg --keep 1              # everyone but person 1 goes
  person-erase erase photo.jpg -o out.png --policy largest:1 --masks-dir masks/ --report out.json
  person-erase erase photo.jpg -o out.jpg --eraser telea        # fast preview fill

Selection: at most one of --select, --keep, --policy (default: --policy all).
The erase mask is the chosen people grown by --dilate px; the keep mask (the others) is never
touched and never used as fill source. Pixels outside the erase mask stay byte-identical.
"""

EXAMPLES_REDACT = """\
examples:
  person-erase redact photo.jpg -o out.jpg                      # blur everyone, drop GPS tags
  person-erase redact photo.jpg -o out.jpg --policy passersby   # blur all but the main subject
  person-erase redact photo.jpg -o out.jpg --style solid --metadata strip-all --verify
  person-erase redact photo.jpg -o out.jpg --target faces       # blur only the faces, bodies stay

Redaction is mask-shaped and scales with each person's size so faces cannot be recovered. A face
detector (CenterFace, bundled) also hides every face the body masks missed (the face net; listed
under faces_added in --report); --verify checks with a second, independent detector (MediaPipe).
"""


def register(sub: Any) -> None:
    """Add the ``erase`` and ``redact`` subcommands to ``sub`` (the top parser's subparsers)."""
    p = helpers.add_command(sub, "erase", help="erase people and fill the background back in", epilog=EXAMPLES_ERASE,
                            description="Erase the chosen people and fill in the background "
                            "(PatchMatch by default, offline).", image=True)
    add_selection(p, policies=POLICIES_HELP)
    add_common_out(p, metadata_default="keep")
    p.add_argument("--eraser", default="patchmatch", metavar="NAME",
                   help=eraser_help())
    p.add_argument("--fast", action="store_true", help="quicker, rougher fill (dashscope fast_mode)")

    p = helpers.add_command(sub, "redact", help="hide people with a mask-shaped blur, pixelation or fill",
                            epilog=EXAMPLES_REDACT, image=True,
                            description="Hide the chosen people (privacy). GPS tags are dropped by default.")
    add_selection(p, policies=POLICIES_HELP, verb="hide")
    add_common_out(p, metadata_default="strip-gps", mode="redact")
    p.add_argument("--style", default="blur", metavar="STYLE", help=style_help())
    p.add_argument("--strength", type=float, metavar="SHARE",
                   help="blur sigma / pixel block as a share of the person's height (default 0.08 blur, 0.10 pixelate)")
    p.add_argument("--margin", type=float, metavar="SHARE",
                   help="grow each person's mask by this share of their height (default 0.05; 0 = off)")
    p.add_argument("--box-below", type=int, metavar="PX",
                   help="cover people shorter than PX with their whole box (default 96; 0 = never)")
    add_face_options(p)


def run(args: argparse.Namespace, say: Say) -> int:
    """Run ``person-erase erase`` or ``person-erase redact`` (``args.command``); returns the exit status."""
    from .. import pipeline
    from ..io import check_output_path
    from ..segmenters import get_segmenter

    mode = args.command
    img = helpers.load_input(args)
    out = check_output_path(args.output, input_path=img.path, overwrite=args.overwrite)
    side = helpers.check_side_outputs(args, out, img.path)
    segmenter = get_segmenter(args.segmenter, **segmenter_options(args, args.segmenter))
    common: dict[str, Any] = dict(select=args.select, keep=args.keep, policy=args.policy, segmenter=segmenter,
                                  dilate=args.dilate, verify=args.verify, progress=say)
    if mode == "erase":
        result = pipeline.erase(img, eraser=args.eraser, **common, **eraser_options(args, args.eraser))
    else:
        given = {"strength": args.strength, "margin": args.margin, "box_below": args.box_below}
        result = pipeline.redact(img, style=args.style, face_net=args.face_net, person_net=args.person_net,
                                 target=args.target, **common,
                                 **{k: v for k, v in given.items() if v is not None})
    say("saving")
    existed = {p for p in (out, *side) if p.exists()}
    result.save(out, metadata=args.metadata, overwrite=args.overwrite)
    rep = result.report
    try:
        if args.masks_dir:
            result.save_masks(args.masks_dir, stem=Path(args.image).stem)
        if args.report:
            helpers.write_json_atomic(Path(args.report), rep.to_json())
    except BaseException:
        # all or nothing: what this run created goes again (files it replaced cannot come back)
        for p in (out, *side):
            if p not in existed:
                p.unlink(missing_ok=True)
        raise
    for note in rep.notes:
        print(f"note: {note}", file=sys.stderr)
    n = len(result.selection.erase)
    verb = "erased" if mode == "erase" else "redacted"
    faces = ""
    if mode == "redact":
        k = len(rep.faces_added)
        if rep.target == "faces":
            verb, faces = "hid the faces of", f", {k} {'face' if k == 1 else 'faces'}"
        else:
            extra = []
            new = sum(1 for a in rep.people_added if a.person is None)
            if new:
                extra.append(f"+{new} {'person' if new == 1 else 'people'} the segmentation missed")
            if k:
                extra.append(f"+{k} {'face' if k == 1 else 'faces'} the masks missed")
            faces = "".join(f", {e}" for e in extra)
    print(f"{verb} {n} of {len(result.people)} {'person' if len(result.people) == 1 else 'people'} "
          f"({rep.erase_area_px} px{faces}) -> {out}")
    if rep.verification is not None and not rep.verification.ok:
        residues = rep.verification.residues
        k = len(residues)
        where = "; ".join(f"box {tuple(r.box)} score {r.score:.2f}" for r in residues[:3]) + ("; …" if k > 3 else "")
        if mode == "erase":
            what = (f"{k} {'person' if k == 1 else 'people'} where someone was erased ({where}); check those "
                    "places: a low score is usually a person-like fill, not a leftover")
        else:
            what = (f"{k} {'face' if k == 1 else 'faces'} still detectable where someone was redacted ({where}); "
                    "raise --strength or use --style solid")
        print(f"warning: verification found {what}", file=sys.stderr)
        if args.strict:
            return 3
    return 0
