"""Small ONNX graphs for the board-path tests, and the zoo's own R3D-18 graph from a torch state dict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FAKES = Path(__file__).with_name("fakes")


def state_dict_numpy(torch_model) -> dict:
    return {k: v.detach().numpy() for k, v in torch_model.state_dict().items()}


def zoo_onnx(torch_model, path: Path, **shape) -> Path:
    """The zoo's converted graph (core.video_resnet) for a reference model's weights."""
    from modelzoo.models.video_resnet.architecture import build_video_resnet

    onnx.save(build_video_resnet(state_dict_numpy(torch_model), "r3d_18", **shape), str(path))
    return Path(path)


def tiny_video_classifier(path: Path, seed: int = 0, opset: int = 17, clip_len: int = 16, size: int = 112) -> Path:
    """R3D-18's interface ([N,3,16,112,112] -> [N,400]) with a few ms of compute: strided Conv3d, ReLU,
    5-D GlobalAveragePool, Flatten, Gemm. Weights are random but outputs are well spread."""
    rng = np.random.default_rng(seed)
    conv_w = rng.standard_normal((16, 3, 1, 7, 7)).astype(np.float32) * 0.2
    fc_w = rng.standard_normal((400, 16)).astype(np.float32)
    fc_b = rng.standard_normal(400).astype(np.float32) * 0.1
    nodes = [
        helper.make_node("Conv", ["video", "conv_w"], ["c"], name="conv", strides=[2, 8, 8], kernel_shape=[1, 7, 7]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="avgpool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
    ]
    weights = {"conv_w": conv_w, "fc_w": fc_w, "fc_b": fc_b}
    return save_video_classifier(path, "tiny_video_classifier", nodes, weights, opset, clip_len, size)


def save_video_classifier(
    path: Path, name: str, nodes: list, weights: dict, opset: int = 17, clip_len: int = 16, size: int = 112
) -> Path:
    """`nodes` from "video" [N,3,clip_len,size,size] to "logits" [N,400], with `weights` as initializers,
    checked and saved as an ONNX file at `path`."""
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("video", TensorProto.FLOAT, ["N", 3, clip_len, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 400])],
        initializer=[numpy_helper.from_array(a, n) for n, a in weights.items()],
    )
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)


def pooling_graph(op_type: str, rank: int, *, shaped: bool = True, **attrs) -> onnx.ModelProto:
    """One pooling node on an input of `rank` (no shape at all when `shaped` is False)."""
    dims = [1, 4, 2, 6, 6][:rank] if rank >= 3 else [1, 4]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, dims if shaped else None)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(
        [helper.make_node(op_type, ["x"], ["y"], name=f"{op_type.lower()}_node", **attrs)], "pool", [x], [y]
    )
    opsets = [helper.make_opsetid("", 17)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))


def tiny_image_classifier(
    path: Path,
    size: int = 32,
    classes: int = 2,
    seed: int = 0,
    input_name: str = "image",
    output_name: str = "logits",
) -> Path:
    """An image model's interface ([N,3,size,size] -> [N,classes]) in four nodes: 1x1 Conv, 4-D
    GlobalAveragePool, Flatten, Gemm. Seeded random weights; nothing on it needs a rewrite for nash-e."""
    rng = np.random.default_rng(seed)
    conv_w = rng.standard_normal((8, 3, 1, 1)).astype(np.float32)
    fc_w = rng.standard_normal((classes, 8)).astype(np.float32)
    fc_b = rng.standard_normal(classes).astype(np.float32) * 0.1
    nodes = [
        helper.make_node("Conv", [input_name, "conv_w"], ["c"], name="conv", kernel_shape=[1, 1]),
        helper.make_node("GlobalAveragePool", ["c"], ["p"], name="avgpool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], [output_name], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_image_classifier",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", classes])],
        initializer=[numpy_helper.from_array(a, n) for n, a in (("conv_w", conv_w), ("fc_w", fc_w), ("fc_b", fc_b))],
    )
    opsets = [helper.make_opsetid("", 17)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)
