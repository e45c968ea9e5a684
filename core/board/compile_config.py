"""The hb_compile config, derived from the spec, the ONNX file and the model's board input form.

By default normalization stays on the host (a float featuremap, norm_type no_preprocess), so the
board model takes exactly the tensor `zoo preprocess` writes. A model may instead take NV12 and
normalize inside (`Model.board_input`), as D-Robotics' published image models do (docs/board.md).
Either way calibration data is the float model's input, as the S100 toolchain expects.
"""

from __future__ import annotations

from pathlib import Path

from modelzoo.core.errors import ConversionError

# Keys whose values are file or directory paths, made relative to the config's folder when written.
PATH_KEYS = {
    ("model_parameters", "onnx_model"),
    ("model_parameters", "working_dir"),
    ("calibration_parameters", "cal_data_dir"),
}


def onnx_input(onnx_path) -> tuple:
    """(name, shape) of the ONNX model's first real input; dynamic dimensions are strings."""
    import onnx

    from modelzoo.core.artifacts.artifacts import check_onnx_size

    check_onnx_size(onnx_path)
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:
        raise ConversionError(f"cannot read {onnx_path} as ONNX ({exc}); pass a valid .onnx file") from exc
    return proto_input(model, onnx_path)


def proto_input(model, where) -> tuple:
    """(name, shape) of a loaded ONNX model's first real input, as `onnx_input`."""
    initializers = {init.name for init in model.graph.initializer}
    for arg in model.graph.input:
        if arg.name not in initializers:
            dims = arg.type.tensor_type.shape.dim
            return arg.name, tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims)
    raise ConversionError(f"{where} has no graph input; it cannot be compiled")


def board_input_shape(spec, onnx_shape: tuple | None = None) -> tuple:
    """The static shape the board model takes: the ONNX's static dims, else the spec's; batch 1."""
    shape = list(spec.input.shape)
    if onnx_shape and len(onnx_shape) == len(shape):
        shape = [o if isinstance(o, int) and o > 0 else s for o, s in zip(onnx_shape, shape)]
    shape[0] = 1  # the board runs one clip per inference
    if not all(isinstance(d, int) and d > 0 for d in shape):
        raise ConversionError(
            f"{spec.name}'s input shape {shape} has dynamic dimensions besides the batch; "
            "hb_compile needs a static input_shape"
        )
    return tuple(shape)


def hb_compile_config(
    spec,
    march: str,
    onnx_path,
    calib_dir,
    working_dir,
    *,
    prefix: str | None = None,
    optimize_level: str = "O2",
    core_num: int = 1,
    jobs: int | None = None,
    board_input: dict | None = None,
) -> dict:
    """The hb_compile config dict for a model with one input.

    `board_input` holds input_parameters beyond name, shape and layout (input_type_rt, norm_type,
    mean_value, ...); the default is a float featuremap normalized on the host.
    `calib_dir=None` means no calibration data: calibration_type `skip` (random data), as fast-perf does.
    """
    board_input = dict(
        board_input or {"input_type_rt": "featuremap", "input_type_train": "featuremap", "norm_type": "no_preprocess"}
    )
    name, onnx_shape = onnx_input(onnx_path)
    shape = board_input_shape(spec, onnx_shape)
    if calib_dir is None:
        calibration = {"cal_data_type": "float32", "calibration_type": "skip"}
    else:
        calibration = {"cal_data_dir": str(calib_dir), "cal_data_type": "float32", "calibration_type": "default"}
    return {
        "model_parameters": {
            "onnx_model": str(onnx_path),
            "march": march,
            "working_dir": str(working_dir),
            "output_model_file_prefix": prefix or spec.name,
        },
        "input_parameters": {
            "input_name": name,
            **input_layouts(spec, board_input),
            "input_shape": "x".join(map(str, shape)),
        },
        "calibration_parameters": calibration,
        "compiler_parameters": {
            "optimize_level": optimize_level,
            "compile_mode": "latency",
            "core_num": core_num,
            # jobs is left to hb_compile unless asked for: the config runs in the OpenExplorer
            # environment, often on another machine than the one that wrote it
            **({"jobs": jobs} if jobs else {}),
        },
    }


def board_layout(layout: str) -> str:
    """hb_compile's name for the spec's layout: public configs only show NCHW and NHWC, so a
    channels-first layout of any rank (NCTHW) is NCHW and a channels-last one NHWC."""
    return "NHWC" if layout and layout.upper().endswith("C") else "NCHW"


def input_layouts(spec, board_input: dict) -> dict:
    """input_parameters with the layouts read from the spec: a featuremap input names both the runtime
    and the training layout; an image input (nv12, rgb, ...) only the training one, as published configs do."""
    layout = board_layout(spec.input.layout)
    params = dict(board_input)
    if params.get("input_type_rt", "featuremap") == "featuremap":
        params.setdefault("input_layout_rt", layout)
    params.setdefault("input_layout_train", layout)
    order = ("input_type_rt", "input_type_train", "input_layout_rt", "input_layout_train")
    return {**{k: params.pop(k) for k in order if k in params}, **params}


def relative_paths(config: dict, base) -> dict:
    """A copy of `config` whose paths under `base` are relative to it, so the folder can be moved
    (e.g. mounted into the OpenExplorer container) and hb_compile run from inside it."""
    base = Path(base).resolve()
    result = {section: dict(values) if isinstance(values, dict) else values for section, values in config.items()}
    for section, key in PATH_KEYS:
        value = result.get(section, {}).get(key)
        if value is None:
            continue
        path = Path(value).resolve()
        if path == base or base in path.parents:
            result[section][key] = path.relative_to(base).as_posix() or "."
    return result


def write_config(config: dict, path) -> Path:
    """Write `config` as YAML, atomically; sections keep their order."""
    import yaml

    from modelzoo.core.atomic import atomic_write

    path = Path(path)
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return path
