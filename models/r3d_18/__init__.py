"""R3D-18: torchvision's 3D ResNet-18 for Kinetics-400 action recognition, as a modelzoo plugin.

Importing this module is cheap: the specification is data, and each hook imports what it needs.
"""
from __future__ import annotations

from pathlib import Path

from modelzoo import (
    Artifact,
    BoardPerf,
    Metric,
    ModelSpec,
    TensorSpec,
    VideoPreprocessing,
    hookimpl,
)

ZOO_HOOKSPEC_VERSION = 1

_S100_SOURCE = "D-Robotics rdk_model_zoo, RDK S100 3D-ResNet sample (hrt_model_exec perf)"

SPEC = ModelSpec(
    name="r3d_18",
    task="video-classification",
    description="3D ResNet-18 trained on Kinetics-400 (torchvision weights KINETICS400_V1)",
    family="video_resnet",
    input=TensorSpec("video", ("N", 3, 16, 112, 112), "float32", "NCTHW"),
    output=TensorSpec("logits", ("N", 400), "float32", "NC"),
    preprocessing=VideoPreprocessing(),
    labels_file=str(Path(__file__).with_name("kinetics400_labels.txt")),
    artifacts=(
        Artifact(
            name="weights",
            url="https://download.pytorch.org/models/r3d_18-b3b3357e.pth",
            sha256="b3b3357ead25631ec9c57362ff2128a92d0427e01e2cd184951a44380c3f2e9d",
            size=133_546_016,
            format="pytorch",
        ),
        Artifact(
            name="hbm",
            url="https://archive.d-robotics.cc/downloads/rdk_model_zoo/rdk_s100/3dresnet/r3d_18.hbm",
            sha256=None,
            format="hbm",
        ),
    ),
    metrics=(
        Metric("acc@1", 63.2, "Kinetics-400 val", "video-level: 15 fps, 5 clips of 16 frames, softmax averaged, center crop"),
        Metric("acc@5", 83.479, "Kinetics-400 val", "video-level: 15 fps, 5 clips of 16 frames, softmax averaged, center crop"),
        Metric("acc@1", 52.75, "Kinetics-400 val", "clip-level (older torchvision figure)"),
        Metric("acc@5", 75.45, "Kinetics-400 val", "clip-level (older torchvision figure)"),
    ),
    board_perf=(
        BoardPerf("RDK S100", "nash-e", 1, 182.68, 5.47, _S100_SOURCE),
        BoardPerf("RDK S100", "nash-e", 2, 182.93, 10.82, _S100_SOURCE),
        BoardPerf("RDK S100", "nash-e", 4, 185.03, 21.07, _S100_SOURCE),
        BoardPerf("RDK S100", "nash-e", 8, 249.19, 30.74, _S100_SOURCE),
    ),
    license="BSD-3-Clause (torchvision weights); Kinetics-400 labels CC BY 4.0",
    source="https://github.com/pytorch/vision/blob/main/torchvision/models/video/resnet.py",
    params=33_371_472,
)


@hookimpl
def zoo_register_models(register):
    register(SPEC)


@hookimpl
def zoo_preprocess(spec, source, clips):
    from modelzoo.core.video_classification import preprocess_video_classification

    return preprocess_video_classification(source, spec.preprocessing, clips)


@hookimpl
def zoo_postprocess(spec, logits, top_k):
    from modelzoo.core.classification import top_k_predictions

    return top_k_predictions(logits, spec.labels, top_k)


@hookimpl
def zoo_build_onnx(spec, state_dict):
    from modelzoo.core.video_resnet import build_video_resnet

    return build_video_resnet(state_dict, "r3d_18", num_classes=spec.num_classes)


@hookimpl
def zoo_patch_graph(spec, model, march):
    if spec.name != SPEC.name:  # other plugins' models are theirs to patch
        return None
    from modelzoo.core.graph_patch import patch_for_march

    return [str(change) for change in patch_for_march(model, march)]


@hookimpl
def zoo_compile_config(spec, march, onnx_path, calib_dir, working_dir):
    from modelzoo.core.compile_config import hb_compile_config

    return hb_compile_config(spec, march, onnx_path, calib_dir, working_dir)
