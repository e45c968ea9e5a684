"""MC3-18: torchvision's mixed-convolution ResNet-18 for Kinetics-400, as a modelzoo plugin.

3x3x3 convolutions in the stem and layer1, 2-D (1x3x3) ones above, so time is never
downsampled. Same preprocessing and labels as r3d_18; everything heavy lives in the core.
"""
from __future__ import annotations

from pathlib import Path

from modelzoo import Artifact, Metric, ModelSpec, TensorSpec, VideoPreprocessing, hookimpl

ZOO_HOOKSPEC_VERSION = 1

_ARCH = "mc3_18"
# torchvision's table: "video-level with frame_rate=15, clips_per_video=5, clip_len=16".
_PROTOCOL = "video-level: 15 fps, 5 clips of 16 frames, softmax averaged, center crop"

SPEC = ModelSpec(
    name=_ARCH,
    task="video-classification",
    description="Mixed-convolution (MC3) ResNet-18 trained on Kinetics-400 (torchvision weights KINETICS400_V1)",
    family="video_resnet",
    input=TensorSpec("video", ("N", 3, 16, 112, 112), "float32", "NCTHW"),
    output=TensorSpec("logits", ("N", 400), "float32", "NC"),
    preprocessing=VideoPreprocessing(),
    labels_file=str(Path(__file__).with_name("kinetics400_labels.txt")),
    artifacts=(
        Artifact(
            name="weights",
            url="https://download.pytorch.org/models/mc3_18-a90a0ba3.pth",
            # Only the file name's 8-hex prefix of the sha256 is published (torch.hub convention).
            sha256=None,
            sha256_prefix="a90a0ba3",
            format="pytorch",
        ),
    ),
    metrics=(
        Metric("acc@1", 63.96, "Kinetics-400 val", _PROTOCOL),
        Metric("acc@5", 84.13, "Kinetics-400 val", _PROTOCOL),
    ),
    license="BSD-3-Clause (torchvision weights); Kinetics-400 labels CC BY 4.0",
    source="https://github.com/pytorch/vision/blob/main/torchvision/models/video/resnet.py",
    params=11_695_440,
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

    return build_video_resnet(state_dict, _ARCH, num_classes=spec.num_classes)


@hookimpl
def zoo_patch_graph(spec, model, march):
    if spec.name != SPEC.name:  # called for every model; other plugins patch their own
        return None
    from modelzoo.core.graph_patch import patch_for_march

    return [str(change) for change in patch_for_march(model, march)]


@hookimpl
def zoo_compile_config(spec, march, onnx_path, calib_dir, working_dir):
    from modelzoo.core.compile_config import hb_compile_config

    return hb_compile_config(spec, march, onnx_path, calib_dir, working_dir)
