"""DashScope cloud calls: protocol constants, the transport seam, the client, input adaptation, limiters.

* ``protocol`` — model names, paths, limits, documented codes (shared with ``fakecloud``).
* ``transport`` — the ``Transport`` Protocol and ``SdkTransport`` (the only ``dashscope`` importer).
* ``client.DashScopeClient`` — submit / adopt / wait / cancel / upload / download policy.
* ``adapt`` — fit photos and masks into 512..4096 px, 10,000,000 bytes, JPEG/PNG/BMP/WEBP, and undo it.
* ``limits`` — per-model limiters (2 submits/s, 1 task in flight), objects passed to the clients.

Importing this package is cheap; the SDK is imported on first use.
"""

from __future__ import annotations

from .adapt import Adaptation, plan_adaptation
from .client import ERASE_MODEL, SEGMENT_MODEL, DashScopeClient, Intent, TaskResult
from .limits import Limiters, ModelLimiter
from .transport import SdkTransport, Transport

__all__ = [
    "ERASE_MODEL",
    "SEGMENT_MODEL",
    "Adaptation",
    "DashScopeClient",
    "Intent",
    "Limiters",
    "ModelLimiter",
    "SdkTransport",
    "TaskResult",
    "Transport",
    "plan_adaptation",
]
