"""``patchmatch``: PatchMatch inpainting (pypatchmatch), the default offline eraser."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..errors import InputError
from ._common import check_inputs, paste


class PatchMatchEraser:
    """PatchMatch fill (draft)."""

    name: ClassVar[str] = "patchmatch"
    kind: ClassVar[str] = "inpaint"
    needs_network: ClassVar[bool] = False
    honours_keep_mask: ClassVar[bool] = True
    crops: ClassVar[bool] = True

    def __init__(self, patch_size: int = 3, seed: int = 0) -> None:
        if int(patch_size) < 1:
            raise InputError(f"patch_size is a radius and must be >= 1, got {patch_size}")
        self.patch_size = int(patch_size)
        self.seed = int(seed)

    def erase(self, image: np.ndarray, erase: np.ndarray, *, keep: np.ndarray | None = None) -> np.ndarray:
        erase, keep = check_inputs(image, erase, keep)
        if not erase.any():
            return image.copy()
        from patchmatch import patch_match

        patch_match.set_random_seed(self.seed)
        filled = patch_match.inpaint(
            image, erase.astype(np.uint8), global_mask=keep.astype(np.uint8), patch_size=self.patch_size
        )
        return paste(image, filled, erase)
