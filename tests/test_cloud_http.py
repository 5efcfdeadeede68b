# ruff: noqa: F811  (pytest fixtures imported from tests.cloud_server)
"""The real ``dashscope`` SDK over real HTTP to the fake server on 127.0.0.1, and a misbehaving server.

Result URLs of the fake name DashScope's Beijing result host, pinned to 127.0.0.1 by
``PERSON_ERASE_CLOUD_RESOLVE``: every download goes through the client's host allow-list.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import numpy as np
import pytest
from _imagefactory import make_scene
from cloud_server import FAST, RESULT_HOST, TEST_KEY, _module_fake, fake_cloud  # noqa: F401

from person_erase.cloud import ERASE_MODEL, SEGMENT_MODEL, DashScopeClient
from person_erase.erasers.dashscope import DashScopeEraser
from person_erase.errors import CloudError
from person_erase.segmenters.dashscope import DashScopeSegmenter


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return make_scene(size=(600, 800), people=[(0.25, 0.55, 0.6), (0.7, 0.5, 0.5)], noise=0)[0]


def test_sdk_over_http_segment_erase_and_secrets(fake_cloud, scene, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    s = DashScopeSegmenter(**FAST)
    people = s.segment(scene)
    assert len(people) == 2
    out = DashScopeEraser(**FAST, compose=True).erase(scene, people.masks[0], keep=people.masks[1])
    assert not (out != scene).any(axis=2)[~people.masks[0]].any()
    stats = fake_cloud.stats()
    assert stats["submitted"] == {SEGMENT_MODEL: 1, ERASE_MODEL: 1} and stats["last_headers"]["oss_resolve"] is True
    assert stats["last_parameters"][ERASE_MODEL]["dilate_flag"] is True
    fake_cloud.configure(api_key="sk-some-other-key")
    with pytest.raises(CloudError) as refused:
        s.segment(scene)
    assert refused.value.code == "InvalidApiKey" and refused.value.status_code == 401
    captured = capsys.readouterr()
    for text in (caplog.text, captured.out, captured.err, repr(s), repr(s.client), str(refused.value)):
        assert TEST_KEY not in text


def test_sdk_resend_would_create_two_tasks_and_the_client_creates_one(fake_cloud, scene, tmp_path):
    """Item 2: the stock SDK resends a POST whose connection dropped after the server read it."""
    from dashscope.client.base_api import BaseAsyncApi
    from PIL import Image as PILImage

    c = DashScopeClient(**FAST)
    path = tmp_path / "p.png"
    PILImage.fromarray(scene).save(path)
    url, _ = c.upload(path, model=SEGMENT_MODEL)
    fake_cloud.configure(drop_after_submit=1)
    rsp = BaseAsyncApi.async_call(model=SEGMENT_MODEL, input={"image_url": url}, task_group="aigc", task="image2image",
                                  function="image-synthesis", api_key=TEST_KEY, base_address=fake_cloud.base_url,
                                  headers={"X-DashScope-OssResourceResolve": "enable"})
    assert rsp.status_code == 200
    assert fake_cloud.stats()["submitted"][SEGMENT_MODEL] == 2  # one call, two tasks
    fake_cloud.reset()  # no tasks (the runner stops at once), no counts
    fake_cloud.configure(drop_after_submit=1)
    people = DashScopeSegmenter(**FAST).segment(scene)
    assert len(people) == 2
    stats = fake_cloud.stats()
    assert stats["submitted"][SEGMENT_MODEL] == 1 and stats["faults"]["dropped_submits"] == 1  # adopted, not resent


# --- issue 18 item 3: a stalling or dripping server cannot outlast the budget ------------------------


class Hostile:
    """A loopback server that reads a request and then stalls, or drips one byte per ``drip_s``."""

    def __init__(self, mode: str, drip_s: float = 0.1) -> None:
        self.mode, self.drip_s = mode, drip_s
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.conns: list[socket.socket] = []

    def __enter__(self) -> Hostile:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.sock.close()
        for c in self.conns:
            c.close()
        self.thread.join(5)

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(0.2)
            try:
                conn.recv(65536)
            except OSError:
                pass
            if self.mode == "stall":
                self.stop.wait(60)
                return
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
            conn.sendall(head)
            while not self.stop.wait(self.drip_s):
                conn.sendall(b" ")
        except OSError:
            return


#: Seconds each call may take; the drip (a byte every 0.1 s) keeps every single read well within it.
BUDGET = 0.5


def test_every_call_obeys_the_deadline(tmp_path):
    """Each call against a server that stalls and one that drips bytes, all side by side (one budget of wall
    time for the ten): every one ends with a ``CloudError`` within its budget."""
    import dashscope.client.base_api  # noqa: F401 - the SDK's first import (~1 s) is not part of any call's budget
    import dashscope.utils.oss_utils  # noqa: F401
    from PIL import Image as PILImage

    path = tmp_path / "p.png"
    PILImage.fromarray(np.zeros((600, 600, 3), np.uint8)).save(path)
    with Hostile("stall") as stall, Hostile("drip") as drip:
        calls = {}
        for mode, srv in (("stall", stall), ("drip", drip)):
            base = f"http://127.0.0.1:{srv.port}/api/v1"
            c = DashScopeClient(api_key=TEST_KEY, base_url=base, timeout_s=BUDGET, backoff_s=0.05, max_backoff_s=0.1)
            calls.update({
                (mode, "query"): lambda c=c: c.wait("task-1"),
                (mode, "submit"): lambda c=c: c.submit(SEGMENT_MODEL, {"image_url": "https://example.com/p.png"}),
                (mode, "upload"): lambda c=c: c.upload(path, model=SEGMENT_MODEL),
                (mode, "download"): lambda c=c, u=f"{base[:-7]}/results/x": c.download(u, task_id="t-1"),
                (mode, "list"): lambda c=c: c.list_tasks(SEGMENT_MODEL, since=time.time()),
            })
        took: dict[tuple[str, str], object] = {}

        def timed(key: tuple[str, str]) -> None:
            t0 = time.monotonic()
            try:
                calls[key]()
            except CloudError as exc:
                took[key] = (time.monotonic() - t0, exc.code)
            else:
                took[key] = "no error"

        threads = [threading.Thread(target=timed, args=(k,)) for k in calls]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert set(took) == set(calls), took
    for key, got in took.items():
        assert isinstance(got, tuple) and got[0] < BUDGET + 0.6, (key, took)
