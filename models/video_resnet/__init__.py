"""torchvision's video ResNets (r3d_18, mc3_18, r2plus1d_18) for Kinetics-400: what the family shares.

Each member's plugin is a spec plus `VideoResNet(spec)`: the Kinetics-400 preset and labels, the
torch-free ONNX builder and the default board path all live once, here. Importing this module is
cheap; the builder loads when a checkpoint is converted.
"""

from __future__ import annotations

from pathlib import Path

from modelzoo.plugin import Metric, ModelSpec, TensorSpec, VideoClassifier, VideoPreprocessing

FAMILY = "video_resnet"
SOURCE = "https://github.com/pytorch/vision/blob/main/torchvision/models/video/resnet.py"
LICENSE = "BSD-3-Clause (torchvision weights); Kinetics-400 labels CC BY 4.0"
VIDEO_LEVEL = "video-level: 15 fps, 5 clips of 16 frames, softmax averaged, center crop"
"""The protocol of torchvision's published Kinetics-400 accuracy for these weights."""

KINETICS400_LABELS = str(Path(__file__).with_name("kinetics400_labels.txt"))
KINETICS400_PRESET = VideoPreprocessing(
    clip_len=16,
    target_fps=15.0,
    resize=(128, 171),
    crop=(112, 112),
    mean=(0.43216, 0.394666, 0.37645),
    std=(0.22803, 0.22145, 0.216989),
)
"""torchvision's VideoClassification preset for the KINETICS400_V1 weights."""


class VideoResNet(VideoClassifier):
    """A member of the family: the spec's name is the architecture's name."""

    def build_onnx(self, state_dict):
        from modelzoo.models.video_resnet.architecture import build_video_resnet

        return build_video_resnet(state_dict, self.spec.name, num_classes=self.spec.num_classes)

    def check_onnx(self, onnx_model) -> None:
        """Refuse an ONNX that zoo converted from another architecture (its metadata records which)."""
        from modelzoo.models._resnet import refuse_other_architecture

        refuse_other_architecture(onnx_model, self.spec.name)


def kinetics400_spec(
    name: str, description: str, artifacts: tuple, acc1: float, acc5: float, params: int, **extra
) -> ModelSpec:
    """A family member's spec: what all of them share is filled in, the rest comes from the plugin."""
    return ModelSpec(
        name=name,
        task="video-classification",
        description=description,
        family=FAMILY,
        input=TensorSpec("video", ("N", 3, 16, 112, 112), "float32", "NCTHW"),
        output=TensorSpec("logits", ("N", 400), "float32", "NC"),
        preprocessing=KINETICS400_PRESET,
        labels_file=KINETICS400_LABELS,
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


def kinetics_annotation_format():
    """The Kinetics annotation CSV dataset format the family's plugins register (imported on use)."""
    from modelzoo.models.video_resnet.kinetics_annotations import KineticsAnnotations

    return KineticsAnnotations()
