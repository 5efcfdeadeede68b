"""Run the CLI in this process for a test: ``run(argv, capsys) -> (exit code, stdout, stderr)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from person_erase.cli import main


def run(argv: Sequence[Any], capsys: Any) -> tuple[int, str, str]:
    """``person-erase ARGV`` (paths and numbers are turned into strings); what it printed is consumed."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
