"""What an engine did comes back with its result (typed), never on the engine."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import person_erase as pe
from person_erase.engineinfo import Erased, EraseInfo, SegmentInfo
from person_erase.erasers import ERASERS, TwoPhaseEraser
from person_erase.segmenters import SEGMENTERS, TwoPhaseSegmenter


def test_a_segmenters_result_carries_typed_info(scene, tmp_path):
    from PIL import Image

    img, labels = scene
    Image.fromarray(labels).save(tmp_path / "m.png")
    seg = pe.get_segmenter(f"labels:{tmp_path / 'm.png'}")
    people = seg.segment(img)
    assert isinstance(people.info, SegmentInfo)
    assert people.info.engine == "labels" and people.info.details["source"] == str(tmp_path / "m.png")
    assert not hasattr(people, "meta") and not [a for a in vars(seg) if a.startswith("last_")]
    # filtering and pickling keep it; it is frozen
    assert people[[0]].info is people.info and pickle.loads(pickle.dumps(people)).info == people.info
    with pytest.raises(AttributeError):
        people.info.engine = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        people.info.details["source"] = "x"  # type: ignore[index]
    with pytest.raises(pe.InputError, match="must be a person_erase.engineinfo.SegmentInfo, got dict"):
        pe.Instances.from_label_map(labels, info={"engine": "x"})  # type: ignore[arg-type]


def test_the_local_segmenter_reports_timings_and_detector_boxes_in_its_result():
    from skimage import data

    seg = pe.get_segmenter("local", quality="fast")
    people = seg.segment(data.astronaut())
    info = people.info
    assert info.engine == "local" and info.quality == "fast" and set(info.timings_ms) == {"detect_ms", "masks_ms"}
    assert info.detector_boxes is not None and info.detector_boxes.shape == (len(people), 4)
    assert not [a for a in vars(seg) if a.startswith("last_")]  # nothing about the call stays on the engine


def test_info_round_trips_through_json_for_the_cache():
    info = SegmentInfo(engine="dashscope", quality=None, timings_ms={"wait": 1.5}, task_ids=["t1"],
                       request_ids=["r1"], notes=["n"], model={"family": "yolo-seg", "name": "a.onnx", "size": 3,
                                                               "sha256": "0" * 64},
                       detector_boxes=np.ones((2, 4)), details={"adaptation": "as is", "obj": object()})
    back = SegmentInfo.from_dict(info.to_dict())
    assert back == SegmentInfo.from_dict({**info.to_dict(), "unknown_key_of_a_newer_version": 1})
    assert back.task_ids == ("t1",) and back.model is not None and back.model.name == "a.onnx"
    assert "obj" not in back.details and np.array_equal(back.detector_boxes, info.detector_boxes)


class _Reporting:
    """A plugin eraser that says what it did by returning ``Erased``."""

    name, kind, needs_network, crops, honours_keep_mask = "reporting", "inpaint", False, False, True

    def erase(self, image, erase, *, keep):
        out = image.copy()
        out[erase] = 0
        return Erased(out, EraseInfo(engine="reporting", task_ids=("task-1",), parameters={"level": 3}))


class _TwoPhase:
    """A cloud-like eraser: ``submit`` returns a task id, ``collect`` the image and what the task did."""

    name, kind, needs_network, crops, honours_keep_mask = "two-phase", "inpaint", True, False, True
    model = "fake-model"
    client = None

    def __init__(self) -> None:
        self.calls: list[str] = []

    def submit(self, image, erase, *, keep=None, on_intent=None, exclude=()):
        self.calls.append("submit")
        return "task-7"

    def collect(self, task_id, image, erase, *, keep=None):
        self.calls.append(f"collect {task_id}")
        out = image.copy()
        out[erase] = 255
        return Erased(out, EraseInfo(engine="two-phase", task_ids=(task_id,), timings_ms={"wait": 2.0},
                                     parameters={"fast_mode": False}))

    def erase(self, image, erase, *, keep=None):  # pragma: no cover - the pipeline uses the two phases
        raise AssertionError("the pipeline calls a two-phase eraser in its two phases")


def test_an_erasers_returned_info_reaches_the_report_and_a_plain_array_still_works(scene):
    img, labels = scene
    people = pe.Instances.from_label_map(labels)
    res = pe.erase(img, people, select=[0], eraser=_Reporting())
    assert res.report.cloud_task_ids == {"erase": ["task-1"]} and res.report.parameters["level"] == 3
    assert res.report.eraser == "reporting" and not (res.image != img)[~res.erase_mask].any()
    plain = pe.erase(img, people, select=[0], eraser="telea")  # returns an ndarray: nothing more to report
    assert plain.report.cloud_task_ids == {}


def test_a_two_phase_eraser_is_a_declared_protocol_and_the_pipeline_uses_its_phases(scene):
    img, labels = scene
    people = pe.Instances.from_label_map(labels)
    eng = _TwoPhase()
    assert isinstance(eng, TwoPhaseEraser) and ERASERS.describe(eng).two_phase
    assert not isinstance(pe.get_eraser("telea"), TwoPhaseEraser)
    res = pe.erase(img, people, select=[1], eraser=eng)
    assert eng.calls == ["submit", "collect task-7"]
    assert res.report.cloud_task_ids == {"erase": ["task-7"]} and res.report.parameters["fast_mode"] is False
    assert ERASERS.spec("dashscope").two_phase and SEGMENTERS.spec("dashscope").two_phase
    assert SEGMENTERS.describe(pe.get_segmenter("local")).two_phase is False
    assert not isinstance(pe.get_segmenter("local"), TwoPhaseSegmenter)
