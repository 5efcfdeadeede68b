"""``yolo-seg``: constant-output ONNX graphs with the Ultralytics -seg signature decode to known people.

The graphs' outputs encode known boxes, class scores and mask coefficients over known prototypes;
the decoded instances must equal the expected masks and boxes bit for bit (letterbox included).
Prototype steps are placed so that no photo pixel centre falls on a zero of the interpolated logit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")

import _onnx_graphs as graphs  # noqa: E402

from person_erase.errors import EngineError  # noqa: E402
from person_erase.segmenters import get_segmenter  # noqa: E402
from person_erase.segmenters.yolo_seg import YoloSegSegmenter, letterbox, letterbox_geometry  # noqa: E402

NM = 32


def _pred(anchors: list[dict], nc: int) -> np.ndarray:
    """(1, 4 + nc + NM, A): each anchor dict has box (cx, cy, w, h) input px, scores {class: s}, coef {proto: c}."""
    p = np.zeros((1, 4 + nc + NM, len(anchors)), np.float32)
    for a, anc in enumerate(anchors):
        p[0, :4, a] = anc["box"]
        for c, s in anc["scores"].items():
            p[0, 4 + c, a] = s
        for k, v in anc.get("coef", {0: 1.0}).items():
            p[0, 4 + nc + k, a] = v
    return p


def _protos(mh: int, mw: int) -> np.ndarray:
    pr = np.zeros((1, NM, mh, mw), np.float32)
    pr[0, 0] = 10.0  # everywhere inside the box
    pr[0, 1, :, : mw // 2] = 10.0  # the left half of the canvas
    pr[0, 1, :, mw // 2 :] = -10.0
    return pr


def _rect(h: int, w: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.fixture()
def wide_model(tmp_path: Path) -> Path:
    """64x64 input, 3 classes (person, bicycle, car), 16x16 prototypes; meant for a 320x160 photo.

    Letterbox of 320x160 on 64x64: r = 0.2, content 64x32 at rows 16..48, so photo = (input - (0, 16)) / 0.2.
    """
    anchors = [
        # 0: person, mask = its whole box -> photo [30, 130) x [30, 130)
        {"box": (16, 32, 20, 20), "scores": {0: 0.9}},
        # 1: person at the right frame edge (box leaves the canvas) -> photo x [270, 320), y [5, 155)
        {"box": (60, 32, 12, 30), "scores": {0: 0.8}},
        # 2: a car whose person score is 0.5: its best class is not person -> dropped
        {"box": (40, 30, 10, 10), "scores": {0: 0.5, 2: 0.95}},
        # 3: a near-duplicate of 0 with a lower score -> suppressed by NMS (IoU 0.95)
        {"box": (16.5, 32, 20, 20), "scores": {0: 0.85}},
        # 4: a person below the score threshold -> dropped
        {"box": (40, 40, 8, 8), "scores": {0: 0.2}},
        # 5: person whose mask is the left half of the canvas (photo x < 160) inside its box
        #    [100, 220) x [20, 140); logit +5 there, so person 0 (logit +10) keeps their overlap
        {"box": (32, 32, 24, 24), "scores": {0: 0.7}, "coef": {1: 0.5}},
    ]
    return graphs.yolo_seg(tmp_path / "wide-seg.onnx", _pred(anchors, nc=3), _protos(16, 16), in_hw=(64, 64))


def test_decodes_known_people_bit_for_bit_on_a_non_square_photo(wide_model: Path) -> None:
    seg = get_segmenter(f"yolo-seg:{wide_model}")
    h, w = 160, 320
    people = seg.segment(np.full((h, w, 3), 90, np.uint8))
    p0 = _rect(h, w, 30, 30, 130, 130)
    p5 = _rect(h, w, 100, 20, 160, 140) & ~p0
    p1 = _rect(h, w, 270, 5, 320, 155)
    assert len(people) == 3  # car dropped, duplicate suppressed, weak one dropped
    # numbered left to right by box centre: person 0 (80), person 5 (130), the edge person (295)
    for k, expected in enumerate([p0, p5, p1]):
        assert np.array_equal(people.masks[k], expected), k
    assert people.boxes.tolist() == [[30, 30, 130, 130], [100, 20, 160, 140], [270, 5, 320, 155]]
    assert np.allclose(people.scores, [0.9, 0.7, 0.8])
    assert people.info.engine == "yolo-seg"
    assert people.info.model.name == "wide-seg.onnx" and len(people.info.model.sha256) == 64
    assert not (people.masks.sum(axis=0) > 1).any()  # overlaps resolved


def test_letterbox_pads_top_and_bottom_with_grey(wide_model: Path) -> None:
    lb = letterbox_geometry(160, 320, 64, 64)
    assert (lb.r, lb.left, lb.top, lb.new_w, lb.new_h) == (0.2, 0, 16, 64, 32)
    img = np.zeros((160, 320, 3), np.uint8)
    img[:, :, 0] = 200
    canvas = letterbox(img, lb)
    assert canvas.shape == (64, 64, 3)
    assert (canvas[:16] == 114).all() and (canvas[48:] == 114).all()
    assert (canvas[16:48, :, 0] == 200).all() and (canvas[16:48, :, 1:] == 0).all()


def test_non_square_input_pads_left_and_right(tmp_path: Path) -> None:
    # input 64 (h) x 96 (w), prototypes 16 x 24; a 100x100 photo: r = 0.64, content 64x64 at columns 16..80
    anchors = [{"box": (48, 32, 32, 32), "scores": {0: 0.6}}]  # input x [32, 64) y [16, 48) -> photo [25, 75)^2
    path = graphs.yolo_seg(tmp_path / "tall.onnx", _pred(anchors, nc=80), _protos(16, 24), in_hw=(64, 96))
    seg = YoloSegSegmenter(path)
    assert seg.input_hw == (64, 96)
    people = seg.segment(np.zeros((100, 100, 3), np.uint8))
    assert len(people) == 1
    assert np.array_equal(people.masks[0], _rect(100, 100, 25, 25, 75, 75))
    assert people.boxes.tolist() == [[25, 25, 75, 75]]


def test_person_at_the_top_left_corner_is_clipped_to_the_photo(tmp_path: Path) -> None:
    # box (-4..12, 12..28) in input px on the 320x160 letterbox -> photo x [-20, 60) y [-20, 60) -> clipped
    anchors = [{"box": (4, 20, 16, 16), "scores": {0: 0.99}}]
    path = graphs.yolo_seg(tmp_path / "corner.onnx", _pred(anchors, nc=1), _protos(16, 16), in_hw=(64, 64))
    people = YoloSegSegmenter(path).segment(np.zeros((160, 320, 3), np.uint8))
    assert np.array_equal(people.masks[0], _rect(160, 320, 0, 0, 60, 60))


def test_no_person_gives_empty_instances(tmp_path: Path) -> None:
    anchors = [{"box": (30, 30, 10, 10), "scores": {1: 0.9}}]
    path = graphs.yolo_seg(tmp_path / "bikes.onnx", _pred(anchors, nc=2), _protos(16, 16))
    people = YoloSegSegmenter(path).segment(np.zeros((50, 70, 3), np.uint8))
    assert len(people) == 0 and people.shape == (50, 70)


def test_score_threshold_and_max_det(wide_model: Path) -> None:
    assert len(YoloSegSegmenter(wide_model, score_threshold=0.75).segment(np.zeros((160, 320, 3), np.uint8))) == 2
    assert len(YoloSegSegmenter(wide_model, max_detections=1).segment(np.zeros((160, 320, 3), np.uint8))) == 1


def test_wrong_output_shape_at_run_time_is_one_clear_error(tmp_path: Path) -> None:
    # declared [1, C, A] with symbolic dims would pass the contract; here C = 30 < 4 + 1 + 32
    pred = np.zeros((1, 30, 5), np.float32)
    path = graphs.yolo_seg(tmp_path / "short.onnx", pred, _protos(16, 16), symbolic_pred=True)
    seg = YoloSegSegmenter(path)  # the declared signature fits
    with pytest.raises(
        EngineError, match=r"returned predictions of shape \[1, 30, 5\]; the contract is \[1, 4 \+ classes \+ 32"
    ):
        seg.segment(np.zeros((40, 40, 3), np.uint8))
    # fixed dims that cannot hold a class score are refused when the engine is built
    fixed = graphs.yolo_seg(tmp_path / "short-fixed.onnx", pred, _protos(16, 16))
    with pytest.raises(EngineError, match="leave no class scores"):
        YoloSegSegmenter(fixed)


def test_other_families_are_refused_with_the_reason(tmp_path: Path) -> None:
    lama = graphs.lama(tmp_path / "lama.onnx")
    with pytest.raises(EngineError, match="not a yolo-seg model.*fits the lama contract"):
        get_segmenter(f"yolo-seg:{lama}")
    det = graphs.detector_only(tmp_path / "det.onnx")
    with pytest.raises(EngineError, match="detection-only"):
        get_segmenter(f"yolo-seg:{det}")
