"""The top-level parser, the command table and the error -> exit status mapping."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

from . import batch, erase, models, segment, serve
from .helpers import Formatter, command_parser, flags_of, one_line, progress, to_flags

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

# command modules in --help order; each has register(subparsers) and run(args, say) -> int
COMMANDS: tuple[ModuleType, ...] = (segment, erase, batch, models, serve)

# commands that show their own progress (no spinner from here)
_OWN_PROGRESS = ("serve-dashscope", "batch")


class _Parser(argparse.ArgumentParser):
    """Usage mistakes end like every other error: one ``error: …`` line (and exit 2, as argparse does)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (engine names come from the registries)."""
    from .. import __version__

    parser = _Parser(
        prog="person-erase",
        description="Find every person in a photo, then erase (inpaint) or redact the ones you choose.",
        epilog=EXAMPLES_TOP,
        formatter_class=Formatter,
    )
    parser.add_argument("--version", action="version", version=f"person-erase {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    # the global switches also work after the command (person-erase erase x.jpg -o y.jpg -q)
    for command in sub.choices.values():
        command.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                             help="no progress messages")
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show tracebacks instead of one-line errors")
    return parser


def _runner(command: str) -> ModuleType:
    for module in COMMANDS:
        if command in module.NAMES:
            return module
    raise AssertionError(f"no module runs {command!r}")  # pragma: no cover - argparse only accepts known names


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``person-erase``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get("PERSON_ERASE_DEBUG") == "1"
    from ..errors import PersonEraseError

    try:
        from ..settings import get_settings

        # one validated Settings for every command, read here (the edge): a bad variable is one line
        args.settings = get_settings()
        with progress(args.quiet or args.command in _OWN_PROGRESS) as say:
            return int(_runner(args.command).run(args, say))
    except KeyboardInterrupt:
        print("error: interrupted; no output was written", file=sys.stderr)
        return 130
    except PersonEraseError as exc:
        if debug:
            raise
        message = to_flags(str(exc), flags_of(command_parser(parser, args.command)))
        print(f"error: {one_line(message)}", file=sys.stderr)
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
        print(f"error: internal error ({type(exc).__name__}: {one_line(str(exc))}); rerun with --debug and report it",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
