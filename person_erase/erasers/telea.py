"""``telea``: OpenCV's fast-marching inpainting (Telea 2004); a quick preview, smeary on big holes."""

from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np

from ..errors import InputError
from ._common import check_inputs, paste


class TeleaEraser:
    """Fill the erase mask with ``cv2.inpaint(..., INPAINT_TELEA)``.

    Fast (tens of ms for a person at 1 MP) but a diffusion fill: person-sized holes become smooth
    smears (texture_ratio ~0.1 in ``benchmarks/bench_erase.py``). Use it as a preview or for thin
    seams. It diffuses from every known pixel at the hole border, kept people included, so it does
    not honour the keep mask as a fill source (``honours_keep_mask = False``); kept pixels are
    never changed, though.

    Args:
        radius: neighbourhood radius in pixels that Telea averages at each step (>= 1).
    """

    name: ClassVar[str] = "telea"
    kind: ClassVar[str] = "inpaint"
    needs_network: ClassVar[bool] = False
    honours_keep_mask: ClassVar[bool] = False
    crops: ClassVar[bool] = True

    def __init__(self, radius: int = 5) -> None:
        if int(radius) < 1:
            raise InputError(f"telea radius must be >= 1 pixel, got {radius}")
        self.radius = int(radius)

    def erase(self, image: np.ndarray, erase: np.ndarray, *, keep: np.ndarray | None = None) -> np.ndarray:
        """Return a new (H, W, 3) uint8 RGB image with ``erase`` filled; other pixels unchanged."""
        erase, keep = check_inputs(image, erase, keep)
        if not erase.any():
            return image.copy()
        # Telea treats channels independently, so RGB in / RGB out needs no BGR swap.
        filled = cv2.inpaint(image, erase.astype(np.uint8) * 255, self.radius, cv2.INPAINT_TELEA)
        return paste(image, filled, erase)
