"""Shared fixtures: paths to the dev sets, license-clean photos, and synthetic scenes with known people."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PERSON_ERASE_SHARED", REPO.parent / "shared"))
PERSONS = SHARED / "data" / "persons"
COCO = SHARED / "data" / "coco-persons-dev"


@pytest.fixture(scope="session")
def persons_dir() -> Path:
    if not (PERSONS / "manifest.json").exists():
        pytest.skip("Penn-Fudan dev set (../shared/data/persons) not present")
    return PERSONS


@pytest.fixture(scope="session")
def coco_dir() -> Path:
    if not (COCO / "manifest.json").exists():
        pytest.skip("COCO dev set (../shared/data/coco-persons-dev) not present")
    return COCO


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def make_scene(n: int = 3, *, size: tuple[int, int] = (240, 360), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured background with ``n`` person-like figures (head disk + body ellipse) standing apart.

    Returns:
        image (H, W, 3) uint8 RGB and a label map (H, W) uint8 (0 background, k = figure k, left to right).
    """
    import cv2

    h, w = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack(
        [100 + 40 * np.sin(xx / 9.0), 120 + 30 * np.cos(yy / 7.0), 90 + 20 * np.sin((xx + yy) / 13.0)], axis=2
    )
    bg += rng.normal(0, 6, bg.shape)
    img = bg.clip(0, 255).astype(np.uint8)
    labels = np.zeros((h, w), np.uint8)
    for k in range(n):
        cx = int(w * (k + 1) / (n + 1))
        body_h = int(h * (0.35 + 0.08 * (k % 3)))
        cy = int(h * 0.62)
        m = np.zeros((h, w), np.uint8)
        cv2.ellipse(m, (cx, cy), (max(6, w // (4 * (n + 1))), body_h // 2), 0, 0, 360, 1, -1)
        cv2.circle(m, (cx, cy - body_h // 2 - h // 30), max(4, h // 20), 1, -1)
        labels[m > 0] = k + 1
        colour = np.array([[200, 40, 40], [40, 40, 200], [230, 200, 30], [30, 160, 60]][k % 4], np.uint8)
        img[m > 0] = colour
    return img, labels


class SceneSegmenter:
    """A segmenter that returns the known figures of ``make_scene`` (registered as ``scene``)."""

    name: ClassVar[str] = "scene"
    needs_network: ClassVar[bool] = False

    def __init__(self, labels: np.ndarray | None = None, **_: object) -> None:
        self.labels = labels

    def segment(self, image: np.ndarray) -> object:
        from person_erase import Instances
        from person_erase.engineinfo import SegmentInfo

        labels = self.labels if self.labels is not None else _LAST_LABELS[image.shape[:2]]
        return Instances.from_label_map(labels, info=SegmentInfo(engine="scene"))


_LAST_LABELS: dict[tuple[int, int], np.ndarray] = {}


@pytest.fixture
def scene() -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(image, labels) with 3 figures; ``--segmenter scene`` finds exactly them (registered for this test only)."""
    from person_erase import register_segmenter
    from person_erase.segmenters import SEGMENTERS

    img, labels = make_scene(3)
    _LAST_LABELS[labels.shape] = labels
    register_segmenter("scene", lambda **kw: SceneSegmenter(**kw))
    try:
        yield img, labels
    finally:
        SEGMENTERS.pop("scene", None)
