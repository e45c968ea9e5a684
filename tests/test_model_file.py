"""`--model FILE`: never combined with --weights, and an ONNX zoo converted from another architecture is refused."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx_models import tiny_video_classifier
from zoo_cli import invoke

pytestmark = pytest.mark.usefixtures("in_tmp_dir")


def _recorded_as(path, architecture: str | None):
    """The tiny classifier, with the architecture zoo's converters record in the ONNX metadata."""
    tiny_video_classifier(path)
    if architecture is not None:
        model = onnx.load(str(path))
        onnx.helper.set_model_props(model, {"architecture": architecture, "num_classes": "400"})
        onnx.save(model, str(path))
    return path


@pytest.fixture
def clip(tmp_path):
    np.save(tmp_path / "clip.npy", np.zeros((3, 16, 112, 112), np.float32))
    return tmp_path / "clip.npy"


@pytest.mark.parametrize("weights", ["missing.pth", "real.pth"])
def test_model_with_weights_is_an_error(capsys, tmp_path, clip, weights):
    (tmp_path / "real.pth").write_bytes(b"PK")
    model = _recorded_as(tmp_path / "r3d.onnx", "r3d_18")

    result = invoke(capsys, "run", "r3d_18", clip, "--model", model, "--weights", tmp_path / weights)

    result.assert_user_error("--model and --weights cannot be used together")


def test_an_onnx_converted_from_another_architecture_is_refused(capsys, tmp_path, clip):
    model = _recorded_as(tmp_path / "r3d.onnx", "r3d_18")

    result = invoke(capsys, "run", "mc3_18", clip, "--model", model)

    result.assert_user_error("r3d.onnx", "converted from a r3d_18 checkpoint, not mc3_18", "zoo run r3d_18")


def test_the_same_check_guards_the_board_path(capsys, tmp_path):
    model = _recorded_as(tmp_path / "r3d.onnx", "r3d_18")
    invoke(capsys, "check", "r2plus1d_18", "--model", model).assert_user_error("not r2plus1d_18")


def test_the_image_model_refuses_a_video_models_onnx(capsys, tmp_path):
    model = _recorded_as(tmp_path / "mc3.onnx", "mc3_18")
    invoke(capsys, "check", "resnet18", "--model", model).assert_user_error("converted from a mc3_18 checkpoint")


@pytest.mark.parametrize("architecture", ["r3d_18", None])
def test_its_own_or_an_unrecorded_architecture_runs(capsys, tmp_path, clip, architecture):
    model = _recorded_as(tmp_path / "m.onnx", architecture)
    result = invoke(capsys, "run", "r3d_18", clip, "--model", model)
    assert result.code == 0, result.err


def test_force_runs_another_architectures_onnx_with_a_warning(capsys, tmp_path, clip):
    model = _recorded_as(tmp_path / "r3d.onnx", "r3d_18")
    refused = invoke(capsys, "run", "mc3_18", clip, "--model", model)
    assert "--force runs it anyway" in refused.assert_user_error("converted from a r3d_18 checkpoint")

    forced = invoke(capsys, "run", "mc3_18", clip, "--model", model, "--force", "--json")

    assert forced.code == 0, forced.err
    warnings = [line for line in forced.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "converted from a r3d_18 checkpoint, not mc3_18" in warnings[0]
    assert "--force" in warnings[0] and not forced.error_lines
    data = json.loads(forced.out)
    own = json.loads(invoke(capsys, "run", "r3d_18", clip, "--model", model, "--json").out)
    assert data["model"] == "mc3_18" and data["predictions"] == own["predictions"]  # the same file, as asked


def test_force_covers_many_inputs_and_not_weights(capsys, tmp_path, clip):
    model = _recorded_as(tmp_path / "r3d.onnx", "r3d_18")
    other = tmp_path / "other.npy"
    other.write_bytes(clip.read_bytes())
    many = invoke(capsys, "run", "mc3_18", clip, other, "--model", model, "--json")
    many.assert_user_error("converted from a r3d_18 checkpoint", "--force")
    forced = invoke(capsys, "run", "mc3_18", clip, other, "--model", model, "--json", "--force")
    assert forced.code == 0, forced.err
    assert [json.loads(line)["model"] for line in forced.out.splitlines()] == ["mc3_18", "mc3_18"]

    (tmp_path / "w.pth").write_bytes(b"PK")
    both = invoke(capsys, "run", "mc3_18", clip, "--model", model, "--weights", tmp_path / "w.pth", "--force")
    both.assert_user_error("--model and --weights cannot be used together")


def test_a_file_larger_than_any_onnx_is_refused_before_it_is_read(capsys, tmp_path, clip, monkeypatch):
    """onnx.load read the whole of a multi-GB --model or --onnx file into memory before finding it was no
    ONNX; protobuf caps one file at 2 GiB, so a larger one is refused from its size alone (--force too)."""
    import onnx as onnx_package

    from modelzoo.core.artifacts import artifacts

    def no_read(*args, **kwargs):
        raise AssertionError("the file was read")

    monkeypatch.setattr(onnx_package, "load", no_read)
    monkeypatch.setattr(onnx_package, "load_model", no_read)
    big = tmp_path / "big.onnx"
    with open(big, "wb") as handle:  # sparse: no disk is used
        handle.truncate(artifacts.MAX_ONNX_BYTES + 1)
    for args in (
        ["run", "r3d_18", clip, "--model", big],
        ["run", "r3d_18", clip, "--model", big, "--force"],
        ["fetch", "yolo11n", "--onnx", big],
        ["check", "r3d_18", "--model", big],
        ["patch", "r3d_18", "--model", big, "-o", tmp_path / "out.onnx"],
        ["compile", "r3d_18", "--model", big, "-o", tmp_path / "work"],
        ["perf", "r3d_18", "--model", big, "--threads", "1", "--frames", "1"],
    ):
        line = invoke(capsys, *args).assert_user_error("big.onnx", "2 GiB")
        assert "--force" not in line, args
