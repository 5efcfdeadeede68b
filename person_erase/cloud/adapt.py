"""Fit photos and masks into DashScope's input limits, and undo it on the results.

DashScope's image models accept JPEG/PNG/BMP/WEBP files of at most 10 MB (read strictly: 10,000,000 bytes) whose sides
are each within
512..4096 px. ``plan_adaptation`` decides, for an H×W photo:

* sides above 4096: downscale keeping the aspect ratio (the longer side becomes 4096);
* sides below 512 (after any downscale): pad by mirroring the border (``numpy.pad``'s ``reflect``, done
  by OpenCV's ``BORDER_REFLECT_101``: the same pixels, several times faster) up to 512, centred, and crop
  the padding off the result;
* photos more elongated than ``MAX_ASPECT`` are refused with an ``InputError`` (after fitting, too little
  of them would be left to be useful).

Masks go through exactly the same geometry (nearest neighbour, mirrored padding), so the service sees a
self-consistent padded scene. Results are restored with ``restore_image`` / ``restore_labels``: padding
cropped, then resized back to the input's size (bicubic for photos, nearest for label maps). When a photo was
downscaled only the erased region should be taken from the restored result — the eraser pastes back only
the mask's pixels, so everything else stays the caller's original pixels.

We always encode the arrays ourselves (PNG, or JPEG when a PNG would exceed 10 MB), so formats outside
JPEG/PNG/BMP/WEBP never reach the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from .protocol import ACCEPTED_FORMATS, MAX_FILE_BYTES, MAX_SIDE, MIN_SIDE  # noqa: F401 - re-exported

#: Longest side / shortest side beyond which a photo is refused.
MAX_ASPECT = 32.0


@dataclass(frozen=True)
class Adaptation:
    """How one photo was fitted into the service's limits.

    Attributes:
        size: (H, W) of the caller's photo.
        scaled: (H, W) after the downscale (equal to ``size`` when none was needed).
        pad: (top, bottom, left, right) pixels of mirrored padding added after scaling.
    """

    size: tuple[int, int]
    scaled: tuple[int, int]
    pad: tuple[int, int, int, int]

    @property
    def sent(self) -> tuple[int, int]:
        """(H, W) of what the service receives."""
        t, b, left, r = self.pad
        return self.scaled[0] + t + b, self.scaled[1] + left + r

    @property
    def identity(self) -> bool:
        """True when the photo is sent as it is."""
        return self.scaled == self.size and not any(self.pad)

    @property
    def downscaled(self) -> bool:
        return self.scaled != self.size

    def describe(self) -> dict[str, object]:
        """A JSON-friendly summary for reports."""
        return {"size": list(self.size), "sent": list(self.sent), "scaled": list(self.scaled), "pad": list(self.pad)}


def plan_adaptation(height: int, width: int) -> Adaptation:
    """Decide how an ``height``×``width`` photo is fitted into 512..4096 px per side.

    Raises:
        InputError: a side is not positive, or the aspect ratio exceeds ``MAX_ASPECT``.
    """
    if height <= 0 or width <= 0:
        raise InputError(f"cannot send an empty {width}x{height} image to DashScope")
    aspect = max(height, width) / min(height, width)
    if aspect > MAX_ASPECT:
        raise InputError(
            f"the photo is {width}x{height} px (aspect {aspect:.1f}:1); DashScope needs both sides within "
            f"{MIN_SIDE}..{MAX_SIDE} px and more elongated than {MAX_ASPECT:.0f}:1 cannot be fitted usefully — "
            "crop it first or use a local engine"
        )
    scale = min(1.0, MAX_SIDE / max(height, width))
    sh = min(MAX_SIDE, max(1, round(height * scale))) if scale < 1 else height
    sw = min(MAX_SIDE, max(1, round(width * scale))) if scale < 1 else width
    ph, pw = max(0, MIN_SIDE - sh), max(0, MIN_SIDE - sw)
    pad = (ph // 2, ph - ph // 2, pw // 2, pw - pw // 2)
    return Adaptation(size=(height, width), scaled=(sh, sw), pad=pad)


def _pad(arr: np.ndarray, pad: tuple[int, int, int, int]) -> np.ndarray:
    """Mirror-pad (H, W) or (H, W, 3) uint8 by (top, bottom, left, right); a 1-pixel side repeats its edge.

    Equal to ``numpy.pad(mode="reflect")`` (``"edge"`` for a 1-pixel side), also when the padding is wider
    than the image (the reflection repeats).
    """
    if not any(pad):
        return arr
    t, b, left, r = pad
    border = cv2.BORDER_REFLECT_101 if min(arr.shape[:2]) > 1 else cv2.BORDER_REPLICATE
    out: np.ndarray = cv2.copyMakeBorder(np.ascontiguousarray(arr), t, b, left, r, border)
    return out


def adapt_image(image: np.ndarray, plan: Adaptation) -> np.ndarray:
    """The (H', W', 3) uint8 RGB photo to send (a new array; ``image`` is not modified)."""
    out = image
    if plan.downscaled:
        out = cv2.resize(image, (plan.scaled[1], plan.scaled[0]), interpolation=cv2.INTER_AREA)
    out = _pad(out, plan.pad)
    return np.ascontiguousarray(out) if out is not image else image.copy()


def adapt_mask(mask: np.ndarray, plan: Adaptation) -> np.ndarray:
    """The (H', W') bool mask to send, with the photo's geometry (nearest neighbour)."""
    out: np.ndarray = mask.astype(np.uint8)
    if plan.downscaled:
        out = cv2.resize(out, (plan.scaled[1], plan.scaled[0]), interpolation=cv2.INTER_NEAREST)
    return _pad(out, plan.pad) > 0


def _fit_sent(arr: np.ndarray, plan: Adaptation, interpolation: int) -> np.ndarray:
    h, w = plan.sent
    if arr.shape[:2] != (h, w):
        arr = cv2.resize(arr, (w, h), interpolation=interpolation)
    return arr


def check_result_size(got: tuple[int, int], plan: Adaptation, *, task_id: str | None, what: str) -> str | None:
    """Check a result's (h, w) against what was sent.

    Equal: None. The same aspect ratio at another scale (within one pixel): a note to record (the result
    is then resampled to the sent size). Anything else is a bad result.

    Raises:
        CloudError: code ``"BadResult"`` — the result's shape does not match the image sent.
    """
    from ..errors import CloudError

    sh, sw = plan.sent
    gh, gw = int(got[0]), int(got[1])
    if (gh, gw) == (sh, sw):
        return None
    if gh > 0 and gw > 0 and abs(gh * sw - gw * sh) <= max(sh, sw):
        return f"the {what} came back {gw}x{gh} for a {sw}x{sh} upload (same aspect ratio); it was resampled"
    raise CloudError(
        f"the {what} of task {task_id} is {gw}x{gh} px but a {sw}x{sh} image was sent; refusing it instead of "
        "stretching it", code="BadResult", task_id=task_id)


def restore_sent_size(result: np.ndarray, plan: Adaptation) -> np.ndarray:
    """The service's result resized to exactly what was sent (after ``check_result_size``), bicubic."""
    return _fit_sent(result, plan, cv2.INTER_CUBIC)


def _unpad(arr: np.ndarray, plan: Adaptation) -> np.ndarray:
    t, _, left, _ = plan.pad
    sh, sw = plan.scaled
    return arr[t : t + sh, left : left + sw]


def restore_image(result: np.ndarray, plan: Adaptation) -> np.ndarray:
    """The service's (h, w, 3) uint8 RGB result brought back to the caller's (H, W, 3)."""
    out = _fit_sent(result, plan, cv2.INTER_CUBIC)
    out = _unpad(out, plan)
    if plan.downscaled:
        out = cv2.resize(out, (plan.size[1], plan.size[0]), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(out)


def restore_labels(labels: np.ndarray, plan: Adaptation) -> np.ndarray:
    """The service's (h, w) integer label map brought back to the caller's (H, W), nearest neighbour."""
    if labels.size and (int(labels.max()) > 65535 or int(labels.min()) < 0):
        raise InputError("a DashScope label map had labels outside 0..65535; it cannot be a person map")
    dtype = np.uint8 if labels.dtype == np.uint8 else np.uint16
    work = labels.astype(dtype, copy=False)
    out = _fit_sent(work, plan, cv2.INTER_NEAREST)
    out = _unpad(out, plan)
    if plan.downscaled:
        out = cv2.resize(out, (plan.size[1], plan.size[0]), interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(out)


def encode_image(image: np.ndarray, *, max_bytes: int = MAX_FILE_BYTES) -> tuple[bytes, str]:
    """Encode a (H, W, 3) uint8 RGB photo for upload: PNG if it fits in ``max_bytes``, else JPEG.

    PNG is tried only when the raw pixels are at most twice ``max_bytes`` (a photo compresses about 2:1
    losslessly); otherwise the best JPEG quality that fits is used.

    Returns:
        (file bytes, file extension with the dot).

    Raises:
        InputError: even a low-quality JPEG is larger than ``max_bytes``.
    """
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    if bgr.nbytes <= 2 * max_bytes:  # larger photos never fit as PNG; skip the costly attempt
        ok, png = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if ok and png.nbytes <= max_bytes:
            return png.tobytes(), ".png"
    for quality in (95, 90, 85, 75, 60):
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
        if quality >= 90:  # no chroma subsampling: saturated edges stay sharp
            params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
        ok, jpg = cv2.imencode(".jpg", bgr, params)
        if ok and jpg.nbytes <= max_bytes:
            return jpg.tobytes(), ".jpg"
    raise InputError(
        f"could not encode a {image.shape[1]}x{image.shape[0]} photo under {max_bytes} bytes for DashScope"
    )


def encode_mask(mask: np.ndarray) -> bytes:
    """A (H, W) bool mask as a PNG: 255 inside, 0 outside (DashScope's mask convention)."""
    ok, png = cv2.imencode(".png", mask.astype(np.uint8) * 255, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise InputError(f"could not encode a {mask.shape[1]}x{mask.shape[0]} mask as PNG")
    return png.tobytes()


def write_file(directory: str | Path, stem: str, data: bytes, suffix: str) -> Path:
    """Write ``data`` to ``directory/stem+suffix`` and return the path."""
    path = Path(directory) / f"{stem}{suffix}"
    path.write_bytes(data)
    return path
