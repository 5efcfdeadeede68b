"""The person net of ``redact``: a second, recall-first look for people the segmentation missed.

Scenes are composed from scikit-image photos: the astronaut (her suit and the flag) pasted 44 px tall
onto the rocket photo, where the default local segmentation (416 / 832 px, score 0.25) does not find
her and the net's 2x view does; a second astronaut, 240 px tall, is the photo's subject.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from _imagefactory import paste_person

import person_erase as pe
from person_erase.person_net import COVERED, plan_people


@pytest.fixture(scope="module")
def scene() -> dict:
    from skimage import data

    she = np.ascontiguousarray(data.astronaut()[20:512, 60:460])
    img = np.ascontiguousarray(cv2.resize(data.rocket(), (480, 360), interpolation=cv2.INTER_AREA))
    subject = paste_person(img, she, x=30, y=120, height=240)
    small = paste_person(img, she, x=360, y=200, height=44)
    people = pe.segment(img)  # the real default segmentation
    return {"img": img, "people": people, "subject": subject, "small": small}


def _on(box: tuple[int, int, int, int], other) -> bool:
    x0, y0, x1, y1 = box
    cx, cy = (other[0] + other[2]) / 2, (other[1] + other[3]) / 2
    return x0 <= cx <= x1 and y0 <= cy <= y1


def test_the_default_segmentation_misses_the_small_person(scene):
    assert len(scene["people"]) == 1 and _on(scene["subject"], scene["people"].boxes[0])


def test_person_net_hides_a_person_the_segmentation_missed(scene):
    img, people = scene["img"], scene["people"]
    x0, y0, x1, y1 = scene["small"]
    off = pe.redact(img, people, person_net=False)
    assert np.array_equal(off.image[y0:y1, x0:x1], img[y0:y1, x0:x1])  # she stays visible
    on = pe.redact(img, people)  # person_net=True by default
    assert on.erase_mask[y0:y1, x0:x1].all()  # all of her, in her grown box (she is under box_below)
    assert (on.image[y0:y1, x0:x1] != img[y0:y1, x0:x1]).any(axis=2).mean() > 0.9
    assert np.array_equal(on.image[~on.erase_mask], img[~on.erase_mask])
    assert on.report.outside_mask_changed_px == 0
    new = [a for a in on.report.people_added if a.person is None]
    assert len(new) == 1 and _on(scene["small"], new[0].box) and new[0].score >= 0.07 and new[0].new_px > 0
    assert on.report.parameters["person_net"] is True and "person_net" in on.report.timings_ms
    assert off.report.parameters["person_net"] is False and off.report.people_added == []
    # what was added is the net's region only: the segmented subject is redacted as before
    assert off.erase_mask[on.erase_mask & ~off.erase_mask].sum() == 0 and (off.erase_mask <= on.erase_mask).all()
    doc = json.loads(on.report.to_json())
    assert set(doc["people_added"][0]) == {"box", "score", "new_px", "person"}


def test_person_net_never_touches_a_kept_subject(scene):
    img, people = scene["img"], scene["people"]
    res = pe.redact(img, people, policy="passersby")
    assert res.selection.keep == (int(people.index[0]),)  # the big astronaut is the subject
    x0, y0, x1, y1 = scene["small"]
    assert res.erase_mask[y0:y1, x0:x1].all()  # the passer-by nobody segmented is hidden
    sx0, sy0, sx1, sy1 = scene["subject"]
    assert not res.erase_mask[sy0:sy1, sx0:sx1].any()  # nothing on or around the subject
    assert np.array_equal(res.image[sy0:sy1, sx0:sx1], img[sy0:sy1, sx0:sx1])
    assert all(not _on(scene["subject"], a.box) for a in res.report.people_added)


def test_person_net_only_where_the_choice_means_everyone_not_kept(scene):
    img, people = scene["img"], scene["people"]
    x0, y0, x1, y1 = scene["small"]
    for how in ({"select": [0]}, {"policy": "largest:1"}, {"target": "faces"}):
        res = pe.redact(img, people, **how)
        assert res.report.people_added == [] and not res.erase_mask[y0:y1, x0:x1].any(), how
    res = pe.redact(img, people, keep=[0])
    assert res.erase_mask[y0:y1, x0:x1].all() and len(res.report.people_added) == 1


def test_plan_people_rules_on_given_boxes():
    h, w = 200, 300
    pixels = np.zeros((h, w, 3), np.uint8)
    labels = np.zeros((h, w), np.uint8)
    labels[40:160, 20:70] = 1  # a kept person (row 0)
    people = pe.Instances.from_label_map(labels)
    keep = labels == 1
    region = np.zeros((h, w), bool)
    region[100:140, 200:260] = True  # someone already hidden
    boxes = np.array([
        [205, 102, 255, 138],  # inside the region: already hidden
        [25, 50, 65, 150],  # the kept person again (a box on their mask)
        [22, 42, 68, 100],  # the kept person's upper half: inside their box
        [140, 20, 160, 60],  # someone new, 40 px tall: covered by the box grown by the radius
    ], np.float32)
    plan = plan_people(pixels, people, np.zeros(1, bool), region, keep, radius=5, margin=0.05, box_below=96,
                       boxes=boxes, scores=np.array([0.9, 0.5, 0.3, 0.08], np.float32))
    assert [a["box"] for a in plan.added] == [[140, 20, 160, 60]] and plan.added[0]["person"] is None
    assert plan.region[15:65, 135:165].all() and plan.region.sum() == 50 * 30
    assert region[100:140, 200:260].mean() >= COVERED and plan.boxes == 4


def test_cli_no_person_net(scene, tmp_path, capsys):
    from PIL import Image as PILImage

    from person_erase.cli import main

    img, people = scene["img"], scene["people"]
    src, lp = tmp_path / "scene.png", tmp_path / "scene.labels.png"
    PILImage.fromarray(img).save(src)
    PILImage.fromarray(people.to_label_map().astype(np.uint8)).save(lp)
    x0, y0, x1, y1 = scene["small"]
    outs = {}
    for name, extra in {"on": [], "off": ["--no-person-net"]}.items():
        out, rep = tmp_path / f"{name}.png", tmp_path / f"{name}.json"
        assert main(["-q", "redact", str(src), "-o", str(out), "--segmenter", f"labels:{lp}", "--no-face-net",
                     "--report", str(rep), *extra]) == 0
        outs[name] = (np.asarray(PILImage.open(out).convert("RGB")), json.loads(rep.read_text()),
                      capsys.readouterr().out)
    on, rep_on, said_on = outs["on"]
    off, rep_off, said_off = outs["off"]
    assert "+1 person the segmentation missed" in said_on and "missed" not in said_off
    assert [a["person"] for a in rep_on["people_added"]].count(None) == 1 and rep_on["parameters"]["person_net"]
    assert rep_off["people_added"] == [] and rep_off["parameters"]["person_net"] is False
    assert (on[y0:y1, x0:x1] != img[y0:y1, x0:x1]).any() and np.array_equal(off[y0:y1, x0:x1], img[y0:y1, x0:x1])


def test_masks_for_boxes_are_the_segmenters_masks(scene):
    from person_erase.segmenters.local import LocalSegmenter

    seg = LocalSegmenter()
    img = scene["img"]
    boxes, scores = seg.detect(img)
    masks = seg.masks_for_boxes(img, boxes)
    people = seg.segment(img)
    assert masks.shape == (len(boxes), *img.shape[:2]) and np.array_equal(scores, people.scores)
    assert np.array_equal(masks.any(axis=0), people.masks.any(axis=0))


def test_batch_params_carry_person_net():
    from person_erase.batch.params import BatchParams

    on = BatchParams(mode="redact").for_item().to_json()
    off = BatchParams(mode="redact", person_net=False).for_item()
    assert "person_net" not in on and off.person_net is False and off.to_json()["person_net"] is False
    with pytest.raises(pe.InputError, match="person_net"):
        BatchParams(mode="erase", person_net=False)
