"""``telea``: OpenCV's fast-marching inpainting (Telea 2004); a quick preview, smeary on big holes."""

from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np

from ..errors import InputError
from ._common import check_inputs, masked_blur, paste


class TeleaEraser:
    """Fill the erase mask with ``cv2.inpaint(..., INPAINT_TELEA)``.

    Fast but a diffusion fill: person-sized holes become smooth smears (``benchmarks/README.md``,
    erasing). Use it as a preview or for thin
    seams. It diffuses from every known pixel at the hole border, kept people included, so it does
    not honour the keep mask as a fill source (``honours_keep_mask = False``); kept pixels are
    never changed, though.

    Holes of more than ``work_px`` pixels are filled on a copy shrunk so the hole has about
    ``work_px`` pixels, and the fill is brought back bilinearly: a diffusion fill has no detail to
    lose, and the cost of Telea grows with the hole (5 people 3000 px tall in a 4096² photo took 23 s
    at full size).

    Args:
        radius: neighbourhood radius in pixels that Telea averages at each step (>= 1).
        work_px: largest hole filled at full size; ``None`` or 0: always full size.
    """

    name: ClassVar[str] = "telea"
    kind: ClassVar[str] = "inpaint"
    needs_network: ClassVar[bool] = False
    honours_keep_mask: ClassVar[bool] = False
    crops: ClassVar[bool] = True

    def __init__(self, radius: int = 5, work_px: int | None = 250_000) -> None:
        if int(radius) < 1:
            raise InputError(f"telea radius must be >= 1 pixel, got {radius}")
        if work_px is not None and int(work_px) < 0:
            raise InputError(f"work_px must be >= 0 pixels (0 or None: always full size), got {work_px}")
        self.radius = int(radius)
        self.work_px = int(work_px or 0)

    def erase(self, image: np.ndarray, erase: np.ndarray, *, keep: np.ndarray | None = None) -> np.ndarray:
        """Return a new (H, W, 3) uint8 RGB image with ``erase`` filled; other pixels unchanged."""
        erase, keep = check_inputs(image, erase, keep)
        if not erase.any():
            return image.copy()
        # Telea treats channels independently, so RGB in / RGB out needs no BGR swap.
        src = _hide_hole(image, erase)
        hole = erase.astype(np.uint8) * 255
        area = int(np.count_nonzero(hole))
        if self.work_px and area > self.work_px:
            h, w = erase.shape
            s = float(np.sqrt(self.work_px / area))
            size = (max(1, round(w * s)), max(1, round(h * s)))
            # a shrunk pixel is a hole if any of it was (grown by one more: nothing of the hole is averaged in)
            small_hole: np.ndarray = (cv2.resize(hole, size, interpolation=cv2.INTER_AREA) > 0).astype(np.uint8) * 255
            small_hole = cv2.dilate(small_hole, np.ones((3, 3), np.uint8))
            # thin, scattered or frame-filling holes swell on the small copy: not worth it, or nothing is
            # left to fill from; then fill at full size
            small_area = int(np.count_nonzero(small_hole))
            if small_area <= 2 * self.work_px and small_hole.size - small_area >= 0.05 * small_hole.size:
                small = cv2.inpaint(cv2.resize(src, size, interpolation=cv2.INTER_AREA), small_hole, self.radius,
                                    cv2.INPAINT_TELEA)
                return paste(image, cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), erase)
        return paste(image, cv2.inpaint(src, hole, self.radius, cv2.INPAINT_TELEA), erase)


def _hide_hole(image: np.ndarray, erase: np.ndarray) -> np.ndarray:
    """``image`` with the hole's own pixels replaced where ``cv2.inpaint`` could read them.

    OpenCV's Telea reads the pixels *inside* a hole that touches the array's edge (up to ~20 grey
    levels of the person's colour bled into the fill in our tests; interior holes are unaffected).
    There the hole is first painted with a wide blur of the known pixels around it, so whatever is
    read comes from the background. With no known pixel at all the hole becomes black.
    """
    if not (erase[0].any() or erase[-1].any() or erase[:, 0].any() or erase[:, -1].any()):
        return image
    sigma = max(4.0, 0.25 * float(np.sqrt(np.count_nonzero(erase))))
    estimate, _ = masked_blur(image, ~erase, sigma)
    src = image.copy()
    src[erase] = np.clip(estimate[erase] + 0.5, 0, 255).astype(np.uint8)
    return src
