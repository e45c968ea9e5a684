"""Checks every model must pass, importable by any plugin's tests: `check_model("my_model", tmp_path)`.

modelzoo's own test suite runs them over every registered model, and `zoo new-plugin` writes a
test that runs them for the new one. They need no network and no weights: a stand-in ONNX of the
spec's shapes (the task's own, `Task.stand_in_onnx`, or a linear map for an output [N, K]) carries
the model's own preprocessing and postprocessing end to end.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

HEX = re.compile(r"^[0-9a-f]+$")


def check_model(name: str, directory=None) -> list:
    """Run every check on the registered model `name`; returns the names of the checks that ran.

    Raises AssertionError naming the first check that fails and why.
    """
    if directory is None:
        with tempfile.TemporaryDirectory(prefix="zoo-check-") as tmp:
            return check_model(name, tmp)
    from modelzoo.core.contract.registry import get_registry

    registry = get_registry()
    if name not in registry.models:
        failed = [f"plugin {i.name!r} {i.error}" for i in registry.plugins.values() if i.error]
        if failed:  # most likely the reason; `zoo plugins` shows the same
            raise AssertionError(f"model {name!r} is not registered: {'; '.join(failed)}")
    model = registry.get_model(name)
    task = registry.task_of(model)
    directory = Path(directory)
    ran = []
    for check in (
        _spec_is_valid,
        _artifacts_are_well_formed,
        _info_is_json,
        _synthetic_input_preprocesses,
        _runs_end_to_end,
        _board_config,
    ):
        check(registry, model, task, directory)
        ran.append(check.__name__.lstrip("_"))
    return ran


def _spec_is_valid(registry, model, task, directory):
    from modelzoo.core.contract.spec import spec_problems

    spec = model.spec
    problems = spec_problems(spec) + task.spec_problems(spec)
    assert not problems, f"{spec.name}: {'; '.join(problems)}"
    assert spec.description and spec.license and spec.plugin, (
        f"{spec.name}: description, license and plugin are required"
    )
    assert not model.task or model.task == spec.task, f"{spec.name}: {type(model).__name__} is a {model.task} model"
    for tensor in (spec.input, spec.output):
        batch, *rest = tensor.shape
        assert isinstance(batch, str) or batch >= 1, f"{tensor.name}: the first dimension is the batch"
        assert all(isinstance(d, int) and d >= 1 for d in rest), (
            f"{tensor.name}: fixed dims expected, got {tensor.shape}"
        )
    if spec.labels:
        assert len(set(spec.labels)) == len(spec.labels), f"{spec.name}: labels must be unique"


def _artifacts_are_well_formed(registry, model, task, directory):
    for artifact in model.spec.artifacts:
        assert artifact.url.startswith("https://"), f"{artifact.name}: {artifact.url} is not https"
        assert artifact.filename not in ("", ".", ".."), f"{artifact.name}: no file name in {artifact.url}"
        if artifact.sha256 is not None:
            assert len(artifact.sha256) == 64 and HEX.match(artifact.sha256), f"{artifact.name}: sha256 is not 64 hex"
        if artifact.sha256_prefix is not None:
            assert HEX.match(artifact.sha256_prefix) and len(artifact.sha256_prefix) >= 8, artifact.sha256_prefix
            assert artifact.sha256 is None or artifact.sha256.startswith(artifact.sha256_prefix)
        hub = re.search(r"-([0-9a-f]{8,})\.[a-z]+$", artifact.filename)
        if hub and artifact.format == "pytorch":  # torch.hub names files `<name>-<sha256 prefix>.<ext>`
            declared = artifact.sha256 or artifact.sha256_prefix
            assert declared and declared.startswith(hub.group(1)), f"{artifact.filename} vs {declared}"


def _info_is_json(registry, model, task, directory):
    json.dumps(model.spec.to_dict())
    assert isinstance(task.describe_preprocessing(model.spec), str)
    json.dumps(model.board_input())


def _synthetic_input_preprocesses(registry, model, task, directory):
    import numpy as np

    from modelzoo.core.config import Config
    from modelzoo.core.runner import prepare_input, task_options

    sample = task.synthetic_input(model.spec, directory)
    tensor, _ = prepare_input(registry, model, sample, task_options(registry, model, Config()))
    assert tensor.shape[1:] == tuple(model.spec.input.shape[1:]), f"preprocess gave {tensor.shape}"
    assert np.isfinite(tensor).all(), "preprocess gave non-finite values"


def _stand_in(model, task, directory: Path) -> Path | None:
    """The task's stand-in ONNX for the model (`Task.stand_in_onnx`), else the generic linear map for an
    output [N, K], else None (then the end-to-end checks are the task's own tests' business)."""
    path = directory / f"{model.name}_stand_in.onnx"
    if path.exists():
        return path
    made = task.stand_in_onnx(model.spec, path)
    if made is not None:
        return Path(made)
    if len(model.spec.output.shape) == 2:
        return write_stand_in_onnx(model.spec, path)
    return None


def _runs_end_to_end(registry, model, task, directory):
    """The model's own pre- and postprocessing around a stand-in ONNX of the spec's shapes."""
    stand_in = _stand_in(model, task, directory)
    if stand_in is None:
        return
    sample = task.synthetic_input(model.spec, directory)
    result = model.predict(sample, model_path=str(stand_in), backend="onnxruntime")
    data = result.to_dict()
    json.dumps(data)
    assert data["model"] == model.name and "timing_ms" in data, data.keys()
    assert isinstance(task.format_result(result.result), str)


def _board_config(registry, model, task, directory):
    stand_in = _stand_in(model, task, directory)
    if stand_in is None:
        return
    from modelzoo.core.board.board_compile import CONFIG_SECTIONS

    march = registry.march("nash-e")
    config = model.compile_config(march, stand_in, None, directory / "out")
    missing = [s for s in CONFIG_SECTIONS if not isinstance(config.get(s), dict)]
    assert not missing, f"compile_config lacks {missing}"
    shape = config["input_parameters"]["input_shape"]
    assert shape.startswith("1x"), f"the board input has batch 1, got {shape}"


def write_stand_in_onnx(spec, path: Path) -> Path:
    """A tiny deterministic model with the spec's input and [N, K] output names and shapes: the mean of
    each input channel, times a random matrix (so its size does not grow with the input)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    channels = int(spec.input.shape[1])
    classes = int(spec.output.shape[-1])
    axes = list(range(2, len(spec.input.shape)))
    weight = np.random.default_rng(0).standard_normal((channels, classes)).astype(np.float32) * 4
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", [spec.input.name], ["pooled"], axes=axes, keepdims=0),
            helper.make_node("MatMul", ["pooled", "weight"], [spec.output.name]),
        ],
        "stand_in",
        [helper.make_tensor_value_info(spec.input.name, TensorProto.FLOAT, ["N", *spec.input.shape[1:]])],
        [helper.make_tensor_value_info(spec.output.name, TensorProto.FLOAT, ["N", classes])],
        [numpy_helper.from_array(weight, "weight")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return Path(path)
