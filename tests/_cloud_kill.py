"""Helpers for the kill -9 test of a cloud batch: fake servers, batch runs in forked children.

``Servers(k)`` runs ``k`` independent ``FakeDashScope`` instances (``figure_labels`` + ``flat_fill``
backends), each on its own loopback port: in a child process, or on threads of the caller.
``run_batch_child`` is the target of a ``forkserver`` child (the SDK and person_erase are preloaded, so a
child starts in milliseconds): it runs a real cloud batch over the real SDK and HTTP and, when ``kill``
names a point, sends itself SIGKILL there — points are "before/after the Nth call" of the transport's
create/get/download for one model, or of the move that puts an output in place.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

SEG, ERA = "image-instance-segmentation", "image-erase-completion"

#: (call, model, before/after, occurrence): ten moments of a cloud batch.
POINTS = [
    ("create", SEG, "before", 2),  # intent journaled, submit not sent
    ("create", SEG, "after", 2),  # task created on the service, its id not journaled
    ("get", SEG, "after", 1),  # polling a journaled segmentation task
    ("download", SEG, "after", 1),  # segmentation downloaded, stage not marked done
    ("create", ERA, "before", 1),
    ("create", ERA, "after", 1),
    ("get", ERA, "after", 1),
    ("download", ERA, "after", 1),
    ("replace", None, "before", 1),  # output written to its temporary file, not renamed
    ("replace", None, "after", 2),  # image and report renamed, journal not yet "done"
]


class Servers:
    """``k`` independent fake DashScope servers, each on its own loopback port.

    ``own_process=True`` (the default) runs them in one child process, like the real remote service: it
    does not share the caller's GIL (``benchmarks/bench_batch.py`` measures throughput against it; the child
    stops when its stdin closes). ``own_process=False`` runs them on threads of the caller: nothing to start
    or import again, for tests whose batches run in other processes anyway (the kill -9 test).
    """

    def __init__(self, k: int, *, own_process: bool = True, **knobs: object) -> None:
        self.k, self.knobs, self.own_process = k, knobs, own_process
        self.fakes: list = []
        self.ports: list[int] = []
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Servers:
        if self.own_process:
            return self._start_process()
        from person_erase.fakecloud import FakeDashScope

        try:
            for _ in range(self.k):
                self.fakes.append(FakeDashScope(**_backends(), **self.knobs).start())  # type: ignore[arg-type]
        except BaseException:
            self.__exit__()
            raise
        self.ports = [int(f.port) for f in self.fakes]
        return self

    def _start_process(self) -> Servers:
        here = Path(__file__).resolve().parent
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(here.parent), str(here), os.environ.get("PYTHONPATH", "")]),
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import _cloud_kill, sys, json; _cloud_kill._serve(int(sys.argv[1]), json.loads(sys.argv[2]))",
                str(self.k),
                json.dumps(self.knobs),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        try:
            self.ports = [int(p) for p in line.split()]
        except ValueError:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"the fake servers did not start: {line!r}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            try:
                self.proc.stdin.close()  # type: ignore[union-attr]
                self.proc.wait(timeout=15)
            except Exception:  # noqa: BLE001 - make sure it is gone
                self.proc.kill()
                self.proc.wait()
            return
        _stop_all(self.fakes)

    def base_url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}/api/v1"

    def stats(self, i: int) -> dict:
        if self.fakes:
            return dict(self.fakes[i].stats())
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[i]}/_fake/stats", timeout=10) as rsp:
            return dict(json.loads(rsp.read()))


def _backends() -> dict:
    from _fake_engines import figure_labels, flat_fill

    return {"segment_backend": figure_labels, "erase_backend": flat_fill}


def _stop_all(fakes: list) -> None:
    """Stop servers side by side: each stop waits for its uvicorn loop to notice (~0.1 s)."""
    import threading

    stops = [threading.Thread(target=f.stop) for f in fakes]
    for t in stops:
        t.start()
    for t in stops:
        t.join()


def _serve(k: int, knobs: dict) -> None:
    from person_erase.fakecloud import FakeDashScope

    fakes = [FakeDashScope(**_backends(), **knobs).start() for _ in range(k)]
    print(" ".join(str(f.port) for f in fakes), flush=True)
    sys.stdin.read()
    _stop_all(fakes)


def preload() -> list[str]:
    return [
        "person_erase.batch",
        "person_erase.batch.executors.cloud",
        "person_erase.cloud.transport",
        "person_erase.segmenters.dashscope",
        "person_erase.erasers.dashscope",
        "dashscope",
        "dashscope.client.base_api",
        "dashscope.utils.oss_utils",
        "requests",
        "httpx",
        "_cloud_kill",
        "_cloud_kill_warm",
    ]


def run_batch_child(src: str, out: str, base_url: str, key: str, kill: list | None) -> None:
    os.environ.update({"DASHSCOPE_API_KEY": key, "DASHSCOPE_HTTP_BASE_URL": base_url})
    from person_erase import batch as B
    from person_erase.cloud import transport as T
    from person_erase.cloud.limits import Limiters

    if kill:
        _arm(T, B, *kill)
    # the pacing (2 submits/s) has its own tests; here it only costs time
    B.run_batch(src, out, params=B.BatchParams(segmenter="dashscope", eraser="dashscope"), resume=True,
                cloud=B.CloudSetup(limiters=Limiters(submits_per_second=50)))


def _arm(T, B, call: str, model: str | None, when: str, nth: int) -> None:
    models: dict[str, str] = {}
    seen = {"n": 0}

    def hit(m: str | None, phase: str) -> None:
        if phase == when and m == model:
            seen["n"] += 1
            if seen["n"] == nth:
                os.kill(os.getpid(), signal.SIGKILL)

    if call == "replace":
        from person_erase.batch.storage import LocalStorage

        real_move = LocalStorage.move

        def move(self, a, b):
            hit(None, "before")
            real_move(self, a, b)
            hit(None, "after")

        LocalStorage.move = move
        return
    real_create = T.SdkTransport.create

    def tracking_create(self, *args, **kw):  # remembers which model each task is for
        rsp = real_create(self, *args, **kw)
        out = rsp.output if isinstance(rsp.output, dict) else {}
        if out.get("task_id"):
            models[out["task_id"]] = args[0]
        return rsp

    T.SdkTransport.create = tracking_create
    real = getattr(T.SdkTransport, call)

    def wrapped(self, *args, **kw):
        if call == "create":
            m = args[0]
        elif call == "get":
            m = models.get(args[0])
        else:
            m = next((v for k, v in models.items() if k in args[0]), None)
        hit(m, "before")
        rsp = real(self, *args, **kw)
        hit(m, "after")
        return rsp

    setattr(T.SdkTransport, call, wrapped)
