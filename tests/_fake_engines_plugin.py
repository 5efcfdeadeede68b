"""Registers the fake batch engines (``figures``, ``logged_telea``) when imported; ``unregister`` removes them.

Worker processes and ``--plugin tests._fake_engines_plugin`` import this module; tests use the
``fake_engines`` fixture of ``tests/test_batch.py``, which unregisters them afterwards so that other
tests see only the real engines.
"""

from __future__ import annotations

from typing import Any

from person_erase.erasers import ERASERS, register_eraser
from person_erase.segmenters import SEGMENTERS, register_segmenter
from tests._fake_engines import FigureSegmenter, LoggedTelea


def figures(**options: Any) -> FigureSegmenter:
    return FigureSegmenter(**options)


def logged_telea(**options: Any) -> LoggedTelea:
    return LoggedTelea(**options)


def register() -> None:
    register_segmenter("figures", figures)
    register_eraser("logged_telea", logged_telea)


def unregister() -> None:
    SEGMENTERS.pop("figures", None)
    ERASERS.pop("logged_telea", None)


register()
