"""The S100 graph patch, on the zoo's ONNX and on torch-exported ONNX: by default a 5-D GlobalAveragePool
becomes a Reshape to 4-D and a 2-D ReduceMean (reduce_mean_4d); the 5-D ReduceMean (reduce_mean_5d)
stays an option."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from onnx_models import pooling_graph, zoo_onnx
from zoo_cli import invoke

from modelzoo.core.board.march_rules import nash_e
from modelzoo.core.errors import ConversionError
from modelzoo.core.graph.equivalence import verify_equivalent
from modelzoo.core.graph.graph_patch import reduce_in_4d, replace_global_pooling
from modelzoo.core.graph.onnx_shapes import tensor_ranks

POOLING = {"GlobalAveragePool", "GlobalMaxPool", "AveragePool", "MaxPool"}
REDUCTIONS = {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL1", "ReduceL2"}
DEFAULT_CHANGE = (
    "avgpool: GlobalAveragePool (5-D input [N, 512, 2, 7, 7]) -> Reshape to [N, 512, 14, 7], "
    "ReduceMean(axes=[2, 3], keepdims=1) (4-D input)"
)
FIVE_D_CHANGE = "avgpool: GlobalAveragePool (5-D input) -> ReduceMean(axes=[2, 3, 4], keepdims=1)"


def patch_for_march(model, march: str, names=None) -> list:
    """The march's automatic rewrites, as `zoo patch` applies them by default (or those in `names`)."""
    assert march == "nash-e"
    return nash_e().apply_rewrites(model, names)


def check_model(model, march: str) -> list:
    assert march == "nash-e"
    return nash_e().check(model)


def five_d_pooling(model) -> list:
    ranks = tensor_ranks(model)
    return [n.name for n in model.graph.node if n.op_type in POOLING and ranks.get(n.input[0]) == 5]


def five_d_pooling_or_reduction(model) -> list:
    """Every pooling or reduction node whose input is 5-D."""
    ranks = tensor_ranks(model)
    return [
        n.name
        for n in model.graph.node
        if n.op_type in POOLING | REDUCTIONS and (ranks.get(n.input[0]) is None or ranks[n.input[0]] >= 5)
    ]


def reduce_axes(model, node) -> list:
    """A ReduceMean's axes, from its attribute (opset < 18) or its constant input (opset >= 18)."""
    for attr in node.attribute:
        if attr.name == "axes":
            return list(attr.ints)
    initializers = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    return initializers[node.input[1]].tolist()


def constant_input(model, node, index: int) -> list:
    initializers = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    return initializers[node.input[index]].tolist()


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


def test_zoo_onnx_is_patched_in_4d_and_equivalent(zoo_model):
    """The default rewrite on the full-size graph: Reshape [N,512,2,7,7] -> [N,512,14,7], a 4-D ReduceMean
    over axes 2,3, and Flatten -> Gemm reading its [N,512,1,1] output; nothing pools or reduces in 5-D."""
    assert five_d_pooling(zoo_model) == ["avgpool"]
    patched = copy(zoo_model)
    changes = patch_for_march(patched, "nash-e")

    assert [str(c) for c in changes] == [DEFAULT_CHANGE]
    onnx.checker.check_model(patched, full_check=True)
    assert five_d_pooling_or_reduction(patched) == [] and check_model(patched, "nash-e") == []
    assert [n.op_type for n in patched.graph.node][-4:] == ["Reshape", "ReduceMean", "Flatten", "Gemm"]
    reshape, reduce, flatten = patched.graph.node[-4:-1]
    assert constant_input(patched, reshape, 1) == [0, 512, 14, 7]  # T folded into H: [N, C, T*H, W]
    assert reduce.name == "avgpool" and reduce.input[0] == reshape.output[0]
    assert reduce_axes(patched, reduce) == [2, 3]
    assert [a.i for a in reduce.attribute if a.name == "keepdims"] == [1]
    assert flatten.input[0] == reduce.output[0]
    inferred = onnx.shape_inference.infer_shapes(patched)
    shapes = {
        v.name: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim] for v in inferred.graph.value_info
    }
    assert shapes[reshape.output[0]] == ["N", 512, 14, 7] and shapes[reduce.output[0]] == ["N", 512, 1, 1]
    assert shapes[flatten.output[0]] == ["N", 512]

    result = verify_equivalent(zoo_model, patched)
    assert result.relative_diff <= 1e-5 and result.max_abs_output > 0.1
    assert result.input_shapes == {"video": [1, 3, 16, 112, 112]}


def test_the_default_patch_of_r3d_18_is_4d_and_equivalent(zoo_model, r3d_18):
    """What must hold (issue 10): `zoo patch r3d_18` with no option leaves no pooling or reduction node
    with a 5-D input, and its outputs equal the unpatched graph's within 1e-5 relative."""
    from modelzoo.core.board.board_compile import patch_model
    from modelzoo.core.contract.registry import get_registry

    march = get_registry().march("nash-e")
    assert march.default_rewrites() == ("reduce_mean_4d",)
    patched, result = patch_model(r3d_18, zoo_model, march)
    assert five_d_pooling_or_reduction(patched) == [] and march.check(patched) == []
    assert result.changes == [DEFAULT_CHANGE]
    assert result.equivalence.relative_diff <= 1e-5 and result.equivalence.max_abs_output > 0.1
    x = np.random.default_rng(7).standard_normal((2, 3, 16, 112, 112), dtype=np.float32)  # and at batch 2
    expected, actual = run(zoo_model, x), run(patched, x)
    assert np.max(np.abs(actual - expected)) <= 1e-5 * np.max(np.abs(expected))


def test_the_5d_reduce_mean_stays_an_option(zoo_model):
    patched = copy(zoo_model)
    changes = patch_for_march(patched, "nash-e", ["reduce_mean_5d"])

    assert [str(c) for c in changes] == [FIVE_D_CHANGE]
    onnx.checker.check_model(patched, full_check=True)
    assert five_d_pooling(patched) == []
    (reduce,) = [n for n in patched.graph.node if n.op_type == "ReduceMean"]
    assert reduce_axes(patched, reduce) == [2, 3, 4]
    assert [a.i for a in reduce.attribute if a.name == "keepdims"] == [1]
    # the node sits where the pooling was, so Flatten -> Gemm still reads the same [N,512,1,1,1] tensor
    assert [n.op_type for n in patched.graph.node][-3:] == ["ReduceMean", "Flatten", "Gemm"]
    # nash-e is not known to accept it: a warning, not an error
    (finding,) = check_model(patched, "nash-e")
    assert (finding.node, finding.op_type, finding.rank, finding.severity) == ("avgpool", "ReduceMean", 5, "warning")
    assert "not known to be accepted" in finding.message and "reduce_mean_4d" in finding.fix
    assert verify_equivalent(zoo_model, patched).relative_diff <= 1e-5

    # the default rewrite then moves that 5-D ReduceMean to 4-D as well
    again = patch_for_march(patched, "nash-e")
    assert [str(c) for c in again] == [DEFAULT_CHANGE.replace("GlobalAveragePool", "ReduceMean", 1)]
    assert five_d_pooling_or_reduction(patched) == [] and check_model(patched, "nash-e") == []
    assert verify_equivalent(zoo_model, patched).relative_diff <= 1e-5


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter is deprecated, still shipped
@pytest.mark.parametrize("opset, dynamic_batch", [(17, True), (18, False)])
def test_torch_exported_onnx(reference_model, tmp_path, opset, dynamic_batch):
    """torch.onnx.export writes no value_info: the shape comes from shape inference. From opset 18 on,
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
    assert len(exported.graph.value_info) == 0  # nothing declared: the patch must infer shapes itself
    assert [n.op_type for n in exported.graph.node].count("GlobalAveragePool") == 1
    assert len(check_model(exported, "nash-e")) == 1

    for names, axes in ((None, [2, 3]), (["reduce_mean_5d"], [2, 3, 4])):
        patched = copy(exported)
        changes = patch_for_march(patched, "nash-e", names)
        assert len(changes) == 1 and changes[0].old_op == "GlobalAveragePool" and changes[0].new_op == "ReduceMean"
        onnx.checker.check_model(patched, full_check=True)
        assert five_d_pooling(patched) == []
        (reduce,) = [n for n in patched.graph.node if n.op_type == "ReduceMean"]
        assert reduce_axes(patched, reduce) == axes
        assert (len(reduce.input) == 2) == (opset >= 18)
        assert len(five_d_pooling_or_reduction(patched)) == (0 if names is None else 1)

        assert verify_equivalent(exported, patched).relative_diff <= 1e-5
        with torch.no_grad():
            expected = model(x).numpy()
        actual = run(patched, x.numpy())
        assert np.max(np.abs(actual - expected)) <= 1e-4 * np.max(np.abs(expected))


def test_a_wrong_rewrite_fails_loudly(zoo_model):
    """verify_equivalent is the guard: a same-shaped but different reduction must not pass."""
    for rewrite in (reduce_in_4d, replace_global_pooling):
        wrong = copy(zoo_model)
        rewrite(wrong)
        (node,) = [n for n in wrong.graph.node if n.op_type == "ReduceMean"]
        node.op_type = "ReduceMax"
        with pytest.raises(ConversionError, match="NOT equivalent"):
            verify_equivalent(zoo_model, wrong)


def test_patch_is_idempotent_and_leaves_4d_pooling_alone(zoo_model):
    patched = copy(zoo_model)
    patch_for_march(patched, "nash-e")
    assert patch_for_march(patched, "nash-e") == []
    assert patch_for_march(patched, "nash-e", ["reduce_mean_5d"]) == []

    four_d = pooling_graph("GlobalAveragePool", 4)
    assert replace_global_pooling(four_d) == [] and reduce_in_4d(four_d) == []
    assert [n.op_type for n in four_d.graph.node] == ["GlobalAveragePool"]


def test_unknown_rank_is_an_error_not_a_silent_skip():
    for rewrite in (replace_global_pooling, reduce_in_4d):
        model = pooling_graph("GlobalAveragePool", 5, shaped=False)
        with pytest.raises(ConversionError, match="rank"):
            rewrite(model)


# -- the 4-D rewrite on other graph shapes -------------------------------------------------------


def graph(nodes, inputs, outputs, initializers=(), opset=17, value_info=()):
    model = helper.make_model(
        helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers), value_info=list(value_info)),
        opset_imports=[helper.make_opsetid("", opset)],
    )
    model.ir_version = helper.find_min_ir_version_for(list(model.opset_import))
    onnx.checker.check_model(model)
    return model


def assert_4d_and_equivalent(model, patched, shape):
    onnx.checker.check_model(patched, full_check=True)
    assert five_d_pooling_or_reduction(patched) == [] and check_model(patched, "nash-e") == []
    x = np.random.default_rng(3).standard_normal(shape, dtype=np.float32)
    expected, actual = run(model, x), run(patched, x)
    assert expected.shape == actual.shape
    assert np.max(np.abs(actual - expected)) <= 1e-5 * np.max(np.abs(expected))


@pytest.mark.parametrize("op_type", ["GlobalAveragePool", "GlobalMaxPool"])
def test_a_5d_pooling_output_that_is_not_flattened_gets_its_shape_back(op_type):
    """When the pooled tensor is a graph output (or feeds anything but Flatten(axis=1)), a last Reshape
    gives back [N,C,1,1,1]; the declared 5-D output stays true."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 3, 5, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 1, 1, 1])
    model = graph([helper.make_node(op_type, ["x"], ["y"], name="pool")], [x], [y])
    patched = copy(model)
    (change,) = reduce_in_4d(patched)
    assert str(change) == (
        f"pool: {op_type} (5-D input [N, 4, 3, 5, 6]) -> Reshape to [N, 4, 15, 6], "
        f"{change.new_op}(axes=[2, 3], keepdims=1) (4-D input), Reshape back to [N, 4, 1, 1, 1]"
    )
    assert [n.op_type for n in patched.graph.node] == ["Reshape", change.new_op, "Reshape"]
    assert patched.graph.node[-1].output[0] == "y"
    assert_4d_and_equivalent(model, patched, (2, 4, 3, 5, 6))


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("op_type, keepdims", [("ReduceMean", 0), ("ReduceSum", 1), ("ReduceMax", 0)])
def test_5d_reductions_over_the_last_three_axes_move_to_4d(op_type, keepdims, opset):
    """Axes given as an attribute or an input (ReduceSum from opset 13, the others from 18), negative
    axes, keepdims 0 (no Reshape back needed)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 3, 5, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 1, 1, 1] if keepdims else [1, 4])
    axes = [-3, -2, -1]
    as_input = opset >= (13 if op_type == "ReduceSum" else 18)
    if as_input:
        node = helper.make_node(op_type, ["x", "axes"], ["y"], name="r", keepdims=keepdims)
        inits = [onnx.numpy_helper.from_array(np.array(axes, dtype=np.int64), "axes")]
    else:
        node = helper.make_node(op_type, ["x"], ["y"], name="r", axes=axes, keepdims=keepdims)
        inits = []
    model = graph([node], [x], [y], inits, opset=opset)
    assert [f.severity for f in check_model(model, "nash-e")] == ["warning"]
    patched = copy(model)
    (change,) = reduce_in_4d(patched)
    assert change.old_op == change.new_op == op_type and change.keepdims == keepdims
    assert [n.op_type for n in patched.graph.node] == ["Reshape", op_type] + (["Reshape"] if keepdims else [])
    assert_4d_and_equivalent(model, patched, (1, 4, 3, 5, 6))


def test_other_reductions_are_left_alone_and_still_warned_about():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 3, 5, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 3, 1, 1])
    model = graph([helper.make_node("ReduceMean", ["x"], ["y"], name="r", axes=[3, 4])], [x], [y])
    assert reduce_in_4d(model) == []
    (finding,) = check_model(model, "nash-e")
    assert finding.severity == "warning" and finding.op_type == "ReduceMean"


def test_dynamic_dims_and_a_stale_declared_shape():
    """Without static C,T,H,W the block becomes [N, C, T*H*W, 1] (Reshape 0,0,-1,1); a value_info that
    declared the pooled tensor 5-D is dropped, since Flatten now reads it 4-D."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "C", "T", 5, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "F"])
    stale = helper.make_tensor_value_info("p", TensorProto.FLOAT, ["N", "C", 1, 1, 1])
    model = graph(
        [
            helper.make_node("GlobalAveragePool", ["x"], ["p"], name="pool"),
            helper.make_node("Flatten", ["p"], ["y"], name="flatten"),
        ],
        [x],
        [y],
        value_info=[stale],
    )
    patched = copy(model)
    (change,) = reduce_in_4d(patched)
    assert "Reshape to [N, C, ?, 1]" in str(change) and change.restored is None
    reshape = patched.graph.node[0]
    assert constant_input(patched, reshape, 1) == [0, 0, -1, 1]
    assert [v.name for v in patched.graph.value_info] == []
    assert_4d_and_equivalent(model, patched, (2, 3, 4, 5, 6))


def test_zoo_patch_command(capsys, reference_model, tmp_path):
    source = zoo_onnx(reference_model("r3d_18"), tmp_path / "small.onnx", clip_len=8, size=56)
    target = tmp_path / "out" / "patched.onnx"
    result = invoke(capsys, "patch", "r3d_18", "--model", source, "-o", target, "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["changes"] == [
        "avgpool: GlobalAveragePool (5-D input [N, 512, 1, 4, 4]) -> Reshape to [N, 512, 4, 4], "
        "ReduceMean(axes=[2, 3], keepdims=1) (4-D input)"
    ]
    assert data["rewrites"] == ["reduce_mean_4d"]
    assert data["equivalence"]["relative_diff"] <= 1e-5 and data["remaining"] == []
    assert data["output"] == str(target)
    patched = onnx.load(str(target))
    assert five_d_pooling_or_reduction(patched) == []

    text = invoke(capsys, "patch", "r3d_18", "--model", source, "-o", target)
    assert text.code == 0, text.err
    assert "GlobalAveragePool" in text.out and "ReduceMean" in text.out and "equivalent" in text.out
    assert "not known" not in text.err

    again = invoke(capsys, "patch", "r3d_18", "--model", target, "-o", tmp_path / "twice.onnx")
    assert again.code == 0 and "nothing to change" in again.out


def test_zoo_patch_rewrite_option(capsys, reference_model, tmp_path):
    source = zoo_onnx(reference_model("r3d_18"), tmp_path / "small.onnx", clip_len=8, size=56)
    five_d = tmp_path / "five_d.onnx"
    result = invoke(capsys, "patch", "r3d_18", "--model", source, "--rewrite", "reduce_mean_5d", "-o", five_d, "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["rewrites"] == ["reduce_mean_5d"]
    assert data["changes"] == [FIVE_D_CHANGE] and data["equivalence"]["relative_diff"] <= 1e-5
    (remaining,) = data["remaining"]
    assert remaining["severity"] == "warning" and remaining["op_type"] == "ReduceMean"
    assert "not known to be accepted" in result.err  # said, but not an error
    assert not [line for line in result.err.splitlines() if line.startswith("error:")]

    unknown = invoke(capsys, "patch", "r3d_18", "--model", source, "--rewrite", "pool_to_nothing")
    unknown.assert_user_error("pool_to_nothing", "reduce_mean_4d (default)", "reduce_mean_5d")


def test_zoo_patch_refuses_a_model_it_cannot_verify(capsys, tmp_path):
    """Exploding random weights give inf logits: equivalence cannot be shown, so no silent success."""
    from modelzoo.models.video_resnet.architecture import build_video_resnet, expected_keys

    rng = np.random.default_rng(0)
    state = {k: rng.random(s, dtype=np.float32) + 0.5 for k, s in expected_keys("r3d_18").items()}
    onnx.save(build_video_resnet(state, "r3d_18", clip_len=4, size=32), str(tmp_path / "inf.onnx"))
    result = invoke(capsys, "patch", "r3d_18", "--model", tmp_path / "inf.onnx", "-o", tmp_path / "out.onnx")
    result.assert_user_error("not finite", "cannot be proven")
    assert not (tmp_path / "out.onnx").exists()


def test_an_input_shape_the_file_claims_is_bounded_before_the_proof_allocates(capsys, tmp_path):
    """A file declaring its clip as [N, 3, 16, 100000, 100000] made the proof draw 3.5 TiB of random input: an
    internal MemoryError at best, the machine swapping at worst. It is one error line, and nothing is written."""
    from onnx_models import tiny_video_classifier

    graph = onnx.load(str(tiny_video_classifier(tmp_path / "tiny.onnx")))
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    dims[3].dim_value = dims[4].dim_value = 100_000
    del graph.graph.value_info[:]
    onnx.save(graph, str(tmp_path / "huge.onnx"))
    for args in (["patch", "-o", tmp_path / "out.onnx"], ["compile", "-o", tmp_path / "work"]):
        result = invoke(capsys, args[0], "r3d_18", "--model", tmp_path / "huge.onnx", *args[1:])
        result.assert_user_error("100000", "values", "input shape")
    assert not (tmp_path / "out.onnx").exists() and not (tmp_path / "work").exists()


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
    assert five_d_pooling_or_reduction(default) == []
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
