"""``migan:PATH.onnx`` — MI-GAN inpainting from its "pipeline" ONNX export (MIT code; weights not bundled).

Tensor contract (``scripts/create_onnx_pipeline.py`` of Picsart-AI-Research/MI-GAN, e.g. the published
``migan_pipeline_v2.onnx``): pre- and post-processing are inside the graph.

============  ==========================  ======================================================
tensor        shape / dtype               meaning
============  ==========================  ======================================================
``image``     [1, 3, H, W] uint8          RGB (not BGR), 0..255
``mask``      [1, 1, H, W] uint8          **255 = known, 0 = hole** (the opposite of LaMa's)
``result``    [1, 3, H, W] uint8          RGB 0..255, same size; known pixels composited back
============  ==========================  ======================================================

``H``/``W`` are dynamic in the export. Inside, the graph (v2, the published file) crops around the
hole (hole box + 128 px, at least its resolution, clipped), resizes that to its resolution (512 for
Places2-512) bilinearly without anti-aliasing, runs the generator, resizes back and blends the result
in along a slightly grown, blurred hole border. So crops larger than ``work_side`` (default 512) are
shrunk here first (area averaging) and the result is brought back bicubically; smaller crops go in at
their own size, squared (the graph's resize would stretch a non-square crop). A file with fixed
``H``/``W`` gets exactly that size. Inputs are recognised by channel count (3 = image, 1 = mask) or
the name ``mask``. Only erase pixels of the result are used (the graph's border blend reaches a pixel
or two outside the hole).

The graph multiplies the image by the mask only *after* its resize, so hidden pixels (erase ∪ keep)
are zeroed here first and marked 0 in the mask: no kept person reaches the network (see
:mod:`._onnx_inpaint`). The *generator-only* MI-GAN export (one float [1, 4, H, W] input) is not
this family: export the pipeline.
"""

from __future__ import annotations

import os
from typing import ClassVar

import numpy as np

from ..errors import EngineError, InputError
from ..onnxmodel import Signature, fixed
from ._onnx_inpaint import OnnxInpainter, check_pair_inputs
from .lama import _run

DEFAULT_WORK_SIDE = 512


def check_signature(sig: Signature) -> list[str]:
    """Why ``sig`` is not a MI-GAN pipeline export (empty: it fits)."""
    if len(sig.inputs) == 1 and len(sig.inputs[0].shape) == 4 and sig.inputs[0].shape[1] == 4:
        return [f"one 4-channel input ({sig.inputs[0].describe()}): the MI-GAN generator without its "
                "pre/post-processing; use the pipeline export (uint8 image + mask in, uint8 image out)"]
    if len(sig.inputs) == 2 and all(t.dtype in ("float32", "float16") for t in sig.inputs):
        return ["its inputs are float (the MI-GAN pipeline takes uint8 image and mask; float inputs are LaMa's)"]
    problems = check_pair_inputs(sig, dtypes=("uint8",), what="the MI-GAN pipeline")
    if problems:
        return problems
    if sig.outputs[0].dtype != "uint8":
        return [f"output {sig.outputs[0].describe()} is not uint8"]
    for t in (*sig.inputs, sig.outputs[0]):
        if isinstance(t.shape[0], int) and t.shape[0] != 1:
            problems.append(f"{t.describe()} has batch {t.shape[0]}, expected 1")
    return problems


class MiganEraser(OnnxInpainter):
    """MI-GAN pipeline from an ONNX file (see the module docstring for the contract).

    Args:
        path: the ``.onnx`` file.
        work_side: largest side fed to a size-dynamic graph (crops above it are shrunk first).
        sha256: when given, the file must have this hash (the model store passes the recorded one).
        threads: onnxruntime threads (default: up to 2).

    Raises:
        InputError: the file does not exist; ``work_side`` < 16.
        EngineError: the file is not a loadable ONNX model, or not a MI-GAN pipeline (says why).
    """

    name: ClassVar[str] = "migan"
    family: ClassVar[str] = "migan"

    def __init__(self, path: str | os.PathLike[str], *, work_side: int = DEFAULT_WORK_SIDE,
                 sha256: str | None = None, threads: int | None = None) -> None:
        if int(work_side) < 16:
            raise InputError(f"`work_side` must be >= 16 pixels, got {work_side}", param="work_side")
        self.work_side = int(work_side)
        super().__init__(path, sha256=sha256, threads=threads)

    def _setup(self, sig: Signature) -> None:
        self._bind(sig)
        h = fixed(self._image_in.shape[2]) or fixed(self._mask_in.shape[2])
        w = fixed(self._image_in.shape[3]) or fixed(self._mask_in.shape[3])
        self.fixed_size = (h, w) if h and w else None

    def _work_size(self, side: int) -> tuple[int, int]:
        if self.fixed_size is not None:
            return self.fixed_size
        s = min(side, self.work_side)
        return s, s

    def _infer(self, src: np.ndarray, hidden: np.ndarray) -> np.ndarray:
        h, w = hidden.shape
        img = np.clip(np.rint(src), 0, 255).astype(np.uint8).transpose(2, 0, 1)[None]
        mask = np.where(hidden, 0, 255).astype(np.uint8)[None, None]
        feeds = {self._image_in.name: np.ascontiguousarray(img), self._mask_in.name: np.ascontiguousarray(mask)}
        out = _run(self._session, self._out, feeds, self.model.name)
        if out.shape != (1, 3, h, w) or out.dtype != np.uint8:
            raise EngineError(f"migan model {self.model.name} returned {out.dtype} {list(out.shape)}; "
                              f"the contract is uint8 [1, 3, {h}, {w}] (the size it was given)")
        return out[0].transpose(1, 2, 0).astype(np.float32)
