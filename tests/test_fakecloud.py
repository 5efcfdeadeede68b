# ruff: noqa: F811  (pytest fixtures imported from tests.cloud_server)
"""The bundled DashScope-compatible server: protocol, validation, limits and bad input, over real HTTP."""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from _imagefactory import make_scene
from cloud_server import FAST, RESULT_HOST, TEST_KEY, _module_fake, fake_cloud  # noqa: F401
from PIL import Image as PILImage

from person_erase.cli.serve import add_serve_arguments
from person_erase.cloud import ERASE_MODEL, SEGMENT_MODEL, DashScopeClient
from person_erase.cloud import protocol as P
from person_erase.errors import CloudError

SUBMIT = "/api/v1/services/aigc/image2image/image-synthesis"
AUTH = {"Authorization": f"Bearer {TEST_KEY}"}
ASYNC = {**AUTH, "X-DashScope-Async": "enable"}


def one_person() -> np.ndarray:
    """A 600x600 photo with one figure (a smooth background: it encodes fast)."""
    return make_scene(size=(600, 600), people=[(0.5, 0.5, 0.5)], noise=0)[0]


def local(url: str) -> str:
    """A result URL of the fake with its (pinned) host name replaced by 127.0.0.1, for plain httpx."""
    return url.replace(RESULT_HOST, "127.0.0.1")


def post(fake, path: str, **kw) -> httpx.Response:
    return httpx.post(f"{fake.root_url}{path}", timeout=30, **kw)


def assert_ds_error(rsp: httpx.Response, status: int, code: str) -> dict:
    assert rsp.status_code == status, rsp.text
    assert rsp.headers["content-type"].startswith("application/json")
    body = rsp.json()
    assert body["code"] == code and body["message"] and body["request_id"]
    return body


def uploaded(fake, tmp_path: Path, model: str, arr: np.ndarray, name: str = "img.png") -> str:
    c = DashScopeClient(api_key=TEST_KEY, base_url=fake.base_url, **FAST)
    path = tmp_path / name
    PILImage.fromarray(arr).save(path)
    return c.upload(path, model=model)[0]


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({}, {"model": SEGMENT_MODEL, "input": {"image_url": "x"}}, 401, "InvalidApiKey"),
        ({"Authorization": "Basic abc", "X-DashScope-Async": "enable"}, {"model": SEGMENT_MODEL}, 401, "InvalidApiKey"),
        ({"Authorization": "Bearer"}, {"model": SEGMENT_MODEL}, 401, "InvalidApiKey"),
        (AUTH, {"model": SEGMENT_MODEL, "input": {"image_url": "x"}}, 403, "AccessDenied"),
        (ASYNC, [1, 2, 3], 400, "InvalidParameter.JsonPhrase"),
        (ASYNC, {"input": {"image_url": "x"}}, 400, "BadRequest.EmptyModel"),
        (ASYNC, {"model": "wanx-v1", "input": {"image_url": "x"}}, 400, "InvalidParameter"),
        (ASYNC, {"model": SEGMENT_MODEL}, 400, "BadRequest.EmptyInput"),
        (ASYNC, {"model": SEGMENT_MODEL, "input": {"mask_url": "x"}}, 400, "InvalidParameter"),
        (ASYNC, {"model": ERASE_MODEL, "input": {"image_url": "x"}}, 400, "InvalidParameter"),
        (
            ASYNC,
            {"model": ERASE_MODEL, "input": {"image_url": "x", "mask_url": "y"}, "parameters": {"fast_mode": 1}},
            400,
            "InvalidParameter",
        ),
        (
            ASYNC,
            {"model": ERASE_MODEL, "input": {"image_url": "x", "mask_url": "y"}, "parameters": "fast"},
            400,
            "InvalidParameter",
        ),
    ],
)
def test_submit_validation(fake_cloud, headers, body, status, code):
    assert_ds_error(post(fake_cloud, SUBMIT, headers=headers, json=body), status, code)
    assert sum(fake_cloud.stats()["submitted"].values()) == 0


def test_bad_bodies_get_dashscope_errors(fake_cloud):
    assert_ds_error(
        post(fake_cloud, SUBMIT, headers={**ASYNC, "Content-Type": "application/json"}, content=b"{not json"),
        400,
        "InvalidParameter.JsonPhrase",
    )
    assert_ds_error(
        post(fake_cloud, SUBMIT, headers={**ASYNC, "Content-Type": "application/json"}, content=b"\xff\xfe\x00"),
        400,
        "InvalidParameter.JsonPhrase",
    )
    assert_ds_error(
        post(fake_cloud, SUBMIT, headers={**ASYNC, "Content-Type": "text/plain"}, content=b"hello"),
        400,
        "InvalidParameter",
    )
    assert_ds_error(
        post(
            fake_cloud, SUBMIT, headers={**ASYNC, "Content-Type": "application/json"}, content=b"x" * (3 * 1024 * 1024)
        ),
        413,
        "BadRequest.TooLarge",
    )
    huge = b'{"model": "' + b"a" * (20 * 1024 * 1024) + b'"}'
    assert_ds_error(
        post(fake_cloud, SUBMIT, headers={**ASYNC, "Content-Type": "application/json"}, content=huge),
        413,
        "BadRequest.TooLarge",
    )
    assert_ds_error(httpx.get(f"{fake_cloud.root_url}/api/v1/nowhere", timeout=10), 404, "NotFound")
    assert_ds_error(httpx.get(f"{fake_cloud.root_url}{SUBMIT}", timeout=10), 405, "MethodNotAllowed")
    assert_ds_error(httpx.get(f"{fake_cloud.root_url}/api/v1/tasks/abc", timeout=10), 401, "InvalidApiKey")
    assert_ds_error(post(fake_cloud, "/_fake/config", content=b'{"no_such_knob": 1}'), 400, "InvalidParameter")
    assert_ds_error(post(fake_cloud, "/_fake/config", content=b'{"failure_rate": 7}'), 400, "InvalidParameter")
    # Still alive and counting.
    assert httpx.get(f"{fake_cloud.root_url}/_fake/health", timeout=10).json() == {"ok": True}
    assert fake_cloud.stats()["rejected"]["InvalidParameter.JsonPhrase"] == 2


def test_upload_endpoint_rejects_bad_posts(fake_cloud, tmp_path):
    rsp = httpx.get(
        f"{fake_cloud.base_url}/uploads",
        params={"action": "getPolicy", "model": SEGMENT_MODEL},
        headers=AUTH,
        timeout=10,
    )
    data = rsp.json()["data"]
    assert data["upload_host"].startswith(fake_cloud.root_url)
    form = {
        "OSSAccessKeyId": data["oss_access_key_id"],
        "Signature": data["signature"],
        "policy": data["policy"],
        "key": data["upload_dir"] + "/a.png",
        "x-oss-object-acl": "private",
        "x-oss-forbid-overwrite": "true",
        "success_action_status": "200",
    }
    files = {"file": ("a.png", b"\x89PNG fake", "image/png")}
    assert httpx.post(data["upload_host"], data=form, files=files, timeout=10).status_code == 200
    again = httpx.post(data["upload_host"], data=form, files=files, timeout=10)
    assert again.status_code == 409 and b"FileAlreadyExists" in again.content
    forged = httpx.post(
        data["upload_host"],
        data={**form, "Signature": "bad", "key": data["upload_dir"] + "/b.png"},
        files=files,
        timeout=10,
    )
    assert forged.status_code == 403 and b"SignatureDoesNotMatch" in forged.content
    outside = httpx.post(data["upload_host"], data={**form, "key": "elsewhere/c.png"}, files=files, timeout=10)
    assert outside.status_code == 403
    plain = httpx.post(
        data["upload_host"], content=b"not multipart", headers={"Content-Type": "text/plain"}, timeout=10
    )
    assert plain.status_code == 400 and b"<Error>" in plain.content
    broken = httpx.post(
        data["upload_host"],
        content=b"--x\r\ngarbage",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
        timeout=10,
    )
    assert broken.status_code == 400
    bad_model = httpx.get(
        f"{fake_cloud.base_url}/uploads", params={"action": "getPolicy", "model": "nope"}, headers=AUTH, timeout=10
    )
    assert_ds_error(bad_model, 400, "InvalidParameter")
    assert fake_cloud.stats()["uploads"] == 1


def test_task_lifecycle_and_result_urls(fake_cloud, tmp_path):
    fake_cloud.configure(latency_seg=0.4)  # PENDING 0.05 s, RUNNING 0.35 s: both seen at 50 ms polls
    url = uploaded(fake_cloud, tmp_path, SEGMENT_MODEL, one_person())
    rsp = post(
        fake_cloud,
        SUBMIT,
        headers={**ASYNC, "X-DashScope-OssResourceResolve": "enable"},
        json={"model": SEGMENT_MODEL, "input": {"image_url": url}, "parameters": {}},
    )
    assert rsp.status_code == 200
    out = rsp.json()["output"]
    assert out["task_status"] == "PENDING"
    seen = []
    body: dict = {}
    for _ in range(100):
        body = httpx.get(f"{fake_cloud.base_url}/tasks/{out['task_id']}", headers=AUTH, timeout=10).json()
        status = body["output"]["task_status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in ("SUCCEEDED", "FAILED"):
            break
        time.sleep(0.05)
    assert seen[-2:] == ["RUNNING", "SUCCEEDED"]
    assert body["usage"] == {"image_count": 1}
    o = body["output"]
    assert {"submit_time", "scheduled_time", "end_time", "output_image_url", "output_vis_image_url"} <= set(o)
    assert o["output_image_url"].startswith(f"http://{RESULT_HOST}:")  # not this server's address
    mask = np.asarray(PILImage.open(io.BytesIO(httpx.get(local(o["output_image_url"]), timeout=10).content)))
    assert mask.shape == (600, 600) and mask.max() == 1
    vis = PILImage.open(io.BytesIO(httpx.get(local(o["output_vis_image_url"]), timeout=10).content))
    assert vis.size == (600, 600)
    tampered = local(o["output_image_url"]).replace("Signature=", "Signature=x")
    assert httpx.get(tampered, timeout=10).status_code == 403
    unknown = httpx.get(f"{fake_cloud.base_url}/tasks/no-such-task", headers=AUTH, timeout=10).json()
    assert unknown["output"]["task_status"] == "UNKNOWN"


def test_oss_input_needs_resolve_header(fake_cloud, tmp_path):
    url = uploaded(fake_cloud, tmp_path, SEGMENT_MODEL, one_person())
    rsp = post(fake_cloud, SUBMIT, headers=ASYNC, json={"model": SEGMENT_MODEL, "input": {"image_url": url}})
    task_id = rsp.json()["output"]["task_id"]
    c = DashScopeClient(api_key=TEST_KEY, base_url=fake_cloud.base_url, **FAST)
    with pytest.raises(CloudError) as info:
        c.wait(task_id)
    assert info.value.code == "InvalidParameter.FileDownload" and "OssResourceResolve" in str(info.value)


def test_server_enforces_rate_queues_a_second_task_and_lists_and_cancels(fake_cloud, tmp_path):
    """Straight through the SDK (our client paces itself, so it would never trip these)."""
    from dashscope.client.base_api import BaseAsyncApi

    url = uploaded(fake_cloud, tmp_path, SEGMENT_MODEL, one_person())

    def submit():
        return BaseAsyncApi.async_call(
            model=SEGMENT_MODEL,
            input={"image_url": url},
            task_group="aigc",
            task="image2image",
            function="image-synthesis",
            api_key=TEST_KEY,
            base_address=fake_cloud.base_url,
            headers={"X-DashScope-OssResourceResolve": "enable"},
        )

    fake_cloud.configure(latency_seg=2.0)
    first, second, third = submit(), submit(), submit()
    assert first.status_code == 200 and second.status_code == 200  # a second task waits PENDING (not rejected)
    assert third.status_code == 429 and third.code == P.RATE_QUOTA  # 3 within one second break 2/s
    time.sleep(0.2)
    ids = [first.output["task_id"], second.output["task_id"]]
    states = {i: fake_cloud.state.tasks[i].status for i in ids}
    assert states == {ids[0]: "RUNNING", ids[1]: "PENDING"}
    listed = httpx.get(
        f"{fake_cloud.base_url}/tasks",
        headers=AUTH,
        timeout=10,
        params={"model_name": SEGMENT_MODEL, "page_no": 1, "page_size": 10, "start_time": "20200101000000"},
    ).json()
    assert {d["task_id"] for d in listed["data"]} == set(ids) and listed["total"] == 2
    pending = httpx.get(f"{fake_cloud.base_url}/tasks", headers=AUTH, timeout=10, params={"status": "PENDING"}).json()
    assert [d["task_id"] for d in pending["data"]] == [ids[1]]
    assert httpx.post(f"{fake_cloud.base_url}/tasks/{ids[1]}/cancel", headers=AUTH, timeout=10).status_code == 200
    again = httpx.post(f"{fake_cloud.base_url}/tasks/{ids[0]}/cancel", headers=AUTH, timeout=10)
    assert again.status_code == 400  # only PENDING tasks can be cancelled
    body = httpx.get(f"{fake_cloud.base_url}/tasks/{ids[1]}", headers=AUTH, timeout=10).json()
    assert body["output"]["task_status"] == "CANCELED"
    fake_cloud.state.cancel_task(ids[0])


def test_quota_exhausted_answer_is_the_documented_one(fake_cloud, tmp_path):
    url = uploaded(fake_cloud, tmp_path, SEGMENT_MODEL, one_person())
    fake_cloud.configure(free_quota=0)
    body = {"model": SEGMENT_MODEL, "input": {"image_url": url}}
    rsp = post(fake_cloud, SUBMIT, headers={**ASYNC, "X-DashScope-OssResourceResolve": "enable"}, json=body)
    assert assert_ds_error(rsp, 429, P.ALLOCATION_QUOTA)["message"] == P.FREE_QUOTA_MESSAGE
    fake_cloud.configure(quota_answer="free_tier_only")
    rsp = post(fake_cloud, SUBMIT, headers={**ASYNC, "X-DashScope-OssResourceResolve": "enable"}, json=body)
    assert_ds_error(rsp, 403, P.FREE_TIER_ONLY)
    assert fake_cloud.stats()["submitted"][SEGMENT_MODEL] == 0


def test_api_key_guards_every_route_and_urls_ignore_the_host_header(tmp_path):
    from person_erase.fakecloud import FakeDashScope

    with FakeDashScope(segment_backend=lambda img: np.zeros(img.shape[:2], np.uint8), erase_backend=lambda i, e, k: i,
                       latency_seg=0.01, api_key=TEST_KEY) as fake:
        root = fake.root_url
        for path in ("/_fake/stats", "/_fake/config", "/_fake/health", "/api/v1/tasks", "/api/v1/tasks/x"):
            assert httpx.get(f"{root}{path}", timeout=10).status_code == 401, path
            assert httpx.get(f"{root}{path}", headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
        for path in ("/_fake/config", "/_fake/quota/reset", "/api/v1/tasks/x/cancel"):
            assert httpx.post(f"{root}{path}", content=b'{"max_upload_bytes": 60000000}', timeout=10).status_code == 401
        assert fake.state.knobs.max_upload_bytes == 32 * 1024 * 1024  # nobody reconfigured it
        assert httpx.get(f"{root}/_fake/stats", headers=AUTH, timeout=10).status_code == 200
        url = uploaded(fake, tmp_path, SEGMENT_MODEL, one_person())
        rsp = post(
            fake,
            SUBMIT,
            headers={**ASYNC, "X-DashScope-OssResourceResolve": "enable", "Host": "evil.example:1"},
            json={"model": SEGMENT_MODEL, "input": {"image_url": url}},
        )
        task = rsp.json()["output"]["task_id"]
        for _ in range(100):
            out = httpx.get(
                f"{root}/api/v1/tasks/{task}", headers={**AUTH, "Host": "evil.example:1"}, timeout=10
            ).json()["output"]
            if out["task_status"] == "SUCCEEDED":
                break
            time.sleep(0.02)
        assert out["output_image_url"].startswith(root + "/results/")  # the bound address, not the Host header


def test_non_loopback_bind_needs_allow_remote(capsys):
    from person_erase.cli import main
    from person_erase.errors import InputError
    from person_erase.fakecloud import FakeDashScope

    with pytest.raises(InputError, match="allow_remote"):
        FakeDashScope(host="0.0.0.0")
    assert main(["serve-dashscope", "--host", "0.0.0.0", "--port", "1"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "allow" in err[0]


def test_stats_and_config_endpoints(fake_cloud):
    stats = fake_cloud.get_json("/_fake/stats")
    assert stats["submitted"] == {SEGMENT_MODEL: 0, ERASE_MODEL: 0} and stats["queried"] == 0
    changed = post(fake_cloud, "/_fake/config", json={"latency_erase": 0.01, "api_key": "sk-only"}).json()
    assert changed["latency_erase"] == 0.01 and changed["api_key"] == "set"  # the key itself is never echoed
    assert fake_cloud.get_json("/_fake/config")["api_key"] == "set"


def test_serve_arguments():
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    args = parser.parse_args([])
    assert (args.host, args.port, args.segmenter, args.eraser) == ("127.0.0.1", 8765, "local", "patchmatch")
    args = parser.parse_args(
        [
            "--port",
            "9000",
            "--latency-seg",
            "0.1",
            "--throttle-next",
            "2",
            "--result-format",
            "jpeg",
            "--free-quota",
            "7",
            "--drop-after-submit",
            "1",
        ]
    )
    assert (args.port, args.latency_seg, args.throttle_next_submits, args.result_format) == (9000, 0.1, 2, "jpeg")
    assert (args.free_quota, args.drop_after_submit) == (7, 1)
    from person_erase.fakecloud.state import Knobs

    help_text = parser.format_help()
    for name, info in Knobs.model_fields.items():  # every knob is an option, with its description
        assert f"--{name.replace('_', '-')}" in help_text
        assert info.description and info.description.split()[0] in help_text


def test_run_serve_in_a_subprocess_serves_and_stops():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "person_erase", "serve-dashscope", "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=root,
    )
    try:
        health = None
        for _ in range(200):
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/_fake/health", timeout=1).json()
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        assert health == {"ok": True}
        stats = json.loads(httpx.get(f"http://127.0.0.1:{port}/_fake/stats", timeout=5).content)
        assert stats["queried"] == 0
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert b"DASHSCOPE_HTTP_BASE_URL=http://127.0.0.1:" in err
    assert b"Traceback" not in err


def test_an_unavailable_backend_fails_the_task_instead_of_falling_back():
    """No silent fallback to another eraser: the task ends FAILED, says why, and erase raises."""
    from cloud_server import InProc

    import person_erase as pe
    from person_erase.erasers.dashscope import DashScopeEraser
    from person_erase.instances import Instances

    fake = InProc(erase_backend="no-such-eraser")
    try:
        img = one_person()
        mask = np.zeros(img.shape[:2], bool)
        mask[200:300, 200:300] = True
        with pytest.raises(CloudError) as info:
            DashScopeEraser(client=fake.client()).erase(img, mask)
        assert info.value.code == P.ALGO_ERROR and "EngineError" in str(info.value)
        # through the pipeline too: the error reaches the caller, no local eraser fills in
        people = Instances.from_label_map(mask.astype(np.uint8))
        with pytest.raises(CloudError, match="InternalError.Algo|algorithm"):
            pe.erase(img, people, eraser=DashScopeEraser(client=fake.client()))
        stats = fake.stats()
        assert stats["failed"][ERASE_MODEL] == 2 and stats["succeeded"][ERASE_MODEL] == 0
        assert stats["submitted"][ERASE_MODEL] == 2
    finally:
        fake.state.shutdown()
