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


def test_check_json(capsys, tiny):
    result = invoke(capsys, "check", "r3d_18", "--model", tiny, "--json")
    assert result.code == 1
    data = json.loads(result.out)
    assert data["ok"] is False and data["march"] == "nash-e"
    (finding,) = data["findings"]
    assert finding["node"] == "avgpool" and finding["op_type"] == "GlobalAveragePool" and finding["rank"] == 5
    assert finding["fix"]


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
