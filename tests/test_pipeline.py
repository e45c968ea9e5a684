"""Many inputs through one loaded model: folders, globs, @lists, streamed records, errors that do not
stop the run, --output JSON Lines or CSV, and --resume."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from onnx_models import tiny_video_classifier
from videos import write_video
from zoo_cli import invoke


@pytest.fixture
def folder(tmp_path):
    """Three videos (one in a subfolder), a file that is not a video, and a text file zoo must not pick up."""
    videos = tmp_path / "videos"
    (videos / "more").mkdir(parents=True)
    for index, name in enumerate(("a.avi", "b.avi", "more/c.avi")):
        write_video(videos / name, 20 + 8 * index, 25.0)
    (videos / "broken.mp4").write_text("not a video")
    (videos / "notes.txt").write_text("ignored: not an input this model takes")
    return videos


@pytest.fixture
def onnx_file(tmp_path):
    return tiny_video_classifier(tmp_path / "tiny.onnx")


def lines(text: str) -> list:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_folder_gives_what_single_runs_give_and_a_bad_input_does_not_stop_it(capsys, folder, onnx_file):
    result = invoke(capsys, "run", "r3d_18", folder, "--model", onnx_file, "--json", "--clips", "2")
    assert result.code == 1, result.err  # one input failed: its record says why
    records = {r["input"]: r for r in lines(result.out)}  # stdout holds only JSON lines
    assert sorted(records) == sorted(str(p) for p in [*folder.rglob("*.avi"), folder / "broken.mp4"])
    assert "not a video" in records[str(folder / "broken.mp4")]["error"]
    assert "summary: 3 done, 1 failed" in result.err
    for name in ("a.avi", "more/c.avi"):
        single = json.loads(
            invoke(capsys, "run", "r3d_18", folder / name, "--model", onnx_file, "--json", "--clips", "2").out
        )
        many = records[str(folder / name)]
        assert many["predictions"] == single["predictions"] and many["clips"] == 2
        assert set(single) <= set(many)  # the same schema as one run, plus the file's stamp
    loads = [r["timing_ms"]["load"] for r in lines(result.out) if "timing_ms" in r]
    assert loads[0] > 0 and loads[1:] == [0.0, 0.0]  # the model loaded once


def test_globs_lists_and_repeated_inputs(capsys, folder, onnx_file, tmp_path):
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"# videos to label\n{folder / 'a.avi'}\n\n{folder / 'more' / 'c.avi'}\n")
    result = invoke(
        capsys, "run", "r3d_18", "-i", f"@{listing}", "-i", str(folder / "b*.avi"), folder / "a.avi",
        "--model", onnx_file, "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert [r["input"] for r in lines(result.out)] == [str(folder / n) for n in ("a.avi", "more/c.avi", "b.avi")]


def test_output_files_hold_every_record(capsys, folder, onnx_file, tmp_path):
    jsonl, table = tmp_path / "out.jsonl", tmp_path / "out.csv"
    assert invoke(capsys, "run", "r3d_18", folder, "--model", onnx_file, "-o", jsonl).code == 1
    assert invoke(capsys, "run", "r3d_18", folder, "--model", onnx_file, "-o", table).code == 1
    records = lines(jsonl.read_text())
    rows = list(csv.DictReader(table.open()))
    assert len(records) == len(rows) == 4
    assert [r["input"] for r in rows] == [r["input"] for r in records]
    broken = next(r for r in rows if r["input"].endswith("broken.mp4"))
    assert "not a video" in broken["error"] and broken["result"] == ""
    good = next(r for r in rows if r["input"].endswith("a.avi"))
    assert json.loads(good["result"])["predictions"][0]["label"]


def test_resume_runs_only_what_is_missing_and_mends_a_torn_line(capsys, folder, onnx_file, tmp_path):
    out = tmp_path / "out.jsonl"
    first = invoke(capsys, "run", "r3d_18", folder / "a.avi", folder / "b.avi", "--model", onnx_file, "-o", out)
    assert first.code == 0, first.err
    with open(out, "a") as handle:  # an interrupted run: half a record, no newline
        handle.write('{"model": "r3d_18", "input": "')
    resumed = invoke(capsys, "run", "r3d_18", folder, "--model", onnx_file, "-o", out, "--resume", "--json")
    assert resumed.code == 1
    assert sorted(r["input"] for r in lines(resumed.out)) == [str(folder / "broken.mp4"), str(folder / "more/c.avi")]
    assert "2 skipped" in resumed.err
    text = out.read_text()
    assert text.endswith("\n") and len(lines(text)) == 4  # every line whole

    again = invoke(capsys, "run", "r3d_18", folder, "--model", onnx_file, "-o", out, "--resume", "--json")
    assert again.code == 0 and again.out == "" and "4 skipped" in again.err  # errors stay recorded
    retry = invoke(
        capsys, "run", "r3d_18", folder, "--model", onnx_file, "-o", out, "--resume", "--retry-failed", "--json"
    )
    assert [r["input"] for r in lines(retry.out)] == [str(folder / "broken.mp4")]

    (folder / "a.avi").write_bytes((folder / "b.avi").read_bytes())  # a changed file is not the one recorded
    changed = invoke(capsys, "run", "r3d_18", folder, "--model", onnx_file, "-o", out, "--resume", "--json")
    assert [r["input"] for r in lines(changed.out)] == [str(folder / "a.avi")]


def test_user_errors_before_any_work_are_exit_2(capsys, folder, onnx_file, tmp_path):
    invoke(capsys, "run", "r3d_18", tmp_path / "nothing.mp4", "--model", onnx_file).assert_user_error("does not exist")
    invoke(capsys, "run", "r3d_18", str(tmp_path / "*.mkv"), "--model", onnx_file).assert_user_error("no file matches")
    empty = tmp_path / "empty"
    empty.mkdir()
    invoke(capsys, "run", "r3d_18", empty, "--model", onnx_file).assert_user_error("holds no input files")
    invoke(capsys, "run", "r3d_18", folder, "--resume").assert_user_error("--output")
    kept = tmp_path / "kept.jsonl"
    kept.write_text('{"input": "x"}\n')
    invoke(capsys, "run", "r3d_18", folder, "--backend", "tpu", "-o", kept).assert_user_error("tpu")
    assert kept.read_text() == '{"input": "x"}\n'  # a refused run leaves an existing output file alone
    invoke(capsys, "run", "nope", folder).assert_user_error("unknown model")


def test_image_folders_take_images_only(capsys, tmp_path):
    import cv2

    import modelzoo
    from modelzoo.testing import write_stand_in_onnx

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name in ("x.png", "y.jpg"):
        cv2.imwrite(str(photos / name), rng.integers(0, 256, (64, 80, 3), dtype=np.uint8))
    write_video(photos / "clip.avi", 10, 25.0)  # a video among the photos is not an image input
    stand_in = write_stand_in_onnx(modelzoo.get_model("resnet18").spec, tmp_path / "stand_in.onnx")
    result = invoke(capsys, "run", "resnet18", photos, "--model", stand_in, "--json")
    assert result.code == 0, result.err
    assert sorted(r["input"] for r in lines(result.out)) == [str(photos / "x.png"), str(photos / "y.jpg")]
