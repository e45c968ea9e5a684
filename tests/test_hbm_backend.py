"""The hbm backend against a FAKE hbm_runtime (tests/fakes/hbm_runtime).

The fake is written from the public interface (docs/board.md) and shares no code with zoo or onnxruntime.
Its models are a tiny numpy computation: each channel's mean per cell of a grid over (H, W), times a weight
matrix, plus a bias; NV12 models first turn Y/UV back into RGB (BT.601 limited range) and normalize as
hb_compile's data_mean_and_scale does. The tests below recompute the expected answer themselves, from the
weights stored in the fake .hbm and the tensor zoo preprocesses, so a wrong feed, a missed dequantization
or a mangled NV12 conversion in zoo makes them fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from onnx_models import FAKES
from videos import write_video
from zoo_cli import invoke

import modelzoo
from modelzoo.core.backends.backend import choose_backend
from modelzoo.core.backends.hbm_backend import HbmBackend
from modelzoo.core.backends.onnxruntime_backend import OnnxRuntimeBackend
from modelzoo.core.errors import BackendError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@pytest.fixture
def no_runtime(monkeypatch):
    """hbm_runtime not importable, even if some real one were installed."""
    monkeypatch.setitem(sys.modules, "hbm_runtime", None)


@pytest.fixture
def fake_runtime(monkeypatch):
    monkeypatch.delitem(sys.modules, "hbm_runtime", raising=False)
    monkeypatch.syspath_prepend(str(FAKES))
    import hbm_runtime

    assert hbm_runtime.FAKE  # never exercise a real board package by accident
    assert hbm_runtime.RUNTIMES == []  # a fresh import: the runtimes a test sees are its own
    yield hbm_runtime
    sys.modules.pop("hbm_runtime", None)


@pytest.fixture
def video(tmp_path):
    return write_video(tmp_path / "archery.avi", 40, 30, size=(200, 150))


@pytest.fixture
def smooth_image(tmp_path):
    """A PNG whose colours change slowly (about a level per pixel), with a different hue in each
    quadrant: chroma subsampling barely changes it, a swapped U/V or a transposed plane changes a lot."""
    from PIL import Image

    height, width = 288, 320
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    red = 40 + 180 * xx / width
    green = 220 - 180 * yy / height
    blue = 128 + 80 * np.sin(np.pi * (xx - yy) / width)
    rgb = np.clip(np.rint(np.stack([red, green, blue], axis=-1)), 0, 255).astype(np.uint8)
    path = tmp_path / "smooth.png"
    Image.fromarray(rgb).save(path)
    return path


# --- the expected answers, computed here (not by the fake, not by zoo) --------------------------------


def hbm_doc(hbm, index: int = 0) -> dict:
    return json.loads(Path(hbm).read_text(encoding="utf-8"))["models"][index]


def grid_features(x, grid: int):
    """[N, C, ..., H, W] -> [N, C * grid * grid]: per channel, the mean of each grid cell over (H, W) and
    every other axis but N and C, cells in row-major order."""
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape[0], x.shape[1], x.shape[-2], x.shape[-1]
    cell_h, cell_w = h // grid, w // grid
    features = np.empty((n, c, grid, grid))
    for row in range(grid):
        for col in range(grid):
            cell = x[..., row * cell_h : (row + 1) * cell_h, col * cell_w : (col + 1) * cell_w]
            features[:, :, row, col] = cell.reshape(n, c, -1).mean(axis=-1)
    return features.reshape(n, -1)


def model_logits(hbm, x, index: int = 0):
    """The fake model's logits for its (float) input x, from the weights stored in the .hbm."""
    compute = hbm_doc(hbm, index)["compute"]
    return grid_features(x, compute["grid"]) @ np.asarray(compute["weight"]) + np.asarray(compute["bias"])


def top_k(logits, k: int = 5) -> list:
    """[(class id, probability)]: softmax per row, averaged over rows (clips), best first."""
    z = np.asarray(logits, np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p = (p / p.sum(axis=1, keepdims=True)).mean(axis=0)
    return [(int(i), float(p[i])) for i in np.argsort(-p, kind="stable")[:k]]


def assert_predictions(data: dict, expected: list, labels: list, atol: float = 1e-6) -> None:
    got = [(p["class_id"], p["score"]) for p in data["predictions"]]
    assert [c for c, _ in got] == [c for c, _ in expected], (got, expected)
    np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=0, atol=atol)
    assert [p["label"] for p in data["predictions"]] == [labels[c] for c, _ in expected]


def bt601_nv12(rgb):
    """uint8 RGB [H, W, 3] -> float (Y [H, W, 1], UV [H/2, W/2, 2]): BT.601 limited range from the standard
    (Y = 16 + 219 E'y, Cb = 128 + 224 (E'b - E'y) / 1.772, Cr = 128 + 224 (E'r - E'y) / 1.402), chroma averaged
    over each 2x2 block, unrounded."""
    e = np.asarray(rgb, np.float64) / 255.0
    luma = 0.299 * e[..., 0] + 0.587 * e[..., 1] + 0.114 * e[..., 2]
    cb = 128 + 224 * (e[..., 2] - luma) / 1.772
    cr = 128 + 224 * (e[..., 0] - luma) / 1.402
    h, w = luma.shape

    def block_mean(plane):
        return plane.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    return (16 + 219 * luma)[..., None], np.stack([block_mean(cb), block_mean(cr)], axis=-1)


def representable(value: float) -> float:
    """A float32 value, so the scale zoo reads back from the fake equals the one used here."""
    return float(np.float32(value))


# --- the fake itself: independent and as strict as the documented interface -------------------------


def test_the_fake_runtime_uses_neither_zoo_nor_onnxruntime(tmp_path):
    """The issue: a fake that runs onnxruntime (or zoo) underneath makes 'the board agrees' true by construction."""
    script = textwrap.dedent(
        f"""
        import json
        import sys
        sys.path.insert(0, {str(FAKES)!r})
        import numpy as np
        import hbm_runtime as rt

        path = rt.write_fake_hbm({str(tmp_path / "both.hbm")!r}, models=[rt.featuremap_model(), rt.nv12_model()])
        runtime = rt.HB_HBMRuntime(str(path))
        runtime.run(np.zeros((1, 3, 16, 112, 112), np.float32), model_name="r3d_18")
        y, uv = np.zeros((1, 224, 224, 1), np.uint8), np.zeros((1, 112, 112, 2), np.uint8)
        runtime.run({{"resnet18_224x224_nv12": {{"data_y": y, "data_uv": uv}}}})
        candidate = {{"level": 0, "row": 1, "col": 2, "ltrb": [1.5, 2.0, 0.25, 3.0]}}
        for layout in ("split", "anchor_free"):
            model = rt.detector_model(layout=layout, candidates=[candidate], size=(64, 64))
            detector = rt.HB_HBMRuntime(str(rt.write_fake_hbm({str(tmp_path)!r} + "/d.hbm", models=[model])))
            y, uv = np.zeros((1, 64, 64, 1), np.uint8), np.zeros((1, 32, 32, 2), np.uint8)
            detector.run({{"images_y": y, "images_uv": uv}})
        print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}})))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert not loaded & {"modelzoo", "core", "models", "onnxruntime", "onnx", "cv2", "torch", "PIL"}, loaded


def test_the_fake_runtime_keeps_the_documented_contract(fake_runtime, tmp_path):
    rt = fake_runtime
    runtime = rt.HB_HBMRuntime(str(rt.write_fake_hbm(tmp_path / "m.hbm")))
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 112, 112), dtype=np.float32)

    # metadata keyed by model name, then tensor name; dtypes are enums with a .name
    assert runtime.model_names == ["r3d_18"] and runtime.input_names == {"r3d_18": ["video"]}
    assert runtime.input_shapes["r3d_18"]["video"] == [1, 3, 16, 112, 112]
    assert runtime.input_dtypes["r3d_18"]["video"].name == "F32"
    assert runtime.output_quants["r3d_18"]["scores"].quant_type.name == "NONE"

    # three input forms, one nested answer
    answers = [runtime.run(x), runtime.run({"video": x}), runtime.run({"r3d_18": {"video": x}})]
    for answer in answers:
        assert list(answer) == ["r3d_18"] and list(answer["r3d_18"]) == ["scores"]
        np.testing.assert_array_equal(answer["r3d_18"]["scores"], answers[0]["r3d_18"]["scores"])
    assert answers[0]["r3d_18"]["scores"].dtype == np.float32

    # a wrong shape or dtype is a ValueError
    with pytest.raises(ValueError, match="shape"):
        runtime.run(x[:, :, :8])
    with pytest.raises(ValueError, match="F32"):
        runtime.run(x.astype(np.float64))

    # scheduling takes dicts keyed by model name: bare values are refused, on run() and as defaults
    for bare in ({"priority": 5}, {"bpu_cores": [0]}, {"bpu_cores": 0}, {"custom_id": 1}, {"device_id": 0}):
        with pytest.raises(TypeError, match="dict keyed by model name"):
            runtime.run(x, **bare)
        with pytest.raises(TypeError, match="dict keyed by model name"):
            runtime.set_scheduling_params(**bare)
    for wrong in ({"priority": {"resnet18": 5}}, {"priority": {"r3d_18": 256}}, {"bpu_cores": {"r3d_18": [1]}}):
        with pytest.raises(ValueError):
            runtime.set_scheduling_params(**wrong)
    with pytest.raises(TypeError):
        runtime.set_scheduling_params(bpu_cores={"r3d_18": 0})
    assert runtime.scheduling_calls == []  # nothing refused was stored

    runtime.set_scheduling_params(priority={"r3d_18": 5}, bpu_cores={"r3d_18": [0]})
    params = runtime.sched_params["r3d_18"]
    assert (params.priority, params.bpu_cores, params.customId, params.deviceId) == (5, [0], 0, 0)
    runtime.run(x, priority={"r3d_18": 50})  # a run-local override
    assert runtime.calls[-1]["sched"].priority == 50 and runtime.sched_params["r3d_18"].priority == 5

    # version: a read-only str attribute, on the class as the docs show it, and on instances
    assert isinstance(rt.HB_HBMRuntime.version, str) and runtime.version == rt.HB_HBMRuntime.version
    with pytest.raises(AttributeError):
        runtime.version = "1.0"
    with pytest.raises(AttributeError):
        rt.HB_HBMRuntime.version = "1.0"

    # several models: model_name picks one, and is required for a bare array
    two = rt.write_fake_hbm(tmp_path / "two.hbm", models=[rt.featuremap_model("a"), rt.featuremap_model("b", seed=1)])
    both = rt.HB_HBMRuntime(str(two))
    with pytest.raises(ValueError, match="model_name"):
        both.run(x)
    assert list(both.run(x, model_name="b")) == ["b"]
    with pytest.raises(TypeError):  # the documented constructor takes str or List[str]
        rt.HB_HBMRuntime(two)
    with pytest.raises(RuntimeError, match="not a \\(fake\\) hbm"):
        rt.HB_HBMRuntime(str(tmp_path / "missing.hbm"))


# --- zoo run on the featuremap model -----------------------------------------------------------------


def test_run_gives_the_top5_of_the_model_on_the_preprocessed_clips(capsys, fake_runtime, video, tmp_path):
    hbm = fake_runtime.write_fake_hbm(tmp_path / "r3d_18.hbm", grid=2, seed=1)
    tensor = tmp_path / "clips.npy"
    prepared = invoke(capsys, "preprocess", "r3d_18", "-i", video, "-o", tensor, "--clips", "2")
    assert prepared.code == 0, prepared.err
    x = np.load(tensor)
    assert x.shape == (2, 3, 16, 112, 112) and x.dtype == np.float32

    # no --backend: auto picks hbm for a .hbm once hbm_runtime imports
    result = invoke(capsys, "run", "r3d_18", video, "--model", hbm, "--clips", "2", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["backend"].startswith("hbm_runtime") and data["clips"] == 2

    expected = top_k(model_logits(hbm, x))
    assert expected[0][1] > 2 * expected[4][1]  # a spread answer, not a near tie
    assert_predictions(data, expected, modelzoo.get_model("r3d_18").spec.labels)

    # one call per clip, each a [1, 3, 16, 112, 112] float32 row of the preprocessed tensor
    (runtime,) = fake_runtime.RUNTIMES
    assert [call["inputs"] for call in runtime.calls] == [{"video": ((1, 3, 16, 112, 112), "float32")}] * 2
    np.testing.assert_array_equal(runtime.last_inputs["r3d_18"]["video"], x[1:2])


def test_names_and_result_come_from_the_runtime_metadata(fake_runtime, tmp_path):
    model = fake_runtime.featuremap_model(
        "r3d_18_v2", input_name="physical_input", output_name="scores_out", extra_outputs=("pooled",), seed=4
    )
    hbm = fake_runtime.write_fake_hbm(tmp_path / "m.hbm", models=[model])
    backend = HbmBackend(hbm)
    assert (backend.model_name, backend.input_name, backend.output_name) == (
        "r3d_18_v2",
        "physical_input",
        "scores_out",
    )
    assert backend.input_shape == (1, 3, 16, 112, 112)
    x = np.random.default_rng(5).standard_normal((3, 3, 16, 112, 112), dtype=np.float32)
    logits = backend.run(x)  # the board model takes one clip per call: three calls, one [3, 400] answer
    assert logits.shape == (3, 400) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, model_logits(hbm, x), rtol=1e-5, atol=1e-5)  # the first output, not "pooled"
    assert len(backend.runtime.calls) == 3


def test_s8_output_is_dequantized(capsys, fake_runtime, video, tmp_path):
    x = modelzoo.preprocess("r3d_18", video)
    logits = model_logits(fake_runtime.write_fake_hbm(tmp_path / "float.hbm", seed=2), x)
    scale, zero_point = representable(np.abs(logits).max() / 100), 3  # fits int8 without clipping
    hbm = fake_runtime.write_fake_hbm(tmp_path / "s8.hbm", seed=2, output_dtype="S8", scale=[scale], zero_point=[3])
    expected = (np.clip(np.rint(logits / scale) + zero_point, -128, 127) - zero_point) * scale

    backend = HbmBackend(hbm)
    raw = backend.runtime.run(x)["r3d_18"]["scores"]
    assert raw.dtype == np.int8  # what the board hands back
    got = backend.run(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert np.abs(got - logits).max() <= scale / 2 + 1e-5  # within half a quantization step

    result = invoke(capsys, "run", "r3d_18", video, "--model", hbm, "--json")
    assert result.code == 0, result.err
    assert_predictions(json.loads(result.out), top_k(expected), modelzoo.get_model("r3d_18").spec.labels)


def test_s32_per_channel_output_is_dequantized_along_its_axis(fake_runtime, video, tmp_path):
    x = modelzoo.preprocess("r3d_18", video)
    logits = model_logits(fake_runtime.write_fake_hbm(tmp_path / "float.hbm", seed=3), x)
    scales = np.linspace(1e-4, 3e-4, 400).astype(np.float32)
    zero_points = np.random.default_rng(6).integers(-50, 50, 400)
    hbm = fake_runtime.write_fake_hbm(
        tmp_path / "s32.hbm", seed=3, output_dtype="S32", scale=scales, zero_point=zero_points, axis=1
    )
    q = np.rint(logits / scales.astype(np.float64)) + zero_points
    expected = (q - zero_points) * scales.astype(np.float64)

    backend = HbmBackend(hbm)
    assert backend.runtime.run(x)["r3d_18"]["scores"].dtype == np.int32
    got = backend.run(x)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert np.all(np.abs(got - logits) <= scales / 2 + 1e-6)


# --- scheduling and version ---------------------------------------------------------------------------


def test_priority_and_bpu_cores_reach_the_runtime_keyed_by_its_model_name(capsys, fake_runtime, video, tmp_path):
    # the runtime's model name differs from zoo's: the keys must come from the runtime's metadata
    hbm = fake_runtime.write_fake_hbm(tmp_path / "s.hbm", name="r3d_18_nashe")
    plain = invoke(capsys, "run", "r3d_18", video, "--model", hbm, "--json")
    assert plain.code == 0, plain.err
    assert [(c["sched"].priority, c["sched"].bpu_cores) for c in fake_runtime.RUNTIMES[-1].calls] == [(0, [-1])]

    result = invoke(capsys, "run", "r3d_18", video, "--model", hbm, "--priority", "5", "--bpu-cores", "0", "--json")
    assert result.code == 0, result.err
    runtime = fake_runtime.RUNTIMES[-1]
    assert [(c["model"], c["sched"].priority, c["sched"].bpu_cores) for c in runtime.calls] == [
        ("r3d_18_nashe", 5, [0])
    ]
    # whichever way zoo hands them over (defaults or per call), they are dicts keyed by the model name
    given = runtime.scheduling_calls + [c["overrides"] for c in runtime.calls]
    assert {"priority": {"r3d_18_nashe": 5}, "bpu_cores": {"r3d_18_nashe": [0]}} in given
    assert json.loads(result.out)["predictions"] == json.loads(plain.out)["predictions"]

    # the S100 has one BPU core: the runtime's ValueError becomes one clear error line
    invoke(capsys, "run", "r3d_18", video, "--model", hbm, "--bpu-cores", "3").assert_user_error("bpu_cores")


def test_version_is_read_as_an_attribute(capsys, fake_runtime, video, tmp_path):
    hbm = fake_runtime.write_fake_hbm(tmp_path / "r3d_18.hbm")
    result = invoke(capsys, "run", "r3d_18", video, "--model", hbm, "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["backend"] == f"hbm_runtime {fake_runtime.VERSION} (r3d_18 on the BPU)"


# --- .hbm files zoo cannot run: one error line --------------------------------------------------------


def test_hbm_files_zoo_cannot_run_give_one_error_line(capsys, fake_runtime, video, tmp_path):
    rt = fake_runtime
    two = rt.write_fake_hbm(tmp_path / "two.hbm", models=[rt.featuremap_model("r3d_18"), rt.featuremap_model("b")])
    invoke(capsys, "run", "r3d_18", video, "--model", two).assert_user_error("2 models", "r3d_18, b")

    short = rt.write_fake_hbm(tmp_path / "short.hbm", input_shape=(1, 3, 8, 112, 112))
    invoke(capsys, "run", "r3d_18", video, "--model", short).assert_user_error(
        "expects input [1, 3, 8, 112, 112]", "got [1, 3, 16, 112, 112]"
    )

    quantized_input = rt.write_fake_hbm(tmp_path / "s8_input.hbm", input_dtype="S8")
    invoke(capsys, "run", "r3d_18", video, "--model", quantized_input).assert_user_error("S8 input", "featuremap")

    nv12 = rt.write_fake_hbm(tmp_path / "nv12.hbm", models=[rt.nv12_model(height=112, width=112)])
    invoke(capsys, "run", "r3d_18", video, "--model", nv12).assert_user_error("NV12", "r3d_18")

    # another model's scores: checked from the output shapes when the file loads, not after inference
    other = rt.write_fake_hbm(tmp_path / "other.hbm", classes=10, output_name="logits")
    invoke(capsys, "run", "r3d_18", video, "--model", other).assert_user_error(
        "other.hbm gives logits [1, 10]", "reads one output [1, 400]"
    )

    # a file declaring no outputs was an internal error (StopIteration); a dynamic or empty batch was
    # refused only after decoding, as if the preprocessing were wrong
    silent = rt.featuremap_model("r3d_18")
    silent["outputs"] = []
    silent = rt.write_fake_hbm(tmp_path / "silent.hbm", models=[silent])
    invoke(capsys, "run", "r3d_18", video, "--model", silent).assert_user_error("silent.hbm", "no outputs")
    for batch in (-1, 0):
        dynamic = rt.write_fake_hbm(tmp_path / f"batch{batch}.hbm", input_shape=(batch, 3, 16, 112, 112))
        invoke(capsys, "run", "r3d_18", video, "--model", dynamic).assert_user_error(
            f"[{batch}, 3, 16, 112, 112]", "fixed input shape"
        )

    assert all(not runtime.calls for runtime in rt.RUNTIMES)  # refused before any inference


# --- NV12: resnet18 compiled with input_type_rt nv12 --------------------------------------------------


def test_nv12_resnet18_feeds_y_and_uv_of_the_preprocessed_crop(capsys, fake_runtime, smooth_image, tmp_path):
    mean_value = [255 * m for m in IMAGENET_MEAN]  # hb_compile's data_mean_and_scale, as zoo's board_input
    scale_value = [1 / (255 * s) for s in IMAGENET_STD]
    # seed 2: for this image the top class leads by about 1 logit, the NV12 round trip moves logits by about 0.06
    model = fake_runtime.nv12_model(seed=2, mean_value=mean_value, scale_value=scale_value)
    hbm = fake_runtime.write_fake_hbm(tmp_path / "resnet18_224x224_nv12.hbm", models=[model])

    result = invoke(capsys, "run", "resnet18", smooth_image, "--model", hbm, "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["backend"].startswith("hbm_runtime")

    (runtime,) = fake_runtime.RUNTIMES
    (call,) = runtime.calls
    assert call["inputs"] == {"data_y": ((1, 224, 224, 1), "uint8"), "data_uv": ((1, 112, 112, 2), "uint8")}
    received = runtime.last_inputs["resnet18_224x224_nv12"]

    # the crop zoo preprocessed, un-normalized here, and its NV12 planes by the standard's formulas
    x = modelzoo.preprocess("resnet18", smooth_image)
    assert x.shape == (1, 3, 224, 224)
    crop = x[0].transpose(1, 2, 0) * np.asarray(IMAGENET_STD) + np.asarray(IMAGENET_MEAN)
    crop = np.clip(np.rint(crop * 255), 0, 255)
    y, uv = bt601_nv12(crop)
    assert np.abs(received["data_y"][0] - y).max() <= 2  # within a couple of levels (rounding, subsampling)
    assert np.abs(received["data_uv"][0] - uv).max() <= 2

    # zoo reports what the board model answered for those planes ...
    board = runtime.run({"data_y": received["data_y"], "data_uv": received["data_uv"]})
    board_logits = board["resnet18_224x224_nv12"]["output"]
    assert_predictions(data, top_k(board_logits), modelzoo.get_model("resnet18").spec.labels)
    # ... which is, up to the NV12 round trip, the model on the crop itself (normalized as the model does)
    rgb = (crop.transpose(2, 0, 1)[None] - np.reshape(mean_value, (1, 3, 1, 1))) * np.reshape(scale_value, (1, 3, 1, 1))
    logits = model_logits(hbm, rgb)
    assert np.abs(board_logits - logits).max() < 0.2
    expected = top_k(logits)
    assert data["predictions"][0]["class_id"] == expected[0][0]
    assert abs(data["predictions"][0]["score"] - expected[0][1]) < 0.02


# --- choosing the backend -----------------------------------------------------------------------------


def test_explicit_hbm_without_runtime_names_the_board_package(capsys, no_runtime, video, tmp_path):
    hbm = tmp_path / "r3d_18.hbm"
    hbm.write_bytes(b"\0" * 16)
    line = invoke(capsys, "run", "r3d_18", "-i", video, "--model", hbm, "--backend", "hbm").assert_user_error(
        "hbm_runtime", "RDK S100 system image"
    )
    assert "backend 'hbm'" in line
    # --backend auto with a .hbm says the same, rather than "no backend"
    invoke(capsys, "run", "r3d_18", "-i", video, "--model", hbm).assert_user_error(
        "hbm_runtime", "RDK S100 system image"
    )


def test_runtime_error_at_import_means_no_board(monkeypatch, fake_runtime):
    sys.modules.pop("hbm_runtime", None)
    monkeypatch.setenv("FAKE_HBM_RUNTIME_IMPORT_ERROR", "1")
    assert HbmBackend.is_available()  # the package is there ...
    assert not HbmBackend.can_load()  # ... but unusable: libhbucp.so is missing
    assert "cannot load the board libraries" in HbmBackend.unavailable_message()
    with pytest.raises(BackendError, match="RDK S100 system image"):
        HbmBackend("x.hbm")


class _Spec:
    name = "r3d_18"
    spec = modelzoo.get_model("r3d_18").spec


def test_auto_prefers_hbm_for_a_cached_prebuilt_model(monkeypatch, fake_runtime, tmp_path):
    from modelzoo.core.artifacts.cache import ArtifactCache, sha256_file

    backends = {"onnxruntime": OnnxRuntimeBackend, "hbm": HbmBackend}
    cache = ArtifactCache(tmp_path / "cache")
    assert choose_backend(_Spec, "auto", None, backends, cache) is OnnxRuntimeBackend  # nothing fetched yet

    source = fake_runtime.write_fake_hbm(tmp_path / "r3d_18.hbm")
    cache.add_file(
        "r3d_18",
        "hbm",
        source,
        "https://example.invalid/r3d_18.hbm",
        sha256_file(source),
        verified=False,
        official=True,
    )
    assert HbmBackend.default_model(_Spec, cache).name == "r3d_18.hbm"
    assert choose_backend(_Spec, "auto", None, backends, cache) is HbmBackend
    assert choose_backend(_Spec, "auto", tmp_path / "x.hbm", backends, cache) is HbmBackend
    assert choose_backend(_Spec, "auto", tmp_path / "x.onnx", backends, cache) is OnnxRuntimeBackend

    sys.modules.pop("hbm_runtime", None)
    monkeypatch.setenv("FAKE_HBM_RUNTIME_IMPORT_ERROR", "1")  # same machine, board libraries gone
    assert choose_backend(_Spec, "auto", None, backends, cache) is OnnxRuntimeBackend


def test_run_uses_the_fetched_hbm_without_model_option(capsys, fake_runtime, video, tmp_path):
    from modelzoo.core.artifacts.cache import ArtifactCache, sha256_file
    from modelzoo.core.config import load_config

    source = fake_runtime.write_fake_hbm(tmp_path / "r3d_18.hbm", seed=7)
    cache = ArtifactCache(load_config().cache_root())
    cached = cache.add_file(
        "r3d_18",
        "hbm",
        source,
        "https://example.invalid/r3d_18.hbm",
        sha256_file(source),
        verified=False,
        official=True,
    )
    result = invoke(capsys, "run", "r3d_18", "-i", video, "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert "hbm_runtime" in data["backend"] and data["model_file"] == str(cached.path)
    expected = top_k(model_logits(source, modelzoo.preprocess("r3d_18", video)))
    assert_predictions(data, expected, modelzoo.get_model("r3d_18").spec.labels)


def test_a_4d_score_output_squeezes_to_the_classes(capsys, fake_runtime, video, tmp_path):
    model = fake_runtime.featuremap_model(seed=8)
    model["outputs"][0]["shape"] = [1, 400, 1, 1]  # NCHW scores, as BPU models often emit them
    hbm = fake_runtime.write_fake_hbm(tmp_path / "r3d_18_4d.hbm", models=[model])
    result = invoke(capsys, "run", "r3d_18", video, "--model", hbm, "--json")
    assert result.code == 0, result.err
    expected = top_k(model_logits(hbm, modelzoo.preprocess("r3d_18", video)))
    assert_predictions(json.loads(result.out), expected, modelzoo.get_model("r3d_18").spec.labels)
