"""zoo list / info / plugins, in text and JSON, and the promise that listing stays light."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from zoo_cli import invoke

pytestmark = pytest.mark.usefixtures("in_tmp_dir")


def test_list_json_describes_r3d_18(capsys):
    result = invoke(capsys, "list", "--json")
    assert result.code == 0, result.err
    rows = {row["name"]: row for row in json.loads(result.out)}
    r3d = rows["r3d_18"]
    assert r3d["task"] == "video-classification"
    assert r3d["input"] == {"name": "video", "shape": ["N", 3, 16, 112, 112], "dtype": "float32"}
    assert "onnxruntime" in r3d["backends"]
    assert r3d["cached"] == {
        "weights": False,
        "hbm": False,
        "custom_weights": False,
        "custom_weights_in_use": False,
        "onnx": False,
    }


def test_list_table(capsys):
    result = invoke(capsys, "list")
    assert result.code == 0
    header, _rule, *rows = result.out.splitlines()
    assert header.split()[:3] == ["model", "task", "input"]
    assert any(row.startswith("r3d_18 ") for row in rows)


def test_info_json_has_artifacts_accuracy_and_board_figures(capsys):
    data = json.loads(invoke(capsys, "info", "r3d_18", "--json").out)
    weights = next(a for a in data["artifacts"] if a["name"] == "weights")
    assert weights["sha256"].startswith("b3b3357e") and weights["filename"] == "r3d_18-b3b3357e.pth"
    assert weights["cached_path"] is None
    assert data["num_classes"] == 400 and data["preprocessing"]["resize"] == [128, 171]
    assert any(m["name"] == "acc@1" and m["value"] == 63.2 and "5 clips" in m["protocol"] for m in data["metrics"])
    assert {(p["threads"], p["avg_latency_ms"], p["fps"]) for p in data["board_perf"]} >= {
        (1, 182.68, 5.47),
        (8, 249.19, 30.74),
    }


def test_info_text_says_board_figures_are_published(capsys):
    out = invoke(capsys, "info", "r3d_18").out
    assert "published board performance (not measured here)" in out and "182.68" in out


def test_plugins_lists_r3d_18_and_the_builtin_tasks(capsys):
    plugins = {p["name"]: p for p in json.loads(invoke(capsys, "plugins", "--json").out)}
    r3d = plugins["r3d_18"]
    assert r3d["error"] is None and r3d["models"] == ["r3d_18"] and r3d["version"]
    assert "zoo_register_models" in r3d["hooks"]
    assert all(h.startswith("zoo_register_") for h in r3d["hooks"])  # behaviour lives on registered objects
    builtin = plugins["modelzoo.core.builtin"]
    assert {"video-classification", "image-classification"} <= set(builtin["tasks"])


@pytest.mark.parametrize("args", [["--help"], ["list"], ["list", "--json"], ["plugins"]])
def test_listing_imports_no_runtime_or_model_code(args):
    code = (
        "import sys\nfrom modelzoo.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "heavy = [m for m in ('onnxruntime', 'cv2', 'onnx', 'numpy', 'torch', 'modelzoo.models.video_resnet.architecture') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_python_m_modelzoo_works():
    out = subprocess.run(
        [sys.executable, "-m", "modelzoo", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("zoo, version")


def test_list_says_what_is_cached_after_a_run(capsys, tmp_path):
    import numpy as np

    from modelzoo.models.video_resnet.architecture import expected_keys

    rng = np.random.default_rng(0)
    state = {k: np.abs(rng.standard_normal(s)).astype(np.float32) for k, s in expected_keys("mc3_18").items()}
    np.savez(tmp_path / "mc3.npz", **state)
    assert invoke(capsys, "export", "mc3_18", "--weights", tmp_path / "mc3.npz", "-o", tmp_path / "m.onnx").code == 0
    rows = {row["name"]: row for row in json.loads(invoke(capsys, "list", "--json").out)}
    assert rows["mc3_18"]["cached"] == {
        "weights": False,
        "custom_weights": True,
        "custom_weights_in_use": False,  # named with --weights once: not used unless named again
        "onnx": True,
    }
    table = invoke(capsys, "list").out
    assert "custom weights,onnx" in next(line for line in table.splitlines() if line.startswith("mc3_18"))


def test_an_imported_onnx_is_shown_as_cached_until_it_is_gone(capsys, tmp_path):
    import numpy as np
    from detection_onnx import designed_detector

    exported = designed_detector(tmp_path / "yolo11n.onnx", np.zeros((1, 84, 8400), np.float32))
    before = json.loads(invoke(capsys, "info", "yolo11n", "--json").out)
    assert before["cached"]["onnx"] is False and before["imported_onnx"] is None
    assert "none cached; zoo cannot convert" in invoke(capsys, "info", "yolo11n").out

    fetched = invoke(capsys, "fetch", "yolo11n", "--onnx", exported, "--json")
    assert fetched.code == 0, fetched.err
    cached_path = json.loads(fetched.out)["path"]
    rows = {row["name"]: row for row in json.loads(invoke(capsys, "list", "--json").out)}
    cached = rows["yolo11n"]["cached"]
    assert cached["onnx"] is True and not cached["custom_weights"]
    line = next(line for line in invoke(capsys, "list").out.splitlines() if line.startswith("yolo11n "))
    assert line.rstrip().endswith("onnx (imported)")
    info = json.loads(invoke(capsys, "info", "yolo11n", "--json").out)
    assert info["cached"] == cached
    assert info["imported_onnx"]["path"] == cached_path and info["imported_onnx"]["from"] == str(exported)
    assert f"imported from {exported}" in invoke(capsys, "info", "yolo11n").out

    Path(cached_path).unlink()  # gone from the cache: not shown as cached, and the text says what to do
    rows = {row["name"]: row for row in json.loads(invoke(capsys, "list", "--json").out)}
    assert rows["yolo11n"]["cached"]["onnx"] is False
    text = invoke(capsys, "info", "yolo11n")
    assert text.code == 0 and "no longer in the cache" in text.out and "zoo fetch yolo11n --onnx FILE" in text.out


def test_info_shows_the_accuracy_zoo_eval_save_recorded(capsys, tmp_path):
    import cv2
    import numpy as np

    from modelzoo import get_model
    from modelzoo.testing import write_stand_in_onnx

    model = write_stand_in_onnx(get_model("resnet18").spec, tmp_path / "stand_in.onnx")
    rng = np.random.default_rng(0)
    for folder in ("tench", "goldfish"):
        (tmp_path / "data" / folder).mkdir(parents=True)
        for k in range(2):
            cv2.imwrite(str(tmp_path / "data" / folder / f"{k}.png"), rng.integers(0, 256, (40, 50, 3), np.uint8))
    assert json.loads(invoke(capsys, "info", "resnet18", "--json").out)["measured"] == []
    assert "none measured yet" in invoke(capsys, "info", "resnet18").out

    evaluated = invoke(capsys, "eval", "resnet18", "--dataset", tmp_path / "data", "--model", model, "--save", "--json")
    assert evaluated.code == 0, evaluated.err
    (result,) = json.loads(evaluated.out)["results"]
    info = json.loads(invoke(capsys, "info", "resnet18", "--json").out)
    measured = {row["metric"]: row for row in info["measured"]}
    assert measured["acc@1"]["value"] == result["acc@1"] and measured["acc@5"]["value"] == result["acc@5"]
    assert measured["acc@1"]["measured"] is True and measured["acc@1"]["samples"] == 4
    text = invoke(capsys, "info", "resnet18").out
    assert "none measured yet" not in text
    section = text.split("measured here")[1]
    assert "acc@1" in section and "fp32" in section
