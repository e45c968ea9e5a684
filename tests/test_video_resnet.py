"""The R3D-family ONNX builder against an independent torch implementation of torchvision's models."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from modelzoo.core.errors import ConversionError
from modelzoo.models.video_resnet.architecture import ARCHITECTURES, build_video_resnet, expected_keys

# Parameter counts of the published torchvision checkpoints (torchvision.models.video docs).
PUBLISHED_PARAMS = {"r3d_18": 33_371_472, "mc3_18": 11_695_440, "r2plus1d_18": 31_505_325}
# T of the last stage for a 16-frame clip: mc3's upper stages never stride in time.
FINAL_FEATURE_MAP = {"r3d_18": [512, 2, 7, 7], "mc3_18": [512, 16, 7, 7], "r2plus1d_18": [512, 2, 7, 7]}


def random_state_dict(arch: str, num_classes: int = 400, seed: int = 0) -> dict[str, np.ndarray]:
    """A numpy state dict of the right layout with well-scaled weights, for tests that need no torch."""
    rng = np.random.default_rng(seed)
    state_dict = {}
    for key, shape in expected_keys(arch, num_classes).items():
        if key.endswith((".running_var", ".weight")) and len(shape) == 1:  # variance, gamma
            state_dict[key] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        elif len(shape) == 1:  # beta, running_mean, fc.bias
            state_dict[key] = rng.normal(0.0, 0.1, shape).astype(np.float32)
        else:
            fan_in = int(np.prod(shape[1:]))
            state_dict[key] = rng.standard_normal(shape, dtype=np.float32) * np.float32((1 / fan_in) ** 0.5)
    return state_dict


def dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@dataclass
class Converted:
    arch: str
    torch_model: object
    onnx_model: onnx.ModelProto
    session: ort.InferenceSession
    clips: np.ndarray  # a batch of two random clips
    logits: np.ndarray  # onnxruntime's output for them


@pytest.fixture(scope="module", params=ARCHITECTURES)
def converted(request, reference_checkpoint, reference_model):
    """Each arch, saved with torch.save in the official layout, read back and converted."""
    import torch

    arch = request.param
    state_dict = torch.load(reference_checkpoint(arch), map_location="cpu", weights_only=True)
    onnx_model = build_video_resnet({k: v.numpy() for k, v in state_dict.items()}, arch)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(onnx_model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    clips = np.random.default_rng(1).standard_normal((2, 3, 16, 112, 112), dtype=np.float32)
    (logits,) = session.run(["logits"], {"video": clips})
    return Converted(arch, reference_model(arch), onnx_model, session, clips, logits)


def test_logits_match_torch(converted):
    import torch

    with torch.no_grad():
        expected = converted.torch_model(torch.from_numpy(converted.clips)).numpy()
    logits = converted.logits
    assert logits.shape == (2, 400)
    scale = np.abs(expected).max()
    assert scale > 1.0  # random weights that produced near-zero logits would make this test vacuous
    assert np.abs(logits - expected).max() <= 1e-4 * scale
    assert (logits.argmax(1) == expected.argmax(1)).all()


def test_graph_is_checked_opset17_with_named_dynamic_batch_io(converted):
    model = converted.onnx_model
    onnx.checker.check_model(model)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert model.producer_name == "modelzoo"
    (video,), (logits,) = model.graph.input, model.graph.output
    assert video.name == "video" and dims(video) == ["N", 3, 16, 112, 112]
    assert logits.name == "logits" and dims(logits) == ["N", 400]
    # The batch really is dynamic: one clip runs too and gives the row the batch gives.
    (one,) = converted.session.run(None, {"video": converted.clips[1:]})
    assert one.shape == (1, 400)
    two = converted.logits
    np.testing.assert_allclose(one[0], two[1], rtol=1e-4, atol=1e-4 * np.abs(two).max())


def test_graph_has_one_5d_global_average_pool_and_no_batchnorm(converted):
    inferred = onnx.shape_inference.infer_shapes(converted.onnx_model)
    ops = [n.op_type for n in inferred.graph.node]
    assert "BatchNormalization" not in ops  # folded into the convolutions
    pools = [n for n in inferred.graph.node if n.op_type == "GlobalAveragePool"]
    assert len(pools) == 1  # what the board patch rewrites
    shapes = {v.name: dims(v) for v in inferred.graph.value_info}
    assert shapes[pools[0].input[0]] == ["N"] + FINAL_FEATURE_MAP[converted.arch]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_expected_keys_match_torchvision_layout(arch, reference_model):
    state_dict = reference_model(arch).state_dict()
    torch_shapes = {k: tuple(v.shape) for k, v in state_dict.items() if not k.endswith(".num_batches_tracked")}
    assert expected_keys(arch) == torch_shapes


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_expected_keys_count_the_published_parameters(arch):
    params = sum(int(np.prod(shape)) for key, shape in expected_keys(arch).items() if ".running_" not in key)
    assert params == PUBLISHED_PARAMS[arch]


def test_num_classes_is_taken_from_fc_and_num_batches_tracked_is_optional():
    state_dict = random_state_dict("mc3_18", num_classes=10)  # no num_batches_tracked keys at all
    model = build_video_resnet(state_dict, "mc3_18", input_name="clip", output_name="scores", clip_len=8, size=64)
    assert [i.name for i in model.graph.input] == ["clip"] and dims(model.graph.input[0]) == ["N", 3, 8, 64, 64]
    assert [o.name for o in model.graph.output] == ["scores"] and dims(model.graph.output[0]) == ["N", 10]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    clips = np.random.default_rng(3).standard_normal((3, 3, 8, 64, 64), dtype=np.float32)
    (scores,) = session.run(None, {"clip": clips})
    assert scores.shape == (3, 10) and np.isfinite(scores).all() and scores.std() > 0


def test_missing_key_names_the_key_and_its_shape():
    state_dict = random_state_dict("r3d_18")
    del state_dict["layer3.1.conv2.1.running_var"]
    with pytest.raises(ConversionError, match=r"not a r3d_18 state dict.*'layer3\.1\.conv2\.1\.running_var'.*\[256\]"):
        build_video_resnet(state_dict, "r3d_18")


def test_other_family_member_is_rejected_naming_the_mismatched_shape():
    # mc3_18 has r3d_18's keys, but 1x3x3 kernels from layer2 on.
    with pytest.raises(ConversionError) as info:
        build_video_resnet(random_state_dict("mc3_18"), "r3d_18")
    message = str(info.value)
    assert "not a r3d_18 state dict" in message
    assert "'layer2.0.conv1.0.weight' has shape [128, 64, 1, 3, 3], expected [128, 64, 3, 3, 3]" in message


def test_unexpected_keys_are_reported():
    with pytest.raises(ConversionError, match=r"not a r3d_18 state dict.*unexpected 'stem\.3\.weight'"):
        build_video_resnet(random_state_dict("r2plus1d_18"), "r3d_18")


def test_wrong_class_count_is_reported():
    with pytest.raises(ConversionError, match=r"'fc\.weight' has shape \[10, 512\], expected \[400, 512\]"):
        build_video_resnet(random_state_dict("r3d_18", num_classes=10), "r3d_18", num_classes=400)


def test_non_float_weights_and_unknown_arch_are_reported():
    state_dict = random_state_dict("mc3_18")
    state_dict["fc.bias"] = np.zeros(400, np.int64)
    with pytest.raises(ConversionError, match=r"'fc\.bias' has dtype int64"):
        build_video_resnet(state_dict, "mc3_18")
    with pytest.raises(ConversionError, match=r"unknown video ResNet architecture 'r3d_50'.*r3d_18"):
        build_video_resnet(state_dict, "r3d_50")


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_untrained_weights_are_refused_not_run(arch):
    # What torch.save(r3d_18().state_dict()) writes when weights=... is forgotten: every BatchNorm
    # at its initial statistics. It would convert and print confident-looking noise.
    state_dict = random_state_dict(arch)
    for prefix in [k[: -len(".running_mean")] for k in state_dict if k.endswith(".running_mean")]:
        for name, fill in (("running_mean", 0), ("running_var", 1), ("weight", 1), ("bias", 0)):
            state_dict[f"{prefix}.{name}"] = np.full_like(state_dict[f"{prefix}.{name}"], fill)
    with pytest.raises(ConversionError, match=rf"not a {arch} state dict: all \d+ BatchNorm layers .* untrained"):
        build_video_resnet(state_dict, arch)
    # one layer whose statistics or scale moved is a trained network (e.g. a fine-tune that froze the rest)
    for key in ("layer4.1.conv2.1.running_var", "layer4.1.conv2.1.weight"):
        trained = dict(state_dict, **{key: np.full(512, 0.7, np.float32)})
        assert build_video_resnet(trained, arch).graph.output[0].name == "logits"
