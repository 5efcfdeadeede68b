"""What the ONNX inpainters (``lama``, ``migan``) share: square work crop, resize, hidden pixels, paste back.

An inpainting network sees a square image at a fixed (or bounded) size. For one crop (the pipeline
hands these erasers one crop per hole cluster, grown to a square where the photo allows):

1. the crop is padded to a square by mirroring (only where the photo itself ran out);
2. *hidden* = erase ∪ keep: kept people are treated as holes, so the network never sees them
   (no fill is copied from them). Hidden pixels are set to 0 **before** any resize, and after a
   resize every work pixel that any hidden pixel contributed to is hidden too (and 0 again) — so
   not one hidden pixel's colour reaches the network, not even blended into a neighbour;
3. the square is resized to the work size (area-averaged when shrinking, bilinear when growing);
4. the network fills the hidden pixels; its output comes back to the square's size (bicubic when
   growing, area when shrinking), loses the padding, is rounded to uint8 and only the **erase**
   pixels are pasted onto the crop. Everything else is the input, byte for byte.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import cv2
import numpy as np

from ..errors import EngineError
from ..onnxmodel import ModelFile, Signature, check_expected, model_file, require_family
from ._common import check_inputs, paste


class OnnxInpainter:
    """Base of the ONNX inpainters; subclasses set ``name``/``family`` and implement ``_work_size``/``_infer``."""

    name: ClassVar[str] = "onnx"
    family: ClassVar[str] = ""
    kind: ClassVar[str] = "inpaint"
    needs_network: ClassVar[bool] = False
    honours_keep_mask: ClassVar[bool] = True
    crops: ClassVar[bool] = True
    #: compose grows each crop to a square where the photo allows (the network's input is square)
    square_crops: ClassVar[bool] = True

    def __init__(self, path: str | os.PathLike[str], *, sha256: str | None = None, threads: int | None = None) -> None:
        self.model: ModelFile = model_file(path)
        check_expected(self.model, sha256)
        self._session, self.signature = require_family(self.model.path, self.family, threads=threads)
        self._setup(self.signature)
        #: what the report shows about the engine (model file identity is in ``model``)
        self.parameters: dict[str, Any] = {}

    # --- subclass hooks -------------------------------------------------------------------------

    def _setup(self, sig: Signature) -> None:
        raise NotImplementedError

    def _bind(self, sig: Signature) -> None:
        """Find the image input, the mask input and the output of ``sig`` (for ``_setup``)."""
        pos = image_and_mask(sig)
        if pos is None:  # pragma: no cover - check_signature passed
            raise EngineError(f"model {self.model.name}: cannot tell the image input from the mask input")
        self._image_in, self._mask_in = (sig.inputs[pos[0]], sig.inputs[pos[1]])
        self._out = sig.outputs[0].name

    def _work_size(self, side: int) -> tuple[int, int]:
        """(height, width) the network runs at for a square crop of ``side`` px."""
        raise NotImplementedError

    def _infer(self, src: np.ndarray, hidden: np.ndarray) -> np.ndarray:
        """Fill ``hidden``: ``src`` (h, w, 3) float32 RGB 0..255 with hidden pixels 0 -> (h, w, 3) float32 0..255."""
        raise NotImplementedError

    # --- the eraser -----------------------------------------------------------------------------

    def model_info(self) -> dict[str, Any]:
        return self.model.to_dict(self.family)

    def erase(self, image: np.ndarray, erase: np.ndarray, *, keep: np.ndarray | None = None) -> np.ndarray:
        """A new (H, W, 3) uint8 RGB image with ``erase`` filled by the network; other pixels unchanged."""
        erase, keep = check_inputs(image, erase, keep)
        if not erase.any():
            return image.copy()
        h, w = erase.shape
        side = max(h, w)
        top, left = (side - h) // 2, (side - w) // 2
        bottom, right = side - h - top, side - w - left
        hidden = erase | keep
        src: np.ndarray = image.astype(np.float32)
        src[hidden] = 0.0
        if side != h or side != w:
            src = cv2.copyMakeBorder(src, top, bottom, left, right, cv2.BORDER_REFLECT)
            hidden = cv2.copyMakeBorder(hidden.view(np.uint8), top, bottom, left, right, cv2.BORDER_REFLECT) > 0
        th, tw = self._work_size(side)
        if (th, tw) != (side, side):
            shrink = th * tw < side * side
            interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            src = cv2.resize(src, (tw, th), interpolation=interp)
            # any work pixel a hidden pixel contributed to (weights are >= 0 for both methods) is hidden
            hidden = cv2.resize(hidden.astype(np.float32), (tw, th), interpolation=interp) > 0
            src[hidden] = 0.0
        out = self._infer(np.ascontiguousarray(src, dtype=np.float32), hidden)
        if out.shape != (th, tw, 3):
            raise EngineError(f"{self.family} model {self.model.name} returned {out.shape}; expected {(th, tw, 3)}")
        if (th, tw) != (side, side):
            back = cv2.INTER_AREA if th * tw > side * side else cv2.INTER_CUBIC
            out = cv2.resize(out, (side, side), interpolation=back)
        out = out[top : top + h, left : left + w]
        filled = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        return paste(image, filled, erase)


def check_pair_inputs(sig: Signature, *, dtypes: tuple[str, ...], what: str) -> list[str]:
    """Problems with an (image 3-channel, mask 1-channel) input pair and one 3-channel output."""
    problems: list[str] = []
    if len(sig.inputs) != 2:
        problems.append(f"{what} takes 2 inputs (image, mask), this file has {len(sig.inputs)}")
        return problems
    if not sig.outputs:
        problems.append("the file declares no output")
        return problems
    for t in (*sig.inputs, sig.outputs[0]):
        if len(t.shape) != 4:
            problems.append(f"{t.describe()} has rank {len(t.shape)}, expected 4 (N, C, H, W)")
        if t.dtype not in dtypes:
            problems.append(f"{t.name} is {t.dtype}, expected {' or '.join(dtypes)}")
    if problems:
        return problems
    if image_and_mask(sig) is None:
        problems.append(
            "cannot tell the image (3 channels) from the mask (1 channel): inputs are "
            + "; ".join(t.describe() for t in sig.inputs)
        )
    out = sig.outputs[0]
    if isinstance(out.shape[1], int) and out.shape[1] != 3:
        problems.append(f"output {out.describe()} has {out.shape[1]} channels, expected 3 (RGB)")
    return problems


def image_and_mask(sig: Signature) -> tuple[int, int] | None:
    """Positions ``(image, mask)`` of the two inputs: by channel count (3 vs 1), else by name ("mask")."""
    ch = [t.shape[1] if len(t.shape) == 4 else None for t in sig.inputs]
    names = [t.name.lower() for t in sig.inputs]

    def may_be(c: object, want: int) -> bool:
        return not isinstance(c, int) or c == want

    pairs = [(i, m) for i, m in ((0, 1), (1, 0)) if may_be(ch[i], 3) and may_be(ch[m], 1)]
    if len(pairs) == 1:
        return pairs[0]
    for i, m in pairs:
        if "mask" in names[m] and "mask" not in names[i]:
            return i, m
    return None
