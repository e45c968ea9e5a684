"""R3D-18: torchvision's 3D ResNet-18 for Kinetics-400 action recognition, as a modelzoo plugin.

Importing this module is cheap: the specification is data, and each hook imports what it needs.
"""

from __future__ import annotations

from modelzoo.models.video_resnet import VideoResNet, kinetics400_spec, kinetics_annotation_format
from modelzoo.plugin import Artifact, BoardPerf, Metric, hookimpl

ZOO_HOOKSPEC_VERSION = 2

_S100_SOURCE = "D-Robotics rdk_model_zoo, RDK S100 3D-ResNet sample (hrt_model_exec perf)"

SPEC = kinetics400_spec(
    name="r3d_18",
    description="3D ResNet-18 trained on Kinetics-400 (torchvision weights KINETICS400_V1)",
    artifacts=(
        Artifact(
            name="weights",
            url="https://download.pytorch.org/models/r3d_18-b3b3357e.pth",
            sha256="b3b3357ead25631ec9c57362ff2128a92d0427e01e2cd184951a44380c3f2e9d",
            size=133_546_016,
            format="pytorch",
        ),
        # D-Robotics' prebuilt board model; no checksum is published for it.
        Artifact(
            name="hbm",
            url="https://archive.d-robotics.cc/downloads/rdk_model_zoo/rdk_s100/3dresnet/r3d_18.hbm",
            sha256=None,
            format="hbm",
        ),
    ),
    acc1=63.2,
    acc5=83.479,
    metrics=(
        Metric("acc@1", 52.75, "Kinetics-400 val", "clip-level (older torchvision figure)"),
        Metric("acc@5", 75.45, "Kinetics-400 val", "clip-level (older torchvision figure)"),
    ),
    board_perf=(
        BoardPerf("RDK S100", "nash-e", 1, 182.68, 5.47, _S100_SOURCE),
        BoardPerf("RDK S100", "nash-e", 2, 182.93, 10.82, _S100_SOURCE),
        BoardPerf("RDK S100", "nash-e", 4, 185.03, 21.07, _S100_SOURCE),
        BoardPerf("RDK S100", "nash-e", 8, 249.19, 30.74, _S100_SOURCE),
    ),
    params=33_371_472,
)


@hookimpl
def zoo_register_models(register):
    register(VideoResNet(SPEC))


@hookimpl
def zoo_register_dataset_formats(register):
    register(kinetics_annotation_format())  # the family's three plugins share it; the first registered is kept
