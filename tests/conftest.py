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


class SceneSegmenter:
    """A segmenter that returns the known figures of ``_imagefactory.make_scene`` (registered as ``scene``)."""

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
def fake_engines() -> Iterator[None]:
    """The fake batch engines (``figures``, ``logged_telea``: ``tests/_fake_engines_plugin.py``) in the
    registries for this test only: afterwards both registries are as they were (whatever the test
    registered, through ``--plugin`` too, is gone), so no test depends on which ran before it."""
    from person_erase.erasers import ERASERS
    from person_erase.segmenters import SEGMENTERS

    saved = [(reg, dict(reg)) for reg in (SEGMENTERS, ERASERS)]
    import tests._fake_engines_plugin as plugin  # registers them when first imported (it is a plugin) ...

    plugin.register()  # ... and again here when an earlier test took them out
    try:
        yield
    finally:
        for reg, before in saved:
            for name in [n for n in reg if n not in before]:
                del reg[name]
            reg.update(before)


@pytest.fixture
def scene() -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(image, labels) with 3 figures; ``--segmenter scene`` finds exactly them (registered for this test only)."""
    from _imagefactory import make_scene

    from person_erase import register_segmenter
    from person_erase.segmenters import SEGMENTERS

    img, labels = make_scene(3)
    _LAST_LABELS[labels.shape] = labels
    register_segmenter("scene", lambda **kw: SceneSegmenter(**kw))
    try:
        yield img, labels
    finally:
        SEGMENTERS.pop("scene", None)
