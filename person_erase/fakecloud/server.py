"""Run the fake DashScope service: in the foreground (``serve``) or on a background thread (``FakeDashScope``).

``FakeDashScope`` binds 127.0.0.1 on a free port by default, starts in well under a second, and stops
reliably: ``stop()`` (also on ``with`` exit, and at interpreter exit as a safety net) tells uvicorn to
exit, joins its thread, and shuts down the task workers.

Example::

    with FakeDashScope(latency_seg=0.05, erase_backend="telea") as fake:
        os.environ["DASHSCOPE_HTTP_BASE_URL"] = fake.base_url
        ...
        fake.stats()["submitted"]
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
import urllib.request
from typing import Any

from ..errors import EngineError
from .app import create_app
from .knobs import Knobs
from .state import EraseBackend, FakeState, SegmentBackend

logger = logging.getLogger("person_erase.fakecloud")

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _uvicorn_config(app: Any, host: str, port: int, log_level: str) -> Any:
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
        timeout_keep_alive=5,
        server_header=False,
    )


class FakeDashScope:
    """A DashScope-compatible server on a background thread.

    Args:
        host: interface to bind (loopback by default).
        port: TCP port; 0 picks a free one (see ``port`` / ``base_url`` after ``start``).
        segment_backend: ``"local"`` (person_erase's local segmenter, default), another segmenter name,
            or a callable ``(H, W, 3) uint8 -> (H, W) int label map``.
        erase_backend: ``"patchmatch"`` (default), another eraser name, or a callable
            ``(image, erase, keep) -> image``. ``fast_mode`` tasks use ``"telea"`` unless a callable is given.
        log_level: uvicorn's log level.
        **knobs: ``Knobs`` fields (latency_seg, latency_erase, failure_rate, result_ttl_s, …).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        segment_backend: str | SegmentBackend = "local",
        erase_backend: str | EraseBackend = "patchmatch",
        log_level: str = "warning",
        allow_remote: bool = False,
        **knobs: Any,
    ) -> None:
        check_bind(host, allow_remote)
        self.host = host
        self._requested_port = port
        self.state = FakeState(Knobs(**knobs), segment_backend=segment_backend, erase_backend=erase_backend)
        self.app = create_app(self.state)
        self.log_level = log_level
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    def __repr__(self) -> str:
        return f"FakeDashScope(base_url={self.base_url if self.port else None!r})"

    @property
    def root_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The value for ``DASHSCOPE_HTTP_BASE_URL``."""
        return f"{self.root_url}/api/v1"

    def start(self, timeout_s: float = 10.0) -> FakeDashScope:
        """Start serving; returns when the socket is bound.

        Raises:
            EngineError: the server did not come up (port taken, …).
        """
        import uvicorn

        if self._thread is not None:
            return self
        self._server = uvicorn.Server(_uvicorn_config(self.app, self.host, self._requested_port, self.log_level))
        self._thread = threading.Thread(target=self._server.run, name="fake-dashscope", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._thread = None
                self.state.shutdown()
                raise EngineError(f"the fake DashScope server could not start on {self.host}:{self._requested_port}")
            time.sleep(0.01)
        sock = self._server.servers[0].sockets[0]
        self.port = int(sock.getsockname()[1])
        self.state.root = self.root_url
        atexit.register(self.stop)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving, join the server thread and the task workers. Safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._server.should_exit = True
            thread.join(timeout_s)
            if thread.is_alive():  # open keep-alive connections: force it
                self._server.force_exit = True
                thread.join(timeout_s)
            atexit.unregister(self.stop)
        self.state.shutdown()

    def __enter__(self) -> FakeDashScope:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- conveniences -------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """The same counts as ``GET /_fake/stats``."""
        return self.state.snapshot()

    def configure(self, **knobs: Any) -> Knobs:
        """Change knobs while running (e.g. ``throttle_next_submits=3``)."""
        return self.state.configure(**knobs)

    def reset_stats(self) -> None:
        self.state.reset_stats()

    def reset(self) -> None:
        """Back to the knobs it started with; no tasks, uploads, counts or used quota (e.g. between tests)."""
        self.state.reset()

    def get_json(self, path: str) -> Any:
        """GET a path of this server and decode its JSON (for tests and notebooks)."""
        headers = {"Authorization": f"Bearer {self.state.knobs.api_key}"} if self.state.knobs.api_key else {}
        req = urllib.request.Request(f"{self.root_url}{path}", headers=headers)
        with urllib.request.urlopen(req, timeout=10) as rsp:  # noqa: S310 - our own loopback URL
            return json.loads(rsp.read())

    def client_env(self) -> dict[str, str]:
        """Environment for a client of this server: base URL and, with ``result_host``, its address pin."""
        env = {"DASHSCOPE_HTTP_BASE_URL": self.base_url}
        if self.state.knobs.result_host:
            env["PERSON_ERASE_CLOUD_RESOLVE"] = f"{self.state.knobs.result_host}={self.host}"
            env["PERSON_ERASE_CLOUD_RESULT_HOSTS"] = self.state.knobs.result_host
        return env


def check_bind(host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback bind unless ``allow_remote``.

    Raises:
        InputError: ``host`` is not a loopback address and ``allow_remote`` is False.
    """
    import ipaddress

    from ..errors import InputError

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_remote:
        raise InputError(f"host {host!r} is not a loopback address: the fake service would be reachable from other "
                         "machines; pass allow_remote=True to bind it anyway (and set api_key)")


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    segment_backend: str | SegmentBackend = "local",
    erase_backend: str | EraseBackend = "patchmatch",
    log_level: str = "info",
    allow_remote: bool = False,
    **knobs: Any,
) -> None:
    """Serve in the foreground until interrupted (Ctrl-C).

    Raises:
        InputError: a non-loopback ``host`` without ``allow_remote``.
    """
    import uvicorn

    check_bind(host, allow_remote)
    state = FakeState(Knobs(**knobs), segment_backend=segment_backend, erase_backend=erase_backend)
    shown = f"[{host}]" if ":" in host else host
    state.root = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else shown}:{port}"
    try:
        uvicorn.Server(_uvicorn_config(create_app(state), host, port, log_level)).run()
    finally:
        state.shutdown()
