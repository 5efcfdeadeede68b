"""License-clean photos for the notebooks, composed from scikit-image's bundled images.

* ``astronaut()`` — NASA portrait of Eileen Collins (public domain), bundled with scikit-image (BSD).
* ``launch_pad()`` — a multi-person scene: copies of the astronaut's figure, cut out once and pasted
  at different scales onto scikit-image's ``rocket`` photo (SpaceX launch pad, public domain).

The figure's cutout is a 1-bit mask stored next to this file (``data/astronaut_figure.png``, made once
by ``make_figure_mask``), so the scene stays the same when the segmenter improves.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from skimage import data


def astronaut() -> np.ndarray:
    """(512, 512, 3) uint8 RGB: one person."""
    return np.ascontiguousarray(data.astronaut())


FIGURE_MASK = Path(__file__).resolve().parent / "data" / "astronaut_figure.png"


def make_figure_mask() -> np.ndarray:
    """Cut the astronaut out once with our local segmenter (helmet and flag edge removed), save it.

    The scenes read the saved mask, so they stay the same when the segmenter changes.
    Run ``python _scenes.py`` to remake it.
    """
    from PIL import Image as PILImage

    import person_erase as pe
    from person_erase import masks as M

    people = pe.segment(astronaut(), quality="best")
    m = people.masks[int(np.argmax(people.areas))].copy()
    m[345:, 285:] = False   # the helmet on the table
    m[380:, :22] = False    # the edge of the flag
    m = M.clean(m, open_radius=4, min_area=2000)
    FIGURE_MASK.parent.mkdir(exist_ok=True)
    PILImage.fromarray(m).save(FIGURE_MASK, optimize=True)
    return m


@lru_cache(maxsize=1)
def _figure() -> tuple[np.ndarray, np.ndarray]:
    """The astronaut's figure: (h, w, 3) uint8 RGB crop and its (h, w) float32 alpha in [0, 1]."""
    from PIL import Image as PILImage

    img = astronaut()
    fg = np.asarray(PILImage.open(FIGURE_MASK).convert("L")) > 0
    alpha = cv2.GaussianBlur(fg.astype(np.float32), (5, 5), 0)
    ys, xs = np.nonzero(fg)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return img[y0:y1, x0:x1].copy(), alpha[y0:y1, x0:x1].copy()


#: (centre x as share of the width, height as share of the photo's height, mirrored) per pasted figure,
#: back to front. The bottom of every figure sits on the bottom edge of the photo.
LAUNCH_PAD_PEOPLE = (
    (0.86, 0.36, True),
    (0.12, 0.42, False),
    (0.68, 0.46, True),
    (0.33, 0.74, False),
)


#: A subject with a friend right beside her, and two people further off (for the privacy policies).
FRIENDS_LAYOUT = (
    (0.90, 0.30, True),
    (0.07, 0.33, False),
    (0.60, 0.64, True),
    (0.36, 0.74, False),
)


def launch_pad(people: tuple[tuple[float, float, bool], ...] = LAUNCH_PAD_PEOPLE) -> np.ndarray:
    """(427, 640, 3) uint8 RGB: figures pasted onto the rocket photo (one large subject, smaller others)."""
    bg = np.ascontiguousarray(data.rocket()).astype(np.float32)
    H, W = bg.shape[:2]
    fig, alpha = _figure()
    for cx, share, mirrored in people:
        fh = int(round(share * H))
        fw = int(round(fig.shape[1] * fh / fig.shape[0]))
        f = cv2.resize(fig, (fw, fh), interpolation=cv2.INTER_AREA).astype(np.float32)
        a = cv2.resize(alpha, (fw, fh), interpolation=cv2.INTER_AREA)[:, :, None]
        if mirrored:
            f, a = f[:, ::-1], a[:, ::-1]
        # a touch of the scene's dusk light on each figure, so they sit in the photo
        f = f * np.array([0.80, 0.82, 0.92], np.float32)
        x0 = int(round(cx * W - fw / 2))
        y0 = H - fh
        X0, X1 = max(0, x0), min(W, x0 + fw)
        region = bg[y0:H, X0:X1]
        fa, ff = a[:, X0 - x0:X1 - x0], f[:, X0 - x0:X1 - x0]
        bg[y0:H, X0:X1] = ff * fa + region * (1 - fa)
    return bg.round().clip(0, 255).astype(np.uint8)


def clean_launch_pad() -> np.ndarray:
    """(427, 640, 3) uint8 RGB: the rocket photo without anyone pasted in (the ground truth behind them)."""
    return np.ascontiguousarray(data.rocket())


def show(*images: np.ndarray, titles: list[str] | None = None, width: float = 9.0, dpi: int = 80,
         quality: int = 85) -> None:
    """Draw images side by side in one small figure, shown as a JPEG (keeps notebooks light).

    Bool masks are drawn black and white; everything else as RGB.
    """
    import matplotlib.pyplot as plt
    from IPython.display import Image as IPImage
    from IPython.display import display

    n = len(images)
    h, w = np.asarray(images[0]).shape[:2]
    fig, axes = plt.subplots(1, n, figsize=(width, width / n * h / w + (0.3 if titles else 0.05)), dpi=dpi,
                             squeeze=False)
    for k, (ax, im) in enumerate(zip(axes[0], images, strict=True)):
        im = np.asarray(im)
        if im.dtype == bool:
            ax.imshow(im, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            ax.imshow(im, interpolation="antialiased")
        ax.set_axis_off()
        if titles:
            ax.set_title(titles[k], fontsize=10)
    fig.tight_layout(pad=0.2)
    buf = io.BytesIO()
    fig.savefig(buf, format="jpeg", dpi=dpi, bbox_inches="tight", pad_inches=0.04, pil_kwargs={"quality": quality})
    plt.close(fig)
    display(IPImage(data=buf.getvalue(), format="jpeg"))

if __name__ == "__main__":
    make_figure_mask()
