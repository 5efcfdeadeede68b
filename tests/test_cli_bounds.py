"""Hostile inputs through the real CLI (subprocess): bounded memory and time, one clean line.

Issue 18: a label map of noise, a FIFO given as the label map, absurd detector thresholds and bad
settings must each end as one ``error:`` line, non-zero, with no output file — not an OOM kill, a
hang or a traceback.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import person_erase

ROOT = Path(person_erase.__file__).resolve().parents[1]  # the subprocess runs the package these tests import


def _cli(args: list[str], *, timeout: float = 120, mem_bytes: int | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    def limit() -> None:  # an address-space cap: a regression fails with MemoryError, not the machine's OOM killer
        if mem_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))

    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "person_erase", "-q", *args], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=limit, env=full_env, cwd=full_env.get("TMPDIR", "/tmp"))


def _error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    return lines[0]


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    p = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (414, 455, 3), dtype=np.uint8)).save(p)
    return p


def test_label_map_of_16bit_noise_is_one_line_not_an_oom(tmp_path, photo):
    noise = tmp_path / "n16.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 65536, (414, 455)).astype(np.uint16)).save(noise)
    out = tmp_path / "out.png"
    proc = _cli(["erase", str(photo), "-o", str(out), "--segmenter", f"labels:{noise}", "--eraser", "telea"],
                mem_bytes=3 * 2**30)
    line = _error_line(proc)
    assert "labels" in line and "max_instances=1,000" in line
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["n16.png", "photo.png"]


def test_fifo_as_label_map_is_refused_not_waited_on(tmp_path, photo):
    fifo = tmp_path / "labels.png"
    os.mkfifo(fifo)
    out = tmp_path / "out.png"
    proc = _cli(["erase", str(photo), "-o", str(out), "--segmenter", f"labels:{fifo}"], timeout=60)
    line = _error_line(proc)
    assert "not a regular file" in line and str(fifo) in line
    assert not out.exists()


# --- detections (issue 18 item 2) -----------------------------------------------------------------


@pytest.fixture(scope="module")
def astronaut_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from skimage import data

    p = tmp_path_factory.mktemp("astro") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(p)
    return p


@pytest.mark.parametrize(("flags", "fragment"), [
    (["--min-score", "1e-30"], "--min-score, the detector confidence, must be in [0.01, 1), got 1e-30"),
    (["--min-score", "nan"], "must be in [0.01, 1), got nan"),
    (["--min-score", "1"], "must be in [0.01, 1), got 1.0"),
    (["--max-people", "0"], "--max-people, the most people per photo, must be a whole number in 1..1000, got 0"),
    (["--max-people", "5000"], "must be a whole number in 1..1000, got 5000"),
])
def test_absurd_detector_settings_are_refused_before_work(astronaut_png, tmp_path, flags, fragment):
    out = tmp_path / "out.png"
    proc = _cli(["erase", str(astronaut_png), "-o", str(out), *flags], timeout=60)
    assert fragment in _error_line(proc)
    assert not out.exists()


def test_detections_are_capped_and_the_cap_is_reported(astronaut_png):
    import json

    # at the lowest allowed threshold YOLOX finds ~10 boxes on the one-person astronaut
    proc = _cli(["segment", str(astronaut_png), "--min-score", "0.01", "--max-people", "3", "--no-files", "--json"])
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert len(doc["people"]) == 3
    assert any("more than 3 people; the 3 highest-scoring were kept" in n for n in doc["notes"])
    assert max(r["score"] for r in doc["people"]) > 0.9  # the astronaut herself is among the kept


@pytest.mark.parametrize(("kwargs", "fragment"), [
    (dict(score_threshold=1e-30), "`score_threshold`, the detector confidence, must be in [0.01, 1)"),
    (dict(score_threshold="0.5"), "`score_threshold` must be a number, got '0.5'"),
    (dict(nms_iou=0.0), "`nms_iou` must be in (0, 1], got 0.0"),
    (dict(max_detections=2.5), "`max_detections`, the most people per photo, must be a whole number in 1..1000"),
    (dict(max_detections=True), "must be a whole number in 1..1000, got True"),
])
def test_local_segmenter_options_name_the_parameter(kwargs, fragment):
    from person_erase.errors import InputError
    from person_erase.segmenters.local import LocalSegmenter

    with pytest.raises(InputError) as info:
        LocalSegmenter(**kwargs)
    assert fragment in str(info.value) and info.value.param == next(iter(kwargs))


# --- settings (issue 18 item 16) ------------------------------------------------------------------


@pytest.mark.parametrize("command", ["erase", "redact", "segment", "batch"])
@pytest.mark.parametrize(("env", "fragment"), [
    ({"PERSON_ERASE_MAX_PIXELS": "-1"}, "PERSON_ERASE_MAX_PIXELS must be a whole number of pixels >= 1"),
    ({"PERSON_ERASE_DILATE_PX": "4"}, "PERSON_ERASE_DILATE_PX is not a setting"),
    ({"PERSON_ERASE_CLOUD_TIMEOUT_S": "inf"}, "PERSON_ERASE_CLOUD_TIMEOUT_S must be a finite number"),
])
def test_every_command_refuses_a_bad_setting_in_one_line(tmp_path, photo, command, env, fragment):
    out = tmp_path / ("out" if command == "batch" else "out.png")
    args = {"erase": ["erase", str(photo), "-o", str(out), "--eraser", "telea"],
            "redact": ["redact", str(photo), "-o", str(out)],
            "segment": ["segment", str(photo), "--out-dir", str(out)],
            "batch": ["batch", str(tmp_path), "-o", str(out), "--eraser", "telea"]}[command]
    line = _error_line(_cli(args, env=env, timeout=60))
    assert line.startswith("error: bad setting in the environment: ") and fragment in line
    assert not out.exists()


def test_max_pixels_in_scientific_notation_is_used(tmp_path, photo):
    out = tmp_path / "out.png"
    line = _error_line(_cli(["erase", str(photo), "-o", str(out), "--segmenter", "local"],
                            env={"PERSON_ERASE_MAX_PIXELS": "1e5"}))  # the photo is 455x414 = 188,370 px
    assert "over the 0.1 MP limit" in line and "PERSON_ERASE_MAX_PIXELS" in line
    assert not out.exists()


@pytest.mark.parametrize(("flags", "fragment"), [
    (["--max-people", "0"], "--max-people, the most people per photo, must be a whole number in 1..1000"),
    (["--min-score", "1e-30"], "--min-score, the detector confidence, must be in [0.01, 1)"),
])
def test_batch_checks_segmenter_options_before_any_image(tmp_path, photo, flags, fragment):
    out = tmp_path / "out"
    line = _error_line(_cli(["batch", str(tmp_path), "-o", str(out), "--eraser", "telea", *flags], timeout=60))
    assert fragment in line
    assert not out.exists()


def test_batch_refuses_a_fifo_label_map_before_any_image(tmp_path, photo):
    fifo = tmp_path / "labels.png"
    os.mkfifo(fifo)
    src = tmp_path / "src"
    src.mkdir()
    photo.rename(src / photo.name)
    out = tmp_path / "out"
    line = _error_line(_cli(["batch", str(src), "-o", str(out), "--segmenter", f"labels:{fifo}", "--eraser", "telea"],
                            timeout=60))
    assert "not a regular file" in line and not out.exists()
