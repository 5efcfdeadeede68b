"""Progress of a run: a ``BatchProgress`` receives each finished image; the end-of-run table.

``TqdmProgress`` draws a bar on a terminal, ``LogProgress`` writes one line per image (pipes, CI),
``NoProgress`` is silent.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any, Protocol

from ..report import BatchItem, BatchSummary


class BatchProgress(Protocol):
    """Receives progress: ``start`` once, ``item`` after each image, ``close`` at the end."""

    def start(self, total: int) -> None: ...

    def item(self, item: BatchItem, counts: dict[str, int]) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    """No output."""

    def start(self, total: int) -> None:
        pass

    def item(self, item: BatchItem, counts: dict[str, int]) -> None:
        pass

    def close(self) -> None:
        pass


class TqdmProgress:
    """A tqdm bar on a terminal: rate, ETA and done/failed/skipped counts."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.bar: Any = None

    def start(self, total: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="img", file=self.stream, dynamic_ncols=True, smoothing=0.1)

    def item(self, item: BatchItem, counts: dict[str, int]) -> None:
        if self.bar is None:
            return
        if item.status == "failed":
            self.bar.write(f"failed: {item.input}: {item.reason}", file=self.stream)
        self.bar.set_postfix(done=counts["done"], failed=counts["failed"], skipped=counts["skipped"], refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class LogProgress:
    """Plain log lines (for pipes and CI): one per image, with the running counts and rate."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.total = 0
        self.n = 0
        self.t0 = time.monotonic()

    def start(self, total: int) -> None:
        self.total = total
        self.t0 = time.monotonic()
        print(f"batch: {total} images", file=self.stream, flush=True)

    def item(self, item: BatchItem, counts: dict[str, int]) -> None:
        self.n += 1
        rate = self.n / max(1e-9, time.monotonic() - self.t0)
        extra = ""
        if item.status == "done":
            extra = f" ({item.erased}/{item.people} people{', cached segmentation' if item.cache_hit else ''})"
        elif item.status == "failed":
            extra = f" [{item.stage}] {item.reason}"
        elif item.reason:
            extra = f" ({item.reason})"
        print(
            f"[{self.n}/{self.total}] {item.status} {item.input}{extra} | done {counts['done']} failed "
            f"{counts['failed']} "
            f"skipped {counts['skipped']} | {rate:.2f} img/s",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        pass


def iter_items(summary: BatchSummary, status: str) -> Iterator[BatchItem]:
    """Items of a summary with the given status."""
    return (it for it in summary.items if it.status == status)
