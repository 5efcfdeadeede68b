"""Image helpers of the fake DashScope service: label maps, visualisations, results, the watermark."""

from __future__ import annotations

import io

import numpy as np


def encode_labels(labels: np.ndarray) -> bytes:
    from PIL import Image as PILImage

    labels = np.asarray(labels)
    buf = io.BytesIO()
    if labels.size and int(labels.max()) > 255:
        PILImage.fromarray(labels.astype(np.uint16)).save(buf, format="PNG")
    else:
        PILImage.fromarray(labels.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def visualise(image: np.ndarray, labels: np.ndarray) -> bytes:
    import cv2

    from ..overlay import PALETTE

    lut = np.zeros((65536 if labels.dtype.itemsize > 1 else 256, 3), np.uint8)
    lut[1:] = PALETTE[np.arange(len(lut) - 1) % len(PALETTE)]
    lab: np.ndarray = labels.astype(np.uint16 if len(lut) > 256 else np.uint8)
    colour = lut[lab]
    blend = cv2.addWeighted(image, 0.5, colour, 0.5, 0)
    out = np.where((lab != 0)[:, :, None], blend, image)
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(out[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return buf.tobytes()


def encode_result(image: np.ndarray, fmt: str) -> bytes:
    import cv2

    bgr = np.ascontiguousarray(image[:, :, ::-1])
    if fmt == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    else:
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise ValueError("could not encode the result")
    return buf.tobytes()


def watermark(image: np.ndarray) -> np.ndarray:
    """Stamp a small "AI" mark in the bottom-right corner (like the service's ``add_watermark``)."""
    import cv2

    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    scale = max(0.5, min(h, w) / 800)
    cv2.putText(
        out,
        "AI generated",
        (max(0, w - int(230 * scale)), h - int(12 * scale)),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (255, 255, 255),
        max(1, int(2 * scale)),
        cv2.LINE_AA,
    )
    return out


def telea_erase(image: np.ndarray, erase: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """A quick erase backend for tests: the local ``telea`` eraser (the keep mask only stays unchanged,
    as in the service); pixels outside ``erase`` unchanged. Never used in place of a failing backend."""
    from ..erasers.telea import TeleaEraser

    return TeleaEraser().erase(image, erase)
