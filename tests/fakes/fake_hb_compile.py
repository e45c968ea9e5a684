#!/usr/bin/env python3
"""FAKE hb_compile, for tests only: NOT OpenExplorer's compiler, and it compiles nothing.

Installed on PATH as `hb_compile` by tests. It is deliberately independent of zoo (it never imports
modelzoo): it has its own idea of what the RDK S100 toolchain (OE 3.5, march nash-e) accepts, so
zoo's checks and this fake cannot agree by sharing a bug. What it knows (sources in docs/board.md):

  hb_compile -c/--config CONFIG.yaml
      Checks the config's sections and values (featuremap input with no_preprocess, or an nv12
      input with rgb/bgr training data), the ONNX model, and the calibration data (one float32
      .npy per sample, shaped exactly like the model input, or that without its leading 1).
      Writes <working_dir>/<prefix>{_original_float_model.onnx, _optimized_float_model.onnx,
      _calibrated_model.onnx, _ptq_model.onnx, _quantized_model.bc, .hbm}.
  hb_compile --fast-perf --march nash-e -m/--model MODEL.onnx [-i/--input-shape NAME 1x3x16x112x112]...
      Checks the model; a dynamic input dimension needs --input-shape. Writes ./model_output/<stem>.hbm.

  The model check rejects what nash-e is known to reject: GlobalAveragePool, AveragePool, MaxPool
  and GlobalMaxPool with a 5-D input (ranks from onnx shape inference). Relative paths resolve
  against the current directory.

  Both modes print the log in the published format (boxed per-node and per-output cosine tables,
  the performance "Summary:", then `The hb_compile completes running.`) and write it to
  ./hb_compile.log, each log-file line prefixed with a timestamp and level. Cosines and the
  performance figures are made up (the conv OPs are counted from the model); nodes run on BPU
  unless named in FAKE_HB_COMPILE_CPU_NODES (comma-separated).

Exit code 1 with an ERROR line on any problem. FAKE_HB_COMPILE_FAIL=1 makes it fail on purpose.
"""

from __future__ import annotations

import datetime
import os
import sys
from pathlib import Path

MARCHES = ("nash-e",)
# What the march's toolchain rejects: (op types, input rank, reason).
REJECTED = {
    "nash-e": [
        ({"GlobalAveragePool", "AveragePool", "MaxPool", "GlobalMaxPool"}, 5, "5-D pooling is not supported"),
    ],
}
REQUIRED = {
    "model_parameters": ("onnx_model", "march", "working_dir", "output_model_file_prefix"),
    "input_parameters": ("input_type_rt", "input_type_train", "norm_type"),
    "calibration_parameters": ("calibration_type",),
    "compiler_parameters": (),
}
NORM_TYPES = {"no_preprocess": (), "data_mean": ("mean_value",), "data_scale": ("scale_value",)}
NORM_TYPES["data_mean_and_scale"] = ("mean_value", "scale_value")
OUTPUT_FILES = (
    "_original_float_model.onnx",
    "_optimized_float_model.onnx",
    "_calibrated_model.onnx",
    "_ptq_model.onnx",
    "_quantized_model.bc",
    ".hbm",
)
FAKE_TOPS = 4.0e12  # made-up effective conv throughput behind the fake estimate
SUCCESS = "The hb_compile completes running."

_log_lines: list = []


def log(message: str, level: str = "INFO") -> None:
    """One line to the console (as is) and to ./hb_compile.log (with a timestamp and level)."""
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
    for line in message.splitlines() or [""]:
        print(line, flush=True)
        _log_lines.append(f"{stamp} {level} {line}")


def write_log() -> None:
    Path("hb_compile.log").write_text("\n".join(_log_lines) + "\n")


def fail(message: str) -> None:
    log(f"{message} (FAKE hb_compile)", "ERROR")
    write_log()
    sys.exit(1)


def boxed(header: list, rows: list) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def row(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    return "\n".join([rule, row(header), rule, *(row(r) for r in rows), rule])


# --- The model ---------------------------------------------------------------------------------------


def load_model(path: Path):
    import onnx

    if not path.is_file():
        fail(f"model file {path} not found")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # any parse failure is the user's error here
        fail(f"cannot parse {path} as ONNX: {exc}")
    return model


def inputs_of(model) -> dict:
    """{input name: [dims]} for the graph inputs that are not initializers; a dynamic dim is its name or "?"."""
    initializers = {i.name for i in model.graph.initializer}
    found = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        found[value.name] = [d.dim_value if d.dim_value > 0 else (d.dim_param or "?") for d in dims]
    return found


def with_static_inputs(model, shapes: dict):
    """A shape-inferred copy of `model` whose inputs have the given static shapes."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for value in copy.graph.input:
        if value.name in shapes:
            for dim, size in zip(value.type.tensor_type.shape.dim, shapes[value.name]):
                dim.Clear()
                dim.dim_value = size
    try:
        return onnx.shape_inference.infer_shapes(copy)
    except Exception:  # no shapes is still a model
        return copy


def tensor_shapes(model) -> dict:
    """{tensor name: [dim or None]} for every tensor whose rank shape inference knows."""
    shapes = {}
    for value in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        tensor = value.type.tensor_type
        if tensor.HasField("shape"):
            shapes[value.name] = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def check_model(model, march: str) -> None:
    if march not in MARCHES:
        fail(f"march {march!r} is not supported; this fake knows {', '.join(MARCHES)}")
    shapes = tensor_shapes(with_static_inputs(model, {}))
    for index, node in enumerate(model.graph.node):
        rank = len(shapes[node.input[0]]) if node.input and node.input[0] in shapes else None
        for op_types, bad_rank, reason in REJECTED[march]:
            if node.op_type in op_types and rank == bad_rank:
                name = node.name or f"#{index}"
                fail(f"node {name} ({node.op_type}) has a {rank}-D input: {reason} on {march}")
    log(f"model parsed: {len(model.graph.node)} nodes, inputs {', '.join(inputs_of(model))}")


def parse_shape(text: str, what: str) -> list:
    try:
        dims = [int(d) for d in str(text).split("x")]
    except ValueError:
        dims = []
    if not dims or any(d <= 0 for d in dims):
        fail(f"{what} {text!r} is not a shape like 1x3x224x224")
    return dims


def resolve(model, given: dict) -> dict:
    """Static input shapes: `given` {name: dims} where set, else the model's; dynamic dims must be given."""
    shapes = {}
    declared = inputs_of(model)
    for name in given:
        if name not in declared:
            fail(f"input {name!r} given a shape is not an input of the model ({', '.join(declared)})")
    for name, dims in declared.items():
        if name in given:
            shape = given[name]
            if len(shape) != len(dims) or any(isinstance(d, int) and d != s for d, s in zip(dims, shape)):
                fail(f"shape {'x'.join(map(str, shape))} for input {name} does not fit the model's {dims}")
            shapes[name] = shape
        elif not all(isinstance(d, int) for d in dims):
            fail(f"input {name} has a dynamic shape {dims}: give a static one (--input-shape {name} SHAPE)")
        else:
            shapes[name] = dims
    return shapes


def conv_ops(model, shapes: dict) -> int:
    """2 x multiply-accumulates of every Conv, at the given input shapes."""
    static = tensor_shapes(with_static_inputs(model, shapes))
    total = 0
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2:
            continue
        out, weight = static.get(node.output[0]), static.get(node.input[1])
        if not out or not weight or any(d is None for d in out) or any(d is None for d in weight):
            continue
        size = 1
        for d in (*out, *weight[1:]):
            size *= d
        total += 2 * size
    return total


# --- What it prints ----------------------------------------------------------------------------------


def report(model, shapes: dict) -> None:
    """The per-node and per-output tables, the performance summary and the success line."""
    cpu = {n.strip() for n in os.environ.get("FAKE_HB_COMPILE_CPU_NODES", "").split(",") if n.strip()}
    rows = []
    for index, node in enumerate(model.graph.node):
        name = node.name or f"{node.op_type}_{index}"
        on_cpu = name in cpu
        calibrated = 0.999950 - 0.000020 * index
        quantized = calibrated - 0.000300 - 0.000050 * (index % 7)
        rows.append(
            [
                name,
                node.op_type,
                "CPU" if on_cpu else "BPU",
                "--" if on_cpu else f"{1.5 + 0.25 * (index % 9):.6f}",
                f"{calibrated:.6f}",
                f"{quantized:.6f}",
                "float32" if on_cpu else "si8",
            ]
        )
    header = ["Node", "NodeType", "ON", "Threshold", "Calibrated Cosine", "Quantized Cosine", "Output Data Type"]
    log(boxed(header, rows))
    outputs = [[o.name, "0.999512", "0.998765"] for o in model.graph.output]
    log(boxed(["TensorName", "Calibrated Cosine", "Quantized Cosine"], outputs))
    ops = conv_ops(model, shapes)
    latency_us = ops / FAKE_TOPS * 1e6 + 50.0
    log("the performance figures below are made up by the FAKE hb_compile")
    log(
        "Summary:\n"
        f"FPS (1 core): {1e6 / latency_us:.2f}\n"
        f"latency: {latency_us / 1000:.2f} ms ({latency_us:.1f} us)\n"
        f"BPU conv original OPs per run: {ops:,}"
    )


# --- Modes -------------------------------------------------------------------------------------------


def check_input(model, input_p: dict) -> dict:
    """The input parameters against the model; returns {name: static shape}."""
    declared = inputs_of(model)
    if len(declared) != 1:
        fail(f"this fake handles single-input models; the model has {len(declared)} inputs")
    (model_input,) = declared
    name = input_p.get("input_name") or model_input
    if name != model_input:
        fail(f"input_name {name} is not the model's input ({model_input})")
    text = str(input_p.get("input_shape") or "")
    shapes = resolve(model, {name: parse_shape(text, "input_shape")} if text else {})
    shape = shapes[name]
    rt, train, norm = input_p["input_type_rt"], input_p["input_type_train"], input_p["norm_type"]
    if norm not in NORM_TYPES:
        fail(f"norm_type {norm!r} is not one of {', '.join(NORM_TYPES)}")
    for key in NORM_TYPES[norm]:
        values = str(input_p.get(key, "")).split()
        if len(values) not in (1, 3):
            fail(f"norm_type {norm} needs {key} with 1 or 3 values, got {input_p.get(key)!r}")
    if rt == "featuremap":
        if train != "featuremap" or norm != "no_preprocess":
            fail("a featuremap input takes input_type_train featuremap and norm_type no_preprocess (this fake)")
    elif rt == "nv12":
        if train not in ("rgb", "bgr"):
            fail(f"an nv12 input needs input_type_train rgb or bgr, got {train!r}")
        layout = input_p.get("input_layout_train")
        if layout not in ("NCHW", "NHWC"):
            fail(f"an nv12 input needs input_layout_train NCHW or NHWC, got {layout!r}")
        if len(shape) != 4:
            fail(f"an nv12 input is an image: 4-D, got {shape}")
        channels, height, width = (shape[1], shape[2], shape[3]) if layout == "NCHW" else (shape[3], shape[1], shape[2])
        if channels != 3 or height % 2 or width % 2:
            fail(f"an nv12 input needs 3 channels and an even height and width, got {shape} ({layout})")
    else:
        fail(f"input_type_rt {rt!r}: this fake knows featuremap and nv12 inputs")
    return shapes


def check_calibration(cal_p: dict, shape: list) -> None:
    import numpy as np

    if cal_p["calibration_type"] == "skip":
        log("calibration_type skip: calibrating on random data")
        return
    if cal_p.get("cal_data_type") != "float32":
        fail(f"cal_data_type {cal_p.get('cal_data_type')!r}: S100 calibration data is float32")
    cal_dir = Path(str(cal_p.get("cal_data_dir", "")))
    files = sorted(cal_dir.glob("*.npy")) if cal_dir.is_dir() else []
    if not files:
        fail(f"no calibration data (.npy) in {cal_dir}")
    allowed = {tuple(shape)} | ({tuple(shape[1:])} if shape[0] == 1 else set())
    for path in files:
        try:
            array = np.load(path, allow_pickle=False)
        except Exception as exc:
            fail(f"cannot read calibration file {path}: {exc}")
        if array.dtype != np.float32 or array.shape not in allowed:
            fail(f"calibration file {path} is {array.dtype} {list(array.shape)}, expected float32 {shape}")
    log(f"calibration with {len(files)} samples from {cal_dir}")


def config_mode(config_path: Path) -> None:
    import yaml

    if not config_path.is_file():
        fail(f"config {config_path} not found")
    config = yaml.safe_load(config_path.read_text()) or {}
    for section, keys in REQUIRED.items():
        if not isinstance(config.get(section), dict):
            fail(f"config misses the section {section}")
        missing = [key for key in keys if key not in config[section]]
        if missing:
            fail(f"{section} misses {', '.join(missing)}")
    model_p, input_p, cal_p = config["model_parameters"], config["input_parameters"], config["calibration_parameters"]
    model = load_model(Path(str(model_p["onnx_model"])))
    check_model(model, str(model_p["march"]))
    shapes = check_input(model, input_p)
    check_calibration(cal_p, next(iter(shapes.values())))
    out = Path(str(model_p["working_dir"]))
    out.mkdir(parents=True, exist_ok=True)
    prefix = str(model_p["output_model_file_prefix"])
    for suffix in OUTPUT_FILES:
        (out / f"{prefix}{suffix}").write_bytes(b"FAKE hb_compile output, not a model\n")
    report(model, shapes)


def fast_perf_mode(model_path: Path, march: str | None, input_shapes: list) -> None:
    if not march:
        fail("--fast-perf needs --march")
    if model_path.suffix != ".onnx":
        fail("--fast-perf takes an .onnx model (this fake)")
    model = load_model(model_path)
    check_model(model, march)
    shapes = resolve(model, {name: parse_shape(text, f"--input-shape {name}") for name, text in input_shapes})
    out = Path("model_output")
    out.mkdir(exist_ok=True)
    (out / f"{model_path.stem}.hbm").write_bytes(b"FAKE hb_compile --fast-perf output, not a model\n")
    report(model, shapes)


def main(args: list) -> None:
    log("Start hb_compile...")
    log(f"FAKE hb_compile for tests: {' '.join(args)}")
    if os.environ.get("FAKE_HB_COMPILE_FAIL"):
        fail("failing on purpose (FAKE_HB_COMPILE_FAIL)")
    config = model = march = None
    fast_perf = False
    input_shapes = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg in ("-c", "--config", "-m", "--model", "--march", "--skip", "--proto") and rest:
            value = rest.pop(0)
            if arg in ("-c", "--config"):
                config = value
            elif arg in ("-m", "--model"):
                model = value
            elif arg == "--march":
                march = value
            else:
                fail(f"{arg} is not supported by this fake")
        elif arg in ("-i", "--input-shape") and len(rest) >= 2:
            input_shapes.append((rest.pop(0), rest.pop(0)))
        elif arg == "--fast-perf":
            fast_perf = True
        else:
            fail(f"unexpected argument {arg!r}")
    if fast_perf and config:
        fail("--fast-perf and --config exclude each other")
    if config and not model:
        config_mode(Path(config))
    elif fast_perf and model:
        fast_perf_mode(Path(model), march, input_shapes)
    else:
        fail(f"unsupported combination of arguments {args} (this fake: --config, or --fast-perf with --model)")
    log(SUCCESS)
    write_log()


if __name__ == "__main__":
    main(sys.argv[1:])
