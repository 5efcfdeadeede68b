"""Bring your own masks: a label-map PNG or a folder of binary mask PNGs as a segmenter.

* A **label map**: one PNG the size of the photo, 8- or 16-bit, 0 = background, k > 0 = one person
  (labels need not be consecutive). An RGB(A) PNG is read from its first channel.
* A **folder**: one binary PNG per person (non-zero = the person), taken in file-name order.

People are numbered left to right like every other segmenter's output.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..engineinfo import SegmentInfo
from ..errors import InputError
from ..instances import MAX_INSTANCES, Instances
from ..io import check_regular_file

MASK_SUFFIXES = (".png",)


def _read_gray(path: Path, size: tuple[int, int], what: str = "label map") -> np.ndarray:
    """(H, W) integer array from a PNG: 8/16-bit as is, first channel of RGB(A), palette indices.

    ``size`` = (H, W) of the photo: a mask of another size is refused from its header, before any
    pixel is decoded (so a decompression bomb is only a size mismatch).
    """
    check_regular_file(path, what="a mask PNG", folder_hint="")
    h, w = size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.size != (w, h):
                    lw, lh = im.size
                    raise InputError(
                        f"{what} is {lw}x{lh} but the photo is {w}x{h}; give masks made for this photo "
                        "(same width and height, after EXIF orientation)"
                    )
                im.load()
                mode = im.mode
                arr = np.array(im)
    except Image.DecompressionBombError as exc:
        raise InputError(
            f"cannot read mask {path}: {str(exc).rstrip('.')}; give an 8/16-bit PNG the photo's size"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"cannot read mask {path}: {exc}; give an 8/16-bit PNG (0 = background)") from None
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
        max_instances: most people accepted (``instances.MAX_INSTANCES`` by default).

    Raises:
        InputError: the path does not exist, is not a regular file or folder (a FIFO would block
            forever), holds no mask PNGs, or a mask cannot be read.
    """

    name: ClassVar[str] = "labels"
    needs_network: ClassVar[bool] = False

    def __init__(self, path: str | Path, *, max_instances: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(
                f"label masks not found: {self.path} does not exist; give a label-map PNG or a folder of mask PNGs"
            )
        if not self.path.is_dir():
            check_regular_file(self.path, what="a label-map PNG or a folder of mask PNGs", folder_hint="")
        self.max_instances = MAX_INSTANCES if max_instances is None else int(max_instances)
        self._labels: np.ndarray | None = None

    def _load(self, size: tuple[int, int]) -> np.ndarray:
        """(H, W) integer label map (0 background) for a photo of ``size``, cached after the first read."""
        if self._labels is not None and self._labels.shape == size:
            return self._labels
        if self.path.is_dir():
            files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in MASK_SUFFIXES and p.is_file())
            if not files:
                raise InputError(f"the folder {self.path} holds no mask PNGs; put one binary PNG per person in it")
            if len(files) > self.max_instances:
                raise InputError(
                    f"the folder {self.path} holds {len(files):,} mask PNGs; at most max_instances="
                    f"{self.max_instances:,} people are accepted per photo"
                )
            labels = np.zeros(size, dtype=np.uint8 if len(files) < 256 else np.uint16)
            for k, f in enumerate(files, start=1):  # later files win where masks overlap
                labels[_read_gray(f, size, what=f"mask {f.name}") > 0] = k
        else:
            labels = _read_gray(self.path, size)
        self._labels = labels
        return labels

    def segment(self, image: np.ndarray) -> Instances:
        """The stored people for ``image`` ((H, W, 3) uint8 RGB; only its size is used).

        Raises:
            InputError: the masks' size differs from the photo's, or they hold more than
                ``max_instances`` people.
        """
        arr = np.asarray(getattr(image, "pixels", image))
        if arr.ndim < 2:
            raise InputError(f"segment needs an (H, W, 3) image, got shape {arr.shape}")
        h, w = (int(v) for v in arr.shape[:2])
        labels = self._load((h, w))
        info = SegmentInfo(engine="labels", details={"source": str(self.path)})
        return Instances.from_label_map(labels, info=info, max_instances=self.max_instances)
