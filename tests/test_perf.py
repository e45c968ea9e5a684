"""`zoo perf`: hrt_model_exec-style rows (threads, frames, total/average latency, FPS) with any backend."""

from __future__ import annotations

import json
import sys

import pytest
from onnx_models import FAKES, tiny_video_classifier, zoo_onnx
from zoo_cli import invoke


def check_rows(rows, threads, frames):
    assert [r["threads"] for r in rows] == threads
    for row in rows:
        assert row["frames"] == frames  # the threads' frames add up to --frames
        assert row["avg_latency_ms"] > 0
        # (JSON values are rounded to 3 decimals, which matters for a model that takes 1 ms)
        assert row["total_latency_ms"] == pytest.approx(row["avg_latency_ms"] * frames, rel=1e-3, abs=frames * 1e-3)
        assert row["fps"] == pytest.approx(frames / (row["wall_ms"] / 1000), rel=5e-3)
        # threads run concurrently: wall time is at most the sum of latencies, at least one frame's
        assert row["avg_latency_ms"] * 0.9 <= row["wall_ms"] <= row["total_latency_ms"] * 1.1 + 50


def test_perf_full_r3d18_on_onnxruntime(capsys, reference_model, tmp_path):
    model = zoo_onnx(reference_model("r3d_18"), tmp_path / "r3d_18.onnx")
    result = invoke(capsys, "perf", "r3d_18", "--model", model, "--threads", "1,2", "--frames", "4", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert "onnxruntime" in data["backend"] and data["input_shape"] == [1, 3, 16, 112, 112]
    check_rows(data["rows"], [1, 2], 4)
    one = data["rows"][0]
    # one thread is sequential: FPS is 1000 / average latency, as in the board tool's table
    assert one["fps"] == pytest.approx(1000 / one["avg_latency_ms"], rel=0.25)
    assert data["rows"][1]["fps"] == pytest.approx(2 * 1000 / data["rows"][1]["avg_latency_ms"], rel=0.5)

    published = data["published"]
    assert [(p["threads"], p["avg_latency_ms"], p["fps"]) for p in published] == [
        (1, 182.68, 5.47),
        (2, 182.93, 10.82),
        (4, 185.03, 21.07),
        (8, 249.19, 30.74),
    ]
    assert all(p["published"] and p["device"] == "RDK S100" for p in published)


def test_perf_table(capsys, tmp_path):
    model = tiny_video_classifier(tmp_path / "tiny.onnx")
    result = invoke(capsys, "perf", "r3d_18", "--model", model, "--threads", "1,2,3", "--frames", "6")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    header = next(line for line in lines if line.startswith("threads"))
    for column in ("total frames", "total latency ms", "average latency ms", "FPS"):
        assert column in header
    rows = [line.split() for line in lines[lines.index(header) + 2 :][:3]]
    assert [(r[0], r[1]) for r in rows] == [("1", "6"), ("2", "6"), ("3", "6")]
    assert "published RDK S100" in result.out and "not measured here" in result.out
    assert "182.68" in result.out


def test_perf_with_the_hbm_backend(capsys, monkeypatch, tmp_path):
    monkeypatch.delitem(sys.modules, "hbm_runtime", raising=False)
    monkeypatch.syspath_prepend(str(FAKES))
    import hbm_runtime

    assert hbm_runtime.FAKE
    tiny = tiny_video_classifier(tmp_path / "tiny.onnx")
    hbm = hbm_runtime.write_fake_hbm(tmp_path / "tiny.hbm", tiny.name)
    try:
        result = invoke(
            capsys, "perf", "r3d_18", "--model", hbm, "--threads", "1,2", "--frames", "4", "--json", "--priority", "5"
        )
    finally:
        sys.modules.pop("hbm_runtime", None)
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert "hbm_runtime" in data["backend"]
    check_rows(data["rows"], [1, 2], 4)


def test_bad_thread_list(capsys):
    result = invoke(capsys, "perf", "r3d_18", "--threads", "1,x")
    result.assert_user_error("thread counts")
    invoke(capsys, "perf", "r3d_18", "--threads", "0").assert_user_error("thread counts")
