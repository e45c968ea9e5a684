"""yolo11n on the board path: `zoo check/patch/compile/calib` on a detector ONNX (with the FAKE hb_compile), and
the hbm backend (with the FAKE hbm_runtime) giving onnxruntime's detections, both for a .hbm that keeps the
ONNX's output and for D-Robotics' published layout, the head split per stride before its decode.

The detector here is designed: K candidates, each in one cell of one stride's grid with a box known by hand;
their class logits are a small linear function of the image (the mean of each quadrant per colour), so a
wrong feed changes the scores. The FAKE runtime computes it from the Y/UV planes with numpy (tests/fakes);
the ONNX that onnxruntime runs is built below from the same numbers; neither shares code with zoo.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import test_compile
import test_hbm_backend
import yaml
from onnx import TensorProto, helper, numpy_helper
from test_detection import photo, save_png
from zoo_cli import invoke

import modelzoo

fake_hb_compile = test_compile.fake_hb_compile  # the fixtures: `hb_compile` on PATH, and the FAKE hbm_runtime
fake_runtime = test_hbm_backend.fake_runtime

SIZE, CLASSES, STRIDES, BINS, GRID = 640, 80, (8, 16, 32), 16, 2
CELLS = sum((SIZE // s) ** 2 for s in STRIDES)  # 8400
OFFSETS = np.cumsum([0] + [(SIZE // s) ** 2 for s in STRIDES])

# (name, class id, class logit, level, row, col, (left, top, right, bottom) in cells). In model-input pixels
# (x1 = (col + 0.5 - left) * stride, ...): A (48, 216, 128, 296) person; B (48, 216, 128, 288) person, IoU 0.9
# with A and weaker: suppressed; C (48, 224, 128, 304) car: another class, kept; D (288, 256, 480, 384) dog,
# logit -3: under the threshold; E (544, 416, 672, 480) bus, past the right edge of the input.
DESIGN = [
    ("A", 0, 2.0, 0, 30, 10, (4.5, 3.5, 5.5, 6.5)),
    ("B", 0, 1.0, 0, 31, 10, (4.5, 4.5, 5.5, 4.5)),
    ("C", 2, 1.0, 1, 15, 5, (2.5, 1.5, 2.5, 3.5)),
    ("D", 16, -3.0, 2, 10, 12, (3.5, 2.5, 2.5, 1.5)),
    ("E", 5, 0.5, 2, 13, 18, (1.5, 0.5, 2.5, 1.5)),
]
CANDIDATES = [{"level": lv, "row": r, "col": c, "ltrb": list(ltrb)} for _, _, _, lv, r, c, ltrb in DESIGN]


def design_weights(seed: int = 0) -> tuple:
    """weight [12, K * 80] (small: the image moves a logit by a few tenths) and bias [K * 80]: each candidate's
    class at its designed logit, every other class at -8."""
    weight = np.random.default_rng(seed).standard_normal((3 * GRID * GRID, len(DESIGN) * CLASSES)) * 0.1
    bias = np.full((len(DESIGN), CLASSES), -8.0)
    for k, (_, class_id, logit, *_rest) in enumerate(DESIGN):
        bias[k, class_id] = logit
    return weight, bias.reshape(-1)


def input_box(level: int, row: int, col: int, ltrb) -> tuple:
    """A candidate's box (x1, y1, x2, y2) in model-input pixels."""
    stride = STRIDES[level]
    left, top, right, bottom = ltrb
    return ((col + 0.5 - left) * stride, (row + 0.5 - top) * stride, (col + 0.5 + right) * stride,
            (row + 0.5 + bottom) * stride)  # fmt: skip


def designed_onnx(path, weight, bias):
    """onnxruntime's version of the designed detector, yolo11n's interface: the mean of each image quadrant per
    colour, logits = means @ weight + bias, their sigmoid placed at each candidate's cell, after the boxes."""
    boxes = np.zeros((1, 4, CELLS), np.float32)
    place = np.zeros((len(DESIGN), CELLS), np.float32)
    for k, (_, _, _, level, row, col, ltrb) in enumerate(DESIGN):
        x1, y1, x2, y2 = input_box(level, row, col, ltrb)
        index = OFFSETS[level] + row * (SIZE // STRIDES[level]) + col
        boxes[0, :, index] = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
        place[k, index] = 1.0
    cell = SIZE // GRID
    nodes = [
        helper.make_node("AveragePool", ["images"], ["quadrants"], kernel_shape=[cell, cell], strides=[cell, cell]),
        helper.make_node("Reshape", ["quadrants", "flat"], ["features"]),
        helper.make_node("MatMul", ["features", "weight"], ["product"]),
        helper.make_node("Add", ["product", "bias"], ["logits"]),
        helper.make_node("Reshape", ["logits", "per_candidate"], ["candidate_logits"]),
        helper.make_node("Sigmoid", ["candidate_logits"], ["candidate_scores"]),
        helper.make_node("Transpose", ["candidate_scores"], ["class_rows"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["class_rows", "place"], ["scores"]),
        helper.make_node("Concat", ["boxes", "scores"], ["output0"], axis=1),
    ]
    initializers = [
        numpy_helper.from_array(np.array([1, 3 * GRID * GRID], np.int64), "flat"),
        numpy_helper.from_array(np.asarray(weight, np.float32), "weight"),
        numpy_helper.from_array(np.asarray(bias, np.float32), "bias"),
        numpy_helper.from_array(np.array([1, len(DESIGN), CLASSES], np.int64), "per_candidate"),
        numpy_helper.from_array(place, "place"),
        numpy_helper.from_array(boxes, "boxes"),
    ]
    graph = helper.make_graph(
        nodes,
        "designed_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + CLASSES, CELLS])],
        initializers,
    )
    opsets = [helper.make_opsetid("", 17)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def design(tmp_path):
    weight, bias = design_weights()
    return {"weight": weight, "bias": bias, "onnx": designed_onnx(tmp_path / "yolo11n.onnx", weight, bias)}


@pytest.fixture
def images(tmp_path):
    """Calibration images of several sizes and a file that is not an image (skipped, and said so)."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for seed, (height, width) in enumerate([(272, 640), (480, 360), (640, 640)]):
        save_png(folder / f"img{seed}.png", photo(height, width, seed=seed))
    (folder / "notes.jpg").write_bytes(b"not an image")
    return folder


def run_json(capsys, *args) -> dict:
    result = invoke(capsys, "run", "yolo11n", *args, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


# -- check, patch, calib, compile -------------------------------------------------------------------------------


def test_check_and_patch_leave_the_detector_as_it_is(capsys, tmp_path, design):
    checked = invoke(capsys, "check", "yolo11n", "--march", "nash-e", "--model", design["onnx"], "--json")
    assert checked.code == 0, checked.err
    assert json.loads(checked.out)["findings"] == []
    patched = invoke(capsys, "patch", "yolo11n", "--model", design["onnx"], "-o", tmp_path / "p.onnx")
    assert patched.code == 0, patched.err
    assert "nothing to change" in patched.out
    assert onnx.load(str(tmp_path / "p.onnx")).graph == onnx.load(str(design["onnx"])).graph


def test_calib_writes_what_run_feeds_one_sample_per_image(capsys, tmp_path, images):
    result = invoke(capsys, "calib", "yolo11n", "--input", images, "-o", tmp_path / "calib", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["samples"] == 3 and [s["input"] for s in report["skipped"]] == [str(images / "notes.jpg")]
    for seed in range(3):
        sample = np.load(tmp_path / "calib" / f"img{seed}.npy")
        assert sample.dtype == np.float32 and sample.shape == (1, 3, SIZE, SIZE)
        np.testing.assert_array_equal(sample, modelzoo.preprocess("yolo11n", images / f"img{seed}.png"))
        assert 0.0 <= sample.min() and sample.max() <= 1.0  # the letterbox divided by 255, as the float model takes it


def test_compile_writes_the_nv12_config_and_calibration_that_hb_compile_accepts(
    capsys, tmp_path, design, images, fake_hb_compile
):  # fmt: skip
    calib = tmp_path / "calib"
    assert invoke(capsys, "calib", "yolo11n", "--input", images, "-o", calib).code == 0
    workdir = tmp_path / "work"
    result = invoke(
        capsys, "compile", "yolo11n", "--march", "nash-e", "--model", design["onnx"], "--calib", calib, "-o", workdir,
        "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["ran"] is True and data["result"]["completed"] is True
    assert (workdir / "model_output" / "yolo11n.hbm").is_file()
    assert "calibration with 3 samples" in result.err  # the fake hb_compile read every one and accepted it

    config = yaml.safe_load((workdir / "yolo11n_nash-e.yaml").read_text())
    inputs = config["input_parameters"]
    # the camera's NV12 in, scaled by 1/255 inside the model: D-Robotics' S100 YOLO config (docs/board.md)
    assert (inputs["input_name"], inputs["input_type_rt"], inputs["input_type_train"]) == ("images", "nv12", "rgb")
    assert inputs["input_layout_train"] == "NCHW" and "input_layout_rt" not in inputs
    assert inputs["norm_type"] == "data_scale" and "mean_value" not in inputs
    assert [float(v) for v in inputs["scale_value"].split()] == pytest.approx([1 / 255] * 3)
    assert inputs["input_shape"] == "1x3x640x640"
    assert config["calibration_parameters"] == {
        "cal_data_dir": "calibration",
        "cal_data_type": "float32",
        "calibration_type": "default",
    }
    # the calibration files are the config's input: float32, exactly input_shape
    shape = tuple(int(d) for d in inputs["input_shape"].split("x"))
    copied = sorted((workdir / "calibration").glob("*.npy"))
    assert [p.name for p in copied] == ["img0.npy", "img1.npy", "img2.npy"]
    for path in copied:
        sample = np.load(path)
        assert sample.dtype == np.float32 and sample.shape == shape
        np.testing.assert_array_equal(sample, np.load(calib / path.name))


def test_compile_with_a_folder_of_images_preprocesses_them_as_calib_does(
    capsys, tmp_path, design, images, fake_hb_compile
):
    workdir = tmp_path / "work"
    result = invoke(capsys, "compile", "yolo11n", "--model", design["onnx"], "--calib", images, "-o", workdir)
    assert result.code == 0, result.err
    assert "calibration with 3 samples" in result.err and "notes.jpg" in result.err  # the bad file is named, skipped
    for seed in range(3):
        sample = np.load(workdir / "calibration" / f"img{seed}.npy")
        np.testing.assert_array_equal(sample, modelzoo.preprocess("yolo11n", images / f"img{seed}.png"))


def test_compile_refuses_calibration_files_of_another_size(capsys, tmp_path, design, fake_hb_compile):
    calib = tmp_path / "calib"
    calib.mkdir()
    np.save(calib / "small.npy", np.zeros((1, 3, 320, 320), np.float32))
    result = invoke(capsys, "compile", "yolo11n", "--model", design["onnx"], "--calib", calib, "-o", tmp_path / "w")
    result.assert_user_error("small.npy", "float32 [1, 3, 640, 640]", "zoo calib yolo11n")


# -- the hbm backend: the same detections as onnxruntime -------------------------------------------------------


def hand_known(width: int, height: int) -> list:
    """The detections zoo must return on a width x height image, classes and boxes worked out by hand from
    DESIGN: A, C, E (B suppressed by A, D under the threshold), boxes moved out of the letterbox and clipped."""
    gain = min(SIZE / width, SIZE / height)
    pad_x, pad_y = round((SIZE - width * gain) / 2 - 0.1), round((SIZE - height * gain) / 2 - 0.1)
    expected = []
    for name, class_id, _, level, row, col, ltrb in DESIGN:
        if name in ("B", "D"):
            continue
        x1, y1, x2, y2 = input_box(level, row, col, ltrb)
        box = [(x1 - pad_x) / gain, (y1 - pad_y) / gain, (x2 - pad_x) / gain, (y2 - pad_y) / gain]
        box = [min(max(v, 0.0), float(limit)) for v, limit in zip(box, (width, height, width, height))]
        expected.append((class_id, box))
    return expected


def assert_same_detections(got: list, expected: list, score_atol: float) -> None:
    assert [d["class_id"] for d in got] == [d["class_id"] for d in expected]
    for a, b in zip(got, expected):
        assert a["label"] == b["label"]
        np.testing.assert_allclose(a["box"], b["box"], atol=2e-3)
        assert a["score"] == pytest.approx(b["score"], abs=score_atol)


def write_detector_hbm(rt, path, design, **options):
    model = rt.detector_model(candidates=CANDIDATES, weight=design["weight"], bias=design["bias"], **options)
    return rt.write_fake_hbm(path, models=[model])


@pytest.mark.parametrize("shape", [(272, 640), (640, 272)], ids=["640x272", "272x640"])
@pytest.mark.parametrize("layout", ["anchor_free", "split"])
def test_an_nv12_hbm_gives_onnxruntimes_detections(capsys, tmp_path, design, fake_runtime, layout, shape):
    """`anchor_free`: compiled by `zoo compile` (the ONNX's output kept); `split`: D-Robotics' published layout."""
    height, width = shape
    image = save_png(tmp_path / "image.png", photo(height, width, seed=3))
    hbm = write_detector_hbm(fake_runtime, tmp_path / f"{layout}.hbm", design, layout=layout)

    on_host = run_json(capsys, image, "--model", design["onnx"], "--backend", "onnxruntime")
    on_board = run_json(capsys, image, "--model", hbm, "--backend", "hbm")
    assert on_board["backend"].startswith("hbm_runtime") and on_board["warnings"] == []
    # NV12 halves the chroma resolution: the quadrant means, and so the scores, move by a little
    assert_same_detections(on_board["detections"], on_host["detections"], score_atol=2e-3)
    known = hand_known(width, height)
    assert [d["class_id"] for d in on_board["detections"]] == [c for c, _ in known]
    for detection, (_, box) in zip(on_board["detections"], known):
        np.testing.assert_allclose(detection["box"], box, atol=2e-3)

    # what the board got: the letterboxed image as BT.601 NV12, computed here from the standard
    runtime = fake_runtime.RUNTIMES[-1]
    fed = runtime.last_inputs["yolo11n"]
    letterboxed = (modelzoo.preprocess("yolo11n", image)[0].transpose(1, 2, 0) * 255).round().astype(np.uint8)
    y, uv = test_hbm_backend.bt601_nv12(letterboxed)
    assert fed["images_y"].shape == (1, SIZE, SIZE, 1) and fed["images_uv"].shape == (1, SIZE // 2, SIZE // 2, 2)
    assert np.abs(fed["images_y"][0].astype(float) - y).max() <= 1.0
    # OpenCV subsamples chroma its own way (the standard says nothing of it): close on average, U before V
    assert np.abs(fed["images_uv"][0].astype(float) - uv).mean() <= 1.0


@pytest.mark.parametrize("layout", ["anchor_free", "split"])
def test_a_featuremap_hbm_gives_onnxruntimes_detections_to_float32_precision(
    capsys, tmp_path, design, fake_runtime, layout
):
    image = save_png(tmp_path / "image.png", photo(375, 500, seed=4))
    hbm = write_detector_hbm(fake_runtime, tmp_path / "m.hbm", design, layout=layout, nv12=False)
    on_host = run_json(capsys, image, "--model", design["onnx"], "--backend", "onnxruntime")
    on_board = run_json(capsys, image, "--model", hbm, "--backend", "hbm")
    # the same float input: only float32 sums over 320x320 pixels (onnxruntime) against float64 (the fake) differ
    assert_same_detections(on_board["detections"], on_host["detections"], score_atol=1e-4)
    assert len(on_board["detections"]) == 3


def test_the_split_head_is_told_apart_by_shape_with_quantized_boxes(capsys, tmp_path, design, fake_runtime):
    """Output names are the compiler's (opaque) and the order may differ: the roles come from the shapes. The
    box distributions may come as S32 with a per-channel scale (D-Robotics' S100 sample dequantizes them)."""
    image = save_png(tmp_path / "image.png", photo(272, 640, seed=5))
    box_scale = np.linspace(1e-4, 2e-4, 4 * BINS)
    model = fake_runtime.detector_model(
        candidates=CANDIDATES, weight=design["weight"], bias=design["bias"], box_scale=box_scale,
        output_names=["output0", "330", "338", "346", "354", "362"],
    )  # fmt: skip
    model["outputs"] = [model["outputs"][i] for i in (5, 0, 3, 2, 1, 4)]  # shuffled
    hbm = fake_runtime.write_fake_hbm(tmp_path / "yolo11n_detect_nashe_640x640_nv12.hbm", models=[model])
    on_host = run_json(capsys, image, "--model", design["onnx"], "--backend", "onnxruntime")
    on_board = run_json(capsys, image, "--model", hbm, "--backend", "hbm")
    assert_same_detections(on_board["detections"], on_host["detections"], score_atol=2e-3)


def test_a_hbm_with_other_outputs_is_refused_at_load_naming_them(capsys, tmp_path, design, fake_runtime):
    image = save_png(tmp_path / "image.png", photo(100, 100))
    nchw = fake_runtime.detector_model(candidates=CANDIDATES, weight=design["weight"], bias=design["bias"])
    for output in nchw["outputs"]:  # the split head left in NCHW: [1, C, H/s, W/s]
        output["shape"] = [output["shape"][0], output["shape"][3], output["shape"][1], output["shape"][2]]
    fewer_classes = fake_runtime.detector_model(
        candidates=CANDIDATES, weight=design["weight"][:, : 20 * len(DESIGN)], bias=design["bias"][: 20 * len(DESIGN)],
        classes=20, layout="anchor_free",
    )  # fmt: skip
    cases = {
        "nchw.hbm": (nchw, ["output1 [1, 64, 80, 80]", "[1, 84, 8400]", "[1, H/s, W/s, 80]", "[1, H/s, W/s, 64]"]),
        "twenty.hbm": (fewer_classes, ["output0 [1, 24, 8400]", "[1, 84, 8400]", "stride 8, 16, 32"]),
    }
    for name, (model, fragments) in cases.items():
        hbm = fake_runtime.write_fake_hbm(tmp_path / name, models=[model])
        invoke(capsys, "run", "yolo11n", image, "--model", hbm, "--backend", "hbm").assert_user_error(name, *fragments)
    assert all(not runtime.calls for runtime in fake_runtime.RUNTIMES)  # refused before any inference


def test_zoo_info_names_the_board_models_yolo11n_runs(capsys):
    text = invoke(capsys, "info", "yolo11n").out
    assert "a .hbm compiled from it or D-Robotics' published split-head NV12 .hbm" in text.splitlines()[0]
    assert "not supported" not in text


def test_the_published_hbm_imported_with_fetch_is_what_run_uses_on_the_board(capsys, tmp_path, design, fake_runtime):
    """`zoo fetch yolo11n --hbm` gets D-Robotics' file (no checksum published); a local copy imports the same way."""
    hbm = write_detector_hbm(fake_runtime, tmp_path / "yolo11n_detect_nashe_640x640_nv12.hbm", design)
    fetched = invoke(capsys, "fetch", "yolo11n", "--hbm", "--weights", hbm, "--json")
    assert fetched.code == 0, fetched.err
    assert "publishes no checksum" in fetched.err
    image = save_png(tmp_path / "image.png", photo(272, 640, seed=6))
    on_board = run_json(capsys, image)  # no --model, no --backend: the board's runtime and the fetched .hbm
    assert on_board["backend"].startswith("hbm_runtime") and on_board["model_file"] == json.loads(fetched.out)["path"]
    on_host = run_json(capsys, image, "--model", design["onnx"])
    assert_same_detections(on_board["detections"], on_host["detections"], score_atol=2e-3)


def test_the_split_head_decode_equals_an_independent_dfl_on_random_outputs():
    """Random logits, so every bin counts: Ultralytics' decode (make_anchors, DFL, dist2bbox), written here in float64."""
    from modelzoo.core.tasks.detection import dfl_heads_to_anchor_free

    rng = np.random.default_rng(7)
    levels = [
        (
            rng.normal(-3, 2, (1, SIZE // s, SIZE // s, CLASSES)),
            rng.normal(0, 3, (1, SIZE // s, SIZE // s, 4 * BINS)),
            s,
        )
        for s in STRIDES
    ]
    got = dfl_heads_to_anchor_free([(c.astype(np.float32), b.astype(np.float32), s) for c, b, s in levels], BINS)

    expected = []
    for class_logits, box_logits, stride in levels:
        height, width = class_logits.shape[1:3]
        anchor_x, anchor_y = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)  # x varies fastest
        anchors = np.stack([anchor_x.ravel(), anchor_y.ravel()], axis=1)
        bins = box_logits.reshape(-1, 4, BINS)
        probabilities = np.exp(bins) / np.exp(bins).sum(axis=2, keepdims=True)
        distance = (probabilities * np.arange(BINS)).sum(axis=2)  # left, top, right, bottom
        x1y1, x2y2 = anchors - distance[:, :2], anchors + distance[:, 2:]
        boxes = np.concatenate([(x1y1 + x2y2) / 2, x2y2 - x1y1], axis=1) * stride
        scores = 1 / (1 + np.exp(-class_logits.reshape(-1, CLASSES)))
        expected.append(np.concatenate([boxes, scores], axis=1))
    expected = np.concatenate(expected).T[None]
    assert got.shape == (1, 4 + CLASSES, CELLS) and got.dtype == np.float32
    np.testing.assert_allclose(got[0, :4], expected[0, :4], rtol=0, atol=2e-3)  # pixels, from float32 logits
    np.testing.assert_allclose(got[0, 4:], expected[0, 4:], rtol=0, atol=1e-6)
