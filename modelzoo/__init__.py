"""modelzoo: a plugin-based model zoo, from a public checkpoint to onnxruntime and the RDK S100 board.

This module is the public API for users and plugin authors. It stays cheap to import.
"""
from __future__ import annotations

from modelzoo.core.errors import UnknownModelError, ZooError
from modelzoo.core.hookspecs import HOOKSPEC_VERSION, hookimpl
from modelzoo.core.spec import Artifact, BoardPerf, Metric, ModelSpec, TensorSpec, VideoPreprocessing

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
]


def get_models() -> list:
    """Every registered ModelSpec, sorted by name."""
    from modelzoo.core.registry import get_models as _get_models

    return _get_models()


def get_model(name: str):
    """The ModelSpec called `name`; raises UnknownModelError."""
    from modelzoo.core.registry import get_model as _get_model

    return _get_model(name)


def get_plugins() -> list:
    """PluginInfo for every plugin seen, loaded or not."""
    from modelzoo.core.registry import get_registry

    return list(get_registry().plugins.values())
