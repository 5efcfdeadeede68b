"""Pytest fixtures for the cloud tests: a fake DashScope server on 127.0.0.1, a random free port.

Import the fixtures into a test module (``from cloud_server import fake_cloud  # noqa: F401`` — tests/ is on sys.path
under pytest) or
list this module in ``pytest_plugins``. The server uses small latencies and, until the local engines are
what a test wants, simple deterministic backends: ``blob_segmenter`` (connected components of pixels far
from the photo's median colour) and OpenCV Telea inpainting.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from person_erase.cloud import DashScopeClient, Limiters
from person_erase.fakecloud import FakeDashScope
from person_erase.fakecloud.images import telea_erase
from person_erase.fakecloud.inprocess import InProcessTransport
from person_erase.fakecloud.knobs import Knobs
from person_erase.fakecloud.state import FakeState

#: A key distinctive enough to search for in captured output.
TEST_KEY = "sk-pe-test-7f3a9c1e5b2d4f60a8c7"

#: Client options that keep tests quick (the real defaults poll once a second).
FAST = {"poll_interval_s": 0.02, "max_poll_interval_s": 0.1, "backoff_s": 0.02, "max_backoff_s": 0.2, "timeout_s": 30.0}

#: The host name the fake puts in result URLs: DashScope's Beijing result bucket, pinned to 127.0.0.1
#: (PERSON_ERASE_CLOUD_RESOLVE), so every download goes through the client's host allow-list.
RESULT_HOST = "dashscope-result-bj.oss-cn-beijing.aliyuncs.com"


def blob_segmenter(image: np.ndarray) -> np.ndarray:
    """Label map of the blobs in ``image``: components far from the median colour, 300 px or more."""
    step = max(1, int(np.sqrt(image.shape[0] * image.shape[1] / 250_000)))
    median = np.median(image[::step, ::step].reshape(-1, 3), axis=0)
    far = np.abs(image.astype(np.int16) - median).sum(axis=2) > 90
    n, labels = cv2.connectedComponents(far.astype(np.uint8), connectivity=8)
    sizes = np.bincount(labels.ravel(), minlength=n)
    lut = np.zeros(n, np.uint8)
    big = [i for i in range(1, n) if sizes[i] >= 300]
    lut[big] = np.arange(1, len(big) + 1)
    return lut[labels]


@pytest.fixture(scope="module")
def _module_fake():
    """One ``FakeDashScope`` per test module (starting one per test costs more than the tests)."""
    before = {t.ident for t in threading.enumerate()}
    fake = FakeDashScope(
        segment_backend=blob_segmenter,
        erase_backend=telea_erase,
        latency_seg=0.02,
        latency_erase=0.02,
        result_host=RESULT_HOST,
    )
    with fake:
        yield fake
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("fake-dashscope")]
    assert not leftover, f"fake server threads left running: {leftover}"


@pytest.fixture
def fake_cloud(_module_fake, monkeypatch: pytest.MonkeyPatch):
    """The module's ``FakeDashScope`` (real HTTP on 127.0.0.1), reset, with the environment pointing at it."""
    _module_fake.reset()
    monkeypatch.setenv("DASHSCOPE_API_KEY", TEST_KEY)
    for k, v in _module_fake.client_env().items():
        monkeypatch.setenv(k, v)
    yield _module_fake
    _module_fake.reset()


class InProc:
    """A fake service state and clients talking to it in this process (no sockets).

    Tasks end as soon as they are computed (latency 0) and clients poll and back off in milliseconds:
    a test that is about latency, a deadline or a busy runner sets the latency it needs (``configure``).
    The service's pacing (2 submits/s) has its own tests; here it is 50/s.
    """

    def __init__(self, *, segment_backend=blob_segmenter, erase_backend=telea_erase, **knobs) -> None:
        self.state = FakeState(Knobs(**{"latency_seg": 0, "latency_erase": 0, "submits_per_second": 50, **knobs}),
                               segment_backend=segment_backend, erase_backend=erase_backend)
        self.state.root = "http://127.0.0.1:9"
        self.transport = InProcessTransport(self.state, TEST_KEY)
        self._tmp = tempfile.TemporaryDirectory(prefix="pe-inproc-")
        #: a folder for this fake's test files, removed with it
        self.tmp = Path(self._tmp.name)

    def client(self, **kw) -> DashScopeClient:
        # in-process status queries cost microseconds: poll and retry finely, so no test waits out a pause
        opts = {**INPROC_PACE, "api_key": TEST_KEY, "base_url": "http://127.0.0.1:9/api/v1",
                "transport": self.transport, **kw}
        opts.setdefault("limiters", Limiters(submits_per_second=50))
        return DashScopeClient(**opts)

    def configure(self, **knobs):
        return self.state.configure(**knobs)

    def stats(self) -> dict:
        return self.state.snapshot()

    def close(self) -> None:
        self.state.shutdown()
        self._tmp.cleanup()


#: Client options for the in-process fake: polls and back-offs of a few milliseconds.
INPROC_PACE = {"poll_interval_s": 0.002, "max_poll_interval_s": 0.01, "backoff_s": 0.002, "max_backoff_s": 0.02,
               "timeout_s": 30.0}


@pytest.fixture
def inproc():
    """An in-process fake (``InProc``); its task threads are stopped and its files removed afterwards."""
    fake = InProc()
    try:
        yield fake
    finally:
        fake.close()
