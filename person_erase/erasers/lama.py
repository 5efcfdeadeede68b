"""``lama:PATH.onnx`` — LaMa inpainting from the user's ONNX export (Apache-2.0 weights, not bundled).

Tensor contract (the common export, e.g. ``Carve/LaMa-ONNX`` ``lama_fp32.onnx``, the one IOPaint-style
tools and web demos load):

============  ==========================  ======================================================
tensor        shape / dtype               meaning
============  ==========================  ======================================================
``image``     [1, 3, S, S] float32        RGB (not BGR), 0..1; hole pixels 0 (``image * (1 - mask)``)
``mask``      [1, 1, S, S] float32        1 = hole (fill), 0 = known
output        [1, 3, S, S] float32        RGB; the whole square re-rendered, 0..255 (Carve export:
                                          ``sigmoid * 255``) or 0..1 (exports without the ``* 255``)
============  ==========================  ======================================================

``S`` is fixed in the file (512 for the common export; any square size the file declares is used,
symbolic dims get 512). Inputs are recognised by their channel count (3 = image, 1 = mask), or by
the name ``mask``. fp16 exports (float16 inputs) are fed float16.

Output range: read as 0..255 when any value exceeds 1.001; otherwise (all values in 0..1) as 0..1,
unless the known pixels are black too (then 0..255: a 0..1 model would have reproduced nothing
brighter either). ``output_range="0-1"`` / ``"0-255"`` forces one.

Pre/post-processing is :mod:`._onnx_inpaint` (square crop, hidden = erase ∪ keep zeroed before the
resize, bicubic back, only erase pixels pasted). One network call per hole cluster.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np

from ..errors import EngineError, InputError
from ..onnxmodel import Signature, fixed
from ._onnx_inpaint import OnnxInpainter, check_pair_inputs

DEFAULT_SIDE = 512
OUTPUT_RANGES = ("auto", "0-1", "0-255")
FLOATS = ("float32", "float16")


def check_signature(sig: Signature) -> list[str]:
    """Why ``sig`` is not a LaMa export (empty: it fits)."""
    if len(sig.inputs) == 2 and all(t.dtype == "uint8" for t in sig.inputs):
        return ["its inputs are uint8 (LaMa takes float32 image and mask; uint8 in/out is the MI-GAN pipeline)"]
    problems = check_pair_inputs(sig, dtypes=FLOATS, what="LaMa")
    if problems:
        return problems
    if not any(t.dtype in FLOATS for t in sig.outputs[:1]):
        return [f"output {sig.outputs[0].describe()} is not float"]
    sizes: set[int] = set()
    for t in (*sig.inputs, sig.outputs[0]):
        if isinstance(t.shape[0], int) and t.shape[0] != 1:
            problems.append(f"{t.describe()} has batch {t.shape[0]}, expected 1")
        h, w = fixed(t.shape[2]), fixed(t.shape[3])
        if h is not None and w is not None and h != w:
            problems.append(f"{t.describe()} is {w}x{h}; LaMa exports are square")
        sizes.update(d for d in (h, w) if d is not None)
    if len(sizes) > 1:
        problems.append(f"inputs and output declare different sizes {sorted(sizes)}")
    return problems


class LamaEraser(OnnxInpainter):
    """LaMa from an ONNX file (see the module docstring for the contract).

    Args:
        path: the ``.onnx`` file.
        output_range: ``"auto"`` (default), ``"0-1"`` or ``"0-255"``: the scale of the model's output.
        sha256: when given, the file must have this hash (the model store passes the recorded one).
        threads: onnxruntime threads (default: up to 2).

    Raises:
        InputError: the file does not exist; bad ``output_range``.
        EngineError: the file is not a loadable ONNX model, or not a LaMa export (says why).
    """

    name: ClassVar[str] = "lama"
    family: ClassVar[str] = "lama"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        output_range: str = "auto",
        sha256: str | None = None,
        threads: int | None = None,
    ) -> None:
        if output_range not in OUTPUT_RANGES:
            raise InputError(f"`output_range` must be one of {', '.join(OUTPUT_RANGES)}, got {output_range!r}",
                             param="output_range")
        self.output_range = output_range
        super().__init__(path, sha256=sha256, threads=threads)

    def _setup(self, sig: Signature) -> None:
        self._bind(sig)
        side = fixed(self._image_in.shape[2]) or fixed(self._mask_in.shape[2]) or DEFAULT_SIDE
        self.side = int(side)

    def _work_size(self, side: int) -> tuple[int, int]:
        return self.side, self.side

    def _infer(self, src: np.ndarray, hidden: np.ndarray) -> np.ndarray:
        s = self.side
        img = (src * np.float32(1.0 / 255.0)).transpose(2, 0, 1)[None]
        mask = hidden.astype(np.float32)[None, None]
        feeds = {
            self._image_in.name: np.ascontiguousarray(img, dtype=np.dtype(self._image_in.dtype)),
            self._mask_in.name: np.ascontiguousarray(mask, dtype=np.dtype(self._mask_in.dtype)),
        }
        out = _run(self._session, self._out, feeds, self.model.name)
        if out.shape != (1, 3, s, s):
            raise EngineError(f"lama model {self.model.name} returned an output of shape {list(out.shape)}; "
                              f"the contract is [1, 3, {s}, {s}]")
        rgb = out[0].transpose(1, 2, 0).astype(np.float32)
        if not np.isfinite(rgb).all():
            raise EngineError(f"lama model {self.model.name} returned NaN or infinite values")
        if self._scale(rgb, src, hidden) == "0-1":
            rgb = rgb * np.float32(255.0)
        return rgb

    def _scale(self, rgb: np.ndarray, src: np.ndarray, hidden: np.ndarray) -> str:
        if self.output_range != "auto":
            return self.output_range
        if float(rgb.max()) > 1.001:
            return "0-255"
        known = ~hidden
        if known.any() and float(src[known].max()) > 2.0:
            return "0-1"
        return "0-255"


def _run(session: Any, output: str, feeds: dict[str, np.ndarray], model: str) -> np.ndarray:
    try:
        (out,) = session.run([output], feeds)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's pybind errors: one line, no traceback
        text = " ".join(str(exc).split())[:300]
        raise EngineError(f"model {model} failed to run: {text}") from None
    return np.asarray(out)
