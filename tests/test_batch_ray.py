"""The Ray executor on a real local Ray (one cluster for the module: 127.0.0.1, 2 CPUs, no dashboard).

Outputs must be the local executor's bytes (figures segmenter + telea are deterministic) with the same
sidecars; S3 in/out goes through the moto server on loopback; a killed driver (with the local Ray it
started itself) leaves no process behind, and a resume loses nothing and commits nothing twice.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from person_erase import batch as B
from person_erase.errors import InputError
from person_erase.report import BatchSummary
from tests._s3 import DUMMY_ENV, S3Server
from tests.conftest import REPO
from tests.test_batch import _no_figures_left, _wait_done, _write_scene

# a local Ray on 127.0.0.1 only: Ray reads this when it is imported (Linux otherwise advertises the LAN address)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

PARAMS = B.BatchParams(segmenter="figures", eraser="telea")
PLUGINS = ["tests._fake_engines_plugin"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """A local Ray for this module, on loopback; credentials for the S3 tests and the fake engines' call log
    (``cluster.log``) in its environment (its workers read the environment it was started with)."""
    saved = {k: os.environ.get(k) for k in [*DUMMY_ENV, "RAY_USAGE_STATS_ENABLED", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER",
                                             "PYTHONPATH", "PE_FAKE_LOG"]}
    log = tmp_path_factory.mktemp("ray") / "calls.log"
    log.write_text("")
    os.environ.update(DUMMY_ENV)
    os.environ["PE_FAKE_LOG"] = str(log)
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # a local cluster on 127.0.0.1 (read when ray starts)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), saved["PYTHONPATH"] or ""])
    if ray.is_initialized():  # pragma: no cover - another module's cluster
        ray.shutdown()
    ctx = ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                   configure_logging=False)
    assert ctx.address_info["address"].startswith("127.0.0.1:")
    ctx.log = log
    yield ctx
    ray.shutdown()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(autouse=True)
def _fake_engines(fake_engines: None) -> None:
    """``figures`` and ``logged_telea`` registered for each test of this module (``conftest.fake_engines``)."""


def _photos(folder: Path, n: int, seed: int = 400) -> list[str]:
    rels = []
    for i in range(n):
        rel = f"g{i % 2}/p{i:02d}.png"
        _write_scene(folder / rel, 1 + i % 3, seed + i)
        rels.append(rel)
    return rels


def _comparable(text: str) -> dict:
    return {k: v for k, v in json.loads(text).items() if k != "timings_ms"}


def test_ray_outputs_are_the_local_executors_bytes(cluster, tmp_path: Path) -> None:
    rels = _photos(tmp_path / "in", 8)
    local = B.run_batch(tmp_path / "in", tmp_path / "local", params=PARAMS, workers=1)
    s = B.run_batch(tmp_path / "in", tmp_path / "ray", params=PARAMS, executor="ray", workers=2, plugins=PLUGINS)
    assert (s.done, s.failed, s.engine) == (8, 0, "ray (local Ray), 2 actors")
    assert local.done == 8
    for rel in rels:
        assert (tmp_path / "ray" / rel).read_bytes() == (tmp_path / "local" / rel).read_bytes(), rel
        assert _comparable((tmp_path / "ray" / f"{rel}.json").read_text()) == \
            _comparable((tmp_path / "local" / f"{rel}.json").read_text())
    again = B.run_batch(tmp_path / "in", tmp_path / "ray", params=PARAMS, executor="ray", resume=True, plugins=PLUGINS)
    assert (again.done, again.skipped) == (0, 8)  # resume by content hash, as the local executor
    disk = BatchSummary.model_validate_json((tmp_path / "ray" / "summary.json").read_text())
    assert disk.skipped == 8 and disk.engine.startswith("ray")


def test_ray_reads_and_writes_s3(cluster, tmp_path: Path) -> None:
    rels = _photos(tmp_path / "in", 4, seed=500)
    local = B.run_batch(tmp_path / "in", tmp_path / "local", params=PARAMS, workers=1)
    with S3Server() as s3:
        s3.make_bucket("raysrc")
        s3.make_bucket("raydst")
        s3.upload_tree(tmp_path / "in", "raysrc", "a")
        s = B.run_batch(s3.uri("raysrc", "a"), s3.uri("raydst", "b"), params=PARAMS, executor="ray", workers=2,
                        plugins=PLUGINS, state_dir=tmp_path / "state")
        assert (s.done, s.failed) == (4, 0), [it.reason for it in s.items]
        assert s3.keys("raydst", "b") == sorted([*rels, *[r + ".json" for r in rels], "summary.json"])
        for rel in rels:
            assert s3.read("raydst", f"b/{rel}") == (tmp_path / "local" / rel).read_bytes()
    assert local.done == 4


def test_cloud_engines_are_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="executor='ray'` runs local engines only"):
        B.run_batch(tmp_path, tmp_path / "o", params=B.BatchParams(segmenter="dashscope", eraser="dashscope"),
                    executor="ray")
    assert not (tmp_path / "o").exists()


def _ray_pids(marker: str) -> set[int]:
    out = set()
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{e}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{e}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmd and state != "Z":
            out.add(int(e))
    return out


@pytest.mark.slow
def test_kill_9_of_the_driver_then_resume_loses_nothing_and_commits_nothing_twice(cluster, tmp_path: Path) -> None:
    n = 12
    rels = _photos(tmp_path / "in", n, seed=600)
    out, log = tmp_path / "out", cluster.log
    start = log.stat().st_size
    env = {**os.environ, "PE_FAKE_LOG": str(log), "PE_FAKE_DELAY": "0.4", "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    cmd = [
        sys.executable,
        "-m",
        "person_erase",
        "batch",
        str(tmp_path / "in"),
        "-o",
        str(out),
        "--segmenter",
        "figures",
        "--eraser",
        "logged_telea",
        "--plugin",
        "tests._fake_engines_plugin",
        "--executor",
        "ray",
        "--workers",
        "2",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    journal = out / ".person_erase" / "journal.sqlite"
    actors: set[int] = set()
    try:
        done = _wait_done(proc, out, at_least=3, timeout=120)
        if done >= 3:
            actors = _ray_pids("PhotoEraser")
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the driver only: its Ray must not outlive it
        proc.wait()
    assert 3 <= done < n, "the run was not killed mid-way"
    assert actors, "no Ray actor was working at the kill"
    left = actors
    for _ in range(100):  # bounded: 10 s for the kernel and the reaper
        left = {p for p in actors if Path(f"/proc/{p}").exists() and
                Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"}
        session = [p for p in _ray_pids("ray") if _sid(p) == proc.pid]
        if not left and not session:
            break
        time.sleep(0.1)
    assert not left and not session, f"processes of the killed driver's Ray are still running: {left or session}"
    with sqlite3.connect(journal) as db:
        before = {r for (r,) in db.execute("SELECT rel FROM items WHERE state='done'")}
    s = B.run_batch(tmp_path / "in", out, params=B.BatchParams(segmenter="figures", eraser="logged_telea"),
                    executor="ray", workers=2, plugins=PLUGINS, resume=True)
    assert s.failed == 0 and s.done + s.skipped == n and s.skipped >= len(before)
    assert {it.input for it in s.items if it.status == "skipped"} >= before
    for rel in rels:
        assert _no_figures_left(out / rel) and (out / f"{rel}.json").is_file(), rel
    with sqlite3.connect(journal) as db:
        states = db.execute("SELECT state, COUNT(*) FROM items GROUP BY state").fetchall()
        attempts = dict(db.execute("SELECT rel, attempts FROM items"))
    assert states == [("done", n)]
    assert all(attempts[r] == 1 for r in before)  # what was done before the kill was not done again
    erases = [ln.split()[1] for ln in log.read_text()[start:].splitlines() if ln.startswith("erase ")]
    assert len(set(erases)) == n and len(erases) - n <= 6  # only images in flight at the kill were redone
    leftovers = [p for p in out.rglob(".*") if p.is_file() and ".person_erase" not in p.parts]
    assert leftovers == []


def _sid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])
    except (OSError, ValueError, IndexError):
        return None
