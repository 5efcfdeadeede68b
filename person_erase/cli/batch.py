"""``person-erase batch``: a folder (or a manifest) of photos, resumable.

The arguments and the runner still live in ``person_erase.batch`` (``add_batch_arguments``,
``run_batch_cli``); this module registers the command and delegates.
"""

from __future__ import annotations

import argparse
from typing import Any

from .helpers import Formatter, Say

NAMES = ("batch",)


def register(sub: Any) -> None:
    """Add the ``batch`` subcommand to ``sub`` (the top parser's subparsers)."""
    from ..batch import add_batch_arguments

    p = sub.add_parser("batch", help="process a folder (or a manifest), resumable", formatter_class=Formatter,
                       description="Erase or redact people in every image of a folder; safe to interrupt and --resume.")
    add_batch_arguments(p)


def run(args: argparse.Namespace, say: Say) -> int:
    """Run ``person-erase batch``; returns the exit status."""
    from ..batch import run_batch_cli

    return int(run_batch_cli(args))
