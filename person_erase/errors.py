"""One exception tree for person_erase.

::

    PersonEraseError                 base of everything this package raises on purpose
     ├── InputError(ValueError)      unreadable / truncated / huge / wrong-size input, bad output path
     ├── SelectionError(ValueError)  bad indices, select and keep together, unknown policy
     └── EngineError(RuntimeError)   an engine failed or is not available (unknown name, missing model)
          └── CloudError             the DashScope service (or its protocol) failed; carries code,
                                     message, request_id and task_id

Library code raises these and never prints or exits; only the CLI turns them into
``error: …`` lines and exit codes. Messages say what was wrong *and* what to do.
"""

from __future__ import annotations


class PersonEraseError(Exception):
    """Base class of every error person_erase raises on purpose."""


class InputError(PersonEraseError, ValueError):
    """An input file, array or output path cannot be used as given."""


class SelectionError(PersonEraseError, ValueError):
    """The choice of people (indices, keep list, policy) is invalid for this photo."""


class EngineError(PersonEraseError, RuntimeError):
    """An engine (segmenter, eraser, cloud service) failed or is unavailable."""


class CloudError(EngineError):
    """DashScope (or a compatible server) reported an error.

    Attributes:
        code: the service's error code, e.g. ``"Throttling.RateQuota"`` or ``"InvalidParameter"``.
        request_id: the service's request id, when one was returned.
        task_id: the task id, when a task had been created.
        status_code: the HTTP status, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
        task_id: str | None = None,
        status_code: int | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.request_id = request_id
        self.task_id = task_id
        self.status_code = status_code
        parts = [message]
        if code:
            parts.insert(0, f"[{code}]")
        extra = []
        if task_id:
            extra.append(f"task {task_id}")
        if request_id:
            extra.append(f"request {request_id}")
        if extra:
            parts.append(f"({', '.join(extra)})")
        super().__init__(" ".join(parts))
