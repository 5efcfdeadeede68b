"""The batch journal: one SQLite file in the output folder that makes a batch run restartable.

Each image of a run is one row of ``items``, identified by ``id`` = a digest of its relative path, the
sha256 of its bytes and the digest of the parameters it is processed with (so a changed photo or a
changed choice of people is new work, and an unchanged one is never done twice). Each stage of an
image (``segment``, ``erase``, ``save``) is one row of ``stages`` with its state and, for cloud stages,
the task id, written and committed *before* the task is polled: a restarted run polls that task
instead of submitting the photo again.

States of an item: ``running`` → ``done`` | ``failed``. The ``save`` stage goes ``written`` (the
output's temporary files are complete and named in ``detail``) → ``done`` (renamed into place), so a
run killed between the two finishes the rename on resume instead of redoing the work.

The connection is shared by threads (one lock); every method commits before it returns. WAL mode
with ``synchronous=NORMAL`` loses nothing when the process is killed (only an OS crash can lose the
last commits).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    rel TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    params_hash TEXT NOT NULL,
    params TEXT NOT NULL,
    state TEXT NOT NULL,
    stage TEXT,
    reason TEXT,
    output TEXT,
    people INTEGER,
    erased INTEGER,
    ms REAL,
    cache_hit INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_rel ON items (rel);
CREATE TABLE IF NOT EXISTS stages (
    id TEXT NOT NULL,
    stage TEXT NOT NULL,
    state TEXT NOT NULL,
    task_id TEXT,
    detail TEXT,
    updated REAL NOT NULL,
    PRIMARY KEY (id, stage)
);
"""


@dataclass(frozen=True)
class ItemRow:
    """One image as the journal knows it."""

    id: str
    rel: str
    sha256: str
    params_hash: str
    state: str
    stage: str | None
    reason: str | None
    output: str | None
    people: int | None
    erased: int | None
    ms: float | None
    cache_hit: bool | None
    attempts: int


class Journal:
    """The SQLite journal at ``path`` (created if missing).

    Raises:
        InputError: the file exists but is not a person_erase journal (or is from a newer version).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT v FROM meta WHERE k='schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise InputError(
                f"{self.path}: not a usable batch journal ({exc}); move it away or choose another output folder"
            ) from None
        if row is None:
            self._db.execute("INSERT INTO meta (k, v) VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            self._db.execute("INSERT OR IGNORE INTO meta (k, v) VALUES ('created', ?)", (str(time.time()),))
        elif int(row[0]) > SCHEMA_VERSION:
            raise InputError(
                f"{self.path}: written by a newer person_erase (journal schema {row[0]}); upgrade to resume it"
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- items --------------------------------------------------------------------------------

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def get(self, item_id: str) -> ItemRow | None:
        with self._lock:
            r = self._db.execute(
                "SELECT id, rel, sha256, params_hash, state, stage, reason, output, people, erased, ms, cache_hit, "
                "attempts "
                "FROM items WHERE id=?",
                (item_id,),
            ).fetchone()
        if r is None:
            return None
        return ItemRow(
            id=r[0],
            rel=r[1],
            sha256=r[2],
            params_hash=r[3],
            state=r[4],
            stage=r[5],
            reason=r[6],
            output=r[7],
            people=r[8],
            erased=r[9],
            ms=r[10],
            cache_hit=None if r[11] is None else bool(r[11]),
            attempts=int(r[12]),
        )

    def states(self) -> dict[str, int]:
        """Number of items per state."""
        with self._lock:
            return {s: int(n) for s, n in self._db.execute("SELECT state, COUNT(*) FROM items GROUP BY state")}

    def start(self, item_id: str, *, rel: str, sha256: str, params_hash: str, params: dict[str, Any]) -> int:
        """Mark the item running (creating it if new); returns its attempt number (1 for the first)."""
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO items (id, rel, sha256, params_hash, params, state, attempts, updated) "
                "VALUES (?, ?, ?, ?, ?, 'running', 0, ?) ON CONFLICT(id) DO NOTHING",
                (item_id, rel, sha256, params_hash, json.dumps(params, sort_keys=True), now),
            )
            self._db.execute(
                "UPDATE items SET state='running', reason=NULL, attempts=attempts+1, updated=? WHERE id=?",
                (now, item_id),
            )
            return int(self._db.execute("SELECT attempts FROM items WHERE id=?", (item_id,)).fetchone()[0])

    def finish(
        self,
        item_id: str,
        state: str,
        *,
        stage: str | None = None,
        reason: str | None = None,
        output: str | None = None,
        people: int | None = None,
        erased: int | None = None,
        ms: float | None = None,
        cache_hit: bool | None = None,
    ) -> None:
        """Record the item's final state for this attempt (``done`` or ``failed``)."""
        with self._lock:
            self._db.execute(
                "UPDATE items SET state=?, stage=?, reason=?, output=COALESCE(?, output), people=?, erased=?, ms=?, "
                "cache_hit=?, updated=? WHERE id=?",
                (state, stage, reason, output, people, erased, ms, None if cache_hit is None else int(cache_hit),
                 time.time(), item_id),
            )

    # --- stages -------------------------------------------------------------------------------

    def set_stage(self, item_id: str, stage: str, state: str, *, task_id: str | None = None,
                  detail: dict[str, Any] | None = None) -> None:
        """Record one stage's state (and its cloud task id), committed before this returns."""
        with self._lock:
            self._db.execute(
                "INSERT INTO stages (id, stage, state, task_id, detail, updated) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(id, stage) DO UPDATE SET state=excluded.state, "
                "task_id=COALESCE(excluded.task_id, stages.task_id), detail=COALESCE(excluded.detail, stages.detail), "
                "updated=excluded.updated",
                (item_id, stage, state, task_id, None if detail is None else json.dumps(detail), time.time()),
            )
            self._db.execute("UPDATE items SET stage=? WHERE id=?", (stage, item_id))

    def stage(self, item_id: str, stage: str) -> tuple[str, str | None, dict[str, Any] | None] | None:
        """(state, task_id, detail) of one stage, or None."""
        with self._lock:
            r = self._db.execute(
                "SELECT state, task_id, detail FROM stages WHERE id=? AND stage=?", (item_id, stage)
            ).fetchone()
        if r is None:
            return None
        return str(r[0]), r[1], None if r[2] is None else json.loads(r[2])

    def task_ids(self, item_id: str) -> dict[str, str]:
        """Cloud task ids per stage of the item."""
        with self._lock:
            rows = self._db.execute("SELECT stage, task_id FROM stages WHERE id=? AND task_id IS NOT NULL", (item_id,))
            return {str(s): str(t) for s, t in rows}

    def all_task_ids(self) -> set[str]:
        """Every cloud task id the journal knows (of any item): never adopted for another image."""
        with self._lock:
            return {str(t) for (t,) in self._db.execute("SELECT task_id FROM stages WHERE task_id IS NOT NULL")}

    def clear_stages(self, item_id: str, *, keep: tuple[str, ...] = ()) -> None:
        """Forget stage records (e.g. a failed task's id before a retry), except those named in ``keep``."""
        with self._lock:
            if keep:
                marks = ",".join("?" * len(keep))
                self._db.execute(f"DELETE FROM stages WHERE id=? AND stage NOT IN ({marks})", (item_id, *keep))
            else:
                self._db.execute("DELETE FROM stages WHERE id=?", (item_id,))

    def clear_task(self, item_id: str, stage: str) -> None:
        """Forget the task id of one stage (it expired or failed; the next attempt submits anew)."""
        with self._lock:
            self._db.execute("UPDATE stages SET task_id=NULL, state='pending' WHERE id=? AND stage=?", (item_id, stage))

    def unfinished_saves(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(id, rel, params) of items killed between ``save: written`` and done: their temp files are kept."""
        with self._lock:
            rows = self._db.execute(
                "SELECT items.id, items.rel, items.params FROM items JOIN stages ON stages.id = items.id "
                "WHERE stages.stage='save' AND stages.state='written' AND items.state='running'"
            ).fetchall()
        return [(str(i), str(r), json.loads(p)) for i, r, p in rows]
