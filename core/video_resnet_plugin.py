"""Hook implementations shared by the torchvision video ResNet plugins (r3d_18, mc3_18, r2plus1d_18).

A plugin module re-exports these beside its own ModelSpec: the family's preprocessing, Top-k,
ONNX builder, graph patch and compile config then live once, here. Importing this module is
cheap; each hook imports what it needs. The spec's name is the architecture's name.
"""

from __future__ import annotations

from modelzoo.core.contract.hookspecs import hookimpl
from modelzoo.core.contract.spec import Metric, ModelSpec, TensorSpec, VideoPreprocessing

FAMILY = "video_resnet"
SOURCE = "https://github.com/pytorch/vision/blob/main/torchvision/models/video/resnet.py"
LICENSE = "BSD-3-Clause (torchvision weights); Kinetics-400 labels CC BY 4.0"
VIDEO_LEVEL = "video-level: 15 fps, 5 clips of 16 frames, softmax averaged, center crop"
"""The protocol of torchvision's published Kinetics-400 accuracy for these weights."""


def kinetics400_spec(
    name: str, description: str, labels_file: str, artifacts: tuple, acc1: float, acc5: float, params: int, **extra
) -> ModelSpec:
    """A family member's spec: what all of them share is filled in, the rest comes from the plugin."""
    return ModelSpec(
        name=name,
        task="video-classification",
        description=description,
        family=FAMILY,
        input=TensorSpec("video", ("N", 3, 16, 112, 112), "float32", "NCTHW"),
        output=TensorSpec("logits", ("N", 400), "float32", "NC"),
        preprocessing=VideoPreprocessing(),
        labels_file=labels_file,
        artifacts=artifacts,
        metrics=(
            Metric("acc@1", acc1, "Kinetics-400 val", VIDEO_LEVEL),
            Metric("acc@5", acc5, "Kinetics-400 val", VIDEO_LEVEL),
            *extra.pop("metrics", ()),
        ),
        license=LICENSE,
        source=SOURCE,
        params=params,
        **extra,
    )


@hookimpl
def zoo_preprocess(spec, source, clips):
    """torchvision's VideoClassification preset: 15 fps, 16-frame clips, 128x171, crop 112."""
    from modelzoo.core.tasks.video_classification import preprocess_video_classification

    return preprocess_video_classification(source, spec.preprocessing, clips)


@hookimpl
def zoo_postprocess(spec, logits, top_k):
    """Softmax per clip, mean over clips, Top-k Kinetics-400 labels."""
    from modelzoo.core.tasks.classification import top_k_predictions

    return top_k_predictions(logits, spec.labels, top_k)


@hookimpl
def zoo_build_onnx(spec, state_dict):
    from modelzoo.core.video_resnet import build_video_resnet

    return build_video_resnet(state_dict, spec.name, num_classes=spec.num_classes)


@hookimpl
def zoo_patch_graph(spec, model, march):
    """The board fixes (5-D GlobalAveragePool -> ReduceMean); other families patch their own graphs."""
    if spec.family != FAMILY:
        return None
    from modelzoo.core.graph.graph_patch import patch_for_march

    return [str(change) for change in patch_for_march(model, march)]


@hookimpl
def zoo_compile_config(spec, march, onnx_path, calib_dir, working_dir):
    """A float featuremap input, normalization on the host, float32 calibration data, O2."""
    from modelzoo.core.board.compile_config import hb_compile_config

    return hb_compile_config(spec, march, onnx_path, calib_dir, working_dir)
