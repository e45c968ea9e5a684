"""modelzoo: a plugin-based model zoo, from a public checkpoint to onnxruntime and the RDK S100 board.

This module is the public API for programs and plugin authors. It stays cheap to import.

    model = modelzoo.get_model("r3d_18")
    result = model.predict("archery.mp4")      # the same pipeline, options and JSON as `zoo run`
    print(result.predictions[0].label, result.to_dict())
"""

from __future__ import annotations

from modelzoo.core.contract.hookspecs import HOOKSPEC_VERSION, hookimpl
from modelzoo.core.contract.model import Model
from modelzoo.core.contract.spec import Artifact, BoardPerf, Metric, ModelSpec, TensorSpec
from modelzoo.core.errors import UnknownModelError, ZooError

__all__ = [
    "HOOKSPEC_VERSION",
    "Artifact",
    "BoardPerf",
    "Metric",
    "Model",
    "ModelSpec",
    "TensorSpec",
    "UnknownModelError",
    "ZooError",
    "get_model",
    "get_models",
    "get_plugins",
    "get_tasks",
    "hookimpl",
    "postprocess",
    "preprocess",
]


def get_models() -> list:
    """Every registered Model, sorted by name (`model.spec` holds its metadata)."""
    from modelzoo.core.contract.registry import get_models as _get_models

    return _get_models()


def get_model(name: str) -> Model:
    """The Model called `name`; raises UnknownModelError. `model.predict(input)` runs it."""
    from modelzoo.core.contract.registry import get_model as _get_model

    return _get_model(name)


def get_tasks() -> dict:
    """Registered tasks by name."""
    from modelzoo.core.contract.registry import get_registry

    return dict(get_registry().tasks)


def get_plugins() -> list:
    """PluginInfo for every plugin seen, loaded or not."""
    from modelzoo.core.contract.registry import get_registry

    return list(get_registry().plugins.values())


def preprocess(model: str, input_path, **options):
    """The float32 tensor `zoo run MODEL --input input_path` would feed the model (options: clips, ...)."""
    from modelzoo.core.config import load_config
    from modelzoo.core.contract.registry import get_registry
    from modelzoo.core.runner import prepare_input, task_options

    registry = get_registry()
    found = registry.get_model(model)
    return prepare_input(
        registry, found, _input_path(input_path), task_options(registry, found, load_config(), options)
    )[0]


def _input_path(input_path):
    """A file name, as `zoo run` takes; anything else was turned into a (huge, wrong) file name by str()."""
    import os

    if not isinstance(input_path, (str, os.PathLike)):
        from modelzoo.core.errors import InputError

        raise InputError(
            f"the input is a {type(input_path).__name__}, not a file path (str or os.PathLike); "
            "save an array with numpy.save and pass the .npy file"
        )
    return input_path


def postprocess(model: str, output, **options):
    """The task's Result for the model's raw `output` (e.g. per-clip logits), as `zoo run` makes it."""
    from modelzoo.core.config import load_config
    from modelzoo.core.contract.registry import get_registry
    from modelzoo.core.inputs.sources import InputSource
    from modelzoo.core.runner import task_options

    registry = get_registry()
    found = registry.get_model(model)
    resolved = task_options(registry, found, load_config(), options)
    return found.postprocess(output, InputSource(path=None), resolved)
