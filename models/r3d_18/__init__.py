"""R3D-18: torchvision's 3D ResNet-18 for Kinetics-400 action recognition, as a modelzoo plugin.

Importing this module is cheap: the specification is data, and each hook imports what it needs.
"""

from __future__ import annotations

from pathlib import Path

from modelzoo import Artifact, BoardPerf, Metric, hookimpl

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

_S100_SOURCE = "D-Robotics rdk_model_zoo, RDK S100 3D-ResNet sample (hrt_model_exec perf)"

SPEC = kinetics400_spec(
    name="r3d_18",
    description="3D ResNet-18 trained on Kinetics-400 (torchvision weights KINETICS400_V1)",
    labels_file=str(Path(__file__).with_name("kinetics400_labels.txt")),
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
    register(SPEC)
