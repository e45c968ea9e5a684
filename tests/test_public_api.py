"""The Python API users and plugin authors import: modelzoo and modelzoo.plugin."""

import subprocess
import sys

import numpy as np
import pytest
from videos import write_video

import modelzoo


def test_get_models_and_unknown_model():
    names = [spec.name for spec in modelzoo.get_models()]
    assert {"r3d_18", "mc3_18", "r2plus1d_18"} <= set(names) and names == sorted(names)
    with pytest.raises(modelzoo.UnknownModelError, match="zoo list"):
        modelzoo.get_model("nope")


def test_preprocess_is_what_zoo_preprocess_writes(tmp_path, capsys):
    from zoo_cli import invoke

    video = write_video(tmp_path / "v.avi", 40, 25)
    tensor = modelzoo.preprocess("r3d_18", video, clips=2)
    assert invoke(capsys, "preprocess", "r3d_18", "--input", video, "-o", tmp_path / "c.npy", "--clips", "2").code == 0
    assert np.array_equal(tensor, np.load(tmp_path / "c.npy"))


def test_postprocess_ranks_and_labels():
    logits = np.zeros((2, 400), np.float32)
    logits[:, 5] = 10.0
    result = modelzoo.postprocess("r3d_18", logits, top_k=3)
    best = result.predictions
    assert best[0].class_id == 5 and best[0].label == "archery" and len(best) == 3
    assert best[0].score > 0.9 and result.clips == 2


def test_predict_returns_what_zoo_run_json_prints(tmp_path, capsys):
    import json

    from onnx_models import tiny_video_classifier
    from zoo_cli import invoke

    video = write_video(tmp_path / "v.avi", 40, 25)
    onnx_file = tiny_video_classifier(tmp_path / "tiny.onnx")
    model = modelzoo.get_model("r3d_18")
    first = model.predict(video, model_path=onnx_file, top_k=3, clips=2)
    again = model.predict(video, model_path=onnx_file, top_k=3, clips=2)
    assert again.timing_ms["load"] == 0.0  # the loaded model is kept between calls
    printed = json.loads(
        invoke(capsys, "run", "r3d_18", str(video), "--model", onnx_file, "--top-k", "3", "--clips", "2", "--json").out
    )
    ours = first.to_dict()
    for data in (ours, printed):
        data.pop("timing_ms")
    assert ours == printed
    assert first.predictions[0].label == printed["predictions"][0]["label"] and first.clips == 2


def test_predict_refuses_an_option_the_task_does_not_take(tmp_path):
    model = modelzoo.get_model("r3d_18")
    with pytest.raises(modelzoo.ZooError, match="--conf does not apply to r3d_18"):
        model.predict(write_video(tmp_path / "v.avi", 20, 25), conf=0.5)


def test_plugin_toolkit_is_light_and_complete():
    code = (
        "import sys, modelzoo.plugin as p\n"
        "assert not [m for m in ('numpy', 'onnx', 'cv2', 'onnxruntime') if m in sys.modules]\n"
        "missing = [n for n in p.__all__ if not hasattr(p, n)]\n"
        "assert not missing, missing\n"
        "print('ok')"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "ok"
    )
