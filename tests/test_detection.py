"""yolo11n and the object-detection task: Ultralytics' letterbox, exact decoding of a designed output on
square and non-square images, agreement with an independent numpy decode and NMS on random-weight
outputs, the annotated image, JSON and table output, thresholds, and the exported-ONNX path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from detection_onnx import candidates, designed_detector, random_head
from zoo_cli import invoke

import modelzoo
from modelzoo.core.tasks.detection import DetectionPreprocessing, class_color

LABELS = modelzoo.get_model("yolo11n").spec.labels
KEYS = ["model", "input", "backend", "detections", "timing_ms", "model_file", "warnings"]


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB image with edges, like a photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([128 + 100 * np.sin(x / 17 + c) * np.cos(y / 23 - c) for c in range(3)], axis=-1)
    image[height // 3 : height // 2, width // 4 : width // 2] = rng.integers(0, 256, 3)
    return np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)


def save_png(path: Path, rgb: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def run_json(capsys, *args) -> dict:
    result = invoke(capsys, "run", "yolo11n", *args, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


# -- preprocessing ------------------------------------------------------------------------------------------


def ultralytics_letterbox(image: np.ndarray, new_shape=(640, 640)) -> np.ndarray:
    """Ultralytics' LetterBox(new_shape, auto=False, scaleup=True, center=True), transcribed: the model input, HWC."""
    shape = image.shape[:2]
    r = min(new_shape[0] / shape[0], new_shape[1] / shape[1])
    new_unpad = int(round(shape[1] * r)), int(round(shape[0] * r))
    dw, dh = (new_shape[1] - new_unpad[0]) / 2, (new_shape[0] - new_unpad[1]) / 2
    if shape[::-1] != new_unpad:
        image = cv2.resize(image, new_unpad, interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    return cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))


@pytest.mark.parametrize("shape", [(272, 640), (640, 272), (720, 1280), (375, 500), (333, 517), (120, 90), (640, 640)])
def test_preprocessing_is_ultralytics_letterbox_scaled_to_0_1(shape, tmp_path):
    image = photo(*shape)
    np.save(tmp_path / "image.npy", image)
    tensor = modelzoo.preprocess("yolo11n", tmp_path / "image.npy")
    assert tensor.shape == (1, 3, 640, 640) and tensor.dtype == np.float32
    expected = ultralytics_letterbox(image).astype(np.float32) / 255.0
    np.testing.assert_array_equal(tensor[0].transpose(1, 2, 0), expected)
    # the padding is 114 grey, split between both sides
    if shape[0] < shape[1]:
        assert (tensor[0, :, 0, :] == np.float32(114) / 255).all() and (
            tensor[0, :, -1, :] == np.float32(114) / 255
        ).all()


def test_host_image_gives_back_the_letterboxed_pixels():
    from modelzoo.core.tasks.detection import letterbox_image, letterbox_tensor

    model = modelzoo.get_model("yolo11n")
    image = photo(300, 500)
    pre = model.spec.preprocessing
    np.testing.assert_array_equal(model.host_image(letterbox_tensor(image, pre))[0], letterbox_image(image, pre))
    board = model.board_input()
    assert board["input_type_rt"] == "nv12" and board["norm_type"] == "data_scale"
    assert float(board["scale_value"].split()[0]) == pytest.approx(1 / 255)


# -- decoding a designed output: the boxes are known by hand --------------------------------------------------

# (image width, height) -> (gain, pad x, pad y) of the letterbox, worked out by hand:
# 640x272 fits at scale 1 with (640 - 272) / 2 = 184 rows above; 1280x544 is halved to 640x272, likewise.
GEOMETRY = {
    (640, 640): (1.0, 0, 0),
    (640, 272): (1.0, 0, 184),
    (272, 640): (1.0, 184, 0),
    (1280, 544): (0.5, 0, 184),
    (544, 1280): (0.5, 184, 0),
}


def designed_case(width: int, height: int) -> tuple:
    """(output values, the detections zoo must return) for an image of width x height.

    In image pixels: A (person, 0.9) and B (person, 0.8) overlap with IoU 0.905 > 0.7, so B goes; C is B's box as
    a car (0.6): another class, kept; G (person, 0.85) overlaps A by IoU 1/3: kept; D (dog) scores exactly 0.25,
    not above the threshold: dropped; E (bus, 0.26) runs 20 px past the right and 10 px past the bottom edge:
    clipped to the image. Boxes go into the output as centre and size in model input pixels.
    """
    gain, pad_x, pad_y = GEOMETRY[(width, height)]
    image_boxes = {
        "A": (0, 0.9, (20, 30, 120, 130)),
        "B": (0, 0.8, (25, 30, 125, 130)),
        "C": (2, 0.6, (25, 30, 125, 130)),
        "G": (0, 0.85, (70, 30, 170, 130)),
        "D": (16, 0.25, (200, 200, 250, 250)),
        "E": (5, 0.26, (width - 30, height - 40, width + 20, height + 10)),
    }
    rows = []
    for class_id, score, (x1, y1, x2, y2) in image_boxes.values():
        x1, x2 = x1 * gain + pad_x, x2 * gain + pad_x
        y1, y2 = y1 * gain + pad_y, y2 * gain + pad_y
        rows.append((class_id, score, ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)))
    expected = [
        {"class_id": 0, "label": "person", "score": 0.9, "box": [20.0, 30.0, 120.0, 130.0]},
        {"class_id": 0, "label": "person", "score": 0.85, "box": [70.0, 30.0, 170.0, 130.0]},
        {"class_id": 2, "label": "car", "score": 0.6, "box": [25.0, 30.0, 125.0, 130.0]},
        {
            "class_id": 5,
            "label": "bus",
            "score": 0.26,
            "box": [width - 30.0, height - 40.0, float(width), float(height)],
        },
    ]
    return candidates(rows), expected


@pytest.mark.parametrize("size", list(GEOMETRY), ids=[f"{w}x{h}" for w, h in GEOMETRY])
def test_a_designed_output_decodes_to_exactly_the_boxes_known_by_hand(size, tmp_path, capsys):
    width, height = size
    values, expected = designed_case(width, height)
    model = designed_detector(tmp_path / "designed.onnx", values)
    image = save_png(tmp_path / "image.png", photo(height, width))

    data = run_json(capsys, image, "--model", model)
    assert data["detections"] == expected
    assert data["warnings"] == []


def test_json_has_the_run_keys_and_detections_best_first(tmp_path, capsys):
    values, _ = designed_case(640, 272)
    model = designed_detector(tmp_path / "designed.onnx", values)
    data = run_json(capsys, save_png(tmp_path / "image.png", photo(272, 640)), "--model", model)
    assert list(data) == KEYS
    assert data["model"] == "yolo11n" and data["backend"].startswith("onnxruntime")
    assert set(data["timing_ms"]) == {"decode", "preprocess", "load", "inference"}
    scores = [d["score"] for d in data["detections"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 4
    for detection in data["detections"]:
        assert list(detection) == ["class_id", "label", "score", "box"]
        assert detection["label"] == LABELS[detection["class_id"]]
        x1, y1, x2, y2 = detection["box"]
        assert 0 <= x1 <= x2 <= 640 and 0 <= y1 <= y2 <= 272


def test_the_table_and_heading(tmp_path, capsys):
    values, _ = designed_case(640, 640)
    model = designed_detector(tmp_path / "designed.onnx", values)
    result = invoke(capsys, "run", "yolo11n", save_png(tmp_path / "image.png", photo(640, 640)), "--model", model)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].startswith("yolo11n on ") and "(4 detections, onnxruntime" in lines[0]
    assert lines[1].split() == ["rank", "class_id", "label", "score", "x1", "y1", "x2", "y2"]
    assert lines[3].split() == ["1", "0", "person", "0.9000", "20.0", "30.0", "120.0", "130.0"]
    assert lines[-1].startswith("timing: ")

    nothing = invoke(capsys, "run", "yolo11n", tmp_path / "image.png", "--model", model, "--conf", "0.95")
    assert nothing.out.splitlines()[1] == "no detections" and "(0 detections," in nothing.out.splitlines()[0]


# -- agreement with an independent decode on random-weight outputs ---------------------------------------------


def reference_detections(output: np.ndarray, image_shape: tuple, conf: float, iou: float, max_det: int) -> list:
    """Written from Ultralytics' description, independently of zoo: transpose, best class, score > conf,
    xywh -> xyxy, greedy NMS per class (drop IoU > iou), max_det, then scale_boxes and clip_boxes."""
    pred = output[0].T.astype(np.float64)  # [8400, 84]
    cls_scores = pred[:, 4:]
    best = cls_scores.argmax(axis=1)
    score = cls_scores[np.arange(len(pred)), best]
    mask = score > np.float32(conf)
    xywh, best, score = pred[mask, :4], best[mask], score[mask]
    boxes = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)

    def overlap(a, b):
        w = np.maximum(0, np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]))
        h = np.maximum(0, np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]))
        inter = w * h
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
        return inter / union

    keep = []
    for index in np.argsort(-score, kind="stable"):
        kept_same = [k for k in keep if best[k] == best[index]]
        if not kept_same or (overlap(boxes[index], boxes[kept_same]) <= iou).all():
            keep.append(index)
    keep = keep[:max_det]

    height, width = image_shape
    gain = min(640 / height, 640 / width)
    pad = round((640 - width * gain) / 2 - 0.1), round((640 - height * gain) / 2 - 0.1)
    out = (boxes[keep] - [pad[0], pad[1], pad[0], pad[1]]) / gain
    out = np.clip(out, 0, [width, height, width, height])
    return [(int(best[k]), float(score[k]), out[i]) for i, k in enumerate(keep)]


@pytest.mark.parametrize(
    ("shape", "flags"),
    [
        ((375, 500), ()),
        ((272, 640), ()),
        ((640, 272), ("--conf", "0.3", "--iou", "0.5")),
        ((720, 1280), ("--iou", "0.45", "--max-det", "7")),
    ],
)
def test_random_outputs_agree_with_an_independent_numpy_decode_and_nms(shape, flags, tmp_path, capsys):
    import onnxruntime as ort

    model = random_head(tmp_path / "random.onnx", seed=0)
    image = save_png(tmp_path / "image.png", photo(*shape, seed=1))
    data = run_json(capsys, image, "--model", model, *flags)

    options = {"conf": 0.25, "iou": 0.7, "max_det": 300}
    for name, value in zip(flags[::2], flags[1::2]):
        options[name.lstrip("-").replace("-", "_")] = type(options[name.lstrip("-").replace("-", "_")])(value)
    tensor = modelzoo.preprocess("yolo11n", image)
    output = ort.InferenceSession(str(model)).run(None, {"images": tensor})[0]
    expected = reference_detections(output, shape, options["conf"], options["iou"], options["max_det"])

    got = data["detections"]
    assert len(got) == len(expected) and len(got) >= min(7, options["max_det"])
    assert [d["class_id"] for d in got] == [e[0] for e in expected]
    for detection, (_, score, box) in zip(got, expected):
        assert detection["score"] == pytest.approx(score, abs=1e-6)
        np.testing.assert_allclose(detection["box"], box, atol=2e-3)
    if options["max_det"] == 7:
        assert len(got) == 7  # capped: more than seven survive NMS


# -- thresholds --------------------------------------------------------------------------------------------


def test_thresholds_from_flags_options_and_zoo_yaml(tmp_path, capsys, in_tmp_dir):
    values, expected = designed_case(640, 640)
    model = designed_detector(tmp_path / "designed.onnx", values)
    image = save_png(tmp_path / "image.png", photo(640, 640))

    def scores(*args):
        return [d["score"] for d in run_json(capsys, image, "--model", model, *args)["detections"]]

    assert scores() == [0.9, 0.85, 0.6, 0.26]
    assert scores("--conf", "0.5") == [0.9, 0.85, 0.6]
    assert scores("--conf", "0.2") == [0.9, 0.85, 0.6, 0.26, 0.25]  # D passes a lower threshold
    assert scores("--iou", "0.95") == [0.9, 0.85, 0.8, 0.6, 0.26]  # B no longer overlaps A enough
    assert scores("--max-det", "2") == [0.9, 0.85]
    assert scores("-O", "conf=0.7") == [0.9, 0.85]

    (in_tmp_dir / "zoo.yaml").write_text("models:\n  yolo11n:\n    conf: 0.7\n    max_det: 1\n")
    assert scores() == [0.9]
    assert scores("--conf", "0.5", "--max-det", "10") == [0.9, 0.85, 0.6]  # the command line wins

    (in_tmp_dir / "zoo.yaml").write_text("models:\n  yolo11n:\n    conf: 1.5\n")
    invoke(capsys, "run", "yolo11n", image, "--model", model).assert_user_error("'conf' must be at most 1")
    (in_tmp_dir / "zoo.yaml").write_text("models:\n  yolo11n:\n    iou: high\n")
    invoke(capsys, "run", "yolo11n", image, "--model", model).assert_user_error("iou", "float")
    assert invoke(capsys, "run", "yolo11n", image, "--model", model, "--conf", "2").code == 2
    # NaN passes every range check written as a comparison, and then silently keeps nothing
    (in_tmp_dir / "zoo.yaml").write_text("models: {}\n")
    invoke(capsys, "run", "yolo11n", image, "--model", model, "--conf", "nan").assert_user_error("conf", "finite")
    invoke(capsys, "run", "yolo11n", image, "--model", model, "--iou", "nan").assert_user_error("iou", "finite")
    (in_tmp_dir / "zoo.yaml").write_text("models:\n  yolo11n:\n    conf: .nan\n")
    invoke(capsys, "run", "yolo11n", image, "--model", model).assert_user_error("conf", "finite")
    (in_tmp_dir / "zoo.yaml").write_text("models: {}\n")
    invoke(capsys, "run", "yolo11n", image, "--model", model, "--max-det", "1000000").assert_user_error("at most")


def test_zoo_info_describes_the_letterbox_thresholds_and_the_published_figure(capsys):
    result = invoke(capsys, "info", "yolo11n")
    assert result.code == 0, result.err
    text = result.out
    assert "preprocess letterbox to 640x640 (aspect ratio kept, bilinear, padding 114 centred), scale to [0,1]" in text
    assert "--conf (default 0.25), --iou (default 0.7), --max-det (default 300)" in text
    assert "mAP50-95  39.5   COCO val2017" in text and "docs.ultralytics.com" in text
    data = json.loads(invoke(capsys, "info", "yolo11n", "--json").out)
    assert data["task"] == "object-detection" and data["num_classes"] == 80
    assert data["preprocessing"] == {"size": [640, 640], "pad_value": 114, "center": True, "mean": [0.0, 0.0, 0.0],
                                     "std": [1.0, 1.0, 1.0], "interpolation": "bilinear"}  # fmt: skip
    assert "yolo export model=yolo11n.pt format=onnx" in data["how_to_get"]


def test_the_labels_are_cocos_80_in_ultralytics_order():
    assert len(LABELS) == 80 and len(set(LABELS)) == 80
    assert LABELS[:3] == ("person", "bicycle", "car") and LABELS[-1] == "toothbrush"
    assert LABELS[62] == "tv" and LABELS[57] == "couch" and LABELS[16] == "dog"


# -- the annotated image ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_save_writes_the_image_with_its_boxes(suffix, tmp_path, capsys):
    values, expected = designed_case(640, 272)
    model = designed_detector(tmp_path / "designed.onnx", values)
    rgb = np.full((272, 640, 3), 200, np.uint8)
    image = save_png(tmp_path / "image.png", rgb)
    out = tmp_path / "out" / f"annotated{suffix}"

    data = run_json(capsys, image, "--model", model, "--save", out)
    assert data["detections"] == expected
    drawn = cv2.imread(str(out))
    assert drawn is not None and drawn.shape == (272, 640, 3)
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # written whole, no temp file left
    tolerance = 0 if suffix == ".png" else 40
    # the right edge of A's box (x=120) is drawn in the person colour, at mid-height and away from any label
    pixel = drawn[100, 120].astype(int)
    assert np.abs(pixel - np.array(class_color(0))).max() <= tolerance, pixel
    assert np.abs(drawn[250, 300].astype(int) - 200).max() <= (0 if suffix == ".png" else 4)  # untouched
    assert (np.abs(drawn.astype(int) - 200).max(axis=2) > 60).sum() > 500  # boxes and labels


def test_frames_of_a_video_get_the_same_drawing():
    from modelzoo.core.tasks.detection import Detection, DetectionResult, DetectionTask

    frame = np.full((120, 160, 3), 200, np.uint8)
    result = DetectionResult([Detection(16, "dog", 0.8, (10.0, 20.0, 90.0, 100.0))], image_size=(160, 120))
    drawn = DetectionTask().draw(frame.copy(), result)
    assert drawn.shape == frame.shape and tuple(drawn[60, 90]) == class_color(16)  # the box's right edge
    assert tuple(drawn[110, 150]) == (200, 200, 200)


def test_save_refuses_other_formats_and_tensor_inputs(tmp_path, capsys):
    values, _ = designed_case(640, 640)
    model = designed_detector(tmp_path / "designed.onnx", values)
    image = save_png(tmp_path / "image.png", photo(640, 640))
    invoke(capsys, "run", "yolo11n", image, "--model", model, "--save", tmp_path / "a.gif").assert_user_error(
        "--save", ".jpg or .png"
    )
    assert not (tmp_path / "a.gif").exists()
    before = image.read_bytes()
    invoke(capsys, "run", "yolo11n", image, "--model", model, "--save", image).assert_user_error("is the input file")
    assert image.read_bytes() == before
    assert invoke(capsys, "preprocess", "yolo11n", "-i", image, "-o", tmp_path / "t.npy").code == 0
    invoke(
        capsys, "run", "yolo11n", tmp_path / "t.npy", "--model", model, "--save", tmp_path / "t.png"
    ).assert_user_error("preprocessed tensor")


def test_a_preprocessed_tensor_gives_boxes_in_model_input_pixels(tmp_path, capsys):
    values, _ = designed_case(640, 272)
    model = designed_detector(tmp_path / "designed.onnx", values)
    image = save_png(tmp_path / "image.png", photo(272, 640))
    assert invoke(capsys, "preprocess", "yolo11n", "-i", image, "-o", tmp_path / "t.npy").code == 0
    data = run_json(capsys, tmp_path / "t.npy", "--model", model)
    assert data["detections"][0]["box"] == [20.0, 214.0, 120.0, 314.0]  # A, 184 rows lower: the letterbox's pixels
    assert any("model input's pixels" in w for w in data["warnings"])


# -- the exported ONNX: import, checks, and the way to get one ------------------------------------------------


def cached_files(model: str) -> list:
    folder = Path(os.environ["ZOO_HOME"]) / "models" / model
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_without_a_model_file_zoo_says_how_to_export_one(tmp_path, capsys):
    image = save_png(tmp_path / "image.png", photo(100, 100))
    line = invoke(capsys, "run", "yolo11n", image).assert_user_error(
        "yolo export model=yolo11n.pt format=onnx", "zoo fetch yolo11n --onnx yolo11n.onnx", "--model yolo11n.onnx"
    )
    assert "pickled" in line
    invoke(capsys, "fetch", "yolo11n").assert_user_error("yolo export model=yolo11n.pt format=onnx")
    invoke(capsys, "export", "yolo11n").assert_user_error("yolo export model=yolo11n.pt format=onnx")


def test_fetch_onnx_imports_the_export_and_run_uses_it(tmp_path, capsys):
    import hashlib

    values, expected = designed_case(640, 272)
    exported = designed_detector(tmp_path / "yolo11n.onnx", values)
    image = save_png(tmp_path / "image.png", photo(272, 640))

    fetched = invoke(capsys, "fetch", "yolo11n", "--onnx", exported, "--json")
    assert fetched.code == 0, fetched.err
    record = json.loads(fetched.out)
    sha256 = hashlib.sha256(exported.read_bytes()).hexdigest()
    assert record["status"] == "imported" and record["sha256"] == sha256 and record["artifact"] == "onnx"
    assert record["official"] is False and Path(record["path"]).read_bytes() == exported.read_bytes()
    manifest = json.loads((Path(record["path"]).parent / "manifest.json").read_text())
    assert manifest["sha256"] == sha256

    exported.unlink()  # the cached copy is what runs
    data = run_json(capsys, image)
    assert data["detections"] == expected and data["model_file"] == record["path"]

    text = invoke(capsys, "fetch", "yolo11n", "--onnx", tmp_path / "missing.onnx")
    text.assert_user_error("missing.onnx", "does not exist")


def test_fetch_onnx_is_for_models_zoo_does_not_convert(tmp_path, capsys):
    values, _ = designed_case(640, 640)
    exported = designed_detector(tmp_path / "yolo11n.onnx", values)
    invoke(capsys, "fetch", "resnet18", "--onnx", exported).assert_user_error("--model FILE.onnx", "--weights")
    invoke(capsys, "fetch", "yolo11n", "--onnx", exported, "--hbm").assert_user_error("--onnx")
    assert cached_files("resnet18") == [] and cached_files("yolo11n") == []


def _bad_exports(tmp_path) -> dict:
    """name -> (file, fragments its one error line names)."""
    values, _ = designed_case(640, 640)
    rows = np.zeros((1, 300, 6), np.float32)
    bad = {
        "nms": (
            designed_detector(tmp_path / "nms.onnx", rows),
            ["output0", "[1, 300, 6]", "nms=True", "[N, 84, 8400]"],
        ),
        "imgsz320": (
            designed_detector(
                tmp_path / "s320.onnx", np.zeros((1, 84, 2100), np.float32), input_shape=(1, 3, 320, 320)
            ),
            ["[1, 3, 320, 320]", "[N, 3, 640, 640]", "[1, 84, 2100]", "imgsz=640"],
        ),
        "transposed": (
            designed_detector(tmp_path / "t.onnx", values.transpose(0, 2, 1)),
            ["[1, 8400, 84]", "[N, 84, 8400]"],
        ),
        "names": (
            designed_detector(tmp_path / "n.onnx", values, input_name="input", output_name="boxes"),
            ["'input'", "'images'", "'boxes'", "'output0'"],
        ),
        "fp16": (designed_detector(tmp_path / "h.onnx", values, dtype=10), ["float16", "float32"]),
    }
    # an input without a shape was imported, then `zoo run` was an internal IndexError; without a type,
    # imported, then refused by onnxruntime on every run
    import onnx

    for name, edit in (("noshape", lambda t: t.ClearField("shape")), ("notype", lambda t: t.ClearField("elem_type"))):
        proto = onnx.load(str(designed_detector(tmp_path / f"{name}.onnx", values)))
        edit(proto.graph.input[0].type.tensor_type)
        onnx.save(proto, str(tmp_path / f"{name}.onnx"))
    bad["noshape"] = (tmp_path / "noshape.onnx", ["'images'", "declares no shape", "[N, 3, 640, 640]"])
    bad["notype"] = (tmp_path / "notype.onnx", ["'images'", "declares no tensor type", "float32"])
    (tmp_path / "junk.onnx").write_bytes(b"not a model at all")
    bad["junk"] = (tmp_path / "junk.onnx", ["junk.onnx", "not an ONNX model"])
    return bad


def test_a_bad_onnx_is_one_error_line_naming_the_mismatch_and_nothing_is_cached(tmp_path, capsys):
    image = save_png(tmp_path / "image.png", photo(64, 64))
    for name, (path, fragments) in _bad_exports(tmp_path).items():
        line = invoke(capsys, "fetch", "yolo11n", "--onnx", path).assert_user_error(*fragments)
        assert "yolo export model=yolo11n.pt format=onnx" in line or name == "junk", line
        assert cached_files("yolo11n") == [], name
        if name != "junk":  # --model gets the same check before anything runs
            invoke(capsys, "run", "yolo11n", image, "--model", path).assert_user_error(*fragments)


def test_force_runs_an_onnx_whose_input_declares_no_shape(tmp_path, capsys):
    """--force runs a shapeless-input file as it is: it was an internal IndexError in the backend."""
    import onnx

    values, expected = designed_case(640, 640)
    proto = onnx.load(str(designed_detector(tmp_path / "d.onnx", values)))
    proto.graph.input[0].type.tensor_type.ClearField("shape")
    onnx.save(proto, str(tmp_path / "noshape.onnx"))
    image = save_png(tmp_path / "image.png", photo(640, 640))
    result = invoke(capsys, "run", "yolo11n", image, "--model", tmp_path / "noshape.onnx", "--force", "--json")
    assert result.code == 0, result.err
    assert [d["score"] for d in json.loads(result.out)["detections"]] == [0.9, 0.85, 0.6, 0.26]


def test_the_model_passes_the_checks_every_plugin_runs(tmp_path):
    from modelzoo.testing import check_model

    ran = check_model("yolo11n", tmp_path)
    assert {"spec_is_valid", "synthetic_input_preprocesses", "runs_end_to_end", "board_config"} <= set(ran)


def test_a_detector_spec_is_checked_when_it_registers():
    from dataclasses import replace

    from modelzoo.core.tasks.detection import DetectionTask

    spec = modelzoo.get_model("yolo11n").spec
    task = DetectionTask()
    assert task.spec_problems(spec) == []
    assert task.spec_problems(replace(spec, preprocessing=DetectionPreprocessing(size=(320, 320))))
    assert "labels_file" in task.spec_problems(replace(spec, labels_file=""))[0]
