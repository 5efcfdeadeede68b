"""MediaPipe's models on onnxruntime (segmenters/_mediapipe.py) against what mediapipe 0.10.21 returned.

``data/mediapipe_0.10.21_reference.npz`` holds the masks (thresholded at 0.5) and the face detection that
``mediapipe.solutions`` (selfie general model; pose static image mode, model_complexity=1,
min_detection_confidence=0.1; face short range, 0.5) gave on scikit-image's astronaut and a tall crop of
it, recorded once with the mediapipe-based code this module replaced.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from person_erase.segmenters import _mediapipe as mp

REF = np.load(Path(__file__).parent / "data" / "mediapipe_0.10.21_reference.npz")
ASTRO = data.astronaut()
CROPS = {"astronaut": ASTRO, "astronaut_tall": np.ascontiguousarray(ASTRO[:, 96:416])}


def _ref(key: str, shape: tuple[int, int]) -> np.ndarray:
    return np.unpackbits(REF[key], axis=-1, count=shape[1]).astype(bool)


def test_anchor_counts_match_the_models() -> None:
    assert len(mp.ssd_anchors(224, (8, 16, 32, 32, 32))) == 2254
    assert len(mp.ssd_anchors(128, (8, 16, 16, 16))) == 896


def test_selfie_and_pose_masks_equal_mediapipe() -> None:
    names = list(CROPS)
    selfies = mp.SelfieMasks()([CROPS[n] for n in names])
    poses = mp.PoseMasks(min_confidence=0.1)([CROPS[n] for n in names])
    for name, selfie, pose in zip(names, selfies, poses, strict=True):
        shape = CROPS[name].shape[:2]
        assert selfie.shape == shape and pose is not None and pose.shape == shape
        for got, key in ((selfie, "selfie"), (pose, "pose")):
            want = _ref(f"{name}__{key}", shape)
            differ = int(((got >= 0.5) != want).sum())
            # float noise between XNNPACK (MediaPipe) and onnxruntime flips a handful of edge pixels
            assert differ <= 0.0005 * want.sum(), (name, key, differ, int(want.sum()))


def test_batched_equals_one_by_one() -> None:
    model = mp.SelfieMasks()
    together = model([CROPS["astronaut"], CROPS["astronaut_tall"]])
    alone = [model([CROPS["astronaut"]])[0], model([CROPS["astronaut_tall"]])[0]]
    for a, b in zip(together, alone, strict=True):
        assert np.array_equal(a, b)


def test_batches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    real = mp.session("selfie_segmentation")

    class Spy:
        def get_inputs(self):  # noqa: ANN202
            return real.get_inputs()

        def run(self, names, feed):  # noqa: ANN001, ANN202
            sizes.append(len(next(iter(feed.values()))))
            return real.run(names, feed)

    model = mp.SelfieMasks()
    model._session = Spy()
    out = model([CROPS["astronaut_tall"]] * (mp.MAX_BATCH + 3))
    assert sizes == [mp.MAX_BATCH, 3] and len(out) == mp.MAX_BATCH + 3


def test_face_detector_equals_mediapipe() -> None:
    (face,) = mp.FaceDetector(min_score=0.5)([ASTRO])[0]
    want = REF["astronaut__faces"][0]
    assert abs(face.score - want[0]) < 1e-3
    assert np.allclose(face.box, want[1:5], atol=1e-3)
    assert np.allclose(face.keypoints.ravel(), want[5:], atol=1e-3)


def test_no_pose_on_an_empty_crop() -> None:
    grey = np.full((300, 200, 3), 128, np.uint8)
    assert mp.PoseMasks(min_confidence=0.1)([grey]) == [None]


def test_segment_writes_nothing_to_stderr(tmp_path: Path) -> None:
    """No native log lines (MediaPipe's inference_feedback_manager, TFLite delegate notices) reach users."""
    from PIL import Image

    photo = tmp_path / "astronaut.png"
    Image.fromarray(ASTRO).save(photo)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    res = subprocess.run(
        [sys.executable, "-m", "person_erase", "segment", str(photo)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    native = re.compile(r"^[IWEF]\d{4} |inference_feedback|TensorFlow|XNNPACK|absl|onnxruntime|\[[EW]:onnxruntime")
    assert not [line for line in res.stderr.splitlines() if native.search(line)], res.stderr
    assert "0" in res.stdout
