"""`zoo check`: a data-driven lint against known march constraints; the exit code says pass or fail."""

from __future__ import annotations

import json

import onnx
import pytest
from onnx_models import pooling_graph, tiny_video_classifier
from zoo_cli import invoke

from modelzoo.core.board.march_rules import March, Rule, nash_e


def check_model(model, march: str) -> list:
    assert march == "nash-e"
    return nash_e().check(model)


def with_marches(monkeypatch, *extra):
    """The core's own plugin registering `extra` marches too, as any plugin's zoo_register_marches would."""
    from modelzoo.core import builtin
    from modelzoo.core.contract.hookspecs import hookimpl

    original = builtin.zoo_register_marches

    @hookimpl
    def zoo_register_marches(register):
        original(register)
        for march in extra:
            register(march)

    monkeypatch.setattr(builtin, "zoo_register_marches", zoo_register_marches)


@pytest.fixture
def tiny(tmp_path):
    return tiny_video_classifier(tmp_path / "tiny.onnx")


def test_check_fails_before_the_patch_and_passes_after(capsys, tmp_path, tiny):
    before = invoke(capsys, "check", "r3d_18", "--model", tiny, "--march", "nash-e")
    assert before.code == 1, before.err
    assert "avgpool" in before.out and "GlobalAveragePool" in before.out
    assert "ReduceMean" in before.out and "zoo patch" in before.out  # the fix is named
    assert not before.error_lines  # a failed lint is not a crash

    patched = tmp_path / "patched.onnx"
    assert invoke(capsys, "patch", "r3d_18", "--model", tiny, "-o", patched).code == 0
    after = invoke(capsys, "check", "r3d_18", "--model", patched, "--march", "nash-e")
    assert after.code == 0, after.out + after.err
    assert "OK" in after.out


def test_the_fix_names_the_patch_command_for_the_model_checked(tmp_path):
    """The fix is a command a user can paste: the real model, the file it started from, the march."""
    march = nash_e()
    graph = pooling_graph("GlobalAveragePool", 5)
    command = march.patch_command("mc3_18", model_path=tmp_path / "my model.onnx")
    (finding,) = march.check(graph, patch_command=command)
    assert f"run zoo patch mc3_18 --model '{tmp_path / 'my model.onnx'}' --march nash-e;" in finding.fix
    assert "MODEL" not in finding.fix and "{" not in finding.fix

    weighted = march.patch_command("r3d_18", weights="mine.pth")
    assert weighted == "zoo patch r3d_18 --weights mine.pth --march nash-e"
    (warning,) = march.check(pooling_graph("ReduceMean", 5, axes=[2, 3, 4]), patch_command=weighted)
    assert warning.fix.startswith("run zoo patch r3d_18 --weights mine.pth --march nash-e (rewrite reduce_mean_4d)")
    # without a model to name (a program linting a bare graph) the fix says MODEL, still a whole command
    (bare,) = march.check(graph)
    assert "run zoo patch MODEL --march nash-e;" in bare.fix


def test_zoo_check_prints_the_real_patch_command(capsys, tiny):
    result = invoke(capsys, "check", "mc3_18", "--model", tiny, "--json")
    assert result.code == 1
    (finding,) = json.loads(result.out)["findings"]
    assert f"zoo patch mc3_18 --model {tiny} --march nash-e" in finding["fix"]
    assert "MODEL" not in finding["fix"]


def test_check_json(capsys, tiny):
    result = invoke(capsys, "check", "r3d_18", "--model", tiny, "--json")
    assert result.code == 1
    data = json.loads(result.out)
    assert data["ok"] is False and data["march"] == "nash-e"
    (finding,) = data["findings"]
    assert finding["node"] == "avgpool" and finding["op_type"] == "GlobalAveragePool" and finding["rank"] == 5
    assert finding["severity"] == "error" and finding["fix"]


def test_a_5d_reduce_mean_is_a_warning_not_a_failure(capsys, tmp_path, tiny):
    """zoo's former rewrite (reduce_mean_5d) gives a 5-D ReduceMean: nothing public shows nash-e accepting
    it, so `zoo check` says so with severity "warning" and still exits 0."""
    five_d = tmp_path / "five_d.onnx"
    assert invoke(capsys, "patch", "r3d_18", "--model", tiny, "--rewrite", "reduce_mean_5d", "-o", five_d).code == 0

    text = invoke(capsys, "check", "r3d_18", "--model", five_d, "--march", "nash-e")
    assert text.code == 0, text.out + text.err
    assert "OK" in text.out and "not known to be accepted" in text.out
    assert "avgpool" in text.out and "ReduceMean" in text.out and "warning" in text.out
    assert "reduce_mean_4d" in text.out  # the way out is named
    assert not text.error_lines

    result = invoke(capsys, "check", "r3d_18", "--model", five_d, "--json")
    assert result.code == 0
    data = json.loads(result.out)
    assert data["ok"] is True
    (finding,) = data["findings"]
    assert (finding["node"], finding["op_type"], finding["rank"], finding["severity"]) == (
        "avgpool",
        "ReduceMean",
        5,
        "warning",
    )

    # the default patch of that file moves the reduction to 4-D: nothing left to warn about
    four_d = tmp_path / "four_d.onnx"
    assert invoke(capsys, "patch", "r3d_18", "--model", five_d, "-o", four_d).code == 0
    clean = invoke(capsys, "check", "r3d_18", "--model", four_d, "--json")
    assert clean.code == 0 and json.loads(clean.out)["findings"] == []


def test_errors_and_warnings_together_exit_1(capsys, tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 2, 6, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("MaxPool", ["x"], ["m"], name="maxpool", kernel_shape=[1, 2, 2]),
        helper.make_node("ReduceMean", ["m"], ["y"], name="mean", axes=[2, 3, 4], keepdims=1),
    ]
    opsets = [helper.make_opsetid("", 17)]
    model = helper.make_model(
        helper.make_graph(nodes, "g", [x], [y]), opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets)
    )
    path = tmp_path / "both.onnx"
    onnx.save(model, str(path))
    result = invoke(capsys, "check", "r3d_18", "--model", path, "--json")
    assert result.code == 1
    data = json.loads(result.out)
    assert data["ok"] is False
    assert [(f["node"], f["severity"]) for f in data["findings"]] == [("maxpool", "error"), ("mean", "warning")]


def test_rule_severity():
    rule = Rule(op_types=("ReduceMean",), message="m", fix="f", rank=5, severity="warning")
    assert rule.severity == "warning" and Rule(op_types=("X",), message="m", fix="f").severity == "error"
    with pytest.raises(ValueError, match="severity"):
        Rule(op_types=("X",), message="m", fix="f", severity="fatal")
    # a node of unknown rank is as severe as the worst rule it could break
    (finding,) = check_model(pooling_graph("ReduceMean", 5, shaped=False, axes=[2, 3, 4]), "nash-e")
    assert finding.rank is None and finding.severity == "warning"
    (finding,) = check_model(pooling_graph("GlobalAveragePool", 5, shaped=False), "nash-e")
    assert finding.severity == "error"


def test_the_march_says_which_rewrite_is_the_default_and_where_it_comes_from():
    """What `zoo info` and docs/board.md show: the default is the 2-D ReduceMean D-Robotics describes."""
    march = nash_e()
    summary = {r["name"]: r for r in march.rewrite_summary()}
    assert list(summary) == ["reduce_mean_4d", "reduce_mean_5d"]
    assert summary["reduce_mean_4d"]["default"] and not summary["reduce_mean_5d"]["default"]
    assert "We replaced it with the 2D ReduceMean operator" in summary["reduce_mean_4d"]["source"]
    assert "not known to be accepted" in summary["reduce_mean_5d"]["source"]
    text = march.describe_rewrites()
    assert "reduce_mean_4d (default)" in text and "reduce_mean_5d:" in text and "docs/board.md" in text

    chosen = march.with_rewrites(["reduce_mean_5d"])
    assert chosen.chosen == ("reduce_mean_5d",) and march.chosen is None
    assert chosen.default_rewrites() == ("reduce_mean_4d",)  # what the default is does not change
    from modelzoo.core.errors import ToolchainError

    with pytest.raises(ToolchainError, match=r"known: reduce_mean_4d \(default\), reduce_mean_5d"):
        march.with_rewrites(["nope"])


@pytest.mark.parametrize(
    "op_type, attrs",
    [
        ("AveragePool", {"kernel_shape": [1, 2, 2]}),
        ("MaxPool", {"kernel_shape": [1, 2, 2]}),
        ("GlobalMaxPool", {}),
        ("GlobalAveragePool", {}),
    ],
)
def test_every_5d_pooling_op_is_reported_with_node_and_fix(op_type, attrs):
    (finding,) = check_model(pooling_graph(op_type, 5, **attrs), "nash-e")
    assert finding.node == f"{op_type.lower()}_node" and finding.op_type == op_type and finding.rank == 5
    assert finding.fix
    assert check_model(pooling_graph(op_type, 4, **{k: v[1:] for k, v in attrs.items()}), "nash-e") == []


def test_5d_pooling_without_automatic_fix_is_still_flagged_after_patch(capsys, tmp_path):
    path = tmp_path / "maxpool.onnx"
    onnx.save(pooling_graph("MaxPool", 5, kernel_shape=[1, 2, 2]), str(path))
    result = invoke(capsys, "patch", "r3d_18", "--model", path, "-o", tmp_path / "out.onnx")
    assert result.code == 0 and "nothing to change" in result.out
    assert "still violate" in result.err and "MaxPool" in result.err
    assert invoke(capsys, "check", "r3d_18", "--model", tmp_path / "out.onnx").code == 1


def test_unknown_rank_is_reported():
    (finding,) = check_model(pooling_graph("GlobalAveragePool", 5, shaped=False), "nash-e")
    assert finding.rank is None and "rank is unknown" in finding.message


def test_marches_are_registered_objects_a_plugin_can_add_or_extend(monkeypatch, capsys, tiny):
    """A new march, or a new rule for an existing one, is a registration: no module global changes."""
    with_marches(monkeypatch, March("toy-march"))
    assert invoke(capsys, "check", "r3d_18", "--model", tiny, "--march", "toy-march").code == 0

    with_marches(
        monkeypatch,
        March("toy-march", rules=(Rule(op_types=("Gemm",), message="toy-march has no Gemm", fix="use a 1x1 Conv"),)),
        March("nash-e", rules=(Rule(op_types=("Relu",), rank=5, message="pretend", fix="pretend"),)),
    )
    result = invoke(capsys, "check", "r3d_18", "--model", tiny, "--march", "toy-march", "--json")
    assert result.code == 1
    assert [f["node"] for f in json.loads(result.out)["findings"]] == ["fc"]
    nodes = [
        f["node"] for f in json.loads(invoke(capsys, "check", "r3d_18", "--model", tiny, "--json").out)["findings"]
    ]
    assert nodes == ["relu", "avgpool"]  # graph order, the added rule beside the built-in one


def test_unknown_march_is_a_user_error(capsys, tiny):
    invoke(capsys, "check", "r3d_18", "--model", tiny, "--march", "nash-x").assert_user_error("unknown march", "nash-e")
    invoke(capsys, "patch", "r3d_18", "--model", tiny, "--march", "nash-x").assert_user_error("unknown march")


def test_missing_or_wrong_model_file(capsys, tmp_path):
    invoke(capsys, "check", "r3d_18", "--model", tmp_path / "nope.onnx").assert_user_error("does not exist")
    bogus = tmp_path / "bogus.onnx"
    bogus.write_text("not onnx")
    invoke(capsys, "check", "r3d_18", "--model", bogus).assert_user_error("cannot read")
