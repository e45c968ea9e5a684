"""The hb_compile config for a float "featuremap" model input, derived from the spec and the ONNX file.

Normalization stays on the host (norm_type no_preprocess), so the board model takes exactly the
tensor `zoo preprocess` writes, and calibration data is that same tensor.
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

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:
        raise ConversionError(f"cannot read {onnx_path} as ONNX ({exc}); pass a valid .onnx file") from exc
    initializers = {init.name for init in model.graph.initializer}
    for arg in model.graph.input:
        if arg.name not in initializers:
            dims = arg.type.tensor_type.shape.dim
            return arg.name, tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims)
    raise ConversionError(f"{onnx_path} has no graph input; it cannot be compiled")


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
) -> dict:
    """The hb_compile config dict for a single float featuremap input (e.g. a video clip).

    `calib_dir=None` means no calibration data: calibration_type `skip` (random data), as fast-perf does.
    """
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
            "input_type_rt": "featuremap",
            "input_type_train": "featuremap",
            # Public configs only show NCHW/NHWC; for a featuremap input the layout is not used
            # to reorder data, and NCHW matches channels-first NCTHW.
            "input_layout_rt": "NCHW",
            "input_layout_train": "NCHW",
            "input_shape": "x".join(map(str, shape)),
            "norm_type": "no_preprocess",
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
