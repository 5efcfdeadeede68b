"""Helpers shared by the local erasers: argument checks, the outside-mask guarantee, masked blur."""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import InputError
from ..pixels import check_rgb


def check_inputs(image: np.ndarray, erase: np.ndarray, keep: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Validate an eraser's arguments; return ``(erase, keep)`` as bool arrays (no copies if already bool).

    Raises:
        InputError: wrong shape or dtype, or ``erase`` and ``keep`` overlap.
    """
    if not isinstance(image, np.ndarray):
        raise InputError(f"an eraser needs an (H, W, 3) uint8 RGB `image` array, got {type(image).__name__}",
                         param="image")
    check_rgb(image, who="an eraser")
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


#: from this sigma the blur runs on a copy shrunk by ``sigma / 4`` (cost independent of sigma)
PYRAMID_FROM_SIGMA = 12.0


def masked_blur(img: np.ndarray, weight: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blur of ``img`` where only pixels with ``weight`` > 0 contribute (normalised convolution).

    A direct Gaussian costs O(sigma) per pixel: sigma 240 px (a 3000 px person) took about a minute
    per person. Above ``PYRAMID_FROM_SIGMA`` the weighted image and the weights are area-averaged
    down by ``f = sigma / 4``, blurred there with the remaining sigma and brought back bilinearly:
    area averaging, the small blur and the bilinear return add up to the requested sigma, so the
    result is as strong (the redaction rule holds) at a cost that no longer grows with it.
    """
    wf = weight.astype(np.float32)
    num = img.astype(np.float32)
    num *= wf[..., None]
    h, w = wf.shape
    f = int(sigma // 4) if sigma >= PYRAMID_FROM_SIGMA else 1
    if f < 2 or min(h, w) < 4 * f:
        num = np.asarray(cv2.GaussianBlur(num, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT), np.float32)
        den = cv2.GaussianBlur(wf, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
        num /= np.maximum(den, 1e-6)[..., None]
        return num, den
    small = (max(1, -(-w // f)), max(1, -(-h // f)))
    # variances (in full-size px²): box of f ~ f²/12, bilinear return ~ f²/6; the Gaussian makes the rest
    rest = float(np.sqrt(max(sigma**2 - f**2 / 4.0, 1.0))) / f
    num_s = cv2.GaussianBlur(
        cv2.resize(num, small, interpolation=cv2.INTER_AREA), (0, 0), rest, borderType=cv2.BORDER_CONSTANT
    )
    den_s = cv2.GaussianBlur(
        cv2.resize(wf, small, interpolation=cv2.INTER_AREA), (0, 0), rest, borderType=cv2.BORDER_CONSTANT
    )
    del num, wf
    # the ratio is smooth at the small size: divide there, bring one image back instead of two
    ratio = num_s / np.maximum(den_s, 1e-6)[..., None]
    return cv2.resize(ratio, (w, h), interpolation=cv2.INTER_LINEAR), cv2.resize(
        den_s, (w, h), interpolation=cv2.INTER_LINEAR
    )
