"""Faces: the bundled CenterFace detector, the face safety net of ``redact`` and the face-only mode.

Scenes are composed from scikit-image photos: the astronaut's head pasted small (48 px) and partly
occluded (a post covers its right third) onto the rocket photo, where no body segmenter would find a
person; people come from label maps so the truth is known.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from _imagefactory import paste_person

import person_erase as pe
from person_erase.face_regions import body_from_face, face_ellipse, head_region, lone_head
from person_erase.faces import FaceDetector, Faces, FullRangeFaces, detect_faces

HEAD = 48  # pasted head height, px
POST = (90, 80, 70)


def _paste_head(img: np.ndarray, astronaut: np.ndarray, x: int, y: int) -> tuple[int, int, int, int]:
    """Paste the small, partly occluded head (hair and face, HEAD px tall) at (x, y); returns its box."""
    _, _, x1, y1 = paste_person(img, astronaut[40:200, 160:290], x=x, y=y, height=HEAD)
    w = x1 - x
    img[y - 10 : y1 + 20, x + int(w * 0.7) : x1 + 6] = POST  # a post in front of its right third
    return x, y, x + int(w * 0.7), y1


@pytest.fixture(scope="module")
def street(astronaut) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """Rocket photo (480x360) with one labelled person (left) and an unlabelled small head (right)."""
    from skimage import data

    img = np.ascontiguousarray(cv2.resize(data.rocket(), (480, 360), interpolation=cv2.INTER_AREA))
    labels = np.zeros(img.shape[:2], np.uint8)
    cv2.ellipse(labels, (80, 250), (22, 70), 0, 0, 360, 1, -1)
    img[labels == 1] = (160, 60, 50)
    box = _paste_head(img, astronaut, 300, 100)
    return img, labels, box


def test_centerface_finds_the_astronaut_without_warnings(astronaut, capfd):
    det = FaceDetector()
    faces = det.detect(astronaut)
    err = capfd.readouterr().err
    assert "onnxruntime" not in err and "initializer" not in err  # BatchNorm inputs dropped, logger quiet
    assert len(faces) == 1 and faces.scores[0] > 0.8
    x0, y0, x1, y1 = faces.boxes[0]
    assert 160 < x0 < 200 and 40 < y0 < 90 and 250 < x1 < 290 and 160 < y1 < 200  # her face
    lm = faces.landmarks[0]
    assert ((lm[:, 0] > x0) & (lm[:, 0] < x1) & (lm[:, 1] > y0) & (lm[:, 1] < y1)).all()
    assert lm[0, 1] < lm[3, 1] and lm[1, 1] < lm[4, 1]  # eyes above the mouth corners


def test_detector_runs_at_any_size_and_on_big_photos_in_tiles(astronaut):
    det = FaceDetector(tile_px=256)  # the 640 px working copy is cut into overlapping tiles
    faces = det.detect(astronaut)
    assert len(faces) == 1 and faces.scores[0] > 0.8  # NMS merges the tiles' peaks into one face
    odd = np.ascontiguousarray(astronaut[:301, :457])
    assert (det.detect(odd).scores > 0.5).sum() == 1
    assert len(det.detect(np.zeros((40, 50, 3), np.uint8))) == 0
    with pytest.raises(pe.InputError, match="uint8 RGB"):
        det.detect(np.zeros((40, 50), np.uint8))


def test_the_small_occluded_head_is_found(street):
    img, _, (x0, y0, x1, y1) = street
    faces = detect_faces(img)
    hits = [k for k in range(len(faces)) if x0 - 5 < (faces.boxes[k, 0] + faces.boxes[k, 2]) / 2 < x1 + 5
            and y0 < (faces.boxes[k, 1] + faces.boxes[k, 3]) / 2 < y1]
    assert len(hits) == 1


def test_face_net_hides_a_face_the_body_segmenter_missed(street):
    img, labels, (x0, y0, x1, y1) = street
    people = pe.Instances.from_label_map(labels)
    # person_net=False: the face net on its own (the person net also finds the pasted head, test_person_net)
    off = pe.redact(img, people, face_net=False, person_net=False)
    face = np.s_[y0 + 8 : y1 - 8, x0 + 4 : x1 - 2]
    assert np.array_equal(off.image[face], img[face])  # the segmented body only: the face stays sharp
    on = pe.redact(img, people, person_net=False)  # face_net=True by default
    assert (on.image[face] != img[face]).any(axis=2).mean() > 0.9
    assert on.erase_mask[face].all()
    assert np.array_equal(on.image[~on.erase_mask], img[~on.erase_mask])
    assert on.report.outside_mask_changed_px == 0
    added = on.report.faces_added
    assert len(added) == 1 and added[0].source == "centerface" and added[0].score >= 0.2
    bx0, by0, bx1, by1 = added[0].box
    assert bx0 < (x0 + x1) / 2 < bx1 and by0 < (y0 + y1) / 2 < by1
    assert added[0].body_box is None  # no body is guessed from a lone face by default (face_regions.BODY_FACE_SCORE)
    assert on.report.parameters["face_net"] is True
    # the labelled person was redacted as before
    assert off.erase_mask[labels == 1].all() and on.erase_mask[labels == 1].all()
    # asked for, a body is grown below a face nobody accounts for, inside the photo
    from person_erase.face_regions import plan_faces
    from person_erase.faces import detect_faces

    chosen = np.ones(len(people), bool)
    plan = plan_faces(detect_faces(img), people, chosen, off.erase_mask, body_score=0.2)
    grown = [r for r in plan.added if r["body_box"] is not None]
    assert len(grown) == 1 and grown[0]["body_box"][1] >= by0 and grown[0]["body_box"][3] <= img.shape[0]
    assert plan.region[by1 + 40, (bx0 + bx1) // 2] and not on.erase_mask[by1 + 40, (bx0 + bx1) // 2]


def test_face_net_report_round_trips_as_json(street):
    img, labels, _ = street
    res = pe.redact(img, pe.Instances.from_label_map(labels), style="pixelate", person_net=False)
    import json

    doc = json.loads(res.report.to_json())
    assert doc["target"] == "body" and len(doc["faces_added"]) == 1
    assert set(doc["faces_added"][0]) == {"box", "score", "source", "body_box"}


def test_target_faces_changes_only_face_pixels(astronaut):
    from skimage import data

    img = np.ascontiguousarray(cv2.resize(data.rocket(), (480, 360), interpolation=cv2.INTER_AREA))
    x0, y0, x1, y1 = _paste_head(img, astronaut, 200, 80)
    labels = np.zeros(img.shape[:2], np.uint8)
    cv2.ellipse(labels, ((x0 + x1) // 2, y1 + 110), (40, 110), 0, 0, 360, 1, -1)  # the body below the head
    labels[y0:y1, x0 - 2 : x1 + 2] = 1
    img[(labels == 1) & (np.arange(img.shape[0])[:, None] > y1)] = (40, 90, 160)
    people = pe.Instances.from_label_map(labels)
    res = pe.redact(img, people, target="faces", style="solid", color=(255, 0, 255))
    changed = (res.image != img).any(axis=2)
    assert changed.any() and not (changed & ~res.erase_mask).any()  # only face regions change
    face = np.s_[y0 + 8 : y1 - 8, x0 + 4 : x1 - 2]
    assert res.erase_mask[face].all()
    body = labels == 1
    below = body & (np.arange(img.shape[0])[:, None] > y1 + 0.6 * (y1 - y0))
    assert below.sum() > 10_000 and not res.erase_mask[below].any()  # the body stays visible
    assert np.array_equal(res.image[below], img[below])
    assert res.erase_mask.sum() < 0.3 * body.sum()
    assert res.report.target == "faces" and res.report.faces_added
    assert {f.source for f in res.report.faces_added} <= {"centerface", "head"}


def test_target_faces_with_no_face_and_no_people_changes_nothing():
    img = np.full((120, 160, 3), 128, np.uint8)
    res = pe.redact(img, pe.Instances.empty(120, 160), target="faces")
    assert np.array_equal(res.image, img) and not res.erase_mask.any() and res.report.faces_added == []


def test_passersby_keeps_the_subjects_face_byte_identical(astronaut):
    from conftest import REPO
    from PIL import Image as PILImage

    img = astronaut.copy()
    subject = np.asarray(PILImage.open(REPO / "notebooks" / "data" / "astronaut_figure.png").convert("L")) > 0
    labels = np.zeros(img.shape[:2], np.uint8)
    labels[subject] = 1
    labels[430:500, 470:500] = 2  # a small passer-by at the right edge
    hx0, hy0, hx1, hy1 = _paste_head(img, astronaut, 30, 40)  # an unsegmented passer-by's head (left)
    people = pe.Instances.from_label_map(labels)
    res = pe.redact(img, people, policy="passersby")
    kept = res.selection.keep
    assert len(kept) == 1 and people.positions(list(kept)).tolist() == [int(np.argmax(people.areas))]
    her_face = np.s_[30:210, 150:300]  # her whole head, hair included, beyond her mask too
    assert np.array_equal(res.image[her_face], img[her_face])
    assert not (res.erase_mask & res.keep_mask).any()
    assert np.array_equal(res.image[subject], img[subject])
    face = np.s_[hy0 + 8 : hy1 - 8, hx0 + 4 : hx1 - 2]
    assert (res.image[face] != img[face]).any(axis=2).mean() > 0.9  # the passer-by's face is hidden
    assert len(res.report.faces_added) == 1 and res.report.faces_added[0].box[0] < 100


def test_regions_geometry():
    ell = face_ellipse((100, 100), (40, 40, 60, 60))
    assert ell[50, 50] and ell[50, 35] and not ell[50, 30] and not ell[35, 35]  # grown 30 % a side, elliptical
    lm = np.array([[45, 45], [55, 45], [50, 50], [46, 56], [54, 56]], np.float32)
    body, box = body_from_face((200, 100), (40, 40, 60, 60), lm)
    assert body[120, 50] and not body[30, 50] and box[3] <= 200
    # a face lying on its side (eyes to mouth pointing right): the body extends to the right
    side = lm[:, ::-1].copy()
    body2, _ = body_from_face((100, 200), (40, 40, 60, 60), side)
    assert body2[50, 150] and not body2[150 % 100, 10]
    assert len(Faces.empty()) == 0


def _person(shape: tuple[int, int], cx: int, top: int, head: int, *, body: bool = True) -> np.ndarray:
    """A label-map person: a head (ellipse ``head`` px tall), a neck and, with ``body``, shoulders and a torso."""
    m = np.zeros(shape, np.uint8)
    cv2.ellipse(m, (cx, top + head // 2), (int(head * 0.38), head // 2), 0, 0, 360, 1, -1)
    if body:
        m[top + head - 4 : top + head + 6, cx - head // 6 : cx + head // 6] = 1  # neck
        cv2.ellipse(m, (cx, top + head + 6 + 2 * head), (int(head * 1.2), 2 * head), 0, 0, 360, 1, -1)
    return m.astype(bool)


def test_lone_head_and_its_region():
    shape = (400, 400)
    head = _person(shape, 100, 50, 60, body=False)  # a head on its own (the rest behind an umbrella)
    whole = _person(shape, 280, 40, 40)  # head, neck, shoulders: a whole person
    back = np.zeros(shape, bool)
    back[300:400, 20:200] = True  # a back cut by the frame: wide to the bottom
    boxes = {}
    for name, m in {"head": head, "whole": whole, "back": back}.items():
        ys, xs = np.nonzero(m)
        boxes[name] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert lone_head(head, boxes["head"]) and not lone_head(whole, boxes["whole"])
    assert not lone_head(back, boxes["back"])
    region, _ = head_region(head, boxes["head"])
    assert region[head].all()  # all of a lone head, down to its chin (ears sit half-way down)
    region, (_, ry0, _, ry1) = head_region(whole, boxes["whole"])
    assert region[50:70, 280].all() and ry1 < 40 + 40 + 6 + 40  # a whole person: the head, not the torso


def test_verify_uses_the_other_detector(astronaut):
    from person_erase import verify

    det = verify._verify_detector()
    assert isinstance(det, FullRangeFaces) and det.name != FaceDetector.name  # not the redaction's CenterFace
    faces = FullRangeFaces().detect(astronaut)
    assert len(faces) == 1 and faces.scores[0] >= 0.6 and faces.landmarks.shape == (1, 6, 2)
    x0, y0, x1, y1 = faces.boxes[0]
    assert 150 < x0 < 200 and 40 < y0 < 100 and 250 < x1 < 300 and 150 < y1 < 200  # her face
    assert len(verify.faces_in(astronaut, np.ones(astronaut.shape[:2], bool))) == 1
    assert verify.faces_in(astronaut, np.zeros(astronaut.shape[:2], bool)) == []


def test_unknown_target_is_refused():
    img = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(pe.SelectionError, match="target") as info:
        pe.redact(img, pe.Instances.empty(32, 32), target="hands")
    assert info.value.params == ("target",)


def test_cli_face_net_and_target_faces(street, tmp_path, capsys):
    import json

    from PIL import Image as PILImage

    from person_erase.cli import main

    img, labels, (x0, y0, x1, y1) = street
    src, lp = tmp_path / "street.png", tmp_path / "street.labels.png"
    PILImage.fromarray(img).save(src)
    PILImage.fromarray(labels).save(lp)
    face = np.s_[y0 + 8 : y1 - 8, x0 + 4 : x1 - 2]
    # --no-person-net: the face net on its own (the person net also finds the pasted head)
    runs = {"net": ["--no-person-net"], "off": ["--no-face-net", "--no-person-net"], "faces": ["--target", "faces"]}
    outs = {}
    for name, extra in runs.items():
        out, rep = tmp_path / f"{name}.png", tmp_path / f"{name}.json"
        code = main(
            ["-q", "redact", str(src), "-o", str(out), "--segmenter", f"labels:{lp}", "--report", str(rep), *extra]
        )
        stdout, err = capsys.readouterr()
        assert code == 0, err
        outs[name] = (np.asarray(PILImage.open(out).convert("RGB")), json.loads(rep.read_text()), stdout)
    res, rep, stdout = outs["net"]
    assert "+1 face the masks missed" in stdout and len(rep["faces_added"]) == 1
    assert rep["parameters"]["face_net"] is True and (res[face] != img[face]).any(axis=2).mean() > 0.9
    res, rep, _ = outs["off"]
    assert rep["faces_added"] == [] and rep["parameters"]["face_net"] is False and np.array_equal(res[face], img[face])
    res, rep, stdout = outs["faces"]
    assert rep["target"] == "faces" and "hid the faces of 1 of 1 person" in stdout
    assert (res[face] != img[face]).any(axis=2).mean() > 0.9
    body = (labels == 1) & (np.arange(img.shape[0])[:, None] > 230)  # below its head
    assert np.array_equal(res[body], img[body])
    with pytest.raises(SystemExit) as info:
        main(["redact", str(src), "-o", str(tmp_path / "x.png"), "--target", "hands"])
    err = capsys.readouterr().err
    assert (
        info.value.code == 2 and err.startswith("error: ") and "--target" in err and len(err.strip().splitlines()) == 1
    )


def test_batch_face_net_and_target_faces(street, tmp_path, capsys):
    import json

    from PIL import Image as PILImage

    from person_erase.cli import main

    img, labels, (x0, y0, x1, y1) = street
    src, lp = tmp_path / "in", tmp_path / "street.labels.png"
    src.mkdir()
    PILImage.fromarray(img).save(src / "street.png")
    PILImage.fromarray(labels).save(lp)
    face = np.s_[y0 + 8 : y1 - 8, x0 + 4 : x1 - 2]
    body = (labels == 1) & (np.arange(img.shape[0])[:, None] > 230)  # the labelled person below their head
    # --no-person-net: the face net on its own (the person net also finds the pasted head)
    runs = {"net": ["--no-person-net"], "off": ["--no-face-net", "--no-person-net"], "faces": ["--target", "faces"]}
    outs = {}
    for name, extra in runs.items():
        out = tmp_path / name
        code = main(["-q", "batch", str(src), "-o", str(out), "--mode", "redact", "--segmenter", f"labels:{lp}",
                     "--workers", "1", *extra])
        _, err = capsys.readouterr()
        assert code == 0, err
        rep = json.loads((out / "street.png.json").read_text())
        outs[name] = (np.asarray(PILImage.open(out / "street.png").convert("RGB")), rep)
    res, rep = outs["net"]
    assert len(rep["faces_added"]) == 1 and rep["parameters"]["face_net"] is True and rep["target"] == "body"
    assert (res[face] != img[face]).any(axis=2).mean() > 0.9 and (res[body] != img[body]).any(axis=1).mean() > 0.5
    res, rep = outs["off"]
    assert rep["faces_added"] == [] and rep["parameters"]["face_net"] is False and np.array_equal(res[face], img[face])
    res, rep = outs["faces"]
    assert rep["target"] == "faces" and (res[face] != img[face]).any(axis=2).mean() > 0.9
    assert np.array_equal(res[body], img[body])
    summary = json.loads((tmp_path / "faces" / "summary.json").read_text())
    assert summary["parameters"]["target"] == "faces" and summary["parameters"]["face_net"] is True
    # the face pass is redact's: refused in erase mode with one line, before any work
    assert main(["batch", str(src), "-o", str(tmp_path / "e"), "--target", "faces"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--target, --no-face-net and --no-person-net are for redact" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "e" / "street.png").exists()


@pytest.mark.parametrize("style", ["blur", "pixelate"])
def test_a_face_redacted_on_its_own_is_not_found_again(astronaut, style):
    from person_erase.verify import faces_left

    res = pe.redact(astronaut, pe.Instances.empty(512, 512), target="faces", style=style)
    assert len(res.report.faces_added) == 1 and res.erase_mask[100:160, 190:260].all()
    assert faces_left(res.image, res.erase_mask, astronaut) == []  # the other detector (MediaPipe) finds none


def test_target_faces_under_passersby_keeps_the_subjects_face(astronaut):
    from conftest import REPO
    from PIL import Image as PILImage

    img = astronaut.copy()
    subject = np.asarray(PILImage.open(REPO / "notebooks" / "data" / "astronaut_figure.png").convert("L")) > 0
    labels = np.zeros(img.shape[:2], np.uint8)
    labels[subject] = 1
    labels[400:500, 460:500] = 2
    hx0, hy0, hx1, hy1 = _paste_head(img, astronaut, 30, 40)
    res = pe.redact(img, pe.Instances.from_label_map(labels), policy="passersby", target="faces")
    assert np.array_equal(res.image[30:210, 150:300], img[30:210, 150:300])
    face = np.s_[hy0 + 8 : hy1 - 8, hx0 + 4 : hx1 - 2]
    assert (res.image[face] != img[face]).any(axis=2).mean() > 0.9
    assert res.erase_mask[400:410, 460:500].any()  # the passer-by's head (the top of their box)
    assert not res.erase_mask[470:500, 460:500].any()  # but not their body


def test_turned_passes_map_faces_back_to_the_photo(astronaut):
    det = FaceDetector()
    (x0, y0, x1, y1) = det.detect(astronaut, turned=False).boxes[0]
    h, w = astronaut.shape[:2]
    for k in (1, 3):
        turned = np.ascontiguousarray(np.rot90(astronaut, k))  # the photo itself lies on its side
        f = det.turned(np.ascontiguousarray(turned[:, :, ::-1]))
        best = int(np.argmax(f.scores))
        # np.rot90 maps (x, y) to (y, w - x) for k=1 and to (h - y, x) for k=3
        want = [y0, w - x1, y1, w - x0] if k == 1 else [h - y1, x0, h - y0, x1]
        assert f.scores[best] > 0.5
        assert np.abs(f.boxes[best] - np.array(want)).max() < 0.12 * (x1 - x0)  # her face, turned back
    with pytest.raises(pe.InputError, match="turned_px"):
        FaceDetector(turned_px=32)


@pytest.fixture(scope="module")
def lying(astronaut) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """Rocket photo (480x360): someone lying down, the segmenter found their body but not their head,
    which lies on its side (the astronaut's face, 80 px, turned a quarter clockwise)."""
    from skimage import data

    img = np.ascontiguousarray(cv2.resize(data.rocket(), (480, 360), interpolation=cv2.INTER_AREA))
    head = cv2.resize(astronaut[30:210, 150:300], (67, 80), interpolation=cv2.INTER_AREA)
    head = np.rot90(head, 3)
    y, x = 150, 250
    img[y : y + head.shape[0], x : x + head.shape[1]] = head
    labels = np.zeros(img.shape[:2], np.uint8)
    cv2.ellipse(labels, (160, 183), (70, 25), 0, 0, 360, 1, -1)  # the body, wider than tall
    img[labels == 1] = (70, 90, 150)
    return img, labels, (x, y, x + head.shape[1], y + head.shape[0])


def test_face_net_hides_a_face_lying_sideways(lying):
    from person_erase.face_regions import may_lie

    img, labels, (x0, y0, x1, y1) = lying
    people = pe.Instances.from_label_map(labels)
    assert may_lie(people) and may_lie(pe.Instances.from_label_map(np.zeros_like(labels)))
    standing = np.zeros_like(labels)
    cv2.ellipse(standing, (160, 183), (25, 70), 0, 0, 360, 1, -1)
    assert not may_lie(pe.Instances.from_label_map(standing))  # upright people: the upright pass only

    def on_head(f: Faces) -> list[float]:
        c = (f.boxes[:, :2] + f.boxes[:, 2:]) / 2
        return [float(s) for s, (cx, cy) in zip(f.scores, c, strict=True) if x0 < cx < x1 and y0 < cy < y1]

    assert max(on_head(FaceDetector(turned_px=0).detect(img, min_score=0.05)), default=0) < 0.2  # the old net
    assert max(on_head(detect_faces(img))) > 0.4
    face = np.s_[y0 + 14 : y1 - 14, x0 + 16 : x1 - 10]  # the face in the pasted square
    off = pe.redact(img, people, face_net=False, person_net=False)  # the person net finds the head too
    assert np.array_equal(off.image[face], img[face])  # the body alone leaves the face readable
    on = pe.redact(img, people, person_net=False)
    assert on.erase_mask[face].all() and (on.image[face] != img[face]).any(axis=2).mean() > 0.9
    assert np.array_equal(on.image[~on.erase_mask], img[~on.erase_mask])
    assert [a.source for a in on.report.faces_added] == ["centerface"]
    only = pe.redact(img, people, target="faces")  # face-only mode finds it too
    assert only.erase_mask[face].all()


@pytest.fixture(scope="module")
def half_hidden(astronaut) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """Rocket photo (480x360): a person behind a post, more than half of their face (80 px) hidden;
    the segmenter found their body up to the mouth, not the eyes."""
    from skimage import data

    img = np.ascontiguousarray(cv2.resize(data.rocket(), (480, 360), interpolation=cv2.INTER_AREA))
    head = cv2.resize(astronaut[40:200, 160:290], (65, 80), interpolation=cv2.INTER_AREA)
    x, y = 300, 100
    img[y : y + 80, x : x + 65] = head
    labels = np.zeros(img.shape[:2], np.uint8)
    cv2.ellipse(labels, (x + 30, y + 190), (55, 150), 0, 0, 360, 1, -1)  # the body, up to the mouth
    labels[: y + 52] = 0
    img[(labels == 1) & (np.arange(img.shape[0])[:, None] >= y + 80)] = (120, 70, 60)
    img[y - 10 : y + 100, x + 28 : x + 71] = POST  # the post hides 57 % of the face
    return img, labels, (x, y, x + 28, y + 52)


def test_a_weak_face_on_a_segmented_person_is_hidden(half_hidden, monkeypatch):
    from person_erase import face_regions

    img, labels, (x0, y0, x1, y1) = half_hidden
    people = pe.Instances.from_label_map(labels)
    faces = detect_faces(img, min_score=0.1)
    c = (faces.boxes[:, :2] + faces.boxes[:, 2:]) / 2
    on_face = faces.scores[(c[:, 0] > x0 - 10) & (c[:, 0] < x1 + 10) & (c[:, 1] > y0) & (c[:, 1] < y1)]
    assert len(on_face) == 1 and 0.1 <= on_face[0] < 0.2  # too weak for a face off every person
    eyes = np.s_[y0 + 22 : y0 + 34, x0 + 10 : x1]
    monkeypatch.setattr(face_regions, "PERSON_FACE_SCORE", 0.2)  # the old rule: 0.2 everywhere
    old = pe.redact(img, people, person_net=False)  # the face rules alone (the person net finds this head too)
    assert not old.erase_mask[eyes].all() and old.report.faces_added == []
    monkeypatch.undo()
    new = pe.redact(img, people, person_net=False)
    assert new.erase_mask[eyes].all() and (new.image[eyes] != img[eyes]).any(axis=2).mean() > 0.9
    assert len(new.report.faces_added) == 1 and new.report.faces_added[0].score < 0.2
    # off every person the same weak face is left alone (round patterns score that much too)
    alone = pe.redact(img, pe.Instances.from_label_map(np.zeros_like(labels)), target="faces")
    assert not alone.erase_mask[eyes].any()
