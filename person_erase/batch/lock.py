"""One batch per output folder: an exclusive lock on ``<state dir>/lock`` holding the owner's pid.

The lock is an ``flock`` on an open file, so it is released by the kernel however the owner ends
(``kill -9`` included); the pid in the file is only there to name the owner in the message.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError


class DirLock:
    """Hold ``path`` exclusively while the run lasts (``with DirLock(path, where=OUT_DIR): ...``).

    Raises:
        InputError: another process holds it (its pid is named).
    """

    def __init__(self, path: Path, *, where: str) -> None:
        self.path, self.where = Path(path), where
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise InputError(
                f"another batch is running in {self.where} (pid {owner}); wait for it to finish or stop it, "
                "or choose another output folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            finally:
                os.close(self._fd)  # closing releases the flock
                self._fd = None

    def __enter__(self) -> DirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
