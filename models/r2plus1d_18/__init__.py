"""R(2+1)D-18: torchvision's ResNet-18 with factorised (2+1)D convolutions for Kinetics-400, as a modelzoo plugin.

Every 3x3x3 convolution is split into a 1x3x3 spatial and a 3x1x1 temporal one. Same
preprocessing and labels as r3d_18; the family's code is in modelzoo.models.video_resnet.
"""

from __future__ import annotations

from modelzoo.models.video_resnet import VideoResNet, kinetics400_spec, kinetics_annotation_format
from modelzoo.plugin import Artifact, hookimpl

ZOO_HOOKSPEC_VERSION = 2

SPEC = kinetics400_spec(
    name="r2plus1d_18",
    description="R(2+1)D ResNet-18 trained on Kinetics-400 (torchvision weights KINETICS400_V1)",
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
    register(VideoResNet(SPEC))


@hookimpl
def zoo_register_dataset_formats(register):
    register(kinetics_annotation_format())  # the family's three plugins share it; the first registered is kept
