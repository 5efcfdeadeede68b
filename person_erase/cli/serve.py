"""``person-erase serve-dashscope``: the DashScope-compatible server on loopback.

The arguments and the runner still live in ``person_erase.fakecloud.cli`` (``add_serve_arguments``,
``run_serve``); this module registers the command and delegates.
"""

from __future__ import annotations

import argparse
from typing import Any

from .helpers import Formatter, Say

NAMES = ("serve-dashscope",)


def register(sub: Any) -> None:
    """Add the ``serve-dashscope`` subcommand to ``sub`` (the top parser's subparsers)."""
    from ..fakecloud.cli import add_serve_arguments

    p = sub.add_parser("serve-dashscope", help="run the DashScope-compatible server (try the cloud path offline)",
                       formatter_class=Formatter,
                       description="Serve the DashScope image-instance-segmentation and "
                       "image-erase-completion protocol on loopback, backed by the local engines. "
                       "Point the client at it with "
                       "DASHSCOPE_HTTP_BASE_URL=http://127.0.0.1:PORT/api/v1 and any DASHSCOPE_API_KEY.")
    add_serve_arguments(p)


def run(args: argparse.Namespace, say: Say) -> int:
    """Run ``person-erase serve-dashscope`` in the foreground; returns the exit status."""
    from ..fakecloud.cli import run_serve

    return int(run_serve(args) or 0)
