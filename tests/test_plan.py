"""Plan: one run checked before any engine runs (a bad value never costs a segmentation)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import person_erase as pe
from person_erase.plan import Plan
from person_erase.segmenters import SEGMENTERS


class _Counting:
    """Counts how often it is asked to segment (it must not be, when the plan is bad)."""

    name = "counting"
    needs_network = False
    calls = 0

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels

    def segment(self, image: np.ndarray) -> pe.Instances:
        type(self).calls += 1
        return pe.Instances.from_label_map(self.labels)


@pytest.fixture
def counting(scene):
    img, labels = scene
    _Counting.calls = 0
    pe.register_segmenter("counting", lambda **kw: _Counting(labels, **kw))
    try:
        yield img
    finally:
        SEGMENTERS.pop("counting", None)


@pytest.mark.parametrize("call, error, fragment", [
    (lambda img: pe.erase(img, segmenter="counting", dilate=-1), pe.InputError, "`dilate` must be >= 0"),
    (lambda img: pe.erase(img, segmenter="counting", dilate=10 ** 6), pe.InputError, "longest side"),
    (lambda img: pe.erase(img, segmenter="counting", select=[0], keep=[1]), pe.SelectionError, "only one of"),
    (lambda img: pe.erase(img, segmenter="counting", policy="nobody"), pe.SelectionError, "unknown policy"),
    (lambda img: pe.erase(img, segmenter="counting", eraser="sponge"), pe.EngineError, "unknown eraser"),
    (lambda img: pe.erase(img, segmenter="counting", eraser="telea", dilat=3), pe.InputError, "no option `dilat`"),
    (lambda img: pe.erase(img, segmenter="counting", verify="nope"), pe.EngineError, "unknown segmenter 'nope'"),
    (lambda img: pe.redact(img, segmenter="counting", margin=float("inf")), pe.InputError, "`margin`"),
    (lambda img: pe.redact(img, segmenter="counting", box_below=-1), pe.InputError, "`box_below`"),
    (lambda img: pe.redact(img, segmenter="counting", target="feet"), pe.SelectionError, "unknown target"),
    (lambda img: pe.redact(img, segmenter="counting", style="solid", strength=0.2), pe.InputError,
     "no option `strength`"),
])
def test_a_bad_run_fails_before_anyone_is_looked_for(counting, call, error, fragment):
    with pytest.raises(error, match=fragment):
        call(counting)
    assert _Counting.calls == 0


def test_a_good_plan_runs_and_is_frozen(counting):
    res = pe.erase(counting, segmenter="counting", eraser="telea", select="0,2", dilate=4)
    assert _Counting.calls == 1 and res.selection.erase == (0, 2) and res.report.parameters["dilate_px"] == 4
    plan = Plan.build("erase", eraser="telea", select="0,2")
    assert plan.select == (0, 2) and plan.keep is None and plan.eraser_spec is not None
    assert plan.eraser_spec.name == "telea" and plan.segmenter_spec is SEGMENTERS.spec("local")
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.dilate = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        plan.eraser_options["radius"] = 3  # type: ignore[index]


def test_dilate_for_resolves_the_default_per_mode_and_checks_the_size():
    from person_erase import masks

    assert Plan.build("erase", eraser="telea").dilate_for(480, 640) == masks.default_dilate(480, 640)
    assert Plan.build("redact", eraser="blur").dilate_for(480, 640) == masks.default_redact_dilate(480, 640)
    assert Plan.build("erase", eraser="telea", dilate=640).dilate_for(480, 640) == 640
    with pytest.raises(pe.InputError, match=r"`dilate=641` px is more than the photo's longest side \(640 px\)"):
        Plan.build("erase", eraser="telea", dilate=641).dilate_for(480, 640)
    with pytest.raises(pe.SelectionError, match="redact needs a redaction style"):
        Plan.build("redact", eraser="telea")


def test_verify_lives_in_its_own_module():
    from person_erase import verify

    assert pe.verify_removal is verify.verify_removal and callable(verify.faces_left)
