"""Batch with the cloud engines against the DashScope-compatible server (loopback, random port).

Backends of the server: ``figure_labels`` (the figures of ``make_scene``) and ``flat_fill`` from
``tests/_fake_engines.py``; short latencies keep the tests quick.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from person_erase import batch as B
from person_erase.report import BatchSummary, ImageReport
from tests._fake_engines import ServerProcess, figure_labels, flat_fill
from tests.conftest import REPO, make_scene

CLOUD = B.BatchParams(segmenter="dashscope", eraser="dashscope")
KEY = "sk-pe-batch-test-0b6e2d"


def _images(folder: Path, n: int) -> list[str]:
    rels = []
    for i in range(n):
        img, _ = make_scene(1 + i % 3, size=(60, 80), seed=200 + i)
        rel = f"g{i % 2}/p{i:02d}.png"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / rel)
        rels.append(rel)
    return rels


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch):
    from person_erase.fakecloud import FakeDashScope

    with FakeDashScope(segment_backend=figure_labels, erase_backend=flat_fill, latency_seg=0.05, latency_erase=0.05) as fake:
        monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
        monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", fake.base_url)
        yield fake


def _journal_tasks(out: Path) -> dict[tuple[str, str], tuple[str, str | None]]:
    with sqlite3.connect(out / ".person_erase" / "journal.sqlite", timeout=5) as db:
        rows = db.execute("SELECT items.rel, stages.stage, stages.state, stages.task_id FROM stages JOIN items USING (id)").fetchall()
    return {(rel, stage): (state, task) for rel, stage, state, task in rows}


def test_cloud_batch_journals_task_ids_and_reuses_segmentations(cloud, tmp_path: Path) -> None:
    rels = _images(tmp_path / "in", 4)
    out = tmp_path / "out"
    s = B.run_batch(tmp_path / "in", out, params=CLOUD)
    assert (s.done, s.failed, s.engine) == (4, 0, "cloud pipeline")
    assert cloud.stats()["submitted"] == {"image-instance-segmentation": 4, "image-erase-completion": 4}
    tasks = _journal_tasks(out)
    for rel in rels:
        rep = ImageReport.model_validate_json((out / (rel + ".json")).read_text())
        assert rep.segmenter == "dashscope" and rep.eraser == "dashscope"
        assert rep.cloud_task_ids["segment"] == [tasks[(rel, "segment")][1]]
        assert rep.cloud_task_ids["erase"] == [tasks[(rel, "erase")][1]]
        assert rep.outside_mask_changed_px == 0
        assert tasks[(rel, "save")][0] == "done"
    # another selection: segmentations come from the cache, only erase tasks are submitted
    again = B.run_batch(tmp_path / "in", out, params=B.BatchParams(segmenter="dashscope", eraser="dashscope", select=(0,)),
                        resume=True)
    assert (again.done, again.cache_hits) == (4, 4)
    assert cloud.stats()["submitted"] == {"image-instance-segmentation": 4, "image-erase-completion": 8}


def test_failed_cloud_task_is_isolated_and_retried(cloud, tmp_path: Path) -> None:
    _images(tmp_path / "in", 3)
    out = tmp_path / "out"
    cloud.configure(fail_next_tasks=1)
    s = B.run_batch(tmp_path / "in", out, params=CLOUD)
    assert (s.done, s.failed) == (2, 1)
    bad = next(it for it in s.items if it.status == "failed")
    assert bad.stage == "segment" and "InternalError.Algo" in bad.reason
    retry = B.run_batch(tmp_path / "in", out, params=CLOUD, retry_failed=True)
    assert (retry.done, retry.skipped, retry.failed) == (1, 2, 0)
    # the failed task was not polled again: exactly one more segmentation was submitted
    assert cloud.stats()["submitted"] == {"image-instance-segmentation": 4, "image-erase-completion": 3}


def test_cloud_stages_overlap(cloud, tmp_path: Path) -> None:
    """While one image is being erased, the next one is already being segmented."""
    cloud.configure(latency_seg=0.3, latency_erase=0.3)
    _images(tmp_path / "in", 4)
    seen: list[dict[str, int]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(dict(cloud.stats()["in_flight"]))
            time.sleep(0.02)

    t = threading.Thread(target=watch)
    t.start()
    try:
        s = B.run_batch(tmp_path / "in", tmp_path / "out", params=CLOUD)
    finally:
        stop.set()
        t.join()
    assert s.done == 4
    assert any(v["image-instance-segmentation"] == 1 and v["image-erase-completion"] == 1 for v in seen)
    assert max(max(v.values()) for v in seen) == 1  # never more than one task per model


def test_kill_9_mid_run_then_resume_submits_no_task_twice(tmp_path: Path) -> None:
    n = 8
    rels = _images(tmp_path / "in", n)
    out = tmp_path / "out"
    with ServerProcess(latency_seg=0.25, latency_erase=0.4) as server:
        env = {**os.environ, "DASHSCOPE_API_KEY": KEY, "DASHSCOPE_HTTP_BASE_URL": server.base_url, "PYTHONPATH": str(REPO)}
        cmd = [sys.executable, "-m", "person_erase", "batch", str(tmp_path / "in"), "-o", str(out),
               "--segmenter", "dashscope", "--eraser", "dashscope"]
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        in_flight: dict[tuple[str, str], str] = {}
        deadline = time.monotonic() + 90
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    tasks = _journal_tasks(out)
                except sqlite3.Error:
                    time.sleep(0.05)
                    continue
                done = sum(1 for (_, stage), (state, _) in tasks.items() if stage == "save" and state == "done")
                in_flight = {k: t for k, (state, t) in tasks.items() if state == "submitted" and t}
                if done >= 2 and in_flight:
                    break
                time.sleep(0.03)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        assert in_flight, "the run was not killed while a task was in flight"
        before = server.stats()["submitted"]
        assert sum(before.values()) < 2 * n
        resumed = subprocess.run([*cmd, "--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr + resumed.stdout
        stats = server.stats()
    # every image segmented once and erased once, across the kill: no task was submitted twice
    assert stats["submitted"] == {"image-instance-segmentation": n, "image-erase-completion": n}
    after = _journal_tasks(out)
    for key, task in in_flight.items():
        assert after[key] == ("done", task), key  # the task in flight at the kill was polled, not resubmitted
    summary = BatchSummary.model_validate_json((out / "summary.json").read_text())
    assert summary.failed == 0 and summary.done + summary.skipped == n
    for rel in rels:
        assert (out / rel).is_file() and (out / (rel + ".json")).is_file()


def test_expired_task_from_an_earlier_run_is_submitted_again(cloud, tmp_path: Path) -> None:
    """A journaled task whose result expired (or the service forgot) is submitted anew, once."""
    import numpy as np

    from person_erase.batch.journal import Journal
    from person_erase.segmenters.dashscope import DashScopeSegmenter

    img, _ = make_scene(2, size=(60, 80), seed=1)
    seg = DashScopeSegmenter(poll_interval_s=0.02)
    cloud.configure(result_ttl_s=0)
    old = seg.submit(img)
    seg.client.wait(old, model=seg.model)
    cloud.configure(result_ttl_s=3600)
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.start("item", rel="a.png", sha256="0" * 64, params_hash="p", params={})
        journal.set_stage("item", "segment", "submitted", task_id=old)
        from person_erase.batch.executors.cloud import CloudHooks

        hooks = CloudHooks(journal)
        hooks.bind("item")
        people = hooks.segment(seg, np.ascontiguousarray(img))
        state, task, _ = journal.stage("item", "segment")
    assert len(people) == 2 and state == "done" and task not in (None, old)
    assert cloud.stats()["submitted"]["image-instance-segmentation"] == 2
