"""``lama`` / ``migan``: tiny ONNX graphs with each family's signature pin the pre/post-processing exactly.

* a constant-colour graph: the fill is exactly that colour (value range, channel order, resize back);
* a per-channel-maximum graph: the fill is the maximum of what the network was given, so a kept
  person (white) or the erased person (near white) leaking into its input — even blended into a
  neighbour by a resize — would show;
* a mask-echo graph: the hole convention (LaMa 1 = hole);
* always: pixels outside the erase mask byte-identical, kept people untouched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")

import _onnx_graphs as graphs  # noqa: E402

from person_erase.compose import apply_eraser, square_box  # noqa: E402
from person_erase.erasers import get_eraser  # noqa: E402
from person_erase.erasers.lama import LamaEraser  # noqa: E402
from person_erase.erasers.migan import MiganEraser  # noqa: E402
from person_erase.errors import EngineError, InputError  # noqa: E402

BG = (10, 120, 230)


def _scene(h: int = 180, w: int = 260, *, noisy: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Background, an erased 'person' (near white) and a kept one (white) standing next to it."""
    if noisy:
        img = np.random.default_rng(1).integers(0, 200, (h, w, 3), dtype=np.uint8)
    else:
        img = np.empty((h, w, 3), np.uint8)
        img[:] = BG
    erase = np.zeros((h, w), bool)
    keep = np.zeros((h, w), bool)
    erase[40:140, 90:130] = True
    keep[50:150, 131:170] = True  # touching the hole's crop, not the hole
    img[erase] = 250
    img[keep] = 255
    return img, erase, keep


def _check_untouched(out: np.ndarray, img: np.ndarray, erase: np.ndarray) -> None:
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert np.array_equal(out[~erase], img[~erase])


@pytest.mark.parametrize("image_first", [True, False])
def test_lama_constant_fill_is_exact(tmp_path: Path, image_first: bool) -> None:
    path = graphs.lama(tmp_path / "lama.onnx", side=64, colour=(200, 30, 90), image_first=image_first,
                       names=("img", "msk", "out"))
    img, erase, keep = _scene()
    out, stats = apply_eraser(get_eraser(f"lama:{path}"), img, erase, keep)
    _check_untouched(out, img, erase)
    assert (out[erase] == (200, 30, 90)).all()
    assert stats.clusters == 1
    x0, y0, x1, y1 = stats.boxes[0]
    assert x1 - x0 == y1 - y0  # the crop was grown to a square (the network's input is square)


def test_lama_output_in_0_1_is_scaled(tmp_path: Path) -> None:
    c = np.array([0.78, 0.12, 0.35], np.float32)
    path = graphs.lama(tmp_path / "lama01.onnx", side=64, colour=tuple(c.tolist()))
    img, erase, keep = _scene(noisy=True)
    out = LamaEraser(path).erase(img, erase, keep=keep)
    _check_untouched(out, img, erase)
    assert (out[erase] == np.rint(c * np.float32(255))).all()
    forced = LamaEraser(path, output_range="0-255").erase(img, erase, keep=keep)
    assert (forced[erase] <= 1).all()


@pytest.mark.parametrize("side", [64, 256])  # the crop shrunk to the network, or grown to it
def test_lama_network_never_sees_kept_or_erased_pixels(tmp_path: Path, side: int) -> None:
    path = graphs.lama(tmp_path / "max.onnx", side=side, behaviour="channel_max")
    img, erase, keep = _scene()
    out, _ = apply_eraser(LamaEraser(path), img, erase, keep)
    _check_untouched(out, img, erase)
    # the max of each channel of what it was given is exactly the background: RGB order, 0..1 in,
    # no white (kept) or near-white (erased) pixel, not even blended in by the resize
    assert (out[erase] == BG).all()


def test_lama_noisy_context_fill_stays_below_the_hidden_colours(tmp_path: Path) -> None:
    path = graphs.lama(tmp_path / "max.onnx", side=48, behaviour="channel_max")
    img, erase, keep = _scene(noisy=True)
    out, _ = apply_eraser(LamaEraser(path), img, erase, keep)
    _check_untouched(out, img, erase)
    assert out[erase].max() < 200  # the context is 0..199; kept 255 and erased 250 never got in


def test_lama_mask_means_hole(tmp_path: Path) -> None:
    path = graphs.lama(tmp_path / "mask.onnx", side=64, behaviour="mask")
    img, erase, keep = _scene()
    out, _ = apply_eraser(LamaEraser(path), img, erase, keep)
    _check_untouched(out, img, erase)
    inner = np.zeros_like(erase)
    inner[50:130, 100:120] = True
    assert (out[inner] == 255).all()  # the mask the network got is 1 over the hole


def test_lama_crop_at_the_photo_edge_is_mirrored_to_a_square(tmp_path: Path) -> None:
    path = graphs.lama(tmp_path / "lama.onnx", side=64, behaviour="channel_max")
    img = np.empty((60, 400, 3), np.uint8)
    img[:] = BG
    erase = np.zeros((60, 400), bool)
    erase[5:55, 0:30] = True  # at the left edge of a strip photo: no square crop fits
    img[erase] = 255
    out = LamaEraser(path).erase(img, erase, keep=np.zeros_like(erase))
    _check_untouched(out, img, erase)
    assert (out[erase] == BG).all()


def test_lama_wrong_output_shape_is_one_clear_error(tmp_path: Path) -> None:
    # symbolic dims (so the file itself passes the contract): runs at 512, returns 256x256
    path = graphs.lama(tmp_path / "half.onnx", side=512, behaviour="half", dims=("h", "w"))
    img, erase, keep = _scene()
    with pytest.raises(
        EngineError, match=r"returned an output of shape \[1, 3, 256, 256\]; the contract is \[1, 3, 512, 512\]"
    ):
        apply_eraser(LamaEraser(path), img, erase, keep)


def test_lama_contract_refusals(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="not a lama model.*uint8.*fits the migan contract"):
        LamaEraser(graphs.migan(tmp_path / "m.onnx"))
    with pytest.raises(EngineError, match="is 96x64; LaMa exports are square"):
        LamaEraser(graphs.lama(tmp_path / "rect.onnx", dims=(64, 96)))
    with pytest.raises(InputError, match="does not exist"):
        LamaEraser(tmp_path / "nope.onnx")
    good = graphs.lama(tmp_path / "ok.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(good[: len(good) // 2])
    with pytest.raises(EngineError, match="not a complete ONNX file"):
        LamaEraser(tmp_path / "cut.onnx")
    with pytest.raises(EngineError, match="needs a path: use lama:PATH"):
        get_eraser("lama")


def test_lama_symbolic_size_runs_at_512(tmp_path: Path) -> None:
    path = graphs.lama(tmp_path / "dyn.onnx", dims=("h", "w"), colour=(1, 2, 3))
    assert LamaEraser(path).side == 512


def test_migan_constant_fill_and_known_pixels(tmp_path: Path) -> None:
    path = graphs.migan(tmp_path / "migan.onnx", colour=(200, 30, 90))
    img, erase, keep = _scene()
    out, stats = apply_eraser(get_eraser(f"migan:{path}"), img, erase, keep)
    _check_untouched(out, img, erase)
    assert (out[erase] == (200, 30, 90)).all()


@pytest.mark.parametrize("work_side", [512, 40])  # fed at the crop's size, or shrunk first
def test_migan_network_never_sees_kept_or_erased_pixels(tmp_path: Path, work_side: int) -> None:
    path = graphs.migan(tmp_path / "max.onnx", behaviour="channel_max")
    img, erase, keep = _scene()
    out, _ = apply_eraser(MiganEraser(path, work_side=work_side), img, erase, keep)
    _check_untouched(out, img, erase)
    assert (out[erase] == BG).all()


def test_migan_fixed_size_file_gets_that_size(tmp_path: Path) -> None:
    path = graphs.migan(tmp_path / "fixed.onnx", behaviour="channel_max", dims=(48, 48))
    eraser = MiganEraser(path)
    assert eraser.fixed_size == (48, 48)
    img, erase, keep = _scene(noisy=True)
    out, _ = apply_eraser(eraser, img, erase, keep)
    _check_untouched(out, img, erase)
    assert out[erase].max() < 200


def test_migan_wrong_output_and_family(tmp_path: Path) -> None:
    img, erase, keep = _scene()
    with pytest.raises(EngineError, match=r"returned uint8 \[1, 3, 2, 2\]; the contract is uint8 \[1, 3"):
        apply_eraser(MiganEraser(graphs.migan(tmp_path / "s.onnx", behaviour="shrink")), img, erase, keep)
    with pytest.raises(EngineError, match="not a migan model.*float.*fits the lama contract"):
        MiganEraser(graphs.lama(tmp_path / "l.onnx"))


def test_square_box() -> None:
    assert square_box((10, 10, 30, 70), (100, 100)) == (0, 10, 60, 70)
    assert square_box((40, 10, 60, 70), (100, 100)) == (20, 10, 80, 70)
    assert square_box((0, 0, 100, 20), (30, 100)) == (0, 0, 100, 30)  # cut to the photo


@pytest.mark.devset
def test_bench_erase_takes_a_lama_file(tmp_path: Path, persons_dir: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util
    import sys

    repo = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("bench_erase", repo / "benchmarks" / "bench_erase.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_erase", bench)  # its dataclasses look themselves up there
    spec.loader.exec_module(bench)
    path = graphs.lama(tmp_path / "lama_fp32.onnx", side=64, behaviour="channel_max")
    assert bench.main(["--holes", "2", "--no-1mp", "--no-scale", "--eraser", f"lama:{path}", "--only", "lama:"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("method"):].splitlines()
    assert table[0].split()[:4] == ["method", "set", "psnr_db", "texture"]
    assert table[1].startswith(f"lama:{path}") and "native" in table[1]
    assert bench.main(["--eraser", f"lama:{graphs.migan(tmp_path / 'm.onnx')}"]) == 1
    assert "not a lama model" in capsys.readouterr().err
