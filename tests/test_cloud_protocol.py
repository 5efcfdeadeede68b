"""The protocol constants (``cloud/protocol.py``) agree with the reference and are the ones client and fake use."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from person_erase.cloud import adapt, client, limits
from person_erase.cloud import protocol as P
from person_erase.fakecloud import handlers, knobs

REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "dashscope.md"


@pytest.fixture(scope="module")
def ref() -> str:
    if not REFERENCE.is_file():
        pytest.skip("../shared/reference/dashscope.md is not available")
    return " ".join(REFERENCE.read_text(encoding="utf-8").split())


def test_constants_agree_with_the_reference(ref):
    for model in P.MODELS:
        assert f"`{model}`" in ref
    assert f"POST https://dashscope.aliyuncs.com/api/v1{P.SUBMIT_PATH}" in ref
    assert f"GET {{base}}{P.TASKS_PATH}?page_no=1&page_size=10" in ref
    assert f"POST {{base}}{P.TASKS_PATH}/{{task_id}}/cancel" in ref
    assert f"`{P.ASYNC_HEADER}: enable`" in ref and f"`{P.OSS_RESOLVE_HEADER}: enable`" in ref
    assert f"each side {P.MIN_SIDE}–{P.MAX_SIDE} px" in ref
    assert "10,000,000 bytes is the safe reading" in ref and P.MAX_FILE_BYTES == 10_000_000
    assert f"Task-submit {P.SUBMITS_PER_SECOND:g} QPS; {P.MAX_IN_FLIGHT} task in progress at a time" in ref
    assert f"{P.FREE_QUOTA_IMAGES} images per model" in ref
    assert f"{P.TASK_QUERY_QPS} QPS per account" in ref
    assert "24 h" in ref and P.RESULT_TTL_S == 24 * 3600
    assert "JPEG, PNG, JPG, BMP, WEBP" in ref and set(P.ACCEPTED_FORMATS) == {"JPEG", "PNG", "BMP", "WEBP"}
    for status in P.ALL_STATES:
        assert f"`{status}`" in ref, status
    for code in (P.RATE_QUOTA, P.ALLOCATION_QUOTA, P.FREE_TIER_ONLY, P.TOO_LARGE, P.MODEL_UNAVAILABLE,
                 P.INTERNAL_TIMEOUT, P.INVALID_API_KEY, P.JSON_PHRASE, P.FILE_DOWNLOAD, P.IMAGE_FORMAT, P.ALGO_ERROR):
        assert f"`{code}`" in ref, code
    assert f'"{P.FREE_QUOTA_MESSAGE}"' in ref.replace("**", "")
    assert re.search(r"`dashscope-result-bj\.oss-cn-beijing\.aliyuncs\.com", ref.replace("http://", "`"))
    assert P.RESULT_HOSTS[0] == "dashscope-result-bj.oss-cn-beijing.aliyuncs.com"
    assert "start_time=YYYYMMDDhhmmss" in ref and P.LIST_TIME_FORMAT == "%Y%m%d%H%M%S"


def test_client_and_fake_share_the_same_objects():
    assert client.SEGMENT_MODEL is P.SEGMENT_MODEL is handlers.SEGMENT_MODEL
    assert client.ERASE_MODEL is P.ERASE_MODEL is handlers.ERASE_MODEL
    assert adapt.MIN_SIDE is P.MIN_SIDE is handlers.MIN_SIDE and adapt.MAX_SIDE is P.MAX_SIDE is handlers.MAX_SIDE
    assert adapt.MAX_FILE_BYTES is P.MAX_FILE_BYTES is handlers.MAX_IMAGE_BYTES
    assert adapt.ACCEPTED_FORMATS is P.ACCEPTED_FORMATS is handlers.ACCEPTED_FORMATS
    k = knobs.Knobs()
    assert (k.submits_per_second, k.max_in_flight, k.free_quota, k.result_ttl_s) == (
        P.SUBMITS_PER_SECOND, P.MAX_IN_FLIGHT, P.FREE_QUOTA_IMAGES, P.RESULT_TTL_S)
    lim = limits.ModelLimiter("m")
    assert (lim.min_interval_s, lim.max_in_flight) == (1 / P.SUBMITS_PER_SECOND, P.MAX_IN_FLIGHT)


def test_only_the_sdk_transport_imports_dashscope():
    root = Path(__file__).resolve().parents[1] / "person_erase"
    importers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                       if re.search(r"^\s*(from dashscope|import dashscope)", p.read_text(encoding="utf-8"), re.M))
    assert importers == ["cloud/transport.py"]


def test_the_fake_task_list_answers_with_the_sdk_field_names():
    """``GET /tasks``: the page and task fields of the dashscope SDK's list result (``protocol.LIST_*``)."""
    import time

    from person_erase.fakecloud.handlers import handle_list
    from person_erase.fakecloud.knobs import Knobs
    from person_erase.fakecloud.state import FakeState

    fake = FakeState(Knobs(latency_seg=0.01), segment_backend=lambda img: img[:, :, 0] * 0)
    try:
        before = time.time()
        task = fake.create_task(P.SEGMENT_MODEL, {"error": ("InvalidParameter.FileDownload", "none")}, {})
        status, body = handle_list(fake, {"authorization": "Bearer sk-x"}, {"model_name": P.SEGMENT_MODEL})
    finally:
        fake.shutdown()
    assert status == 200 and set(body) == {"request_id", *P.LIST_PAGE_FIELDS}
    (item,) = body["data"]
    assert set(item) == set(P.LIST_TASK_FIELDS)
    assert item["task_id"] == task.task_id and item["status"] in P.ALL_STATES  # type: ignore[union-attr]
    assert isinstance(item["gmt_create"], int) and before * 1000 - 1 <= item["gmt_create"] <= time.time() * 1000
