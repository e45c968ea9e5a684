"""`zoo list`'s "backends here" names only backends that run the model as it is, without --model:
from published weights they convert, or from a file of their own (an ONNX imported with `zoo fetch
--onnx`). A model that publishes no weights is listed with none until it has such a file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from detection_onnx import designed_detector
from zoo_cli import invoke

pytestmark = pytest.mark.usefixtures("in_tmp_dir")


def listed(capsys) -> dict:
    """{model: backends} from `zoo list --json`, and the same from the table `zoo list` prints."""
    result = invoke(capsys, "list", "--json")
    assert result.code == 0, result.err
    rows = {row["name"]: row["backends"] for row in json.loads(result.out)}
    table = invoke(capsys, "list")
    assert table.code == 0, table.err
    column = {line.split()[0]: line.split()[3] for line in table.out.splitlines()[2:]}
    assert column == {name: ",".join(backends) or "-" for name, backends in rows.items()}
    return rows


def info_backends(capsys, model: str) -> str:
    line = next(line for line in invoke(capsys, "info", model).out.splitlines() if line.strip().startswith("backends"))
    return line.split(None, 1)[1]


def test_models_with_published_weights_list_onnxruntime(capsys):
    backends = listed(capsys)
    for name in ("r3d_18", "mc3_18", "r2plus1d_18", "resnet18"):
        assert backends[name] == ["onnxruntime"], name


def test_yolo11n_lists_no_backend_until_its_onnx_is_imported(capsys, tmp_path):
    assert listed(capsys)["yolo11n"] == []
    assert info_backends(capsys, "yolo11n") == "none here"
    # what a run says then: how to get the model, not that no backend exists
    image = tmp_path / "image.npy"
    np.save(image, np.zeros((64, 64, 3), np.uint8))
    invoke(capsys, "run", "yolo11n", image).assert_user_error("zoo fetch yolo11n --onnx yolo11n.onnx")

    exported = designed_detector(tmp_path / "yolo11n.onnx", np.zeros((1, 84, 8400), np.float32))
    fetched = invoke(capsys, "fetch", "yolo11n", "--onnx", exported, "--json")
    assert fetched.code == 0, fetched.err
    assert listed(capsys)["yolo11n"] == ["onnxruntime"]
    assert info_backends(capsys, "yolo11n") == "onnxruntime"

    Path(json.loads(fetched.out)["path"]).unlink()  # gone from the cache: nothing runs it, and list goes on
    assert listed(capsys)["yolo11n"] == []
    invoke(capsys, "run", "yolo11n", image).assert_user_error("no longer in the cache", "zoo fetch yolo11n --onnx FILE")
