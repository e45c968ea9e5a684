"""`zoo calib`: one float32 .npy per clip, bitwise equal to `zoo preprocess`; bad videos skipped, not fatal."""

from __future__ import annotations

import json

import numpy as np
import pytest
from videos import write_video
from zoo_cli import invoke


@pytest.fixture
def videos(tmp_path):
    folder = tmp_path / "videos"
    (folder / "sub").mkdir(parents=True)
    write_video(folder / "archery.avi", 40, 30, size=(200, 150))
    write_video(folder / "sub" / "juggling.avi", 24, 15, size=(160, 120))
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("this is not a video")
    (folder / "readme.txt").write_text("ignored: not a video suffix")
    return folder


def preprocessed(capsys, tmp_path, video, clips=1):
    out = tmp_path / f"pre_{video.stem}_{clips}.npy"
    result = invoke(capsys, "preprocess", "r3d_18", "--input", video, "-o", out, "--clips", clips)
    assert result.code == 0, result.err
    return np.load(out)


def test_files_equal_zoo_preprocess_bit_for_bit(capsys, tmp_path, videos):
    out = tmp_path / "calib"
    result = invoke(capsys, "calib", "r3d_18", "--input", videos, "-o", out, "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert sorted(p.name for p in out.iterdir()) == ["archery.npy", "juggling.npy"]
    assert data["samples"] == 2 and data["sources_used"] == 2

    for name, video in (("archery", videos / "archery.avi"), ("juggling", videos / "sub" / "juggling.avi")):
        sample = np.load(out / f"{name}.npy")
        expected = preprocessed(capsys, tmp_path, video)
        assert sample.dtype == np.float32 and sample.shape == (1, 3, 16, 112, 112)
        assert sample.tobytes() == expected.tobytes()

    # the undecodable files are reported by name, and did not stop the run
    skipped = {item["input"].rsplit("/", 1)[-1]: item["reason"] for item in data["skipped"]}
    assert set(skipped) == {"empty.mp4", "notes.mp4"}
    assert "empty" in skipped["empty.mp4"]
    assert "skipped" in result.err and "notes.mp4" in result.err


def test_clips_are_split_into_single_clip_files(capsys, tmp_path, videos):
    out = tmp_path / "calib"
    video = videos / "archery.avi"
    result = invoke(capsys, "calib", "r3d_18", "-i", video, "-o", out, "--clips", "3")
    assert result.code == 0, result.err
    assert "wrote 3 calibration sample(s)" in result.out
    expected = preprocessed(capsys, tmp_path, video, clips=3)
    assert expected.shape == (3, 3, 16, 112, 112)
    for k in range(3):
        sample = np.load(out / f"archery_clip{k}.npy")
        assert sample.shape == (1, 3, 16, 112, 112)
        assert sample.tobytes() == expected[k : k + 1].tobytes()


def test_count_progress_and_summary(capsys, tmp_path, videos):
    out = tmp_path / "calib"
    # inputs may follow -i as plain arguments (shell globs); --count stops early
    result = invoke(
        capsys,
        "calib",
        "r3d_18",
        "-i",
        videos / "archery.avi",
        videos / "sub" / "juggling.avi",
        "-o",
        out,
        "--count",
        "1",
    )
    assert result.code == 0, result.err
    assert [p.name for p in out.iterdir()] == ["archery.npy"]
    assert "calibration\n" not in result.err  # no progress bar debris when stderr is not a terminal
    assert "wrote 1 calibration sample(s)" in result.out
    assert "1 of --count 1" not in result.err  # enough samples: no shortfall note

    more = invoke(capsys, "calib", "r3d_18", "-i", videos / "archery.avi", "-o", tmp_path / "c2")
    assert "1 of --count 100" in more.err  # fewer than asked is said, not hidden


def test_all_inputs_bad_is_an_error(capsys, tmp_path, videos):
    result = invoke(
        capsys, "calib", "r3d_18", "-i", videos / "empty.mp4", "-i", videos / "notes.mp4", "-o", tmp_path / "c"
    )
    result.assert_user_error("no calibration sample", "empty.mp4")
    assert not (tmp_path / "c").exists()  # a failed run leaves no empty folder behind


def test_missing_input_is_an_error(capsys, tmp_path):
    invoke(capsys, "calib", "r3d_18", "-i", tmp_path / "nope.mp4", "-o", tmp_path / "c").assert_user_error(
        "does not exist"
    )
    invoke(capsys, "calib", "r3d_18", "-o", tmp_path / "c").assert_user_error("--input")
