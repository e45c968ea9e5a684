"""ResNet-18: torchvision's ImageNet-1k image classifier (weights IMAGENET1K_V1), as a modelzoo plugin.

Converted from torchvision's checkpoint by the ResNet builder shared with the video family
(modelzoo.models._resnet); preprocessing is torchvision's ImageClassification preset for these
weights. Importing this module is cheap.
"""

from __future__ import annotations

from pathlib import Path

from modelzoo.plugin import (
    Artifact,
    ImageClassifier,
    ImagePreprocessing,
    Metric,
    ModelSpec,
    TensorSpec,
    hookimpl,
)

ZOO_HOOKSPEC_VERSION = 2

IMAGENET_PRESET = ImagePreprocessing(
    resize=256,
    crop=(224, 224),
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    interpolation="bilinear",
    antialias=True,
)
"""torchvision's ImageClassification(crop_size=224) preset for IMAGENET1K_V1."""

_PROTOCOL = "single crop: resize 256, center crop 224 (torchvision's published figure)"

SPEC = ModelSpec(
    name="resnet18",
    task="image-classification",
    description="ResNet-18 trained on ImageNet-1k (torchvision weights IMAGENET1K_V1)",
    family="resnet",
    input=TensorSpec("image", ("N", 3, 224, 224), "float32", "NCHW"),
    output=TensorSpec("logits", ("N", 1000), "float32", "NC"),
    preprocessing=IMAGENET_PRESET,
    labels_file=str(Path(__file__).with_name("imagenet1k_labels.txt")),
    artifacts=(
        # torch.hub publishes only the file name's 8-hex sha256 prefix; zoo records the full hash it observes.
        Artifact(
            "weights",
            "https://download.pytorch.org/models/resnet18-f37072fd.pth",
            sha256_prefix="f37072fd",
        ),
    ),
    metrics=(
        Metric("acc@1", 69.758, "ImageNet-1k val", _PROTOCOL),
        Metric("acc@5", 89.078, "ImageNet-1k val", _PROTOCOL),
    ),
    license="BSD-3-Clause (torchvision weights); ImageNet labels from torchvision",
    source="https://github.com/pytorch/vision/blob/main/torchvision/models/resnet.py",
    params=11_689_512,
)


class ResNet18(ImageClassifier):
    def build_onnx(self, state_dict):
        from modelzoo.models.resnet18.architecture import build_resnet18

        return build_resnet18(state_dict, num_classes=self.spec.num_classes)

    def check_onnx(self, onnx_model) -> None:
        """Refuse an ONNX that zoo converted from another architecture (its metadata records which)."""
        from modelzoo.models._resnet import refuse_other_architecture

        refuse_other_architecture(onnx_model, self.spec.name)


@hookimpl
def zoo_register_models(register):
    register(ResNet18(SPEC))
