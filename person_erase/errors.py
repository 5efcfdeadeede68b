"""One exception tree for person_erase.

::

    PersonEraseError                 base of everything this package raises on purpose
     ├── InputError(ValueError)      unreadable / truncated / huge / wrong-size input, bad output path
     ├── SelectionError(ValueError)  bad indices, select and keep together, unknown policy
     └── EngineError(RuntimeError)   an engine failed or is not available (unknown name, missing model)
          └── CloudError             the DashScope service (or its protocol) failed; carries code,
               │                     message, request_id and task_id
               └── QuotaExhausted    the model's free quota is used up: stop, do not retry

Library code raises these and never prints or exits; only the CLI turns them into
``error: …`` lines and exit codes. Messages say what was wrong *and* what to do.

Messages name Python parameters, never command-line flags: a parameter is written in backticks,
alone or with a value (`` `dilate` must be >= 0 px ``, `` pass `overwrite=True` ``), and the error
carries the parameter(s) it is about in ``param``. The command-line package (``cli/``) rewrites the
backticked names into its flags (``--dilate``, ``--overwrite``).
"""

from __future__ import annotations

from typing import Any


class PersonEraseError(Exception):
    """Base class of every error person_erase raises on purpose.

    Attributes:
        param: the Python parameter the error is about (a name, or a tuple of names), or None.
    """

    def __init__(self, message: str = "", *, param: str | tuple[str, ...] | None = None) -> None:
        super().__init__(message)
        self.param = param

    @property
    def params(self) -> tuple[str, ...]:
        """``param`` as a tuple (empty when the error is not about a parameter)."""
        if self.param is None:
            return ()
        return (self.param,) if isinstance(self.param, str) else tuple(self.param)

    def __reduce__(self) -> tuple[Any, ...]:  # keep param (and CloudError's fields) across processes
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[PersonEraseError], args: tuple[Any, ...], state: dict[str, Any]) -> PersonEraseError:
    exc = cls.__new__(cls)
    Exception.__init__(exc, *args)
    exc.__dict__.update(state)
    return exc


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
        param: str | tuple[str, ...] | None = None,
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
        super().__init__(" ".join(parts), param=param)


class QuotaExhausted(CloudError):
    """The DashScope model's free quota is used up (``Throttling.AllocationQuota`` "Free allocated quota
    exceeded." or ``AllocationQuota.FreeTierOnly``): nothing more can be submitted to it; stop at once."""
