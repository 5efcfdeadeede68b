"""End-to-end through the public API on composed scenes (known people) and a real photo."""

import json

import numpy as np
import pytest

import person_erase as pe
from person_erase.errors import InputError, SelectionError


def test_erase_selected_people_only_changes_their_mask(scene):
    img, labels = scene
    people = pe.Instances.from_label_map(labels)
    res = pe.erase(img, people, select=[0, 2], eraser="telea")
    assert res.report.outside_mask_changed_px == 0
    assert np.array_equal(res.image[~res.erase_mask], img[~res.erase_mask])
    # person 1 is kept whole and untouched
    assert res.keep_mask[labels == 2].all()
    assert np.array_equal(res.image[labels == 2], img[labels == 2])
    assert not (res.erase_mask & res.keep_mask).any()
    rows = {r.index: r for r in res.report.instances}
    assert rows[0].selected and rows[2].selected and rows[1].kept
    # the erased figures' flat colours are gone
    for k in (1, 3):
        assert np.abs(res.image[labels == k].astype(int) - img[labels == k].astype(int)).mean() > 30


@pytest.mark.parametrize("eraser", ["patchmatch", "telea", "blur", "pixelate", "solid"])
def test_every_eraser_keeps_outside_pixels_byte_identical(scene, eraser):
    img, labels = scene
    people = pe.Instances.from_label_map(labels)
    fn = pe.redact if eraser in ("blur", "pixelate", "solid") else pe.erase
    kw = {"style": eraser} if fn is pe.redact else {"eraser": eraser}
    res = fn(img, people, keep=[1], **kw)
    assert res.report.outside_mask_changed_px == 0
    assert np.array_equal(res.image[~res.erase_mask], img[~res.erase_mask])
    assert res.erase_mask[labels == 1].all() and res.erase_mask[labels == 3].all()
    assert not res.image.flags.writeable


def test_keep_list_policy_and_report_json(scene, tmp_path):
    img, labels = scene
    people = pe.Instances.from_label_map(labels)
    res = pe.erase(img, people, policy="largest:1", eraser="telea", dilate=4)
    assert res.selection.erase == (2,)  # the figures grow with k; #2 is the largest
    data = json.loads(res.report.to_json())
    assert data["parameters"]["dilate_px"] == 4
    assert data["erase_area_px"] == int(res.erase_mask.sum()) > 0
    assert set(data["timings_ms"]) >= {"load", "select", "masks", "erase"}
    out = res.save(tmp_path / "out.png")
    back = pe.load_image(out).pixels
    assert np.array_equal(back, res.image)
    em, km = res.save_masks(tmp_path / "m", stem="scene")
    assert set(np.unique(pe.load_image(em).pixels)) <= {0, 255}


def test_bad_selection_and_size_mismatch(scene):
    img, labels = scene
    people = pe.Instances.from_label_map(labels)
    with pytest.raises(SelectionError, match="valid person numbers are 0..2"):
        pe.erase(img, people, select=[3], eraser="telea")
    with pytest.raises(InputError, match="the instances are 360x240 but the photo is 100x50"):
        pe.erase(np.zeros((50, 100, 3), np.uint8), people, eraser="telea")
    with pytest.raises(SelectionError, match="choose one of: blur, pixelate, solid"):
        pe.redact(img, people, style="swirl")


def test_no_people_leaves_the_photo_unchanged(scene):
    img, _ = scene
    res = pe.erase(img, pe.Instances.empty(*img.shape[:2]), eraser="telea")
    assert np.array_equal(res.image, img) and res.report.notes


def test_local_astronaut_end_to_end(astronaut):
    people = pe.segment(astronaut)
    assert len(people) == 1
    res = pe.erase(astronaut, people, eraser="telea")
    assert res.report.outside_mask_changed_px == 0
    assert res.erase_mask.mean() > 0.15  # she fills a good part of the frame
    assert (res.report.segmenter, res.report.eraser) == ("local", "telea")  # the engine that found her, not "given"


def test_notebook_pictures_of_a_big_photo_are_previews():
    # a notebook displays _repr_png_; at 3000 px a full-size before|after would be tens of MB
    import io

    import cv2
    from PIL import Image

    from person_erase.overlay import PREVIEW_MAX_SIDE

    h, w = 2000, 3000
    img = np.full((h, w, 3), 120, np.uint8)
    labels = np.zeros((h, w), np.uint8)
    cv2.ellipse(labels, (1500, 1000), (200, 700), 0, 0, 360, 1, -1)
    img[labels == 1] = (200, 40, 40)
    people = pe.Instances.from_label_map(labels)
    res = pe.redact(img, people, style="solid")
    assert res.before_after().shape[1] > 2 * w  # the array stays full size
    for obj in (res, people):
        shown = Image.open(io.BytesIO(obj._repr_png_()))
        assert max(shown.size) == PREVIEW_MAX_SIDE
    small = pe.Instances.from_label_map(labels[::4, ::4])
    assert Image.open(io.BytesIO(small._repr_png_())).size == (w // 4, h // 4)  # small ones are not enlarged
