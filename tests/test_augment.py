"""The augmented dev photos of ``benchmarks/augment.py`` (``bench_privacy.py --augment``) keep their
ground truth: every face point still lies on its person's mask, on the same pixel of the photo."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def augment():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import augment as mod
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return mod


@pytest.fixture
def item(astronaut, tmp_path) -> dict:
    """The astronaut (512 px) as a dev item: one person (her head and shoulders), five face points."""
    path = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(path)
    gt = np.zeros((1, *astronaut.shape[:2]), bool)
    gt[0, 30:300, 120:330] = True
    faces = [[(190.0, 110.0), (240.0, 110.0), (215.0, 140.0), (160.0, 120.0), (270.0, 120.0)]]
    return {"name": "set/astronaut", "path": path, "gt": gt, "faces": faces}


def test_every_kind_keeps_face_points_on_their_person(augment, item, astronaut):
    out = augment.augment([item] * 4)
    kinds = {a["name"].split("/")[0] for a in out}
    assert kinds == {f"aug-{k}" for k in augment.KINDS}
    for a in out:
        px, gt = a["pixels"], a["gt"]
        assert px.dtype == np.uint8 and px.shape[2] == 3 and gt.shape[1:] == px.shape[:2]
        assert len(a["faces"]) == len(gt)
        for g, pts in enumerate(a["faces"]):
            for x, y in pts or []:
                assert gt[g, int(round(y)), int(round(x))], (a["name"], x, y)
    rot = next(a for a in out if a["name"].startswith("aug-rot90"))
    h, w = astronaut.shape[:2]
    for (x, y), (rx, ry) in zip(item["faces"][0], rot["faces"][0], strict=True):
        assert (rx, ry) == (y, w - 1 - x) and (rot["pixels"][int(ry), int(rx)] == astronaut[int(y), int(x)]).all()
    cut = next(a for a in out if a["name"].startswith("aug-cut"))
    assert 0 < len(cut["faces"][0]) < 5 and cut["pixels"].size < astronaut.size  # the frame cuts through the face
    occ = next(a for a in out if a["name"].startswith("aug-occlude"))
    assert 0 < len(occ["faces"][0]) < 5 and not np.array_equal(occ["pixels"], astronaut)  # half of it covered
    small = next(a for a in out if a["name"].startswith("aug-small"))
    assert small["pixels"].shape[1] == 640 and len(small["gt"]) == 4  # four photos at half size
