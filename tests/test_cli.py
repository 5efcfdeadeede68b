"""The CLI contract: commands, files written, and one clean line for every bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _cli import run
from PIL import Image as PILImage

from person_erase.cli import main


@pytest.fixture
def photo(tmp_path, scene):
    img, labels = scene
    p = tmp_path / "scene.png"
    PILImage.fromarray(img).save(p)
    lp = tmp_path / "scene.labels.png"
    PILImage.fromarray(labels).save(lp)
    return p, lp, img, labels


def test_segment_writes_label_map_overlay_and_table(photo, tmp_path, capsys):
    p, lp, img, labels = photo
    code, out, err = run(["-q", "segment", p, "--engine", f"labels:{lp}", "--out-dir", tmp_path / "seg"], capsys)
    assert code == 0, err
    assert "3 people found" in out and "area %" in out
    lm = np.asarray(PILImage.open(tmp_path / "seg" / "scene.labels.png"))
    assert lm.shape == labels.shape and set(np.unique(lm)) == {0, 1, 2, 3}
    assert (tmp_path / "seg" / "scene.overlay.png").exists()
    code, out, err = run(["-q", "segment", p, "--engine", f"labels:{lp}", "--no-files", "--json"], capsys)
    rows = json.loads(out)["people"]
    assert [r["index"] for r in rows] == [0, 1, 2]


def test_erase_select_with_masks_and_report(photo, tmp_path, capsys):
    p, lp, img, labels = photo
    out_img = tmp_path / "out.png"
    code, out, err = run(["-q", "erase", p, "-o", out_img, "--segmenter", f"labels:{lp}", "--eraser", "telea",
                          "--select", "0,2", "--masks-dir", tmp_path / "m", "--report", tmp_path / "r.json"], capsys)
    assert code == 0, err
    assert "erased 2 of 3 people" in out
    res = np.asarray(PILImage.open(out_img))
    erase = np.asarray(PILImage.open(tmp_path / "m" / "scene.erase.png"))[..., 0] > 0
    keep = np.asarray(PILImage.open(tmp_path / "m" / "scene.keep.png"))[..., 0] > 0
    assert np.array_equal(res[~erase], img[~erase])
    assert keep[labels == 2].all() and not (erase & keep).any()
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["outside_mask_changed_px"] == 0
    assert [r["selected"] for r in report["instances"]] == [True, False, True]


def _truncated_jpeg(path: Path) -> None:
    PILImage.fromarray(np.random.default_rng(0).integers(0, 255, (600, 600, 3), dtype=np.uint8)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


BAD_INPUTS = {
    "missing file": (lambda d: d / "nope.jpg", "no such file"),
    "a directory": (lambda d: d, "is a folder"),
    "0-byte file": (lambda d: _write(d / "empty.jpg", b""), "empty"),
    "truncated JPEG": (lambda d: _truncated_jpeg(d / "cut.jpg") or d / "cut.jpg", "truncated"),
    "text named .jpg": (lambda d: _write(d / "text.jpg", b"hello, not an image\n"), "it is text"),
    "unsupported format": (lambda d: PILImage.new("RGB", (8, 8)).save(d / "a.gif") or d / "a.gif", "support"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_inputs_give_one_line_and_no_output(case, tmp_path, capsys):
    make, fragment = BAD_INPUTS[case]
    src_dir = tmp_path / "in"
    src_dir.mkdir()
    src = make(src_dir)
    out = tmp_path / "out.jpg"
    code, stdout, err = run(["-q", "erase", src, "-o", out, "--eraser", "telea"], capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert fragment in lines[0].lower()
    assert not out.exists()
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".out.jpg")]


def test_cli_errors_for_choices_paths_and_limits(photo, tmp_path, capsys, monkeypatch):
    p, lp, img, labels = photo
    out = tmp_path / "o.png"
    base = ["-q", "erase", p, "-o", out, "--eraser", "telea", "--segmenter", f"labels:{lp}"]
    cases = [
        (base + ["--select", "7"], "valid person numbers are 0..2"),
        (base + ["--select", "0", "--keep", "1"], "use only one of --select, --keep and --policy"),
        (["-q", "erase", p, "-o", p, "--eraser", "telea", "--segmenter", f"labels:{lp}"], "overwrite"),
        (["-q", "erase", p, "-o", tmp_path / "nodir" / "o.png", "--eraser", "telea"], "does not exist"),
        (["-q", "erase", p, "-o", lp / "o.png", "--eraser", "telea"], ""),
        (base + ["--policy", "nobody"], "unknown policy"),
        (
            base[:-2] + ["--segmenter", "magic"],
            "unknown segmenter 'magic'; choose one of: dashscope, ",
        ),  # + labels:PATH, local (and any test plugin's)
        (["-q", "erase", p, "-o", out, "--eraser", "sponge"], "unknown eraser 'sponge'"),
        (["-q", "erase", p, "-o", out, "--eraser", "telea", "--min-score", "1.5"], "must be in [0.01, 1)"),
    ]
    small = tmp_path / "small.labels.png"
    PILImage.fromarray(np.zeros((10, 10), np.uint8)).save(small)
    cases.append((["-q", "erase", p, "-o", out, "--eraser", "telea", "--segmenter", f"labels:{small}"], "label map"))
    for argv, fragment in cases:
        code, _, err = run(argv, capsys)
        assert code == 1, (argv, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
        assert fragment in err, (fragment, err)
        assert not out.exists()
    monkeypatch.setenv("PERSON_ERASE_MAX_PIXELS", "1000")
    code, _, err = run(base, capsys)
    assert code == 1 and "limit" in err and not out.exists()


@pytest.mark.parametrize("argv, fragment", [
    (["segment", "{p}", "--policy", "nobody", "--no-files"], "error: unknown policy 'nobody'; choose one of: all"),
    (["serve-dashscope", "--segmenter", "magic", "--port", "0"], "error: unknown segmenter 'magic'; choose one of: "),
    (["serve-dashscope", "--eraser", "sponge", "--port", "0"], "error: unknown eraser 'sponge'; choose one of: "),
    (["serve-dashscope", "--eraser", "lama", "--port", "0"], "error: the lama eraser needs a path: use lama:PATH"),
    (["serve-dashscope", "--segmenter", "local:x", "--port", "0"], "error: the local segmenter takes no ':' argument"),
])
def test_bad_names_are_refused_before_any_work(photo, capsys, argv, fragment):
    """One error line and exit 1 before the photo is segmented (no progress line) or a server bound."""
    p = photo[0]
    code, out, err = run([a.format(p=p) for a in argv], capsys)
    assert (code, out, err.count("\n"), err.startswith(fragment)) == (1, "", 1, True), err


def test_overwrite_flag_allows_writing_over_input(photo, tmp_path, capsys):
    p, lp, img, labels = photo
    code, _, err = run(
        ["-q", "erase", p, "-o", p, "--overwrite", "--eraser", "solid", "--segmenter", f"labels:{lp}"], capsys
    )
    assert code == 0, err
    assert not np.array_equal(np.asarray(PILImage.open(p)), img)


def test_help_teaches_and_module_entry_point_works():
    r = subprocess.run(
        [sys.executable, "-m", "person_erase", "erase", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert r.returncode == 0
    for word in ("--select", "--keep", "--policy", "examples:", "patchmatch", "--masks-dir"):
        assert word in r.stdout
    r = subprocess.run([sys.executable, "-m", "person_erase", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("person-erase ")


def test_side_outputs_never_replace_the_image_and_fail_before_work(photo, tmp_path, capsys):
    p, lp, img, labels = photo
    d = tmp_path / "outs"
    d.mkdir()
    out = d / "scene.erase.png"
    base = ["-q", "erase", p, "--eraser", "telea", "--segmenter", f"labels:{lp}"]
    cases = [
        (base + ["-o", out, "--report", out], "--report would write"),  # the report over the image
        (base + ["-o", out, "--masks-dir", d], "--masks-dir would write"),  # <stem>.erase.png = the image
        (base + ["-o", d / "a.png", "--report", d], "is a folder; give a file name such as"),
        (base + ["-o", d / "c.png", "--report", d / "nope" / "r.json"], "does not exist; create it"),
        (base + ["-o", d / "b.png", "--masks-dir", d / "b.png" / "sub"], "not a folder"),
    ]
    (d / "b.png").write_bytes(b"not a folder")  # --masks-dir below a file
    for argv, fragment in cases:
        code, _, err = run(argv, capsys)
        assert code == 1 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
        assert fragment in err, err
    assert sorted(f.name for f in d.iterdir()) == ["b.png"]  # nothing written, no temp files


def test_a_failing_side_output_takes_the_image_with_it(photo, tmp_path, capsys, monkeypatch):
    p, lp, img, labels = photo
    out = tmp_path / "o.png"
    from person_erase.cli import helpers

    def broken(path, text):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(helpers, "write_json_atomic", broken)
    code, _, err = run(["-q", "erase", p, "-o", out, "--eraser", "telea", "--segmenter", f"labels:{lp}",
                        "--masks-dir", tmp_path / "m", "--report", tmp_path / "r.json"], capsys)
    assert code == 1 and "No space left" in err
    assert not out.exists() and not list((tmp_path / "m").glob("*.png"))


def test_usage_mistakes_are_one_line_too(photo, tmp_path, capsys):
    p, lp, img, labels = photo
    out = tmp_path / "o.png"
    base = ["-q", "erase", p, "--eraser", "telea", "--segmenter", f"labels:{lp}"]
    for argv, fragment in [
        (base + ["-o", out, "--dilate", "abc"], "invalid int value"),
        (base, "required: -o/--output"),
        (["bogus"], "invalid choice"),
    ]:
        with pytest.raises(SystemExit) as info:
            main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert info.value.code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
        assert fragment in err and "--help" in err
    for argv, fragment in [
        (base + ["-o", out, "--dilate", "100000"], "longest side"),
        (["-q", "redact", p, "-o", out, "--segmenter", f"labels:{lp}", "--margin", "nan"], "finite"),
        (base + ["-o", out, "--policy", "all:3"], "takes no argument"),
        (base + ["-o", out, "--policy", "largest"], "largest:N"),
        (base + ["-o", out, "--select", "0,"], "empty item"),
    ]:
        code, _, err = run(argv, capsys)
        assert code == 1 and fragment in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()


def test_choices_are_checked_before_anyone_is_looked_for(photo, tmp_path, capsys, monkeypatch):
    # the cloud segmenter points at a closed loopback port: a late check would fail on the connection
    # (or, against the real service, after a billed call) instead of naming the mistake
    p, lp, img, labels = photo
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-test")
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", "http://127.0.0.1:9/api/v1")
    out = tmp_path / "o.png"
    base = ["-q", "erase", p, "-o", out, "--segmenter", "dashscope"]
    for argv, fragment in [
        (base + ["--policy", "bogus"], "unknown policy"),
        (base + ["--eraser", "sponge"], "unknown eraser"),
        (base + ["--select", "0", "--keep", "1"], "use only one of"),
        (base + ["--dilate", "-1"], "--dilate must be >= 0"),
        (base + ["--dilate", "100000"], "--dilate 100000 px is more than the photo's longest side"),
        (["-q", "redact", p, "-o", out, "--segmenter", "dashscope", "--strength", "2"], "strength"),
    ]:
        code, _, err = run(argv, capsys)
        assert code == 1 and fragment in err and "127.0.0.1" not in err, err


def test_options_an_engine_cannot_use_are_refused_not_dropped(photo, tmp_path, capsys, monkeypatch):
    p, lp, img, labels = photo
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-test")
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", "http://127.0.0.1:9/api/v1")
    out = tmp_path / "o.png"
    for argv, fragment in [
        (
            ["erase", p, "-o", out, "--segmenter", "dashscope", "--quality", "best"],
            "--quality is not used by --segmenter dashscope; it is an option of: local",
        ),
        (["erase", p, "-o", out, "--segmenter", f"labels:{lp}", "--min-score", "0.1"], "--min-score is not used by"),
        (
            ["segment", p, "--engine", "dashscope", "--min-score", "0.1"],
            "--min-score is not used by --engine dashscope",
        ),
        (
            ["erase", p, "-o", out, "--segmenter", f"labels:{lp}", "--fast"],
            "--fast is not used by --eraser patchmatch; it is an option of: dashscope",
        ),
        (
            ["redact", p, "-o", out, "--segmenter", f"labels:{lp}", "--style", "solid", "--strength", "0.2"],
            "the solid eraser has no option --strength",
        ),
    ]:
        code, _, err = run(["-q", *argv], capsys)
        assert code == 1 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
        assert fragment in err and "127.0.0.1" not in err, err
        assert not out.exists()


def test_cli_names_flags_where_the_library_names_parameters(photo, tmp_path, capsys):
    p, lp, img, labels = photo
    base = ["-q", "erase", p, "--eraser", "telea", "--segmenter", f"labels:{lp}"]
    for argv, fragment in [
        (base + ["-o", p], "pass --overwrite or choose another output path"),
        (base + ["-o", tmp_path / "o.png", "--policy", "largest"], "largest needs a count: --policy largest:N"),
        (base + ["-o", tmp_path / "o.png", "--dilate", "100000"], "--dilate 100000 px is more than"),
        (["-q", "redact", p, "-o", tmp_path / "o.png", "--segmenter", f"labels:{lp}", "--box-below", "-1"],
         "--box-below must be >= 0 px"),
    ]:
        code, _, err = run(argv, capsys)
        assert code == 1 and fragment in err and "`" not in err, err


def test_every_registered_engine_is_in_the_help(capsys):
    from person_erase.erasers import ERASERS
    from person_erase.segmenters import SEGMENTERS

    helps = {}
    for command in ("segment", "erase", "redact"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        helps[command] = " ".join(capsys.readouterr().out.split())
    for label in SEGMENTERS.labels():
        assert all(label in helps[c] for c in helps), label
    for label in ERASERS.labels():
        assert label in helps["erase"], label
    for label in ERASERS.labels("redact"):
        assert label in helps["redact"], label


def test_segment_files_get_the_usual_permissions(photo, tmp_path, capsys):
    p, lp, img, labels = photo
    code, _, err = run(["-q", "segment", p, "--engine", "scene", "--out-dir", tmp_path / "seg"], capsys)
    assert code == 0, err
    umask = os.umask(0)
    os.umask(umask)
    modes = {f.name: f.stat().st_mode & 0o777 for f in (tmp_path / "seg").iterdir()}
    assert modes == {"scene.labels.png": 0o666 & ~umask, "scene.overlay.png": 0o666 & ~umask}  # labels was 0600


def test_report_gets_the_usual_file_permissions(photo, tmp_path, capsys):
    p, lp, img, labels = photo
    report = tmp_path / "r.json"
    code, _, err = run(["-q", "erase", p, "-o", tmp_path / "o.png", "--eraser", "telea", "--segmenter", f"labels:{lp}",
                        "--report", report], capsys)
    assert code == 0, err
    umask = os.umask(0)
    os.umask(umask)
    assert report.stat().st_mode & 0o777 == 0o666 & ~umask == (tmp_path / "o.png").stat().st_mode & 0o777
