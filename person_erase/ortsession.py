"""One way to open a model on onnxruntime's CPU provider: YOLOX, MediaPipe's models, CenterFace and the
user's own ONNX files (``onnxmodel``).

Every session gets the same options: at most 2 intra-op threads (``threads`` overrides), no inter-op
pool, threads that sleep instead of spinning while they wait (the next model runs right after on the
same few cores, and other processes share them), full graph optimisation, quiet logs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def default_threads(threads: int | None = None) -> int:
    """``threads``, or up to 2 (the cores a photo's models can use without starving everything else)."""
    return int(threads or min(2, os.cpu_count() or 1))


def cpu_session(model: Path | bytes, *, threads: int | None = None) -> Any:
    """An onnxruntime CPU session for a model file or the model's bytes, with the options above."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = default_threads(threads)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])
