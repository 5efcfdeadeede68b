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


def _reference_maps(m: np.ndarray, w: int, h: int, affine: bool) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV 4's warp source coordinates in 1/32 px, written out per pixel the plain way (int64 throughout)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    if affine:
        m = np.asarray(m, np.float32).astype(np.float64).ravel()
        dx, dy = np.rint(m[0] * xs * 1024).astype(np.int64), np.rint(m[3] * xs * 1024).astype(np.int64)
        x0 = np.rint((m[1] * ys + m[2]) * 1024).astype(np.int64) + 16
        y0 = np.rint((m[4] * ys + m[5]) * 1024).astype(np.int64) + 16
        x, y = (x0 + dx) >> 5, (y0 + dy) >> 5
    else:
        m = m.ravel()
        den = m[7] * ys + m[8] + m[6] * xs
        den = np.where(den != 0, 32 / np.where(den != 0, den, 1.0), 0.0)
        fx = np.clip((m[1] * ys + m[2] + m[0] * xs) * den, -(2.0**31), 2.0**31 - 1)
        fy = np.clip((m[4] * ys + m[5] + m[3] * xs) * den, -(2.0**31), 2.0**31 - 1)
        x, y = np.rint(fx).astype(np.int64), np.rint(fy).astype(np.int64)
    xy = np.stack([np.clip(x >> 5, -32768, 32767), np.clip(y >> 5, -32768, 32767)], axis=-1).astype(np.int16)
    return xy, ((y & 31) * 32 + (x & 31)).astype(np.uint16)


def test_warp_maps_equal_the_per_pixel_formula() -> None:
    """The row/column shortcut (axis-aligned warps), the int32 sums and the general path give OpenCV 4's
    coordinates bit for bit, including warps with tiny non-zero off-diagonal terms and huge scales."""
    import cv2

    rng = np.random.default_rng(0)
    cases = []
    for shape in [(300, 200), (512, 371), (123, 456), (17, 9)]:
        for side in (128, 224, 256):
            for letterbox in (False, True):
                roi = mp.full_roi(shape)
                if letterbox:
                    roi, _ = mp.pad_roi(roi, side, side)
                src = cv2.boxPoints(((roi.cx, roi.cy), (roi.w, roi.h), 0.0)).astype(np.float32)
                dst = np.array([[0, side], [0, 0], [side, 0], [side, side]], np.float32)
                cases.append((cv2.invert(cv2.getPerspectiveTransform(src, dst))[1], side, side))
    for _ in range(20):
        roi = mp.Roi(*rng.uniform(0, 500, 2), *rng.uniform(5, 900, 2), rng.uniform(-3.2, 3.2))
        src = cv2.boxPoints(((roi.cx, roi.cy), (roi.w, roi.h), np.degrees(roi.rotation))).astype(np.float32)
        dst = np.array([[0, 256], [0, 0], [256, 0], [256, 256]], np.float32)
        cases.append((cv2.invert(cv2.getPerspectiveTransform(src, dst))[1], 256, 256))
    cases += [(np.array([[1e12, 0, 0], [0, -1e12, 5], [0, 0, 1.0]]), 50, 40),  # clipped to int32
              (np.array([[1, 0, 0], [0, 1, 0], [0.01, -0.02, 0]]), 50, 40)]  # a zero denominator
    assert any(m.ravel()[7] != 0 and m.ravel()[1] == 0 for m, _, _ in cases)  # tiny off-diagonals occur
    for m, w, h in cases:
        for got, want in zip(mp._perspective_maps(m, w, h), _reference_maps(m, w, h, False), strict=True):
            assert got.dtype == want.dtype and np.array_equal(got, want)
    for k in range(20):
        roi = mp.Roi(*rng.uniform(0, 500, 2), *rng.uniform(5, 900, 2), rng.uniform(-3.2, 3.2))
        m = mp.roi_to_image(roi, 400, 300, 256, 256)
        if k == 0:
            m = (m * 1e6).astype(np.float32)  # sums beyond int32: the int64 path
        for got, want in zip(mp._affine_maps(m, 371, 512), _reference_maps(m, 371, 512, True), strict=True):
            assert got.dtype == want.dtype and np.array_equal(got, want)
