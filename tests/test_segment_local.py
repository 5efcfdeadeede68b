"""LocalSegmenter (YOLOX-nano + MediaPipe) on real photos: astronaut, composed scenes, dev sets."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from person_erase.errors import InputError
from person_erase.instances import Instances
from person_erase.segmenters.local import LocalSegmenter

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="module")
def seg() -> LocalSegmenter:
    return LocalSegmenter()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


def _two_astronauts() -> np.ndarray:
    """The astronaut's upper body pasted twice, side by side, on a plain grey-blue wall."""
    person = data.astronaut()[:, 40:400]
    h, w = person.shape[:2]
    canvas = np.empty((h + 40, 2 * w + 120, 3), np.uint8)
    canvas[:] = (120, 130, 140)
    canvas[40:, 20 : 20 + w] = person
    canvas[40:, 100 + w : 100 + 2 * w] = person[:, ::-1]
    return canvas


def test_class_attributes():
    assert LocalSegmenter.name == "local"
    assert LocalSegmenter.needs_network is False


def test_astronaut_is_one_person(seg, astronaut):
    people = seg.segment(astronaut)
    assert isinstance(people, Instances)
    assert len(people) == 1
    m = people.masks[0]
    x0, y0, x1, y1 = people.boxes[0]
    assert not m[:, :x0].any() and not m[:, x1:].any() and not m[:y0].any() and not m[y1:].any()
    area = m.mean()
    assert 0.2 < area < 0.6, area  # she fills a good part of the frame, not all of it
    # her face (around x 160-240, y 60-160) and suit (x 100-300, y 300-500) are hers; the sky corner is not
    assert m[80:140, 170:230].mean() > 0.9
    assert m[320:480, 120:280].mean() > 0.8
    assert m[:60, 420:].mean() < 0.05
    assert people.info.engine == "local"
    assert np.all(people.scores > 0.25)


def test_input_is_not_modified(seg, astronaut):
    before = astronaut.copy()
    seg.segment(astronaut)
    assert np.array_equal(before, astronaut)


def test_two_people_numbered_left_to_right(seg):
    scene = _two_astronauts()
    people = seg.segment(scene)
    assert len(people) == 2
    assert people.index.tolist() == [0, 1]
    cx = (people.boxes[:, 0] + people.boxes[:, 2]) / 2
    half = scene.shape[1] / 2
    assert cx[0] < half < cx[1]
    # each person stays on their own half, and no pixel belongs to both
    assert people.masks[0][:, int(half) + 40 :].sum() == 0
    assert people.masks[1][:, : int(half) - 40].sum() == 0
    assert not (people.masks[0] & people.masks[1]).any()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: data.coffee(), id="coffee"),
        pytest.param(lambda: np.repeat(data.brick()[..., None], 3, axis=2), id="brick"),
        pytest.param(lambda: np.full((300, 400, 3), 200, np.uint8), id="flat"),
    ],
)
def test_empty_scenes_have_nobody(seg, make):
    assert len(seg.segment(make())) == 0


def test_reuse_gives_identical_output(astronaut):
    seg = LocalSegmenter()
    a = seg.segment(astronaut)
    seg.segment(_two_astronauts())
    b = seg.segment(astronaut)
    assert np.array_equal(a.masks, b.masks)
    assert np.array_equal(a.boxes, b.boxes)
    assert np.allclose(a.scores, b.scores)


def _three_astronauts() -> np.ndarray:
    """Three astronaut upper bodies, the middle one smaller and overlapping both neighbours' crops."""
    person = data.astronaut()[:, 40:400]
    small = person[::2, ::2]
    h, w = person.shape[:2]
    canvas = np.empty((h + 40, 2 * w + 200, 3), np.uint8)
    canvas[:] = (120, 130, 140)
    canvas[40:, 20 : 20 + w] = person
    canvas[40:, 180 + w : 180 + 2 * w] = person[:, ::-1]
    sh, sw = small.shape[:2]
    x = w + 100 - sw // 2
    canvas[40 + h - sh :, x : x + sw] = small
    return canvas


def test_mask_threads_do_not_change_the_result():
    scene = _three_astronauts()
    one = LocalSegmenter(threads=1).segment(scene)
    two = LocalSegmenter(threads=2).segment(scene)
    assert len(one) >= 2
    assert np.array_equal(one.masks, two.masks)
    assert np.array_equal(one.boxes, two.boxes)
    known = {"pose+selfie", "pose", "selfie", "selfie-square", "ellipse", "none"}
    assert set(two.info.details["mask_sources"]) <= known, two.info.details["mask_sources"]
    assert sum(two.info.details["mask_sources"].values()) == len(two)


@pytest.mark.parametrize("quality", ["fast", "best"])
def test_other_presets_find_the_astronaut(astronaut, quality):
    people = LocalSegmenter(quality).segment(astronaut)
    assert len(people) == 1
    assert people.info.quality == quality


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"quality": "ultra"}, "unknown quality"), ({"score_threshold": 1.5}, "score_threshold")],
)
def test_bad_options(kwargs, message):
    with pytest.raises(InputError, match=message):
        LocalSegmenter(**kwargs)


@pytest.mark.parametrize(
    "image",
    [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32), np.zeros((10, 10, 4), np.uint8)],
)
def test_bad_images(seg, image):
    with pytest.raises(InputError, match=r"\(H, W, 3\) uint8"):
        seg.segment(image)


def test_registry_builds_local():
    from person_erase.segmenters import get_segmenter

    seg = get_segmenter("local", quality="fast")
    assert isinstance(seg, LocalSegmenter) and seg.quality == "fast"


# --- dev sets (skipped when ../shared/data is absent) ---------------------------------------------


def _devset_score(name: str, seg: LocalSegmenter) -> dict:
    if not (DATA / name / "manifest.json").is_file():
        pytest.skip(f"dev set {DATA / name} not available")
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from devset import Score, load_samples
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    score = Score()
    for sample in load_samples(DATA / name):
        score.add(sample, np.asarray(seg.segment(sample.image).masks))
    return score.summary()


@pytest.mark.devset
@pytest.mark.slow
def test_penn_fudan_recall_and_iou(seg):
    s = _devset_score("persons", seg)
    # balanced measured 0.98 recall (49/50), 0.850 mean IoU, 0.96 coverage; floors sit a little below
    assert s["recall"] >= 0.94, s
    assert s["mean_matched_iou"] >= 0.835, s
    assert s["coverage_share"] >= 0.92, s


@pytest.mark.devset
@pytest.mark.slow
def test_coco_dev_recall_and_iou(seg):
    s = _devset_score("coco-persons-dev", seg)
    # balanced measured 0.657 recall (69/105; small 0.52, medium 0.625, large 0.90), 0.735 mean IoU
    assert s["recall"] >= 0.63, s
    assert s["recall_by_size"]["large"] >= 0.87, s
    assert s["recall_by_size"]["small"] >= 0.46, s
    assert s["mean_matched_iou"] >= 0.72, s
