"""torchvision's 2-D ResNet-18 as data for the shared ResNet builder (keys conv1, bn1, layerN.M.*, fc)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from modelzoo.models._resnet import Block, ConvBN, MaxPool, Plan, build_resnet

WIDTHS = (64, 128, 256, 512)
STRIDES = (1, 2, 2, 2)
BLOCKS = (2, 2, 2, 2)


@cache
def plan() -> Plan:
    stem = (ConvBN("conv1", "bn1", 3, 64, (7, 7), (2, 2), (3, 3), relu="relu"),)
    pool = MaxPool("maxpool", (3, 3), (2, 2), (1, 1))
    blocks, cin = [], 64
    for stage, (width, stride, count) in enumerate(zip(WIDTHS, STRIDES, BLOCKS), start=1):
        for index in range(count):
            name = f"layer{stage}.{index}"
            s = stride if index == 0 else 1
            main = (
                ConvBN(f"{name}.conv1", f"{name}.bn1", cin, width, (3, 3), (s, s), (1, 1), relu=f"{name}.relu1"),
                ConvBN(f"{name}.conv2", f"{name}.bn2", width, width, (3, 3), (1, 1), (1, 1), relu=None),
            )
            shortcut = None
            if s != 1 or cin != width:
                shortcut = ConvBN(
                    f"{name}.downsample.0", f"{name}.downsample.1", cin, width, (1, 1), (s, s), (0, 0), None
                )
            blocks.append(Block(name, main, shortcut))
            cin = width
    return Plan("resnet18", stem, pool, tuple(blocks), WIDTHS[-1])


def build_resnet18(state_dict: Mapping, num_classes: int | None = None, *, size: int = 224):
    """ONNX of ResNet-18 with BatchNorm folded; input `image` [N,3,size,size], output `logits` [N,classes]."""
    hint = "checkpoint is not a resnet18 state dict: {}; pass the resnet18 weights (a state dict of torchvision.models.resnet18)"
    if num_classes is None and not (isinstance(state_dict, Mapping) and "fc.weight" in state_dict):
        num_classes = 1000
    return build_resnet(
        state_dict,
        plan(),
        input_name="image",
        input_shape=["N", 3, size, size],
        output_name="logits",
        num_classes=num_classes,
        hint=hint,
        doc_string="torchvision resnet18 image classifier converted by modelzoo; BatchNorm folded (eps 1e-05).",
        metadata={"input_layout": "NCHW", "input_shape": f"N,3,{size},{size}"},
    )
