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


def test_preprocess_takes_a_path_and_says_so_for_an_array():
    frames = np.zeros((16, 120, 160, 3), np.uint8)
    with pytest.raises(modelzoo.ZooError) as info:
        modelzoo.preprocess("r3d_18", frames)
    # the user's mistake, in one short line: not the plugin's fault, not the array printed as a file name
    assert type(info.value).__name__ == "InputError"
    assert "not a file path" in str(info.value) and len(str(info.value)) < 200


def test_postprocess_ranks_and_labels():
    logits = np.zeros((2, 400), np.float32)
    logits[:, 5] = 10.0
    result = modelzoo.postprocess("r3d_18", logits, top_k=3)
    best = result.predictions
    assert best[0].class_id == 5 and best[0].label == "archery" and len(best) == 3
    assert best[0].score > 0.9 and result.clips == 2


def test_postprocess_counts_one_clip_for_logits_without_the_batch_axis():
    logits = np.zeros(400, np.float32)  # what a program gets from one clip's output row
    logits[5] = 10.0
    result = modelzoo.postprocess("r3d_18", logits, top_k=1)
    assert result.clips == 1 and result.to_dict()["clips"] == 1
    assert result.predictions[0].label == "archery"


def test_postprocess_refuses_non_finite_logits_instead_of_ranking_them():
    logits = np.zeros((2, 400), np.float32)
    logits[:, 5] = 10.0
    logits[1, 7] = np.nan  # one clip of a broken model: NaN has no rank, the answer would be made up
    with pytest.raises(modelzoo.ZooError, match="NaN or infinity"):
        modelzoo.postprocess("r3d_18", logits)
    logits[1, 7] = np.inf
    with pytest.raises(modelzoo.ZooError, match="NaN or infinity"):
        modelzoo.postprocess("r3d_18", logits)


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


def test_predict_takes_run_options_and_refuses_what_zoo_run_refuses(tmp_path, monkeypatch):
    import numpy as np
    from onnx_models import tiny_video_classifier

    video = write_video(tmp_path / "v.avi", 20, 25)
    onnx_file = tiny_video_classifier(tmp_path / "tiny.onnx")
    model = modelzoo.get_model("r3d_18")
    assert model.predict(video, model_path=onnx_file, force=True).predictions  # --force, not a task option
    with pytest.raises(modelzoo.ZooError, match="path of an input file, not a ndarray"):
        model.predict(np.zeros((16, 112, 112, 3), np.uint8), model_path=onnx_file)
    (tmp_path / "home").write_text("not a folder")
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    with pytest.raises(modelzoo.ZooError, match="is a file; point \\$ZOO_HOME at a directory"):
        model.predict(video, model_path=onnx_file)


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
