"""modelzoo: a plugin-based model zoo, from a public checkpoint to onnxruntime and the RDK S100 board.

This module is the public API for users and plugin authors. It stays cheap to import.
"""

from __future__ import annotations

from modelzoo.core.contract.hookspecs import HOOKSPEC_VERSION, hookimpl
from modelzoo.core.contract.spec import Artifact, BoardPerf, Metric, ModelSpec, TensorSpec, VideoPreprocessing
from modelzoo.core.errors import UnknownModelError, ZooError

__all__ = [
    "Artifact",
    "BoardPerf",
    "HOOKSPEC_VERSION",
    "Metric",
    "ModelSpec",
    "TensorSpec",
    "UnknownModelError",
    "VideoPreprocessing",
    "ZooError",
    "get_model",
    "get_models",
    "get_plugins",
    "hookimpl",
    "postprocess",
    "preprocess",
]


def get_models() -> list:
    """Every registered ModelSpec, sorted by name."""
    from modelzoo.core.contract.registry import get_models as _get_models

    return _get_models()


def get_model(name: str):
    """The ModelSpec called `name`; raises UnknownModelError."""
    from modelzoo.core.contract.registry import get_model as _get_model

    return _get_model(name)


def get_plugins() -> list:
    """PluginInfo for every plugin seen, loaded or not."""
    from modelzoo.core.contract.registry import get_registry

    return list(get_registry().plugins.values())


def preprocess(model: str, input_path, clips: int = 1):
    """The float32 tensor `zoo run MODEL --input input_path` would feed the model."""
    from modelzoo.core.contract.registry import get_registry
    from modelzoo.core.runner import prepare_input

    registry = get_registry()
    return prepare_input(registry, registry.get_model(model), input_path, clips)[0]


def postprocess(model: str, logits, top_k: int = 5) -> list:
    """The model's Top-k Predictions for per-clip `logits`, as `zoo run` prints them."""
    from modelzoo.core.contract.registry import get_registry

    registry = get_registry()
    spec = registry.get_model(model)
    return registry.model_hook(spec, "zoo_postprocess")(logits=logits, top_k=top_k)
