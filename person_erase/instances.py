"""``Instances``: the one result type every segmenter returns and every eraser takes.

N people in an H×W photo are N-aligned arrays:

* ``masks``  (N, H, W) bool — one mask per person; masks do not overlap after ``resolve_overlaps``.
* ``boxes``  (N, 4) int64 — x0, y0, x1, y1 (x1/y1 exclusive), tight around each mask.
* ``scores`` (N,) float32 — detector confidence in [0, 1] (1.0 where the engine gives none).
* ``index``  (N,) int64 — each person's number. Numbers are given 0..N-1 left to right by box
  centre x (ties: top to bottom) when an engine's output is wrapped by ``Instances.from_engine``;
  filtering keeps them, so ``people[[2]]`` is still person 2.

``info`` (``engineinfo.SegmentInfo``) says what the segmenter did: engine, timings, task ids, notes.

Length (~520 lines, over the ~500 guideline): this is one type, its three constructors (engine
masks, label maps, compact crops; each bounded before it allocates) and its views; the typed engine
info already lives in ``engineinfo``, and splitting the constructors off would split the type.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .engineinfo import SegmentInfo
from .errors import InputError, SelectionError

_NO_INFO = SegmentInfo()

#: Most people one photo may hold (a label map of noise has tens of thousands of "people").
MAX_INSTANCES = 1000
#: Most mask pixels one ``Instances`` may allocate: the people's boxes in total, or N·H·W for the dense
#: ``masks`` stack (1e9 = 1 GB of bool).
MAX_MASK_PIXELS = 1_000_000_000


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
    return _boxes_from_projections(rows, cols)  # type: ignore[arg-type]


def _boxes_from_projections(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(N, 4) tight boxes from (N, H) row and (N, W) column occupancy; zeros where a row is empty."""
    h, w = rows.shape[1], cols.shape[1]
    has = rows.any(axis=1)
    y0 = rows.argmax(axis=1)
    y1 = h - rows[:, ::-1].argmax(axis=1)
    x0 = cols.argmax(axis=1)
    x1 = w - cols[:, ::-1].argmax(axis=1)
    boxes = np.stack([x0, y0, x1, y1], axis=1).astype(np.int64)
    boxes[~has] = 0
    return boxes


def _check_count(n: int, max_instances: int, what: str, noun: str = "people") -> None:
    if n > max_instances:
        raise InputError(
            f"{what} has {n:,} {noun}; at most max_instances={max_instances:,} are accepted per photo "
            "(noise or a non-label image?); give a label map with one value per person, or raise max_instances"
        )


def _check_pixels(total: int, max_mask_pixels: int, what: str) -> None:
    if total > max_mask_pixels:
        raise InputError(
            f"{what} would need {total:,} mask pixels, over max_mask_pixels={max_mask_pixels:,} "
            "(many people spread over the whole photo: noise or a non-label image?); "
            "give one compact region per person, or raise max_mask_pixels"
        )


class Instances:
    """N person instances of one H×W photo (see the module docstring for the arrays).

    Immutable. Masks are stored compactly, as each person's mask cropped to its own tight box, so a
    crowd in a large photo costs the people's area, not N·H·W; ``masks`` builds the dense (N, H, W)
    stack on first use (refused over ``MAX_MASK_PIXELS``). Code that loops over people should use
    ``mask(row)`` / ``crop(row)`` / ``union(rows)`` instead.

    Args:
        masks: (N, H, W) bool.
        boxes: (N, 4) x0, y0, x1, y1 (need not be tight: a detector's boxes may be kept).
        scores: (N,) confidences.
        index: (N,) unique person numbers.
        info: what the segmenter did (``engineinfo.SegmentInfo``: engine, timings, task ids, notes).
    """

    __slots__ = ("_shape", "_crops", "_crop_boxes", "_dense", "boxes", "scores", "index", "info")

    _shape: tuple[int, int]
    _crops: tuple[np.ndarray, ...]
    _crop_boxes: np.ndarray
    _dense: np.ndarray | None
    boxes: np.ndarray
    scores: np.ndarray
    index: np.ndarray
    info: SegmentInfo

    __match_args__ = ("masks", "boxes", "scores", "index")

    def __init__(
        self,
        masks: np.ndarray,
        boxes: np.ndarray,
        scores: np.ndarray,
        index: np.ndarray,
        info: SegmentInfo | None = None,
    ) -> None:
        masks = np.asarray(masks)
        if masks.ndim != 3:
            raise InputError(
                f"Instances.masks must be (N, H, W) bool, got shape {masks.shape} dtype {masks.dtype}"
            )
        if masks.dtype != bool:
            raise InputError(
                f"Instances.masks must have dtype bool, got {masks.dtype} (threshold it first, e.g. m > 0)"
            )
        crop_boxes = boxes_from_masks(masks)
        crops = tuple(
            masks[k, y0:y1, x0:x1].copy() for k, (x0, y0, x1, y1) in enumerate(crop_boxes.tolist())
        )
        self._init(
            (int(masks.shape[1]), int(masks.shape[2])), crops, crop_boxes, boxes, scores, index, info,
        )

    def _init(
        self,
        shape: tuple[int, int],
        crops: tuple[np.ndarray, ...],
        crop_boxes: np.ndarray,
        boxes: Any,
        scores: Any,
        index: Any,
        info: SegmentInfo | None,
        dense: np.ndarray | None = None,
    ) -> None:
        n = len(crops)
        boxes = np.array(_as_array(boxes, np.int64, "boxes", "(N, 4)"))
        scores = np.array(_as_array(scores, np.float32, "scores", "(N,)"))
        index = np.array(_as_array(index, np.int64, "index", "(N,)"))
        if boxes.shape != (n, 4):
            raise InputError(f"Instances.boxes must be ({n}, 4) to match masks, got {boxes.shape}")
        if scores.shape != (n,):
            raise InputError(f"Instances.scores must be ({n},) to match masks, got {scores.shape}")
        if index.shape != (n,):
            raise InputError(f"Instances.index must be ({n},) to match masks, got {index.shape}")
        if info is not None and not isinstance(info, SegmentInfo):
            raise InputError(f"Instances.info must be a person_erase.engineinfo.SegmentInfo, got {type(info).__name__}")
        if len(set(index.tolist())) != n:
            raise InputError(f"Instances.index must be unique, got {index.tolist()}")
        for arr in (*crops, crop_boxes, boxes, scores, index):
            arr.setflags(write=False)
        for name, value in (
            ("_shape", shape), ("_crops", crops), ("_crop_boxes", crop_boxes), ("_dense", dense),
            ("boxes", boxes), ("scores", scores), ("index", index), ("info", info or _NO_INFO),
        ):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Instances is immutable: cannot set {name!r} (build a new one)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Instances is immutable: cannot delete {name!r}")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:  # pickling (worker processes, Ray): compact form
        return _rebuild, (self._shape, self._crops, self._crop_boxes, self.boxes, self.scores, self.index, self.info)

    @classmethod
    def _from_crops(
        cls,
        shape: tuple[int, int],
        crops: Sequence[np.ndarray],
        crop_boxes: np.ndarray,
        boxes: Any,
        scores: Any,
        index: Any,
        info: SegmentInfo | None,
    ) -> Instances:
        obj = cls.__new__(cls)
        obj._init(shape, tuple(crops), np.asarray(crop_boxes, dtype=np.int64), boxes, scores, index, info)
        return obj

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def empty(cls, height: int, width: int) -> Instances:
        """No people in an ``height``×``width`` photo."""
        return cls._from_crops(
            (int(height), int(width)), (), np.zeros((0, 4), np.int64),
            np.zeros((0, 4), np.int64), np.zeros((0,), np.float32), np.zeros((0,), np.int64), None,
        )

    @classmethod
    def from_engine(
        cls,
        masks: np.ndarray,
        *,
        scores: Sequence[float] | np.ndarray | None = None,
        boxes: np.ndarray | None = None,
        min_area: int = 1,
        info: SegmentInfo | None = None,
        max_instances: int | None = None,
    ) -> Instances:
        """Wrap an engine's masks: drop empty ones, compute boxes, number left to right.

        Args:
            masks: (N, H, W) bool (or anything > 0 counts as the person).
            scores: (N,) confidences; 1.0 each if omitted.
            boxes: (N, 4) boxes to keep (e.g. detector boxes); computed from the masks if omitted.
            min_area: masks with fewer pixels are dropped.
            info: what the engine did (e.g. ``SegmentInfo(engine="local")``).
            max_instances: most people accepted (default ``MAX_INSTANCES``).

        Raises:
            InputError: bad shapes, or more than ``max_instances`` non-empty masks.
        """
        masks = np.asarray(masks)
        if masks.ndim != 3:
            raise InputError(f"masks must be (N, H, W), got shape {masks.shape}")
        masks = masks > 0 if masks.dtype != bool else masks
        n = masks.shape[0]
        sc = np.ones(n, dtype=np.float32) if scores is None else np.asarray(scores, dtype=np.float32)
        if sc.shape != (n,):
            raise InputError(f"scores must be ({n},) to match masks, got {sc.shape}")
        if boxes is not None and np.asarray(boxes).shape != (n, 4):
            raise InputError(f"boxes must be ({n}, 4) to match masks, got {np.asarray(boxes).shape}")
        crop_boxes = boxes_from_masks(masks)
        areas = masks.sum(axis=(1, 2))
        keep = np.flatnonzero(areas >= max(1, min_area))
        _check_count(len(keep), MAX_INSTANCES if max_instances is None else int(max_instances), "the segmentation")
        crops = [masks[k, y0:y1, x0:x1].copy() for k in keep.tolist()
                 for x0, y0, x1, y1 in [crop_boxes[k].tolist()]]
        bx = crop_boxes[keep] if boxes is None else np.asarray(boxes, dtype=np.int64)[keep]
        return cls._numbered((int(masks.shape[1]), int(masks.shape[2])), crops, crop_boxes[keep], bx, sc[keep], info)

    @classmethod
    def _numbered(
        cls,
        shape: tuple[int, int],
        crops: Sequence[np.ndarray],
        crop_boxes: np.ndarray,
        boxes: np.ndarray,
        scores: np.ndarray,
        info: SegmentInfo | None,
    ) -> Instances:
        """Instances numbered 0..N-1 left to right by ``boxes``."""
        order = _left_to_right(boxes)
        return cls._from_crops(
            shape, [crops[k] for k in order.tolist()], crop_boxes[order], boxes[order], scores[order],
            np.arange(len(order), dtype=np.int64), info,
        )

    @classmethod
    def from_label_map(
        cls,
        labels: np.ndarray,
        *,
        info: SegmentInfo | None = None,
        max_instances: int | None = None,
        max_mask_pixels: int | None = None,
    ) -> Instances:
        """Instances from a label map (0 = background, k > 0 = one person).

        Labels need not be consecutive; people are re-numbered left to right. Each person's mask is
        kept cropped to their box, so memory follows the people's boxes, not N·H·W. Both bounds are
        checked before any mask is allocated.

        Args:
            labels: (H, W) integer array.
            info: what the engine did.
            max_instances: most distinct labels accepted (default ``MAX_INSTANCES``).
            max_mask_pixels: most pixels the people's boxes may cover in total (default
                ``MAX_MASK_PIXELS``; a label scattered over the whole photo costs H·W).

        Raises:
            InputError: not an (H, W) integer array, or over one of the bounds (named in the message).
        """
        labels = np.asarray(labels)
        if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
            raise InputError(
                f"a label map must be (H, W) integers, got shape {labels.shape} dtype {labels.dtype}"
            )
        h, w = (int(v) for v in labels.shape)
        limit_n = MAX_INSTANCES if max_instances is None else int(max_instances)
        limit_px = MAX_MASK_PIXELS if max_mask_pixels is None else int(max_mask_pixels)
        if labels.dtype.itemsize <= 2 and labels.dtype.kind == "u":
            counts = np.bincount(labels.ravel(), minlength=1)
            ids = np.flatnonzero(counts)
            ids = ids[ids > 0]
            _check_count(len(ids), limit_n, "the label map", "labels")
            lut = np.zeros(len(counts), dtype=np.int32)
            lut[ids] = np.arange(1, len(ids) + 1, dtype=np.int32)
            compact = lut[labels]
        else:
            ids, inverse = np.unique(labels, return_inverse=True)
            first = int(np.searchsorted(ids, 1))  # labels <= 0 are background
            _check_count(len(ids) - first, limit_n, "the label map", "labels")
            compact = np.maximum(inverse.reshape(h, w).astype(np.int32) - (first - 1), 0)
            ids = ids[first:]
        n = len(ids)
        if n == 0:
            return cls.empty(h, w).with_info(info)
        rows = np.zeros((n + 1, h), dtype=bool)
        rows[compact, np.arange(h)[:, None]] = True
        cols = np.zeros((n + 1, w), dtype=bool)
        cols[compact, np.arange(w)[None, :]] = True
        crop_boxes = _boxes_from_projections(rows[1:], cols[1:])
        sizes = (crop_boxes[:, 2] - crop_boxes[:, 0]) * (crop_boxes[:, 3] - crop_boxes[:, 1])
        _check_pixels(int(sizes.sum()), limit_px, "the label map")
        crops = [compact[y0:y1, x0:x1] == k for k, (x0, y0, x1, y1) in enumerate(crop_boxes.tolist(), start=1)]
        return cls._numbered((h, w), crops, crop_boxes, crop_boxes.copy(), np.ones(n, np.float32), info)

    def with_info(self, info: SegmentInfo | None) -> Instances:
        """The same people with ``info`` as what the segmenter did (a new Instances)."""
        return Instances._from_crops(self._shape, self._crops, self._crop_boxes, self.boxes, self.scores,
                                     self.index, info)

    # --- views --------------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the photo."""
        return self._shape

    @property
    def masks(self) -> np.ndarray:
        """(N, H, W) bool, read-only: every person's full-size mask (built on first use, then cached).

        Raises:
            InputError: N·H·W is over ``MAX_MASK_PIXELS`` (use ``mask(row)`` / ``crop(row)`` instead).
        """
        if self._dense is None:
            h, w = self._shape
            n = len(self)
            _check_pixels(n * h * w, MAX_MASK_PIXELS, f"a dense ({n}, {h}, {w}) mask stack")
            dense = np.zeros((n, h, w), dtype=bool)
            for k in range(n):
                x0, y0, x1, y1 = self._crop_boxes[k].tolist()
                dense[k, y0:y1, x0:x1] = self._crops[k]
            dense.setflags(write=False)
            object.__setattr__(self, "_dense", dense)
            return dense
        return self._dense

    def crop(self, row: int) -> tuple[tuple[int, int, int, int], np.ndarray]:
        """Person ``row``'s mask cropped to its tight box.

        Returns:
            ((x0, y0, x1, y1), (y1 - y0, x1 - x0) bool read-only array); an empty mask has box
            (0, 0, 0, 0) and a (0, 0) crop.
        """
        k = self._row(row)
        x0, y0, x1, y1 = (int(v) for v in self._crop_boxes[k])
        return (x0, y0, x1, y1), self._crops[k]

    def mask(self, row: int, *, window: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """Person ``row``'s mask as a new (H, W) bool array, or only ``window`` = (x0, y0, x1, y1) of it."""
        (x0, y0, x1, y1), c = self.crop(row)
        h, w = self._shape
        wx0, wy0, wx1, wy1 = (0, 0, w, h) if window is None else (int(v) for v in window)
        wx0, wy0 = max(0, wx0), max(0, wy0)
        wx1, wy1 = max(wx0, min(w, wx1)), max(wy0, min(h, wy1))
        out = np.zeros((wy1 - wy0, wx1 - wx0), dtype=bool)
        ix0, iy0, ix1, iy1 = max(x0, wx0), max(y0, wy0), min(x1, wx1), min(y1, wy1)
        if ix1 > ix0 and iy1 > iy0:
            out[iy0 - wy0:iy1 - wy0, ix0 - wx0:ix1 - wx0] = c[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]
        return out

    def _row(self, row: int) -> int:
        n = len(self)
        k = int(row)
        if not -n <= k < n:
            raise SelectionError(f"row {k} is out of range for {n} people; {self.describe_range()}")
        return k % n

    @property
    def areas(self) -> np.ndarray:
        """(N,) int64 pixel count of each mask."""
        return np.array([int(np.count_nonzero(c)) for c in self._crops], dtype=np.int64)

    def __len__(self) -> int:
        return len(self._crops)

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
        n = len(self)
        if isinstance(key, (int, np.integer)):
            sel = np.array([self._row(int(key))], dtype=np.int64)
        elif isinstance(key, slice):
            sel = np.arange(n, dtype=np.int64)[key]
        else:
            arr = np.asarray(key)
            if arr.dtype == bool:
                if arr.shape != (n,):
                    raise SelectionError(f"a bool selector must have shape ({n},), got {arr.shape}")
                sel = np.flatnonzero(arr)
            elif arr.size == 0:
                sel = np.zeros(0, dtype=np.int64)
            elif np.issubdtype(arr.dtype, np.integer):
                bad = arr[(arr < -n) | (arr >= n)]
                if bad.size:
                    raise SelectionError(
                        f"row {int(bad.ravel()[0])} is out of range for {n} people; {self.describe_range()}"
                    )
                sel = arr.astype(np.int64).ravel() % max(1, n)
            else:
                raise SelectionError(f"cannot index Instances with {type(key).__name__} of dtype {arr.dtype}")
        rows = sel.tolist()
        return Instances._from_crops(
            self._shape, [self._crops[k] for k in rows], self._crop_boxes[sel], self.boxes[sel],
            self.scores[sel], self.index[sel], self.info,
        )

    def by_index(self, numbers: Sequence[int]) -> Instances:
        """The people with these numbers (``index`` values), in the order given."""
        return self[self.positions(numbers)]

    def union(self, rows: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """(H, W) bool: every person's pixels (or only those of the people at ``rows``)."""
        out = np.zeros(self._shape, dtype=bool)
        for k in (range(len(self)) if rows is None else np.asarray(rows, dtype=np.int64).ravel().tolist()):
            (x0, y0, x1, y1), c = self.crop(k)
            out[y0:y1, x0:x1] |= c
        return out

    def to_label_map(self) -> np.ndarray:
        """(H, W) label map: 0 background, ``index + 1`` per person.

        uint8 when every label fits, else uint16. Where masks overlap the later row wins.
        """
        top = int(self.index.max()) + 1 if len(self) else 0
        dtype = np.uint8 if top <= 255 else np.uint16
        labels = np.zeros(self._shape, dtype=dtype)
        for k, i in enumerate(self.index.tolist()):
            (x0, y0, x1, y1), c = self.crop(k)
            labels[y0:y1, x0:x1][c] = i + 1
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


def _rebuild(shape: tuple[int, int], crops: tuple[np.ndarray, ...], crop_boxes: np.ndarray, boxes: np.ndarray,
             scores: np.ndarray, index: np.ndarray, info: SegmentInfo) -> Instances:
    return Instances._from_crops(shape, [np.array(c) for c in crops], np.array(crop_boxes), boxes, scores, index, info)


def _left_to_right(boxes: np.ndarray) -> np.ndarray:
    """Row order that numbers people by box centre x, ties top to bottom."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    cx = boxes[:, 0] + boxes[:, 2]  # 2 × centre, exact in integers
    cy = boxes[:, 1] + boxes[:, 3]
    return np.lexsort((cy, cx)).astype(np.int64)
