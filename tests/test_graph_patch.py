"""The S100 graph patch: 5-D GlobalAveragePool -> ReduceMean, on the zoo's ONNX and on torch-exported ONNX."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx_models import pooling_graph, zoo_onnx
from zoo_cli import invoke

from modelzoo.core.board.march_rules import nash_e
from modelzoo.core.errors import ConversionError
from modelzoo.core.graph.equivalence import verify_equivalent
from modelzoo.core.graph.graph_patch import replace_global_pooling
from modelzoo.core.graph.onnx_shapes import tensor_ranks

POOLING = {"GlobalAveragePool", "GlobalMaxPool", "AveragePool", "MaxPool"}


def patch_for_march(model, march: str) -> list:
    """The march's automatic rewrites, as `zoo patch` applies them by default."""
    assert march == "nash-e"
    return nash_e().apply_rewrites(model)


def check_model(model, march: str) -> list:
    assert march == "nash-e"
    return nash_e().check(model)


def five_d_pooling(model) -> list:
    ranks = tensor_ranks(model)
    return [n.name for n in model.graph.node if n.op_type in POOLING and ranks.get(n.input[0]) == 5]


def reduce_axes(model, node) -> list:
    """A ReduceMean's axes, from its attribute (opset < 18) or its constant input (opset >= 18)."""
    for attr in node.attribute:
        if attr.name == "axes":
            return list(attr.ints)
    initializers = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    return initializers[node.input[1]].tolist()


def copy(model):
    clone = onnx.ModelProto()
    clone.CopyFrom(model)
    return clone


def run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.fixture(scope="module")
def zoo_model(reference_model, tmp_path_factory):
    """The zoo's own full-size R3D-18 graph, converted from the torch reference model's weights."""
    return onnx.load(str(zoo_onnx(reference_model("r3d_18"), tmp_path_factory.mktemp("onnx") / "r3d_18.onnx")))


def test_zoo_onnx_is_patched_and_equivalent(zoo_model):
    assert five_d_pooling(zoo_model) == ["avgpool"]
    patched = copy(zoo_model)
    changes = patch_for_march(patched, "nash-e")

    assert [str(c) for c in changes] == [
        "avgpool: GlobalAveragePool (5-D input) -> ReduceMean(axes=[2, 3, 4], keepdims=1)"
    ]
    onnx.checker.check_model(patched, full_check=True)
    assert five_d_pooling(patched) == [] and check_model(patched, "nash-e") == []
    (reduce,) = [n for n in patched.graph.node if n.op_type == "ReduceMean"]
    assert reduce_axes(patched, reduce) == [2, 3, 4]
    assert [a.i for a in reduce.attribute if a.name == "keepdims"] == [1]
    # the node sits where the pooling was, so Flatten -> Gemm still reads the same [N,512,1,1,1] tensor
    assert [n.op_type for n in patched.graph.node][-3:] == ["ReduceMean", "Flatten", "Gemm"]

    result = verify_equivalent(zoo_model, patched)
    assert result.relative_diff <= 1e-5 and result.max_abs_output > 0.1
    assert result.input_shapes == {"video": [1, 3, 16, 112, 112]}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter is deprecated, still shipped
@pytest.mark.parametrize("opset, dynamic_batch", [(17, True), (18, False)])
def test_torch_exported_onnx(reference_model, tmp_path, opset, dynamic_batch):
    """torch.onnx.export writes no value_info: the rank comes from shape inference. From opset 18 on,
    ReduceMean takes its axes as an input."""
    import torch

    model = reference_model("r3d_18")
    x = torch.randn(1, 3, 8, 56, 56, generator=torch.Generator().manual_seed(0))
    path = tmp_path / f"exported_{opset}.onnx"
    torch.onnx.export(
        model,
        (x,),
        str(path),
        dynamo=False,
        opset_version=opset,
        input_names=["clip"],
        output_names=["scores"],
        dynamic_axes={"clip": {0: "batch"}, "scores": {0: "batch"}} if dynamic_batch else None,
    )
    exported = onnx.load(str(path))
    assert len(exported.graph.value_info) == 0  # nothing declared: the patch must infer ranks itself
    assert [n.op_type for n in exported.graph.node].count("GlobalAveragePool") == 1
    assert len(check_model(exported, "nash-e")) == 1

    patched = copy(exported)
    changes = patch_for_march(patched, "nash-e")
    assert len(changes) == 1 and changes[0].old_op == "GlobalAveragePool" and changes[0].new_op == "ReduceMean"
    onnx.checker.check_model(patched, full_check=True)
    assert five_d_pooling(patched) == [] and check_model(patched, "nash-e") == []
    (reduce,) = [n for n in patched.graph.node if n.op_type == "ReduceMean"]
    assert reduce_axes(patched, reduce) == [2, 3, 4]
    assert (len(reduce.input) == 2) == (opset >= 18)

    assert verify_equivalent(exported, patched).relative_diff <= 1e-5
    with torch.no_grad():
        expected = model(x).numpy()
    actual = run(patched, x.numpy())
    assert np.max(np.abs(actual - expected)) <= 1e-4 * np.max(np.abs(expected))


def test_a_wrong_rewrite_fails_loudly(zoo_model):
    """verify_equivalent is the guard: a same-shaped but different reduction must not pass."""
    wrong = copy(zoo_model)
    replace_global_pooling(wrong)
    (node,) = [n for n in wrong.graph.node if n.op_type == "ReduceMean"]
    node.op_type = "ReduceMax"
    with pytest.raises(ConversionError, match="NOT equivalent"):
        verify_equivalent(zoo_model, wrong)


def test_patch_is_idempotent_and_leaves_4d_pooling_alone(zoo_model):
    patched = copy(zoo_model)
    patch_for_march(patched, "nash-e")
    assert patch_for_march(patched, "nash-e") == []

    four_d = pooling_graph("GlobalAveragePool", 4)
    assert replace_global_pooling(four_d) == []
    assert [n.op_type for n in four_d.graph.node] == ["GlobalAveragePool"]


def test_unknown_rank_is_an_error_not_a_silent_skip():
    model = pooling_graph("GlobalAveragePool", 5, shaped=False)
    with pytest.raises(ConversionError, match="rank"):
        replace_global_pooling(model)


def test_zoo_patch_command(capsys, reference_model, tmp_path):
    source = zoo_onnx(reference_model("r3d_18"), tmp_path / "small.onnx", clip_len=8, size=56)
    target = tmp_path / "out" / "patched.onnx"
    result = invoke(capsys, "patch", "r3d_18", "--model", source, "-o", target, "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["changes"] == ["avgpool: GlobalAveragePool (5-D input) -> ReduceMean(axes=[2, 3, 4], keepdims=1)"]
    assert data["equivalence"]["relative_diff"] <= 1e-5 and data["remaining"] == []
    assert data["output"] == str(target)
    patched = onnx.load(str(target))
    assert five_d_pooling(patched) == []

    text = invoke(capsys, "patch", "r3d_18", "--model", source, "-o", target)
    assert text.code == 0, text.err
    assert "GlobalAveragePool" in text.out and "ReduceMean" in text.out and "equivalent" in text.out

    again = invoke(capsys, "patch", "r3d_18", "--model", target, "-o", tmp_path / "twice.onnx")
    assert again.code == 0 and "nothing to change" in again.out


def test_zoo_patch_refuses_a_model_it_cannot_verify(capsys, tmp_path):
    """Exploding random weights give inf logits: equivalence cannot be shown, so no silent success."""
    from modelzoo.models.video_resnet.architecture import build_video_resnet, expected_keys

    rng = np.random.default_rng(0)
    state = {k: rng.random(s, dtype=np.float32) + 0.5 for k, s in expected_keys("r3d_18").items()}
    onnx.save(build_video_resnet(state, "r3d_18", clip_len=4, size=32), str(tmp_path / "inf.onnx"))
    result = invoke(capsys, "patch", "r3d_18", "--model", tmp_path / "inf.onnx", "-o", tmp_path / "out.onnx")
    result.assert_user_error("not finite", "cannot be proven")
    assert not (tmp_path / "out.onnx").exists()


# -- the core's part: validation around every model's patch -------------------------------------


@pytest.fixture
def r3d_18():
    from modelzoo.core.contract.registry import get_registry

    return get_registry().get_model("r3d_18")


def test_a_models_own_patch_replaces_the_default(tmp_path):
    """A model class may patch its graph its own way; the march's rewrites are only the default."""
    from onnx_models import tiny_video_classifier

    from modelzoo.core.board.board_compile import patch_model
    from modelzoo.models.r3d_18 import SPEC
    from modelzoo.models.video_resnet import VideoResNet

    class Untouched(VideoResNet):
        def patch_graph(self, onnx_model, march):
            return []

    model = onnx.load(str(tiny_video_classifier(tmp_path / "tiny.onnx")))
    patched, result = patch_model(Untouched(SPEC), model, nash_e())
    assert result.changes == [] and patched.SerializeToString() == model.SerializeToString()
    default, result = patch_model(VideoResNet(SPEC), model, nash_e())
    assert [n.op_type for n in default.graph.node if n.name == "avgpool"] == ["ReduceMean"]
    assert result.equivalence is not None


def test_a_silent_rewrite_is_still_validated(tmp_path):
    """A patch that changes the graph but reports nothing gets checked all the same."""
    from onnx_models import tiny_video_classifier

    from modelzoo.core.board.board_compile import patch_model
    from modelzoo.models.r3d_18 import SPEC
    from modelzoo.models.video_resnet import VideoResNet

    class Sneaky(VideoResNet):
        def patch_graph(self, onnx_model, march):
            for node in onnx_model.graph.node:
                if node.op_type == "Relu":
                    node.op_type = "Sigmoid"
            return None

    model = onnx.load(str(tiny_video_classifier(tmp_path / "tiny.onnx")))
    with pytest.raises(ConversionError, match="NOT equivalent"):
        patch_model(Sneaky(SPEC), model, nash_e())


def test_equivalence_is_proven_at_the_models_real_input_shape(r3d_18, reference_model, tmp_path):
    """A torch export with a dynamic T must be checked with 16 frames, not 1."""
    from modelzoo.core.board.board_compile import patch_model

    torch = pytest.importorskip("torch")
    path = tmp_path / "dyn.onnx"
    torch.onnx.export(
        reference_model("r3d_18"),
        torch.zeros(1, 3, 16, 112, 112),
        str(path),
        input_names=["video"],
        output_names=["logits"],
        dynamic_axes={"video": {0: "N", 2: "T"}},
        opset_version=17,
        dynamo=False,
    )
    _, result = patch_model(r3d_18, onnx.load(str(path)), nash_e())
    assert result.equivalence.input_shapes == {"video": [1, 3, 16, 112, 112]}
