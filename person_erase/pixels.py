"""The one pixel convention: (H, W, 3) uint8 RGB images, checked in one place.

Every module that takes a photo array calls ``check_rgb``; the message names who needs it and what
was passed, so a BGR float image or a greyscale array is refused with the same words everywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InputError


def check_rgb(image: Any, *, who: str = "this function", param: str = "image") -> np.ndarray:
    """``image`` (an array, or anything with ``.pixels`` such as ``pe.Image``) as an (H, W, 3) uint8 array.

    No copy is made. ``who`` names the caller in the message (``"the dashscope eraser"``).

    Raises:
        InputError: not (H, W, 3) uint8; the message gives the shape and dtype that were passed.
    """
    arr = np.asarray(getattr(image, "pixels", image))
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise InputError(f"{who} needs an (H, W, 3) uint8 RGB `{param}`, got shape {arr.shape} dtype {arr.dtype}",
                         param=param)
    return arr
