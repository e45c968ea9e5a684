"""MC3-18: torchvision's mixed-convolution ResNet-18 for Kinetics-400, as a modelzoo plugin.

3x3x3 convolutions in the stem and layer1, 2-D (1x3x3) ones above, so time is never
downsampled. Same preprocessing and labels as r3d_18; the family's code is in modelzoo.models.video_resnet.
"""

from __future__ import annotations

from modelzoo.models.video_resnet import VideoResNet, kinetics400_spec, kinetics_annotation_format
from modelzoo.plugin import Artifact, hookimpl

ZOO_HOOKSPEC_VERSION = 2

SPEC = kinetics400_spec(
    name="mc3_18",
    description="Mixed-convolution (MC3) ResNet-18 trained on Kinetics-400 (torchvision weights KINETICS400_V1)",
    # Only the file name's 8-hex prefix of the sha256 is published (torch.hub convention).
    artifacts=(
        Artifact("weights", "https://download.pytorch.org/models/mc3_18-a90a0ba3.pth", sha256_prefix="a90a0ba3"),
    ),
    acc1=63.96,
    acc5=84.13,
    params=11_695_440,
)


@hookimpl
def zoo_register_models(register):
    register(VideoResNet(SPEC))


@hookimpl
def zoo_register_dataset_formats(register):
    register(kinetics_annotation_format())  # the family's three plugins share it; the first registered is kept
