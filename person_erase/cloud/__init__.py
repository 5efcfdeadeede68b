"""DashScope cloud calls: the SDK client, input adaptation to the service's limits, and rate limiting.

* ``client.DashScopeClient`` — submit / wait / upload / download over the official ``dashscope`` SDK.
* ``adapt`` — fit photos and masks into 512..4096 px, 10 MB, JPEG/PNG/BMP/WEBP, and undo it on results.
* ``limits`` — process-wide per-model limiters (2 submits/s, 1 task in flight).

Importing this package is cheap; the SDK is imported on first use.
"""

from __future__ import annotations

from .adapt import Adaptation, plan_adaptation
from .client import ERASE_MODEL, SEGMENT_MODEL, CallLog, DashScopeClient, TaskResult
from .limits import ModelLimiter, limiter_for

__all__ = [
    "ERASE_MODEL",
    "SEGMENT_MODEL",
    "Adaptation",
    "CallLog",
    "DashScopeClient",
    "ModelLimiter",
    "TaskResult",
    "limiter_for",
    "plan_adaptation",
]
