"""Every user error is one `error:` line saying what to do, exit code 2, and no traceback."""

import subprocess
import sys

import numpy as np
import pytest
from onnx_models import tiny_video_classifier
from videos import write_video
from zoo_cli import invoke

pytestmark = pytest.mark.usefixtures("in_tmp_dir")


@pytest.fixture
def tiny_onnx(tmp_path):
    """A stand-in classifier with R3D-18's input and output, so error tests need no big model."""
    return tiny_video_classifier(tmp_path / "tiny.onnx")


def run(capsys, input_path, *extra):
    return invoke(capsys, "run", "r3d_18", "--input", input_path, *extra)


def test_missing_file(capsys):
    run(capsys, "nope.mp4").assert_user_error("nope.mp4", "does not exist")


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/clip.mp4", "file:///tmp/clip.mp4", "s3://bucket/clip.mp4"])
def test_a_url_zoo_does_not_read_is_named_as_such(capsys, url):
    """Not 'input file ftp:/127.0.0.1/clip.mp4 does not exist': the URL as given, and what zoo reads instead."""
    line = run(capsys, url).assert_user_error(url, "does not read", "rtsp://", "its path")
    assert "does not exist" not in line


@pytest.mark.parametrize("value", ["nan", "inf", "5000"])
def test_a_stream_rate_that_is_not_a_usable_number_is_refused(capsys, value):
    run(capsys, "0", "--fps", value).assert_user_error("--fps")


def test_empty_file(capsys, tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    run(capsys, tmp_path / "empty.mp4").assert_user_error("empty")


def test_not_a_video(capsys, tmp_path, tiny_onnx):
    (tmp_path / "notes.mp4").write_text("these are not frames\n" * 50)
    run(capsys, tmp_path / "notes.mp4", "--model", tiny_onnx).assert_user_error("notes.mp4", "not a video")


def test_truncated_video_that_cannot_be_opened(capsys, tmp_path, tiny_onnx):
    good = write_video(tmp_path / "good.mp4", 30, 25, codec="mp4v")
    (tmp_path / "cut.mp4").write_bytes(good.read_bytes()[:200])
    run(capsys, tmp_path / "cut.mp4", "--model", tiny_onnx).assert_user_error("cut.mp4")


def test_video_with_no_frames(capsys, tmp_path, tiny_onnx):
    path = write_video(tmp_path / "none.avi", 0, 25)
    if path.stat().st_size == 0:
        pytest.skip("OpenCV wrote an empty file for a zero-frame video")
    run(capsys, path, "--model", tiny_onnx).assert_user_error("none.avi")


def test_video_shorter_than_its_header_warns_and_classifies(capsys, tmp_path, tiny_onnx):
    whole = write_video(tmp_path / "whole.avi", 90, 30)
    data = whole.read_bytes()
    (tmp_path / "short.avi").write_bytes(data[: int(len(data) * 0.5)])
    result = run(capsys, tmp_path / "short.avi", "--model", tiny_onnx)
    assert result.code == 0, result.err
    warnings = [line for line in result.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "header claims 90" in warnings[0]
    assert "rank" in result.out


@pytest.mark.parametrize(
    "array,fragment",
    [
        (np.zeros((2, 3, 16, 112, 112), np.float64), "float64"),
        (np.zeros((3, 8, 112, 112), np.float32), "[3, 8, 112, 112]"),
        (np.zeros((10, 20, 30), np.uint8), "[10, 20, 30]"),
    ],
)
def test_npy_with_wrong_shape_or_dtype(capsys, tmp_path, array, fragment, tiny_onnx):
    np.save(tmp_path / "bad.npy", array)
    run(capsys, tmp_path / "bad.npy", "--model", tiny_onnx).assert_user_error(fragment, "zoo preprocess")


def test_pickled_npy_is_refused_and_not_executed(capsys, tmp_path, tiny_onnx):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    np.save(tmp_path / "evil.npy", np.array([Evil()], dtype=object), allow_pickle=True)
    run(capsys, tmp_path / "evil.npy", "--model", tiny_onnx).assert_user_error("pickle")
    assert not marker.exists()


def test_unknown_model(capsys):
    invoke(capsys, "run", "r4d_99", "--input", "x.mp4").assert_user_error("r4d_99", "zoo list")
    invoke(capsys, "info", "r4d_99").assert_user_error("unknown model")


def test_unknown_backend(capsys, tmp_path):
    run(capsys, tmp_path, "--backend", "tpu").assert_user_error("tpu", "onnxruntime")


def test_backend_not_available_here(capsys, tmp_path):
    import importlib.util

    if importlib.util.find_spec("hbm_runtime") is not None:
        pytest.skip("hbm_runtime is installed here")
    run(capsys, tmp_path / "x.mp4", "--backend", "hbm").assert_user_error("hbm")


def test_missing_model_file(capsys, tmp_path):
    write_video(tmp_path / "v.avi", 20, 15)
    run(capsys, tmp_path / "v.avi", "--model", "missing.onnx").assert_user_error("missing.onnx")


def test_bad_option_value_is_one_line(capsys, tmp_path):
    run(capsys, tmp_path / "x.mp4", "--clips", "0").assert_user_error("--clips")


def test_debug_shows_the_traceback(capsys):
    result = invoke(capsys, "--debug", "run", "r3d_18", "--input", "nope.mp4")
    assert result.code == 2 and "Traceback" in result.err and result.error_lines


def _real_zoo(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "modelzoo", *map(str, args)], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("content", [None, b"these are not frames\n" * 50, "truncated"])
def test_a_real_process_prints_one_line(tmp_path, content, tiny_onnx):
    """Checked in a subprocess: FFmpeg's own console logging would bypass capsys."""
    target = tmp_path / "input.mp4"
    if content == "truncated":
        target.write_bytes(write_video(tmp_path / "good.mp4", 30, 25, codec="mp4v").read_bytes()[:300])
    elif content is not None:
        target.write_bytes(content)
    completed = _real_zoo("run", "r3d_18", "--input", target, "--model", tiny_onnx, cwd=tmp_path)
    assert completed.returncode == 2
    assert completed.stderr.startswith("error:") and len(completed.stderr.strip().splitlines()) == 1, completed.stderr
    assert ("does not exist" if content is None else "not a video") in completed.stderr


def test_unwritable_output_is_a_user_error(capsys, tmp_path):
    np.save(tmp_path / "clip.npy", np.zeros((3, 16, 112, 112), np.float32))
    (tmp_path / "afile").write_text("x")
    invoke(
        capsys, "preprocess", "r3d_18", "--input", tmp_path / "clip.npy", "-o", tmp_path / "afile" / "out.npy"
    ).assert_user_error("cannot write", "out.npy")


def test_outputs_get_ordinary_permissions(capsys, tmp_path):
    import os
    import stat

    np.save(tmp_path / "clip.npy", np.zeros((3, 16, 112, 112), np.float32))
    assert (
        invoke(capsys, "preprocess", "r3d_18", "--input", tmp_path / "clip.npy", "-o", tmp_path / "out.npy").code == 0
    )
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "out.npy").stat().st_mode) == 0o666 & ~mask


def test_config_that_is_not_utf8(capsys, tmp_path):
    (tmp_path / "zoo.yaml").write_bytes(b"\xff\xfe\x00")
    invoke(capsys, "list").assert_user_error("zoo.yaml", "UTF-8")


def test_debug_after_the_subcommand_works_too(capsys):
    result = invoke(capsys, "run", "r3d_18", "--input", "nope.mp4", "--debug")
    assert result.code == 2 and "Traceback" in result.err and result.error_lines


def test_non_finite_clip_is_refused(capsys, tmp_path, tiny_onnx):
    clip = np.zeros((3, 16, 112, 112), np.float32)
    clip[0, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", clip)
    run(capsys, tmp_path / "nan.npy", "--model", tiny_onnx).assert_user_error("NaN")


def test_clips_option_on_a_preprocessed_clip_warns(capsys, tmp_path, tiny_onnx):
    np.save(tmp_path / "clip.npy", np.zeros((2, 3, 16, 112, 112), np.float32))
    result = run(capsys, tmp_path / "clip.npy", "--model", tiny_onnx, "--clips", "5")
    assert result.code == 0
    assert "--clips 5 ignored" in result.err


def test_checkpoint_passed_as_model_says_use_weights(capsys, tmp_path):
    (tmp_path / "ck.pth").write_bytes(b"PK")
    np.save(tmp_path / "clip.npy", np.zeros((3, 16, 112, 112), np.float32))
    run(capsys, tmp_path / "clip.npy", "--model", tmp_path / "ck.pth").assert_user_error("--weights")


def test_board_options_on_onnxruntime_are_not_silently_dropped(capsys, tmp_path, tiny_onnx):
    np.save(tmp_path / "clip.npy", np.zeros((3, 16, 112, 112), np.float32))
    result = run(capsys, tmp_path / "clip.npy", "--model", tiny_onnx, "--priority", "3", "--bpu-cores", "0")
    assert result.code == 0, result.err
    assert "warning: --priority is not used by the onnxruntime backend" in result.err
    assert "warning: --bpu-cores is not used by the onnxruntime backend" in result.err


def test_a_video_shorter_than_a_clip_warns(capsys, tmp_path, tiny_onnx):
    short = write_video(tmp_path / "five.avi", 5, 25)
    result = run(capsys, short, "--model", tiny_onnx, "--json")
    assert result.code == 0, result.err
    assert "five.avi has 3 frame(s) at 15 fps, fewer than the 16 a clip needs" in result.err
    import json

    assert json.loads(result.out)["warnings"]


def test_a_file_that_is_not_npy_is_not_called_pickled(capsys, tmp_path, tiny_onnx):
    (tmp_path / "junk.npy").write_text("garbage, not numpy")
    run(capsys, tmp_path / "junk.npy", "--model", tiny_onnx).assert_user_error("not a .npy file")


def test_an_internal_error_is_one_line_and_its_own_exit_code(capsys, monkeypatch):
    """A bug in zoo is not the user's error: one line, exit 70 (documented in the README), --debug shows more."""
    from modelzoo.core.artifacts.cache import ArtifactCache

    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(ArtifactCache, "__init__", broken)  # `zoo list` opens the cache
    result = invoke(capsys, "list")
    assert result.code == 70 and len(result.error_lines) == 1 and "Traceback" not in result.err
    assert result.error_lines[0].startswith("error: internal error: RuntimeError: a bug") and "--debug" in result.err
    debug = invoke(capsys, "--debug", "list")
    assert debug.code == 70 and "Traceback" in debug.err


def test_the_readme_documents_the_exit_codes():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for code in ("| 2 |", "| 70 |", "| 130 |", "| 143 |"):
        assert code in readme, code


def test_a_cache_directory_that_is_a_file(capsys, tmp_path, monkeypatch):
    (tmp_path / "home").write_text("not a folder")
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    np.save(tmp_path / "clip.npy", np.zeros((3, 16, 112, 112), np.float32))
    run(capsys, tmp_path / "clip.npy").assert_user_error("cache directory", "is a file", "$ZOO_HOME")


def test_ctrl_c_with_nothing_half_written_says_so(capsys, monkeypatch):
    from modelzoo.core.artifacts.cache import ArtifactCache

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ArtifactCache, "__init__", interrupted)
    result = invoke(capsys, "list")
    assert result.code == 130
    assert result.error_lines == ["error: interrupted; no file was left half-written"]


def test_save_for_a_task_that_draws_nothing_is_refused_before_any_download(capsys, tmp_path, server):
    from served_weights import gets, mc3_checkpoint_bytes, serve, write_clip, write_mirror_config

    checkpoint = mc3_checkpoint_bytes()
    write_mirror_config(tmp_path, serve(server, checkpoint), checkpoint)
    result = invoke(capsys, "run", "mc3_18", write_clip(tmp_path / "clip.npy"), "--save", tmp_path / "out.jpg")
    result.assert_user_error("--save is not supported for video-classification models")
    assert gets(server) == 0 and not (tmp_path / "out.jpg").exists()


def test_save_in_a_format_the_task_cannot_write_is_refused_before_the_model_file_is_looked_at(capsys, tmp_path):
    """The detection task writes .jpg or .png: another suffix fails at once, before the (here missing) model
    file is looked for, let alone loaded and run."""
    import cv2

    cv2.imwrite(str(tmp_path / "photo.png"), np.full((48, 64, 3), 90, np.uint8))
    result = invoke(
        capsys, "run", "yolo11n", tmp_path / "photo.png", "--model", tmp_path / "no.onnx", "--save", tmp_path / "a.gif"
    )
    result.assert_user_error("--save", ".jpg or .png")
    assert not (tmp_path / "a.gif").exists()
