"""Every registered model gets the same checks, so the next plugin is tested the moment it registers.

Models are collected from the registry (`modelzoo.get_models()`), not listed by hand; the checks
themselves are `modelzoo.testing`, the same ones third-party plugins run.
"""

from __future__ import annotations

import numpy as np
import pytest

import modelzoo
from modelzoo.core.contract.registry import get_registry, reset_registry
from modelzoo.testing import check_model

MODEL_NAMES = [model.name for model in modelzoo.get_models()]
reset_registry()  # collection must not leave a loaded registry behind for other test modules


@pytest.fixture
def model(request, monkeypatch):
    monkeypatch.delenv("ZOO_PLUGINS", raising=False)
    reset_registry()
    yield get_registry().get_model(request.param)
    reset_registry()


def parametrize_models(test):
    return pytest.mark.parametrize("model", MODEL_NAMES, indirect=True)(test)


def test_the_registry_is_not_empty():
    # Otherwise every parametrized test below would silently collect nothing.
    assert {"r3d_18", "mc3_18", "r2plus1d_18", "resnet18"} <= set(MODEL_NAMES)


@parametrize_models
def test_passes_the_checks_every_plugin_runs(model, tmp_path):
    ran = check_model(model.name, tmp_path)
    assert {"spec_is_valid", "synthetic_input_preprocesses", "runs_end_to_end", "board_config"} <= set(ran)


@parametrize_models
def test_preprocess_output_matches_the_input_spec(model, tmp_path):
    registry = get_registry()
    task = registry.task_of(model)
    sample = task.synthetic_input(model.spec, tmp_path)
    counts = (1, 3) if "clips" in task.option_names() else (1,)
    for clips in counts:
        options = {"clips": clips} if "clips" in task.option_names() else {}
        tensor = modelzoo.preprocess(model.name, sample, **options)
        assert tensor.shape == (clips, *model.spec.input.shape[1:])
        assert str(tensor.dtype) == model.spec.input.dtype


def random_state_dict(layout: dict, seed: int = 0) -> dict:
    """Plausible random weights for a {key: shape} layout: He-scaled kernels, identity BatchNorm."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in layout.items():
        if key.endswith("running_var"):
            state[key] = np.ones(shape, np.float32)
        elif key.endswith(("running_mean", ".bias")):
            state[key] = rng.normal(0, 0.1, shape).astype(np.float32)
        elif len(shape) == 1:  # a norm layer's scale
            state[key] = np.ones(shape, np.float32)
        else:
            fan_in = int(np.prod(shape[1:]))
            state[key] = rng.normal(0, (2.0 / fan_in) ** 0.5, shape).astype(np.float32)
    return state


def weight_layout(spec) -> dict:
    """The {key: shape} of the model's checkpoint, by family."""
    if spec.family == "video_resnet":
        from modelzoo.models.video_resnet.architecture import expected_keys

        return expected_keys(spec.name, spec.num_classes)
    if spec.name == "resnet18":
        from modelzoo.models._resnet import expected_keys
        from modelzoo.models.resnet18.architecture import plan

        return expected_keys(plan(), spec.num_classes)
    pytest.fail(f"family {spec.family!r} of {spec.name}: teach test_registry_models.weight_layout its key layout")


@parametrize_models
def test_conversion_runs_and_feeds_postprocess(model, tmp_path):
    import onnx

    spec = model.spec
    if spec.artifact("weights") is None:
        pytest.skip(f"{spec.name} publishes no weights to convert")
    graph = model.build_onnx(random_state_dict(weight_layout(spec)))
    assert isinstance(graph, onnx.ModelProto)
    onnx.checker.check_model(graph)
    assert [i.name for i in graph.graph.input] == [spec.input.name]
    onnx.save(graph, str(tmp_path / "model.onnx"))

    sample = get_registry().task_of(model).synthetic_input(spec, tmp_path)
    result = model.predict(sample, model_path=str(tmp_path / "model.onnx"), top_k=3, threads=2)
    predictions = result.predictions
    assert len(predictions) == 3
    assert [p.label for p in predictions] == [spec.labels[p.class_id] for p in predictions]
    assert 0 < predictions[0].score <= 1 and predictions[0].score >= predictions[1].score
