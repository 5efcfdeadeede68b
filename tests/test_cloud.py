# ruff: noqa: F811  (pytest fixtures imported from tests.cloud_server)
"""The DashScope client and engines, mostly over the in-process transport (no sockets, fast).

The real SDK over real HTTP is covered by ``test_cloud_http.py`` and ``test_cloud_e2e.py``.
"""

from __future__ import annotations

import io
import logging
import math
import threading
import time

import numpy as np
import pytest
from _imagefactory import make_scene
from cloud_server import FAST, TEST_KEY, InProc, inproc  # noqa: F401
from PIL import Image as PILImage

from person_erase.cloud import ERASE_MODEL, SEGMENT_MODEL, DashScopeClient, Limiters
from person_erase.cloud import protocol as P
from person_erase.cloud.adapt import (
    MAX_FILE_BYTES,
    MAX_SIDE,
    MIN_SIDE,
    adapt_image,
    adapt_mask,
    encode_image,
    plan_adaptation,
    restore_image,
    restore_labels,
)
from person_erase.cloud.limits import ModelLimiter
from person_erase.cloud.transport import Download, Reply, TransportError
from person_erase.erasers.dashscope import DashScopeEraser
from person_erase.errors import CloudError, InputError, QuotaExhausted
from person_erase.fakecloud.inprocess import InProcessTransport
from person_erase.segmenters.dashscope import DashScopeSegmenter

THREE = [(0.2, 0.55, 0.6), (0.5, 0.5, 0.5), (0.8, 0.55, 0.55)]
#: (H, W) of the test scene: the service's smallest side (512), so nothing is padded or scaled
SIZE = (512, 640)


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """Three figures on a smooth background (noise would only make every upload's PNG encode slower)."""
    return make_scene(size=SIZE, people=THREE, noise=0)[0]


def seg(fake: InProc, **kw) -> DashScopeSegmenter:
    return DashScopeSegmenter(client=fake.client(**kw))


def era(fake: InProc, client_kw: dict | None = None, **kw) -> DashScopeEraser:
    return DashScopeEraser(client=fake.client(**(client_kw or {})), **kw)


class Scripted(InProcessTransport):
    """The in-process transport with some calls replaced (a misbehaving service)."""

    def __init__(self, fake: InProc, **overrides) -> None:
        super().__init__(fake.state, TEST_KEY)
        for name, fn in overrides.items():
            setattr(self, name, fn)


# --- success paths ------------------------------------------------------------------------------


def test_segment_and_erase_success(inproc, scene):
    before = scene.copy()
    people = seg(inproc).segment(scene)
    assert len(people) == 3 and people.shape == SIZE
    assert np.array_equal(scene, before)
    cx = (people.boxes[:, 0] + people.boxes[:, 2]) / 2
    assert list(np.argsort(cx)) == [0, 1, 2]
    assert people.info.engine == "dashscope" and P.valid_task_id(people.info.task_ids[0])
    eraser = era(inproc, compose=True)
    erase, keep = people.masks[0].copy(), people.masks[1] | people.masks[2]
    out = eraser.erase(scene, erase, keep=keep)
    changed = (out != scene).any(axis=2)
    assert not changed[~erase].any() and changed[erase].mean() > 0.9
    stats = inproc.stats()
    assert stats["submitted"] == {SEGMENT_MODEL: 1, ERASE_MODEL: 1}
    assert stats["last_inputs"][ERASE_MODEL] == ["foreground_url", "image_url", "mask_url"]


def test_dilate_flag_defaults_true_and_is_recorded(inproc, scene):
    """Item 7: dilate_flag=true by default; the service's extra dilation never reaches the output."""
    from person_erase.compose import apply_eraser

    people = seg(inproc).segment(scene)
    eraser = era(inproc)
    assert eraser.parameters == {"dilate_flag": True, "fast_mode": False, "add_watermark": False}
    mask, keep = people.masks[1], people.masks[0] | people.masks[2]
    out, cstats = apply_eraser(eraser, scene, mask, keep)
    assert inproc.stats()["last_parameters"][ERASE_MODEL] == eraser.parameters
    assert cstats.infos[0].parameters["dilate_flag"] is True
    assert cstats.raw_outside_changed_px > 0  # the service dilated: it changed pixels around the hole ...
    assert not (out != scene).any(axis=2)[~mask].any()  # ... which the pipeline does not take
    assert not (out != scene).any(axis=2)[keep].any()


def test_pipeline_report_records_dilate_flag(inproc, scene):
    import person_erase as pe

    people = seg(inproc).segment(scene)
    result = pe.erase(scene, people, select=[0], eraser=era(inproc))
    assert result.report.outside_mask_changed_px == 0
    text = result.report.to_json()
    assert '"dilate_flag": true' in text.replace('"dilate_flag":true', '"dilate_flag": true')


def test_empty_erase_mask_makes_no_call(inproc, scene):
    out = era(inproc).erase(scene, np.zeros(scene.shape[:2], bool))
    assert np.array_equal(out, scene) and inproc.stats()["uploads"] == 0


# --- item 2: never two tasks for one submit ------------------------------------------------------


def test_connection_dropped_after_submit_adopts_the_task(inproc, scene):
    inproc.configure(drop_after_submit=1)
    s = seg(inproc)
    people = s.segment(scene)
    assert len(people) == 3
    stats = inproc.stats()
    assert stats["submitted"][SEGMENT_MODEL] == 1 and stats["faults"]["dropped_submits"] == 1
    assert inproc.transport.calls["create"] == 1 and inproc.transport.calls["list"] == 1


def test_5xx_on_submit_lists_then_resubmits_when_no_task_exists(inproc, scene):
    inproc.configure(error_next_submits=1, error_status=503)
    assert len(seg(inproc).segment(scene)) == 3
    stats = inproc.stats()
    assert stats["faults"]["submit_errors"] == 1 and stats["submitted"][SEGMENT_MODEL] == 1
    assert inproc.transport.calls["create"] == 2 and inproc.transport.calls["list"] == 1


def test_answer_without_task_id_is_adopted(inproc, scene):
    real = inproc.transport.create

    def create(*a, **kw):
        real(*a, **kw)
        return Reply(200, {"request_id": "r", "output": {"task_status": "PENDING"}})

    c = inproc.client(transport=Scripted(inproc, create=create))
    url, _ = c.upload(_png(inproc, scene), model=SEGMENT_MODEL)
    task = c.submit(SEGMENT_MODEL, {"image_url": url})
    assert inproc.stats()["submitted"][SEGMENT_MODEL] == 1
    assert c.wait(task, model=SEGMENT_MODEL).task_id == task


def test_intent_callback_then_adopt_after_a_crash(inproc, scene):
    """A run killed between the service accepting and the journal saving: the next run adopts by intent."""
    intents = []

    def create(*a, **kw):
        inproc.transport.create(*a, **kw)
        raise KeyboardInterrupt  # "killed" before the id came back

    c = inproc.client(transport=Scripted(inproc, create=create))
    url, _ = c.upload(_png(inproc, scene), model=SEGMENT_MODEL)
    with pytest.raises(KeyboardInterrupt):
        c.submit(SEGMENT_MODEL, {"image_url": url}, on_intent=intents.append)
    assert len(intents) == 1 and intents[0].model == SEGMENT_MODEL
    fresh = inproc.client()  # the next process
    task = fresh.adopt(SEGMENT_MODEL, since=intents[0].time)
    assert task is not None
    assert inproc.client().adopt(SEGMENT_MODEL, since=intents[0].time, exclude=[task]) is None
    assert fresh.wait(task, model=SEGMENT_MODEL).task_id == task
    assert inproc.stats()["submitted"][SEGMENT_MODEL] == 1


def test_adopt_with_several_candidates_takes_the_newest(inproc, scene, caplog):
    inproc.configure(submits_per_second=1000)
    c = inproc.client(limiters=Limiters(submits_per_second=1000, max_in_flight=5))
    url, _ = c.upload(_png(inproc, scene), model=SEGMENT_MODEL)
    since = time.time()
    first = c.submit(SEGMENT_MODEL, {"image_url": url})
    second = c.submit(SEGMENT_MODEL, {"image_url": url}) if _sleep(0.01) else None
    caplog.set_level(logging.WARNING, "person_erase.cloud")
    assert inproc.client().adopt(SEGMENT_MODEL, since=since) == second  # the earlier one is earlier work
    assert first in caplog.text


def test_task_list_answer_in_the_sdk_shape_is_read_and_a_refused_window_is_dropped(inproc):
    """The list answer as the dashscope Java SDK's own test shows it (epoch-ms times, ``status``); a 400
    to the time window is retried once without it, and the client judges recency by ``gmt_create``."""
    now_ms = int(time.time() * 1000)
    sample = {"api_key_id": "1", "caller_parent_id": "2", "caller_uid": "3", "end_time": None,
              "model_name": SEGMENT_MODEL, "region": "cn-beijing", "request_id": "5ddcdba0", "start_time": None,
              "user_api_unique_key": "apikey:v1:aigc:image2image:image-synthesis:" + SEGMENT_MODEL}
    rows = [{**sample, "task_id": "bb7c1bdb-old", "status": "SUCCEEDED", "gmt_create": now_ms - 3_600_000},
            {**sample, "task_id": "bb7c1bdb-new", "status": "PENDING", "gmt_create": str(now_ms)},
            {**sample, "task_id": "bb7c1bdb-mid", "status": "RUNNING", "gmt_create": now_ms - 1000}]
    windows = []

    def listing(*, start_time, **kw):
        windows.append(start_time)
        if start_time is not None:
            return Reply(400, {"code": "InvalidParameter", "message": "start_time is invalid"})
        return Reply(200, {"request_id": "r", "data": rows, "total": 3, "total_page": 1, "page_no": 1,
                           "page_size": 10})

    c = inproc.client(transport=Scripted(inproc, list=listing))
    listed = c.list_tasks(SEGMENT_MODEL, since=time.time() - 60)
    assert [t["task_status"] for t in listed] == ["SUCCEEDED", "PENDING", "RUNNING"]
    assert len(windows) == 2 and windows[0] is not None and windows[1] is None
    assert set(listed[0]) >= set(P.LIST_TASK_FIELDS)
    # adoption: the hour-old task is not "since the intent"; of the two recent ones the newest wins
    assert c.adopt(SEGMENT_MODEL, since=time.time() - 5) == "bb7c1bdb-new"


def test_adoption_reads_the_exclusions_once_it_holds_the_slot(inproc, scene):
    """Another image's task, created and journaled while this adoption waited for the model's slot, is
    not taken for this image's (the batch passes the journal's reader, read with the slot held)."""
    shared = Limiters(submits_per_second=50)
    a, b = inproc.client(limiters=shared), inproc.client(limiters=shared)  # two stage threads' clients
    url, _ = a.upload(_png(inproc, scene), model=SEGMENT_MODEL)
    intent = time.time()  # b's submit was refused (or killed) before the service created anything
    inproc.configure(latency_seg=0.2)
    journal: set[str] = set()
    task_a = a.submit(SEGMENT_MODEL, {"image_url": url})  # a holds the one slot until its task ends
    got: dict = {}
    t = threading.Thread(target=lambda: got.update(b=b.adopt(SEGMENT_MODEL, since=intent, exclude=lambda: journal)))
    t.start()  # waits for the slot
    time.sleep(0.05)
    journal.add(task_a)  # a's stage journals its task id (after b began waiting)
    a.wait(task_a, model=SEGMENT_MODEL)
    t.join(10)
    assert got == {"b": None}
    assert b.adopt(SEGMENT_MODEL, since=intent, exclude=()) == task_a  # what a stale snapshot would have done


# --- item 3: quota exhaustion vs throttling ------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message", "quota", "throttle"),
    [
        (P.ALLOCATION_QUOTA, P.FREE_QUOTA_MESSAGE, True, False),
        (P.ALLOCATION_QUOTA, "free allocated quota exceeded.", True, False),
        (P.FREE_TIER_ONLY, "anything", True, False),
        (P.ALLOCATION_QUOTA, P.ALLOCATION_MESSAGE, False, True),
        (P.RATE_QUOTA, P.RATE_MESSAGE, False, True),
        (P.THROTTLING, "Requests throttling triggered.", False, True),
        ("InvalidParameter", "x", False, False),
    ],
)
def test_quota_and_throttling_told_apart_by_code_and_message(code, message, quota, throttle):
    assert P.is_quota_exhausted(code, message) is quota
    assert P.is_throttled(429, code, message) is throttle


@pytest.mark.parametrize("answer", ["allocation", "free_tier_only"])
def test_quota_exhausted_stops_at_once(inproc, scene, answer):
    inproc.configure(free_quota=1, quota_answer=answer)
    s = seg(inproc)
    assert len(s.segment(scene)) == 3
    creates = inproc.transport.calls["create"]
    t0 = time.monotonic()
    with pytest.raises(QuotaExhausted) as info:
        s.segment(scene)
    assert time.monotonic() - t0 < 1.0
    assert inproc.transport.calls["create"] == creates + 1  # one submit, no retries
    assert info.value.code in (P.ALLOCATION_QUOTA, P.FREE_TIER_ONLY) and "quota" in str(info.value)
    assert inproc.stats()["quota_used"][SEGMENT_MODEL] == 1
    with pytest.raises(QuotaExhausted):  # remembered: not even sent
        s.segment(scene)
    assert inproc.transport.calls["create"] == creates + 1
    inproc.state.reset_quota()
    s.client.limiters.for_model(SEGMENT_MODEL).clear_exhausted()
    assert len(s.segment(scene)) == 3


def test_allocation_limit_message_is_throttling_and_retried(inproc, scene):
    n = {"left": 2}
    real = inproc.transport.create

    def create(*a, **kw):
        if n["left"]:
            n["left"] -= 1
            return Reply(429, {"request_id": "r", "code": P.ALLOCATION_QUOTA, "message": P.ALLOCATION_MESSAGE})
        return real(*a, **kw)

    s = DashScopeSegmenter(client=inproc.client(transport=Scripted(inproc, create=create)))
    assert len(s.segment(scene)) == 3 and n["left"] == 0


def test_throttle_burst_then_success_and_give_up(inproc, scene):
    inproc.configure(throttle_next_submits=3)
    assert len(seg(inproc).segment(scene)) == 3
    assert inproc.stats()["submitted"][SEGMENT_MODEL] == 1
    inproc.configure(throttle_next_submits=5)
    with pytest.raises(CloudError) as info:
        seg(inproc, max_throttle_retries=2).segment(scene)
    assert info.value.code == P.RATE_QUOTA and info.value.status_code == 429


# --- item 4: the in-flight slot ----------------------------------------------------------------


def _busy(fake: InProc, scene: np.ndarray, latency: float) -> str:
    """Occupy the model's one runner with a task of another client; returns its id."""
    fake.configure(latency_seg=latency)
    other = fake.client()
    url, _ = other.upload(_png(fake, scene), model=SEGMENT_MODEL)
    return other.submit(SEGMENT_MODEL, {"image_url": url})


def test_timeout_on_a_pending_task_cancels_it_and_frees_the_slot(inproc, scene):
    _busy(inproc, scene, 1.0)
    s = seg(inproc, timeout_s=0.25)  # the upload and submit fit in it even on a busy machine
    with pytest.raises(CloudError) as info:
        s.segment(scene)
    assert info.value.code == "Timeout" and "cancelled" in str(info.value)
    assert "wait()" not in str(info.value)
    assert inproc.stats()["canceled"][SEGMENT_MODEL] == 1
    assert s.client.limiters.for_model(SEGMENT_MODEL).in_flight == 0


def test_timeout_on_a_running_task_keeps_the_slot_until_it_ends(inproc, scene):
    inproc.configure(latency_seg=0.6)  # PENDING for 0.05 s, then RUNNING
    s = seg(inproc, timeout_s=0.3)  # RUNNING by then, also on a busy machine
    with pytest.raises(CloudError) as info:
        s.segment(scene)
    assert info.value.code == "Timeout" and "slot" in str(info.value)
    lim = s.client.limiters.for_model(SEGMENT_MODEL)
    assert lim.held() == [info.value.task_id]
    inproc.configure(latency_seg=0)
    lim.probe_every_s = 0.02
    people = seg(inproc, limiters=s.client.limiters).segment(scene)  # same limiters: same slot
    first, second = inproc.state.tasks[info.value.task_id], inproc.state.tasks[people.info.task_ids[0]]
    assert len(people) == 3 and first.finished is not None
    assert second.created >= first.finished  # it was submitted only once the abandoned task had ended
    assert inproc.stats()["submitted"][SEGMENT_MODEL] == 2 and lim.in_flight == 0
    # resuming the abandoned task by id still works
    assert len(DashScopeSegmenter(client=inproc.client()).collect(info.value.task_id, size=scene.shape[:2])) == 3


def test_ctrl_c_cancels_a_pending_task(inproc, scene):
    _busy(inproc, scene, 1.0)
    pressed = []

    def get(task_id, *, deadline):  # the second status query is interrupted by "Ctrl-C"
        reply = inproc.transport.get(task_id, deadline=deadline)
        if len(pressed) < 2:
            pressed.append(task_id)
            if len(pressed) == 2:
                raise KeyboardInterrupt
        return reply

    c = inproc.client(transport=Scripted(inproc, get=get))
    url, _ = c.upload(_png(inproc, scene), model=SEGMENT_MODEL)
    task = c.submit(SEGMENT_MODEL, {"image_url": url})
    with pytest.raises(KeyboardInterrupt):
        c.wait(task, model=SEGMENT_MODEL)
    assert inproc.state.tasks[task].status == "CANCELED"
    assert c.limiters.for_model(SEGMENT_MODEL).in_flight == 0


def test_limiter_objects_are_shared_explicitly(inproc, scene):
    shared = Limiters(submits_per_second=50)
    a, b = seg(inproc, limiters=shared), seg(inproc, limiters=shared)
    results: list = []
    threads = [threading.Thread(target=lambda s=s: results.append(len(s.segment(scene)))) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [3, 3]
    assert inproc.stats()["throttled"][SEGMENT_MODEL] == 0 and max(inproc.stats()["in_flight"].values()) <= 1


def test_limiter_paces_submits():
    lim = ModelLimiter("m", submits_per_second=20.0)  # DashScope's 2/s, ten times faster
    t0 = time.monotonic()
    lim.reserve(t0 + 1).release()
    lim.reserve(t0 + 1).release()
    assert time.monotonic() - t0 >= 0.05
    with pytest.raises(CloudError) as info:  # the next one is not allowed before the deadline
        lim.reserve(time.monotonic() + 0.01)
    assert info.value.code == "ClientTimeout" and "submits per second" in str(info.value)


def test_limiter_one_in_flight_per_model():
    lim = ModelLimiter("m", submits_per_second=1000.0)
    slot = lim.reserve(time.monotonic() + 1)
    slot.bind("task-a")
    with pytest.raises(CloudError) as info:
        lim.reserve(time.monotonic() + 0.05)
    assert info.value.code == "ClientTimeout" and "task-a" in str(info.value)
    lim.release("task-a")
    lim.reserve(time.monotonic() + 1).release()
    assert lim.in_flight == 0


# --- faults ------------------------------------------------------------------------------------


def test_failed_task_and_query_errors(inproc, scene):
    inproc.configure(fail_next_tasks=1)
    with pytest.raises(CloudError) as info:
        seg(inproc).segment(scene)
    assert info.value.code == P.ALGO_ERROR and info.value.task_id in str(info.value)
    inproc.configure(error_next_queries=3, error_status=503)
    assert len(seg(inproc).segment(scene)) == 3
    assert inproc.stats()["faults"]["query_errors"] == 3


def test_expired_result_and_dropped_download(inproc, scene):
    inproc.configure(drop_next_downloads=1)
    assert len(seg(inproc).segment(scene)) == 3
    assert inproc.stats()["faults"]["dropped_downloads"] == 1
    inproc.configure(result_ttl_s=0)
    with pytest.raises(CloudError) as info:
        seg(inproc).segment(scene)
    assert info.value.code == "ResultExpired" and info.value.task_id in str(info.value)


def test_unknown_task_id(inproc):
    with pytest.raises(CloudError) as info:
        inproc.client().wait("00000000-0000-0000-0000-000000000000")
    assert info.value.code == "UnknownTask"


# --- item 1: result hosts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "resolve", "ok"),
    [
        (
            "http://dashscope-result-bj.oss-cn-beijing.aliyuncs.com/a.png?Expires=1",
            {"dashscope-result-bj.oss-cn-beijing.aliyuncs.com": "47.93.1.2"},
            True,
        ),
        ("https://x.oss-cn-beijing.aliyuncs.com/a.png", {"x.oss-cn-beijing.aliyuncs.com": "47.93.1.2"}, True),
        ("http://example.com/a.png", {"example.com": "93.184.216.34"}, False),
        ("http://evil.aliyuncs.com.example.com/a.png", {}, False),
        (
            "http://dashscope-result-bj.oss-cn-beijing.aliyuncs.com/a.png",
            {"dashscope-result-bj.oss-cn-beijing.aliyuncs.com": "10.0.0.5"},
            False,
        ),
        (
            "http://dashscope-result-bj.oss-cn-beijing.aliyuncs.com/a.png",
            {"dashscope-result-bj.oss-cn-beijing.aliyuncs.com": "169.254.169.254"},
            False,
        ),
        (
            "http://dashscope-result-bj.oss-cn-beijing.aliyuncs.com/a.png",
            {"dashscope-result-bj.oss-cn-beijing.aliyuncs.com": "127.0.0.1"},
            False,
        ),
        ("ftp://dashscope-result-bj.oss-cn-beijing.aliyuncs.com/a.png", {}, False),
        ("file:///etc/passwd", {}, False),
    ],
)
def test_result_host_rules(url, resolve, ok):
    c = DashScopeClient(
        api_key=TEST_KEY, base_url="https://dashscope.aliyuncs.com/api/v1", resolve=resolve, timeout_s=5
    )
    if ok:
        parsed, addr = c._check_url(url, "t-1", time.monotonic() + 5)
        assert addr == next(iter(resolve.values()))
    else:
        with pytest.raises(CloudError) as info:
            c._check_url(url, "t-1", time.monotonic() + 5)
        assert info.value.code == "BadResultUrl"


def test_loopback_results_only_when_the_api_is_on_loopback():
    c = DashScopeClient(api_key=TEST_KEY, base_url="http://127.0.0.1:9/api/v1", timeout_s=5,
                        resolve={"dashscope-result-bj.oss-cn-beijing.aliyuncs.com": "127.0.0.1"})
    _, addr = c._check_url("http://dashscope-result-bj.oss-cn-beijing.aliyuncs.com:9/r.png", "t", time.monotonic() + 5)
    assert addr == "127.0.0.1"
    _, addr = c._check_url("http://127.0.0.1:9/results/x", "t", time.monotonic() + 5)  # the API's own host
    assert addr == "127.0.0.1"


def _scheme_recorder(fake: InProc, seen: list[str]) -> Scripted:
    """The in-process transport, noting the scheme of every download it is asked for."""
    real = fake.transport.download

    def download(url, **kw):
        seen.append(url.split(":", 1)[0])
        return real(url, **kw)

    return Scripted(fake, download=download)


def test_http_result_is_tried_over_https_first_then_http(inproc, scene):
    seen: list[str] = []
    inproc.configure(result_host="dashscope-result-bj.oss-cn-beijing.aliyuncs.com")
    c = inproc.client(transport=_scheme_recorder(inproc, seen),
                      resolve={"dashscope-result-bj.oss-cn-beijing.aliyuncs.com": "127.0.0.1"})
    assert len(DashScopeSegmenter(client=c).segment(scene)) == 3
    assert seen == ["https", "http"]


def test_results_of_a_plain_http_api_on_its_own_host_are_fetched_over_http(inproc, scene):
    """The bundled server (API on http://127.0.0.1) serves its results itself: no pointless TLS attempt."""
    seen: list[str] = []
    c = inproc.client(transport=_scheme_recorder(inproc, seen))
    assert len(DashScopeSegmenter(client=c).segment(scene)) == 3
    assert seen == ["http"]


def test_redirect_to_another_host_refused_same_host_followed(inproc):
    def download(url, **kw):
        if "/first" in url:
            return Download(302, {"location": "http://127.0.0.1:9/second"})
        if "/second" in url:
            return Download(302, {"location": "http://dashscope-result-bj.oss-cn-beijing.aliyuncs.com/x"})
        return Download(200, {}, b"ok")

    c = inproc.client(transport=Scripted(inproc, download=download))
    with pytest.raises(CloudError) as info:
        c.download("http://127.0.0.1:9/first", task_id="t-1")
    assert info.value.code == "BadResultUrl" and "another host" in str(info.value)


def test_result_size_cap(inproc, scene):
    with pytest.raises(CloudError) as info:
        seg(inproc, max_download_bytes=1000).segment(scene)
    assert info.value.code == "ResultTooLarge"


# --- item 6: 10,000,000 bytes -----------------------------------------------------------------------


def test_ten_megabytes_means_ten_million_bytes(inproc, tmp_path):
    assert MAX_FILE_BYTES == 10_000_000
    c = inproc.client()
    img = np.random.default_rng(0).integers(0, 255, (1826, 1826, 3), dtype=np.uint8)  # BMP: 10,003,122 bytes
    path = tmp_path / "big.bmp"
    PILImage.fromarray(img).save(path)
    assert 10_000_000 < path.stat().st_size < 10 * 1024 * 1024
    url, _ = c.upload(path, model=SEGMENT_MODEL)
    with pytest.raises(CloudError) as info:
        c.submit(SEGMENT_MODEL, {"image_url": url})
    assert info.value.code == "InvalidParameter" and "10000000 bytes" in str(info.value)
    data, ext = encode_image(img)
    assert len(data) <= 10_000_000


# --- issue 18: untrusted answers --------------------------------------------------------------------


def test_key_echoed_by_the_service_is_scrubbed(inproc, scene, caplog):
    caplog.set_level(logging.DEBUG)
    real = inproc.transport.get

    def get(task_id, **kw):
        rsp = real(task_id, **kw)
        body = dict(rsp.body)
        body["request_id"] = f"req-{TEST_KEY}"
        out = dict(body["output"])
        if out.get("task_status") == "FAILED":
            out["message"] = f"bad key {TEST_KEY}"
        body["output"] = out
        return Reply(rsp.status_code, body)

    s = DashScopeSegmenter(client=inproc.client(transport=Scripted(inproc, get=get)))
    people = s.segment(scene)
    assert TEST_KEY not in repr(people.info) and "***" in people.info.request_ids[0]
    inproc.configure(fail_next_tasks=1)
    with pytest.raises(CloudError) as info:
        s.segment(scene)
    for text in (str(info.value), repr(info.value), info.value.request_id or "", caplog.text, repr(s.client)):
        assert TEST_KEY not in text


@pytest.mark.parametrize("bad", [{"id": 1}, "x" * 200_000, "abc/../../uploads", "a b", "", None, 12])
def test_bad_task_ids_are_refused_without_a_request(inproc, bad):
    def create(*a, **kw):
        return Reply(200, {"request_id": "r", "output": {"task_id": bad, "task_status": "PENDING"}})

    t = Scripted(inproc, create=create)
    c = inproc.client(transport=t)
    with pytest.raises(CloudError) as info:
        c.submit(SEGMENT_MODEL, {"image_url": "https://example.com/p.png"})
    assert info.value.code == "BadResponse" and len(str(info.value)) < 300
    with pytest.raises(CloudError):
        c.wait(bad if isinstance(bad, str) else "a/b")
    assert "get" not in t.calls


def _label_png(h: int, w: int) -> bytes:
    buf = io.BytesIO()
    labels = np.zeros((h, w), np.uint8)
    labels[10:40, 10:40] = 1
    PILImage.fromarray(labels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("size", [(100, 100), (600, 400), (200, 100)])
def test_wrong_size_results_are_refused(inproc, scene, size):
    def download(url, **kw):
        return Download(200, {}, _label_png(*size))

    s = DashScopeSegmenter(client=inproc.client(transport=Scripted(inproc, download=download)))
    with pytest.raises(CloudError) as info:
        s.segment(scene)
    assert info.value.code == "BadResult" and "640x512" in str(info.value)


def test_same_aspect_result_is_resampled_and_recorded(inproc, scene):
    def download(url, **kw):
        return Download(200, {}, _label_png(SIZE[0] // 2, SIZE[1] // 2))

    s = DashScopeSegmenter(client=inproc.client(transport=Scripted(inproc, download=download)))
    people = s.segment(scene)
    assert people.shape == SIZE and "resampled" in people.info.details["result_rescaled"]


def test_bomb_in_a_result_is_bad_input_with_load_images_message(inproc, scene, tmp_path):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0))
        + chunk(b"IEND", b"")
    )

    def download(url, **kw):
        return Download(200, {}, bomb)

    s = DashScopeSegmenter(client=inproc.client(transport=Scripted(inproc, download=download)))
    with pytest.raises(InputError) as info:
        s.segment(scene)
    (tmp_path / "bomb.png").write_bytes(bomb)
    with pytest.raises(InputError) as local:
        __import__("person_erase").load_image(tmp_path / "bomb.png")
    assert str(info.value).startswith("the result of task ")
    assert str(info.value).split(": ", 1)[1] == str(local.value).split(": ", 1)[1]  # load_image's message



@pytest.mark.parametrize(
    ("reply", "expect"),
    [
        (Reply(200, None, "<html>oops</html>"), "non-JSON body '<html>oops</html>'"),
        (Reply(200, {"output": {"task_status": "DONE"}}), "DONE"),
        (Reply(200, {"output": {"task_status": None}}), "null"),
        (Reply(200, [1, 2]), "JSON list"),
    ],
)
def test_unexpected_query_answers_say_what_was_received(inproc, reply, expect):
    c = inproc.client(transport=Scripted(inproc, get=lambda task_id, **kw: reply), timeout_s=20)
    t0 = time.monotonic()
    with pytest.raises(CloudError) as info:
        c.wait("task-1")
    assert time.monotonic() - t0 < 2  # not polled to the deadline
    assert info.value.code == "BadResponse" and expect in str(info.value)
    assert "PENDING" not in str(info.value)


def test_503_on_every_query_says_so_at_the_deadline(inproc):
    reply = Reply(503, {"request_id": "r", "code": P.MODEL_UNAVAILABLE, "message": "Model is unavailable."})
    c = inproc.client(transport=Scripted(inproc, get=lambda task_id, **kw: reply), timeout_s=0.2)
    with pytest.raises(CloudError) as info:
        c.wait("task-1")
    assert info.value.code == "Timeout" and "HTTP 503" in str(info.value) and "ModelUnavailable" in str(info.value)


def test_bad_upload_credential_answer_says_what_was_received(inproc, tmp_path):
    from person_erase.cloud.transport import UploadRefused

    def upload(path, **kw):
        raise UploadRefused(Reply(200, None, "not json at all"))

    p = tmp_path / "a.png"
    PILImage.fromarray(np.zeros((10, 10, 3), np.uint8)).save(p)
    c = inproc.client(transport=Scripted(inproc, upload=upload))
    with pytest.raises(CloudError) as info:
        c.upload(p, model=SEGMENT_MODEL)
    assert "not json at all" in str(info.value) and "cannot reach" not in str(info.value)


@pytest.mark.parametrize("bad", [math.nan, math.inf, 0, -5, "soon"])
def test_timeouts_must_be_finite_and_positive(bad, monkeypatch):
    with pytest.raises(InputError):
        DashScopeClient(api_key=TEST_KEY, timeout_s=bad)
    monkeypatch.setenv("PERSON_ERASE_CLOUD_TIMEOUT_S", str(bad))
    with pytest.raises(InputError):
        DashScopeClient(api_key=TEST_KEY)


def test_poll_interval_comes_from_the_settings_unless_given(monkeypatch):
    monkeypatch.delenv("PERSON_ERASE_CLOUD_POLL_S", raising=False)
    assert DashScopeClient(api_key=TEST_KEY).poll_interval_s == 1.0  # the SDK's own first pause
    monkeypatch.setenv("PERSON_ERASE_CLOUD_POLL_S", "0.25")
    assert DashScopeClient(api_key=TEST_KEY).poll_interval_s == 0.25
    assert DashScopeClient(api_key=TEST_KEY, poll_interval_s=2).poll_interval_s == 2
    c = DashScopeClient(api_key=TEST_KEY, poll_interval_s=9)
    assert c.max_poll_interval_s == 9  # the growth cap never undercuts the first pause
    monkeypatch.setenv("PERSON_ERASE_CLOUD_POLL_S", "0")
    with pytest.raises(InputError):
        DashScopeClient(api_key=TEST_KEY)


def test_transport_errors_become_cloud_errors(inproc):
    def get(task_id, **kw):
        raise TransportError("boom", sent=None, kind="dropped")

    c = inproc.client(transport=Scripted(inproc, get=get), timeout_s=0.15)
    with pytest.raises(CloudError) as info:
        c.wait("task-1")
    assert info.value.code == "Timeout" and "boom" in str(info.value)


# --- input adaptation ---------------------------------------------------------------------------


def test_small_input_padded_and_cropped_back(inproc):
    img = make_scene(size=(400, 300), people=[(0.5, 0.55, 0.6)], seed=2)[0]
    people = seg(inproc).segment(img)
    assert people.shape == (400, 300) and len(people) == 1
    assert inproc.stats()["last_image_size"][SEGMENT_MODEL] == [512, 512]
    box = people.boxes[0]
    assert 100 < (box[0] + box[2]) / 2 < 200
    out = era(inproc, compose=True).erase(img, people.masks[0])
    assert not (out != img).any(axis=2)[~people.masks[0]].any()


@pytest.mark.parametrize(
    ("h", "w", "sent"),
    [
        (3000, 4500, (2731, 4096)),
        (400, 300, (512, 512)),
        (600, 800, (600, 800)),
        (100, 3000, (512, 3000)),
        (4200, 4200, (4096, 4096)),
    ],
)
def test_plan_adaptation_fits_limits(h, w, sent):
    plan = plan_adaptation(h, w)
    assert plan.sent == sent
    assert all(MIN_SIDE <= s <= MAX_SIDE for s in plan.sent)
    rng = np.random.default_rng(0)  # a random tile repeated: drawing 72 M random values would dominate the test
    img = np.tile(rng.integers(0, 255, (97, 89, 3), dtype=np.uint8), (h // 97 + 1, w // 89 + 1, 1))[:h, :w]
    mask = np.zeros((h, w), bool)
    mask[h // 3 : h // 2, w // 3 : w // 2] = True
    sent_img, sent_mask = adapt_image(img, plan), adapt_mask(mask, plan)
    assert sent_img.shape[:2] == sent_mask.shape == plan.sent
    back = restore_image(sent_img, plan)
    assert back.shape == img.shape
    if not plan.downscaled:
        assert np.array_equal(back, img)
    labels = restore_labels(sent_mask.astype(np.uint8), plan)
    assert labels.shape == (h, w)
    assert abs(int(labels.sum()) - int(mask.sum())) <= 0.05 * mask.sum() + 4 * (h + w)


@pytest.mark.parametrize("shape", [(60, 80, 3), (1, 20, 3), (20, 1), (7, 5), (511, 300, 3)])
def test_padding_mirrors_like_numpy_reflect(shape):
    from person_erase.cloud.adapt import _pad

    arr = np.random.default_rng(1).integers(0, 255, shape, dtype=np.uint8)
    plan = plan_adaptation(*shape[:2])
    t, b, left, r = plan.pad
    mode = "reflect" if min(shape[:2]) > 1 else "edge"
    want = np.pad(arr, [(t, b), (left, r)] + [(0, 0)] * (arr.ndim - 2), mode=mode)
    assert np.array_equal(_pad(arr, plan.pad), want) and want.shape[:2] == plan.sent


def test_too_elongated_input_is_refused():
    with pytest.raises(InputError, match="aspect"):
        plan_adaptation(50, 5000)


def test_missing_key_fails_before_network(monkeypatch):
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    with pytest.raises(CloudError) as info:
        DashScopeSegmenter()
    assert info.value.code == "MissingApiKey" and "DASHSCOPE_API_KEY" in str(info.value)


# --- helpers ------------------------------------------------------------------------------------


def _png(fake: InProc, arr: np.ndarray):
    path = fake.tmp / f"img-{time.monotonic_ns()}.png"
    PILImage.fromarray(arr).save(path)
    return path


def _sleep(s: float) -> bool:
    time.sleep(s)
    return True
