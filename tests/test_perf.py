"""`zoo perf`: hrt_model_exec-style rows (threads, frames, total/average latency, FPS) with any backend."""

from __future__ import annotations

import json
import sys
from pathlib import Path

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


@pytest.fixture
def recorded_loads(monkeypatch):
    """Every backend `zoo perf` loads, with its threads=; the host is made to have 2 cores."""
    from modelzoo.core import runner
    from modelzoo.core.backends import perf

    loads = []
    original = runner.load_backend

    def load_backend(backend_cls, model_file, model, cache, *, threads=None, **options):
        loads.append((backend_cls.name, threads))
        return original(backend_cls, model_file, model, cache, threads=threads, **options)

    monkeypatch.setattr(runner, "load_backend", load_backend)
    monkeypatch.setattr(perf, "host_cores", lambda: 2)
    return loads


def test_perf_with_the_hbm_backend(capsys, monkeypatch, tmp_path, recorded_loads):
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
    assert recorded_loads == [("hbm", None)]  # the BPU runs it: one load for every row, no host threads to split


def test_bad_thread_list(capsys):
    result = invoke(capsys, "perf", "r3d_18", "--threads", "1,x")
    result.assert_user_error("thread counts")
    invoke(capsys, "perf", "r3d_18", "--threads", "0").assert_user_error("thread counts")


def test_more_threads_than_frames_or_than_zoo_runs_is_refused_before_anything_loads(capsys, tmp_path):
    """`--threads 100000 --frames 1` made 100000 random inputs (4.9 MB each for a 640x640 detector) and
    ran for minutes; a thread without a frame measures nothing."""
    model = tiny_video_classifier(tmp_path / "tiny.onnx")
    invoke(capsys, "perf", "r3d_18", "--model", model, "--threads", "1,8", "--frames", "4").assert_user_error(
        "--threads 8", "--frames"
    )
    invoke(capsys, "perf", "r3d_18", "--model", model, "--threads", "100000", "--frames", "100000").assert_user_error(
        "100000", "at most"
    )


def test_measure_makes_a_few_inputs_and_one_thread_per_frame_at_most(monkeypatch):
    import threading

    from modelzoo.core.backends import perf

    made, seen = [], set()
    real = perf.random_clip
    monkeypatch.setattr(perf, "random_clip", lambda shape, seed: made.append(seed) or real(shape, seed))

    class Backend:
        def run(self, clip):
            seen.add(threading.current_thread().name)

    row = perf.measure(Backend(), ("N", 3, 4, 4), threads=64, frames=200)
    assert row.frames == 200 and row.threads == 64
    assert len(made) == perf.DISTINCT_INPUTS < 64
    made.clear()
    seen.clear()
    perf.measure(Backend(), ("N", 3, 4, 4), threads=50, frames=3)
    assert len(made) <= 3 and len(seen) <= 3


# -- threads on a host: a row's threads x onnxruntime's intra-op threads stay within the cores ------


class Recorder:
    """A stand-in backend factory: records the `threads=` of every load; run() logs to `events`."""

    def __init__(self, events=None):
        self.loads = []
        self.events = events if events is not None else []

    def __call__(self, threads):
        self.loads.append(threads)
        events = self.events

        class Loaded:
            def run(self, clip):
                events.append("run")

        return Loaded()


def test_row_backends_split_the_cores_between_a_rows_threads():
    from modelzoo.core.backends.perf import RowBackends

    factory = Recorder()
    loader = RowBackends(factory, cores=2)
    assert [loader.threads_for(n) for n in (1, 2, 3, 4, 8)] == [2, 1, 1, 1, 1]  # 1 thread uses every core
    first = loader(1)
    assert loader(1) is first and factory.loads == [2]  # reused while the number stays the same
    two = loader(2)
    assert two is not first and loader(4) is two and factory.loads == [2, 1]
    assert loader.loads == 2

    six = RowBackends(Recorder(), cores=6)
    assert [six.threads_for(n) for n in (1, 2, 4, 8)] == [6, 3, 1, 1]
    for workers in (1, 2, 4, 8):
        assert workers * six.threads_for(workers) <= 6 or six.threads_for(workers) == 1

    fixed = RowBackends(Recorder(), fixed=3, cores=2)  # zoo.yaml's threads wins, one load for all rows
    assert [fixed.threads_for(n) for n in (1, 2, 4)] == [3, 3, 3]
    board = RowBackends(Recorder(), per_row=False, cores=2)  # e.g. hbm: the BPU runs it, threads unused
    assert board.threads_for(4) is None and board(1) is board(8) and board.loads == 1


def test_each_row_is_reported_as_it_finishes():
    """on_row runs right after its row's frames and before the next row's warm-up and frames."""
    from modelzoo.core.backends.perf import RowBackends, run_perf

    factory = Recorder()
    rows = run_perf(
        RowBackends(factory, cores=2),
        (1, 2),
        [1, 2],
        3,
        warmup=1,
        on_row=lambda r: factory.events.append(f"row {r.threads}"),
    )
    assert [r.frames for r in rows] == [3, 3]
    assert factory.events == ["run"] * 4 + ["row 1"] + ["run"] * 4 + ["row 2"]  # warm-up + 3 frames each
    assert factory.loads == [2, 1]


def test_perf_threads_never_exceed_the_cores(capsys, tmp_path, recorded_loads):
    model = tiny_video_classifier(tmp_path / "tiny.onnx")
    result = invoke(capsys, "perf", "r3d_18", "--model", model, "--threads", "1,2,4", "--frames", "4", "--json")
    assert result.code == 0, result.err
    assert [r["threads"] for r in json.loads(result.out)["rows"]] == [1, 2, 4]
    # --threads 1 is one thread using both cores; 2 and 4 threads share one session of 1 intra-op thread
    assert recorded_loads == [("onnxruntime", 2), ("onnxruntime", 1)]
    # without a terminal, a line per row on stderr, in order
    lines = [line.strip() for line in result.err.splitlines() if "FPS" in line]
    assert [line.split(" x ")[0] for line in lines] == ["1 thread(s)", "2 thread(s)", "4 thread(s)"]
    assert "x 2 intra-op thread(s)" in lines[0] and "x 1 intra-op thread(s)" in lines[1]
    assert "a frame being one inference" in result.err


def test_perf_keeps_the_threads_zoo_yaml_sets(capsys, tmp_path, recorded_loads):
    model = tiny_video_classifier(tmp_path / "tiny.onnx")
    config = tmp_path / "zoo.yaml"
    config.write_text("threads: 2\n")
    result = invoke(
        capsys, "--config", config, "perf", "r3d_18", "--model", model, "--threads", "1,2", "--frames", "2", "--json"
    )
    assert result.code == 0, result.err
    assert recorded_loads == [("onnxruntime", 2)]  # the user's choice, loaded once
    assert "zoo.yaml sets threads: 2" in result.err and "more than the 2 cores" in result.err


def test_perf_precision_reaches_the_model_file(capsys, tmp_path, monkeypatch):
    """--precision is passed to resolve_model_file, which picks the host-quantized ONNX for int8."""
    from modelzoo.core import runner

    model = tiny_video_classifier(tmp_path / "tiny.onnx")
    asked = []

    def resolve_model_file(*args, precision=None, **kwargs):
        asked.append(precision)
        return model

    monkeypatch.setattr(runner, "resolve_model_file", resolve_model_file)
    for flags in ([], ["--precision", "fp32"], ["--precision", "int8"]):
        result = invoke(capsys, "perf", "r3d_18", *flags, "--threads", "1", "--frames", "1", "--json")
        assert result.code == 0, result.err
    assert asked == [None, "fp32", "int8"]  # None: zoo.yaml's precision, else fp32
    bad = invoke(capsys, "perf", "r3d_18", "--precision", "fp16")
    assert bad.code == 2 and "fp16" in bad.err


def test_perf_help_says_what_a_frame_is(capsys):
    result = invoke(capsys, "perf", "--help")
    assert result.code == 0
    text = " ".join(result.out.split())
    assert "A frame is one inference" in text and "16-frame clip" in text
    assert "--precision [fp32|int8]" in text and "cores // threads" in text


def test_perf_save_records_the_measured_rows_for_zoo_info(capsys, tmp_path, recorded_loads):
    from modelzoo.core.accuracy.measured import measured_rows, measured_table
    from modelzoo.core.artifacts.cache import ArtifactCache
    from modelzoo.core.config import load_config

    model = tiny_video_classifier(tmp_path / "tiny.onnx")
    args = ["perf", "r3d_18", "--model", model, "--threads", "1,2", "--frames", "3"]
    result = invoke(capsys, *args, "--save", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    cache = ArtifactCache(load_config().cache_root())
    rows = measured_rows(cache, "r3d_18")
    assert data["saved"] == str(Path(cache.root) / "measured" / "r3d_18.json")
    # two rows per thread count, each the number the run printed, with what makes it comparable
    printed = {(r["threads"], "avg latency ms"): r["avg_latency_ms"] for r in data["rows"]}
    printed.update({(r["threads"], "FPS"): r["fps"] for r in data["rows"]})
    assert {(row["threads"], row["metric"]): row["value"] for row in rows} == printed
    one = next(row for row in rows if row["threads"] == 1 and row["metric"] == "FPS")
    assert one["measured"] is True and one["kind"] == "performance" and one["command"] == "zoo perf"
    assert one["precision"] == "fp32" and one["backend"] == data["backend"] and one["model_file"] == str(model)
    assert one["intra_op_threads"] == 2 and one["frames"] == 3  # the host has 2 cores: 1 thread x 2
    assert one["protocol"] == "1 thread(s) x 2 intra-op thread(s), 3 frames of one inference each"
    assert one["dataset"] == "random float32 input [1, 3, 16, 112, 112]"
    assert one["tools"]["onnxruntime"] and one["host"]["name"] and one["date"]
    assert "FPS" in measured_table(rows)

    # a second run appends; the text output says where it went; without --save nothing is recorded
    text = invoke(capsys, *args, "--save")
    assert text.code == 0 and "recorded in" in text.err and "zoo info r3d_18" in text.err
    assert len(measured_rows(cache, "r3d_18")) == 8
    assert invoke(capsys, *args).code == 0 and len(measured_rows(cache, "r3d_18")) == 8
