"""resnet18 and the image-classification task: torchvision's preset and an independent torch ResNet-18."""

from __future__ import annotations

import json

import numpy as np
import pytest
from zoo_cli import invoke

import modelzoo

torch = pytest.importorskip("torch")
MEAN = np.array((0.485, 0.456, 0.406), np.float32)
STD = np.array((0.229, 0.224, 0.225), np.float32)


def photo(height: int = 375, width: int = 500, seed: int = 0) -> np.ndarray:
    """A smooth RGB image with edges, like a photo (random noise would make resampling differences look big)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([128 + 100 * np.sin(x / 17 + c) * np.cos(y / 23 - c) for c in range(3)], axis=-1)
    image[height // 3 : height // 2, width // 4 : width // 2] = rng.integers(0, 256, 3)
    return np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)


def torchvision_preset(image: np.ndarray) -> np.ndarray:
    """torchvision's ImageClassification(crop 224, resize 256, bilinear, antialias) written with torch:
    the uint8 crop before normalization, [224, 224, 3]."""
    height, width = image.shape[:2]
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(256 * long / short)
    size = (new_long, 256) if width <= height else (256, new_long)
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    resized = torch.nn.functional.interpolate(tensor, size=size, mode="bilinear", antialias=True, align_corners=False)
    resized = resized.round().clamp(0, 255)[0].permute(1, 2, 0).numpy()
    top, left = int(round((size[0] - 224) / 2.0)), int(round((size[1] - 224) / 2.0))
    return resized[top : top + 224, left : left + 224]


@pytest.mark.parametrize("shape", [(375, 500), (500, 375), (224, 224), (1080, 1920), (300, 301)])
def test_preprocessing_equals_torchvisions_preset(shape, tmp_path):
    image = photo(*shape)
    np.save(tmp_path / "image.npy", image)
    tensor = modelzoo.preprocess("resnet18", tmp_path / "image.npy")
    assert tensor.shape == (1, 3, 224, 224) and tensor.dtype == np.float32
    ours = tensor[0].transpose(1, 2, 0) * STD + MEAN  # back to [0, 1]
    expected = torchvision_preset(image) / 255.0
    levels = np.abs(ours - expected) * 255
    assert levels.max() <= 2.0 and levels.mean() <= 0.25, (levels.max(), levels.mean())


def test_probabilities_equal_an_independent_torch_resnet18(tmp_path, capsys):
    import reference_resnet

    reference = reference_resnet.make_model()
    checkpoint = tmp_path / "resnet18-random.pth"
    torch.save(reference.state_dict(), checkpoint)
    np.save(tmp_path / "image.npy", photo())
    tensor = modelzoo.preprocess("resnet18", tmp_path / "image.npy")
    with torch.no_grad():
        expected = torch.softmax(reference(torch.from_numpy(tensor)), dim=1)[0].numpy()

    result = invoke(
        capsys, "run", "resnet18", tmp_path / "image.npy", "--weights", checkpoint, "--top-k", "5", "--json"
    )
    assert result.code == 0, result.err
    data = json.loads(result.out)
    order = np.argsort(-expected, kind="stable")[:5]
    assert [p["class_id"] for p in data["predictions"]] == [int(i) for i in order]
    for p in data["predictions"]:
        assert abs(p["score"] - float(expected[p["class_id"]])) <= 1e-4
    assert "clips" not in data and data["model"] == "resnet18"
    labels = modelzoo.get_model("resnet18").spec.labels
    assert len(labels) == 1000 and labels[0] == "tench" and data["predictions"][0]["label"] == labels[int(order[0])]


def test_an_untrained_checkpoint_is_refused_not_run(tmp_path, capsys):
    # torchvision.models.resnet18() saved without weights=...: it would convert and print confident noise
    import reference_resnet

    checkpoint = tmp_path / "resnet18-untrained.pth"
    torch.save(reference_resnet.ResNet18().eval().state_dict(), checkpoint)
    np.save(tmp_path / "image.npy", photo())
    result = invoke(capsys, "run", "resnet18", tmp_path / "image.npy", "--weights", checkpoint, "--json")
    result.assert_user_error("not a resnet18 state dict", "untrained")
    assert result.out == ""  # no predictions printed
    listed = json.loads(invoke(capsys, "cache", "list", "--json").out)
    assert not [e for e in listed if e["model"] == "resnet18"]  # and the file is not kept as resnet18's weights


@pytest.mark.parametrize(
    "key, index, value, problem",
    [("layer4.1.bn2.running_var", 3, -2.0, "negative variances"), ("fc.weight", 0, float("nan"), "NaN or infinity")],
)
def test_a_checkpoint_that_would_give_nan_is_refused_naming_the_tensor(tmp_path, capsys, key, index, value, problem):
    # Either used to convert and print the first classes by index with a null score, exit 0.
    import reference_resnet

    state_dict = reference_resnet.make_model().state_dict()
    state_dict[key].view(-1)[index] = value
    torch.save(state_dict, tmp_path / "broken.pth")
    np.save(tmp_path / "image.npy", photo())
    result = invoke(capsys, "run", "resnet18", tmp_path / "image.npy", "--weights", tmp_path / "broken.pth", "--json")
    result.assert_user_error(f"'{key}' holds {problem}")
    assert result.out == ""


def _image_files(tmp_path) -> dict:
    import cv2

    rgb = photo(240, 320)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    files = {}
    for suffix in (".jpg", ".png", ".bmp", ".webp"):
        files[suffix] = tmp_path / f"photo{suffix}"
        assert cv2.imwrite(str(files[suffix]), bgr)
    files["gray.png"] = tmp_path / "gray.png"
    cv2.imwrite(str(files["gray.png"]), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    files["rgba.png"] = tmp_path / "rgba.png"
    cv2.imwrite(str(files["rgba.png"]), cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA))
    files["hwc.npy"] = tmp_path / "hwc.npy"
    np.save(files["hwc.npy"], rgb)
    files["nhwc.npy"] = tmp_path / "nhwc.npy"
    np.save(files["nhwc.npy"], rgb[None])
    return files


def test_zoo_run_takes_every_image_form(tmp_path, capsys):
    from modelzoo.testing import write_stand_in_onnx

    stand_in = write_stand_in_onnx(modelzoo.get_model("resnet18").spec, tmp_path / "stand_in.onnx")
    files = _image_files(tmp_path)
    results = {}
    for kind, path in files.items():
        result = invoke(capsys, "run", "resnet18", path, "--model", stand_in, "--json")
        assert result.code == 0, (kind, result.err)
        results[kind] = json.loads(result.out)["predictions"][0]["class_id"]
    # lossless forms of the same pixels give the same answer
    assert results["hwc.npy"] == results["nhwc.npy"] == results[".png"] == results[".bmp"] == results["rgba.png"]
    # a PNG that is really a .jpg, or an image without its suffix, is still an image
    renamed = tmp_path / "photo_without_suffix"
    renamed.write_bytes(files[".png"].read_bytes())
    assert invoke(capsys, "run", "resnet18", renamed, "--model", stand_in).code == 0


def test_a_video_to_an_image_model_and_an_image_to_a_video_model_are_user_errors(tmp_path, capsys):
    from videos import write_video

    video = write_video(tmp_path / "clip.mp4", 20, 25.0, codec="mp4v")
    files = _image_files(tmp_path)
    invoke(capsys, "run", "resnet18", video).assert_user_error("is a video", "resnet18 (image-classification)")
    invoke(capsys, "run", "r3d_18", files[".png"]).assert_user_error("still image", "r3d_18 (video-classification)")
    invoke(capsys, "run", "r3d_18", files["hwc.npy"]).assert_user_error("image", "r3d_18")
    invoke(capsys, "run", "resnet18", "--top-k", "3", "--clips", "2", files[".png"]).assert_user_error(
        "--clips does not apply to resnet18"
    )


def test_calib_takes_a_folder_of_images_and_writes_what_run_feeds(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    files = _image_files(folder)
    (folder / "notes.txt").write_text("not an image")
    result = invoke(capsys, "calib", "resnet18", "--input", folder, "-o", tmp_path / "calib", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    written = sorted((tmp_path / "calib").glob("*.npy"))
    assert data["samples"] == len(written) == len(files)
    sample = np.load(tmp_path / "calib" / "photo.npy")
    assert sample.shape == (1, 3, 224, 224) and sample.dtype == np.float32
    assert np.array_equal(sample, modelzoo.preprocess("resnet18", files[".png"]))


def test_compile_config_takes_nv12_as_the_published_s100_image_models(tmp_path, capsys):
    import yaml

    from modelzoo.testing import write_stand_in_onnx

    stand_in = write_stand_in_onnx(modelzoo.get_model("resnet18").spec, tmp_path / "stand_in.onnx")
    result = invoke(capsys, "compile", "resnet18", "--model", stand_in, "-o", tmp_path / "work", "--json")
    assert result.code == 0, result.err
    config = yaml.safe_load((tmp_path / "work" / "resnet18_nash-e.yaml").read_text())
    params = config["input_parameters"]
    assert params["input_type_rt"] == "nv12" and params["input_type_train"] == "rgb"
    assert params["input_layout_train"] == "NCHW" and "input_layout_rt" not in params
    assert params["norm_type"] == "data_mean_and_scale" and params["input_shape"] == "1x3x224x224"
    assert [float(v) for v in params["mean_value"].split()] == pytest.approx([123.675, 116.28, 103.53])
    assert [float(v) for v in params["scale_value"].split()] == pytest.approx([1 / 58.395, 1 / 57.12, 1 / 57.375])
