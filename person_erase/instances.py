"""``Instances``: the one result type every segmenter returns and every eraser takes.

N people in an H×W photo are N-aligned arrays:

* ``masks``  (N, H, W) bool — one mask per person; masks do not overlap after ``resolve_overlaps``.
* ``boxes``  (N, 4) int64 — x0, y0, x1, y1 (x1/y1 exclusive), tight around each mask.
* ``scores`` (N,) float32 — detector confidence in [0, 1] (1.0 where the engine gives none).
* ``index``  (N,) int64 — each person's number. Numbers are given 0..N-1 left to right by box
  centre x (ties: top to bottom) when an engine's output is wrapped by ``Instances.from_engine``;
  filtering keeps them, so ``people[[2]]`` is still person 2.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError, SelectionError

# A colour-blind-friendly palette (Okabe–Ito, plus a few), RGB.
PALETTE = np.array(
    [
        (230, 159, 0),
        (86, 180, 233),
        (0, 158, 115),
        (240, 228, 66),
        (0, 114, 178),
        (213, 94, 0),
        (204, 121, 167),
        (120, 200, 80),
        (170, 120, 255),
        (255, 90, 120),
    ],
    dtype=np.uint8,
)


def _as_array(value: Any, dtype: Any, name: str, shape_hint: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object:
        raise InputError(f"Instances.{name} must be a numeric array {shape_hint}, got dtype object")
    return arr.astype(dtype, copy=False)


def boxes_from_masks(masks: np.ndarray) -> np.ndarray:
    """Tight boxes around boolean masks.

    Args:
        masks: (N, H, W) bool.

    Returns:
        (N, 4) int64 x0, y0, x1, y1 with x1/y1 exclusive; all zeros for an empty mask.
    """
    n = masks.shape[0]
    boxes = np.zeros((n, 4), dtype=np.int64)
    if n == 0:
        return boxes
    rows = masks.any(axis=2)  # (N, H)
    cols = masks.any(axis=1)  # (N, W)
    has = rows.any(axis=1)
    h, w = masks.shape[1:]
    y0 = rows.argmax(axis=1)
    y1 = h - rows[:, ::-1].argmax(axis=1)
    x0 = cols.argmax(axis=1)
    x1 = w - cols[:, ::-1].argmax(axis=1)
    boxes[:] = np.stack([x0, y0, x1, y1], axis=1)
    boxes[~has] = 0
    return boxes


@dataclass(frozen=True, eq=False)
class Instances:
    """N person instances of one H×W photo (see the module docstring for the arrays)."""

    masks: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    index: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        masks = np.asarray(self.masks)
        if masks.ndim != 3:
            raise InputError(
                f"Instances.masks must be (N, H, W) bool, got shape {masks.shape} dtype {masks.dtype}"
            )
        if masks.dtype != bool:
            raise InputError(
                f"Instances.masks must have dtype bool, got {masks.dtype} (threshold it first, e.g. m > 0)"
            )
        n = masks.shape[0]
        boxes = _as_array(self.boxes, np.int64, "boxes", "(N, 4)")
        scores = _as_array(self.scores, np.float32, "scores", "(N,)")
        index = _as_array(self.index, np.int64, "index", "(N,)")
        if boxes.shape != (n, 4):
            raise InputError(f"Instances.boxes must be ({n}, 4) to match masks, got {boxes.shape}")
        if scores.shape != (n,):
            raise InputError(f"Instances.scores must be ({n},) to match masks, got {scores.shape}")
        if index.shape != (n,):
            raise InputError(f"Instances.index must be ({n},) to match masks, got {index.shape}")
        if len(set(index.tolist())) != n:
            raise InputError(f"Instances.index must be unique, got {index.tolist()}")
        for name, arr in (("masks", masks), ("boxes", boxes), ("scores", scores), ("index", index)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def empty(cls, height: int, width: int) -> Instances:
        """No people in an ``height``×``width`` photo."""
        return cls(
            masks=np.zeros((0, height, width), dtype=bool),
            boxes=np.zeros((0, 4), dtype=np.int64),
            scores=np.zeros((0,), dtype=np.float32),
            index=np.zeros((0,), dtype=np.int64),
        )

    @classmethod
    def from_engine(
        cls,
        masks: np.ndarray,
        *,
        scores: Sequence[float] | np.ndarray | None = None,
        boxes: np.ndarray | None = None,
        min_area: int = 1,
        meta: dict[str, Any] | None = None,
    ) -> Instances:
        """Wrap an engine's masks: drop empty ones, compute boxes, number left to right.

        Args:
            masks: (N, H, W) bool (or anything > 0 counts as the person).
            scores: (N,) confidences; 1.0 each if omitted.
            boxes: (N, 4) boxes to keep (e.g. detector boxes); computed from the masks if omitted.
            min_area: masks with fewer pixels are dropped.
            meta: engine notes carried along (e.g. ``{"engine": "local"}``).
        """
        masks = np.asarray(masks)
        if masks.ndim != 3:
            raise InputError(f"masks must be (N, H, W), got shape {masks.shape}")
        masks = masks > 0 if masks.dtype != bool else masks
        n = masks.shape[0]
        sc = np.ones(n, dtype=np.float32) if scores is None else np.asarray(scores, dtype=np.float32)
        areas = masks.sum(axis=(1, 2))
        keep = areas >= max(1, min_area)
        masks, sc = masks[keep], sc[keep]
        bx = boxes_from_masks(masks) if boxes is None else np.asarray(boxes, dtype=np.int64)[keep]
        order = _left_to_right(bx)
        return cls(
            masks=np.ascontiguousarray(masks[order]),
            boxes=bx[order],
            scores=sc[order],
            index=np.arange(len(order), dtype=np.int64),
            meta=dict(meta or {}),
        )

    @classmethod
    def from_label_map(cls, labels: np.ndarray, *, meta: dict[str, Any] | None = None) -> Instances:
        """Instances from a label map (0 = background, k > 0 = one person).

        Labels need not be consecutive; people are re-numbered left to right.

        Args:
            labels: (H, W) integer array.
        """
        labels = np.asarray(labels)
        if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
            raise InputError(
                f"a label map must be (H, W) integers, got shape {labels.shape} dtype {labels.dtype}"
            )
        ids = np.unique(labels)
        ids = ids[ids > 0]
        masks = labels[None, :, :] == ids[:, None, None] if len(ids) else np.zeros((0, *labels.shape), bool)
        return cls.from_engine(masks, meta=meta)

    # --- views --------------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the photo."""
        return int(self.masks.shape[1]), int(self.masks.shape[2])

    @property
    def areas(self) -> np.ndarray:
        """(N,) int64 pixel count of each mask."""
        return self.masks.sum(axis=(1, 2)).astype(np.int64)

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    def __iter__(self) -> Iterator[Instances]:
        for i in range(len(self)):
            yield self[i]

    def positions(self, numbers: Sequence[int] | np.ndarray) -> np.ndarray:
        """Row positions of the people numbered ``numbers`` (their ``index`` values).

        Raises:
            SelectionError: a number is not in this set, or repeats.
        """
        numbers = [int(x) for x in np.asarray(numbers).ravel()]
        lookup = {int(v): i for i, v in enumerate(self.index.tolist())}
        dup = sorted({x for x in numbers if numbers.count(x) > 1})
        if dup:
            raise SelectionError(f"person {dup[0]} is named more than once")
        missing = [x for x in numbers if x not in lookup]
        if missing:
            raise SelectionError(f"no person {missing[0]} in this photo; {self.describe_range()}")
        return np.array([lookup[x] for x in numbers], dtype=np.int64)

    def describe_range(self) -> str:
        """A phrase naming the valid person numbers, for error messages."""
        if len(self) == 0:
            return "no people were found"
        idx = sorted(self.index.tolist())
        if idx == list(range(idx[0], idx[-1] + 1)):
            return f"valid person numbers are {idx[0]}..{idx[-1]}"
        return "valid person numbers are " + ", ".join(map(str, idx))

    def __getitem__(self, key: Any) -> Instances:
        """Row selection by int, slice, list of ints or bool array; returns a new Instances.

        Integers address rows (positions), like numpy; use ``by_index`` to pick by person number.
        (Right after segmentation, rows and numbers coincide.)
        """
        if isinstance(key, (int, np.integer)):
            n = len(self)
            if not -n <= int(key) < n:
                raise SelectionError(f"row {int(key)} is out of range for {n} people; {self.describe_range()}")
            sel: Any = [int(key)]
        elif isinstance(key, slice):
            sel = key
        else:
            arr = np.asarray(key)
            if arr.dtype == bool:
                if arr.shape != (len(self),):
                    raise SelectionError(f"a bool selector must have shape ({len(self)},), got {arr.shape}")
                sel = arr
            elif arr.size == 0:
                sel = np.zeros(0, dtype=np.int64)
            elif np.issubdtype(arr.dtype, np.integer):
                n = len(self)
                bad = arr[(arr < -n) | (arr >= n)]
                if bad.size:
                    raise SelectionError(
                        f"row {int(bad[0])} is out of range for {n} people; {self.describe_range()}"
                    )
                sel = arr.astype(np.int64)
            else:
                raise SelectionError(f"cannot index Instances with {type(key).__name__} of dtype {arr.dtype}")
        return Instances(
            masks=self.masks[sel],
            boxes=self.boxes[sel],
            scores=self.scores[sel],
            index=self.index[sel],
            meta=dict(self.meta),
        )

    def by_index(self, numbers: Sequence[int]) -> Instances:
        """The people with these numbers (``index`` values), in the order given."""
        return self[self.positions(numbers)]

    def union(self) -> np.ndarray:
        """(H, W) bool: every person's pixels."""
        if len(self) == 0:
            return np.zeros(self.shape, dtype=bool)
        return self.masks.any(axis=0)

    def to_label_map(self) -> np.ndarray:
        """(H, W) label map: 0 background, ``index + 1`` per person.

        uint8 when every label fits, else uint16. Where masks overlap the later row wins.
        """
        top = int(self.index.max()) + 1 if len(self) else 0
        dtype = np.uint8 if top <= 255 else np.uint16
        labels = np.zeros(self.shape, dtype=dtype)
        for m, i in zip(self.masks, self.index, strict=False):
            labels[m] = i + 1
        return labels

    def overlay(self, image: np.ndarray | Any | None = None, *, alpha: float = 0.5) -> np.ndarray:
        """A picture of the people: each tinted, outlined and numbered with its index.

        Args:
            image: (H, W, 3) uint8 RGB (or a ``pe.Image``); a grey canvas if omitted.
            alpha: tint strength in [0, 1].

        Returns:
            (H, W, 3) uint8 RGB, a new array.
        """
        from .overlay import draw_overlay

        return draw_overlay(self, image, alpha=alpha)

    def _repr_png_(self) -> bytes:  # notebooks show the overlay (shrunk to PREVIEW_MAX_SIDE px)
        from .overlay import preview_png

        return preview_png(self.overlay())

    def __repr__(self) -> str:
        h, w = self.shape
        return f"Instances(n={len(self)}, size={w}x{h}, index={self.index.tolist()})"


def _left_to_right(boxes: np.ndarray) -> np.ndarray:
    """Row order that numbers people by box centre x, ties top to bottom."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    cx = boxes[:, 0] + boxes[:, 2]  # 2 × centre, exact in integers
    cy = boxes[:, 1] + boxes[:, 3]
    return np.lexsort((cy, cx)).astype(np.int64)
