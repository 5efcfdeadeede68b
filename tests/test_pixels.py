"""One pixel check (``pixels.check_rgb``) behind every entry point that takes a photo array."""

from __future__ import annotations

import numpy as np
import pytest

import person_erase as pe
from person_erase.pixels import check_rgb

BAD = np.zeros((8, 8, 3), np.float32)


@pytest.mark.parametrize("call", [
    lambda: pe.get_eraser("telea").erase(BAD, np.zeros((8, 8), bool), keep=np.zeros((8, 8), bool)),
    lambda: pe.get_eraser("blur").erase(BAD, np.zeros((8, 8), bool), keep=np.zeros((8, 8), bool)),
    lambda: pe.save_image(BAD, "x.png"),
    lambda: pe.Image(pixels=BAD),
])
def test_every_entry_point_refuses_a_float_image_with_the_same_words(call):
    with pytest.raises(pe.InputError, match=r"needs an \(H, W, 3\) uint8 RGB `(image|pixels)`, got shape \(8, 8, 3\) "
                                            r"dtype float32") as info:
        call()
    assert info.value.param in ("image", "pixels")


def test_check_rgb_passes_images_through_without_copying():
    a = np.zeros((4, 5, 3), np.uint8)
    assert check_rgb(a) is a
    assert check_rgb(pe.Image(pixels=a)).shape == (4, 5, 3)
    with pytest.raises(pe.InputError, match="got shape \\(4, 5\\) dtype uint8"):
        check_rgb(a[..., 0], who="x")
