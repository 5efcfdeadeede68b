"""compose: hole clusters, crop boxes with context, paste-back of only the masked pixels."""

from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np
import pytest
from skimage import data

from person_erase.compose import (
    MIN_MARGIN_PX,
    ComposeStats,
    apply_eraser,
    count_changed_outside,
    crop_box,
    find_clusters,
)
from person_erase.erasers.telea import TeleaEraser
from person_erase.errors import EngineError, InputError


class PaintAll:
    """A careless engine: paints its whole input (also outside the mask) and records each call."""

    name: ClassVar[str] = "paint-all"
    kind: ClassVar[str] = "inpaint"
    needs_network: ClassVar[bool] = False
    honours_keep_mask: ClassVar[bool] = True
    crops: ClassVar[bool] = True

    def __init__(self, crops: bool = True) -> None:
        self.crops = crops  # type: ignore[misc]
        self.calls: list[tuple[tuple[int, ...], np.ndarray, np.ndarray]] = []

    def erase(self, image: np.ndarray, erase: np.ndarray, *, keep: np.ndarray) -> np.ndarray:
        self.calls.append((image.shape, erase.copy(), keep.copy()))
        return np.full_like(image, 7)


@pytest.fixture(scope="module")
def astro() -> np.ndarray:
    return data.astronaut()


def blob(shape: tuple[int, int], x: int, y: int, w: int, h: int) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[y : y + h, x : x + w] = True
    return m


def test_find_clusters_merges_near_components_only() -> None:
    shape = (400, 600)
    a = blob(shape, 20, 20, 60, 150)
    b = blob(shape, 84, 30, 20, 40)  # 4 px from a: same cluster (a hand next to the body)
    c = blob(shape, 400, 200, 80, 150)  # far away: its own cluster
    clusters = find_clusters(a | b | c)
    assert len(clusters) == 2
    (box0, m0), (box1, m1) = clusters
    assert box0 == (20, 20, 104, 170) and box1 == (400, 200, 480, 350)
    np.testing.assert_array_equal(m0, a | b)
    np.testing.assert_array_equal(m1, c)
    assert find_clusters(np.zeros(shape, bool)) == []


def test_crop_box_margin_is_proportional_and_clipped() -> None:
    assert crop_box((100, 100, 200, 300), (1000, 1000), margin=0.5) == (0, 0, 300, 400)
    assert crop_box((400, 400, 500, 600), (1000, 1000), margin=0.5) == (300, 300, 600, 700)
    # Near the bottom-right corner the box is clipped to the image.
    assert crop_box((900, 950, 1000, 1000), (1000, 1000), margin=0.5) == (850, 900, 1000, 1000)
    # Tiny holes still get the minimum context.
    assert crop_box((500, 500, 502, 502), (1000, 1000), margin=0.5) == (
        500 - MIN_MARGIN_PX, 500 - MIN_MARGIN_PX, 502 + MIN_MARGIN_PX, 502 + MIN_MARGIN_PX
    )


def test_two_far_holes_are_two_crops_and_only_masked_pixels_are_pasted(astro: np.ndarray) -> None:
    shape = astro.shape[:2]
    left = blob(shape, 20, 40, 40, 100)
    right = blob(shape, 430, 300, 50, 120)
    erase = left | right
    image = astro.copy()
    engine = PaintAll()
    seen: list[tuple[int, int]] = []
    out, stats = apply_eraser(engine, image, erase, None, margin=0.5, progress=lambda d, t: seen.append((d, t)))
    assert isinstance(stats, ComposeStats) and stats.clusters == 2 and len(engine.calls) == 2
    assert seen == [(1, 2), (2, 2)]
    for (shp, crop_erase, _), (x0, y0, x1, y1) in zip(engine.calls, stats.boxes, strict=True):
        assert shp == (y1 - y0, x1 - x0, 3)
        assert shp[0] * shp[1] < 0.2 * astro.shape[0] * astro.shape[1]  # cost follows the hole
        assert crop_erase.sum() in (left.sum(), right.sum())
    np.testing.assert_array_equal(out[~erase], astro[~erase])
    assert np.all(out[erase] == 7)
    np.testing.assert_array_equal(image, astro)
    # The engine painted whole crops: everything but the hole counts as changed outside.
    expected = 0
    for x0, y0, x1, y1 in stats.boxes:
        crop, hole = astro[y0:y1, x0:x1], erase[y0:y1, x0:x1]
        expected += int(np.count_nonzero(np.any(crop != 7, axis=2) & ~hole))
    assert (
        stats.raw_outside_changed_px
        == expected
        > 0.8 * sum((y1 - y0) * (x1 - x0) for x0, y0, x1, y1 in stats.boxes) - erase.sum()
    )
    assert count_changed_outside(astro, out, erase) == 0


def test_non_crop_eraser_gets_the_whole_image(astro: np.ndarray) -> None:
    shape = astro.shape[:2]
    erase = blob(shape, 20, 40, 40, 100) | blob(shape, 430, 300, 50, 120)
    engine = PaintAll(crops=False)
    out, stats = apply_eraser(engine, astro, erase, None)
    assert len(engine.calls) == 1 and engine.calls[0][0] == astro.shape
    assert stats.boxes == ((0, 0, 512, 512),)
    np.testing.assert_array_equal(out[~erase], astro[~erase])
    assert stats.raw_outside_changed_px == int(np.count_nonzero(np.any(astro != 7, axis=2) & ~erase))


def test_unfilled_neighbour_holes_are_excluded_as_sources(astro: np.ndarray) -> None:
    shape = astro.shape[:2]
    first = blob(shape, 100, 100, 40, 100)
    second = blob(shape, 175, 120, 40, 100)  # 35 px away: separate clusters, overlapping crops
    keep = blob(shape, 300, 100, 30, 30)
    engine = PaintAll()
    _, stats = apply_eraser(engine, astro, first | second, keep, margin=1.0)
    assert len(engine.calls) == 2
    (b0, b1) = stats.boxes
    (_, e0, k0), (_, e1, k1) = engine.calls

    def crop(m: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        return m[box[1] : box[3], box[0] : box[2]]

    # While the first hole is filled, the second one (not filled yet, inside the crop) is keep.
    np.testing.assert_array_equal(e0, crop(first, b0))
    np.testing.assert_array_equal(k0, crop(second | keep, b0))
    assert crop(second, b0).any()
    # While the second is filled, the first is already filled: ordinary context, not keep.
    np.testing.assert_array_equal(e1, crop(second, b1))
    np.testing.assert_array_equal(k1, crop(keep, b1))
    assert crop(first, b1).any()


def test_keep_pixels_and_outside_stay_identical_with_a_real_eraser(astro: np.ndarray) -> None:
    shape = astro.shape[:2]
    erase = blob(shape, 50, 300, 60, 150) | blob(shape, 380, 60, 50, 120)
    keep = blob(shape, 120, 300, 40, 150)
    out, stats = apply_eraser(TeleaEraser(), astro, erase, keep)
    assert stats.clusters == 2 and stats.raw_outside_changed_px == 0
    np.testing.assert_array_equal(out[~erase], astro[~erase])
    assert np.any(out[erase] != astro[erase])


def test_no_holes_returns_a_copy(astro: np.ndarray) -> None:
    out, stats = apply_eraser(TeleaEraser(), astro, np.zeros(astro.shape[:2], bool), None)
    np.testing.assert_array_equal(out, astro)
    assert out is not astro and stats.clusters == 0


def test_bad_engine_output_and_bad_inputs(astro: np.ndarray) -> None:
    class Broken(PaintAll):
        def erase(self, image, erase, *, keep):  # type: ignore[override]
            return image[:10]

    erase = blob(astro.shape[:2], 50, 50, 20, 20)
    with pytest.raises(EngineError, match="expected"):
        apply_eraser(Broken(), astro, erase, None)
    with pytest.raises(InputError):
        apply_eraser(TeleaEraser(), astro, erase, erase)
    with pytest.raises(InputError):
        apply_eraser(TeleaEraser(), astro, erase, None, margin=-1)


def test_count_changed_outside() -> None:
    a = np.zeros((10, 10, 3), np.uint8)
    b = a.copy()
    b[0, 0, 1] = 1
    b[5, 5] = 9
    mask = np.zeros((10, 10), bool)
    mask[5, 5] = True
    assert count_changed_outside(a, b, mask) == 1
    assert count_changed_outside(a, cv2.flip(a, 0), mask) == 0
