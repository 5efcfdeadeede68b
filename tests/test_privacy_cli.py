"""The privacy workflow through the CLI: ``person-erase redact`` with the passersby policy, metadata
(GPS dropped by default, orientation applied), and removal verification (``--verify [--strict]``).

People come from a label map (``--segmenter labels:PATH``) so the truth is known; one test runs the
real local segmenter for the verification pass.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _cli import run
from _imagefactory import make_scene
from PIL import Image as PILImage

STYLES = ("blur", "pixelate", "solid")
_GPS_IFD, _ORIENTATION, _MAKE = 0x8825, 0x0112, 0x010F


@pytest.fixture
def redaction_available() -> None:
    pytest.importorskip(
        "person_erase.erasers.redact", reason="the redaction eraser (erasers/redact.py) is not built yet"
    )


def _people_scene(h: int = 240, w: int = 360) -> tuple[np.ndarray, np.ndarray]:
    """A textured photo with a big central figure (label 2) and two small ones at the sides (1, 3)."""
    people = [(40 / w, 70 / h, 50 / h), (0.5, (h // 2 + 20) / h, 170 / h), ((w - 40) / w, 80 / h, 46 / h)]
    return make_scene(size=(h, w), people=people, seed=1, striped=True)


@pytest.fixture
def scene_files(tmp_path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    img, labels = _people_scene()
    p, lp = tmp_path / "street.png", tmp_path / "street.labels.png"
    PILImage.fromarray(img).save(p)
    PILImage.fromarray(labels).save(lp)
    return p, lp, img, labels


@pytest.mark.parametrize("style", STYLES)
def test_redact_passersby_keeps_subject_byte_identical(style, scene_files, tmp_path, capsys, redaction_available):
    p, lp, img, labels = scene_files
    out, rep = tmp_path / f"out-{style}.png", tmp_path / "r.json"
    code, stdout, err = run(["-q", "redact", p, "-o", out, "--segmenter", f"labels:{lp}", "--policy", "passersby",
                             "--style", style, "--masks-dir", tmp_path / "m", "--report", rep], capsys)
    assert code == 0, err
    assert "redacted 2 of 3 people" in stdout
    res = np.asarray(PILImage.open(out).convert("RGB"))
    erase = np.asarray(PILImage.open(tmp_path / "m" / "street.erase.png"))[..., 0] > 0
    assert np.array_equal(res[~erase], img[~erase])  # outside the redaction mask: byte-identical
    subject = labels == 2
    assert not (erase & subject).any() and np.array_equal(res[subject], img[subject])
    for lab in (1, 3):  # the passers-by are covered and changed
        assert erase[labels == lab].all()
        assert (res[labels == lab] != img[labels == lab]).any(axis=1).mean() > 0.5
    report = json.loads(rep.read_text())
    assert report["policy"] == "passersby" and report["outside_mask_changed_px"] == 0
    rows = {r["index"]: r for r in report["instances"]}
    assert rows[1]["kept"] and rows[1]["reason"].startswith("kept: main subject")
    assert rows[0]["reason"].startswith("erased:") and "small" in rows[0]["reason"]
    assert {"area", "centre", "sharpness", "face", "foot", "score"} <= set(rows[1]["cues"])


def _gps_jpeg(path: Path, upright: np.ndarray) -> None:
    """A JPEG stored rotated with EXIF orientation 6 (viewer turns it 90° clockwise), plus a GPS IFD."""
    ex = PILImage.Exif()
    ex[_MAKE] = "TestCam"
    ex[_ORIENTATION] = 6
    gps = ex.get_ifd(_GPS_IFD)
    gps[1], gps[2], gps[3], gps[4] = "N", (52.0, 31.0, 12.0), "E", (13.0, 24.0, 1.0)
    PILImage.fromarray(np.ascontiguousarray(np.rot90(upright, 1))).save(path, exif=ex.tobytes(), quality=95)


def test_redact_drops_gps_and_applies_orientation(astronaut, tmp_path, capsys, redaction_available):
    upright = np.ascontiguousarray(astronaut[::2, ::2][:, :200])  # 256 tall x 200 wide
    src = tmp_path / "geo.jpg"
    _gps_jpeg(src, upright)
    assert _GPS_IFD in PILImage.open(src).getexif()
    labels = np.zeros(upright.shape[:2], np.uint8)
    labels[20:250, 20:180] = 1  # one big person in the upright frame, one small one
    labels[200:240, 185:198] = 2
    lp = tmp_path / "geo.labels.png"
    PILImage.fromarray(labels).save(lp)
    out = tmp_path / "geo.out.jpg"
    code, _, err = run(["-q", "redact", src, "-o", out, "--segmenter", f"labels:{lp}", "--policy", "passersby",
                        "--masks-dir", tmp_path / "m"], capsys)
    assert code == 0, err
    with PILImage.open(out) as im:
        ex = im.getexif()
        assert _GPS_IFD not in ex and not ex.get_ifd(_GPS_IFD)
        assert ex.get(_ORIENTATION, 1) == 1
        assert ex.get(_MAKE) == "TestCam"  # strip-gps keeps the rest
        assert im.size == (200, 256)
        res = np.asarray(im.convert("RGB")).astype(int)
    erase = np.asarray(PILImage.open(tmp_path / "m" / "geo.erase.png"))[..., 0] > 0
    # upright content (JPEG round trip, so "close", and far closer than any other orientation would be)
    assert np.abs(res[~erase] - upright[~erase]).mean() < 6
    # --metadata strip-all drops the rest too
    out2 = tmp_path / "geo.all.jpg"
    code, _, err = run(["-q", "redact", src, "-o", out2, "--segmenter", f"labels:{lp}", "--metadata", "strip-all"],
                       capsys)
    assert code == 0, err
    ex2 = PILImage.open(out2).getexif()
    assert _GPS_IFD not in ex2 and _MAKE not in ex2


def test_verify_reports_residues_and_strict_exits_3(scene, tmp_path, capsys, redaction_available):
    """The ``scene`` test segmenter finds the same figures in any picture of that size, so after an
    erase the verification pass re-finds the erased person: a residue every time, which --strict must
    catch. After a redaction the same re-detection is only a silhouette (expected: a blurred body keeps
    its outline); it is listed in the report but does not fail the verification."""
    img, _ = scene
    p = tmp_path / "scene.png"
    PILImage.fromarray(img).save(p)
    rep = tmp_path / "v.json"
    args = ["-q", "erase", p, "--segmenter", "scene", "--eraser", "telea", "--select", "0", "--verify", "--report", rep]
    code, _, err = run([*args, "-o", tmp_path / "o.png"], capsys)
    assert code == 0
    assert "warning: verification found 1 person where someone was erased" in err
    ver = json.loads(rep.read_text())["verification"]
    assert ver["ok"] is False and ver["segmenter"] == "scene" and len(ver["residues"]) == 1
    assert ver["residues"][0]["kind"] == "person" and ver["residues"][0]["overlap_share"] >= 0.3
    code, _, err = run([*args, "-o", tmp_path / "o2.png", "--strict"], capsys)
    assert code == 3 and "warning: verification found" in err

    args = ["-q", "redact", p, "--segmenter", "scene", "--select", "0", "--verify", "--strict", "--report", rep]
    code, _, err = run([*args, "-o", tmp_path / "r.png"], capsys)
    assert code == 0 and "warning" not in err, err
    ver = json.loads(rep.read_text())["verification"]
    assert ver["ok"] is True and ver["residues"] == []
    assert len(ver["silhouettes"]) == 1 and ver["silhouettes"][0]["kind"] == "person"


def test_verify_with_the_local_segmenter(astronaut, tmp_path, capsys, redaction_available):
    """Real engines. Erased (Telea), the astronaut is not found again, so --strict passes. Redacted with
    the default blur, no face is detectable in the region (pass); with a pixelation too weak to hide her
    (--strength 0.01: 8 px blocks on a 100 px face), MediaPipe still finds the face and --strict exits 3."""
    p = tmp_path / "astronaut.png"
    PILImage.fromarray(astronaut).save(p)
    rep = tmp_path / "e.json"
    code, _, err = run(["-q", "erase", p, "-o", tmp_path / "e.png", "--eraser", "telea", "--verify", "--strict",
                        "--report", rep], capsys)
    assert code == 0, err
    ver = json.loads(rep.read_text())["verification"]
    assert ver["segmenter"] == "local" and ver["ok"] is True and ver["residues"] == []

    rep = tmp_path / "r.json"
    code, _, err = run(["-q", "redact", p, "-o", tmp_path / "r.png", "--verify", "--strict", "--report", rep], capsys)
    assert code == 0, err
    report = json.loads(rep.read_text())
    assert report["verification"]["ok"] is True and report["verification"]["residues"] == []
    assert report["metadata_policy"] == "strip-gps" and report["eraser"] == "blur"

    weak = tmp_path / "weak.png"
    code, _, err = run(
        [
            "-q",
            "redact",
            p,
            "-o",
            weak,
            "--style",
            "pixelate",
            "--strength",
            "0.01",
            "--verify",
            "--strict",
            "--report",
            rep,
        ],
        capsys,
    )
    assert code == 3, err
    assert "1 face still detectable where someone was redacted" in err
    ver = json.loads(rep.read_text())["verification"]
    assert ver["ok"] is False and [r["kind"] for r in ver["residues"]] == ["face"]
    face = ver["residues"][0]["box"]
    assert 150 <= (face[0] + face[2]) / 2 <= 300 and 50 <= (face[1] + face[3]) / 2 <= 200  # her face
    assert weak.exists()  # --strict reports; the output is still written


def test_passersby_with_one_person_is_not_an_error(tmp_path, capsys, redaction_available):
    img, labels = _people_scene()
    labels[labels != 2] = 0
    p, lp, out = tmp_path / "solo.png", tmp_path / "solo.labels.png", tmp_path / "solo.out.png"
    PILImage.fromarray(img).save(p)
    PILImage.fromarray(labels).save(lp)
    code, stdout, err = run(["-q", "redact", p, "-o", out, "--segmenter", f"labels:{lp}", "--policy", "passersby",
                             "--report", tmp_path / "s.json"], capsys)
    assert code == 0, err
    assert "note: nobody was chosen" in err and "redacted 0 of 1 person" in stdout
    assert np.array_equal(np.asarray(PILImage.open(out).convert("RGB")), img)
    row = json.loads((tmp_path / "s.json").read_text())["instances"][0]
    assert row["kept"] and row["reason"] == "kept: main subject (the only person)"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--style", "sepia"], "choose one of: blur, pixelate, solid"),
        (["--policy", "tourists"], "choose one of: all, largest:N, passersby, passersby+group"),
    ],
)
def test_unknown_style_or_policy_lists_the_valid_ones(flags, message, scene_files, tmp_path, capsys):
    p, lp, _, _ = scene_files
    out = tmp_path / "x.png"
    code, _, err = run(["-q", "redact", p, "-o", out, "--segmenter", f"labels:{lp}", *flags], capsys)
    assert code == 1 and err.startswith("error: ") and message in err
    assert not out.exists()


def test_segment_table_shows_the_policy_reasons(scene_files, capsys):
    p, lp, _, _ = scene_files
    code, out, err = run(["-q", "segment", p, "--engine", f"labels:{lp}", "--no-files", "--policy", "passersby+group"],
                         capsys)
    assert code == 0, err
    assert "reason" in out and "kept: main subject" in out and out.count("erased:") == 2
    code, out, _ = run(
        ["-q", "segment", p, "--engine", f"labels:{lp}", "--no-files", "--policy", "passersby", "--json"], capsys
    )
    rows = json.loads(out)["people"]
    assert [r["selected"] for r in rows] == [True, False, True]
    assert all("score" in r["cues"] and "face" in r["cues"] for r in rows)
