"""Everything a model plugin needs from modelzoo, in one import: `from modelzoo.plugin import ...`.

This is the stable surface for plugin authors; the modules behind it may move. It is cheap to
import (`zoo list` imports every plugin): what needs numpy, OpenCV or onnx loads when it is called.
"""

from __future__ import annotations

from modelzoo.core.accuracy.formats import DatasetEntry, DatasetFormat, DatasetListing, csv_rows
from modelzoo.core.backends.backend import Backend
from modelzoo.core.board.march_rules import PATCH_COMMAND, Finding, March, Rewrite, Rule
from modelzoo.core.contract.hookspecs import HOOKSPEC_VERSION, hookimpl
from modelzoo.core.contract.model import Model
from modelzoo.core.contract.spec import Artifact, BoardPerf, Metric, ModelSpec, TensorSpec
from modelzoo.core.contract.task import FRAMES, IMAGE, TENSOR, VIDEO, Option, Result, Task
from modelzoo.core.errors import (
    BackendError,
    CheckpointError,
    ConversionError,
    InputError,
    PluginError,
    ZooError,
)
from modelzoo.core.inputs.sources import InputSource
from modelzoo.core.tasks.classification import (
    ClassificationResult,
    Prediction,
    classification_table,
    classify,
    softmax,
    top_k_predictions,
)
from modelzoo.core.tasks.detection import (
    Detection,
    DetectionPreprocessing,
    DetectionResult,
    DetectionTask,
    Detector,
    DflHeads,
    decode_anchor_free,
    letterbox_tensor,
    nms_boxes,
)
from modelzoo.core.tasks.image_classification import (
    ImageClassificationTask,
    ImageClassifier,
    ImagePreprocessing,
    preprocess_image,
)
from modelzoo.core.tasks.video_classification import (
    VideoClassificationTask,
    VideoClassifier,
    VideoPreprocessing,
    preprocess_video_classification,
)

__all__ = [
    "FRAMES",
    "HOOKSPEC_VERSION",
    "IMAGE",
    "PATCH_COMMAND",
    "TENSOR",
    "VIDEO",
    "Artifact",
    "Backend",
    "BackendError",
    "BoardPerf",
    "CheckpointError",
    "ClassificationResult",
    "ConversionError",
    "DatasetEntry",
    "DatasetFormat",
    "DatasetListing",
    "Detection",
    "DetectionPreprocessing",
    "DetectionResult",
    "DetectionTask",
    "Detector",
    "DflHeads",
    "Finding",
    "GraphBuilder",
    "ImageClassificationTask",
    "ImageClassifier",
    "ImagePreprocessing",
    "InputError",
    "InputSource",
    "March",
    "Metric",
    "Model",
    "ModelSpec",
    "Option",
    "PluginError",
    "Prediction",
    "Result",
    "Rewrite",
    "Rule",
    "Task",
    "TensorSpec",
    "VideoClassificationTask",
    "VideoClassifier",
    "VideoPreprocessing",
    "ZooError",
    "classification_table",
    "classify",
    "csv_rows",
    "decode_anchor_free",
    "fold_batchnorm",
    "hb_compile_config",
    "hookimpl",
    "letterbox_tensor",
    "nms_boxes",
    "preprocess_image",
    "preprocess_video_classification",
    "softmax",
    "top_k_predictions",
]


def __getattr__(name: str):
    # The ONNX graph builder imports numpy and onnx at load time, the compile config onnx: only on first use.
    if name in ("GraphBuilder", "fold_batchnorm"):
        from modelzoo.core.graph import onnx_builder

        return getattr(onnx_builder, name)
    if name == "hb_compile_config":
        from modelzoo.core.board.compile_config import hb_compile_config

        return hb_compile_config
    raise AttributeError(f"module 'modelzoo.plugin' has no attribute {name!r}")
