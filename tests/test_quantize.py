"""`zoo quantize` and `--precision int8`: host INT8 calibrated on `zoo calib`'s samples, checked against
fp32 independently of the zoo, cached so a second run does no work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from videos import write_video
from zoo_cli import invoke


def _moving(seed: int):
    """Frames of smooth colour gradients sliding sideways: varied, like real footage, and seeded."""

    def content(index: int, height: int, width: int) -> np.ndarray:
        import cv2

        small = np.random.default_rng(seed).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
        wide = cv2.resize(small, (width + 48, height), interpolation=cv2.INTER_CUBIC)
        shift = (index * (seed % 3 + 1)) % 48
        return np.ascontiguousarray(wide[:, shift : shift + width])

    return content


def _videos(folder: Path, seeds) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        write_video(folder / f"v{seed:03d}.avi", 36, 25, size=(171, 128), content=_moving(seed))
    return folder


def two_conv_video_classifier(path: Path, seed: int = 0) -> Path:
    """R3D-18's interface ([N,3,16,112,112] -> [N,400]) in a few ms: a strided stem Conv on the 3 colour
    channels (kept fp32, as R3D-18's), ReLU, a 3x3x3 Conv on 8 channels (quantized), ReLU, pooling, Gemm.
    Random weights, but the best class leads clearly, as a trained model's does on its classes."""
    from onnx import helper
    from onnx_models import save_video_classifier

    rng = np.random.default_rng(seed)
    weights = {
        "stem_w": rng.standard_normal((8, 3, 1, 7, 7)).astype(np.float32) * 0.2,
        "conv_w": rng.standard_normal((16, 8, 3, 3, 3)).astype(np.float32) * 0.2,
        "conv_b": rng.standard_normal(16).astype(np.float32) * 0.1,
        "fc_w": rng.standard_normal((400, 16)).astype(np.float32) * 0.05,
        "fc_b": np.zeros(400, np.float32),
    }
    # 16 classes read one pooled feature each, so the best class leads by a margin quantization keeps
    weights["fc_w"][np.arange(16) * 25, np.arange(16)] += 1.0
    nodes = [
        helper.make_node("Conv", ["video", "stem_w"], ["s"], name="stem", strides=[2, 8, 8], kernel_shape=[1, 7, 7]),
        helper.make_node("Relu", ["s"], ["sr"], name="stem_relu"),
        helper.make_node("Conv", ["sr", "conv_w", "conv_b"], ["c"], name="conv", kernel_shape=[3, 3, 3], pads=[1] * 6),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="avgpool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
    ]
    return save_video_classifier(path, "two_conv_video_classifier", nodes, weights)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A small video classifier with R3D-18's interface, two calibration sets and held-out test clips."""
    root = tmp_path_factory.mktemp("quantize")
    model = two_conv_video_classifier(root / "small.onnx", seed=2)  # a seed whose best class leads on every clip
    return {
        "root": root,
        "model": model,
        "videos": _videos(root / "videos", range(6)),
        "other_videos": _videos(root / "other_videos", range(10, 14)),
        "test_videos": _videos(root / "test_videos", range(20, 26)),
    }


def _calib(capsys, work, name: str, videos: str, clips: int = 2) -> Path:
    target = work["root"] / name
    if not target.exists():
        result = invoke(capsys, "calib", "r3d_18", "--input", work[videos], "-o", target, "--clips", clips)
        assert result.code == 0, result.err
    return target


def _quantize(capsys, work, calib: Path, *extra):
    result = invoke(capsys, "quantize", "r3d_18", "--model", work["model"], "--calib", calib, "--json", *extra)
    assert result.code == 0, result.err
    return json.loads(result.out), result


def _session(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _cosine(a, b) -> float:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_int8_logits_stay_within_cosine_099_of_fp32_with_the_same_top1(capsys, work):
    calib = _calib(capsys, work, "calib", "videos")
    report, _ = _quantize(capsys, work, calib)
    fp32, int8 = _session(work["model"]), _session(report["int8_file"])
    import onnx

    graph = onnx.load(report["int8_file"]).graph
    produced_by = {out: node.op_type for node in graph.node for out in node.output}
    conv = next(node for node in graph.node if node.name == "conv")
    assert [produced_by.get(name) for name in conv.input[:2]] == ["DequantizeLinear"] * 2  # QDQ, weights int8
    stem = next(node for node in graph.node if node.name == "stem")
    assert produced_by.get(stem.input[1]) is None  # the 3-channel 3-D stem stays fp32
    assert report["kept_fp32_nodes"] == ["stem"]
    for video in sorted(work["test_videos"].iterdir()):  # clips the calibration never saw
        clip = work["root"] / f"{video.stem}.npy"
        assert invoke(capsys, "preprocess", "r3d_18", "--input", video, "-o", clip).code == 0
        data = {"video": np.load(clip)}
        a, b = fp32.run(None, data)[0], int8.run(None, data)[0]
        assert _cosine(a, b) >= 0.99, video.name
        assert int(np.argmax(a)) == int(np.argmax(b)), video.name


def test_report_cosine_equals_one_computed_independently(capsys, work):
    calib = _calib(capsys, work, "calib", "videos")
    report, result = _quantize(capsys, work, calib)
    files = sorted(calib.glob("*.npy"))
    assert report["samples"] == len(files) == 12
    fp32, int8 = _session(work["model"]), _session(report["int8_file"])
    a = [fp32.run(None, {"video": np.load(f)})[0] for f in files]
    b = [int8.run(None, {"video": np.load(f)})[0] for f in files]
    (logits,) = report["outputs"]
    assert logits["name"] == "logits"
    assert logits["cosine"] == pytest.approx(_cosine(np.concatenate(a), np.concatenate(b)), abs=1e-9)
    assert logits["min_sample_cosine"] == pytest.approx(min(_cosine(x, y) for x, y in zip(a, b)), abs=1e-9)
    agree = sum(int(np.argmax(x) == np.argmax(y)) for x, y in zip(a, b))
    assert report["top1_agreement"] == {"output": "logits", "agree": agree, "samples": 12, "fraction": agree / 12}

    text = invoke(capsys, "quantize", "r3d_18", "--model", work["model"], "--calib", calib)
    assert f"{logits['cosine']:.6f}" in text.out
    assert f"Top-1 agreement with fp32 (logits): {agree}/12" in text.out


def test_report_ranks_nodes_on_a_stated_number_of_samples(capsys, work):
    calib = _calib(capsys, work, "calib", "videos")
    report, _ = _quantize(capsys, work, calib, "--node-samples", "1")
    assert report["node_samples"] == 1
    nodes = report["nodes"]
    assert {"relu", "fc"} <= {n["node"] for n in nodes}  # the ReLU after the quantized conv
    assert [n["cosine"] for n in nodes] == sorted(n["cosine"] for n in nodes)  # worst first
    assert all(0.9 < n["cosine"] <= 1.0 + 1e-9 for n in nodes)
    text = invoke(capsys, "quantize", "r3d_18", "--model", work["model"], "--calib", calib, "--node-samples", "1")
    assert "on the first 1 calibration sample(s)" in text.out


def test_a_second_identical_quantize_does_no_work(capsys, work, monkeypatch):
    calib = _calib(capsys, work, "calib", "videos")
    first, _ = _quantize(capsys, work, calib)
    stamp = Path(first["int8_file"]).stat().st_mtime_ns

    def refuse(*_args, **_kwargs):
        raise AssertionError("quantized or compared again")

    import onnxruntime.quantization as ortq

    from modelzoo.core.quantize import host, report

    monkeypatch.setattr(ortq, "quantize_static", refuse)
    monkeypatch.setattr(host, "quantize_onnx", refuse)
    monkeypatch.setattr(host, "quantize_preprocessed", refuse)
    monkeypatch.setattr(host, "preprocess_onnx", refuse)
    monkeypatch.setattr(report, "compare_outputs", refuse)
    second, result = _quantize(capsys, work, calib)
    assert second["cached"] is True and second["report_cached"] is True
    assert second["int8_file"] == first["int8_file"]
    assert second["outputs"] == first["outputs"]
    assert Path(second["int8_file"]).stat().st_mtime_ns == stamp
    assert "quantizing" not in result.err


def test_another_calibration_set_or_method_gives_another_cache_entry(capsys, work):
    first, _ = _quantize(capsys, work, _calib(capsys, work, "calib", "videos"))
    other, _ = _quantize(capsys, work, _calib(capsys, work, "other_calib", "other_videos"))
    entropy, _ = _quantize(capsys, work, _calib(capsys, work, "calib", "videos"), "--method", "entropy")
    files = {first["int8_file"], other["int8_file"], entropy["int8_file"]}
    assert len(files) == 3 and all(Path(f).is_file() for f in files)
    assert other["cached"] is False and other["calibration"]["sha256"] != first["calibration"]["sha256"]
    assert entropy["settings"]["method"] == "entropy"


def test_calib_folder_of_videos_is_preprocessed_like_zoo_calib(capsys, work):
    report, result = _quantize(capsys, work, work["other_videos"])
    assert report["calibration"]["kind"] == "inputs"
    assert report["samples"] == 4  # one clip per video, as `zoo calib` writes by default
    assert report["outputs"][0]["cosine"] >= 0.99


def test_output_copies_the_int8_model(capsys, work, tmp_path):
    report, _ = _quantize(capsys, work, _calib(capsys, work, "calib", "videos"), "-o", tmp_path / "tiny_int8.onnx")
    assert (tmp_path / "tiny_int8.onnx").read_bytes() == Path(report["int8_file"]).read_bytes()


def test_run_precision_int8_fails_with_the_way_out_before_quantize_and_works_after(capsys, work):
    clip = sorted(work["test_videos"].iterdir())[0]
    before = invoke(capsys, "run", "r3d_18", clip, "--model", work["model"], "--precision", "int8")
    before.assert_user_error("no INT8 model", "zoo calib r3d_18", f"zoo quantize r3d_18 --model {work['model']}")

    report, _ = _quantize(capsys, work, _calib(capsys, work, "calib", "videos"))
    after = invoke(capsys, "run", "r3d_18", clip, "--model", work["model"], "--precision", "int8", "--json")
    assert after.code == 0, after.err
    ran = json.loads(after.out)
    assert ran["model_file"] == report["int8_file"]
    fp32 = json.loads(invoke(capsys, "run", "r3d_18", clip, "--model", work["model"], "--json").out)
    assert ran["predictions"][0]["class_id"] == fp32["predictions"][0]["class_id"]


def test_configured_calib_quantizes_on_first_use(capsys, work, tmp_path, monkeypatch):
    calib = _calib(capsys, work, "calib", "videos")
    (tmp_path / "zoo.yaml").write_text(f"models:\n  r3d_18:\n    calib: {calib}\n    precision: int8\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))  # nothing quantized yet
    clip = sorted(work["test_videos"].iterdir())[0]
    first = invoke(capsys, "run", "r3d_18", clip, "--model", work["model"], "--json")
    assert first.code == 0, first.err
    assert "quantizing small.onnx to INT8" in first.err
    assert "-int8-" in json.loads(first.out)["model_file"]
    second = invoke(capsys, "run", "r3d_18", clip, "--model", work["model"], "--json")
    assert second.code == 0 and "quantizing" not in second.err


def test_quantize_without_a_calibration_set_says_how_to_make_one(capsys, work):
    result = invoke(capsys, "quantize", "r3d_18", "--model", work["model"])
    result.assert_user_error("no calibration set", "zoo calib r3d_18", "--calib")


def test_calibration_files_of_another_shape_are_refused(capsys, work, tmp_path):
    np.save(tmp_path / "wrong.npy", np.zeros((1, 3, 8, 112, 112), np.float32))
    result = invoke(capsys, "quantize", "r3d_18", "--model", work["model"], "--calib", tmp_path)
    result.assert_user_error("wrong.npy", "float32 [1, 3, 16, 112, 112]", "zoo calib r3d_18")


def test_real_r3d18_architecture_quantizes_within_cosine_099(tmp_path):
    """The recipe on R3D-18 itself (random weights, a small clip so it stays quick): every conv but
    the 3-channel stem becomes INT8, and the logits stay close to fp32's."""
    import onnx
    from test_registry_models import random_state_dict

    from modelzoo.core.quantize.calibration_set import Sample
    from modelzoo.core.quantize.host import QuantizeSettings, quantize_onnx
    from modelzoo.core.quantize.report import compare_outputs
    from modelzoo.models.video_resnet.architecture import build_video_resnet, expected_keys

    fp32 = tmp_path / "r3d_18.onnx"
    state = random_state_dict(expected_keys("r3d_18", 400))
    onnx.save(build_video_resnet(state, "r3d_18", clip_len=4, size=32), str(fp32))
    rng = np.random.default_rng(0)
    for index in range(6):
        np.save(tmp_path / f"s{index}.npy", rng.standard_normal((1, 3, 4, 32, 32)).astype(np.float32))
    samples = [Sample(tmp_path / f"s{index}.npy") for index in range(6)]
    int8 = quantize_onnx(fp32, samples[:4], QuantizeSettings(), tmp_path / "int8.onnx", tmp_path / "pre.onnx")
    graph = onnx.load(str(int8)).graph
    weights_dequantized = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    convs = {node.name: node.input[1] in weights_dequantized for node in graph.node if node.op_type == "Conv"}
    assert len(convs) == 20 and [name for name, quantized in convs.items() if not quantized] == ["stem.0"]
    outputs, _ = compare_outputs(fp32, int8, samples[4:])  # clips calibration did not see
    assert outputs[0]["min_sample_cosine"] >= 0.99


# -- detectors: the decode after the last weighted layer stays fp32 -------------------------------------------


def test_the_float_tail_is_what_follows_the_last_weighted_layer(tmp_path):
    import onnx
    from detection_onnx import random_head

    from modelzoo.core.quantize.host import float_tail_nodes, preprocess_onnx

    detector = preprocess_onnx(random_head(tmp_path / "head.onnx"), tmp_path / "pre.onnx")
    ops = {node.name: node.op_type for node in onnx.load(str(detector)).graph.node}
    assert all(ops)  # onnxruntime's pre-processing leaves them unnamed; the quantizer excludes by name
    # three strided convs, then reshapes, the concat of every candidate, sigmoid, and the scaling to pixels
    assert sorted(ops[name] for name in float_tail_nodes(detector)) == [
        "Concat", "Mul", "Reshape", "Reshape", "Reshape", "Sigmoid"
    ]  # fmt: skip
    assert float_tail_nodes(two_conv_video_classifier(tmp_path / "classifier.onnx")) == []  # it ends in Gemm


def _box_iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
    return width * height / union if union > 0 else 0.0


def test_a_detector_imported_with_fetch_onnx_runs_in_int8_and_finds_what_fp32_finds(capsys, tmp_path):
    """Issue #9: `zoo run yolo11n --precision int8` after `zoo fetch yolo11n --onnx` failed, and the INT8 model
    found nothing: its last node holds box pixels (0..640) and class scores (0..1) under one INT8 scale."""
    from detection_onnx import random_head
    from test_detection import photo, save_png

    images = tmp_path / "images"
    images.mkdir()
    for seed in range(8):
        save_png(images / f"p{seed}.png", photo(360 + 20 * seed, 480, seed=seed))
    held_out = [save_png(tmp_path / f"test{seed}.png", photo(400, 520, seed=seed)) for seed in (20, 21)]
    assert invoke(capsys, "fetch", "yolo11n", "--onnx", random_head(tmp_path / "yolo11n.onnx")).code == 0
    calibrated = invoke(capsys, "calib", "yolo11n", "--input", images, "-o", tmp_path / "calib")
    assert calibrated.code == 0, calibrated.err

    made = invoke(capsys, "quantize", "yolo11n", "--calib", tmp_path / "calib", "--json")
    assert made.code == 0, made.err
    report = json.loads(made.out)
    assert report["samples"] == 8 and report["float_tail_nodes"]

    for image in held_out:
        fp32 = invoke(capsys, "run", "yolo11n", image, "--json")
        int8 = invoke(capsys, "run", "yolo11n", image, "--precision", "int8", "--json")
        assert fp32.code == 0 and int8.code == 0, int8.err
        assert json.loads(int8.out)["model_file"] == report["int8_file"]
        expected, got = json.loads(fp32.out)["detections"], json.loads(int8.out)["detections"]
        assert len(expected) >= 10 and len(got) >= 10
        for detection in expected[:10]:  # fp32's best ten are found again: same class, same place, similar score
            same = [g for g in got if g["class_id"] == detection["class_id"]]
            best = max(same, key=lambda g: _box_iou(g["box"], detection["box"]), default=None)
            assert best is not None and _box_iou(best["box"], detection["box"]) >= 0.5, detection
            assert best["score"] == pytest.approx(detection["score"], abs=0.05)


# -- what a calibration set or a cached INT8 model may hold ---------------------------------------------------


def test_calibration_samples_holding_nan_or_infinity_are_refused_by_name(capsys, work, tmp_path):
    """A NaN sample gave NaN activation ranges, a report of NaN cosines, and `--json` that is not JSON."""
    good = np.load(sorted(_calib(capsys, work, "calib", "videos").glob("*.npy"))[0])
    np.save(tmp_path / "a_good.npy", good)
    bad = np.concatenate([good, good])
    bad[1, 0, 3, 5, 7] = np.inf
    np.save(tmp_path / "b_batch.npy", bad)
    result = invoke(capsys, "quantize", "r3d_18", "--model", work["model"], "--calib", tmp_path, "--json")
    result.assert_user_error("b_batch.npy", "sample 1", "NaN or infinite", "zoo calib r3d_18")
    assert result.out == ""


def test_one_row_of_a_batched_calibration_file_is_read_without_the_rest(tmp_path):
    """Samples of a [K, ...] file are loaded one row at a time: reading the whole file for each row
    made calibration K times the file in reads and held the whole file in memory."""
    import tracemalloc

    from modelzoo.core.quantize.calibration_set import Sample

    rows = np.random.default_rng(0).standard_normal((16, 3, 4, 64, 64)).astype(np.float32)  # 3 MB, 196 kB a row
    np.save(tmp_path / "batch.npy", rows)
    tracemalloc.start()
    try:
        loaded = Sample(tmp_path / "batch.npy", row=9).load()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert loaded.shape == (1, 3, 4, 64, 64) and loaded.tobytes() == rows[9:10].tobytes()
    assert peak < 3 * rows[0].nbytes, peak


def test_quantize_from_a_folder_of_videos_shows_progress_while_preprocessing(capsys, work, monkeypatch):
    from modelzoo.commands import quantize as command

    seen = []

    class Bar:
        def __init__(self, total, label):
            self.label, self.total, self.done = label, total, 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            seen.append((self.label, self.total, self.done))

        def update(self, steps):
            self.done += steps

    monkeypatch.setattr(command, "progress", Bar)
    result = invoke(capsys, "quantize", "r3d_18", "--model", work["model"], "--calib", work["other_videos"],
                    "--method", "percentile", "--node-samples", "0")  # fmt: skip
    assert result.code == 0, result.err
    assert ("preprocessing", 4, 4) in seen  # before the calibration bar, which had nothing to show until then
    assert [label for label, _, _ in seen][:2] == ["preprocessing", "calibration"]


def test_a_damaged_cached_int8_model_is_named_with_the_command_that_makes_it_again(capsys, work):
    """It was "no INT8 model of r3d_18 yet" when the only cached one was damaged."""
    calib = _calib(capsys, work, "calib", "videos")
    made, _ = _quantize(capsys, work, calib, "--node-samples", "0")
    int8 = Path(made["int8_file"])
    int8.write_bytes(int8.read_bytes()[:1000])
    clip = sorted(work["test_videos"].iterdir())[0]
    result = invoke(capsys, "run", "r3d_18", clip, "--model", work["model"], "--precision", "int8")
    line = result.assert_user_error(int8.name, "damaged", "truncated")
    assert f"zoo quantize r3d_18 --model {work['model']} --calib {calib.absolute()}`" in line
    assert "yet" not in line


def test_a_damaged_newest_int8_model_is_not_silently_replaced_by_an_older_one(capsys, work):
    older, _ = _quantize(capsys, work, _calib(capsys, work, "calib", "videos"), "--node-samples", "0")
    import time

    time.sleep(1.1)  # cache entries are dated to the second
    newer, _ = _quantize(capsys, work, _calib(capsys, work, "other_calib", "other_videos"), "--node-samples", "0")
    Path(newer["int8_file"]).write_bytes(b"\x00" * 10)
    clip = sorted(work["test_videos"].iterdir())[0]
    result = invoke(capsys, "run", "r3d_18", clip, "--model", work["model"], "--precision", "int8", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["model_file"] == older["int8_file"]
    assert Path(newer["int8_file"]).name in result.err and "damaged" in result.err
    assert f"--calib {(work['root'] / 'other_calib').absolute()}" in result.err


def test_an_output_that_cannot_be_written_is_refused_before_quantizing(capsys, work, tmp_path, monkeypatch):
    from modelzoo.core.quantize import host

    def refuse(*_args, **_kwargs):
        raise AssertionError("quantized before -o was checked")

    monkeypatch.setattr(host, "quantize_preprocessed", refuse)
    (tmp_path / "a_file").write_text("a file, not a folder")
    target = tmp_path / "a_file" / "int8.onnx"
    result = invoke(
        capsys, "quantize", "r3d_18", "--model", work["model"], "--calib", work["other_videos"], "-o", target
    )
    result.assert_user_error("cannot write", str(target))
    assert not any(Path(tmp_path).glob(".zoo-check-*"))


def test_the_report_holds_no_more_than_a_sample_of_outputs_at_once(tmp_path):
    """The fp32-vs-INT8 comparison kept every output of both models for all samples (and copies of them
    joined): a detector's outputs on 100 calibration images came to over 1 GB."""
    import tracemalloc

    from onnx_models import tiny_image_classifier

    from modelzoo.core.quantize.calibration_set import Sample
    from modelzoo.core.quantize.report import compare_outputs

    model = tiny_image_classifier(tmp_path / "wide.onnx", size=8, classes=200_000)  # 800 kB of logits a sample
    rng = np.random.default_rng(0)
    samples = []
    for index in range(24):
        np.save(tmp_path / f"s{index}.npy", rng.standard_normal((1, 3, 8, 8)).astype(np.float32))
        samples.append(Sample(tmp_path / f"s{index}.npy"))
    compare_outputs(model, model, samples[:2])  # sessions warmed up outside the measurement
    tracemalloc.start()
    try:
        outputs, top1 = compare_outputs(model, model, samples)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outputs[0]["cosine"] == pytest.approx(1.0) and top1["agree"] == 24
    assert peak < 20 * 800_000, peak  # one sample's outputs in float64 and their difference; was 24 of each model


def test_progress_is_written_to_a_log(capsys, work, monkeypatch):
    """In a log or a pipe, quantizing said nothing between its first line and the report, however long."""
    from modelzoo import progress

    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)
    result = invoke(capsys, "quantize", "r3d_18", "--model", work["model"], "--calib", work["other_videos"],
                    "--node-samples", "1")  # fmt: skip
    assert result.code == 0, result.err
    lines = [line for line in result.err.splitlines() if line.startswith("progress: ")]
    for label in ("preprocessing", "calibration", "fp32 vs INT8"):
        assert [line for line in lines if line.startswith(f"progress: {label} ")] == [
            f"progress: {label} {n}/4" for n in range(1, 4)
        ], lines


def test_an_empty_calibration_folder_says_how_to_fill_it(capsys, work, tmp_path):
    (tmp_path / "calib").mkdir()
    (tmp_path / "calib" / "notes.txt").write_text("not a sample")
    result = invoke(capsys, "quantize", "r3d_18", "--model", work["model"], "--calib", tmp_path / "calib")
    result.assert_user_error("no .npy samples", f"zoo calib r3d_18 --input VIDEOS_OR_IMAGES -o {tmp_path / 'calib'}")


def test_a_cached_report_changed_on_disk_is_made_again_not_shown(capsys, work):
    calib = _calib(capsys, work, "calib", "videos")
    first, _ = _quantize(capsys, work, calib, "--node-samples", "0")
    report = Path(first["int8_file"]).with_name(Path(first["int8_file"]).stem + ".report.json")
    edited = json.loads(report.read_text())
    edited["outputs"][0]["cosine"] = 0.5
    report.write_text(json.dumps(edited))
    second, _ = _quantize(capsys, work, calib, "--node-samples", "0")
    assert second["cached"] is True and second["report_cached"] is False
    assert second["outputs"][0]["cosine"] == pytest.approx(first["outputs"][0]["cosine"], abs=1e-9)
    third, _ = _quantize(capsys, work, calib, "--node-samples", "0")
    assert third["report_cached"] is True and third["outputs"] == second["outputs"]


def test_output_onto_the_fp32_model_is_refused(capsys, work, tmp_path):
    """`-o` naming the --model file replaced the fp32 model with its INT8 one."""
    fp32 = tmp_path / "small.onnx"
    fp32.write_bytes(work["model"].read_bytes())
    result = invoke(capsys, "quantize", "r3d_18", "--model", fp32, "--calib", work["other_videos"], "-o", fp32)
    result.assert_user_error("is the fp32 --model file")
    assert fp32.read_bytes() == work["model"].read_bytes()
