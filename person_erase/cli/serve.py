"""``person-erase serve-dashscope``: the DashScope-compatible server, on loopback unless told otherwise.

Every server knob is an option generated from ``fakecloud.state.Knobs`` (name, type, default, help), so the
CLI and the server's settings model cannot drift apart.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from typing import Any

from .helpers import Say, add_command

NAMES = ("serve-dashscope",)

#: Older spellings kept working.
ALIASES = {"result_ttl_s": ("--result-ttl",), "throttle_next_submits": ("--throttle-next",)}


def _field_type(annotation: Any) -> tuple[Any, bool]:
    """(argparse type, optional) of a Knobs field annotation."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        inner = next(a for a in args if a is not type(None))
        return inner, True
    return annotation, False


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the serve-dashscope options to ``parser`` (the knobs generated from ``Knobs``)."""
    from ..fakecloud.state import Knobs

    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a non-loopback --host (then also set --api-key)")
    parser.add_argument("--segmenter", default="local", metavar="NAME",
                        help="segmenter behind image-instance-segmentation (default local)")
    parser.add_argument("--eraser", default="patchmatch", metavar="NAME",
                        help="eraser behind image-erase-completion (default patchmatch)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                        help="the HTTP server's log level (default info)")
    knobs = parser.add_argument_group("service knobs")
    for name, info in Knobs.model_fields.items():
        typ, _ = _field_type(info.annotation)
        flags = (f"--{name.replace('_', '-')}", *ALIASES.get(name, ()))
        default = info.default
        text = info.description or ""
        if "default" not in text:  # a description that names its default says it better
            text += f" (default {'unset' if default is None else default})"
        knobs.add_argument(*flags, dest=name, type=typ, default=default, metavar=typ.__name__.upper(), help=text)


def knob_values(args: argparse.Namespace) -> dict[str, Any]:
    """The ``Knobs`` fields of parsed arguments."""
    from ..fakecloud.state import Knobs

    return {name: getattr(args, name) for name in Knobs.model_fields}


def register(sub: Any) -> None:
    """Add the ``serve-dashscope`` subcommand to ``sub`` (the top parser's subparsers)."""
    p = add_command(sub, "serve-dashscope", help="run the DashScope-compatible server (try the cloud path offline)",
                    description="Serve the DashScope image-instance-segmentation and "
                    "image-erase-completion protocol on loopback, backed by the local engines. "
                    "Point the client at it with "
                    "DASHSCOPE_HTTP_BASE_URL=http://127.0.0.1:PORT/api/v1 and any DASHSCOPE_API_KEY.")
    add_serve_arguments(p)


def run(args: argparse.Namespace, say: Say) -> int:
    """Run the server in the foreground until Ctrl-C; returns the exit status."""
    from pydantic import ValidationError

    from ..errors import InputError
    from ..fakecloud.server import check_bind, serve
    from ..fakecloud.state import Knobs

    check_bind(args.host, args.allow_remote)
    from ..erasers import ERASERS
    from ..segmenters import SEGMENTERS

    SEGMENTERS.check(args.segmenter)  # an unknown engine is refused now, not by every task once serving
    ERASERS.check(args.eraser)
    try:
        knobs = Knobs(**knob_values(args))
    except ValidationError as exc:
        bad = "; ".join(f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}" for e in exc.errors() if e.get("loc"))
        raise InputError(f"bad server option ({bad})") from None
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"fake DashScope on http://{host}:{args.port}  —  export "
        f"DASHSCOPE_API_KEY={'<your --api-key>' if knobs.api_key else 'sk-test'} "
        f"DASHSCOPE_HTTP_BASE_URL=http://{host}:{args.port}/api/v1  (stats: /_fake/stats)",
        file=sys.stderr,
    )
    try:
        serve(args.host, args.port, segment_backend=args.segmenter, erase_backend=args.eraser, log_level=args.log_level,
              allow_remote=args.allow_remote, **knobs.model_dump())
    except KeyboardInterrupt:
        pass
    return 0
