"""``person-erase segment``: find and number the people, print a table, write a label map and an overlay."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .helpers import Say, add_command, atomic_pil, load_input
from .options import add_local_options, segmenter_help, segmenter_options

NAMES = ("segment",)

EXAMPLES_SEGMENT = """\
examples:
  person-erase segment photo.jpg                    # print the numbered table
  person-erase segment photo.jpg --out-dir seg/     # + seg/photo.labels.png, seg/photo.overlay.png
  person-erase segment photo.jpg --json             # machine-readable rows
  person-erase segment photo.jpg --policy passersby # show who that policy would erase, and why

labels.png is a label map: 0 = background, person number + 1 for each person (uint8, or uint16
beyond 254 people). Use it with --segmenter labels:PATH to edit masks by hand.
"""


def register(sub: Any) -> None:
    """Add the ``segment`` subcommand to ``sub`` (the top parser's subparsers)."""
    p = add_command(sub, "segment", help="find and number the people in a photo", epilog=EXAMPLES_SEGMENT,
                    description="Find every person, print a numbered table, and write a label map "
                    "and an overlay picture.", image=True)
    p.add_argument("--engine", default="local", metavar="NAME", help=segmenter_help())
    add_local_options(p)
    p.add_argument("--out-dir", metavar="DIR", default=".",
                   help="where to write <stem>.labels.png and <stem>.overlay.png (default: .)")
    p.add_argument("--no-files", action="store_true", help="print the table only, write nothing")
    p.add_argument("--policy", metavar="NAME", help="also show who this policy would erase, and why")
    p.add_argument("--json", action="store_true", help="print JSON rows instead of a table")


def _table(rows: list[dict[str, Any]], with_reasons: bool) -> str:
    head = ["#", "score", "box (x0,y0,x1,y1)", "area %"]
    with_subject = with_reasons and any("score" in r.get("cues", {}) for r in rows)
    if with_subject:
        head.append("subject")  # the main-subject score of the passersby policies (0-1)
    if with_reasons:
        head.append("reason")
    lines = [head]
    for r in rows:
        line = [str(r["index"]), f"{r['score']:.2f}", ",".join(map(str, r["box"])), f"{r['area_pct']:.2f}"]
        if with_subject:
            sub = r.get("cues", {}).get("score")
            line.append("" if sub is None else f"{sub:.2f}")
        if with_reasons:
            line.append(r.get("reason", ""))
        lines.append(line)
    widths = [max(len(row[k]) for row in lines) for k in range(len(head))]
    return "\n".join("  ".join(c.ljust(widths[k]) for k, c in enumerate(row)).rstrip() for row in lines)


def run(args: argparse.Namespace, say: Say) -> int:
    """Run ``person-erase segment``; returns the exit status."""
    import numpy as np

    from .. import select_people
    from ..io import save_image
    from ..report import instance_rows
    from ..segmenters import get_segmenter
    from ..selection import check_request

    check_request(policy=args.policy)  # a bad policy is refused before anyone is looked for
    img = load_input(args)
    seg = get_segmenter(args.engine, **segmenter_options(args, args.engine, flag="--engine"))
    say(f"finding people with {args.engine}")
    people = seg.segment(img.pixels)
    sel = select_people(people, policy=args.policy, image=img.pixels) if args.policy else None
    h, w = people.shape
    fields = {"index", "score", "box", "area_px", "area_pct"} | ({"selected", "reason"} if sel is not None else set())
    rows = []
    for r in instance_rows(people, sel):
        row: dict[str, Any] = r.model_dump(include=fields)
        if r.cues:
            row["cues"] = r.cues
        rows.append(row)
    files = {}
    if not args.no_files:
        out_dir = Path(args.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = Path(args.image).stem
        labels = people.to_label_map()
        lp = out_dir / f"{stem}.labels.png"
        from PIL import Image as PILImage

        from ..io import check_output_path

        check_output_path(lp, input_path=img.path)
        atomic_pil(PILImage.fromarray(labels), lp)
        op = save_image(np.asarray(people.overlay(img.pixels)), out_dir / f"{stem}.overlay.png", metadata="strip-all")
        files = {"labels": str(lp), "overlay": str(op)}
    notes = [*people.info.notes, *(sel.notes if sel else ())]
    if args.json:
        print(json.dumps({"image": str(args.image), "width": w, "height": h, "people": rows, "files": files,
                          **({"policy": sel.policy} if sel else {}), **({"notes": notes} if sel or notes else {})},
                         indent=2))
    else:
        n = len(rows)
        print(f"{Path(args.image).name}: {n} {'person' if n == 1 else 'people'} found ({w}x{h})")
        if rows:
            print(_table(rows, with_reasons=sel is not None))
        for note in notes:
            print(f"note: {note}")
        for v in files.values():
            print(f"wrote {v}")
    return 0
