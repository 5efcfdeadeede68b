"""One way to open a model on onnxruntime's CPU provider: YOLOX, MediaPipe's models, CenterFace and the
user's own ONNX files (``onnxmodel``).

Every session gets the same options: at most 2 intra-op threads (``threads`` overrides; a process that
owns a share of the cores, such as a batch pool worker, sets its own default with
``set_process_threads``), no inter-op pool, threads that sleep instead of spinning while they wait (the
next model runs right after on the same few cores, and other processes share them), full graph
optimisation, quiet logs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_PROCESS_THREADS: int | None = None


def set_process_threads(threads: int | None) -> None:
    """The intra-op threads of every session this process opens from now on without ``threads`` (None:
    back to up to 2). For processes that own a share of the machine: a batch pool worker sets its share
    of the cores, so N workers do not run 2N busy threads on N cores. Engines built with ``threads``
    keep theirs.

    Raises:
        ValueError: ``threads`` is less than 1.
    """
    global _PROCESS_THREADS
    if threads is not None and int(threads) < 1:
        raise ValueError(f"threads must be at least 1, got {threads!r}")
    _PROCESS_THREADS = None if threads is None else int(threads)


def default_threads(threads: int | None = None) -> int:
    """``threads``, else the process's (``set_process_threads``), else up to 2 (the cores a photo's models
    can use without starving everything else)."""
    return int(threads or _PROCESS_THREADS or min(2, os.cpu_count() or 1))


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
