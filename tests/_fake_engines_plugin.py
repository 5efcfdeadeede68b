"""A batch plugin: importing it registers the fake batch engines (``figures``, ``logged_telea``).

That is what a plugin module does, for the processes that import it as one: batch worker processes
(the module that defines a run's engine), ``--plugin tests._fake_engines_plugin`` in a CLI subprocess.
Test files do not import it: they use the ``fake_engines`` fixture (``tests/conftest.py``), which
imports it, calls ``register`` and puts the registries back as they were afterwards, so no test
outcome depends on which test files were collected or ran before.
"""

from __future__ import annotations

from typing import Any

from person_erase.erasers import register_eraser
from person_erase.segmenters import register_segmenter
from tests._fake_engines import FigureSegmenter, LoggedTelea


def figures(**options: Any) -> FigureSegmenter:
    return FigureSegmenter(**options)


def logged_telea(**options: Any) -> LoggedTelea:
    return LoggedTelea(**options)


def register() -> None:
    """Register (again) ``figures`` and ``logged_telea`` in the real registries."""
    register_segmenter("figures", figures)
    register_eraser("logged_telea", logged_telea)


register()
