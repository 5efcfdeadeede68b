"""Pictures for people who would rather look than read: numbered overlays and before/after strips."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

if TYPE_CHECKING:
    from .instances import Instances

# A colour-blind-friendly palette (Okabe–Ito, plus a few), RGB.
PALETTE = np.array(
    [
        (230, 159, 0),
        (86, 180, 233),
        (0, 158, 115),
        (240, 228, 66),
        (0, 114, 178),
        (213, 94, 0),
        (204, 121, 167),
        (120, 200, 80),
        (170, 120, 255),
        (255, 90, 120),
    ],
    dtype=np.uint8,
)


def _pixels(image: Any, shape: tuple[int, int]) -> np.ndarray:
    if image is None:
        return np.full((*shape, 3), 96, dtype=np.uint8)
    px = getattr(image, "pixels", image)
    px = np.asarray(px)
    if px.shape[:2] != shape or px.ndim != 3 or px.dtype != np.uint8:
        from .errors import InputError

        raise InputError(f"overlay needs an (H, W, 3) uint8 image of size {shape}, got {px.shape} {px.dtype}")
    return px


def draw_overlay(
    people: Instances,
    image: Any = None,
    *,
    alpha: float = 0.5,
    erase: np.ndarray | None = None,
    keep: np.ndarray | None = None,
    labels: dict[int, str] | None = None,
) -> np.ndarray:
    """Tint each person, outline it and draw its number at the top of its box.

    Args:
        people: the instances to draw.
        image: (H, W, 3) uint8 RGB or ``pe.Image``; grey canvas when None.
        alpha: tint strength in [0, 1].
        erase, keep: optional (H, W) bool masks drawn as hatched red / green outlines.
        labels: optional text per person number, drawn after the number (e.g. ``"erase"``).

    Returns:
        (H, W, 3) uint8 RGB, a new array.
    """
    h, w = people.shape
    base = _pixels(image, (h, w))
    out = base.astype(np.float32)
    scale = max(h, w) / 1000.0
    thick = max(1, int(round(2 * scale)))
    # each person is drawn from their own crop (people.crop), never a full-frame mask per person
    for k, i in enumerate(people.index.tolist()):
        color = PALETTE[int(i) % len(PALETTE)].astype(np.float32)
        (cx0, cy0, cx1, cy1), m = people.crop(k)
        win = out[cy0:cy1, cx0:cx1]
        win[m] = win[m] * (1 - alpha) + color * alpha
    out8 = out.clip(0, 255).astype(np.uint8)
    for k, i in enumerate(people.index.tolist()):
        color = tuple(int(c) for c in PALETTE[int(i) % len(PALETTE)])
        (cx0, cy0, _, _), m = people.crop(k)
        if m.size == 0:
            continue
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE,
                                       offset=(cx0, cy0))
        cv2.drawContours(out8, contours, -1, color, thick, lineType=cv2.LINE_AA)
    for mask, color in ((erase, (230, 40, 40)), (keep, (40, 200, 80))):
        if mask is not None and mask.any():
            contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out8, contours, -1, color, max(1, thick // 2 + 1), lineType=cv2.LINE_AA)
    font = cv2.FONT_HERSHEY_SIMPLEX
    fs = max(0.5, 0.9 * scale)
    ft = max(1, int(round(2 * scale)))
    for k, (b, i) in enumerate(zip(people.boxes, people.index, strict=True)):
        (cx0, cy0, _, _), m = people.crop(k)
        text = str(int(i))
        if labels and int(i) in labels:
            text += f" {labels[int(i)]}"
        (tw, th), base_line = cv2.getTextSize(text, font, fs, ft)
        ys, xs = np.nonzero(m)
        ys, xs = ys + cy0, xs + cx0
        if len(ys):  # anchor the label on the person's topmost pixels, inside the photo
            top = ys.min()
            cx = int(xs[ys <= top + max(2, (ys.max() - top) // 10)].mean())
        else:
            top, cx = int(b[1]), int((b[0] + b[2]) // 2)
        x0 = int(np.clip(cx - tw // 2 - 4, 0, max(0, w - tw - 8)))
        y0 = int(np.clip(top - th - base_line - 8, 0, max(0, h - th - base_line - 8)))
        color = tuple(int(c) for c in PALETTE[int(i) % len(PALETTE)])
        cv2.rectangle(out8, (x0, y0), (x0 + tw + 8, y0 + th + base_line + 8), color, -1)
        cv2.putText(out8, text, (x0 + 4, y0 + th + 4), font, fs, (0, 0, 0), ft, lineType=cv2.LINE_AA)
    return out8


def side_by_side(*images: np.ndarray, gap: int = 8, titles: list[str] | None = None) -> np.ndarray:
    """Images of equal height next to each other on white, optional title over each (RGB uint8)."""
    h = max(im.shape[0] for im in images)
    pad_top = 0
    if titles:
        pad_top = max(24, h // 18)
    width = sum(im.shape[1] for im in images) + gap * (len(images) - 1)
    canvas = np.full((h + pad_top, width, 3), 255, dtype=np.uint8)
    x = 0
    for k, im in enumerate(images):
        canvas[pad_top : pad_top + im.shape[0], x : x + im.shape[1]] = im
        if titles:
            fs = pad_top / 40
            cv2.putText(canvas, titles[k], (x + 4, int(pad_top * 0.75)), cv2.FONT_HERSHEY_SIMPLEX, fs, (0, 0, 0),
                        max(1, int(fs * 2)), lineType=cv2.LINE_AA)
        x += im.shape[1] + gap
    return canvas


#: longest side of the pictures notebooks display (``_repr_png_``); the arrays stay full size
PREVIEW_MAX_SIDE = 1600


def preview_png(picture: np.ndarray, max_side: int = PREVIEW_MAX_SIDE) -> bytes:
    """PNG bytes of ``picture`` shrunk (area-averaged) so its longest side is at most ``max_side``.

    What a notebook shows: a 4096² before/after at full size is a ~50 MB PNG inside the notebook.
    """
    import io as _io

    from PIL import Image as PILImage

    h, w = picture.shape[:2]
    scale = max_side / max(h, w)
    if scale < 1:
        picture = cv2.resize(
            picture, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
    buf = _io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(picture)).save(buf, format="PNG")
    return buf.getvalue()
