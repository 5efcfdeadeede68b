# ruff: noqa: F811  (pytest fixtures imported from tests.cloud_server)
"""DashScope engines over the real SDK and real HTTP, against the bundled fake server on 127.0.0.1."""

from __future__ import annotations

import io
import logging
import threading

import numpy as np
import pytest
from cloud_server import FAST, TEST_KEY, fake_cloud, make_scene  # noqa: F401
from PIL import Image as PILImage

from person_erase.cloud import ERASE_MODEL, SEGMENT_MODEL, DashScopeClient
from person_erase.cloud.adapt import (
    MAX_SIDE,
    MIN_SIDE,
    adapt_image,
    adapt_mask,
    plan_adaptation,
    restore_image,
    restore_labels,
)
from person_erase.cloud.limits import ModelLimiter
from person_erase.erasers import get_eraser
from person_erase.erasers.dashscope import DashScopeEraser
from person_erase.errors import CloudError, InputError
from person_erase.segmenters import get_segmenter
from person_erase.segmenters.dashscope import DashScopeSegmenter

THREE = [(0.2, 0.55, 0.6), (0.5, 0.5, 0.5), (0.8, 0.55, 0.55)]


@pytest.fixture
def scene() -> np.ndarray:
    return make_scene(600, 800, THREE)


def seg(**kw) -> DashScopeSegmenter:
    return DashScopeSegmenter(**{**FAST, **kw})


def era(**kw) -> DashScopeEraser:
    return DashScopeEraser(**{**FAST, **kw})


def client(**kw) -> DashScopeClient:
    return DashScopeClient(**{**FAST, **kw})


def upload_png(c: DashScopeClient, tmp_path, arr: np.ndarray, model: str, name: str, fmt: str = "PNG") -> str:
    path = tmp_path / name
    PILImage.fromarray(arr).save(path, format=fmt)
    url, _ = c.upload(path, model=model)
    return url


# --- success paths ------------------------------------------------------------------------------


def test_segment_success(fake_cloud, scene):
    before = scene.copy()
    people = get_segmenter("dashscope", **FAST).segment(scene)
    assert len(people) == 3 and people.shape == (600, 800)
    assert np.array_equal(scene, before)
    cx = (people.boxes[:, 0] + people.boxes[:, 2]) / 2
    assert list(np.argsort(cx)) == [0, 1, 2]  # numbered left to right
    assert people.meta["engine"] == "dashscope" and people.meta["task_id"]
    stats = fake_cloud.stats()
    assert stats["submitted"][SEGMENT_MODEL] == 1 and stats["submitted"][ERASE_MODEL] == 0
    assert stats["last_headers"]["oss_resolve"] is True


def test_erase_success_outside_identical(fake_cloud, scene):
    people = seg().segment(scene)
    eraser = get_eraser("dashscope", **FAST)
    assert (eraser.kind, eraser.needs_network, eraser.honours_keep_mask, eraser.crops) == ("inpaint", True, True, False)
    erase, keep = people.masks[0].copy(), people.masks[1] | people.masks[2]
    out = eraser.erase(scene, erase, keep=keep)
    assert out.shape == scene.shape and out.dtype == np.uint8
    changed = (out != scene).any(axis=2)
    assert not changed[~erase].any()
    assert changed[erase].mean() > 0.9  # the red person is gone
    red = (out[:, :, 0] > 200) & (out[:, :, 1] < 80)
    assert red[erase].sum() == 0
    stats = fake_cloud.stats()
    assert stats["submitted"][ERASE_MODEL] == 1
    assert stats["last_parameters"][ERASE_MODEL] == {"dilate_flag": False, "fast_mode": False, "add_watermark": False}
    assert stats["last_inputs"][ERASE_MODEL] == ["foreground_url", "image_url", "mask_url"]
    assert eraser.last_call.task_ids["erase"]
    assert eraser.last_call.notes["service_changed_outside_px"] == 0


def test_erase_parameters_sent_and_empty_keep_omitted(fake_cloud, scene):
    people = seg().segment(scene)
    mask = people.masks[2]
    eraser = era(dilate_flag=True, fast_mode=True, add_watermark=True)
    raw = eraser.erase(scene, mask, keep=np.zeros_like(mask))
    stats = fake_cloud.stats()
    assert stats["last_parameters"][ERASE_MODEL] == {"dilate_flag": True, "fast_mode": True, "add_watermark": True}
    assert stats["last_inputs"][ERASE_MODEL] == ["image_url", "mask_url"]
    # The watermark and the service's own dilation changed pixels outside the mask: returned and counted ...
    outside = int(((raw != scene).any(axis=2) & ~mask).sum())
    assert outside == eraser.last_call.notes["service_changed_outside_px"] > 0
    # ... and the pipeline's compose (or compose=True) keeps only the mask's pixels.
    from person_erase.compose import apply_eraser

    out, cstats = apply_eraser(era(dilate_flag=True, add_watermark=True), scene, mask, np.zeros_like(mask))
    assert cstats.raw_outside_changed_px > 0
    assert not (out != scene).any(axis=2)[~mask].any()
    out2 = era(add_watermark=True, compose=True).erase(scene, mask)
    assert not (out2 != scene).any(axis=2)[~mask].any() and (out2 != scene).any(axis=2)[mask].mean() > 0.9


def test_jpeg_result_changes_outside_are_counted_and_undone(fake_cloud, scene):
    fake_cloud.configure(result_format="jpeg")
    people = seg().segment(scene)
    eraser = era(compose=True)
    out = eraser.erase(scene, people.masks[1], keep=people.masks[0])
    assert eraser.last_call.notes["service_changed_outside_px"] > 1000
    assert not (out != scene).any(axis=2)[~people.masks[1]].any()


def test_empty_erase_mask_makes_no_call(fake_cloud, scene):
    out = era().erase(scene, np.zeros(scene.shape[:2], bool))
    assert np.array_equal(out, scene)
    assert fake_cloud.stats()["uploads"] == 0


# --- faults -------------------------------------------------------------------------------------


def test_failed_task(fake_cloud, scene):
    fake_cloud.configure(fail_next_tasks=1)
    with pytest.raises(CloudError) as info:
        seg().segment(scene)
    assert info.value.code == "InternalError.Algo" and info.value.task_id
    assert info.value.task_id in str(info.value)


def test_throttle_burst_then_success_without_duplicate(fake_cloud, scene):
    fake_cloud.configure(throttle_next_submits=3)
    people = seg().segment(scene)
    assert len(people) == 3
    stats = fake_cloud.stats()
    assert stats["faults"]["throttled_burst"] == 3
    assert stats["submitted"][SEGMENT_MODEL] == 1


def test_throttle_gives_up_after_max_retries(fake_cloud, scene):
    fake_cloud.configure(throttle_next_submits=5)
    with pytest.raises(CloudError) as info:
        seg(max_throttle_retries=2).segment(scene)
    assert info.value.code == "Throttling.RateQuota" and info.value.status_code == 429
    assert fake_cloud.stats()["submitted"][SEGMENT_MODEL] == 0


def test_5xx_on_query_is_retried(fake_cloud, scene):
    fake_cloud.configure(error_next_queries=3, error_status=503)
    assert len(seg().segment(scene)) == 3
    stats = fake_cloud.stats()
    assert stats["faults"]["query_errors"] == 3 and stats["submitted"][SEGMENT_MODEL] == 1


def test_5xx_on_submit_is_not_resubmitted(fake_cloud, scene):
    fake_cloud.configure(error_next_submits=1)
    with pytest.raises(CloudError) as info:
        seg().segment(scene)
    assert info.value.status_code == 500 and info.value.code == "InternalError"
    assert "not retried" in str(info.value)
    assert fake_cloud.stats()["faults"]["submit_errors"] == 1


def test_timeout_then_resume_same_task(fake_cloud, scene):
    fake_cloud.configure(latency_seg=1.5)
    s = seg(timeout_s=0.3)
    with pytest.raises(CloudError) as info:
        s.segment(scene)
    assert info.value.code == "Timeout" and info.value.task_id
    task_id = info.value.task_id
    people = seg(timeout_s=10).collect(task_id, size=scene.shape[:2])  # resume polling, no new submit
    assert len(people) == 3
    assert fake_cloud.stats()["submitted"][SEGMENT_MODEL] == 1


def test_expired_result_names_task(fake_cloud, scene):
    fake_cloud.configure(result_ttl_s=0)
    with pytest.raises(CloudError) as info:
        seg().segment(scene)
    assert info.value.code == "ResultExpired"
    assert info.value.task_id and info.value.task_id in str(info.value)


def test_dropped_download_is_retried(fake_cloud, scene):
    fake_cloud.configure(drop_next_downloads=1)
    assert len(seg().segment(scene)) == 3
    stats = fake_cloud.stats()
    assert stats["faults"]["dropped_downloads"] == 1 and stats["downloads"] == 2


def test_unknown_task_id(fake_cloud):
    with pytest.raises(CloudError) as info:
        client().wait("00000000-0000-0000-0000-000000000000")
    assert info.value.code == "UnknownTask"


def test_two_threads_share_the_per_model_limit(fake_cloud, scene):
    results: list = []
    s1, s2 = seg(), seg()
    threads = [threading.Thread(target=lambda s=s: results.append(len(s.segment(scene)))) for s in (s1, s2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [3, 3]
    stats = fake_cloud.stats()
    assert stats["submitted"][SEGMENT_MODEL] == 2
    assert stats["throttled"][SEGMENT_MODEL] == 0  # the client never broke 1-in-flight / 2 per s


# --- input adaptation ---------------------------------------------------------------------------


@pytest.mark.slow
def test_large_input_adapted_and_restored(fake_cloud):
    img = make_scene(4000, 6000, [(0.3, 0.55, 0.25), (0.7, 0.55, 0.3)], seed=1)
    people = seg().segment(img)
    assert people.shape == (4000, 6000) and len(people) == 2
    assert fake_cloud.stats()["last_image_size"][SEGMENT_MODEL] == [4096, 2731]
    eraser = era()
    out = eraser.erase(img, people.masks[0], keep=people.masks[1])
    assert out.shape == img.shape
    assert not (out != img).any(axis=2)[~people.masks[0]].any()
    assert fake_cloud.stats()["last_image_size"][ERASE_MODEL] == [4096, 2731]
    assert eraser.last_call.notes["adaptation"]["sent"] == [2731, 4096]


def test_small_input_padded_and_cropped_back(fake_cloud):
    img = make_scene(400, 300, [(0.5, 0.55, 0.6)], seed=2)
    people = seg().segment(img)
    assert people.shape == (400, 300) and len(people) == 1
    assert fake_cloud.stats()["last_image_size"][SEGMENT_MODEL] == [512, 512]
    box = people.boxes[0]
    assert 100 < (box[0] + box[2]) / 2 < 200  # the person is where it was drawn, not in the padding
    out = era().erase(img, people.masks[0])
    assert out.shape == img.shape
    assert not (out != img).any(axis=2)[~people.masks[0]].any()


@pytest.mark.parametrize(
    ("h", "w", "sent"),
    [(4000, 6000, (2731, 4096)), (400, 300, (512, 512)), (600, 800, (600, 800)), (100, 3000, (512, 3000)), (5000, 5000, (4096, 4096))],
)
def test_plan_adaptation_fits_limits(h, w, sent):
    plan = plan_adaptation(h, w)
    assert plan.sent == sent
    assert all(MIN_SIDE <= s <= MAX_SIDE for s in plan.sent)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), bool)
    mask[h // 3 : h // 2, w // 3 : w // 2] = True
    sent_img, sent_mask = adapt_image(img, plan), adapt_mask(mask, plan)
    assert sent_img.shape[:2] == sent_mask.shape == plan.sent
    back = restore_image(sent_img, plan)
    assert back.shape == img.shape
    if not plan.downscaled:
        assert np.array_equal(back, img)  # padding is cropped off exactly
    labels = restore_labels(sent_mask.astype(np.uint8), plan)
    assert labels.shape == (h, w)
    assert abs(int(labels.sum()) - int(mask.sum())) <= 0.05 * mask.sum() + 4 * (h + w)


def test_too_elongated_input_is_refused():
    with pytest.raises(InputError, match="aspect"):
        plan_adaptation(50, 5000)


# --- configuration and secrets ------------------------------------------------------------------


def test_missing_key_fails_before_network(fake_cloud, monkeypatch, scene):
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    with pytest.raises(CloudError) as info:
        get_segmenter("dashscope")
    assert info.value.code == "MissingApiKey" and "DASHSCOPE_API_KEY" in str(info.value)
    with pytest.raises(CloudError):
        DashScopeEraser()
    stats = fake_cloud.stats()
    assert stats["queried"] == 0 and stats["uploads"] == 0 and sum(stats["submitted"].values()) == 0


def test_key_never_logged_or_shown(fake_cloud, scene, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    s = seg()
    people = s.segment(scene)
    era().erase(scene, people.masks[0], keep=people.masks[1])
    fake_cloud.configure(fail_next_tasks=1)
    with pytest.raises(CloudError) as failed:
        s.segment(scene)
    fake_cloud.configure(api_key="sk-some-other-key")
    with pytest.raises(CloudError) as refused:
        s.segment(scene)
    assert refused.value.code == "InvalidApiKey" and refused.value.status_code == 401
    out = capsys.readouterr()
    texts = [caplog.text, out.out, out.err, repr(s), repr(s.client), str(failed.value), str(refused.value), repr(refused.value)]
    assert caplog.text  # the SDK and our client did log at DEBUG
    for text in texts:
        assert TEST_KEY not in text


def test_settings_read_at_construction_not_import(fake_cloud, monkeypatch):
    c = DashScopeClient()
    assert c.base_url == fake_cloud.base_url
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", "http://127.0.0.1:9/api/v1")
    assert DashScopeClient().base_url == "http://127.0.0.1:9/api/v1"


# --- server-side validation surfacing as CloudError ---------------------------------------------


def _assert_refused(fn, code: str, status: int | None = 400):
    with pytest.raises(CloudError) as info:
        fn()
    assert info.value.code == code, str(info.value)
    if status is not None:
        assert info.value.status_code == status
    return info.value


def test_validation_errors_surface_with_codes(fake_cloud, tmp_path):
    c = client()
    good = make_scene(600, 600, [(0.5, 0.5, 0.5)])
    img = upload_png(c, tmp_path, good, ERASE_MODEL, "img.png")
    mask = upload_png(c, tmp_path, np.zeros((600, 600), np.uint8), ERASE_MODEL, "mask.png")
    _assert_refused(lambda: c.submit("image-no-such-model", {"image_url": img}), "InvalidParameter")
    _assert_refused(lambda: c.submit(ERASE_MODEL, {"image_url": img}), "InvalidParameter")  # missing mask
    _assert_refused(
        lambda: c.submit(ERASE_MODEL, {"image_url": img, "mask_url": mask}, parameters={"dilate_flag": "yes"}), "InvalidParameter"
    )
    small = upload_png(c, tmp_path, good[:300, :300], SEGMENT_MODEL, "small.png")
    e = _assert_refused(lambda: c.submit(SEGMENT_MODEL, {"image_url": small}), "InvalidParameter")
    assert "512" in str(e)
    wide = upload_png(c, tmp_path, np.zeros((600, 5000, 3), np.uint8), SEGMENT_MODEL, "wide.png")
    _assert_refused(lambda: c.submit(SEGMENT_MODEL, {"image_url": wide}), "InvalidParameter")
    big = upload_png(c, tmp_path, np.zeros((2000, 1800, 3), np.uint8), SEGMENT_MODEL, "big.bmp", fmt="BMP")  # 10.8 MB
    e = _assert_refused(lambda: c.submit(SEGMENT_MODEL, {"image_url": big}), "InvalidParameter")
    assert "10 MB" in str(e)
    gif = upload_png(c, tmp_path, good, SEGMENT_MODEL, "img.gif", fmt="GIF")
    _assert_refused(lambda: c.submit(SEGMENT_MODEL, {"image_url": gif}), "InvalidParameter.ImageFormat")
    junk_path = tmp_path / "junk.png"
    junk_path.write_bytes(b"this is not an image" * 100)
    junk, _ = c.upload(junk_path, model=SEGMENT_MODEL)
    _assert_refused(lambda: c.submit(SEGMENT_MODEL, {"image_url": junk}), "InvalidParameter.ImageFormat")
    mism = upload_png(c, tmp_path, np.zeros((512, 700), np.uint8), ERASE_MODEL, "mism.png")
    _assert_refused(lambda: c.submit(ERASE_MODEL, {"image_url": img, "mask_url": mism}), "InvalidParameter")
    # A temporary upload is bound to the model it was uploaded for: the task fails to download it.
    task = c.submit(SEGMENT_MODEL, {"image_url": img})
    e = _assert_refused(lambda: c.wait(task, model=SEGMENT_MODEL), "InvalidParameter.FileDownload", status=None)
    assert e.task_id == task
    assert sum(fake_cloud.stats()["submitted"].values()) == 1


def test_http_urls_pass_through(fake_cloud, tmp_path, scene):
    c = client()
    url, _ = c.upload("https://example.com/photo.jpg", model=SEGMENT_MODEL)
    assert url == "https://example.com/photo.jpg"
    img = upload_png(c, tmp_path, scene, ERASE_MODEL, "img.png")
    m = np.zeros(scene.shape[:2], np.uint8)
    m[200:300, 300:400] = 255
    mask = upload_png(c, tmp_path, m, ERASE_MODEL, "mask.png")
    erased = c.run(ERASE_MODEL, {"image_url": img, "mask_url": mask}, parameters={"add_watermark": False})
    result_url = erased.url()
    assert result_url.startswith(fake_cloud.root_url)
    uploads = fake_cloud.stats()["uploads"]
    segmented = c.run(SEGMENT_MODEL, {"image_url": result_url})  # an http URL: no upload, no resolve header
    labels = np.asarray(PILImage.open(io.BytesIO(c.download(segmented.url(), task_id=segmented.task_id))))
    assert labels.shape == scene.shape[:2] and labels.max() >= 2
    stats = fake_cloud.stats()
    assert stats["uploads"] == uploads and stats["last_headers"]["oss_resolve"] is False


def test_download_refuses_non_https(fake_cloud):
    c = client()
    for url in ("http://example.com/x.png", "ftp://127.0.0.1/x.png", "file:///etc/passwd"):
        with pytest.raises(CloudError) as info:
            c.download(url, task_id="t-1")
        assert info.value.code == "BadResultUrl"


# --- limiter ------------------------------------------------------------------------------------


def test_limiter_one_in_flight_per_model():
    import time

    lim = ModelLimiter("m", submits_per_second=1000.0)
    slot = lim.reserve(time.monotonic() + 1)
    slot.bind("task-a")
    with pytest.raises(CloudError) as info:
        lim.reserve(time.monotonic() + 0.05)
    assert info.value.code == "ClientTimeout"
    lim.release("task-a")
    lim.reserve(time.monotonic() + 1).release()
    assert lim.in_flight == 0
    lim.track("resumed")
    assert lim.in_flight == 1
    lim.release("resumed")
