"""Everything a model plugin needs from modelzoo, in one import: `from modelzoo.plugin import ...`.

This is the stable surface for plugin authors; the modules behind it may move. It is cheap to
import (`zoo list` imports every plugin): what needs numpy, OpenCV or onnx loads when it is called.
"""

from __future__ import annotations

from modelzoo.core.backends.backend import Backend
from modelzoo.core.board.compile_config import hb_compile_config
from modelzoo.core.contract.hookspecs import HOOKSPEC_VERSION, hookimpl
from modelzoo.core.contract.spec import Artifact, BoardPerf, Metric, ModelSpec, TensorSpec, VideoPreprocessing
from modelzoo.core.errors import (
    BackendError,
    CheckpointError,
    ConversionError,
    InputError,
    PluginError,
    ZooError,
)
from modelzoo.core.graph.graph_patch import patch_for_march
from modelzoo.core.inputs.inputs import InputSource
from modelzoo.core.tasks.classification import Prediction, softmax, top_k_predictions
from modelzoo.core.tasks.video_classification import preprocess_video_classification
from modelzoo.core.video_resnet import build_video_resnet

__all__ = [
    "Artifact",
    "Backend",
    "BackendError",
    "BoardPerf",
    "CheckpointError",
    "ConversionError",
    "GraphBuilder",
    "HOOKSPEC_VERSION",
    "InputError",
    "InputSource",
    "Metric",
    "ModelSpec",
    "PluginError",
    "Prediction",
    "TensorSpec",
    "VideoPreprocessing",
    "ZooError",
    "build_video_resnet",
    "fold_batchnorm",
    "hb_compile_config",
    "hookimpl",
    "patch_for_march",
    "preprocess_video_classification",
    "softmax",
    "top_k_predictions",
]


def __getattr__(name: str):
    # The ONNX graph builder imports numpy and onnx at load time: only on first use.
    if name in ("GraphBuilder", "fold_batchnorm"):
        from modelzoo.core.graph import onnx_builder

        return getattr(onnx_builder, name)
    raise AttributeError(f"module 'modelzoo.plugin' has no attribute {name!r}")
