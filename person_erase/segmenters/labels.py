"""Bring your own masks: a label-map PNG or a folder of binary mask PNGs as a segmenter.

* A **label map**: one PNG the size of the photo, 8- or 16-bit, 0 = background, k > 0 = one person
  (labels need not be consecutive). An RGB(A) PNG is read from its first channel.
* A **folder**: one binary PNG per person (non-zero = the person), taken in file-name order.

People are numbered left to right like every other segmenter's output.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import InputError
from ..instances import Instances

MASK_SUFFIXES = (".png",)


def _read_gray(path: Path) -> np.ndarray:
    """(H, W) integer array from a PNG: 8/16-bit as is, first channel of RGB(A), palette indices."""
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            arr = np.array(im)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot read mask {path}: {exc}; give an 8/16-bit PNG (0 = background)") from exc
    if arr.ndim == 3:
        arr = arr[..., 0]
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"mask {path} has {mode} pixels ({arr.dtype}); give an 8/16-bit integer PNG")
    return arr


class LabelSegmenter:
    """Person masks read from disk instead of computed.

    Args:
        path: a label-map PNG, or a folder of binary mask PNGs (one person each, sorted by name).

    Raises:
        InputError: the path does not exist, holds no mask PNGs, or a mask cannot be read.
    """

    name: ClassVar[str] = "labels"
    needs_network: ClassVar[bool] = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"label masks not found: {self.path} does not exist; give a label-map PNG or a folder of mask PNGs")
        self._labels: np.ndarray | None = None

    def _load(self) -> np.ndarray:
        """(H, W) integer label map (0 background), cached after the first read."""
        if self._labels is not None:
            return self._labels
        if self.path.is_dir():
            files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in MASK_SUFFIXES and p.is_file())
            if not files:
                raise InputError(f"the folder {self.path} holds no mask PNGs; put one binary PNG per person in it")
            masks = [_read_gray(f) for f in files]
            shape = masks[0].shape
            for f, m in zip(files, masks, strict=True):
                if m.shape != shape:
                    raise InputError(
                        f"mask {f.name} is {m.shape[1]}x{m.shape[0]} but {files[0].name} is "
                        f"{shape[1]}x{shape[0]}; all masks in a folder must have the photo's size"
                    )
            dtype = np.uint8 if len(masks) < 256 else np.uint16
            labels = np.zeros(shape, dtype=dtype)
            for k, m in enumerate(masks, start=1):  # later files win where masks overlap
                labels[m > 0] = k
        else:
            labels = _read_gray(self.path)
        self._labels = labels
        return labels

    def segment(self, image: np.ndarray) -> Instances:
        """The stored people for ``image`` ((H, W, 3) uint8 RGB; only its size is used).

        Raises:
            InputError: the masks' size differs from the photo's.
        """
        arr = np.asarray(getattr(image, "pixels", image))
        if arr.ndim < 2:
            raise InputError(f"segment needs an (H, W, 3) image, got shape {arr.shape}")
        labels = self._load()
        h, w = arr.shape[:2]
        if labels.shape != (h, w):
            lh, lw = labels.shape
            raise InputError(
                f"label map is {lw}x{lh} but the photo is {w}x{h}; give masks made for this photo "
                "(same width and height, after EXIF orientation)"
            )
        return Instances.from_label_map(labels, meta={"engine": "labels", "source": str(self.path)})
