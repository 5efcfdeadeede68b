"""Mask algebra: the erase mask and the keep mask, as pure functions.

Conventions: masks are (H, W) bool (stacks are (N, H, W) bool); functions take data first and options
keyword-only, never modify their inputs, and return new arrays. Morphology runs with OpenCV on the
bounding box of the mask (plus the operation's reach), so cost follows the people, not the photo.

The contract:

* keep  = union of the people not chosen, cleaned: opened by reconstruction (thin strays go, kept
  people stay whole), specks under ``min_area`` removed, holes filled.
* erase = union of the chosen people, dilated by ``dilate`` px, **minus keep**; the pixels where the
  dilation (or an overlap between instance masks) reached into a kept person are counted as
  ``overlap_resolved_px``. Hence ``erase & keep`` is always empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .errors import InputError
from .instances import Instances

#: Erase-mask dilation at 1 megapixel, in pixels; ``default_dilate`` scales it with the photo's size.
#: Person masks miss hair strands, shoe tips and the soft edge of motion blur; this covers those
#: without eating much background on the dev sets (``benchmarks/README.md``, masks).
DILATE_AT_1MP = 9


def default_dilate(height: int, width: int) -> int:
    """Default erase-mask dilation for an ``height``×``width`` photo: 9 px at 1 MP, scaled by the
    square root of the pixel count (so it is the same share of a person at any resolution), at least 3."""
    return max(3, int(round(DILATE_AT_1MP * math.sqrt(height * width / 1e6))))


#: Redaction dilation as a share of the photo's diagonal (``default_redact_dilate``).
REDACT_DILATE_DIAGONAL = 0.02


def default_redact_dilate(height: int, width: int) -> int:
    """Default redaction dilation: 2 % of the photo's diagonal (16 px at 640×480, 58 px at 12 MP),
    at least 3. Privacy wants a margin that mask errors cannot slip through; on the dev sets this,
    with the per-person margin and box cover of ``build_masks``, covers more people at a smaller
    area than either alone (``benchmarks/bench_privacy.py``)."""
    return max(3, int(round(REDACT_DILATE_DIAGONAL * math.hypot(height, width))))


def _check_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 2 or m.dtype != bool:
        raise InputError(f"{name} must be (H, W) bool, got shape {m.shape} dtype {m.dtype}")
    return m


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """x0, y0, x1, y1 (exclusive) of the True pixels, or None when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _window(box: tuple[int, int, int, int], pad: int, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """Row and column slices of ``box`` grown by ``pad`` px, clipped to an (H, W) ``shape``."""
    x0, y0, x1, y1 = box
    h, w = shape[:2]
    return slice(max(0, y0 - pad), min(h, y1 + pad)), slice(max(0, x0 - pad), min(w, x1 + pad))


#: radii from which ``dilate`` thresholds a distance transform instead of running a disk kernel
_DISTANCE_FROM = 24


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def union(masks: np.ndarray, *, shape: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W) bool union of an (N, H, W) bool stack (all False when N = 0; pass ``shape`` then)."""
    m = np.asarray(masks)
    if m.ndim != 3 or m.dtype != bool:
        raise InputError(f"masks must be (N, H, W) bool, got shape {m.shape} dtype {m.dtype}")
    if m.shape[0] == 0:
        if shape is None:
            shape = (m.shape[1], m.shape[2])
        return np.zeros(shape, dtype=bool)
    return np.logical_or.reduce(m, axis=0)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grow ``mask`` by ``radius`` px with a disk (Euclidean reach). ``radius`` 0 returns a copy."""
    m = _check_mask(mask)
    if radius < 0:
        raise InputError(f"dilation radius must be >= 0, got {radius}")
    out = m.copy()
    _dilate_into(out, m, radius)
    return out


def _dilate_into(out: np.ndarray, mask: np.ndarray, radius: int) -> None:
    """OR ``mask`` grown by ``radius`` px into ``out`` (same shape), touching only the grown box."""
    box = _bbox(mask)
    if radius <= 0 or box is None:
        if box is not None:
            out |= mask
        return
    win = _window(box, radius, mask.shape)
    crop = np.ascontiguousarray(mask[win]).view(np.uint8)
    if radius < _DISTANCE_FROM:
        grown = cv2.dilate(crop, _disk(radius), borderType=cv2.BORDER_CONSTANT, borderValue=(0,)).view(bool)
    else:
        # a disk kernel costs O(radius) per pixel (seconds for a large margin on a large person); the
        # exact Euclidean distance is linear. <= r + 0.5 contains cv2's ellipse kernel (a few px more).
        # The crop's border is not a mask pixel, so distances are the same as on the full frame.
        dist = cv2.distanceTransform(1 - crop, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        grown = dist <= radius + 0.5
    out[win] |= grown


def open_(mask: np.ndarray, radius: int) -> np.ndarray:
    """Morphological opening with a disk: removes specks and hairlines thinner than ~2·radius."""
    m = _check_mask(mask)
    box = _bbox(m)
    if radius <= 0 or box is None:
        return m.copy()
    win = _window(box, radius + 1, m.shape)
    crop = np.ascontiguousarray(m[win]).view(np.uint8)
    opened = cv2.morphologyEx(crop, cv2.MORPH_OPEN, _disk(radius), borderType=cv2.BORDER_REPLICATE)
    out = np.zeros_like(m)
    out[win] = opened.view(bool)
    return out


def remove_small(mask: np.ndarray, min_area: int) -> np.ndarray:
    """Drop 8-connected components with fewer than ``min_area`` pixels."""
    m = _check_mask(mask)
    box = _bbox(m)
    if min_area <= 1 or box is None:
        return m.copy()
    x0, y0, x1, y1 = box
    crop = np.ascontiguousarray(m[y0:y1, x0:x1]).view(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(crop, connectivity=8)
    big = stats[:, cv2.CC_STAT_AREA] >= min_area
    big[0] = False
    out = np.zeros_like(m)
    out[y0:y1, x0:x1] = big[labels]
    return out


def fill_holes(mask: np.ndarray, *, max_area: int | None = None) -> np.ndarray:
    """Fill background regions fully enclosed by the mask (4-connected background).

    Args:
        max_area: fill only holes up to this many pixels (None = every hole).
    """
    m = _check_mask(mask)
    box = _bbox(m)
    if box is None:
        return m.copy()
    h, w = m.shape
    x0, y0, x1, y1 = box
    # one pixel of background around the box, so the outside is one connected component
    X0, Y0, X1, Y1 = max(0, x0 - 1), max(0, y0 - 1), min(w, x1 + 1), min(h, y1 + 1)
    crop = m[Y0:Y1, X0:X1]
    padded = np.pad(crop, 1, constant_values=False)
    bg = (~padded).view(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bg, connectivity=4)
    outside = labels[0, 0]
    hole = np.ones(n, dtype=bool)
    hole[0] = False  # label 0 is the mask itself (zero in bg)
    hole[outside] = False
    if max_area is not None:
        hole &= stats[:, cv2.CC_STAT_AREA] <= max_area
    filled = padded | hole[labels]
    out = m.copy()
    out[Y0:Y1, X0:X1] = filled[1:-1, 1:-1]
    return out


def open_by_reconstruction(mask: np.ndarray, radius: int) -> np.ndarray:
    """Keep the 8-connected components of ``mask`` that survive an opening of ``radius``, whole.

    A plain opening also shaves corners, fingers and hair off the people it keeps; reconstruction
    drops what is *only* thin (hairlines, specks, stray strokes) and leaves every kept person intact.
    """
    m = _check_mask(mask)
    box = _bbox(m)
    if radius <= 0 or box is None:
        return m.copy()
    opened = open_(m, radius)
    x0, y0, x1, y1 = box
    crop = np.ascontiguousarray(m[y0:y1, x0:x1]).view(np.uint8)
    n, labels = cv2.connectedComponents(crop, connectivity=8)
    survive = np.zeros(n, dtype=bool)
    survive[np.unique(labels[opened[y0:y1, x0:x1]])] = True
    survive[0] = False
    out = np.zeros_like(m)
    out[y0:y1, x0:x1] = survive[labels]
    return out


def clean(mask: np.ndarray, *, open_radius: int = 2, min_area: int = 64, holes: bool = True) -> np.ndarray:
    """Opening (by reconstruction), components under ``min_area`` px removed, holes filled.

    Used for the keep mask: specks and thin strays go, kept people stay whole.
    """
    out = open_by_reconstruction(mask, open_radius)
    out = remove_small(out, min_area)
    if holes:
        out = fill_holes(out)
    return out


@dataclass(frozen=True)
class MaskPair:
    """The two masks the erasers get, plus what the algebra did.

    Attributes:
        erase: (H, W) bool, the pixels to fill or redact.
        keep: (H, W) bool, the pixels that must not change and must not be used as fill source.
        overlap_resolved_px: pixels the dilated erase mask would have taken from kept people.
        dilate: the dilation radius used, px.
    """

    erase: np.ndarray
    keep: np.ndarray
    overlap_resolved_px: int
    dilate: int


def privacy_grow_into(
    out: np.ndarray, mask: np.ndarray, box: np.ndarray, *, margin: float, box_below_px: int, radius: int
) -> None:
    """Paint one person's redaction region into ``out``: the mask grown by ``margin`` × its box height
    (at least ``radius``), or the whole box (grown by ``radius``) when the box is shorter than
    ``box_below_px``. Works in the person's window, so 20 people at 4096² need no 20 full frames."""
    x0, y0, x1, y1 = (int(v) for v in box)
    bh = max(1, y1 - y0)
    if bh < box_below_px:
        _dilate_into(out, mask, radius)
        out[_window((x0, y0, x1, y1), radius, out.shape)] = True
    else:
        _dilate_into(out, mask, max(radius, int(round(margin * bh))))


def check_growth(dilate_px: int | None, privacy_margin: float = 0.0, box_below_px: int = 0) -> None:
    """Refuse the growth settings ``build_masks`` cannot use; callable before anyone is segmented.

    Raises:
        InputError: ``dilate_px`` < 0, or a margin that is negative or not finite, or ``box_below_px`` < 0.
    """
    if dilate_px is not None and int(dilate_px) < 0:
        raise InputError(f"`dilate` must be >= 0 px, got {int(dilate_px)}", param="dilate")
    if not (0 <= privacy_margin < math.inf):
        raise InputError(f"the redaction `margin` (a share of each person's height) must be finite and >= 0, "
                         f"got {privacy_margin}", param="margin")
    if box_below_px < 0:
        raise InputError(f"the redaction box size `box_below` must be >= 0 px, got {box_below_px}", param="box_below")


def check_fits(dilate_px: int, height: int, width: int) -> None:
    """Refuse a dilation beyond the photo's longest side (every pixel would be erased).

    Raises:
        InputError: naming ``dilate``.
    """
    if dilate_px > max(height, width):
        raise InputError(f"`dilate={dilate_px}` px is more than the photo's longest side ({max(height, width)} px): "
                         "every pixel would be erased; use a few px to a few % of the photo", param="dilate")


def build_masks(
    instances: Instances,
    erase_positions: np.ndarray | list[int],
    *,
    dilate_px: int | None = None,
    keep_open: int = 2,
    keep_min_area: int | None = None,
    privacy_margin: float = 0.0,
    box_below_px: int = 0,
) -> MaskPair:
    """Erase and keep masks from instances and the rows chosen to go.

    Args:
        instances: the people of one photo.
        erase_positions: row positions (not person numbers) of the people to erase; the rest are kept.
        dilate_px: erase-mask dilation; ``default_dilate(H, W)`` when None.
        keep_open: opening radius for the keep mask.
        keep_min_area: keep-mask specks under this are dropped; 0.005 % of the photo (min 16 px) when None.
        privacy_margin: grow each chosen person by this share of their box height when that is more
            than ``dilate_px`` (redaction: mask errors scale with the person, so does the margin).
        box_below_px: chosen people whose box is shorter than this are covered by their whole box
            (redaction: no model resolves a 30 px person's outline, their box hides them).

    Returns:
        MaskPair with ``erase & keep`` empty.
    """
    h, w = instances.shape
    chosen = np.zeros(len(instances), dtype=bool)
    pos = np.asarray(erase_positions, dtype=np.int64).ravel()
    chosen[pos] = True
    check_growth(dilate_px, privacy_margin, box_below_px)
    radius = default_dilate(h, w) if dilate_px is None else int(dilate_px)
    check_fits(radius, h, w)
    min_area = max(16, int(h * w * 5e-5)) if keep_min_area is None else keep_min_area
    keep = clean(instances.union(np.flatnonzero(~chosen)), open_radius=keep_open, min_area=min_area)
    if (privacy_margin > 0 or box_below_px > 0) and chosen.any():
        grown = np.zeros((h, w), dtype=bool)
        for k in np.flatnonzero(chosen):
            privacy_grow_into(grown, instances.mask(k), instances.boxes[k], margin=privacy_margin,  # type: ignore[arg-type]
                              box_below_px=box_below_px, radius=radius)
    else:
        grown = dilate(instances.union(np.flatnonzero(chosen)), radius)
    conflict = grown & keep
    erase = grown & ~keep
    return MaskPair(erase=erase, keep=keep, overlap_resolved_px=int(conflict.sum()), dilate=radius)
