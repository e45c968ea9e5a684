"""`zoo eval`: accuracy on a labelled set equals the accuracy computed by hand.

The models here answer by colour: global average of the normalized input, then a linear layer, so
which class each solid-colour input gets (and its runner-up) is known without running anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from zoo_cli import invoke

RED, GREEN = (255, 0, 0), (0, 255, 0)  # RGB


def color_classifier(path: Path, input_name: str, shape: list, classes: int, weights: dict) -> Path:
    """logits = W @ mean(normalized R, G, B); `weights` maps class id -> (wR, wG, wB), other classes 0."""
    fc_w = np.zeros((classes, 3), np.float32)
    for class_id, row in weights.items():
        fc_w[class_id] = row
    nodes = [
        helper.make_node("GlobalAveragePool", [input_name], ["p"], name="avgpool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "color_classifier",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", *shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])],
        initializer=[
            numpy_helper.from_array(fc_w, "fc_w"),
            numpy_helper.from_array(np.zeros(classes, np.float32), "fc_b"),
        ],
    )
    opsets = [helper.make_opsetid("", 17)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def solid_video(path: Path, rgb: tuple, frames: int = 20) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 15, (96, 72))
    for _ in range(frames):
        writer.write(np.full((72, 96, 3), rgb[::-1], np.uint8))
    writer.release()
    return path


def solid_image(path: Path, rgb: tuple) -> Path:
    import cv2

    cv2.imwrite(str(path), np.full((60, 80, 3), rgb[::-1], np.uint8))
    return path


# Kinetics-400 classes: A answers red, B green; C is red's runner-up (so red is C's Top-5 but never its Top-1).
A, B, C = 1, 217, 208  # air drumming, playing accordion, passing American football (in game)


@pytest.fixture(scope="module")
def video_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_video")
    model = color_classifier(
        root / "color.onnx", "video", [3, 16, 112, 112], 400, {A: (10, 0, 0), B: (0, 10, 0), C: (5, 0, 0)}
    )
    data = root / "data"
    # Folder names differ from the labels in case, spaces and underscores only.
    a, b, c = (data / "Air_Drumming", data / "playing  accordion", data / "passing_american_football_(in_game)")
    for folder in (a, b, c):
        folder.mkdir(parents=True)
    solid_video(a / "red1.avi", RED)
    solid_video(a / "red2.avi", RED)
    solid_video(a / "green1.avi", GREEN)  # wrong: B
    solid_video(b / "green2.avi", GREEN)
    solid_video(b / "green3.avi", GREEN)
    (b / "broken.avi").write_bytes(b"\x00not a video at all" * 64)  # fails to decode: skipped, named
    solid_video(c / "red3.avi", RED)  # wrong: A, with C second
    solid_video(c / "red4.avi", RED)
    (c / "notes.txt").write_text("not an input")  # ignored: not a kind of file the model takes
    return {"root": root, "model": model, "data": data, "a": a, "b": b, "c": c}


def _eval(capsys, *args):
    result = invoke(capsys, "eval", *map(str, args), "--json")
    assert result.code == 0, result.err
    return json.loads(result.out), result


def test_folder_accuracy_is_what_the_hand_count_gives(capsys, video_set):
    report, _ = _eval(capsys, "r3d_18", "--dataset", video_set["data"], "--model", video_set["model"], "--clips", 2)
    (result,) = report["results"]
    # 7 evaluated: A 2/3 right (green1 -> B), B 2/2, C 0/2 (red -> A, C runner-up); broken.avi skipped.
    assert result["samples"] == 7 and result["correct"] == 4
    assert result["acc@1"] == pytest.approx(100 * 4 / 7, abs=1e-3)
    assert result["acc@5"] == pytest.approx(100 * 6 / 7, abs=1e-3)  # green1's Top-5 lacks A (its logit is negative)
    assert result["mean_class_acc"] == pytest.approx(100 * (2 / 3 + 1 + 0) / 3, abs=1e-3)
    per_class = {c["label"]: (c["correct"], c["samples"]) for c in result["per_class"]}
    assert per_class == {
        "air drumming": (2, 3),
        "playing accordion": (2, 2),
        "passing American football (in game)": (0, 2),
    }
    assert result["confused"] == [
        {"true": "passing American football (in game)", "predicted": "air drumming", "count": 2},
        {"true": "air drumming", "predicted": "playing accordion", "count": 1},
    ]
    protocol = report["protocol"]
    assert [Path(s["input"]).name for s in protocol["skipped"]] == ["broken.avi"]
    assert "not a video OpenCV can open" in protocol["skipped"][0]["reason"]
    assert protocol["clips"] == 2 and protocol["clips_from"] == "--clips"
    assert protocol["frame_rate"] == 15.0 and protocol["crop"] == [112, 112]
    assert protocol["samples"] == 7 and protocol["ignored_files"] == 1
    assert report["dataset"]["form"] == "folder per class"


def test_text_report_names_the_protocol_beside_the_numbers_and_the_skipped_file(capsys, video_set):
    result = invoke(capsys, "eval", "r3d_18", "--dataset", video_set["data"], "--model", video_set["model"])
    assert result.code == 0, result.err
    row = next(line for line in result.out.splitlines() if line.startswith("fp32"))
    assert "57.14" in row and "85.71" in row and "55.56" in row
    assert (
        "5 clips per video, 15 fps, center crop 112x112, 7 samples, 1 skipped" in row
    )  # the published protocol's clips
    assert "clips from the published protocol" in result.out
    assert "broken.avi" in result.out and "published (not measured here)" in result.out


def test_unknown_class_folders_are_all_listed_before_any_work(capsys, video_set, tmp_path):
    data = tmp_path / "data"
    for name in ("air drumming", "air drummming", "not_a_kinetics_class"):
        (data / name).mkdir(parents=True)
    # --model does not exist: the labels are checked first
    result = invoke(capsys, "eval", "r3d_18", "--dataset", data, "--model", tmp_path / "missing.onnx")
    line = result.assert_user_error("2 class folder(s)", "air drummming", "not_a_kinetics_class")
    assert "did you mean 'air drumming'" in line


def test_csv_dataset_with_names_and_class_numbers(capsys, video_set, tmp_path):
    a, c = video_set["a"], video_set["c"]
    listing = tmp_path / "val.csv"
    listing.write_text(
        "path,label\n"
        f"{a / 'red1.avi'},AIR_drumming\n"
        f"{a / 'green1.avi'},{A}\n"
        f"{c / 'red3.avi'},passing american football (in game)\n"
        f"{tmp_path / 'gone.avi'},air drumming\n"
    )
    report, _ = _eval(capsys, "r3d_18", "--dataset", listing, "--model", video_set["model"], "--clips", 1)
    (result,) = report["results"]
    assert (result["samples"], result["correct"]) == (3, 1)
    assert result["acc@5"] == pytest.approx(100 * 2 / 3, abs=1e-3)
    assert [(Path(s["input"]).name, s["reason"]) for s in report["protocol"]["skipped"]] == [
        ("gone.avi", "does not exist")
    ]
    listing.write_text(f"{a / 'red1.avi'},air drums\n{a / 'red2.avi'},zzz\n")
    invoke(capsys, "eval", "r3d_18", "--dataset", listing, "--model", video_set["model"]).assert_user_error(
        "2 label(s)", "'air drums' (line 1)", "'zzz' (line 2)"
    )


def test_fp32_and_int8_in_one_pass_with_their_agreement(capsys, video_set, tmp_path):
    calib = tmp_path / "calib"
    assert (
        invoke(capsys, "calib", "r3d_18", "--input", video_set["a"], "--input", video_set["b"], "-o", calib).code == 0
    )
    assert invoke(capsys, "quantize", "r3d_18", "--model", video_set["model"], "--calib", calib).code == 0
    report, _ = _eval(
        capsys, "r3d_18", "--dataset", video_set["data"], "--model", video_set["model"], "--precision", "fp32,int8",
        "--clips", 1, "--output", tmp_path / "predictions.jsonl",
    )  # fmt: skip
    fp32, int8 = report["results"]
    assert (fp32["precision"], int8["precision"]) == ("fp32", "int8")
    assert "-int8-" in int8["model_file"] and int8["correct"] == fp32["correct"] == 4
    (agreement,) = report["agreement"]
    assert agreement["reference"] == "fp32 onnxruntime" and agreement["variant"] == "int8 onnxruntime"
    assert agreement["top1_agree"] == agreement["samples"] == 7
    assert agreement["output_cosine_min"] >= 0.99

    records = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == 7
    green1 = next(r for r in records if r["input"].endswith("green1.avi"))
    assert green1["label"] == "air drumming"
    assert green1["predictions"]["fp32 onnxruntime"]["top5"][0] == "playing accordion"
    assert green1["predictions"]["int8 onnxruntime"]["correct"] is False


def test_save_records_measured_rows_for_zoo_info(capsys, video_set):
    from modelzoo.core.accuracy.measured import measured_rows, measured_table
    from modelzoo.core.artifacts.cache import ArtifactCache
    from modelzoo.core.config import load_config

    report, result = _eval(
        capsys, "r3d_18", "--dataset", video_set["data"], "--model", video_set["model"], "--clips", 1, "--save"
    )
    assert Path(report["saved"]).is_file()
    rows = measured_rows(ArtifactCache(load_config().cache_root()), "r3d_18")
    by_metric = {row["metric"]: row for row in rows}
    assert by_metric["acc@1"]["value"] == pytest.approx(100 * 4 / 7, abs=1e-3)
    assert by_metric["mean_class_acc"]["value"] == pytest.approx(100 * 5 / 9, abs=1e-3)
    row = by_metric["acc@1"]
    assert row["measured"] is True and row["precision"] == "fp32" and row["samples"] == 7
    assert row["tools"]["onnxruntime"] and row["host"]["name"] and row["date"]
    assert "1 clip per video" in row["protocol"]
    assert "acc@1" in measured_table(rows)


# ImageNet classes for the image model: red -> tench, green -> goldfish.
TENCH, GOLDFISH = 0, 1


@pytest.fixture(scope="module")
def image_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_image")
    model = color_classifier(
        root / "color.onnx", "image", [3, 224, 224], 1000, {TENCH: (10, 0, 0), GOLDFISH: (0, 10, 0)}
    )
    data = root / "data"
    (data / "Tench").mkdir(parents=True)
    (data / "goldfish").mkdir()
    (data / "great_white_shark").mkdir()
    solid_image(data / "Tench" / "a.png", RED)
    solid_image(data / "Tench" / "b.jpg", GREEN)  # wrong: goldfish
    solid_image(data / "goldfish" / "c.png", GREEN)
    solid_image(data / "great_white_shark" / "d.png", RED)  # wrong: tench
    (data / "goldfish" / "e.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # a PNG that does not decode
    return {"model": model, "data": data}


def test_image_classification_folder(capsys, image_set):
    report, _ = _eval(capsys, "resnet18", "--dataset", image_set["data"], "--model", image_set["model"])
    (result,) = report["results"]
    assert (result["samples"], result["correct"]) == (4, 2)
    assert result["mean_class_acc"] == pytest.approx(100 * (1 / 2 + 1 + 0) / 3, abs=1e-3)
    assert [Path(s["input"]).name for s in report["protocol"]["skipped"]] == ["e.png"]
    assert report["protocol"]["clips"] is None and report["protocol"]["crop"] == [224, 224]
    assert report["protocol"]["summary"] == "center crop 224x224, 4 samples, 1 skipped"


def test_clips_do_not_apply_to_image_models(capsys, image_set):
    result = invoke(
        capsys, "eval", "resnet18", "--dataset", image_set["data"], "--model", image_set["model"], "--clips", 2
    )
    result.assert_user_error("--clips does not apply to resnet18")


def test_a_detector_is_refused_before_any_model_file_is_made(capsys, image_set, monkeypatch, tmp_path):
    import modelzoo.core.accuracy.evaluate as evaluate

    monkeypatch.setattr(evaluate, "prepare_variants", lambda *a, **k: pytest.fail("resolved a model file"))
    result = invoke(capsys, "eval", "yolo11n", "--dataset", image_set["data"], "--model", tmp_path / "none.onnx")
    result.assert_user_error("measures the accuracy of classifiers", "yolo11n (object-detection)", "zoo perf yolo11n")
    assert "zoo perf yolo11n --save" in invoke(capsys, "info", "yolo11n").out
    assert "zoo eval resnet18 --dataset DIR --save" in invoke(capsys, "info", "resnet18").out


def test_output_csv(capsys, image_set, tmp_path):
    target = tmp_path / "predictions.csv"
    _eval(capsys, "resnet18", "--dataset", image_set["data"], "--model", image_set["model"], "--output", target)
    import csv

    with open(target, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    wrong = next(row for row in rows if row["input"].endswith("b.jpg"))
    assert (wrong["label"], wrong["variant"], wrong["predicted"], wrong["correct"]) == (
        "tench",
        "fp32 onnxruntime",
        "goldfish",
        "False",
    )
    assert wrong["top5"].split("|")[0] == "goldfish"


def test_eval_decodes_ahead_while_the_model_runs_and_holds_at_most_two_inputs_per_worker(
    capsys, image_set, tmp_path, monkeypatch
):
    """The overlap and memory bound `zoo run` has on a folder: each run waits until the inputs allowed
    ahead of it are decoded, so a loop that did not decode ahead would stall (the exact bound, never
    more, is test_pipeline's prefetch test)."""
    import threading

    from modelzoo.core import runner
    from modelzoo.core.backends.onnxruntime_backend import OnnxRuntimeBackend

    data = tmp_path / "data"
    for folder, color in (("tench", RED), ("goldfish", GREEN)):
        (data / folder).mkdir(parents=True)
        for index in range(3):
            solid_image(data / folder / f"{index}.png", color)
    count, workers = 6, 2
    bound = 2 * workers
    decoded, ran, held = [0], [0], []
    changed = threading.Condition()
    preprocess, run = runner.preprocess_source, OnnxRuntimeBackend.run

    def counted_preprocess(*args, **kwargs):
        tensor = preprocess(*args, **kwargs)
        with changed:
            decoded[0] += 1
            changed.notify_all()
        return tensor

    def waiting_run(self, batch):
        with changed:  # decoding goes on while this input waits to run
            ahead = min(ran[0] + bound, count)
            assert changed.wait_for(lambda: decoded[0] >= ahead, timeout=30), "inputs were not decoded ahead"
            held.append(decoded[0] - ran[0])  # decoded, not yet run: this one and those ahead of it
        output = run(self, batch)
        ran[0] += 1
        return output

    monkeypatch.setattr(runner, "preprocess_source", counted_preprocess)
    monkeypatch.setattr(OnnxRuntimeBackend, "run", waiting_run)
    report, _ = _eval(capsys, "resnet18", "--dataset", data, "--model", image_set["model"], "--workers", workers)
    assert report["results"][0]["samples"] == count and report["results"][0]["correct"] == count
    assert held[0] == bound and max(held) <= bound


@pytest.mark.parametrize(
    "target, fragment",
    [("predictions.txt", "use a .jsonl, .json or .csv file"), ("a_file/predictions.csv", "cannot write")],
)
def test_an_output_that_cannot_be_written_is_refused_before_any_input_is_decoded(
    capsys, image_set, tmp_path, monkeypatch, target, fragment
):
    """It was refused after the whole set had been evaluated."""
    from modelzoo.core import runner

    def refuse(*_args, **_kwargs):
        raise AssertionError("an input was decoded")

    monkeypatch.setattr(runner, "preprocess_source", refuse)
    (tmp_path / "a_file").write_text("a file, not a folder")
    result = invoke(
        capsys, "eval", "resnet18", "--dataset", image_set["data"], "--model", image_set["model"],
        "--output", tmp_path / target,
    )  # fmt: skip
    result.assert_user_error(fragment, str(tmp_path / target))
    assert "evaluating" not in result.err


def test_output_json_is_one_json_document(capsys, image_set, tmp_path):
    """A .json file was written as JSON Lines, which json.load cannot read."""
    report, _ = _eval(
        capsys, "resnet18", "--dataset", image_set["data"], "--model", image_set["model"], "-o", tmp_path / "p.json"
    )
    records = json.loads((tmp_path / "p.json").read_text())
    assert report["output"] == str(tmp_path / "p.json")
    assert sorted(Path(r["input"]).name for r in records) == ["a.png", "b.jpg", "c.png", "d.png"]
    assert (
        next(r for r in records if r["input"].endswith("b.jpg"))["predictions"]["fp32 onnxruntime"]["correct"] is False
    )


def test_text_report_names_the_model_file_each_row_measured(capsys, image_set):
    result = invoke(capsys, "eval", "resnet18", "--dataset", image_set["data"], "--model", image_set["model"])
    assert result.code == 0, result.err
    assert f"fp32 onnxruntime model file: {image_set['model']}" in result.out


def test_save_keeps_a_measured_file_it_cannot_read_instead_of_overwriting_it(capsys, image_set, tmp_path, monkeypatch):
    """An unreadable measured file (a hand edit gone wrong) was replaced, its rows lost without a word."""
    from modelzoo.core.accuracy.measured import measured_rows, measured_table
    from modelzoo.core.artifacts.cache import ArtifactCache
    from modelzoo.core.config import load_config

    cache = ArtifactCache(load_config().cache_root())
    measured = Path(cache.root) / "measured" / "resnet18.json"
    measured.parent.mkdir(parents=True)
    measured.write_text('{"model": "resnet18", "rows": [{"metric": "acc@1", "value": 71.2},]}')  # a trailing comma
    monkeypatch.chdir(image_set["data"].parent)  # relative paths, as a user types them
    report, result = _eval(capsys, "resnet18", "--dataset", "data", "--model", image_set["model"].name, "--save")
    assert measured.with_name("resnet18.json.damaged").read_text().startswith('{"model": "resnet18", "rows"')
    assert "resnet18.json.damaged" in result.err and "could not be read" in result.err
    rows = measured_rows(cache, "resnet18")
    assert {row["metric"] for row in rows} == {"acc@1", "acc@5", "mean_class_acc"}
    # recorded so that they still say what was measured when read from elsewhere
    assert rows[0]["model_file"] == str(image_set["model"])
    assert rows[0]["dataset"].startswith(f"{image_set['data']} (")
    assert "color.onnx" in measured_table(rows).splitlines()[2]


def test_progress_is_written_to_a_log_as_zoo_run_writes_it(capsys, image_set, monkeypatch):
    """On a terminal eval drew a bar, but in a log or a pipe it said nothing until the end, however long."""
    from modelzoo import progress

    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)
    report, result = _eval(capsys, "resnet18", "--dataset", image_set["data"], "--model", image_set["model"])
    lines = [line for line in result.err.splitlines() if line.startswith("progress: ")]
    assert [line.split(",")[0] for line in lines] == [f"progress: {n}/5 done" for n in range(1, 5)]
    assert "4/5 done, 1 failed" in lines[-1]  # e.png does not decode
    assert report["results"][0]["samples"] == 4


def test_a_variant_answering_all_zeros_does_not_agree_with_the_reference(capsys, image_set, tmp_path, monkeypatch):
    """Its overall output cosine was 1.000000, perfect agreement, when one side's outputs were all zero:
    the failure of an INT8 model whose scores all round to 0."""
    from modelzoo.core.backends.onnxruntime_backend import OnnxRuntimeBackend

    calib = tmp_path / "calib"
    assert invoke(capsys, "calib", "resnet18", "--input", image_set["data"] / "Tench", "-o", calib).code == 0
    assert invoke(capsys, "quantize", "resnet18", "--model", image_set["model"], "--calib", calib).code == 0
    run = OnnxRuntimeBackend.run

    def int8_answers_zeros(self, batch):
        output = run(self, batch)
        return np.zeros_like(output) if "-int8-" in self.model_path.name else output

    monkeypatch.setattr(OnnxRuntimeBackend, "run", int8_answers_zeros)
    report, result = _eval(
        capsys, "resnet18", "--dataset", image_set["data"], "--model", image_set["model"], "--precision", "fp32,int8"
    )
    (agreement,) = report["agreement"]
    assert agreement["output_cosine_min"] == agreement["output_cosine_mean"] == 0.0
    assert agreement["output_cosine"] == 0.0


def test_output_onto_the_dataset_csv_is_refused(capsys, video_set, tmp_path, monkeypatch):
    """`-o` naming the --dataset CSV replaced the user's list with the predictions."""
    listing = tmp_path / "val.csv"
    text = f"path,label\n{video_set['a'] / 'red1.avi'},air drumming\n"
    listing.write_text(text)
    monkeypatch.chdir(tmp_path)
    result = invoke(capsys, "eval", "r3d_18", "--dataset", "val.csv", "--model", video_set["model"], "-o", "./val.csv")
    result.assert_user_error("is the --dataset file")
    assert listing.read_text() == text
