"""Helpers shared by the local erasers: argument checks and the outside-mask guarantee."""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def check_inputs(image: np.ndarray, erase: np.ndarray, keep: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Validate an eraser's arguments; return ``(erase, keep)`` as bool arrays (no copies if already bool).

    Raises:
        InputError: wrong shape or dtype, or ``erase`` and ``keep`` overlap.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise InputError(f"image must be an (H, W, 3) uint8 RGB array, got shape {shape} and dtype {dtype}")
    h, w = image.shape[:2]
    given_keep = keep is not None
    erase = np.asarray(erase)
    if erase.shape != (h, w):
        raise InputError(f"erase mask must be (H, W) = {(h, w)} like the image, got shape {erase.shape}")
    if keep is None:
        keep = np.zeros((h, w), dtype=bool)
    keep = np.asarray(keep)
    if keep.shape != (h, w):
        raise InputError(f"keep mask must be (H, W) = {(h, w)} like the image, got shape {keep.shape}")
    erase = erase.astype(bool, copy=False)
    keep = keep.astype(bool, copy=False)
    if given_keep and np.any(erase & keep):
        raise InputError(
            f"erase and keep masks overlap in {int(np.count_nonzero(erase & keep))} pixels; "
            "remove the keep pixels from the erase mask first (keep wins)"
        )
    return erase, keep


def paste(image: np.ndarray, filled: np.ndarray, erase: np.ndarray) -> np.ndarray:
    """A new array equal to ``image`` outside ``erase`` and to ``filled`` inside it."""
    return np.where(erase[..., None], filled, image).astype(np.uint8, copy=False)

