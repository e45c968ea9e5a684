"""ONNX files with yolo11n's interface, built with onnx.helper (no real YOLO weights reach these machines):
a designed constant output, a random-weight convolutional head, and the usual wrong exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SIZE, CLASSES, CANDIDATES = 640, 80, 8400


def _save(nodes, inputs, outputs, initializers, path: Path) -> Path:
    graph = helper.make_graph(nodes, "detector", inputs, outputs, initializers)
    opsets = [helper.make_opsetid("", 17)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)


def designed_detector(path: Path, values: np.ndarray, *, input_shape=(1, 3, SIZE, SIZE), input_name="images",
                      output_name="output0", dtype=TensorProto.FLOAT) -> Path:  # fmt: skip
    """A model whose output is exactly `values` ([1, ...]) whatever the image (plus 0 x its mean, to use it)."""
    values = np.asarray(values, np.float32)
    np_type = helper.tensor_dtype_to_np_dtype(dtype)
    nodes = [
        helper.make_node("ReduceMean", [input_name], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Reshape", ["mean", "per_sample"], ["mean3"]),
        helper.make_node("Mul", ["mean3", "zero"], ["nothing"]),
        helper.make_node("Add", ["nothing", "values"], [output_name]),
    ]
    initializers = [
        numpy_helper.from_array(np.array([-1] + [1] * (values.ndim - 1), np.int64), "per_sample"),
        numpy_helper.from_array(np.array(0, np_type), "zero"),
        numpy_helper.from_array(values.astype(np_type), "values"),
    ]
    return _save(
        nodes,
        [helper.make_tensor_value_info(input_name, dtype, list(input_shape))],
        [helper.make_tensor_value_info(output_name, dtype, list(values.shape))],
        initializers,
        path,
    )


def candidates(detections: list) -> np.ndarray:
    """The output [1, 84, 8400] holding `detections` = [(class_id, score, (cx, cy, w, h)), ...] as its first
    candidates (in the model input's pixels); every other candidate scores 0."""
    values = np.zeros((1, 4 + CLASSES, CANDIDATES), np.float32)
    for index, (class_id, score, box) in enumerate(detections):
        values[0, :4, index] = box
        values[0, 4 + class_id, index] = score
    return values


def random_head(path: Path, seed: int = 0, class_bias: float = -2.6) -> Path:
    """A random-weight detection head of yolo11n's interface: three strided convolutions (strides 8, 16, 32:
    80x80 + 40x40 + 20x20 = 8400 candidates), concatenated; boxes are sigmoids scaled to pixels (centres over
    the 640 input, sizes up to 200), class scores sigmoids of logits biased so a few hundred candidates pass 0.25."""
    rng = np.random.default_rng(seed)
    nodes, initializers, levels = [], [], []
    for stride in (8, 16, 32):
        fan_in = 3 * stride * stride
        weight = rng.normal(0, 1.0 / np.sqrt(fan_in) * 3.5, (4 + CLASSES, 3, stride, stride)).astype(np.float32)
        weight -= weight.mean(axis=(1, 2, 3), keepdims=True)  # logits vary with the image, not its brightness
        bias = np.concatenate([np.zeros(4), np.full(CLASSES, class_bias)]).astype(np.float32)
        initializers += [numpy_helper.from_array(weight, f"w{stride}"), numpy_helper.from_array(bias, f"b{stride}")]
        nodes += [
            helper.make_node(
                "Conv",
                ["images", f"w{stride}", f"b{stride}"],
                [f"c{stride}"],
                strides=[stride, stride],
                kernel_shape=[stride, stride],
            ),  # fmt: skip
            helper.make_node("Reshape", [f"c{stride}", "flat"], [f"r{stride}"]),
        ]
        levels.append(f"r{stride}")
    scale = np.ones((1, 4 + CLASSES, 1), np.float32)
    scale[0, :4, 0] = (SIZE, SIZE, 200, 200)
    initializers += [
        numpy_helper.from_array(np.array([1, 4 + CLASSES, -1], np.int64), "flat"),
        numpy_helper.from_array(scale, "scale"),
    ]
    nodes += [
        helper.make_node("Concat", levels, ["logits"], axis=2),
        helper.make_node("Sigmoid", ["logits"], ["unit"]),
        helper.make_node("Mul", ["unit", "scale"], ["output0"]),
    ]
    return _save(
        nodes,
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + CLASSES, CANDIDATES])],
        initializers,
        path,
    )
