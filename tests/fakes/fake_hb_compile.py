#!/usr/bin/env python3
"""FAKE hb_compile, for tests only: NOT OpenExplorer's compiler, and it compiles nothing.

Installed on PATH as `hb_compile` by tests. It checks what the real tool would need, the way
it would complain, and leaves what the real tool leaves:
  hb_compile --config CONFIG.yaml            (or -c): the config's sections, keys and values,
      the ONNX (loadable, no 5-D pooling: the S100 rejection), the calibration .npy files;
      writes <working_dir>/<prefix>.hbm and ./hb_compile.log with a cosine-similarity table.
  hb_compile --fast-perf --march M --model MODEL.onnx: the same model checks; writes
      ./model_output/<model stem>.hbm.
Exit code 1 with a message on any problem. FAKE_HB_COMPILE_FAIL=1 makes it fail on purpose.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REQUIRED = {
    "model_parameters": {"onnx_model", "march", "working_dir", "output_model_file_prefix"},
    "input_parameters": {"input_name", "input_type_rt", "input_type_train", "input_shape", "norm_type"},
    "calibration_parameters": {"calibration_type"},
    "compiler_parameters": {"optimize_level"},
}
LOG = """2025-01-01 00:00:00,000 INFO Start hb_compile (FAKE) ...
2025-01-01 00:00:01,000 INFO The quantized model output:
=============================================================================
Output      Cosine Similarity  L1 Distance  L2 Distance  Chebyshev Distance
-----------------------------------------------------------------------------
{output:<12}0.998765           0.012345     0.000321     0.456789
2025-01-01 00:00:02,000 INFO End of hb_compile (FAKE)
"""


def fail(message: str) -> None:
    print(f"ERROR {message}", flush=True)
    sys.exit(1)


def check_onnx(path: Path, march: str):
    import onnx

    from modelzoo.core.board.march_rules import check_model

    if march != "nash-e":
        fail(f"unsupported march {march}")
    if not path.is_file():
        fail(f"onnx model {path} not found")
    model = onnx.load(str(path))
    for finding in check_model(model, march):
        fail(f"node {finding.node} ({finding.op_type}) is not supported on {march}")
    print(f"INFO model {path} parsed: {len(model.graph.node)} nodes", flush=True)
    return model


def full(config_path: Path) -> None:
    import numpy as np
    import yaml

    if not config_path.is_file():
        fail(f"config {config_path} not found")
    config = yaml.safe_load(config_path.read_text())
    for section, keys in REQUIRED.items():
        missing = keys - set(config.get(section) or {})
        if missing:
            fail(f"{section} misses {sorted(missing)}")
    model_p, input_p, cal_p = config["model_parameters"], config["input_parameters"], config["calibration_parameters"]
    model = check_onnx(Path(model_p["onnx_model"]), model_p["march"])
    if input_p["input_name"] not in [i.name for i in model.graph.input]:
        fail(f"input_name {input_p['input_name']} is not an input of the model")
    if input_p["input_type_rt"] != "featuremap" or input_p["norm_type"] != "no_preprocess":
        fail("this fake only knows featuremap inputs without normalization")
    shape = tuple(int(d) for d in str(input_p["input_shape"]).split("x"))
    if cal_p["calibration_type"] != "skip":
        cal_dir = Path(cal_p["cal_data_dir"])
        files = sorted(cal_dir.glob("*.npy")) if cal_dir.is_dir() else []
        if not files:
            fail(f"no calibration data in {cal_dir}")
        for path in files:
            array = np.load(path)
            if array.dtype != np.dtype(cal_p["cal_data_type"]) or array.shape != shape:
                fail(
                    f"calibration file {path} is {array.dtype} {array.shape}, expected {cal_p['cal_data_type']} {shape}"
                )
        print(f"INFO calibration with {len(files)} samples", flush=True)
    out = Path(model_p["working_dir"])
    out.mkdir(parents=True, exist_ok=True)
    prefix = model_p["output_model_file_prefix"]
    for suffix in ("_original_float_model.onnx", "_quantized_model.bc"):
        (out / f"{prefix}{suffix}").write_bytes(b"fake")
    (out / f"{prefix}.hbm").write_bytes(b"FAKE-HBM " + Path(model_p["onnx_model"]).name.encode())
    output_name = model.graph.output[0].name
    Path("hb_compile.log").write_text(LOG.format(output=output_name))
    print(LOG.format(output=output_name), flush=True)


def fast_perf(args: list) -> None:
    if "--march" not in args or "--model" not in args:
        fail("--fast-perf needs --march and --model")
    march, model = args[args.index("--march") + 1], Path(args[args.index("--model") + 1])
    check_onnx(model, march)
    out = Path("model_output")
    out.mkdir(exist_ok=True)
    (out / f"{model.stem}.hbm").write_bytes(b"FAKE-HBM fast-perf")
    print("INFO fast-perf: estimated latency 180.0 ms (FAKE)", flush=True)


def main(args: list) -> None:
    print(f"INFO hb_compile (FAKE) {' '.join(args)}", flush=True)
    if os.environ.get("FAKE_HB_COMPILE_FAIL"):
        fail("failing on purpose (FAKE_HB_COMPILE_FAIL)")
    if args[:1] in (["--config"], ["-c"]) and len(args) == 2:
        full(Path(args[1]))
    elif args[:1] == ["--fast-perf"]:
        fast_perf(args)
    else:
        fail(f"unexpected arguments {args}")


if __name__ == "__main__":
    main(sys.argv[1:])
