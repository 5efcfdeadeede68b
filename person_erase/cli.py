"""The ``person-erase`` command line: a thin layer over the Python API.

Every failure ends with exit status 1 and one line ``error: …`` on stderr (usage errors: status 2,
from argparse); no output file is left behind. ``--debug`` (or ``PERSON_ERASE_DEBUG=1``) shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

EXAMPLES_TOP = """\
examples:
  person-erase segment photo.jpg --out-dir seg/        # who is where: numbered table + overlay
  person-erase erase photo.jpg -o out.jpg              # erase everyone (offline, no key)
  person-erase erase photo.jpg -o out.jpg --select 0,2 # erase persons 0 and 2 only
  person-erase erase photo.jpg -o out.jpg --policy passersby   # keep the main subject
  person-erase redact photo.jpg -o out.jpg --style pixelate    # privacy: hide people
  person-erase batch photos/ -o cleaned/ --resume      # a whole folder, restartable

People are numbered 0, 1, 2, ... from left to right; run `segment` first to see the numbers.
"""

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

Redaction is mask-shaped and scales with each person's size so faces cannot be recovered.
"""

EXAMPLES_SEGMENT = """\
examples:
  person-erase segment photo.jpg                    # print the numbered table
  person-erase segment photo.jpg --out-dir seg/     # + seg/photo.labels.png, seg/photo.overlay.png
  person-erase segment photo.jpg --json             # machine-readable rows
  person-erase segment photo.jpg --policy passersby # show who that policy would erase, and why

labels.png is a label map: 0 = background, person number + 1 for each person (uint8, or uint16
beyond 254 people). Use it with --segmenter labels:PATH to edit masks by hand.
"""


class _Parser(argparse.ArgumentParser):
    """Usage mistakes end like every other error: one ``error: …`` line (and exit 2, as argparse does)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34, width=100)


def _names(kind: str) -> list[str]:
    if kind == "segmenter":
        from .segmenters import SEGMENTERS

        return sorted(n if n != "labels" else "labels:PATH" for n in SEGMENTERS)
    from .erasers import ERASERS

    return sorted(ERASERS)


def _add_selection(p: argparse.ArgumentParser, *, policies: str, verb: str = "erase") -> None:
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


def _add_common_out(p: argparse.ArgumentParser, *, metadata_default: str) -> None:
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output image; format from the extension (.jpg .png .webp .bmp .tif)")
    p.add_argument("--segmenter", default="local", metavar="NAME",
                   help="who finds the people: local (offline, default), dashscope, labels:PATH (your own label map)")
    add_local_options(p, privacy_hint=True)
    p.add_argument("--dilate", type=int, metavar="PX",
                   help="grow the mask by PX pixels (default: erase 9 px at 1 MP, scaled with the photo; redact 2%% of the diagonal)")
    p.add_argument("--masks-dir", metavar="DIR", help="also write DIR/<stem>.erase.png and DIR/<stem>.keep.png (0/255)")
    p.add_argument("--report", metavar="FILE.json", help="write the JSON report (people, reasons, masks, timings)")
    p.add_argument("--metadata", choices=["keep", "strip-gps", "strip-all"], default=metadata_default,
                   help=f"what EXIF/XMP/ICC to carry over (default {metadata_default})")
    p.add_argument("--verify", action="store_true", help="look again in the output: erase = people re-detected where someone was erased; redact = faces still detectable in the redacted region")
    p.add_argument("--strict", action="store_true", help="with --verify: exit 3 when it finds anything (the output is still written)")
    p.add_argument("--overwrite", action="store_true", help="allow writing over the input file")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (engine names come from the registries)."""
    from . import __version__

    parser = _Parser(
        prog="person-erase",
        description="Find every person in a photo, then erase (inpaint) or redact the ones you choose.",
        epilog=EXAMPLES_TOP,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"person-erase {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("segment", help="find and number the people in a photo", epilog=EXAMPLES_SEGMENT, formatter_class=_Formatter,
                       description="Find every person, print a numbered table, and write a label map and an overlay picture.")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--engine", default="local", metavar="NAME", help="local (default), dashscope, labels:PATH")
    add_local_options(p)
    p.add_argument("--out-dir", metavar="DIR", default=".", help="where to write <stem>.labels.png and <stem>.overlay.png (default: .)")
    p.add_argument("--no-files", action="store_true", help="print the table only, write nothing")
    p.add_argument("--policy", metavar="NAME", help="also show who this policy would erase, and why")
    p.add_argument("--json", action="store_true", help="print JSON rows instead of a table")

    policies = "all, largest:N, passersby, passersby+group"
    p = sub.add_parser("erase", help="erase people and fill the background back in", epilog=EXAMPLES_ERASE, formatter_class=_Formatter,
                       description="Erase the chosen people and fill in the background (PatchMatch by default, offline).")
    p.add_argument("image", metavar="IMAGE")
    _add_selection(p, policies=policies)
    _add_common_out(p, metadata_default="keep")
    p.add_argument("--eraser", default="patchmatch", metavar="NAME",
                   help="patchmatch (default, offline), telea (fast preview), dashscope (cloud), or a redaction style: blur, pixelate, solid")
    p.add_argument("--fast", action="store_true", help="quicker, rougher fill (dashscope fast_mode)")

    p = sub.add_parser("redact", help="hide people with a mask-shaped blur, pixelation or fill", epilog=EXAMPLES_REDACT,
                       formatter_class=_Formatter, description="Hide the chosen people (privacy). GPS tags are dropped by default.")
    p.add_argument("image", metavar="IMAGE")
    _add_selection(p, policies=policies, verb="hide")
    _add_common_out(p, metadata_default="strip-gps")
    p.add_argument("--style", default="blur", metavar="STYLE", help="blur (default), pixelate, solid")
    p.add_argument("--strength", type=float, metavar="SHARE",
                   help="blur sigma / pixel block as a share of the person's height (default 0.08 blur, 0.10 pixelate)")
    p.add_argument("--margin", type=float, metavar="SHARE",
                   help="grow each person's mask by this share of their height (default 0.05; 0 = off)")
    p.add_argument("--box-below", type=int, metavar="PX",
                   help="cover people shorter than PX with their whole box (default 96; 0 = never)")

    p = sub.add_parser("batch", help="process a folder (or a manifest), resumable", formatter_class=_Formatter,
                       description="Erase or redact people in every image of a folder; safe to interrupt and --resume.")
    _add_batch_arguments(p)

    p = sub.add_parser("serve-dashscope", help="run the DashScope-compatible server (try the cloud path offline)",
                       formatter_class=_Formatter,
                       description="Serve the DashScope image-instance-segmentation and image-erase-completion protocol on "
                       "loopback, backed by the local engines. Point the client at it with "
                       "DASHSCOPE_HTTP_BASE_URL=http://127.0.0.1:PORT/api/v1 and any DASHSCOPE_API_KEY.")
    _add_serve_arguments(p)
    # the global switches also work after the command (person-erase erase x.jpg -o y.jpg -q)
    for command in sub.choices.values():
        command.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress messages")
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show tracebacks instead of one-line errors")
    return parser


def _add_batch_arguments(p: argparse.ArgumentParser) -> None:
    try:
        from .batch import add_batch_arguments
    except ImportError:
        p.add_argument("input", metavar="IN_DIR")
        p.add_argument("-o", "--output", required=True, metavar="OUT_DIR")
        return
    add_batch_arguments(p)


def _add_serve_arguments(p: argparse.ArgumentParser) -> None:
    try:
        from .fakecloud.cli import add_serve_arguments
    except ImportError:
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8765)
        return
    add_serve_arguments(p)


# --- progress -------------------------------------------------------------------------------------


@contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[str], None]]:
    """A spinner with the current stage on a terminal; plain lines otherwise; nothing when quiet."""
    if quiet:
        yield lambda _msg: None
        return
    if sys.stderr.isatty():
        from rich.console import Console

        console = Console(stderr=True)
        with console.status("starting…") as status:
            yield lambda msg: status.update(f"{msg}…")
        return
    yield lambda msg: print(f"{msg}…", file=sys.stderr, flush=True)


# --- commands ------------------------------------------------------------------------------------


def _seg_options(args: argparse.Namespace, engine: str) -> dict[str, Any]:
    if engine != "local":
        return {}
    opts: dict[str, Any] = {}
    if getattr(args, "quality", None):
        opts["quality"] = args.quality
    if getattr(args, "min_score", None) is not None:
        opts["score_threshold"] = args.min_score
    return opts


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


def cmd_segment(args: argparse.Namespace, say: Callable[[str], None]) -> int:
    import numpy as np

    from . import load_image, select_people
    from .io import save_image
    from .segmenters import get_segmenter
    from .settings import get_settings

    img = load_image(args.image, max_pixels=get_settings().max_pixels)
    say(f"finding people with {args.engine}")
    seg = get_segmenter(args.engine, **_seg_options(args, args.engine))
    people = seg.segment(img.pixels)
    sel = select_people(people, policy=args.policy, image=img.pixels) if args.policy else None
    h, w = people.shape
    rows = []
    for k, i in enumerate(people.index.tolist()):
        row: dict[str, Any] = {
            "index": i,
            "score": round(float(people.scores[k]), 4),
            "box": [int(v) for v in people.boxes[k]],
            "area_px": int(people.areas[k]),
            "area_pct": round(100.0 * float(people.areas[k]) / (h * w), 3),
        }
        if sel is not None:
            row["selected"] = i in sel.erase
            row["reason"] = sel.reasons.get(i, "")
            if sel.scores.get(i):
                row["cues"] = {k2: round(float(v), 3) for k2, v in sel.scores[i].items()}
        rows.append(row)
    files = {}
    if not args.no_files:
        out_dir = Path(args.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = Path(args.image).stem
        labels = people.to_label_map()
        lp = out_dir / f"{stem}.labels.png"
        from PIL import Image as PILImage

        from .io import check_output_path

        check_output_path(lp, input_path=img.path)
        _atomic_pil(PILImage.fromarray(labels), lp)
        op = save_image(np.asarray(people.overlay(img.pixels)), out_dir / f"{stem}.overlay.png", metadata="strip-all")
        files = {"labels": str(lp), "overlay": str(op)}
    if args.json:
        print(json.dumps({"image": str(args.image), "width": w, "height": h, "people": rows, "files": files,
                          **({"policy": sel.policy, "notes": list(sel.notes)} if sel else {})}, indent=2))
    else:
        n = len(rows)
        print(f"{Path(args.image).name}: {n} {'person' if n == 1 else 'people'} found ({w}x{h})")
        if rows:
            print(_table(rows, with_reasons=sel is not None))
        if sel is not None:
            for note in sel.notes:
                print(f"note: {note}")
        for v in files.values():
            print(f"wrote {v}")
    return 0


def _atomic_pil(im: Any, path: Path) -> None:
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            im.save(fh, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_json_atomic(path: Path, text: str) -> None:
    import tempfile

    from .io import _file_mode

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, _file_mode(path))  # like the image (mkstemp makes it 0600)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            from .errors import InputError

            raise InputError(f"{path}: cannot write the report ({exc.strerror or type(exc).__name__})") from None
        raise


def cmd_erase(args: argparse.Namespace, say: Callable[[str], None], mode: str) -> int:
    from . import pipeline
    from .io import check_output_path, load_image
    from .settings import get_settings

    img = load_image(args.image, max_pixels=get_settings().max_pixels)
    out = check_output_path(args.output, input_path=img.path, overwrite=args.overwrite)
    side = _check_side_outputs(args, out, img.path)
    seg_opts = _seg_options(args, args.segmenter)
    from .segmenters import get_segmenter

    segmenter = get_segmenter(args.segmenter, **seg_opts)
    common: dict[str, Any] = dict(select=args.select, keep=args.keep, policy=args.policy, segmenter=segmenter,
                                  dilate=args.dilate, verify=args.verify, progress=say)
    if mode == "erase":
        opts: dict[str, Any] = {}
        if args.eraser == "dashscope":
            opts["fast_mode"] = bool(args.fast)
        result = pipeline.erase(img, eraser=args.eraser, **common, **opts)
    else:
        given = {"strength": args.strength, "margin": args.margin, "box_below": args.box_below}
        result = pipeline.redact(img, style=args.style, **common, **{k: v for k, v in given.items() if v is not None})
    say("saving")
    existed = {p for p in (out, *side) if p.exists()}
    result.save(out, metadata=args.metadata, overwrite=args.overwrite)
    rep = result.report
    try:
        if args.masks_dir:
            result.save_masks(args.masks_dir, stem=Path(args.image).stem)
        if args.report:
            _write_json_atomic(Path(args.report), rep.to_json())
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
    print(f"{verb} {n} of {len(result.people)} {'person' if len(result.people) == 1 else 'people'} "
          f"({rep.erase_area_px} px) -> {out}")
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


def _check_side_outputs(args: argparse.Namespace, out: Path, input_path: Path | None) -> list[Path]:
    """Check --report and --masks-dir before any work; return the side files this run will write.

    No two outputs may be the same file (a report or a mask written over the image would replace it).
    """
    from .errors import InputError

    side: list[tuple[str, Path]] = []
    if args.report:
        _check_side_file(Path(args.report), input_path)
        side.append(("--report", Path(args.report)))
    if args.masks_dir:
        d = Path(args.masks_dir)
        probe = d
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            raise InputError(f"--masks-dir {d}: {probe} is a file, not a folder")
        if not os.access(probe, os.W_OK):
            raise InputError(f"--masks-dir {d}: the folder {probe} is not writable")
        stem = Path(args.image).stem
        side += [("--masks-dir", d / f"{stem}.erase.png"), ("--masks-dir", d / f"{stem}.keep.png")]
    seen = {out.resolve(): "-o"}
    if input_path is not None:
        seen.setdefault(Path(input_path).resolve(), "the input")
    for flag, path in side:
        key = path.resolve()
        if key in seen:
            raise InputError(f"{flag} would write {path}, which is also {seen[key]}; choose another name")
        seen[key] = flag
    return [p for _, p in side]


def _check_side_file(path: Path, input_path: Path | None) -> None:
    """Fail early (before any heavy work) when a side file such as --report cannot be written."""
    from .errors import InputError

    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"{path}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise InputError(f"{path}: the folder {folder} is not writable")
    if input_path is not None and path.resolve() == Path(input_path).resolve():
        raise InputError(f"{path}: refusing to write the report over the input image")
    if path.is_dir():
        raise InputError(f"--report {path} is a folder; give a file name such as {path / 'report.json'}")


def cmd_batch(args: argparse.Namespace, say: Callable[[str], None]) -> int:
    try:
        from .batch import run_batch_cli
    except ImportError:
        from .errors import EngineError

        raise EngineError("batch processing is not available in this build") from None
    return int(run_batch_cli(args))


def cmd_serve(args: argparse.Namespace, say: Callable[[str], None]) -> int:
    try:
        from .fakecloud.cli import run_serve
    except ImportError:
        from .errors import EngineError

        raise EngineError("the DashScope-compatible server is not available in this build") from None
    return int(run_serve(args) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``person-erase``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get("PERSON_ERASE_DEBUG") == "1"
    from .errors import PersonEraseError

    try:
        with _progress(args.quiet or args.command in ("serve-dashscope", "batch")) as say:
            if args.command == "segment":
                return cmd_segment(args, say)
            if args.command in ("erase", "redact"):
                return cmd_erase(args, say, args.command)
            if args.command == "batch":
                return cmd_batch(args, say)
            return cmd_serve(args, say)
    except KeyboardInterrupt:
        print("error: interrupted; no output was written", file=sys.stderr)
        return 130
    except PersonEraseError as exc:
        if debug:
            raise
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except (OSError, MemoryError) as exc:
        if debug:
            raise
        what = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        where = f"{exc.filename}: " if isinstance(exc, OSError) and exc.filename else ""
        print(f"error: {where}{what}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence: one line, not a traceback
        if debug:
            raise
        print(f"error: internal error ({type(exc).__name__}: {_one_line(str(exc))}); rerun with --debug and report it",
              file=sys.stderr)
        return 1


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
