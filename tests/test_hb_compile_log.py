"""hb_compile's log in the published S100 format, the fast-perf command, and the fake hb_compile itself.

The fixtures under tests/fixtures/hb_compile/ quote published D-Robotics S100 samples (each file's
header says which); the per-node one is constructed around the documented header and says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

from modelzoo.core.board.hb_compile import (
    CompileResult,
    Estimate,
    OutputCosine,
    fast_perf_command,
    full_command,
    parse_cosine_table,
    parse_log,
    run_hb_compile,
)

FIXTURES = Path(__file__).with_name("fixtures") / "hb_compile"
FAKE = Path(__file__).with_name("fakes") / "fake_hb_compile.py"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


# --- The published log formats -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mobilenetv2_s100_rdk_model_zoo_s.log", "mobilenetv2_s100_rdk_model_zoo.log"])
def test_published_output_table_and_estimate(name):
    log = parse_log(fixture(name))
    assert log.outputs == [OutputCosine("output", 0.993383, 0.988877)]
    # "latency: 0.2 ms (201.3 us)": the microseconds are the precise figure
    assert log.estimate == Estimate(fps=4968.89, latency_ms=0.2013, bpu_conv_ops=601_548_544, cores=1)
    assert log.nodes == [] and log.nodes_on_cpu == [] and log.lowest_cosine_nodes() == []
    assert log.completed is False  # the README excerpts do not include the success line
    # the long-standing view: one row per output, the quantized cosine first
    assert [row.to_dict() for row in log.cosine] == [
        {"output": "output", "cosine_similarity": 0.988877, "calibrated_cosine": 0.993383}
    ]
    assert [row.output for row in parse_cosine_table(fixture(name))] == ["output"]


def test_the_last_table_and_summary_of_a_text_win():
    log = parse_log(fixture("mobilenetv4_s100_rdk_model_zoo_s.log"))
    assert log.outputs == [OutputCosine("output", 0.999892, 0.99988)]
    assert log.estimate == Estimate(fps=5698.18, latency_ms=0.1755, bpu_conv_ops=372_011_136, cores=1)


def test_per_node_table_with_log_prefixes():
    log = parse_log(fixture("constructed_per_node_table.log"))
    assert log.completed is True
    assert len(log.nodes) == 8
    assert [(n.name, n.node_type) for n in log.nodes_on_cpu] == [
        ("flatten", "Reshape"),
        ("output_dequantize", "Dequantize"),
    ]
    first = log.nodes[0]
    assert (first.name, first.node_type, first.on, first.threshold) == ("stem_conv", "Conv", "BPU", 2.641835)
    assert (first.calibrated_cosine, first.quantized_cosine, first.output_data_type) == (0.999921, 0.999804, "si8")
    assert log.nodes_on_cpu[0].threshold is None  # "--"
    lowest = log.lowest_cosine_nodes(3)
    assert [(n.name, n.quantized_cosine) for n in lowest] == [
        ("layer4_1_conv2", 0.981066),
        ("fc", 0.987402),
        ("output_dequantize", 0.987402),
    ]
    assert log.outputs == [OutputCosine("logits", 0.998811, 0.987402)]
    assert log.estimate is None


def test_result_json():
    log = parse_log(fixture("constructed_per_node_table.log"))
    result = CompileResult.from_log(
        ["hb_compile", "--config", "c.yaml"], Path("/w"), 0, Path("/w/hb_compile.log"), None, log
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert data["completed"] is True and data["node_count"] == 8 and data["estimate"] is None
    assert data["outputs"] == [{"name": "logits", "calibrated_cosine": 0.998811, "quantized_cosine": 0.987402}]
    assert [n["name"] for n in data["nodes_on_cpu"]] == ["flatten", "output_dequantize"]
    assert data["nodes_on_cpu"][0] == {
        "name": "flatten",
        "type": "Reshape",
        "on": "CPU",
        "threshold": None,
        "calibrated_cosine": 0.997960,
        "quantized_cosine": 0.990214,
        "output_data_type": "float32",
    }
    assert [n["name"] for n in data["lowest_cosine_nodes"]][:2] == ["layer4_1_conv2", "fc"]
    assert len(data["lowest_cosine_nodes"]) == 5
    assert data["cosine"] == [{"output": "logits", "cosine_similarity": 0.987402, "calibrated_cosine": 0.998811}]
    # the positional constructor of earlier callers still works
    legacy = CompileResult(["hb_compile"], Path("/w"), 0, Path("/w/l"), None, [])
    assert legacy.to_dict()["outputs"] == [] and legacy.to_dict()["completed"] is False


def test_estimate_in_the_fast_perf_form():
    text = fixture("mobilenetv2_s100_rdk_model_zoo_s.log").replace("FPS (1 core)", "FPS (2 cores)")
    assert parse_log(text).estimate.cores == 2
    assert parse_log("latency: 3.5 ms\n").estimate == Estimate(latency_ms=3.5)
    assert parse_log("nothing here").estimate is None


def test_the_older_table_is_still_read():
    log_text = "\n".join(
        [
            "The quantized model output:",
            "Output  Cosine Similarity  L1 Distance",
            "----------------------------------------",
            "logits  0.991000           0.100000",
        ]
    )
    rows = parse_cosine_table(log_text)
    assert [(r.output, r.cosine_similarity, r.metrics) for r in rows] == [("logits", 0.991, {"L1 Distance": 0.1})]
    assert parse_log(log_text).outputs == []


# --- The fast-perf command -----------------------------------------------------------------------


def test_fast_perf_command_input_shape():
    base = ["hb_compile", "--fast-perf", "--march", "nash-e", "--model", "m.onnx"]
    assert fast_perf_command("m.onnx", "nash-e") == base
    assert fast_perf_command("m.onnx", "nash-e", "video", "1x3x16x112x112") == [
        *base,
        "--input-shape",
        "video",
        "1x3x16x112x112",
    ]
    assert fast_perf_command(Path("m.onnx"), "nash-e", input_name="video", input_shape=(1, 3, 16, 112, 112))[-1] == (
        "1x3x16x112x112"
    )
    for name, shape in [("video", None), (None, "1x3"), ("", "1x3"), ("video", ("N", 3)), ("video", "0x3"), ("v", [])]:
        with pytest.raises(ValueError):
            fast_perf_command("m.onnx", "nash-e", name, shape)


# --- The fake hb_compile, independent of zoo -----------------------------------------------------


def _model(path: Path, input_shape: list, nodes: list, output: str, initializers=(), opset: int = 17) -> Path:
    graph = helper.make_graph(
        nodes,
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(a, n) for n, a in initializers],
    )
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))
    onnx.save(model, str(path))
    return path


def conv_pool_model(path: Path, pool: str = "ReduceMean", batch="N", rank: int = 5) -> Path:
    """x [batch,3,4,8,8] (or 4-D) -> Conv (4 filters, 3x3 spatial, padded) -> pooling -> y."""
    spatial = [1, 3, 3] if rank == 5 else [3, 3]
    weight = np.ones((4, 3, *spatial), np.float32)
    conv = helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=spatial, pads=[0, 1, 1] * 2)
    if rank == 4:
        conv = helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=spatial, pads=[1, 1, 1, 1])
    axes = list(range(2, rank))
    if pool == "ReduceMean":
        pool_node = helper.make_node("ReduceMean", ["c"], ["y"], name="pool", axes=axes, keepdims=1)
    elif pool in ("AveragePool", "MaxPool"):
        pool_node = helper.make_node(pool, ["c"], ["y"], name="pool", kernel_shape=[1] * (rank - 2))
    else:
        pool_node = helper.make_node(pool, ["c"], ["y"], name="pool")
    shape = [batch, 3, 4, 8, 8] if rank == 5 else [batch, 3, 8, 8]
    return _model(path, shape, [conv, pool_node], "y", [("w", weight)])


@pytest.fixture
def fake_on_path(tmp_path, monkeypatch):
    """`hb_compile` on PATH running the fake, with a poisoned `modelzoo` first on its import path:
    the fake must work without importing zoo."""
    poison = tmp_path / "poison" / "modelzoo"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise ImportError('the fake hb_compile must not import modelzoo')\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "hb_compile"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{poison.parent}" exec "{sys.executable}" "{FAKE}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("FAKE_HB_COMPILE_FAIL", raising=False)
    monkeypatch.delenv("FAKE_HB_COMPILE_CPU_NODES", raising=False)
    return wrapper


def run_fake(args: list, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["hb_compile", *map(str, args)], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("pool", ["GlobalAveragePool", "GlobalMaxPool", "AveragePool", "MaxPool"])
def test_fake_rejects_5d_pooling(tmp_path, fake_on_path, pool):
    model = conv_pool_model(tmp_path / "m.onnx", pool, batch=1)
    run = run_fake(["--fast-perf", "--march", "nash-e", "--model", model], tmp_path)
    assert run.returncode == 1, run.stdout
    assert pool in run.stdout and "5-D" in run.stdout
    assert "ERROR" in (tmp_path / "hb_compile.log").read_text()


def test_fake_accepts_4d_pooling_and_5d_reduce_mean(tmp_path, fake_on_path):
    for name, model in [
        ("pool4d", conv_pool_model(tmp_path / "pool4d.onnx", "MaxPool", batch=1, rank=4)),
        ("mean5d", conv_pool_model(tmp_path / "mean5d.onnx", "ReduceMean", batch=1)),
    ]:
        run = run_fake(["--fast-perf", "--march", "nash-e", "--model", model], tmp_path)
        assert run.returncode == 0, run.stdout
        assert (tmp_path / "model_output" / f"{name}.hbm").is_file()


def test_fake_fast_perf_dynamic_batch_needs_input_shape(tmp_path, fake_on_path):
    model = conv_pool_model(tmp_path / "m.onnx")  # batch "N"
    run = run_fake(fast_perf_command(model, "nash-e")[1:], tmp_path)
    assert run.returncode == 1 and "dynamic" in run.stdout and "--input-shape" in run.stdout

    command = fast_perf_command(model.name, "nash-e", "x", (1, 3, 4, 8, 8))
    result = run_hb_compile(command, tmp_path, tmp_path / "model_output", require_hbm=False)
    assert result.completed is True
    assert (tmp_path / "model_output" / "m.hbm").is_file()
    # Conv output 1x4x4x8x8, 3x1x3x3 multiply-accumulates each: 2 * 1024 * 27 OPs
    assert result.estimate.bpu_conv_ops == 55_296 and result.estimate.cores == 1
    assert result.estimate.fps > 0 and result.estimate.latency_ms > 0
    assert [n.name for n in result.nodes] == ["conv", "pool"] and result.nodes_on_cpu == []
    assert [o.name for o in result.outputs] == ["y"]


def _config(tmp_path: Path, model: Path, input_parameters: dict, cal_dir: str | None) -> Path:
    config = {
        "model_parameters": {
            "onnx_model": model.name,
            "march": "nash-e",
            "working_dir": "model_output",
            "output_model_file_prefix": "m",
        },
        "input_parameters": input_parameters,
        "calibration_parameters": (
            {"cal_data_dir": cal_dir, "cal_data_type": "float32", "calibration_type": "default"}
            if cal_dir
            else {"calibration_type": "skip"}
        ),
        "compiler_parameters": {"optimize_level": "O2"},
    }
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _calibration(tmp_path: Path, shape: tuple, dtype=np.float32, count: int = 2) -> str:
    folder = tmp_path / "calibration"
    folder.mkdir(exist_ok=True)
    for i in range(count):
        np.save(folder / f"{i}.npy", np.zeros(shape, dtype))
    return folder.name


FEATUREMAP = {
    "input_name": "x",
    "input_type_rt": "featuremap",
    "input_type_train": "featuremap",
    "input_layout_rt": "NCHW",
    "input_layout_train": "NCHW",
    "input_shape": "1x3x4x8x8",
    "norm_type": "no_preprocess",
}


def test_fake_config_featuremap(tmp_path, fake_on_path, monkeypatch):
    model = conv_pool_model(tmp_path / "m.onnx")
    config = _config(tmp_path, model, FEATUREMAP, _calibration(tmp_path, (1, 3, 4, 8, 8)))
    monkeypatch.setenv("FAKE_HB_COMPILE_CPU_NODES", "pool")
    result = run_hb_compile(full_command(config.name), tmp_path, tmp_path / "model_output", prefix="m")
    assert result.hbm == tmp_path / "model_output" / "m.hbm"
    for suffix in ("_original_float_model.onnx", "_optimized_float_model.onnx", "_calibrated_model.onnx"):
        assert (tmp_path / "model_output" / f"m{suffix}").is_file()
    assert (tmp_path / "model_output" / "m_ptq_model.onnx").is_file()
    assert (tmp_path / "model_output" / "m_quantized_model.bc").is_file()
    assert result.log_path == tmp_path / "hb_compile.log" and result.completed
    assert [(n.name, n.on) for n in result.nodes_on_cpu] == [("pool", "CPU")]
    assert result.outputs == [OutputCosine("y", 0.999512, 0.998765)]
    assert result.estimate.bpu_conv_ops == 55_296
    # the log file's lines carry a timestamp and level; the console's do not
    assert " INFO | TensorName " in result.log_path.read_text()


def test_fake_config_rejects_bad_calibration(tmp_path, fake_on_path):
    model = conv_pool_model(tmp_path / "m.onnx")
    _calibration(tmp_path, (1, 3, 4, 8, 8), dtype=np.uint8)
    run = run_fake(["--config", _config(tmp_path, model, FEATUREMAP, "calibration")], tmp_path)
    assert run.returncode == 1 and "float32" in run.stdout
    for f in (tmp_path / "calibration").iterdir():
        f.unlink()
    _calibration(tmp_path, (2, 3, 4, 8, 8))
    run = run_fake(["--config", _config(tmp_path, model, FEATUREMAP, "calibration")], tmp_path)
    assert run.returncode == 1 and "[2, 3, 4, 8, 8]" in run.stdout


def test_fake_config_nv12_image_input(tmp_path, fake_on_path):
    """The S100 classification samples' input: nv12 at run time, rgb NCHW in training, normalization in the model."""
    model = conv_pool_model(tmp_path / "m.onnx", "GlobalAveragePool", batch=1, rank=4)
    nv12 = {
        "input_name": "",
        "input_type_rt": "nv12",
        "input_type_train": "rgb",
        "input_layout_train": "NCHW",
        "input_shape": "",
        "norm_type": "data_mean_and_scale",
        "mean_value": "123.675 116.28 103.53",
        "scale_value": "0.01712475 0.017507 0.01742919",
    }
    config = _config(tmp_path, model, nv12, _calibration(tmp_path, (1, 3, 8, 8)))
    run = run_fake(["--config", config], tmp_path)
    assert run.returncode == 0, run.stdout
    assert "The hb_compile completes running." in run.stdout

    run = run_fake(["-c", _config(tmp_path, model, {**nv12, "scale_value": ""}, "calibration")], tmp_path)
    assert run.returncode == 1 and "scale_value" in run.stdout
    run = run_fake(
        ["-c", _config(tmp_path, model, {**nv12, "input_type_train": "featuremap"}, "calibration")], tmp_path
    )
    assert run.returncode == 1 and "rgb or bgr" in run.stdout


def test_fake_fails_on_purpose_and_on_bad_arguments(tmp_path, fake_on_path, monkeypatch):
    model = conv_pool_model(tmp_path / "m.onnx", batch=1)
    run = run_fake(["--fast-perf", "--config", "x.yaml", "--model", model, "--march", "nash-e"], tmp_path)
    assert run.returncode == 1
    run = run_fake(["--fast-perf", "--march", "nash-m", "--model", model], tmp_path)
    assert run.returncode == 1 and "nash-m" in run.stdout
    monkeypatch.setenv("FAKE_HB_COMPILE_FAIL", "1")
    assert run_fake(["--fast-perf", "--march", "nash-e", "--model", model], tmp_path).returncode == 1


# --- Hostile logs: bounded time and memory --------------------------------------------------------


def test_malformed_long_lines_are_read_in_linear_time():
    """A log line of rule or bar characters that never closes made the table regexes quadratic:
    16 KB took seconds, a megabyte hours. Such lines are skipped, and the rest is still read."""
    import time

    table = fixture("mobilenetv2_s100_rdk_model_zoo_s.log")
    junk = ["+" + "-+" * 200_000 + "x", "|" * 400_000 + "x", "+--" * 1000 + "+", "| a " * 1000 + "|"]
    started = time.perf_counter()
    log = parse_log("\n".join(junk) + "\n" + table)
    assert time.perf_counter() - started < 5
    assert log.outputs == [OutputCosine("output", 0.993383, 0.988877)]


def test_rules_and_rows_after_a_log_prefix_still_read():
    text = (
        "2026-11-26 10:00:00 INFO +------------+-------------------+------------------+\n"
        "2026-11-26 10:00:00 INFO | TensorName | Calibrated Cosine | Quantized Cosine |\n"
        "2026-11-26 10:00:00 INFO ++-----------+-------------------+------------------+\n"
        "2026-11-26 10:00:00 INFO | out        | 0.9               | 0.8              |   \n"
        "2026-11-26 10:00:00 INFO +------------+-------------------+------------------+\n"
    )
    assert parse_log(text).outputs == [OutputCosine("out", 0.9, 0.8)]


def _script(bin_dir: Path, body: str) -> Path:
    """An `hb_compile` on PATH that is a tiny Python script (no zoo import), for runaway-output cases."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "hb_compile"
    script.write_text(f"#!{sys.executable}\nimport sys, os, time\n{body}\n")
    script.chmod(0o755)
    return script


def test_a_runaway_log_is_read_only_at_its_end(tmp_path, monkeypatch):
    """40 MB of console output in one line without an end, then 40 MB of log file: zoo keeps and reads a
    bounded tail of each, and still finds the tables and success line at the end."""
    import tracemalloc

    table = fixture("mobilenetv2_s100_rdk_model_zoo_s.log")
    body = f"""
chunk = "x" * (1 << 20)
for _ in range(40):
    sys.stdout.write(chunk)
sys.stdout.write("\\n")
with open("hb_compile.log", "w") as log:
    for _ in range(40):
        log.write(chunk + "\\n")
    log.write({table!r} + "\\nThe hb_compile completes running.\\n")
os.makedirs("model_output", exist_ok=True)
open("model_output/m.hbm", "wb").write(b"hbm")
"""
    _script(tmp_path / "bin", body)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    tracemalloc.start()
    try:
        result = run_hb_compile(["hb_compile"], tmp_path, tmp_path / "model_output", prefix="m")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.completed and result.hbm == tmp_path / "model_output" / "m.hbm"
    assert result.outputs == [OutputCosine("output", 0.993383, 0.988877)]
    assert peak < 60 << 20, peak  # the whole of both is 80 MB of text, and several copies of it as str


def test_an_interrupted_run_stops_hb_compile(tmp_path, monkeypatch):
    """Ctrl-C (or any error) while hb_compile runs: zoo stops it rather than leaving it compiling alone."""
    pid_file = tmp_path / "pid"
    _script(
        tmp_path / "bin",
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\nprint('start', flush=True)\ntime.sleep(60)",
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")

    def interrupt(line):
        raise KeyboardInterrupt

    import time

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_hb_compile(["hb_compile"], tmp_path, tmp_path / "model_output", echo=interrupt)
    assert time.monotonic() - started < 20  # not waiting for the 60 s "compile" to end
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone (and reaped), not compiling on


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's parent is init, which in a container may never reap it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_hb_compile_dies_with_a_terminated_zoo(tmp_path):
    """zoo's SIGTERM handler leaves with os._exit; the hb_compile it started goes with it."""
    import signal
    import time

    pid_file = tmp_path / "pid"
    bin_dir = tmp_path / "bin"
    _script(
        bin_dir, f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\nprint('start', flush=True)\ntime.sleep(60)"
    )
    runner = (
        "import os, sys\n"
        "from modelzoo.core.board.hb_compile import run_hb_compile\n"
        f"run_hb_compile(['hb_compile'], {str(tmp_path)!r}, {str(tmp_path / 'out')!r}, echo=lambda l: os._exit(143))\n"
    )
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    zoo = subprocess.run([sys.executable, "-c", runner], env=env, timeout=60)
    assert zoo.returncode == 143
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _running(pid):
        time.sleep(0.05)
    if not _running(pid):
        return
    os.kill(pid, signal.SIGKILL)
    pytest.fail("hb_compile outlived zoo")
