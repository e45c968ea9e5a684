"""YOLO11n: Ultralytics' smallest YOLO11 object detector (COCO, 80 classes), as a modelzoo plugin.

It runs from the ONNX that Ultralytics' own exporter writes (`yolo export model=yolo11n.pt
format=onnx`): input `images` float32 [1, 3, 640, 640] RGB in [0, 1], output `output0` [1, 84, 8400],
box centre, size and 80 class scores per candidate, which the object-detection task's anchor-free
decode reads. The task's letterbox, decode and box mapping are Ultralytics' own (LetterBox with
auto=False, non_max_suppression, scale_boxes), so this spec only states the constants. zoo cannot
convert Ultralytics' `yolo11n.pt` itself: it is a pickled Python module, not a state dict.

On the RDK S100 it runs a `.hbm` compiled from that ONNX (`zoo compile yolo11n`: one output, as the
ONNX), or D-Robotics' published `yolo11n_detect_nashe_640x640_nv12.hbm`, whose head is split before
its decode: class logits and 16-bin box distributions per stride 8, 16, 32 (`board_heads`; sources in
docs/board.md, "Detectors"). Importing this module is cheap.
"""

from __future__ import annotations

from pathlib import Path

from modelzoo.plugin import (
    Artifact,
    ConversionError,
    DetectionPreprocessing,
    Detector,
    DflHeads,
    Metric,
    ModelSpec,
    TensorSpec,
    hookimpl,
)

ZOO_HOOKSPEC_VERSION = 2

EXPORT = "yolo export model=yolo11n.pt format=onnx"
COCO80_LABELS = str(Path(__file__).with_name("coco80_labels.txt"))
"""The 80 COCO class names in Ultralytics' order (ultralytics/cfg/datasets/coco.yaml), class id = line number - 1."""

ULTRALYTICS_LETTERBOX = DetectionPreprocessing(size=(640, 640), pad_value=114, center=True)
"""Ultralytics' LetterBox for a fixed 640x640 export: aspect ratio kept, bilinear, grey 114 centred padding."""

SPEC = ModelSpec(
    name="yolo11n",
    task="object-detection",
    description=(
        "Ultralytics YOLO11n, COCO 80 classes, from its exported ONNX; on the S100 a .hbm compiled from it "
        "or D-Robotics' published split-head NV12 .hbm"
    ),
    family="ultralytics_yolo",
    input=TensorSpec("images", ("N", 3, 640, 640), "float32", "NCHW"),
    output=TensorSpec("output0", ("N", 84, 8400), "float32"),
    preprocessing=ULTRALYTICS_LETTERBOX,
    artifacts=(
        # D-Robotics' prebuilt S100 model (rdk_model_zoo, rdk_s branch, samples/vision/yolo11/model/download_model.sh):
        # NV12 in, the head split per stride (board_heads below); no checksum is published for it.
        Artifact(
            name="hbm",
            url="https://archive.d-robotics.cc/downloads/rdk_model_zoo/rdk_s100/ultralytics_YOLO/yolo11n_detect_nashe_640x640_nv12.hbm",
            sha256=None,
            format="hbm",
        ),
    ),
    labels_file=COCO80_LABELS,
    metrics=(
        Metric(
            "mAP50-95",
            39.5,
            "COCO val2017",
            "640, single model and scale, Ultralytics' own validation (`yolo val detect data=coco.yaml`: conf 0.001, "
            "IoU 0.7, rectangular batches); Ultralytics' published figure "
            "(https://docs.ultralytics.com/models/yolo11/), not measured here",
        ),
    ),
    license="AGPL-3.0 (Ultralytics YOLO11 code and weights); COCO class names",
    source="https://docs.ultralytics.com/models/yolo11/",
    how_to_get=(
        f"zoo cannot convert Ultralytics' yolo11n.pt (a pickled module, not a state dict): export its ONNX with "
        f"Ultralytics (`pip install ultralytics`, then `{EXPORT}`), then `zoo fetch yolo11n --onnx yolo11n.onnx` "
        "once, or pass `--model yolo11n.onnx`"
    ),
)


class UltralyticsDetector(Detector):
    """An Ultralytics YOLO detect model as `yolo export ... format=onnx` writes it (no NMS inside)."""

    # D-Robotics' S100 export cuts the Detect head before its decode (per level the cv3 class logits and the
    # cv2 box distributions, NHWC), so a board model may give these instead of output0
    board_heads = DflHeads(strides=(8, 16, 32), bins=16)

    def build_onnx(self, state_dict):
        raise ConversionError(self.spec.how_to_get)

    def onnx_mismatch(self, onnx_model, problems: list) -> str:
        """Name the usual export mistakes: NMS inside the graph, another image size."""
        outputs = [[d.dim_value for d in o.type.tensor_type.shape.dim] for o in onnx_model.graph.output]
        if outputs and len(outputs[0]) == 3 and outputs[0][-1] == 6:
            problems = [
                *problems,
                f"an output [batch, {outputs[0][1]}, 6] holds boxes after NMS: it was exported with nms=True "
                "(or is an end-to-end model); export it without nms",
            ]
        size = self.spec.preprocessing.size[0]
        if any(f"takes [N, 3, {size}, {size}]" in p for p in problems):
            problems = [*problems, f"export it at imgsz={size} (the default)"]
        return f"not the ONNX of {self.name}: {'; '.join(problems)}; make it with `{EXPORT}`"


@hookimpl
def zoo_register_models(register):
    register(UltralyticsDetector(SPEC))
