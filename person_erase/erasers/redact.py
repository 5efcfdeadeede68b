"""``blur`` / ``pixelate`` / ``solid``: mask-shaped redaction that leaves the person's outline.

Unlike the inpainters, redaction does not pretend the person was never there; it makes them
unrecognisable. Every pixel inside the erase mask is replaced (none of the person stays sharp);
pixels outside it are never touched (the caller has already dilated the mask).

Strength rule (``strength=None``): scaled to the size of each redacted region, so a face cannot be
recovered however large the person is. A region is a connected part of the erase mask (parts within
16 px of each other count as one); ``h`` is the height of its bounding box.

* ``blur``: Gaussian sigma = ``0.08 * h`` px, at least 6 px (a face is about h/8 tall, so its
  features are averaged over more than its own height). Only the region's own pixels feed the blur
  (normalised convolution), so the background does not leak in and the values are heavy averages
  of the person. For a soft look the outer band (sigma px deep) blends towards an equally strong
  blur of the unmasked surroundings (kept pixels excluded): soft from the outside in, while every
  masked pixel stays fully redacted.
* ``pixelate``: square blocks of ``0.1 * h`` px, at least 8 px, anchored at the region's top-left;
  each masked pixel takes the mean of the masked pixels of its block.
* ``solid``: ``color`` (RGB).

``strength`` (a float in (0, 1]) replaces the fraction 0.08 / 0.1 above; the minimums still apply.
"""

from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np

from ..errors import EngineError, InputError
from . import REDACT_STYLES
from ._common import check_inputs, masked_blur, paste

BLUR_FRACTION = 0.08
BLUR_MIN_SIGMA = 6.0
PIXEL_FRACTION = 0.1
PIXEL_MIN_BLOCK = 8
GROUP_GAP_PX = 16


class RedactEraser:
    """Blur, pixelate or paint over the erase mask (see the module docstring for the strength rule).

    Args:
        style: ``"blur"``, ``"pixelate"`` or ``"solid"``.
        strength: fraction of each region's bounding-box height used as blur sigma / block size;
            None for the defaults (0.08 for blur, 0.1 for pixelate). Ignored for ``solid``.
        color: RGB fill for ``solid``.

    Raises:
        EngineError: unknown style (the message lists the valid ones).
        InputError: strength outside (0, 1] or a colour that is not three 0-255 values.
    """

    name: ClassVar[str] = "redact"
    kind: ClassVar[str] = "redact"
    needs_network: ClassVar[bool] = False
    honours_keep_mask: ClassVar[bool] = True
    crops: ClassVar[bool] = True

    def __init__(
        self, style: str = "blur", strength: float | None = None, color: tuple[int, int, int] = (0, 0, 0)
    ) -> None:
        if style not in REDACT_STYLES:
            raise EngineError(f"unknown redaction style {style!r}; choose one of: {', '.join(REDACT_STYLES)}")
        if strength is not None and not 0 < float(strength) <= 1:
            raise InputError(
                f"strength is a fraction of the person's box height and must be in (0, 1], got {strength}"
            )
        col = tuple(int(c) for c in color)
        if len(col) != 3 or not all(0 <= c <= 255 for c in col):
            raise InputError(f"color must be three RGB values 0-255, got {color!r}")
        self.style = style
        self.strength = None if strength is None else float(strength)
        self.color = col

    def __repr__(self) -> str:
        return f"RedactEraser(style={self.style!r}, strength={self.strength}, color={self.color})"

    def amount(self, height: int) -> float:
        """Blur sigma or block size (px) used for a region whose bounding box is ``height`` px tall."""
        if self.style == "blur":
            return max(BLUR_MIN_SIGMA, (self.strength or BLUR_FRACTION) * height)
        if self.style == "pixelate":
            return float(max(PIXEL_MIN_BLOCK, int(round((self.strength or PIXEL_FRACTION) * height))))
        return 0.0

    def erase(self, image: np.ndarray, erase: np.ndarray, *, keep: np.ndarray | None = None) -> np.ndarray:
        """Return a new (H, W, 3) uint8 RGB image with ``erase`` redacted; other pixels unchanged."""
        erase, keep = check_inputs(image, erase, keep)
        if not erase.any():
            return image.copy()
        if self.style == "solid":
            out = image.copy()
            out[erase] = self.color
            return out
        out = image.copy()
        h, w = erase.shape
        for x0, y0, x1, y1, region in _regions(erase):
            amount = self.amount(y1 - y0)
            pad = int(np.ceil(3 * amount)) if self.style == "blur" else 0
            bx0, by0, bx1, by1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
            sl = (slice(by0, by1), slice(bx0, bx1))
            m = np.zeros((by1 - by0, bx1 - bx0), dtype=bool)
            m[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0] = region
            crop = image[sl]
            if self.style == "blur":
                red = _blur(crop, m, keep[sl], amount)
            else:
                red = _pixelate(crop, m, int(amount), origin=(y0 - by0, x0 - bx0))
            np.copyto(out[sl], red, where=m[..., None])
        return paste(image, out, erase)


def _regions(erase: np.ndarray) -> list[tuple[int, int, int, int, np.ndarray]]:
    """Connected parts of ``erase`` (parts within GROUP_GAP_PX merged): box and the mask inside it."""
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (GROUP_GAP_PX + 1, GROUP_GAP_PX + 1))
    grown = cv2.dilate(erase.astype(np.uint8), k)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    out = []
    for i in range(1, n):
        x, y, bw, bh = (int(v) for v in stats[i, :4])
        region = (labels[y : y + bh, x : x + bw] == i) & erase[y : y + bh, x : x + bw]
        if not region.any():
            continue
        rows = np.flatnonzero(region.any(axis=1))
        cols = np.flatnonzero(region.any(axis=0))
        ry0, ry1, rx0, rx1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        out.append((x + rx0, y + ry0, x + rx1, y + ry1, region[ry0:ry1, rx0:rx1]))
    return out


def _blur(crop: np.ndarray, mask: np.ndarray, keep: np.ndarray, sigma: float) -> np.ndarray:
    person, _ = masked_blur(crop, mask, sigma)
    around, den = masked_blur(crop, ~mask & ~keep, sigma)
    depth = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    alpha = np.clip(0.5 + depth / (2.0 * sigma), 0.5, 1.0)
    alpha = np.where(den > 1e-3, alpha, 1.0).astype(np.float32)[..., None]
    del den, depth
    # person·alpha + around·(1 - alpha), in place: a 4096² crop is 200 MB per float image
    person -= around
    person *= alpha
    person += around
    del around
    person += 0.5
    np.clip(person, 0, 255, out=person)
    return person.astype(np.uint8)


def _pixelate(crop: np.ndarray, mask: np.ndarray, block: int, *, origin: tuple[int, int]) -> np.ndarray:
    h, w = mask.shape
    yy = (np.arange(h) - origin[0]) // block
    xx = (np.arange(w) - origin[1]) // block
    yy -= yy.min()
    xx -= xx.min()
    nbx = int(xx.max()) + 1
    cell = (yy[:, None] * nbx + xx[None, :])[mask]
    ncell = int(cell.max()) + 1
    count = np.bincount(cell, minlength=ncell).astype(np.float64)
    out = crop.copy()
    vals = crop[mask].astype(np.float64)
    means = np.stack([np.bincount(cell, weights=vals[:, c], minlength=ncell) for c in range(3)], axis=1)
    means = means / np.maximum(count, 1)[:, None]  # type: ignore[assignment]
    out[mask] = np.clip(means[cell] + 0.5, 0, 255).astype(np.uint8)
    return out
