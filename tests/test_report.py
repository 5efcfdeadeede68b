"""Reports: one builder of instance rows for the pipeline's report and ``person-erase segment``."""

from __future__ import annotations

import json

import pytest

import person_erase as pe
from person_erase.cli import main
from person_erase.report import ImageReport, instance_rows


def test_instance_rows_with_and_without_a_selection(scene):
    img, labels = scene
    people = pe.Instances.from_label_map(labels)
    plain = instance_rows(people)
    assert [r.index for r in plain] == [0, 1, 2] and not any(r.selected or r.kept or r.reason for r in plain)
    assert all(r.area_px == int(people.areas[k]) and r.box == [int(v) for v in people.boxes[k]]
               for k, r in enumerate(plain))
    sel = pe.select_people(people, select=[1])
    rows = instance_rows(people, sel)
    assert [(r.selected, r.kept) for r in rows] == [(False, True), (True, False), (False, True)]
    assert rows[1].reason == "erased: selected"


def test_segment_json_and_the_erase_report_share_the_rows(scene, tmp_path, capsys):
    img, labels = scene
    from PIL import Image as PILImage

    p = tmp_path / "s.png"
    PILImage.fromarray(img).save(p)
    assert main(["-q", "segment", str(p), "--engine", "scene", "--json", "--no-files", "--policy", "largest:1"]) == 0
    seg_rows = json.loads(capsys.readouterr().out)["people"]
    res = pe.erase(img, segmenter="scene", eraser="telea", policy="largest:1")
    rep_rows = [r.model_dump(include={"index", "score", "box", "area_px", "area_pct", "selected", "reason"})
                for r in res.report.instances]
    assert seg_rows == rep_rows
    again = ImageReport.model_validate_json(res.report.to_json())
    assert again.instances == res.report.instances


def test_the_report_is_built_once_saving_makes_a_new_one(scene, tmp_path):
    import pydantic

    from person_erase.report import finish_report

    img, labels = scene
    res = pe.erase(img, pe.Instances.from_label_map(labels), select=[0], eraser="telea")
    before = res.report
    with pytest.raises(pydantic.ValidationError):
        before.output = "x"  # frozen: nobody patches a built report
    frozen_json = before.to_json()
    out = res.save(tmp_path / "out.png", metadata="strip-all")
    assert before.to_json() == frozen_json and before.output is None  # the report taken before is unchanged
    assert res.report is not before and res.report.output == str(out) and res.report.metadata_policy == "strip-all"
    batch = finish_report(before, output="a/b.png", metadata_policy="keep", timings_ms={"segment": 1.0},
                          parameters={"segment_cache": "hit"})
    assert (batch.output, batch.timings_ms, batch.parameters["segment_cache"]) == ("a/b.png", {"segment": 1.0}, "hit")
    assert before.to_json() == frozen_json and "segment_cache" not in before.parameters
