"""Many inputs through one loaded model: folders, globs, @lists, streamed records, errors that do not
stop the run, --output JSON Lines or CSV, and --resume."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from onnx_models import tiny_video_classifier
from videos import video_folder, write_video
from zoo_cli import invoke


@pytest.fixture
def folder(tmp_path):
    return video_folder(tmp_path / "videos")


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


def test_a_run_whose_inputs_all_fail_records_each_and_loads_nothing(capsys, tmp_path, onnx_file):
    (tmp_path / "notes.mp4").write_text("not a video")
    np.save(tmp_path / "empty.npy", np.zeros((5, 0, 10, 3), np.uint8))
    out = tmp_path / "out.jsonl"
    inputs = [tmp_path / "notes.mp4", tmp_path / "empty.npy", tmp_path / "missing.avi"]

    result = invoke(capsys, "run", "r3d_18", *inputs, "--model", onnx_file, "--json", "-o", out)

    assert result.code == 1, result.err  # each input failed and has its record (README: exit 1)
    records = lines(result.out)
    assert [r["input"] for r in records] == [str(p) for p in inputs] and lines(out.read_text()) == records
    assert "not a video" in records[0]["error"] and "empty array" in records[1]["error"]
    assert "does not exist" in records[2]["error"]
    assert "none of the 3 input(s) can be opened: the model was not loaded" in result.err
    assert "summary: 0 done, 3 failed" in result.err


def test_a_bad_first_input_does_not_keep_the_others_from_running(capsys, folder, onnx_file):
    result = invoke(capsys, "run", "r3d_18", folder / "broken.mp4", folder / "a.avi", "--model", onnx_file, "--json")
    assert result.code == 1, result.err
    bad, good = lines(result.out)
    assert bad["input"].endswith("broken.mp4") and "not a video" in bad["error"]
    assert good["input"].endswith("a.avi") and good["predictions"] and good["timing_ms"]["load"] > 0


def test_prefetch_decodes_ahead_within_its_bound_and_keeps_order_and_errors():
    """What `zoo run` on a folder and `zoo eval` share: the next inputs decode while one is used, never
    more than `in_flight` held, a failing input is that input's error."""
    import threading

    from modelzoo.core.errors import InputError
    from modelzoo.core.pipeline import prefetch

    count, in_flight = 9, 3
    pulled = []  # items prefetch has taken: each is submitted for decoding as it is taken
    started = {index: threading.Event() for index in range(count)}

    def items():
        for index in range(count):
            pulled.append(index)
            yield index

    def prepare(index):
        started[index].set()
        if index == 4:
            raise InputError("item 4 does not decode")
        return index * 10

    seen = []
    for index, prepared, error in prefetch(items(), prepare, workers=2, in_flight=in_flight):
        # held now: this item and those decoding ahead of it, exactly up to the bound
        assert len(pulled) - index == min(in_flight, count - index)
        if index + 1 < count:  # the next one decodes while this one is used
            assert started[index + 1].wait(timeout=30), f"item {index + 1} did not decode while {index} was used"
        seen.append((index, prepared, str(error) if error else None))
    assert seen == [(i, None, "item 4 does not decode") if i == 4 else (i, i * 10, None) for i in range(count)]


class FakeTerminal:
    """What RunProgress writes to: a terminal (isatty) or a log, with everything written kept."""

    def __init__(self, tty: bool):
        self.tty, self.written = tty, []

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> None:
        self.written.append(text)

    def flush(self) -> None:
        pass


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _record(summary, clock, progress, *, failed=False, seconds=1.0):
    clock.now += seconds
    if failed:
        summary.failed += 1
    else:
        summary.done += 1
    progress.update()


def test_progress_on_a_terminal_is_one_line_redrawn_with_rate_and_eta():
    from modelzoo.core.pipeline import Summary
    from modelzoo.progress import RunProgress

    terminal, clock = FakeTerminal(tty=True), Clock()
    summary = Summary(total=6, skipped=1)  # 5 to run
    progress = RunProgress(summary, terminal, clock=clock)
    _record(summary, clock, progress, seconds=20.0)  # the model loaded first: not counted in the rate
    assert terminal.written == ["\r[####................] 1/5 done, 0 failed, ETA ?"]
    _record(summary, clock, progress, failed=True, seconds=2.0)
    _record(summary, clock, progress, seconds=2.0)
    assert terminal.written[-1] == "\r[############........] 3/5 done, 1 failed, 0.50 inputs/s, ETA 4 s"
    assert "\n" not in "".join(terminal.written)  # one line, redrawn in place

    width = len(terminal.written[-1]) - 1
    progress.clear()  # before a record is printed on the terminal
    assert terminal.written[-1] == "\r" + " " * width + "\r"
    clock.now += 0.05
    summary.done += 1
    progress.update()  # the record printed, the line comes back at once
    assert terminal.written[-1] == "\r[################....] 4/5 done, 1 failed, 0.74 inputs/s, ETA 1 s"
    before = len(terminal.written)
    clock.now += 0.05
    summary.done += 1  # the last input: always drawn
    progress.update()
    assert terminal.written[before:] == ["\r[####################] 5/5 done, 1 failed, 0.98 inputs/s, ETA 0 s"]
    progress.close()
    assert terminal.written[-1] == "\r" + " " * (len(terminal.written[-2]) - 1) + "\r"  # the summary starts clean


def test_progress_in_a_log_is_a_line_every_few_seconds():
    from modelzoo.core.pipeline import Summary
    from modelzoo.progress import LOG_EVERY, RunProgress

    log, clock = FakeTerminal(tty=False), Clock()
    summary = Summary(total=100)
    progress = RunProgress(summary, log, clock=clock)
    for _ in range(5):
        _record(summary, clock, progress, seconds=0.5)
    assert log.written == []  # 2.5 s: nothing yet
    _record(summary, clock, progress, seconds=LOG_EVERY)
    assert log.written == ["progress: 6/100 done, 0 failed, 1.00 inputs/s, ETA 1:34\n"]
    for _ in range(94):
        _record(summary, clock, progress, seconds=0.01)
    assert len(log.written) == 1 and "\r" not in "".join(log.written)  # the end: the summary line says it
    progress.close()
    assert len(log.written) == 1


def test_a_terminal_sees_the_progress_line_on_stderr_and_stdout_holds_only_json(capsys, monkeypatch, folder, onnx_file):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    result = invoke(capsys, "run", "r3d_18", folder, "--model", onnx_file, "--json")

    assert result.code == 1
    assert len(lines(result.out)) == 4 and "\r" not in result.out  # JSON Lines only
    assert "\r[####################] 4/4 done, 1 failed" in result.err
    last_line = result.err.rstrip("\n").split("\n")[-1]
    assert last_line.split("\r")[-1].startswith("summary: 3 done, 1 failed")  # on a clean line
    assert last_line.split("\r")[-2].strip() == ""


def test_an_input_list_that_names_itself_is_one_error_line(capsys, folder, onnx_file, tmp_path):
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text(f"{folder / 'a.avi'}\n@{second}\n")
    second.write_text(f"# back to the start\n@{first}\n")
    result = invoke(capsys, "run", "r3d_18", f"@{first}", "--model", onnx_file)
    result.assert_user_error("first.txt", "names itself")


def test_a_recursive_glob_does_not_follow_a_link_loop(capsys, folder, onnx_file):
    (folder / "more" / "up").symlink_to(folder, target_is_directory=True)  # more/up/more/up/... is a loop
    result = invoke(capsys, "run", "r3d_18", str(folder / "**" / "*.avi"), "--model", onnx_file, "--json")
    assert result.code == 0, result.err
    assert [r["input"] for r in lines(result.out)] == [str(folder / n) for n in ("a.avi", "b.avi", "more/c.avi")]
    everything = invoke(capsys, "run", "r3d_18", str(folder / "more" / "**"), "--model", onnx_file, "--json")
    assert [r["input"] for r in lines(everything.out)] == [str(folder / "more" / "c.avi")]  # DIR/** is its files


def test_retry_failed_without_resume_is_refused_and_keeps_the_output(capsys, folder, onnx_file, tmp_path):
    out = tmp_path / "out.jsonl"
    assert invoke(capsys, "run", "r3d_18", folder, "--model", onnx_file, "-o", out).code == 1
    recorded = out.read_text()
    retry = invoke(capsys, "run", "r3d_18", folder, "--model", onnx_file, "-o", out, "--retry-failed")
    retry.assert_user_error("--retry-failed", "--resume")
    assert retry.out == "" and out.read_text() == recorded  # not started afresh over the earlier records


def test_output_into_a_missing_folder_is_refused_before_any_input_runs(capsys, folder, onnx_file, tmp_path):
    result = invoke(capsys, "run", "r3d_18", folder, "--model", onnx_file, "-o", tmp_path / "no" / "out.jsonl")
    result.assert_user_error("no", "does not exist")
    assert result.out == "" and not (tmp_path / "no").exists()


def interrupt_the_second_input(monkeypatch):
    """Ctrl-C while the second input runs; returns the function that puts the real one back."""
    from modelzoo.core import runner

    finish_run, seen = runner.finish_run, []

    def interrupted_at_the_second(*args, **kwargs):
        seen.append(1)
        if len(seen) == 2:
            raise KeyboardInterrupt
        return finish_run(*args, **kwargs)

    monkeypatch.setattr(runner, "finish_run", interrupted_at_the_second)
    return lambda: monkeypatch.setattr(runner, "finish_run", finish_run)


def test_ctrl_c_keeps_the_whole_records_and_says_how_to_resume(capsys, folder, onnx_file, tmp_path, monkeypatch):
    restore = interrupt_the_second_input(monkeypatch)
    out = tmp_path / "out.jsonl"
    result = invoke(capsys, "run", "r3d_18", folder / "a.avi", folder / "b.avi", "--model", onnx_file, "-o", out)
    assert result.code == 130
    assert [r["input"] for r in lines(out.read_text())] == [str(folder / "a.avi")]
    assert f"{out} keeps the 1 record(s)" in result.err and "--resume" in result.err
    restore()
    resumed = invoke(capsys, "run", "r3d_18", folder / "a.avi", folder / "b.avi", "--model", onnx_file, "-o", out,
                     "--resume", "--json")  # fmt: skip
    assert resumed.code == 0 and [r["input"] for r in lines(resumed.out)] == [str(folder / "b.avi")]


def test_resume_refuses_an_output_that_records_another_model(capsys, folder, onnx_file, tmp_path):
    out = tmp_path / "out.jsonl"
    assert invoke(capsys, "run", "r3d_18", folder, "--model", onnx_file, "-o", out).code == 1
    recorded = out.read_text()
    other = invoke(capsys, "run", "mc3_18", folder, "--model", onnx_file, "-o", out, "--resume")
    other.assert_user_error("r3d_18", "mc3_18", "another --output")
    assert other.out == "" and out.read_text() == recorded  # not a run that skipped every input as done


def test_save_with_output_is_checked_before_the_model_is_loaded(capsys, tmp_path, folder, onnx_file, monkeypatch):
    """One input with --output runs as a many-input run; --save is still the run's one `error:` line
    (a video model draws nothing), not a failed input found after loading and inference."""
    from modelzoo.core import runner

    loads, load_backend = [], runner.load_backend
    monkeypatch.setattr(runner, "load_backend", lambda *a, **k: loads.append(1) or load_backend(*a, **k))
    out = tmp_path / "out.jsonl"
    result = invoke(
        capsys, "run", "r3d_18", folder / "a.avi", "--model", onnx_file, "--save", tmp_path / "a.jpg", "-o", out
    )
    result.assert_user_error("--save is not supported")
    assert loads == [] and not out.exists() and not (tmp_path / "a.jpg").exists()


def test_inputs_that_do_not_open_keep_no_frames_alive(tmp_path, folder):
    """The errors of the inputs the plan found unusable are kept until their records are written: as
    messages, not with the traceback of every failed open (memory that grew with an @list's length)."""
    from modelzoo.core.contract.registry import get_registry
    from modelzoo.core.pipeline import _first_usable

    registry = get_registry()
    inputs = [*(str(tmp_path / f"gone{i}.avi") for i in range(3)), str(folder / "broken.mp4")]
    opened, unusable = _first_usable(registry, registry.get_model("r3d_18"), inputs, None)
    assert not opened and list(unusable) == inputs
    for error in unusable.values():
        assert error.__traceback__ is None and error.__context__ is None and error.__cause__ is None
        assert str(error)


def test_an_input_list_without_inputs_is_a_user_error(capsys, onnx_file, tmp_path):
    listing = tmp_path / "todo.txt"
    listing.write_text("# nothing yet\n\n")
    invoke(capsys, "run", "r3d_18", f"@{listing}", "--model", onnx_file).assert_user_error("todo.txt", "no inputs")


def test_an_input_list_that_is_not_text_is_refused_without_reading_it_whole(capsys, onnx_file, tmp_path, monkeypatch):
    from modelzoo.core import pipeline

    monkeypatch.setattr(pipeline, "MAX_LIST_LINE", 1000)
    blob = tmp_path / "clip.bin"
    blob.write_bytes(bytes(range(14, 256)) * 50)  # no line break: one 12,100-character "line"
    invoke(capsys, "run", "r3d_18", f"@{blob}", "--model", onnx_file).assert_user_error(
        "clip.bin", "not a list of paths"
    )


def test_a_model_file_whose_input_does_not_fit_stops_the_run_once_at_load(capsys, folder, tmp_path):
    wrong = tiny_video_classifier(tmp_path / "wrong.onnx", size=96)
    result = invoke(capsys, "run", "r3d_18", folder, "--model", wrong, "--json")
    result.assert_user_error("wrong.onnx expects input", "3, 16, 112, 112", "does not match")
    assert result.out.strip() == ""  # not one failed record per input


def test_resume_knows_an_input_however_its_path_was_written(capsys, folder, onnx_file, tmp_path, monkeypatch):
    out = tmp_path / "out.jsonl"
    monkeypatch.chdir(folder.parent)
    first = invoke(capsys, "run", "r3d_18", f"./{folder.name}/a.avi", "--model", onnx_file, "-o", out)
    assert first.code == 0, first.err
    resumed = invoke(
        capsys, "run", "r3d_18", folder / "a.avi", f"{folder.name}/b.avi", "--model", onnx_file, "-o", out,
        "--resume", "--json",
    )  # fmt: skip
    assert [r["input"] for r in lines(resumed.out)] == [f"{folder.name}/b.avi"]
    assert "1 skipped" in resumed.err


def test_a_rerun_replaces_an_existing_output_only_when_it_ends(capsys, folder, onnx_file, tmp_path, monkeypatch):
    out = tmp_path / "out.jsonl"
    first = invoke(capsys, "run", "r3d_18", folder / "a.avi", folder / "b.avi", "--model", onnx_file, "-o", out)
    assert first.code == 0, first.err
    earlier = out.read_text()
    restore = interrupt_the_second_input(monkeypatch)
    result = invoke(capsys, "run", "r3d_18", folder / "b.avi", folder / "a.avi", "--model", onnx_file, "-o", out)
    assert result.code == 130 and f"{out} was left as it was" in result.err
    assert out.read_text() == earlier and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    restore()
    rerun = invoke(capsys, "run", "r3d_18", folder / "b.avi", "--model", onnx_file, "-o", out, "--json")
    assert rerun.code == 0 and [r["input"] for r in lines(out.read_text())] == [str(folder / "b.avi")]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # the temp file became out.jsonl
