# ruff: noqa: F811
"""End to end over the cloud path: DashScope segmenter + DashScope eraser, the real SDK over real HTTP.

Through the public API against the bundled server as users run it (the real local engines: local segmenter,
PatchMatch); through the CLI in a subprocess against the server with the tests' quick backends (blob
segmenter, Telea) and its result URLs on DashScope's result host pinned to 127.0.0.1 (what the CLI is
tested for is the command, its environment and its output, not the engines again)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _imagefactory import make_scene
from cloud_server import FAST, TEST_KEY, _module_fake, fake_cloud  # noqa: F401
from PIL import Image as PILImage

import person_erase as pe
from person_erase.cloud import ERASE_MODEL, SEGMENT_MODEL
from person_erase.fakecloud import FakeDashScope

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def _real_fake():
    """The server with its default backends (the local segmenter and PatchMatch), as users run it; one for
    the module, so its engines are loaded once."""
    with FakeDashScope(latency_seg=0.05, latency_erase=0.05) as fake:
        yield fake


@pytest.fixture
def real_fake(_real_fake, monkeypatch):
    """The module's server, reset, with the environment pointing at it."""
    _real_fake.reset()
    monkeypatch.setenv("DASHSCOPE_API_KEY", TEST_KEY)
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", _real_fake.base_url)
    yield _real_fake
    _real_fake.reset()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


@pytest.mark.slow
def test_api_cloud_path_end_to_end(real_fake, astronaut):
    people = pe.segment(astronaut, engine="dashscope", **FAST)
    assert len(people) >= 1 and people.shape == astronaut.shape[:2]
    result = pe.erase(astronaut, people, select=[0], eraser="dashscope", **FAST)
    out = np.asarray(result.image)
    changed = (out != astronaut).any(axis=2)
    assert changed.any()
    assert not changed[~result.erase_mask].any()  # differs from the input only inside the erase mask
    assert result.report.outside_mask_changed_px == 0
    stats = real_fake.stats()
    assert stats["submitted"] == {SEGMENT_MODEL: 1, ERASE_MODEL: 1}  # exactly one task per model
    assert stats["last_parameters"][ERASE_MODEL] == {"dilate_flag": True, "fast_mode": False, "add_watermark": False}
    ids = result.report.cloud_task_ids
    assert ids.get("segment") and ids.get("erase")


@pytest.mark.slow
def test_cli_cloud_path_end_to_end(fake_cloud, tmp_path):
    scene = make_scene(size=(512, 640), people=[(0.25, 0.55, 0.6), (0.7, 0.5, 0.5)], noise=0)[0]
    photo = tmp_path / "photo.png"
    PILImage.fromarray(scene).save(photo)
    out, masks = tmp_path / "out.png", tmp_path / "masks"
    env = {
        **os.environ,  # DASHSCOPE_API_KEY, DASHSCOPE_HTTP_BASE_URL and the result-host pin from fake_cloud
        "PERSON_ERASE_CLOUD_POLL_S": "0.02",  # the first poll comes before the task is done: not 1 s later
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "person_erase", "erase", str(photo), "-o", str(out), "--segmenter", "dashscope",
         "--eraser", "dashscope", "--select", "0", "--masks-dir", str(masks)],
        capture_output=True, env=env, cwd=tmp_path, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert TEST_KEY.encode() not in proc.stdout + proc.stderr
    result = np.asarray(PILImage.open(out).convert("RGB"))
    erase = np.asarray(PILImage.open(masks / "photo.erase.png").convert("L")) > 0
    changed = (result != scene).any(axis=2)
    assert erase.any() and changed[erase].mean() > 0.5 and not changed[~erase].any()
    stats = fake_cloud.stats()
    assert stats["submitted"] == {SEGMENT_MODEL: 1, ERASE_MODEL: 1} and stats["downloads"] == 2
