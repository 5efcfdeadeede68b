"""Helpers shared by the commands: help formatting, progress display, side-output files."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Say = Callable[[str], None]


HELP_WIDTH = 100


class Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34, width=HELP_WIDTH)


def add_command(sub: Any, name: str, *, help: str, description: str, epilog: str | None = None,
                image: bool = False) -> argparse.ArgumentParser:
    """A subcommand parser in the package's help format; ``image`` adds the IMAGE positional.

    ``description`` is one paragraph, wrapped to the help's width; ``epilog`` is printed as written.
    """
    import textwrap

    p: argparse.ArgumentParser = sub.add_parser(name, help=help, epilog=epilog, formatter_class=Formatter,
                                                description=textwrap.fill(" ".join(description.split()), HELP_WIDTH))
    if image:
        p.add_argument("image", metavar="IMAGE", help="the photo: JPEG, PNG, WebP, BMP or TIFF (EXIF orientation "
                       "applied)")
    return p


def load_input(args: argparse.Namespace) -> Any:
    """``args.image`` loaded as a ``pe.Image`` under the settings' pixel limit."""
    from ..io import load_image
    from ..settings import get_settings

    return load_image(args.image, max_pixels=(getattr(args, "settings", None) or get_settings()).max_pixels)


def one_line(text: str) -> str:
    return " ".join(text.split())


#: library parameter -> the ``dest`` of the flag that sets it, where the two names differ
PARAM_DEST = {
    "score_threshold": "min_score",
    "max_detections": "max_people",
    "dilate_px": "dilate",
    "privacy_margin": "margin",
    "box_below_px": "box_below",
    "fast_mode": "fast",
}

_PARAM = re.compile(r"`([A-Za-z_]\w*)(?:=([^`]*))?`")


def flags_of(parser: argparse.ArgumentParser) -> dict[str, str]:
    """``dest`` -> the long flag that sets it (``{"dilate": "--dilate", "min_score": "--min-score"}``)."""
    return {a.dest: a.option_strings[-1] for a in parser._actions if a.option_strings}


def command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The subparser of ``command`` (or ``parser`` itself when there is none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]  # type: ignore[no-any-return]
    return parser


def to_flags(message: str, flags: dict[str, str]) -> str:
    """Rewrite the Python parameters a library message names (in backticks) into this command's flags.

    `` `dilate` `` -> ``--dilate``; `` `overwrite=True` `` -> ``--overwrite``; `` `policy="largest:2"` ``
    -> ``--policy largest:2``. A parameter the command has no flag for loses its backticks only.
    """

    def sub(m: re.Match[str]) -> str:
        name, value = m.group(1), m.group(2)
        flag = flags.get(PARAM_DEST.get(name, name)) or flags.get(name)
        if flag is None:
            return m.group(0)[1:-1]
        if value is None:
            return flag
        value = value.strip("'\"")
        return flag if value == "True" else f"{flag} {value}"

    return _PARAM.sub(sub, message)


@contextmanager
def progress(quiet: bool) -> Iterator[Say]:
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


def atomic_pil(im: Any, path: Path) -> None:
    """Write a PIL image as PNG with ``io.atomic_write`` (usual permissions, like the overlay)."""
    from ..io import atomic_write

    atomic_write(path, lambda fh: im.save(fh, format="PNG"))


def write_json_atomic(path: Path, text: str) -> None:
    """Write the report with ``io.atomic_write``; a failure names the report."""
    from ..errors import InputError
    from ..io import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write(path, lambda fh: fh.write(text.encode()))
    except OSError as exc:
        raise InputError(f"{path}: cannot write the report ({exc.strerror or type(exc).__name__})") from None


def check_side_outputs(args: argparse.Namespace, out: Path, input_path: Path | None) -> list[Path]:
    """Check --report and --masks-dir before any work; return the side files this run will write.

    No two outputs may be the same file (a report or a mask written over the image would replace it).
    """
    from ..errors import InputError

    side: list[tuple[str, Path]] = []
    if args.report:
        check_side_file(Path(args.report), input_path)
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


def check_side_file(path: Path, input_path: Path | None) -> None:
    """Fail early (before any heavy work) when a side file such as --report cannot be written."""
    from ..errors import InputError
    from ..io import check_output_file

    check_output_file(path, example="report.json")
    if input_path is not None and path.resolve() == Path(input_path).resolve():
        raise InputError(f"{path}: refusing to write the report over the input image")
