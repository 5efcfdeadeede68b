"""Processes, signals, locks and temporary files (issue 18 items 5-9), with real subprocesses.

* workers die with their parent (kill -9 of the batch) and nothing holds the caller's pipes;
* SIGTERM is handled like Ctrl-C: in-flight images are finished, exit 130, the summary says what is pending;
* one batch per OUT_DIR (the second names the first's pid); a resume removes every stale part file;
* a single-image save killed half-way leaves a temp file the next save to that folder removes (by name and age);
* output names of 245-255 characters work, longer ones are refused before any work.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from person_erase import batch as B
from person_erase.cli import main as cli_main
from person_erase.errors import InputError
from person_erase.report import BatchSummary
from tests.conftest import REPO
from tests.test_batch import _done_count, _write_scene

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")


@pytest.fixture(autouse=True)
def _fake_engines(fake_engines: None) -> None:
    """``figures`` and ``logged_telea`` registered for each test of this module (``conftest.fake_engines``)."""


def _children(pid: int) -> set[int]:
    out = set()
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                fields = Path(f"/proc/{e}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.add(int(e))
    return out


def _alive(pids: set[int]) -> set[int]:
    left = set()
    for p in pids:
        try:
            state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            left.add(p)
    return left


def _start(src: Path, out: Path, *extra: str, delay: str = "0.4") -> subprocess.Popen[bytes]:
    env = {**os.environ, "PE_FAKE_DELAY": delay, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "person_erase", "batch", str(src), "-o", str(out), "--segmenter", "figures",
           "--eraser", "telea", "--plugin", "tests._fake_engines_plugin", "--workers", "2", *extra]
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )


def _wait_for(cond, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    for i in range(12):
        _write_scene(src / f"p{i:02d}.png", 1 + i % 3, 700 + i)
    return src


def test_kill_9_of_the_batch_takes_its_workers_and_frees_the_callers_pipes(photos: Path, tmp_path: Path) -> None:
    proc = _start(photos, tmp_path / "out")
    try:
        assert _wait_for(lambda: len(_children(proc.pid)) >= 2 and _done_count(tmp_path / "out") >= 1)
        workers = _children(proc.pid)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the batch only, not its process group
    t0 = time.monotonic()
    proc.communicate(timeout=20)  # returns once nobody holds the pipes any more
    assert _wait_for(lambda: not _alive(workers), timeout=10), f"orphan workers: {_alive(workers)}"
    assert time.monotonic() - t0 < 10
    for p in _alive(workers):  # pragma: no cover - only when the test already failed
        os.kill(p, signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_finish_what_is_in_flight_and_exit_130(photos: Path, tmp_path: Path, sig: int) -> None:
    out = tmp_path / "out"
    # 1 s per image: after the first two are done, about 5 s of work remain for the signal to arrive in
    # (at 0.4 s a loaded machine sometimes saw the batch finish all 12 first and exit 0)
    proc = _start(photos, out, delay="1.0")
    try:
        assert _wait_for(lambda: len(_children(proc.pid)) >= 2 and _done_count(out) >= 2)
        workers = _children(proc.pid)
        os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # pragma: no cover - only when the test already failed
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err.decode()
    assert "interrupted" in err.decode() and "--resume" in err.decode()
    assert _wait_for(lambda: not _alive(workers), timeout=10), f"left behind: {_alive(workers)}"
    summary = BatchSummary.model_validate_json((out / "summary.json").read_text())
    assert summary.interrupted and summary.pending > 0 and summary.done >= 2 and summary.failed == 0
    with sqlite3.connect(out / ".person_erase" / "journal.sqlite") as db:
        running = db.execute("SELECT COUNT(*) FROM items WHERE state='running'").fetchone()[0]
    assert running == 0  # the images in flight were finished and recorded, not abandoned
    assert [p for p in out.glob(".pe-*")] == []
    resumed = subprocess.run([sys.executable, "-m", "person_erase", "batch", str(photos), "-o", str(out), "--segmenter",
                              "figures", "--eraser", "telea", "--plugin", "tests._fake_engines_plugin", "--resume"],
                             cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert BatchSummary.model_validate_json((out / "summary.json").read_text()).skipped == summary.done


def test_pending_images_make_the_exit_status_non_zero(photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from person_erase.cli import batch as cli_batch

    real = B.run_batch

    def stopped(*a: object, **kw: object) -> BatchSummary:
        import threading

        ev = threading.Event()
        ev.set()  # stop before anything starts: every image pending
        return real(*a, **{**kw, "stop": ev})  # type: ignore[arg-type]

    monkeypatch.setattr("person_erase.batch.run_batch", stopped)
    code = cli_main(["batch", str(photos), "-o", str(tmp_path / "o"), "--segmenter", "figures", "--eraser", "telea",
                     "--workers", "1"])
    assert code == 130 and "not started" in capsys.readouterr().out
    assert cli_batch.NAMES == ("batch",)


def test_one_batch_per_output_folder_and_resume_removes_stale_part_files(photos: Path, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    proc = _start(photos, out)
    try:
        assert _wait_for(lambda: _done_count(out) >= 1)
        with pytest.raises(InputError, match=rf"another batch is running in {out} \(pid {proc.pid}\)"):
            B.run_batch(photos, out, params=B.BatchParams(segmenter="figures", eraser="telea"), workers=1, resume=True)
        code = cli_main(
            ["batch", str(photos), "-o", str(out), "--segmenter", "figures", "--eraser", "telea", "--resume"]
        )
        assert code == 1 and f"(pid {proc.pid})" in capsys.readouterr().err
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # what a killed run (of this or an earlier version) leaves: our part files, save_image's temp files
    stale = [
        out / ".pe-0123456789ab.part.png",
        out / ".pe-0123456789ab.part.json",
        out / ".p03.png.0123456789ab.part.json",
        out / ".pe-k2j3x9qq.tmp",
    ]
    for f in stale:
        f.write_text("x")
    mine = out / ".my-own-notes.png"
    mine.write_text("not ours")
    s = B.run_batch(photos, out, params=B.BatchParams(segmenter="figures", eraser="telea"), workers=1, resume=True)
    assert s.done + s.skipped == 12 and s.failed == 0
    assert [f for f in stale if f.exists()] == []
    assert sorted(p.name for p in out.glob(".*") if p.is_file()) == [mine.name]


def test_a_killed_single_image_save_leaves_a_temp_file_the_next_save_removes(tmp_path: Path) -> None:
    out_dir = tmp_path / "o"
    out_dir.mkdir()
    code = ("import numpy as np, sys; from person_erase.io import save_image; "
            "save_image(np.random.default_rng(0).integers(0, 255, (3000, 3000, 3), dtype=np.uint8), sys.argv[1])")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out_dir / "big.png")], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert _wait_for(lambda: any(out_dir.glob(".pe-*.tmp")), timeout=60)
    finally:
        proc.kill()
        proc.wait()
    left = list(out_dir.glob(".pe-*.tmp"))
    assert len(left) == 1 and len(left[0].name) == len(".pe-12345678.tmp")  # short, whatever the output's name
    old = time.time() - 3600
    os.utime(left[0], (old, old))  # an hour later
    legacy = out_dir / ".photo.jpg.ab12cd34.tmp"  # an earlier version's name
    legacy.write_text("x")
    os.utime(legacy, (old, old))
    fresh = out_dir / ".pe-busy1234.tmp"  # another save, right now
    fresh.write_text("x")
    src = tmp_path / "a.png"
    _write_scene(src, 1, 1)
    assert (
        cli_main(["erase", str(src), "-o", str(out_dir / "a.png"), "--segmenter", "figures", "--eraser", "telea"]) == 0
    )
    assert not left[0].exists() and not legacy.exists() and fresh.exists()
    assert sorted(p.name for p in out_dir.iterdir()) == sorted([".pe-busy1234.tmp", "a.png"])


@pytest.mark.parametrize("length", [245, 250, 255])
def test_long_output_names_that_fit_work(tmp_path: Path, length: int) -> None:
    src = tmp_path / "a.png"
    _write_scene(src, 1, 2)
    out = tmp_path / ("x" * (length - 4) + ".png")
    assert cli_main(["erase", str(src), "-o", str(out), "--segmenter", "figures", "--eraser", "telea"]) == 0
    assert out.is_file() and [p.name for p in tmp_path.glob(".*")] == []


def test_a_name_that_cannot_fit_is_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "a.png"
    _write_scene(src, 1, 3)
    monkeypatch.setenv("PE_FAKE_LOG", str(tmp_path / "calls.log"))
    code = cli_main(["erase", str(src), "-o", str(tmp_path / ("y" * 252 + ".png")), "--segmenter", "figures",
                     "--eraser", "logged_telea"])
    err = capsys.readouterr().err
    assert code == 1 and "256 bytes" in err and "allows 255" in err and err.count("\n") == 1
    assert not (tmp_path / "calls.log").exists()  # refused before segmenting
    # in a batch: the output fits but its report (name + .json) would not: that image fails before work
    folder = tmp_path / "in"
    _write_scene(folder / ("z" * 247 + ".png"), 1, 4)  # 251 bytes; its sidecar would be 256
    _write_scene(folder / ("w" * 246 + ".png"), 1, 5)  # 250 bytes; sidecar 255: fine
    s = B.run_batch(
        folder, tmp_path / "out", params=B.BatchParams(segmenter="figures", eraser="logged_telea"), workers=1
    )
    bad = next(it for it in s.items if it.input.startswith("z"))
    assert (s.done, s.failed) == (1, 1) and bad.stage == "load" and "allows 255" in (bad.reason or "")
    assert len((tmp_path / "calls.log").read_text().splitlines()) == 2  # one segment + one erase: the good one only
