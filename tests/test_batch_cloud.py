"""Batch with the cloud engines against the DashScope-compatible fake.

Most tests hand the run the in-process transport (``run_batch(cloud=CloudSetup(...))``, no sockets) and
limiters without the 2 submits/s pacing (it has its own tests), so they take milliseconds per image. A
few stay end to end, the real ``dashscope`` SDK over real HTTP on loopback: the kill -9 resume test and
the CLI's quota line. Backends of the fake: ``figure_labels`` (the figures of ``make_scene``) and
``flat_fill`` from ``tests/_fake_engines.py``.
"""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import pytest
from cloud_server import InProc
from PIL import Image

from person_erase import batch as B
from person_erase.cloud import Limiters
from person_erase.report import BatchSummary, ImageReport
from tests._fake_engines import figure_labels, flat_fill
from tests._imagefactory import make_scene

CLOUD = B.BatchParams(segmenter="dashscope", eraser="dashscope")
KEY = "sk-pe-batch-test-0b6e2d"
SEG, ERA = "image-instance-segmentation", "image-erase-completion"


def _images(folder: Path, n: int) -> list[str]:
    """``n`` distinct small scenes (1-3 figures) in two folders; smooth backgrounds: they encode fast."""
    rels = []
    for i in range(n):
        img, _ = make_scene(1 + i % 3, size=(60, 80), noise=0)
        img[-1, -1] = (i, i, i)  # every photo its own content (hash)
        rel = f"g{i % 2}/p{i:02d}.png"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / rel)
        rels.append(rel)
    return rels


class Cloud(InProc):
    """The fake service in this process, and the ``CloudSetup`` that sends a batch's calls to it."""

    def setup(self) -> B.CloudSetup:
        return B.CloudSetup(transport=self.transport, limiters=Limiters(submits_per_second=50))

    def run(self, src: Path, out: Path, params: B.BatchParams = CLOUD, **kw) -> BatchSummary:
        return B.run_batch(src, out, params=params, cloud=self.setup(), **kw)


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch):
    """An in-process fake (no sockets); the key and base URL the engines are built with point nowhere."""
    fake = Cloud(segment_backend=figure_labels, erase_backend=flat_fill)
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", "http://127.0.0.1:9/api/v1")  # nothing listens there
    monkeypatch.setenv("PERSON_ERASE_CLOUD_POLL_S", "0.002")  # in-process queries cost microseconds
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def http_cloud(monkeypatch: pytest.MonkeyPatch):
    """The fake on 127.0.0.1 (real HTTP), for the tests that go through the real SDK."""
    from person_erase.fakecloud import FakeDashScope

    with FakeDashScope(
        segment_backend=figure_labels, erase_backend=flat_fill, latency_seg=0.02, latency_erase=0.02
    ) as fake:
        monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
        monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", fake.base_url)
        yield fake


def _journal_tasks(out: Path) -> dict[tuple[str, str], tuple[str, str | None]]:
    with sqlite3.connect(out / ".person_erase" / "journal.sqlite", timeout=5) as db:
        rows = db.execute(
            "SELECT items.rel, stages.stage, stages.state, stages.task_id FROM stages JOIN items USING (id)"
        ).fetchall()
    return {(rel, stage): (state, task) for rel, stage, state, task in rows}


def test_cloud_batch_journals_task_ids_and_reuses_segmentations(cloud, tmp_path: Path) -> None:
    rels = _images(tmp_path / "in", 4)
    out = tmp_path / "out"
    s = cloud.run(tmp_path / "in", out)
    assert (s.done, s.failed, s.engine) == (4, 0, "cloud pipeline")
    assert cloud.stats()["submitted"] == {SEG: 4, ERA: 4}
    assert cloud.transport.calls["create"] == 8  # every call went through the run's transport
    tasks = _journal_tasks(out)
    for rel in rels:
        rep = ImageReport.model_validate_json((out / (rel + ".json")).read_text())
        assert rep.segmenter == "dashscope" and rep.eraser == "dashscope"
        assert rep.cloud_task_ids["segment"] == [tasks[(rel, "segment")][1]]
        assert rep.cloud_task_ids["erase"] == [tasks[(rel, "erase")][1]]
        assert rep.outside_mask_changed_px == 0
        assert tasks[(rel, "save")][0] == "done"
    # another selection: segmentations come from the cache, only erase tasks are submitted
    again = cloud.run(tmp_path / "in", out, B.BatchParams(segmenter="dashscope", eraser="dashscope", select=(0,)),
                      resume=True)
    assert (again.done, again.cache_hits) == (4, 4)
    assert cloud.stats()["submitted"] == {SEG: 4, ERA: 8}


def test_failed_cloud_task_is_isolated_and_retried(cloud, tmp_path: Path) -> None:
    _images(tmp_path / "in", 3)
    out = tmp_path / "out"
    cloud.configure(fail_next_tasks=1)
    s = cloud.run(tmp_path / "in", out)
    assert (s.done, s.failed) == (2, 1)
    bad = next(it for it in s.items if it.status == "failed")
    assert bad.stage == "segment" and "InternalError.Algo" in bad.reason
    retry = cloud.run(tmp_path / "in", out, retry_failed=True)
    assert (retry.done, retry.skipped, retry.failed) == (1, 2, 0)
    # the failed task was not polled again: exactly one more segmentation was submitted
    assert cloud.stats()["submitted"] == {SEG: 4, ERA: 3}


def test_cloud_stages_overlap(cloud, tmp_path: Path) -> None:
    """While one image is being erased, the next one is already being segmented (read from the service's
    own record of when each task was in flight, not by sampling it)."""
    cloud.configure(latency_seg=0.1, latency_erase=0.1)
    _images(tmp_path / "in", 4)
    s = cloud.run(tmp_path / "in", tmp_path / "out")
    assert s.done == 4
    spans = {m: sorted((t.created, t.finished) for t in cloud.state.tasks.values() if t.model == m) for m in (SEG, ERA)}
    assert [len(v) for v in spans.values()] == [4, 4] and all(f is not None for v in spans.values() for _, f in v)
    for v in spans.values():  # never more than one task per model in flight
        assert all(a[1] <= b[0] for a, b in zip(v, v[1:], strict=False)), v
    assert any(a[0] < b[1] and b[0] < a[1] for a in spans[SEG] for b in spans[ERA])  # the stages overlapped


def test_kill_9_at_ten_points_then_resume_does_every_image_once(tmp_path: Path) -> None:
    """kill -9 at 10 moments of a cloud batch (real SDK, real HTTP), then --resume: every image done once,
    and the service saw exactly one task per image and model — also when the kill came after the service
    created a task but before its id was journaled (the resumed run adopts it from the task list)."""
    import multiprocessing as mp

    import _cloud_kill as K

    n = 2
    src = tmp_path / "in"
    rels = _images(src, n)
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(K.preload())
    from multiprocessing import forkserver

    forkserver.ensure_running()  # it imports the preloads while the servers start
    points = K.POINTS
    # latency 0: a task ends as soon as it is computed (what is killed is the batch, not a slow task)
    knobs = {"latency_seg": 0, "latency_erase": 0, "submits_per_second": 50}
    with K.Servers(len(points), own_process=False, **knobs) as servers:  # threads of this process: no start-up
        def run_all(kills: list) -> list[int]:
            procs = [
                ctx.Process(
                    target=K.run_batch_child, args=(str(src), str(tmp_path / f"out{i}"), servers.base_url(i), KEY, kill)
                )
                for i, kill in enumerate(kills)
            ]
            for p in procs:
                p.start()
            for p in procs:
                p.join(120)
            return [p.exitcode for p in procs]

        killed = run_all([list(pt) for pt in points])
        assert killed == [-signal.SIGKILL] * len(points), list(zip(points, killed, strict=True))
        resumed = run_all([None] * len(points))
        assert resumed == [0] * len(points), list(zip(points, resumed, strict=True))
        for i, point in enumerate(points):
            stats = servers.stats(i)
            assert stats["submitted"] == {K.SEG: n, K.ERA: n}, (point, stats["submitted"])
            out = tmp_path / f"out{i}"
            summary = BatchSummary.model_validate_json((out / "summary.json").read_text())
            assert summary.failed == 0 and summary.done + summary.skipped == n, point
            tasks = _journal_tasks(out)
            for rel in rels:
                assert (out / rel).is_file() and (out / (rel + ".json")).is_file(), (point, rel)
                assert tasks[(rel, "save")][0] == "done", (point, rel)
            assert not list(out.rglob("*.part*")), point


def test_quota_exhausted_mid_batch_stops_then_resume_finishes(cloud, tmp_path: Path) -> None:
    n = 5
    _images(tmp_path / "in", n)
    out = tmp_path / "out"
    cloud.configure(free_quota=2)  # per model: two photos' worth
    s = cloud.run(tmp_path / "in", out)
    stats = cloud.stats()
    assert stats["rejected"].get("Throttling.AllocationQuota", 0) == 1  # stopped within one submit
    # the segmentation quota runs out first; the photos segmented by then are erased only if their erase
    # was submitted before the stop (0, 1 or 2 of them, depending on how the two stages interleave)
    erased = stats["submitted"][ERA]
    assert stats["submitted"][SEG] == 2 and 0 <= erased <= 2
    assert s.stopped == f"the free quota of {SEG} is used up"
    assert s.done == erased and s.failed == 0 and s.pending == n - erased
    not_started = [it.reason for it in s.items if it.status == "not_started"]
    assert not_started == ["not started: quota exhausted"] * (n - erased)
    assert BatchSummary.model_validate_json((out / "summary.json").read_text()).stopped == s.stopped
    cloud.configure(free_quota=500)  # quota available again (e.g. another account's key)
    again = cloud.run(tmp_path / "in", out, resume=True)
    assert (again.done, again.skipped, again.failed, again.stopped) == (n - erased, erased, 0, None)
    assert cloud.stats()["submitted"] == {SEG: n, ERA: n}  # nothing twice


def test_quota_exhausted_over_the_cli_is_one_line_and_resume_finishes(http_cloud, tmp_path: Path, capsys) -> None:
    """End to end (real SDK, real HTTP, the service's pacing): exit 1, one ``error:`` line naming --resume."""
    from person_erase.cli import main

    _images(tmp_path / "in", 2)
    http_cloud.configure(free_quota=1)
    cmd = ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--segmenter", "dashscope",
           "--eraser", "dashscope", "--no-progress"]
    assert main(cmd) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: the free quota of {SEG} is used up") and "--resume" in err[0]
    assert http_cloud.stats()["rejected"].get("Throttling.AllocationQuota", 0) == 1
    http_cloud.configure(free_quota=500)
    assert main([*cmd, "--resume"]) == 0
    assert http_cloud.stats()["submitted"] == {SEG: 2, ERA: 2}


def test_expired_task_from_an_earlier_run_is_submitted_again(cloud, tmp_path: Path) -> None:
    """A journaled task whose result expired (or the service forgot) is submitted anew, once."""
    import numpy as np

    from person_erase.batch.executors.cloud import CloudHooks
    from person_erase.batch.journal import Journal
    from person_erase.segmenters.dashscope import DashScopeSegmenter

    img, _ = make_scene(2, size=(60, 80), seed=1)
    seg = DashScopeSegmenter(client=cloud.client())
    cloud.configure(result_ttl_s=0)
    old = seg.submit(img)
    seg.client.wait(old, model=seg.model)
    cloud.configure(result_ttl_s=3600)
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.start("item", rel="a.png", sha256="0" * 64, params_hash="p", params={})
        journal.set_stage("item", "segment", "submitted", task_id=old)
        hooks = CloudHooks(journal, cloud.setup())
        hooks.bind("item")
        people = hooks.segment(seg, np.ascontiguousarray(img))
        state, task, _ = journal.stage("item", "segment")
    assert len(people) == 2 and state == "done" and task not in (None, old)
    assert cloud.stats()["submitted"][SEG] == 2


def test_cloud_setup_is_for_the_cloud_executor_only(tmp_path: Path) -> None:
    from person_erase.errors import InputError

    _images(tmp_path / "in", 1)
    with pytest.raises(InputError, match="cloud executor") as info:
        B.run_batch(tmp_path / "in", tmp_path / "out", params=B.BatchParams(),
                    cloud=B.CloudSetup())
    assert info.value.param == "cloud"
