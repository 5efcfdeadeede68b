"""Tiny ONNX graphs with exactly each engine family's signature and a known behaviour (built with ``onnx.helper``).

No real weights can be had in tests, so these stand in for them:

* LaMa: float32 ``image`` [1,3,S,S] 0..1 + ``mask`` [1,1,S,S] -> ``output`` [1,3,S,S] (0..255 or 0..1);
* MI-GAN pipeline: uint8 ``image`` [1,3,H,W] + ``mask`` [1,1,H,W] (255 known) -> uint8 ``result``;
* YOLO-seg: float32 ``images`` [1,3,H,W] -> ``output0`` [1,4+nc+nm,A] and ``output1`` [1,nm,mh,mw] constants.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8


def _save(graph: Any, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="person_erase-tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def _const(name: str, arr: np.ndarray) -> Any:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(arr), name=name))


def lama(path: Path, *, side: int = 64, behaviour: str = "constant", colour: tuple[float, float, float] = (200, 30, 90),
         scale: float = 255.0, image_first: bool = True, names: tuple[str, str, str] = ("image", "mask", "output"),
         dims: tuple[Any, Any] | None = None) -> Path:
    """A LaMa-signature graph.

    behaviour:
        ``constant``: every output pixel is ``colour`` (already in the output's scale);
        ``channel_max``: each output channel is the maximum of that input channel over the whole image,
        times ``scale`` (shows exactly which values reached the model);
        ``identity``: the image input times ``scale``;
        ``mask``: the mask input, times ``scale``, in all three channels;
        ``half``: the top-left quarter of the image (a wrong output shape at run time).
    """
    h, w = dims if dims is not None else (side, side)
    img = helper.make_tensor_value_info(names[0], TensorProto.FLOAT, [1, 3, h, w])
    msk = helper.make_tensor_value_info(names[1], TensorProto.FLOAT, [1, 1, h, w])
    out_dims: list[Any] = ["n", 3, "oh", "ow"] if behaviour == "half" else [1, 3, h, w]
    out = helper.make_tensor_value_info(names[2], TensorProto.FLOAT, out_dims)
    nodes = [helper.make_node("Shape", [names[0]], ["shape"])]
    o = names[2]
    if behaviour == "constant":
        nodes += [
            _const("c", np.array(colour, np.float32).reshape(1, 3, 1, 1)),
            helper.make_node("Expand", ["c", "shape"], [o]),
        ]
    elif behaviour == "channel_max":
        nodes += [_const("axes", np.array([2, 3], np.int64)), _const("s", np.array(scale, np.float32)),
                  helper.make_node("ReduceMax", [names[0]], ["mx"], axes=[2, 3], keepdims=1),
                  helper.make_node("Mul", ["mx", "s"], ["mxs"]), helper.make_node("Expand", ["mxs", "shape"], [o])]
    elif behaviour == "identity":
        nodes += [_const("s", np.array(scale, np.float32)), helper.make_node("Mul", [names[0], "s"], [o])]
    elif behaviour == "mask":
        nodes += [_const("s", np.array(scale, np.float32)), helper.make_node("Mul", [names[1], "s"], ["ms"]),
                  helper.make_node("Expand", ["ms", "shape"], [o])]
    elif behaviour == "half":
        nodes += [
            _const("st", np.array([0, 0], np.int64)),
            _const("en", np.array([side // 2, side // 2], np.int64)),
            _const("ax", np.array([2, 3], np.int64)),
            helper.make_node("Slice", [names[0], "st", "en", "ax"], [o]),
        ]
    else:
        raise ValueError(behaviour)
    inputs = [img, msk] if image_first else [msk, img]
    return _save(helper.make_graph(nodes, "lama", inputs, [out]), path)


def migan(path: Path, *, behaviour: str = "constant", colour: tuple[int, int, int] = (200, 30, 90),
          dims: tuple[Any, Any] = ("height", "width")) -> Path:
    """A MI-GAN-pipeline-signature graph: known pixels (mask > 0) composited back like the real pipeline.

    behaviour:
        ``constant``: hole pixels become ``colour``;
        ``channel_max``: hole pixels become each channel's maximum over the *whole* image input;
        ``shrink``: returns a quarter-size image (a wrong output shape at run time).
    """
    h, w = dims
    img = helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 3, h, w])
    msk = helper.make_tensor_value_info("mask", TensorProto.UINT8, [1, 1, h, w])
    out = helper.make_tensor_value_info(
        "result", TensorProto.UINT8, ["batch_size", 3, h, w] if behaviour != "shrink" else [1, 3, "a", "b"]
    )
    nodes = [helper.make_node("Shape", ["image"], ["shape"]), _const("zero", np.array(0, np.uint8)),
             helper.make_node("Greater", ["mask", "zero"], ["known"])]
    if behaviour == "constant":
        nodes += [
            _const("c", np.array(colour, np.uint8).reshape(1, 3, 1, 1)),
            helper.make_node("Expand", ["c", "shape"], ["fill"]),
        ]
    elif behaviour == "channel_max":
        nodes += [helper.make_node("ReduceMax", ["image"], ["mx"], axes=[2, 3], keepdims=1),
                  helper.make_node("Expand", ["mx", "shape"], ["fill"])]
    elif behaviour == "shrink":
        nodes += [
            _const("st", np.array([0, 0], np.int64)),
            _const("en", np.array([2, 2], np.int64)),
            _const("ax", np.array([2, 3], np.int64)),
            helper.make_node("Slice", ["image", "st", "en", "ax"], ["result"]),
        ]
        return _save(helper.make_graph(nodes, "migan", [img, msk], [out]), path)
    else:
        raise ValueError(behaviour)
    nodes.append(helper.make_node("Where", ["known", "image", "fill"], ["result"]))
    return _save(helper.make_graph(nodes, "migan", [img, msk], [out]), path)


def yolo_seg(path: Path, pred: np.ndarray, protos: np.ndarray, *, in_hw: tuple[Any, Any] = (64, 64),
             names: tuple[str, str] = ("output0", "output1"), symbolic_pred: bool = False) -> Path:
    """A YOLO-seg-signature graph whose outputs are the given constants (``pred`` (1, C, A), ``protos`` (1, nm, mh,
    mw)).

    ``symbolic_pred`` declares output0 as [1, "c", "a"] (so a wrong size only shows at run time).
    """
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch" if symbolic_pred else 1, 3, *in_hw])
    o0 = helper.make_tensor_value_info(
        names[0], TensorProto.FLOAT, [1, "c", "a"] if symbolic_pred else list(pred.shape)
    )
    o1 = helper.make_tensor_value_info(names[1], TensorProto.FLOAT, list(protos.shape))
    nodes = [_const(names[1], protos.astype(np.float32))]
    if symbolic_pred:  # Tile by repeats computed from the input's shape: no shape inference can fix the dims
        nodes += [_const("pred_c", pred.astype(np.float32)), helper.make_node("Shape", ["images"], ["ishape"]),
                  _const("zero1", np.array([0], np.int64)), _const("one1", np.array([1], np.int64)),
                  helper.make_node("Slice", ["ishape", "zero1", "one1"], ["batch"]),
                  helper.make_node("Concat", ["batch", "one1", "one1"], ["reps"], axis=0),
                  helper.make_node("Tile", ["pred_c", "reps"], [names[0]])]
    else:
        nodes.append(_const(names[0], pred.astype(np.float32)))
    return _save(helper.make_graph(nodes, "yoloseg", [inp], [o0, o1]), path)


def detector_only(path: Path) -> Path:
    """A graph with the YOLO input but one output (a detection-only export): fits no family."""
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
    o0 = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 84, 10])
    return _save(helper.make_graph([_const("output0", np.zeros((1, 84, 10), np.float32))], "det", [inp], [o0]), path)
