"""Every registered model gets the same checks, so the next plugin is tested the moment it registers.

Models are collected from the registry (`modelzoo.get_models()`), not listed by hand.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import modelzoo
from modelzoo.core.contract.registry import get_registry, reset_registry

MODEL_NAMES = [spec.name for spec in modelzoo.get_models()]
reset_registry()  # collection must not leave a loaded registry behind for other test modules

HEX = re.compile(r"^[0-9a-f]+$")
NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@pytest.fixture
def spec(request, monkeypatch):
    monkeypatch.delenv("ZOO_PLUGINS", raising=False)
    reset_registry()
    yield get_registry().get_model(request.param)
    reset_registry()


def parametrize_models(test):
    return pytest.mark.parametrize("spec", MODEL_NAMES, indirect=True)(test)


def test_the_registry_is_not_empty():
    # Otherwise every parametrized test below would silently collect nothing.
    assert {"r3d_18", "mc3_18", "r2plus1d_18"} <= set(MODEL_NAMES)


@parametrize_models
def test_spec_is_valid(spec):
    assert NAME.match(spec.name), f"model name {spec.name!r} must be lower-case letters, digits and _"
    assert spec.task and spec.description and spec.license and spec.plugin
    for tensor in (spec.input, spec.output):
        assert tensor.name
        np.dtype(tensor.dtype)  # a real numpy dtype name
        batch, *rest = tensor.shape
        assert isinstance(batch, str) or batch >= 1, f"{tensor.name}: first dim is the batch (a name or >= 1)"
        assert rest and all(isinstance(d, int) and d >= 1 for d in rest), f"{tensor.name}: fixed dims {tensor.shape}"
    if spec.input.layout:
        assert len(spec.input.layout) == len(spec.input.shape)
    names = [a.name for a in spec.artifacts]
    assert len(names) == len(set(names)), f"duplicate artifact names {names}"
    for artifact in spec.artifacts:
        assert artifact.url.startswith("https://"), artifact.url
        assert artifact.filename and artifact.filename not in (".", "..")
        if artifact.sha256 is not None:
            assert len(artifact.sha256) == 64 and HEX.match(artifact.sha256), artifact.sha256
        prefix = artifact.sha256_prefix
        if prefix is not None:
            assert HEX.match(prefix) and len(prefix) >= 8
            assert artifact.sha256 is None or artifact.sha256.startswith(prefix)
        # torch.hub names files `<name>-<first 8 hex of sha256>.<ext>`: whatever is declared must agree.
        hub = re.search(r"-([0-9a-f]{8,})\.[a-z]+$", artifact.filename)
        if hub and artifact.format == "pytorch":
            declared = artifact.sha256 or prefix
            assert declared and declared.startswith(hub.group(1)), f"{artifact.filename} vs {declared}"
    for metric in spec.metrics:
        assert metric.name and metric.dataset and metric.protocol, metric
    spec.to_dict()  # what `zoo info --json` prints must be buildable


@parametrize_models
def test_label_count_matches_the_output(spec):
    labels = spec.labels
    assert len(labels) == spec.num_classes
    assert len(set(labels)) == len(labels), "labels must be unique"


def write_video(path: Path, frames: int = 40, fps: float = 30.0, size=(176, 144)) -> Path:
    import cv2

    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    for i in range(frames):
        writer.write(np.roll(base, 4 * i, axis=1))
    writer.release()
    return path


def synthetic_input(spec, folder: Path) -> Path:
    if spec.task.startswith("video"):
        return write_video(folder / "synthetic.mp4")
    pytest.fail(f"no synthetic input for task {spec.task!r}: teach test_registry_models.synthetic_input about it")


@parametrize_models
def test_preprocess_output_matches_the_input_spec(spec, tmp_path):
    from modelzoo.core.inputs.inputs import open_input

    preprocess = get_registry().model_hook(spec, "zoo_preprocess")
    for clips in (1, 3):
        tensor = preprocess(source=open_input(synthetic_input(spec, tmp_path), spec.input.shape), clips=clips)
        assert tensor.shape == (clips, *spec.input.shape[1:])
        assert str(tensor.dtype) == spec.input.dtype
        assert np.isfinite(tensor).all()


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
        from modelzoo.core.video_resnet import expected_keys

        return expected_keys(spec.name, spec.num_classes)
    pytest.fail(f"family {spec.family!r} of {spec.name}: teach test_registry_models.weight_layout its key layout")


@parametrize_models
def test_conversion_runs_and_feeds_postprocess(spec, tmp_path):
    import onnx
    import onnxruntime as ort

    from modelzoo.core.inputs.inputs import open_input

    if spec.artifact("weights") is None:
        pytest.skip(f"{spec.name} publishes no weights to convert")
    registry = get_registry()
    model = registry.model_hook(spec, "zoo_build_onnx")(state_dict=random_state_dict(weight_layout(spec)))
    assert isinstance(model, onnx.ModelProto)
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == [spec.input.name]

    tensor = registry.model_hook(spec, "zoo_preprocess")(
        source=open_input(synthetic_input(spec, tmp_path), spec.input.shape), clips=1
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {spec.input.name: tensor})
    assert logits.shape == (1, len(spec.labels))
    assert np.isfinite(logits).all()

    predictions = registry.model_hook(spec, "zoo_postprocess")(logits=logits, top_k=3)
    assert len(predictions) == 3
    assert [p.label for p in predictions] == [spec.labels[p.class_id] for p in predictions]
    assert predictions[0].class_id == int(np.argmax(logits[0]))
    assert 0 < predictions[0].score <= 1
