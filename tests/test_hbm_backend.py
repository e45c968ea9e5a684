"""The hbm backend against a FAKE hbm_runtime (tests/fakes/hbm_runtime) that implements the documented interface."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnxruntime as ort
import pytest
from onnx_models import FAKES, tiny_video_classifier
from videos import write_video
from zoo_cli import invoke

from modelzoo.core.backends.backend import choose_backend
from modelzoo.core.backends.hbm_backend import HbmBackend
from modelzoo.core.backends.onnxruntime_backend import OnnxRuntimeBackend
from modelzoo.core.errors import BackendError


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
    yield hbm_runtime
    sys.modules.pop("hbm_runtime", None)


@pytest.fixture
def tiny(tmp_path):
    return tiny_video_classifier(tmp_path / "tiny.onnx")


@pytest.fixture
def video(tmp_path):
    return write_video(tmp_path / "archery.avi", 40, 30, size=(200, 150))


def ort_logits(onnx_path, x):
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return session.run(None, {"video": x})[0]


def clip(seed=0, n=1):
    return np.random.default_rng(seed).standard_normal((n, 3, 16, 112, 112), dtype=np.float32)


def test_top5_equals_onnxruntime(capsys, fake_runtime, tiny, video, tmp_path):
    hbm = fake_runtime.write_fake_hbm(tmp_path / "tiny.hbm", tiny.name)
    board = invoke(capsys, "run", "r3d_18", "-i", video, "--model", hbm, "--backend", "hbm", "--json", "--clips", "2")
    host = invoke(
        capsys, "run", "r3d_18", "-i", video, "--model", tiny, "--backend", "onnxruntime", "--json", "--clips", "2"
    )
    assert board.code == 0 and host.code == 0, board.err + host.err
    board, host = json.loads(board.out), json.loads(host.out)
    assert "hbm_runtime" in board["backend"] and "onnxruntime" in host["backend"]
    assert [p["class_id"] for p in board["predictions"]] == [p["class_id"] for p in host["predictions"]]
    for b, h in zip(board["predictions"], host["predictions"]):
        assert b["label"] == h["label"] and abs(b["score"] - h["score"]) < 1e-6


def test_names_come_from_runtime_metadata(fake_runtime, tiny, tmp_path):
    hbm = fake_runtime.write_fake_hbm(
        tmp_path / "m.hbm", tiny.name, model_name="r3d_18_v2", input_name="physical_input", output_name="scores_out"
    )
    backend = HbmBackend(hbm)
    assert (backend.model_name, backend.input_name, backend.output_name) == (
        "r3d_18_v2",
        "physical_input",
        "scores_out",
    )
    assert backend.input_shape == (1, 3, 16, 112, 112)
    x = clip(n=3)  # the board model takes one clip per call: three calls, one [3, 400] answer
    np.testing.assert_array_equal(backend.run(x), ort_logits(tiny, x))
    assert len(backend.runtime.calls) == 3


def test_s8_scale_outputs_are_dequantized(fake_runtime, tiny, tmp_path):
    x = clip(1)
    expected = ort_logits(tiny, x)
    scale, zero_point = float(np.abs(expected).max()) / 100, 3  # the logits fit in int8 without clipping
    hbm = fake_runtime.write_fake_hbm(
        tmp_path / "q.hbm", tiny.name, output_dtype="S8", scale=[scale], zero_point=[zero_point]
    )
    backend = HbmBackend(hbm)
    raw = backend.runtime.run(x)[backend.model_name][backend.output_name]
    assert raw.dtype == np.int8  # what the board hands back
    logits = backend.run(x)
    assert logits.dtype == np.float32
    np.testing.assert_allclose(logits, (raw.astype(np.float32) - zero_point) * scale, rtol=0, atol=1e-6)
    assert np.max(np.abs(logits - expected)) <= scale / 2 + 1e-5  # within half a quantization step


def test_s32_per_channel_scale_along_axis(fake_runtime, tiny, tmp_path):
    x = clip(2)
    expected = ort_logits(tiny, x)
    scales = np.linspace(1e-5, 3e-5, 400).tolist()
    hbm = fake_runtime.write_fake_hbm(
        tmp_path / "q32.hbm", tiny.name, output_dtype="S32", scale=scales, zero_point=[0], axis=1
    )
    logits = HbmBackend(hbm).run(x)
    assert np.all(np.abs(logits - expected) <= np.asarray(scales) / 2 + 1e-6)
    assert np.argsort(-logits[0])[:5].tolist() == np.argsort(-expected[0])[:5].tolist()


def test_priority_and_bpu_cores_reach_the_runtime(capsys, fake_runtime, tiny, video, tmp_path):
    hbm = fake_runtime.write_fake_hbm(tmp_path / "tiny.hbm", tiny.name)
    backend = HbmBackend(hbm, priority=7, bpu_cores=[0])
    backend.run(clip())
    assert backend.runtime.calls[-1][1]["priority"] == 7 and backend.runtime.calls[-1][1]["bpu_cores"] == [0]

    ok = invoke(capsys, "run", "r3d_18", "-i", video, "--model", hbm, "--priority", "200", "--bpu-cores", "0")
    assert ok.code == 0, ok.err
    # the S100 has one BPU core: the runtime's ValueError becomes one clear error line
    invoke(capsys, "run", "r3d_18", "-i", video, "--model", hbm, "--bpu-cores", "3").assert_user_error("bpu_cores")


def test_wrong_input_shape_is_a_backend_error(fake_runtime, tiny, tmp_path):
    backend = HbmBackend(fake_runtime.write_fake_hbm(tmp_path / "tiny.hbm", tiny.name))
    with pytest.raises(BackendError, match=r"expects input \[1, 3, 16, 112, 112\]"):
        backend.run(np.zeros((1, 3, 8, 112, 112), np.float32))


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


def test_auto_prefers_hbm_for_a_cached_prebuilt_model(monkeypatch, fake_runtime, tiny, tmp_path):
    from modelzoo.core.artifacts.cache import ArtifactCache, sha256_file

    backends = {"onnxruntime": OnnxRuntimeBackend, "hbm": HbmBackend}
    cache = ArtifactCache(tmp_path / "cache")
    assert choose_backend(_Spec, "auto", None, backends, cache) is OnnxRuntimeBackend  # nothing fetched yet

    source = fake_runtime.write_fake_hbm(tmp_path / "r3d_18.hbm", str(tiny))  # absolute: the cache copies only the .hbm
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


def test_run_uses_the_fetched_hbm_without_model_option(capsys, fake_runtime, tiny, video, tmp_path):
    from modelzoo.core.artifacts.cache import ArtifactCache, sha256_file
    from modelzoo.core.config import load_config

    source = fake_runtime.write_fake_hbm(tmp_path / "r3d_18.hbm", str(tiny))
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
