"""The model store: local files in place or copied, downloads over a real loopback HTTP server, the CLI.

Downloads are refused unless https (plain http only to loopback); a sha256 mismatch, an interrupted
transfer, a file over the cap or a file of no engine family leave nothing behind.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")

import _onnx_graphs as graphs  # noqa: E402

from person_erase import modelstore  # noqa: E402
from person_erase.erasers import get_eraser  # noqa: E402
from person_erase.errors import EngineError, InputError  # noqa: E402
from person_erase.segmenters import get_segmenter  # noqa: E402


@pytest.fixture()
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "store"
    monkeypatch.setenv("PERSON_ERASE_MODELS", str(folder))
    return folder


@pytest.fixture()
def lama_file(tmp_path: Path) -> Path:
    return graphs.lama(tmp_path / "lama_fp32.onnx", side=64, colour=(200, 30, 90))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    """Files in the store other than the index and its lock."""
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name not in (modelstore.INDEX, ".lock"))


class _Handler(http.server.BaseHTTPRequestHandler):
    payload: bytes = b""

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = self.server.payload  # type: ignore[attr-defined]
        if self.path == "/lama.onnx":
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/cut.onnx":  # promises everything, sends half, hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/lama.onnx")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/elsewhere":
            self.send_response(302)
            self.send_header("Location", "http://example.com/lama.onnx")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()


@pytest.fixture()
def server(lama_file: Path) -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.payload = lama_file.read_bytes()  # type: ignore[attr-defined]
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=5)


# --- local files -----------------------------------------------------------------------------------


def test_add_in_place_list_and_use(store: Path, lama_file: Path) -> None:
    m = modelstore.add_model("biglama", lama_file)
    assert (m.family, m.kind, m.stored, m.sha256) == ("lama", "eraser", False, _sha(lama_file))
    assert [x.name for x in modelstore.list_models()] == ["biglama"]
    assert _leftovers(store) == []  # referenced in place: nothing copied
    eraser = get_eraser("biglama")
    assert eraser.model_info() == {"family": "lama", "name": "lama_fp32.onnx", "size": lama_file.stat().st_size,
                                   "sha256": _sha(lama_file)}


def test_copy_into_the_store_and_remove(store: Path, lama_file: Path) -> None:
    m = modelstore.add_model("copied", lama_file, copy=True)
    assert m.stored and Path(m.path).parent == store.resolve() and _sha(Path(m.path)) == m.sha256
    modelstore.remove_model("copied")
    assert _leftovers(store) == [] and modelstore.list_models() == []
    assert lama_file.exists()


def test_store_files_get_the_usual_permissions(store: Path, lama_file: Path, server: str) -> None:
    old = os.umask(0o022)
    try:
        copied = Path(modelstore.add_model("copied", lama_file, copy=True).path)
        downloaded = Path(modelstore.add_model("dl", f"{server}/lama.onnx").path)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (copied, downloaded, store / modelstore.INDEX)}
    assert modes == {"copied.onnx": 0o644, "dl.onnx": 0o644, modelstore.INDEX: 0o644}  # the copies were 0600


def test_refusals_leave_the_store_empty(store: Path, lama_file: Path, tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="sha256 mismatch"):
        modelstore.add_model("x", lama_file, sha256="0" * 64)
    with pytest.raises(InputError, match="64 hex digits"):
        modelstore.add_model("x", lama_file, sha256="abc")
    with pytest.raises(InputError, match="built-in engine or family name"):
        modelstore.add_model("lama", lama_file)
    with pytest.raises(InputError, match="built-in engine or family name"):
        modelstore.add_model("patchmatch", lama_file)
    with pytest.raises(InputError, match="must be 1-64 letters"):
        modelstore.add_model("a:b", lama_file)
    det = graphs.detector_only(tmp_path / "det.onnx")
    with pytest.raises(EngineError, match="fits no engine family: lama: .*; migan: .*; yolo-seg: .*detection-only"):
        modelstore.add_model("det", det)
    (tmp_path / "junk.onnx").write_bytes(b"not a model at all")
    with pytest.raises(EngineError, match="not a complete ONNX file"):
        modelstore.add_model("junk", tmp_path / "junk.onnx")
    assert modelstore.list_models() == [] and _leftovers(store) == []


def test_duplicate_name_needs_overwrite(store: Path, lama_file: Path, tmp_path: Path) -> None:
    modelstore.add_model("m", lama_file)
    with pytest.raises(InputError, match="already registered"):
        modelstore.add_model("m", lama_file)
    other = graphs.migan(tmp_path / "migan.onnx")
    assert modelstore.add_model("m", other, overwrite=True).family == "migan"


def test_changed_file_and_wrong_kind_are_refused_at_use(store: Path, lama_file: Path, tmp_path: Path) -> None:
    modelstore.add_model("biglama", lama_file)
    with pytest.raises(EngineError, match="is a lama eraser, not a segmenter"):
        get_segmenter("biglama")
    graphs.lama(lama_file, side=64, colour=(1, 2, 3))  # same name, other bytes
    with pytest.raises(EngineError, match="changed since it was added"):
        get_eraser("biglama")
    lama_file.unlink()
    with pytest.raises(EngineError, match="is missing"):
        get_eraser("biglama")
    with pytest.raises(EngineError, match="unknown eraser .nothere.*lama:PATH.*eraser model in the model store"):
        get_eraser("nothere")


def test_store_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PERSON_ERASE_MODELS", str(tmp_path / "elsewhere"))
    assert modelstore.store_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("PERSON_ERASE_MODELS")
    import platformdirs

    assert modelstore.store_dir() == Path(platformdirs.user_data_dir("person_erase", appauthor=False)) / "models"


# --- downloads ---------------------------------------------------------------------------------------


def test_download_checked_and_stored(store: Path, server: str, lama_file: Path) -> None:
    seen: list[int] = []
    m = modelstore.add_model("dl", f"{server}/lama.onnx", sha256=_sha(lama_file).upper(),
                             progress=lambda got, total: seen.append(got))
    assert m.stored and m.source == f"{server}/lama.onnx" and Path(m.path).read_bytes() == lama_file.read_bytes()
    assert _leftovers(store) == ["dl.onnx"] and seen and seen[-1] == lama_file.stat().st_size
    assert get_eraser("dl").model.sha256 == m.sha256
    # a redirect on the same loopback server is followed
    assert modelstore.add_model("dl2", f"{server}/moved").sha256 == m.sha256


@pytest.mark.parametrize(
    ("path", "kwargs", "message"),
    [
        ("/lama.onnx", {"sha256": "1" * 64}, "sha256 mismatch"),
        ("/cut.onnx", {}, "failed|interrupted"),
        ("/lama.onnx", {"max_bytes": 100}, "over the 100-byte limit"),
        ("/missing.onnx", {}, "HTTP 404"),
        ("/elsewhere", {}, "only https"),
    ],
)
def test_failed_downloads_leave_nothing(store: Path, server: str, path: str, kwargs: dict, message: str) -> None:
    with pytest.raises((EngineError, InputError), match=message):
        modelstore.add_model("dl", f"{server}{path}", **kwargs)
    assert _leftovers(store) == [] and modelstore.list_models() == []


@pytest.mark.parametrize("url", ["http://example.com/lama.onnx", "ftp://127.0.0.1/lama.onnx", "file:///etc/passwd"])
def test_only_https_or_loopback_http(store: Path, url: str) -> None:
    with pytest.raises(InputError, match="only https"):
        modelstore.add_model("dl", url)
    assert not store.exists()


# --- the CLI ----------------------------------------------------------------------------------------


def test_cli_models_add_list_check(
    store: Path, lama_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from person_erase.cli import main

    assert main(["models", "add", "biglama", str(lama_file), "--sha256", _sha(lama_file)]) == 0
    out = capsys.readouterr().out
    assert "added biglama: lama eraser" in out and "--eraser biglama" in out
    assert main(["models", "add", "biglama", str(lama_file)]) == 1
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and err.startswith("error: a model named 'biglama' is already registered")
        and "--force" in err
    )
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "biglama" in out and "lama" in out and _sha(lama_file)[:12] in out and "ok" in out
    assert main(["models", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"][0]["sha256"] == _sha(lama_file)
    assert main(["models", "check", str(lama_file)]) == 0
    assert "fits lama (eraser)" in capsys.readouterr().out
    det = graphs.detector_only(tmp_path / "det.onnx")
    assert main(["models", "check", str(det)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fits no engine family" in err and "Traceback" not in err


def _one_person_model(tmp_path: Path) -> Path:
    """A yolo-seg model finding one person at [30, 130) x [30, 130) of a 320x160 photo, registered as ``people``."""
    from person_erase.cli import main

    pred = np.zeros((1, 4 + 1 + 32, 1), np.float32)
    pred[0, :5, 0] = (16, 32, 20, 20, 0.9)
    pred[0, 5, 0] = 1.0
    protos = np.zeros((1, 32, 16, 16), np.float32)
    protos[0, 0] = 10.0
    seg = graphs.yolo_seg(tmp_path / "people-seg.onnx", pred, protos)
    assert main(["models", "add", "people", str(seg)]) == 0
    return seg


def test_cli_erase_with_registered_models_reports_them(store: Path, lama_file: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from person_erase.cli import main

    seg = _one_person_model(tmp_path)
    photo = tmp_path / "photo.png"
    img = np.random.default_rng(3).integers(0, 255, (160, 320, 3), dtype=np.uint8)
    Image.fromarray(img).save(photo)
    out, report = tmp_path / "out.png", tmp_path / "out.json"
    rc = main(["erase", str(photo), "-o", str(out), "--segmenter", "people", "--eraser", f"lama:{lama_file}",
               "--dilate", "0", "--report", str(report), "-q"])
    assert rc == 0, capsys.readouterr().err
    rep = json.loads(report.read_text())
    assert rep["segmenter"] == "yolo-seg" and rep["eraser"] == "lama"
    assert rep["models"]["eraser"] == {"family": "lama", "name": "lama_fp32.onnx", "size": lama_file.stat().st_size,
                                       "sha256": _sha(lama_file)}
    assert rep["models"]["segmenter"]["sha256"] == _sha(seg) and rep["outside_mask_changed_px"] == 0
    result = np.array(Image.open(out))
    hole = np.zeros((160, 320), bool)
    hole[30:130, 30:130] = True
    assert np.array_equal(result[~hole], img[~hole]) and (result[hole] == (200, 30, 90)).all()
    # the wrong family: one line, nothing written
    out2 = tmp_path / "out2.png"
    capsys.readouterr()
    assert main(["erase", str(photo), "-o", str(out2), "--segmenter", "people", "--eraser", "people"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a yolo-seg segmenter, not an eraser" in err and not out2.exists()
    assert main(["erase", str(photo), "-o", str(out2), "--segmenter", "people", "--eraser", f"lama:{seg}"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a lama model" in err and not out2.exists()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(lama_file.read_bytes()[: lama_file.stat().st_size // 2])
    assert main(["erase", str(photo), "-o", str(out2), "--segmenter", "people", "--eraser", f"lama:{cut}"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a complete ONNX file" in err and not out2.exists()


def test_cli_batch_takes_model_files_and_store_names(store: Path, lama_file: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from person_erase.cli import main

    seg = _one_person_model(tmp_path)
    src = tmp_path / "in"
    src.mkdir()
    img = np.random.default_rng(4).integers(0, 255, (160, 320, 3), dtype=np.uint8)
    Image.fromarray(img).save(src / "a.png")
    out = tmp_path / "out"
    rc = main(["batch", str(src), "-o", str(out), "--segmenter", "people", "--eraser", f"lama:{lama_file}",
               "--dilate", "0", "--workers", "1", "-q"])
    assert rc == 0, capsys.readouterr().err
    rep = json.loads((out / "a.png.json").read_text())
    assert rep["models"]["eraser"]["sha256"] == _sha(lama_file) and rep["models"]["segmenter"]["sha256"] == _sha(seg)
    capsys.readouterr()
    assert main(["batch", str(src), "-o", str(tmp_path / "out2"), "--eraser", "nothere", "-q"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown eraser 'nothere'" in err
