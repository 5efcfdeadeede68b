"""Batch processing with local engines: folders and manifests, journal and resume, failures, cache, progress.

Engines: the ``figures`` segmenter and ``logged_telea`` eraser from ``tests/_fake_engines.py``, registered
through the real registries for each test by the ``fake_engines`` fixture (``tests/_fake_engines_plugin.py``,
which worker processes import too), on small synthetic scenes saved as PNG.
"""

from __future__ import annotations

import io
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tests._fake_engines as fakes
from person_erase import batch as B
from person_erase.cli import main as cli_main
from person_erase.engineinfo import SegmentInfo
from person_erase.errors import InputError, SelectionError
from person_erase.instances import Instances
from person_erase.report import BatchSummary, ImageReport
from tests._imagefactory import make_scene
from tests.conftest import REPO

PARAMS = B.BatchParams(segmenter="figures", eraser="logged_telea")
FIGURE_RGB = fakes.FIGURE_COLOURS


def _write_scene(
    path: Path, n: int, seed: int, *, size: tuple[int, int] = (72, 96), magenta: bool = False
) -> np.ndarray:
    img, _ = make_scene(n, size=size, seed=seed)
    if magenta:
        img[0, 0] = fakes.MAGENTA
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return img


def _done_count(out: Path) -> int:
    """Items the journal of ``out`` has as done (0 while there is no journal yet)."""
    journal = out / ".person_erase" / "journal.sqlite"
    if not journal.exists():
        return 0
    try:
        with sqlite3.connect(journal, timeout=1) as db:
            return int(db.execute("SELECT COUNT(*) FROM items WHERE state='done'").fetchone()[0])
    except sqlite3.Error:
        return 0


def _wait_done(proc: subprocess.Popen, out: Path, *, at_least: int, timeout: float) -> int:
    """Poll ``out``'s journal until ``at_least`` items are done, ``proc`` ended or ``timeout`` s passed."""
    deadline = time.monotonic() + timeout
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        done = _done_count(out)
        if done >= at_least:
            break
        time.sleep(0.05)
    return done


@pytest.fixture(autouse=True)
def _fake_engines(fake_engines: None) -> None:
    """``figures`` and ``logged_telea`` registered for each test of this module (``conftest.fake_engines``)."""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """in/ with 5 scenes in nested folders, two non-images, and a hidden folder that is not entered."""
    src = tmp_path / "in"
    _write_scene(src / "a.png", 1, 0)
    _write_scene(src / "b.png", 2, 1)
    _write_scene(src / "x" / "c.png", 3, 2)
    _write_scene(src / "x" / "y" / "d.png", 2, 3)
    _write_scene(src / "x" / "y" / "e.png", 1, 4)
    (src / "notes.txt").write_text("not a photo")
    (src / "x" / "data.csv").write_text("a,b\n")
    _write_scene(src / ".hidden" / "z.png", 1, 5)
    return src


@pytest.fixture
def call_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "calls.log"
    log.write_text("")
    monkeypatch.setenv("PE_FAKE_LOG", str(log))
    return log


def _calls(log: Path, kind: str) -> list[str]:
    return [ln.split()[1] for ln in log.read_text().splitlines() if ln.startswith(kind + " ")]


def _no_figures_left(path: Path) -> bool:
    px = np.asarray(Image.open(path).convert("RGB")).astype(np.int32)
    dist = np.abs(px[:, :, None, :] - FIGURE_RGB[None, None]).sum(axis=3).min(axis=2)
    return int((dist < 30).sum()) < 5  # a stray background pixel may match by chance


# --- discovery, mirroring, outputs ---------------------------------------------------------------


def test_folder_is_mirrored_with_sidecars_and_summary(tree: Path, tmp_path: Path, call_log: Path) -> None:
    out = tmp_path / "out"
    summary = B.run_batch(tree, out, params=PARAMS, workers=1)
    rels = ["a.png", "b.png", "x/c.png", "x/y/d.png", "x/y/e.png"]
    assert (summary.total, summary.done, summary.failed, summary.skipped, summary.non_images) == (5, 5, 0, 0, 2)
    assert [it.input for it in summary.items] == rels
    for rel in rels:
        o = out / rel
        assert o.is_file() and _no_figures_left(o), rel
        rep = ImageReport.model_validate_json((out / (rel + ".json")).read_text())
        assert rep.outside_mask_changed_px == 0
        assert rep.input.sha256 == B.file_sha256(tree / rel)
        assert rep.output == rel and rep.segmenter == "figures" and rep.eraser == "logged_telea"
        assert rep.parameters["segment_cache"] == "miss"
        # pixels outside the erase mask are the input's, byte for byte
        a = np.asarray(Image.open(tree / rel).convert("RGB"))
        b = np.asarray(Image.open(o).convert("RGB"))
        changed = (a != b).any(axis=2)
        assert changed.sum() <= rep.erase_area_px
    assert not (out / ".hidden").exists()
    disk = BatchSummary.model_validate_json((out / "summary.json").read_text())
    assert disk.done == 5 and disk.non_images == 2 and disk.parameters["eraser"] == "logged_telea"
    # only our own files: no temporary leftovers
    leftovers = [p for p in out.rglob(".*") if p.is_file() and ".person_erase" not in p.parts]
    assert leftovers == []
    assert len(_calls(call_log, "segment")) == 5


def test_two_workers_give_the_same_outputs_as_one(tree: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PE_FAKE_ORT_LOG", str(tmp_path / "o1.ort"))
    one = B.run_batch(tree, tmp_path / "o1", params=PARAMS, workers=1)
    monkeypatch.setenv("PE_FAKE_ORT_LOG", str(tmp_path / "o2.ort"))
    two = B.run_batch(tree, tmp_path / "o2", params=PARAMS, workers=2)
    assert one.done == two.done == 5 and two.engine == "local, 2 workers"
    # onnxruntime sessions: the usual up-to-2 threads in this process; a pool worker's share of the cores
    cores = len(os.sched_getaffinity(0))
    inline = [ln.split() for ln in (tmp_path / "o1.ort").read_text().splitlines()]
    pooled = [ln.split() for ln in (tmp_path / "o2.ort").read_text().splitlines()]
    assert {(int(t), int(pid)) for _, t, pid in inline} == {(min(2, cores), os.getpid())}
    assert len(pooled) == 5 and {int(t) for _, t, _ in pooled} == {max(1, cores // 2)}
    assert os.getpid() not in {int(pid) for *_, pid in pooled}
    for it in one.items:
        a = np.asarray(Image.open(tmp_path / "o1" / it.input))
        b = np.asarray(Image.open(tmp_path / "o2" / it.input))
        assert np.array_equal(a, b), it.input


def test_output_dir_inside_input_is_not_walked(tree: Path) -> None:
    out = tree / "cleaned"
    first = B.run_batch(tree, out, params=PARAMS, workers=1)
    again = B.run_batch(tree, out, params=PARAMS, workers=1, resume=True)
    assert first.total == again.total == 5
    assert again.skipped == 5 and again.done == 0


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        ("same", "is the input folder"),
        ("missing", "no such folder"),
        ("single", "is one image"),
        ("txt", "must end in .csv or .jsonl"),
    ],
)
def test_bad_invocations_raise(tree: Path, tmp_path: Path, setup: str, error: str) -> None:
    src, out = tree, tmp_path / "out"
    if setup == "same":
        out = tree
    elif setup == "missing":
        src = tmp_path / "nope"
    elif setup == "single":
        src = tree / "a.png"
    elif setup == "txt":
        src = tree / "notes.txt"
    with pytest.raises(InputError, match=error):
        B.run_batch(src, out, params=PARAMS, workers=1)


def test_existing_journal_needs_resume(tree: Path, tmp_path: Path) -> None:
    B.run_batch(tree, tmp_path / "out", params=PARAMS, workers=1)
    with pytest.raises(InputError, match="`resume=True`"):
        B.run_batch(tree, tmp_path / "out", params=PARAMS, workers=1)


def test_format_collision_is_refused(tmp_path: Path) -> None:
    _write_scene(tmp_path / "in" / "p.png", 1, 0)
    _write_scene(tmp_path / "in" / "p.bmp", 1, 1)
    with pytest.raises(InputError, match="both be written"):
        B.run_batch(
            tmp_path / "in",
            tmp_path / "out",
            params=B.BatchParams(segmenter="figures", eraser="telea", output_format="png"),
        )


def test_symlink_in_output_pointing_outside_is_not_followed(tree: Path, tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir()
    (out / "x").symlink_to(elsewhere, target_is_directory=True)
    s = B.run_batch(tree, out, params=PARAMS, workers=1)
    failed = {it.input: it.reason for it in s.items if it.status == "failed"}
    assert set(failed) == {"x/c.png", "x/y/d.png", "x/y/e.png"}
    assert all("symbolic link" in r for r in failed.values())
    assert list(elsewhere.rglob("*")) == []


# --- manifests -----------------------------------------------------------------------------------


def test_csv_manifest_with_per_image_choice(tree: Path, tmp_path: Path) -> None:
    m = tree / "list.csv"
    m.write_text('path,select,keep,policy\nx/c.png,"0,2",,\nb.png,,1,\na.png,,,\nmissing.png,,,\n')
    out = tmp_path / "out"
    s = B.run_batch(m, out, params=PARAMS, workers=1)
    status = {it.input: it.status for it in s.items}
    assert status == {"x/c.png": "done", "b.png": "done", "a.png": "done", "missing.png": "failed"}
    c = ImageReport.model_validate_json((out / "x/c.png.json").read_text())
    assert [r.index for r in c.instances if r.selected] == [0, 2]
    b = ImageReport.model_validate_json((out / "b.png.json").read_text())
    assert [r.index for r in b.instances if r.kept] == [1]
    a = ImageReport.model_validate_json((out / "a.png.json").read_text())
    assert a.policy == "all"
    assert "no such file" in next(it.reason for it in s.items if it.input == "missing.png")


def test_jsonl_manifest(tree: Path, tmp_path: Path) -> None:
    m = tree / "list.jsonl"
    m.write_text('{"path": "x/c.png", "select": [1]}\n# a comment\n\n{"path": "x/y/d.png", "policy": "largest:1"}\n')
    s = B.run_batch(m, tmp_path / "out", params=PARAMS, workers=1)
    assert s.done == 2
    c = ImageReport.model_validate_json((tmp_path / "out/x/c.png.json").read_text())
    assert [r.index for r in c.instances if r.selected] == [1]


@pytest.mark.parametrize(
    ("content", "suffix", "exc", "match"),
    [
        ("path\n../escape.png\n", ".csv", InputError, r"contains '\.\.'"),
        ("path\n/etc/passwd.png\n", ".csv", InputError, "absolute path"),
        ('{"path": "a/../../b.png"}\n', ".jsonl", InputError, r"contains '\.\.'"),
        ("path\na.png\na.png\n", ".csv", InputError, "listed twice"),
        ("file\na.png\n", ".csv", InputError, "'path' column"),
        ("path,colour\na.png,red\n", ".csv", InputError, "unknown column"),
        ('{"path": "a.png", "select": "x"}\n', ".jsonl", SelectionError, "not a number"),
        ('{"path": "a.png", "select": [0], "keep": [1]}\n', ".jsonl", SelectionError, "only one of"),
        ("{not json}\n", ".jsonl", InputError, "not valid JSON"),
        ("path\nnotes.txt\n", ".csv", InputError, "image extension"),
    ],
)
def test_bad_manifests_are_refused_before_any_work(tree: Path, tmp_path: Path, content: str, suffix: str,
                                                    exc: type[Exception], match: str) -> None:
    m = tree / f"m{suffix}"
    m.write_text(content)
    with pytest.raises(exc, match=match):
        B.run_batch(m, tmp_path / "out", params=PARAMS, workers=1)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0,2", (0, 2)),
        ("0 2", (0, 2)),
        ("1;3", (1, 3)),
        ([4], (4,)),
        (2, (2,)),
        ("", None),
        (None, None),
        ("[0, 1]", (0, 1)),
    ],
)
def test_parse_numbers(value: object, expected: object) -> None:
    assert B.parse_numbers(value) == expected


# --- journal, resume, cache -----------------------------------------------------------------------


def test_resume_skips_done_and_a_new_choice_reuses_the_segmentation(tree: Path, tmp_path: Path, call_log: Path) -> None:
    out = tmp_path / "out"
    B.run_batch(tree, out, params=PARAMS, workers=1)
    assert len(_calls(call_log, "segment")) == 5 and len(_calls(call_log, "erase")) == 5
    again = B.run_batch(tree, out, params=PARAMS, workers=1, resume=True)
    assert (again.done, again.skipped, again.cache_hits) == (0, 5, 0)
    assert len(_calls(call_log, "erase")) == 5  # nothing done twice
    other = B.run_batch(tree, out, params=B.BatchParams(segmenter="figures", eraser="logged_telea", select=(0,)),
                        workers=2, resume=True)
    assert (other.done, other.cache_hits) == (5, 5)
    assert len(_calls(call_log, "segment")) == 5  # segmented once, ever
    rep = ImageReport.model_validate_json((out / "x/c.png.json").read_text())
    assert rep.parameters["segment_cache"] == "hit"
    assert [r.index for r in rep.instances if r.selected] == [0]


def test_changed_file_is_processed_again(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    B.run_batch(tree, out, params=PARAMS, workers=1)
    _write_scene(tree / "a.png", 2, 9)
    s = B.run_batch(tree, out, params=PARAMS, workers=1, resume=True)
    assert s.done == 1 and s.skipped == 4 and next(it for it in s.items if it.status == "done").input == "a.png"


def test_cache_entries_and_summary_get_the_usual_permissions(tmp_path: Path) -> None:
    people = Instances.from_engine(np.ones((1, 8, 8), bool), scores=[0.9])
    old = os.umask(0o022)
    try:
        entry = B.store_segmentation(tmp_path / "cache", "cd" * 32, people)
        B.open_storage(tmp_path).write_text("summary.json", "{}")
    finally:
        os.umask(old)
    assert entry.stat().st_mode & 0o777 == 0o644 and (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "summary.json"]  # no temporary files left


def test_segmentation_cache_roundtrip_keeps_overlaps_and_numbers(tmp_path: Path) -> None:
    masks = np.zeros((3, 20, 30), bool)
    masks[0, 2:10, 2:10] = True
    masks[1, 5:15, 8:20] = True  # overlaps person 0
    masks[2, 1:4, 25:29] = True
    info = SegmentInfo(engine="x", task_ids=("t1",), details={"sizes": [416], "obj": object()})
    people = Instances.from_engine(masks, scores=[0.9, 0.8, 0.7], info=info)
    sub = people[[0, 2]]  # non-consecutive numbers survive
    for inst in (people, sub):
        B.store_segmentation(tmp_path, "ab" * 32, inst)
        back = B.load_segmentation(tmp_path, "ab" * 32)
        assert back is not None
        assert np.array_equal(back.masks, inst.masks) and np.array_equal(back.index, inst.index)
        assert np.array_equal(back.boxes, inst.boxes) and np.allclose(back.scores, inst.scores)
        assert back.info == SegmentInfo(engine="x", task_ids=("t1",), details={"sizes": [416]})
    (tmp_path / "cd").mkdir()
    (tmp_path / "cd" / ("cd" * 32 + ".npz")).write_bytes(b"garbage")
    assert B.load_segmentation(tmp_path, "cd" * 32) is None  # a damaged entry is a miss, not a failure


def test_shared_cache_dir_across_output_folders(tree: Path, tmp_path: Path, call_log: Path) -> None:
    cache = tmp_path / "cache"
    B.run_batch(tree, tmp_path / "o1", params=PARAMS, workers=1, cache_dir=cache)
    s = B.run_batch(tree, tmp_path / "o2", params=B.BatchParams(mode="redact", segmenter="figures", style="pixelate"),
                    workers=1, cache_dir=cache)
    assert s.done == 5 and s.cache_hits == 5 and len(_calls(call_log, "segment")) == 5
    rep = ImageReport.model_validate_json((tmp_path / "o2" / "b.png.json").read_text())
    assert rep.mode == "redact" and rep.metadata_policy == "strip-gps" and s.parameters["eraser"] == "pixelate"


def test_crash_between_written_and_done_finishes_the_rename(tree: Path, tmp_path: Path, call_log: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    real_replace = os.replace

    def dying_replace(a: object, b: object) -> None:
        if Path(str(b)) == out / "x" / "c.png":  # the 3rd image's rename: its files are written and journaled
            raise KeyboardInterrupt
        real_replace(a, b)

    from person_erase.batch import storage

    monkeypatch.setattr(storage.os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        B.run_batch(tree, out, params=PARAMS, workers=1)
    monkeypatch.setattr(storage.os, "replace", real_replace)
    erased_before = len(_calls(call_log, "erase"))
    assert erased_before == 3
    s = B.run_batch(tree, out, params=PARAMS, workers=1, resume=True)
    assert s.done == 3 and s.skipped == 2
    recovered = [it for it in s.items if it.reason == "finished an interrupted save"]
    assert [it.input for it in recovered] == ["x/c.png"]
    assert len(_calls(call_log, "erase")) == erased_before + 2  # x/c.png was not erased again
    assert (out / "x/c.png").is_file() and (out / "x/c.png.json").is_file()


# --- failures ------------------------------------------------------------------------------------


def test_failures_are_isolated_and_retried_on_request(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tree / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    _write_scene(tree / "marked.png", 1, 7, magenta=True)
    out = tmp_path / "out"
    s = B.run_batch(tree, out, params=PARAMS, workers=2)
    assert (s.done, s.failed) == (5, 2)
    failed = {it.input: it for it in s.items if it.status == "failed"}
    assert failed["broken.png"].stage == "load" and "damaged or truncated" in failed["broken.png"].reason
    assert failed["marked.png"].stage == "segment" and "marked to fail" in failed["marked.png"].reason
    assert not (out / "broken.png").exists() and not (out / "marked.png").exists()
    again = B.run_batch(tree, out, params=PARAMS, workers=1, resume=True)
    assert (again.done, again.failed, again.skipped) == (0, 2, 5)
    assert "earlier run" in next(it.reason for it in again.items if it.input == "marked.png")
    monkeypatch.setenv("PE_FAKE_HEAL", "1")
    retry = B.run_batch(tree, out, params=PARAMS, workers=1, retry_failed=True)
    assert (retry.done, retry.failed, retry.skipped) == (1, 1, 5)
    assert (out / "marked.png").is_file()
    with sqlite3.connect(out / ".person_erase" / "journal.sqlite") as db:
        attempts = dict(db.execute("SELECT rel, attempts FROM items"))
    assert attempts["marked.png"] == 2 and attempts["a.png"] == 1


# --- CLI and progress ----------------------------------------------------------------------------


def test_cli_plain_log_lines_summary_table_and_exit_code(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_scene(tree / "marked.png", 1, 7, magenta=True)
    out = tmp_path / "out"
    code = cli_main(["batch", str(tree), "-o", str(out), "--segmenter", "figures", "--eraser", "telea",
                     "--plugin", "tests._fake_engines_plugin", "--workers", "1"])
    cap = capsys.readouterr()
    assert code == 1
    assert "[1/6]" in cap.err and "img/s" in cap.err and "failed marked.png [segment]" in cap.err
    assert re.search(r"done\s+5\n", cap.out) and re.search(r"non-images\s+2 ", cap.out) and "--retry-failed" in cap.out
    code = cli_main(["batch", str(tree), "-o", str(out), "--segmenter", "figures", "--eraser", "telea", "--resume"])
    assert code == 1  # the failure is still there
    code = cli_main(["batch", str(tree), "-o", str(out), "--segmenter", "nope", "--resume"])
    assert code == 1 and "unknown segmenter 'nope'" in capsys.readouterr().err


def test_cli_rejects_style_with_erase_mode(tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["batch", str(tree), "-o", str(tmp_path / "o"), "--mode", "erase", "--style", "blur"]) == 1
    assert "--style is for redact" in capsys.readouterr().err


def test_tqdm_bar_shows_counts_and_rate(tree: Path, tmp_path: Path) -> None:
    stream = io.StringIO()
    B.run_batch(tree, tmp_path / "out", params=PARAMS, workers=1, progress=B.TqdmProgress(stream))
    text = stream.getvalue()
    assert "5/5" in text and "done=5" in text and "failed=0" in text and "skipped=0" in text and "img/s" in text


def test_summary_table_lists_failures(tmp_path: Path) -> None:
    s = BatchSummary(input_dir="in", output_dir=str(tmp_path), total=3, done=1, failed=1, skipped=1, seconds=2.0,
                     images_per_s=0.5, engine="local, 1 worker",
                     items=[B.BatchItem(input="x.png", status="failed", stage="erase", reason="boom")])
    from person_erase.cli.batch import format_summary

    text = format_summary(s)
    assert "x.png  [erase] boom" in text and "summary:" in text


# --- kill -9 and resume (a real subprocess) --------------------------------------------------------


def test_kill_9_mid_run_then_resume_loses_nothing_and_redoes_only_unfinished(tmp_path: Path) -> None:
    src, out, log = tmp_path / "in", tmp_path / "out", tmp_path / "calls.log"
    n = 12
    for i in range(n):
        _write_scene(src / f"s{i // 4}" / f"p{i:02d}.png", 1 + i % 3, 100 + i)
    env = {**os.environ, "PE_FAKE_LOG": str(log), "PE_FAKE_DELAY": "0.25", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "person_erase", "batch", str(src), "-o", str(out), "--segmenter", "figures",
           "--eraser", "logged_telea", "--plugin", "tests._fake_engines_plugin", "--workers", "2"]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    journal = out / ".person_erase" / "journal.sqlite"
    try:
        done = _wait_done(proc, out, at_least=3, timeout=60)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: the parent and its pool workers
        proc.wait()
    assert 3 <= done < n, "the run was not killed mid-way"
    time.sleep(0.3)  # let any orphan worker notice its parent is gone
    resumed = subprocess.run(
        [*cmd, "--resume"], cwd=REPO, env={**env, "PE_FAKE_DELAY": "0"}, capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr
    summary = BatchSummary.model_validate_json((out / "summary.json").read_text())
    assert summary.done + summary.skipped == n and summary.failed == 0
    assert summary.skipped >= done
    for i in range(n):
        rel = f"s{i // 4}/p{i:02d}.png"
        assert _no_figures_left(out / rel), rel
        ImageReport.model_validate_json((out / (rel + ".json")).read_text())
    with sqlite3.connect(journal) as db:
        states = db.execute("SELECT state, COUNT(*) FROM items GROUP BY state").fetchall()
    assert states == [("done", n)]
    erases = _calls(log, "erase")
    counts = {d: erases.count(d) for d in set(erases)}
    assert len(counts) == n
    # only images that were in flight at the kill (at most workers + 1) were erased a second time
    assert sum(c - 1 for c in counts.values()) <= 3
    leftovers = [p for p in out.rglob(".*") if p.is_file() and ".person_erase" not in p.parts]
    assert leftovers == []


def test_stale_temporary_files_are_swept_and_others_left_alone(tmp_path: Path) -> None:
    """Every temporary file of ours (this version's short names, save_image's, and the former long ones)
    is removed by the next run; the user's own dot-files and outputs are not."""
    from person_erase.batch import layout

    dst = B.LocalStorage(tmp_path)
    tmp_image, tmp_report = layout.tmp_rels("x/p03.png", "abcdef1234567890")
    (tmp_path / "x").mkdir()
    ours = [tmp_image, tmp_report, "x/.pe-k2j3_x9.tmp", ".p04.png.abcdef123456.part.png",
            "..p04.png.abcdef123456.part.png.k2j3.tmp"]
    others = ["p03.png.json", ".hidden.png", "x/.p03.png.json", "x/p03.png"]
    for f in (*ours, *others):
        (tmp_path / f).write_text("x")
    assert sorted(layout.sweep_temps(dst)) == sorted(ours)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == sorted(others)


# --- the package's shape and the checks erase applies ----------------------------------------------


def test_nothing_under_batch_imports_argparse_or_the_cli() -> None:
    import ast

    pkg = REPO / "person_erase" / "batch"
    for f in sorted(pkg.rglob("*.py")):
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            for n in names:
                parts = n.lstrip(".").split(".")
                assert parts[0] != "argparse" and not (n.startswith("..") and parts[0] == "cli") \
                    and "person_erase.cli" not in n, f"{f.name} imports {n}"


def test_take_jobs_fills_the_room_skips_recorded_images_and_stops(tree: Path, tmp_path: Path) -> None:
    import threading

    from person_erase.batch import driver as D
    from person_erase.batch.executors import take_jobs
    from person_erase.batch.journal import Journal

    (tmp_path / "o").mkdir()
    specs = B.discover(tree).items
    gone = specs[0].src
    (tree / gone).unlink()  # recorded at once as failed: takes no room
    with Journal(tmp_path / "j.sqlite") as j:
        drv = D.Driver(source=B.LocalStorage(tree), dest=B.LocalStorage(tmp_path / "o"), params=PARAMS, journal=j,
                       cache_dir=tmp_path / "c", retry_failed=False, progress=B.NoProgress(), max_pixels=10**8)
        stop = threading.Event()
        it = iter(specs)
        first = list(take_jobs(drv, it, stop, room=2))
        assert [job.rel for job in first] == [s.rel for s in specs[1:3]] and drv.counts["failed"] == 1
        stop.set()
        assert list(take_jobs(drv, it, stop, room=5)) == []  # stopped: nothing more is prepared
        stop.clear()
        drv.stopped = "the free quota of image-erase-completion is used up"
        assert list(take_jobs(drv, it, stop)) == []  # the run was stopped (cloud quota)
        drv.stopped = None
        rest = list(take_jobs(drv, it, stop))  # no bound: everything left
        assert [job.rel for job in rest] == [s.rel for s in specs[3:]]
        assert list(take_jobs(drv, it, stop, room=3)) == []  # exhausted


def test_job_and_result_are_frozen_and_picklable(tree: Path, tmp_path: Path) -> None:
    import dataclasses
    import pickle

    from person_erase.batch import driver as D
    from person_erase.batch.journal import Journal

    (tmp_path / "o").mkdir()
    with Journal(tmp_path / "j.sqlite") as j:
        drv = D.Driver(source=B.LocalStorage(tree), dest=B.LocalStorage(tmp_path / "o"), params=PARAMS, journal=j,
                       cache_dir=tmp_path / "c", retry_failed=False, progress=B.NoProgress(), max_pixels=10**8)
        job = drv.prepare(B.discover(tree).items[0])
    assert job is not None
    assert pickle.loads(pickle.dumps(job)) == job
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.rel = "x"  # type: ignore[misc]
    res = B.process_item(job)
    assert res.ok and pickle.loads(pickle.dumps(res)) == res
    assert not any(isinstance(getattr(job, f.name), dict) for f in dataclasses.fields(job))


def test_max_pixels_setting_applies_in_batch(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSON_ERASE_MAX_PIXELS", "5000")  # the scenes are 72x96 = 6912 px
    s = B.run_batch(tree, tmp_path / "out", params=PARAMS, workers=1)
    assert s.failed == 5 and s.done == 0
    assert all(it.stage == "load" and "PERSON_ERASE_MAX_PIXELS" in (it.reason or "") for it in s.items)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"dilate": -1}, InputError, "dilate"),
        ({"policy": "nobody"}, SelectionError, "unknown policy"),
        ({"select": (0,), "keep": (1,)}, SelectionError, "only one of"),
        ({"select": "0,x"}, SelectionError, "not a number"),
        ({"output_format": "gif"}, InputError, "unknown `output_format`"),
        ({"metadata": "all"}, InputError, "unknown `metadata` policy"),
    ],
)
def test_batch_params_refuse_what_erase_refuses(kwargs: dict, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        B.BatchParams(segmenter="figures", eraser="telea", **kwargs)


def test_batch_finishes_a_new_report_and_leaves_the_pipelines_as_built(tree: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import person_erase.batch.work as work
    from person_erase import report as report_mod

    built: list[tuple[ImageReport, str]] = []  # (the pipeline's report, its JSON when the batch got it)

    def finish(rep: ImageReport, **kw: object) -> ImageReport:
        built.append((rep, rep.to_json()))
        return report_mod.finish_report(rep, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(work, "finish_report", finish)
    out = tmp_path / "out"
    assert B.run_batch(tree, out, params=PARAMS, workers=1).done == 5  # workers=1: in this process
    assert len(built) == 5
    for rep, json_then in built:
        assert rep.to_json() == json_then and rep.output is None  # nobody patched the built report
    sidecars = [ImageReport.model_validate_json(p.read_text()) for p in sorted(out.rglob("*.png.json"))]
    assert len(sidecars) == 5 and all(s.output and s.metadata_policy and "save" in s.timings_ms for s in sidecars)
    assert all(s.parameters["segment_cache"] == "miss" and "segment" in s.timings_ms for s in sidecars)


@pytest.mark.parametrize("workers,cores,budget", [(1, 2, 2), (2, 2, 1), (3, 2, 1), (2, 8, 4), (3, 8, 2), (0, 2, 2)])
def test_thread_budget_shares_the_cores_at_least_one_each(workers: int, cores: int, budget: int) -> None:
    from person_erase.batch.executors.local import thread_budget

    assert thread_budget(workers, cores) == budget


def test_process_threads_are_the_default_of_new_sessions_only() -> None:
    from person_erase import ortsession
    from person_erase.segmenters._yolox import MODEL_PATH

    def threads(**kw: int) -> int:
        return ortsession.cpu_session(MODEL_PATH, **kw).get_session_options().intra_op_num_threads

    try:
        ortsession.set_process_threads(1)
        assert (threads(), threads(threads=2)) == (1, 2)  # an engine built with `threads` keeps its own
    finally:
        ortsession.set_process_threads(None)
    assert threads() == min(2, os.cpu_count() or 1)
    with pytest.raises(ValueError, match="at least 1"):
        ortsession.set_process_threads(0)
