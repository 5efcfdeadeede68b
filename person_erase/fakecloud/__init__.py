"""A DashScope-compatible HTTP server for tests, notebooks and people without a key.

It speaks the real protocol of ``image-instance-segmentation`` and ``image-erase-completion`` (submit,
task query, the SDK's temporary-upload flow, expiring result URLs), enforces the real limits (2 submits/s
and 1 task in flight per model) and error codes, and computes real results with person_erase's local
engines. Fault knobs (latency, failure rate, 429/5xx bursts, dropped downloads, expiry) are in ``Knobs``.

``FakeDashScope`` runs it on a background thread (random free port by default); ``serve`` runs it in the
foreground (``person-erase serve-dashscope``). Names are imported lazily so importing the package stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FakeDashScope", "Knobs", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("FakeDashScope", "serve"):
        from . import server

        return getattr(server, name)
    if name == "Knobs":
        from .knobs import Knobs

        return Knobs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
