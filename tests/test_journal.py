"""person_erase.batch.journal: what the SQLite file holds, what survives a restart or a kill, bad files."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from person_erase.batch.journal import SCHEMA_VERSION, ItemRow, Journal
from person_erase.errors import InputError

REPO = Path(__file__).resolve().parents[1]
SHA = "ab" * 32


def _rows(path: Path, sql: str, *args: object) -> list[tuple]:
    """Rows read by a connection of our own: what another process (a resumed run) would see."""
    with sqlite3.connect(path, timeout=5) as db:
        return db.execute(sql, args).fetchall()


def test_a_new_journal_is_a_sqlite_file_with_its_schema(tmp_path: Path) -> None:
    path = tmp_path / "state" / "journal.sqlite"  # the folder is created
    with Journal(path) as j:
        assert j.count() == 0 and j.states() == {}
    assert path.read_bytes()[:16] == b"SQLite format 3\x00"
    tables = {r[0] for r in _rows(path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"meta", "items", "stages"}
    meta = dict(_rows(path, "SELECT k, v FROM meta"))
    assert meta["schema"] == str(SCHEMA_VERSION) and float(meta["created"]) > 0
    assert _rows(path, "PRAGMA journal_mode") == [("wal",)]


def test_items_start_finish_and_their_rows(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path) as j:
        assert j.start("i1", rel="a/b.jpg", sha256=SHA, params_hash="p1", params={"z": 1, "a": [0, 2]}) == 1
        assert j.get("i1") == ItemRow(id="i1", rel="a/b.jpg", sha256=SHA, params_hash="p1", state="running",
                                      stage=None, reason=None, output=None, people=None, erased=None, ms=None,
                                      cache_hit=None, attempts=1)
        # committed before start() returned: another connection sees it
        assert _rows(path, "SELECT rel, state, attempts FROM items WHERE id='i1'") == [("a/b.jpg", "running", 1)]
        (params,) = _rows(path, "SELECT params FROM items WHERE id='i1'")[0]
        assert params == '{"a": [0, 2], "z": 1}'  # sorted keys: the same parameters give the same text
        j.finish("i1", "done", stage="save", output="a/b.png", people=3, erased=2, ms=12.5, cache_hit=True)
        row = j.get("i1")
        assert row is not None
        assert (row.state, row.stage, row.output, row.people, row.erased, row.ms, row.cache_hit) == (
            "done", "save", "a/b.png", 3, 2, 12.5, True)
        j.start("i2", rel="c.jpg", sha256=SHA, params_hash="p1", params={})
        j.finish("i2", "failed", stage="segment", reason="boom")
        assert j.states() == {"done": 1, "failed": 1} and j.count() == 2
        assert j.get("missing") is None
    assert _rows(path, "SELECT id, state, reason, cache_hit FROM items ORDER BY id") == [
        ("i1", "done", None, 1), ("i2", "failed", "boom", None)]


def test_a_retry_is_the_next_attempt_and_keeps_the_output(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path) as j:
        j.start("i", rel="a.jpg", sha256=SHA, params_hash="p", params={})
        j.finish("i", "done", output="a.png")
        j.start("i", rel="a.jpg", sha256=SHA, params_hash="p", params={})
        j.finish("i", "failed", stage="erase", reason="boom")  # no output given: the known one stays
    with Journal(path) as j:  # a resumed run: everything is still there
        assert j.start("i", rel="a.jpg", sha256=SHA, params_hash="p", params={}) == 3
        row = j.get("i")
        assert row is not None and (row.state, row.reason, row.output, row.attempts) == ("running", None, "a.png", 3)


def test_stages_task_ids_and_clearing(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path) as j:
        j.start("i", rel="a.jpg", sha256=SHA, params_hash="p", params={})
        j.set_stage("i", "segment", "submitted", task_id="task-seg")
        # the task id is in the file before anything polls it (a killed run must not submit again)
        assert _rows(path, "SELECT stage, state, task_id FROM stages") == [("segment", "submitted", "task-seg")]
        j.set_stage("i", "segment", "done", detail={"people": 2})  # no task id given: the known one stays
        assert j.stage("i", "segment") == ("done", "task-seg", {"people": 2})
        j.set_stage("i", "erase", "submitted", task_id="task-er")
        assert j.get("i").stage == "erase"  # type: ignore[union-attr]
        assert j.task_ids("i") == {"segment": "task-seg", "erase": "task-er"}
        j.start("other", rel="b.jpg", sha256=SHA, params_hash="p", params={})
        j.set_stage("other", "segment", "submitted", task_id="task-other")
        assert j.all_task_ids() == {"task-seg", "task-er", "task-other"}
        j.clear_task("i", "erase")  # expired: the next attempt submits anew
        assert j.stage("i", "erase") == ("pending", None, None) and j.task_ids("i") == {"segment": "task-seg"}
        j.clear_stages("i", keep=("segment",))
        assert j.stage("i", "erase") is None and j.stage("i", "segment") is not None
        j.clear_stages("i")
        assert j.stage("i", "segment") is None and j.stage("nobody", "segment") is None
    assert _rows(path, "SELECT id, stage, task_id FROM stages") == [("other", "segment", "task-other")]


def test_unfinished_saves_are_the_ones_written_but_not_done(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        for item in ("written", "renamed", "saving"):
            j.start(item, rel=f"{item}.jpg", sha256=SHA, params_hash="p", params={"mode": "erase"})
        j.set_stage("written", "save", "written", detail={"tmp": [".pe-x.part.png"]})
        j.set_stage("renamed", "save", "written")
        j.finish("renamed", "done", stage="save")
        j.set_stage("saving", "erase", "done")
        assert j.unfinished_saves() == [("written", "written.jpg", {"mode": "erase"})]


def test_a_killed_process_loses_nothing_it_committed(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    code = (
        "import os, signal, sys; from person_erase.batch.journal import Journal; j = Journal(sys.argv[1]); "
        f"j.start('i', rel='a.jpg', sha256='{SHA}', params_hash='p', params={{}}); "
        "j.set_stage('i', 'segment', 'submitted', task_id='task-1'); "
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)], env={"PYTHONPATH": str(REPO)}, timeout=60,
                          capture_output=True)
    assert proc.returncode == -9, proc.stderr
    with Journal(path) as j:  # the next run opens the WAL the killed one left
        assert j.get("i").state == "running"  # type: ignore[union-attr]
        assert j.stage("i", "segment") == ("submitted", "task-1", None)


def test_threads_share_one_journal(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:

        def work(k: int) -> None:
            for n in range(20):
                item = f"{k}-{n}"
                j.start(item, rel=f"{item}.jpg", sha256=SHA, params_hash="p", params={})
                j.set_stage(item, "segment", "submitted", task_id=f"t{item}")
                j.finish(item, "done" if n % 2 else "failed")

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert j.states() == {"done": 40, "failed": 40} and len(j.all_task_ids()) == 80


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a database, just text " * 100, "not a usable batch journal"),
        (b"SQLite format 3\x00" + b"\xff" * 200, "not a usable batch journal"),
    ],
)
def test_a_file_that_is_not_a_journal_is_refused_and_left_alone(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "journal.sqlite"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        Journal(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert path.read_bytes() == content  # nothing overwritten


def test_a_journal_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET v=? WHERE k='schema'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(InputError, match=f"newer person_erase \\(journal schema {SCHEMA_VERSION + 1}\\)"):
        Journal(path)
    assert dict(_rows(path, "SELECT k, v FROM meta"))["schema"] == str(SCHEMA_VERSION + 1)


def test_an_older_file_without_schema_row_gets_one(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
    with Journal(path) as j:
        assert j.count() == 0
    assert dict(_rows(path, "SELECT k, v FROM meta"))["schema"] == str(SCHEMA_VERSION)
