"""R(2+1)D-18: torchvision's ResNet-18 with factorised (2+1)D convolutions for Kinetics-400, as a modelzoo plugin.

Every 3x3x3 convolution is split into a 1x3x3 spatial and a 3x1x1 temporal one. Same
preprocessing and labels as r3d_18; everything heavy lives in the core.
"""

from __future__ import annotations

from pathlib import Path

from modelzoo import Artifact, hookimpl

# Preprocessing, Top-k postprocessing, the ONNX builder, the board graph patch and the
# hb_compile config are the family's, shared with the other torchvision video ResNets:
# importing them here makes them this plugin's hooks.
from modelzoo.core.video_resnet_plugin import (  # noqa: F401
    kinetics400_spec,
    zoo_build_onnx,
    zoo_compile_config,
    zoo_patch_graph,
    zoo_postprocess,
    zoo_preprocess,
)

ZOO_HOOKSPEC_VERSION = 1

SPEC = kinetics400_spec(
    name="r2plus1d_18",
    description="R(2+1)D ResNet-18 trained on Kinetics-400 (torchvision weights KINETICS400_V1)",
    labels_file=str(Path(__file__).with_name("kinetics400_labels.txt")),
    # Only the file name's 8-hex prefix of the sha256 is published (torch.hub convention).
    artifacts=(
        Artifact("weights", "https://download.pytorch.org/models/r2plus1d_18-91a641e6.pth", sha256_prefix="91a641e6"),
    ),
    acc1=67.463,
    acc5=86.175,
    params=31_505_325,
)


@hookimpl
def zoo_register_models(register):
    register(SPEC)
