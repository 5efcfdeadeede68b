"""DashScope task client: submit, wait, adopt, cancel, upload, download — policy over a ``Transport``.

The client holds the rules; the transport (``transport.SdkTransport`` by default, the only place that
imports ``dashscope``) performs single calls. Configuration comes from ``person_erase.settings.Settings``
(``DASHSCOPE_API_KEY``, ``DASHSCOPE_HTTP_BASE_URL``, ``PERSON_ERASE_CLOUD_*``) unless given explicitly.
``DashScopeClient`` is put together from one module per concern: ``core`` (configuration, shared
helpers, the returned types), ``tasks`` (upload, submit, list, adopt), ``wait`` (poll, cancel, give up)
and ``download`` (result URL rules, downloads, decoding); this module re-exports their public names.

Rules:

* **Deadlines.** Every call has a total budget (``timeout_s``, finite and > 0); each request gets what is
  left of it, downloads included (a server dripping bytes is cut off at the deadline).
* **Never two tasks for one submit.** Before each submit the caller may journal an ``Intent`` (model,
  time) through ``on_intent``. When a submit ends without a task id (connection dropped after sending,
  timeout, 5xx, an answer without a usable id) the client lists the model's tasks created since the
  intent (the service's batch task query) and adopts the one it finds instead of submitting again; only
  when the list shows none is the submit repeated. The SDK's own silent POST resend is refused by the
  transport. A batch that resumes with an intent and no task id calls ``adopt`` the same way. With one
  task in flight per model the newest task after the intent is ours; if several are found, the newest
  is adopted and the others are named in a warning and left alone (they may be another program's on
  the same account).
* **Quota vs throttling**, by code *and* message (``protocol.is_quota_exhausted``): quota exhausted
  raises ``QuotaExhausted`` at once; throttling is retried with backoff within the deadline.
* **Slots.** A model's in-flight slot (``limits.Limiters``, passed in) is held until the task is final,
  cancelled or expired. On a timeout or Ctrl-C a PENDING task is cancelled; a RUNNING one keeps its slot
  and is probed before the next submit of that model.
* **Untrusted answers.** Task ids must match ``[A-Za-z0-9-]{1,64}``; every string from the service is
  scrubbed of the API key before it is shown or stored; unexpected answers are quoted (shortened) in the
  error ("say what was received").
* **Result downloads.** Only from allowed hosts (``protocol.RESULT_HOSTS``, ``PERSON_ERASE_CLOUD_RESULT_HOSTS``
  and the API's own host), https tried first and http accepted for those hosts only, no redirect to
  another host, never to a private / link-local / reserved address (loopback only when the API itself is
  on loopback, i.e. the bundled server), size-capped.
"""


from __future__ import annotations

import time
from typing import Any

from . import protocol as P
from .core import MISSING_KEY_HELP, ClientCore, Intent, TaskResult, check_timeout
from .download import DownloadMixin, decode_image_bytes, host_allowed
from .tasks import ADOPT_MARGIN_S, CLOCK_SKEW_S, SubmitMixin, created_s
from .wait import WaitMixin

SEGMENT_MODEL = P.SEGMENT_MODEL
ERASE_MODEL = P.ERASE_MODEL

__all__ = [
    "ADOPT_MARGIN_S",
    "CLOCK_SKEW_S",
    "ERASE_MODEL",
    "MISSING_KEY_HELP",
    "SEGMENT_MODEL",
    "ClientCore",
    "DashScopeClient",
    "Intent",
    "TaskResult",
    "check_timeout",
    "created_s",
    "decode_image_bytes",
    "host_allowed",
]


class DashScopeClient(SubmitMixin, WaitMixin, DownloadMixin):
    """Submit, poll, adopt, cancel, upload and download for DashScope's async image models.

    Args:
        api_key: the key (str or ``SecretStr``); defaults to ``DASHSCOPE_API_KEY`` via ``Settings``.
        base_url: the API base (``DASHSCOPE_HTTP_BASE_URL``); default ``https://dashscope.aliyuncs.com/api/v1``.
        settings: a ``Settings`` to read defaults from (a fresh one from the environment if omitted).
        timeout_s: total seconds of one call (submit, wait, download…); finite, > 0
            (default ``settings.cloud_timeout_s``).
        transport: a ``Transport`` (default ``SdkTransport`` over the real SDK).
        limiters: the ``Limiters`` to share with other clients of the same account (default: own ones).
        poll_interval_s: first pause between status queries (default ``settings.cloud_poll_s``, 1 s); grows
            ×1.5 up to ``max_poll_interval_s``.
        backoff_s: first pause after a 429 / 5xx / dropped connection; doubles up to ``max_backoff_s``.
        max_throttle_retries: throttling answers tolerated per submit before giving up.
        max_download_bytes: largest result file accepted.
        result_hosts: extra allowed result hosts (added to ``protocol.RESULT_HOSTS``).
        resolve: ``{host: ip}`` pinning result hosts' addresses (like curl ``--resolve``).

    Raises:
        CloudError: no API key is configured (code ``"MissingApiKey"``); nothing is sent.
        InputError: ``timeout_s`` (or ``PERSON_ERASE_CLOUD_TIMEOUT_S``) is not finite and > 0.
    """

    def run(self, model: str, input: dict[str, str], *, parameters: dict[str, Any] | None = None,  # noqa: A002
            timeout_s: float | None = None) -> TaskResult:
        """``submit`` then ``wait`` within one overall budget."""
        deadline = self._deadline(timeout_s)
        task_id = self.submit(model, input, parameters=parameters, timeout_s=max(0.05, deadline - time.monotonic()))
        return self.wait(task_id, model=model, timeout_s=max(0.05, deadline - time.monotonic()))
