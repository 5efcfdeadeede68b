"""Batch reading from and writing to S3 (a moto server on 127.0.0.1) through pyarrow's S3 filesystem.

Same engines as ``test_batch.py`` (``figures`` + ``telea``); the outputs on S3 must be the bytes the
same run writes to a local folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from person_erase import batch as B
from person_erase.errors import InputError
from person_erase.report import BatchSummary, ImageReport
from tests._s3 import S3Server, dummy_credentials
from tests.test_batch import _write_scene

pytest.importorskip("pyarrow.fs")
pytest.importorskip("moto.server")

PARAMS = B.BatchParams(segmenter="figures", eraser="telea")


@pytest.fixture(autouse=True)
def _fake_engines(fake_engines: None) -> None:
    """``figures`` and ``logged_telea`` registered for each test of this module (``conftest.fake_engines``)."""


@pytest.fixture(scope="module")
def s3():
    with S3Server() as server:
        yield server


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    for i in range(5):
        _write_scene(src / f"g{i % 2}" / f"p{i}.png", 1 + i % 3, 300 + i)
    (src / "notes.txt").write_text("not a photo")
    return src


def _comparable(report: dict) -> dict:
    drop = {"timings_ms"}
    return {k: v for k, v in report.items() if k not in drop}


def test_s3_in_s3_out_matches_a_local_run_and_resumes(s3: S3Server, photos: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    dummy_credentials(monkeypatch)
    s3.make_bucket("photos")
    s3.make_bucket("cleaned")
    rels = s3.upload_tree(photos, "photos", "set1")
    local = B.run_batch(photos, tmp_path / "local", params=PARAMS, workers=1)
    state = tmp_path / "state"
    s = B.run_batch(s3.uri("photos", "set1"), s3.uri("cleaned", "run"), params=PARAMS, workers=2, state_dir=state,
                    plugins=["tests._fake_engines_plugin"])
    assert (s.total, s.done, s.failed, s.non_images) == (5, 5, 0, 1)
    assert s.output_dir == "s3://cleaned/run" and "endpoint_override" not in (tmp_path / "state").as_posix()
    keys = s3.keys("cleaned", "run")
    images = [r for r in rels if r.endswith(".png")]
    assert keys == sorted([*images, *[r + ".json" for r in images], "summary.json"])  # no temporary key left
    for it in local.items:
        assert s3.read("cleaned", f"run/{it.input}") == (tmp_path / "local" / it.input).read_bytes(), it.input
        remote = json.loads(s3.read("cleaned", f"run/{it.input}.json"))
        mine = json.loads((tmp_path / "local" / f"{it.input}.json").read_text())
        assert _comparable(remote) == _comparable(mine)
        ImageReport.model_validate(remote)
    summary = BatchSummary.model_validate_json(s3.read("cleaned", "run/summary.json"))
    assert summary.done == 5
    # the journal stayed with the driver, and a resume skips by content hash
    assert (state / "journal.sqlite").is_file()
    again = B.run_batch(s3.uri("photos", "set1"), s3.uri("cleaned", "run"), params=PARAMS, workers=1,
                        state_dir=state, resume=True)
    assert (again.done, again.skipped) == (0, 5)
    # an output deleted behind the journal's back is not "done": it is made again
    s3.fs().delete_file("cleaned/run/g0/p0.png.json")
    third = B.run_batch(s3.uri("photos", "set1"), s3.uri("cleaned", "run"), params=PARAMS, workers=1,
                        state_dir=state, resume=True)
    assert (third.done, third.skipped) == (1, 4)
    assert s3.read("cleaned", "run/g0/p0.png") == (tmp_path / "local" / "g0/p0.png").read_bytes()


def test_local_in_s3_out_and_s3_manifest(
    s3: S3Server, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dummy_credentials(monkeypatch)
    s3.make_bucket("mixed")
    s3.upload_tree(photos, "mixed", "in")
    with s3.fs().open_output_stream("mixed/in/list.csv") as fh:
        fh.write(b'path,select\ng1/p1.png,0\ng0/p2.png,\n')
    s = B.run_batch(s3.uri("mixed", "in/list.csv"), tmp_path / "out", params=PARAMS, workers=1)
    assert s.done == 2 and (tmp_path / "out" / "g1/p1.png").is_file()
    rep = ImageReport.model_validate_json((tmp_path / "out" / "g1/p1.png.json").read_text())
    assert [r.index for r in rep.instances if r.selected] == [0]
    s2 = B.run_batch(photos, s3.uri("mixed", "out"), params=PARAMS, workers=1, state_dir=tmp_path / "st")
    assert s2.done == 5 and "g1/p3.png" in s3.keys("mixed", "out")


def test_bad_uris_are_one_clear_error(s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dummy_credentials(monkeypatch)
    with pytest.raises(InputError, match="no such folder"):
        B.run_batch(s3.uri("nobucket", "x"), tmp_path / "o", params=PARAMS, workers=1)
    with pytest.raises(InputError, match="cannot open this location"):
        B.run_batch("nope://x/y", tmp_path / "o", params=PARAMS, workers=1)
