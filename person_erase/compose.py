"""Run an eraser per hole: cluster the erase mask, crop each cluster with context, paste back.

Cost follows the holes, not the photo: an eraser whose spec has ``crops`` only ever sees a crop around
one cluster of holes (its box plus a context margin proportional to the hole size, clipped to the
image), and only that crop's erase pixels are written back. Erasers without ``crops`` (e.g. a cloud
service that wants the whole photo) get the whole image.

Whatever the eraser returns, the result of :func:`apply_eraser` equals the input outside the erase
mask byte for byte; :func:`count_changed_outside` on the *raw* eraser output tells how many pixels an
engine changed outside the mask before that was enforced (reported, should be 0).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from .engineinfo import EraseInfo
from .engines import EngineSpec
from .erasers import ERASERS, Eraser, call_eraser
from .erasers._common import check_inputs
from .errors import EngineError, InputError

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 with x1/y1 exclusive

#: Default context margin around each cluster, as a fraction of the cluster's larger box side.
DEFAULT_MARGIN = 0.5
#: Minimum context margin in pixels (small holes still get enough surroundings to copy from).
MIN_MARGIN_PX = 24


@dataclass(frozen=True)
class ComposeStats:
    """What :func:`apply_eraser` did.

    Attributes:
        clusters: number of hole clusters (1 for a non-crop eraser with any hole, 0 without holes).
        boxes: crop box per cluster, ``(x0, y0, x1, y1)`` exclusive, in image coordinates (the whole
            image for a non-crop eraser).
        raw_outside_changed_px: pixels the eraser itself changed outside the erase mask, summed over
            its calls (each call is compared within the array it was given); the returned image has 0.
        ms: wall time of the whole call in milliseconds.
        infos: what each eraser call did (``EraseInfo``: task ids, timings, parameters sent), in order.
    """

    clusters: int
    boxes: tuple[Box, ...]
    raw_outside_changed_px: int
    ms: float
    infos: tuple[EraseInfo, ...] = ()


def count_changed_outside(before: np.ndarray, after: np.ndarray, erase: np.ndarray) -> int:
    """Number of pixels outside ``erase`` where ``after`` differs from ``before`` in any channel.

    Args:
        before, after: (H, W, 3) arrays of the same shape.
        erase: (H, W) bool.
    """
    if before.shape != after.shape:
        raise InputError(f"cannot compare images of shapes {before.shape} and {after.shape}")
    differs = np.any(before != after, axis=-1) if before.ndim == 3 else before != after
    return int(np.count_nonzero(differs & ~erase))


def _margin_px(box: Box, margin: float) -> int:
    x0, y0, x1, y1 = box
    return max(MIN_MARGIN_PX, int(round(margin * max(x1 - x0, y1 - y0))))


def crop_box(box: Box, shape: tuple[int, ...], *, margin: float = DEFAULT_MARGIN) -> Box:
    """``box`` grown by its context margin on every side and clipped to an image of ``shape``.

    The margin is ``max(MIN_MARGIN_PX, margin * larger box side)`` pixels.
    """
    h, w = shape[:2]
    m = _margin_px(box, margin)
    x0, y0, x1, y1 = box
    return max(0, x0 - m), max(0, y0 - m), min(w, x1 + m), min(h, y1 + m)


def square_box(box: Box, shape: tuple[int, ...]) -> Box:
    """``box`` grown along its shorter side to a square (centred, shifted to stay inside an image of
    ``shape``); where the image is too small the square is cut to it."""
    h, w = shape[:2]
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)

    def grow(lo: int, hi: int, limit: int) -> tuple[int, int]:
        size = min(side, limit)
        lo -= (size - (hi - lo)) // 2
        lo = min(max(0, lo), limit - size)
        return lo, lo + size

    x0, x1 = grow(x0, x1, w)
    y0, y1 = grow(y0, y1, h)
    return x0, y0, x1, y1


def find_clusters(erase: np.ndarray, *, gap: float = 0.1, min_gap_px: int = 8) -> list[tuple[Box, np.ndarray]]:
    """Group the erase mask's connected components into clusters of nearby holes.

    Each component's box is grown by ``max(min_gap_px, gap * its larger side)``; components whose
    grown boxes overlap are merged (transitively). Clusters come top-to-bottom, then left-to-right.

    Args:
        erase: (H, W) bool.

    Returns:
        ``[(box, mask), ...]``: the tight box ``(x0, y0, x1, y1)`` of each cluster and its (H, W)
        bool mask.
    """
    labels, clusters = _clusters(erase, gap=gap, min_gap_px=min_gap_px)
    h, w = erase.shape
    return [(box, labels.members_in((0, 0, w, h), members)) for box, members in clusters]


class _Labels:
    """Component labels of the erase mask, stored only over the mask's bounding box (cheap on big photos)."""

    def __init__(self, labels: np.ndarray, x0: int, y0: int) -> None:
        self.labels, self.x0, self.y0 = labels, x0, y0

    def members_in(self, box: Box, members: np.ndarray) -> np.ndarray:
        """(h, w) bool over ``box``: pixels whose component is in ``members``."""
        bx0, by0, bx1, by1 = box
        out = np.zeros((by1 - by0, bx1 - bx0), dtype=bool)
        lh, lw = self.labels.shape
        ix0, iy0 = max(bx0, self.x0), max(by0, self.y0)
        ix1, iy1 = min(bx1, self.x0 + lw), min(by1, self.y0 + lh)
        if ix0 < ix1 and iy0 < iy1:
            sub = self.labels[iy0 - self.y0 : iy1 - self.y0, ix0 - self.x0 : ix1 - self.x0]
            out[iy0 - by0 : iy1 - by0, ix0 - bx0 : ix1 - bx0] = np.isin(sub, members)
        return out


def _clusters(
    erase: np.ndarray, *, gap: float = 0.1, min_gap_px: int = 8
) -> tuple[_Labels, list[tuple[Box, np.ndarray]]]:
    """Component labels (8-connected) and ``[(box, member labels), ...]`` per cluster."""
    rows = np.flatnonzero(erase.any(axis=1))
    if rows.size == 0:
        return _Labels(np.zeros((0, 0), np.int32), 0, 0), []
    cols = np.flatnonzero(erase.any(axis=0))
    oy, oy1, ox, ox1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    region = np.ascontiguousarray(erase[oy:oy1, ox:ox1]).view(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=8)
    boxes = [(int(s[0]) + ox, int(s[1]) + oy, int(s[0] + s[2]) + ox, int(s[1] + s[3]) + oy) for s in stats[1:n]]
    grown = []
    for x0, y0, x1, y1 in boxes:
        g = max(min_gap_px, int(round(gap * max(x1 - x0, y1 - y0))))
        grown.append((x0 - g, y0 - g, x1 + g, y1 + g))
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(grown)):
        for j in range(i + 1, len(grown)):
            a, b = grown[i], grown[j]
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        groups.setdefault(root(i), []).append(i)
    out = []
    for members in groups.values():
        bx = [boxes[i] for i in members]
        box = (min(b[0] for b in bx), min(b[1] for b in bx), max(b[2] for b in bx), max(b[3] for b in bx))
        out.append((box, np.array([i + 1 for i in members], dtype=np.int32)))
    out.sort(key=lambda item: (item[0][1], item[0][0]))
    return _Labels(labels, ox, oy), out


def apply_eraser(
    eraser: Eraser,
    image: np.ndarray,
    erase: np.ndarray,
    keep: np.ndarray | None = None,
    *,
    margin: float = DEFAULT_MARGIN,
    progress: Callable[[int, int], None] | None = None,
    spec: EngineSpec | None = None,
) -> tuple[np.ndarray, ComposeStats]:
    """Erase ``erase`` from ``image`` with ``eraser``, per hole cluster if the eraser allows crops.

    Args:
        eraser: any :class:`~person_erase.erasers.Eraser`.
        image: (H, W, 3) uint8 RGB; not modified.
        erase: (H, W) bool, the pixels to fill or redact.
        keep: (H, W) bool or None, pixels that must neither change nor be copied from (kept people,
            and for inpainters any other people the pipeline wants excluded); disjoint from erase.
        margin: context around each cluster as a fraction of its larger box side (min 24 px).
        progress: called as ``progress(done, total)`` after each cluster.
        spec: the eraser's ``EngineSpec`` (default: ``ERASERS.describe(eraser)``); its capabilities
            decide the calls: ``crops`` (it may be called on a crop), ``square_crops`` (each crop is
            grown to a square where the photo allows), ``honours_keep_mask`` (holes of other clusters
            go into its keep mask instead of being filled and thrown away).

    Returns:
        ``(out, stats)``: a new (H, W, 3) uint8 image equal to ``image`` outside ``erase``, and a
        :class:`ComposeStats`.

    Raises:
        InputError: bad shapes/dtypes or overlapping masks.
        EngineError: the eraser returned an array of the wrong shape or dtype.
    """
    t0 = time.perf_counter()
    erase, keep = check_inputs(image, erase, keep)
    if margin < 0:
        raise InputError(f"margin must be >= 0 (a fraction of the hole size), got {margin}")
    out = image.copy()
    if spec is None:
        spec = ERASERS.describe(eraser)
    if not spec.crops:
        if not erase.any():
            return out, ComposeStats(0, (), 0, (time.perf_counter() - t0) * 1000)
        raw, info = _call(eraser, spec, image, erase, keep)
        raw_changed = count_changed_outside(image, raw, erase)
        np.copyto(out, raw, where=erase[..., None])
        h, w = erase.shape
        if progress is not None:
            progress(1, 1)
        return out, ComposeStats(1, ((0, 0, w, h),), raw_changed, (time.perf_counter() - t0) * 1000, (info,))

    labels, clusters = _clusters(erase)
    if not clusters:
        return out, ComposeStats(0, (), 0, (time.perf_counter() - t0) * 1000)
    honours_keep, square = spec.honours_keep_mask, spec.square_crops
    done = np.zeros(erase.shape, dtype=bool)  # erase pixels already filled in ``out``
    crops: list[Box] = []
    infos: list[EraseInfo] = []
    raw_changed = 0
    for k, (box, members) in enumerate(clusters):
        x0, y0, x1, y1 = crop_box(box, image.shape, margin=margin)
        if square:
            x0, y0, x1, y1 = square_box((x0, y0, x1, y1), image.shape)
        crops.append((x0, y0, x1, y1))
        sl = (slice(y0, y1), slice(x0, x1))
        mine = labels.members_in((x0, y0, x1, y1), members)
        # Holes of other clusters inside this crop: filled ones are ordinary context now; unfilled
        # ones must not be copied from (keep) or, for erasers that ignore keep, are filled too and
        # thrown away (their own cluster fills them properly later).
        pending = erase[sl] & ~mine & ~done[sl]
        crop_keep = keep[sl]
        crop_erase = mine
        if pending.any():
            if honours_keep:
                crop_keep = crop_keep | pending
            else:
                crop_erase = mine | pending
        src = out[sl].copy()
        raw, info = _call(eraser, spec, src, crop_erase, crop_keep)
        infos.append(info)
        raw_changed += count_changed_outside(src, raw, crop_erase)
        np.copyto(out[sl], raw, where=mine[..., None])
        done[sl] |= mine
        if progress is not None:
            progress(k + 1, len(clusters))
    return out, ComposeStats(len(clusters), tuple(crops), raw_changed, (time.perf_counter() - t0) * 1000,
                             tuple(infos))


def _call(eraser: Eraser, spec: EngineSpec, image: np.ndarray, erase: np.ndarray,
          keep: np.ndarray) -> tuple[np.ndarray, EraseInfo]:
    result, info = call_eraser(eraser, spec, image, erase, keep=keep)
    if not isinstance(result, np.ndarray) or result.shape != image.shape or result.dtype != np.uint8:
        raise EngineError(
            f"eraser {spec.name!r} returned "
            f"{getattr(result, 'shape', type(result).__name__)} {getattr(result, 'dtype', '')}; "
            f"expected a {image.shape} uint8 array"
        )
    return result, info
