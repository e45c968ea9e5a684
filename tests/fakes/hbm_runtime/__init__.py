"""FAKE hbm_runtime, for tests only: NOT D-Robotics' package, and it runs no BPU.

It implements the documented Python interface of the RDK S100 `hbm_runtime` (see FACTS.md):
`HB_HBMRuntime(path | [paths])`, the metadata properties keyed by model name then tensor name,
`run(x | {input: x} | {model: {input: x}}, priority=, bpu_cores=, ...)` returning
`{model: {output: ndarray}}`, ValueError on a wrong shape or dtype, quantized S8/S32 outputs
with SCALE quantization, `set_scheduling_params`, and the static `version()`.

A fake ".hbm" is a small JSON file (written by `write_fake_hbm`) that names an ONNX model;
the logits are computed by onnxruntime from it, so results are real numbers, then quantized
as the JSON says. Set FAKE_HBM_RUNTIME_IMPORT_ERROR=1 to make the import raise RuntimeError,
as the real package does on a machine without the board libraries.
"""

from __future__ import annotations

import enum
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FAKE = True
MAGIC = "fake-hbm-for-modelzoo-tests"

if os.environ.get("FAKE_HBM_RUNTIME_IMPORT_ERROR") and not os.environ.get("HBM_RUNTIME_SKIP_CHECK"):
    raise RuntimeError("libhbucp.so: cannot open shared object file (fake hbm_runtime simulating a host)")


class DataType(enum.Enum):
    F32 = np.float32
    S8 = np.int8
    U8 = np.uint8
    S32 = np.int32


class QuantType(enum.Enum):
    NONE = 0
    SCALE = 1


@dataclass
class QuantParams:
    quant_type: QuantType
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int = 0


class _Model:
    def __init__(self, path: Path):
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RuntimeError(f"failed to load hbm {path}: not a (fake) hbm file ({exc})") from None
        if doc.get("magic") != MAGIC:
            raise RuntimeError(f"failed to load hbm {path}: not a (fake) hbm file")
        import onnxruntime as ort

        self.name = doc["model_name"]
        self.session = ort.InferenceSession(str(Path(path).parent / doc["onnx"]), providers=["CPUExecutionProvider"])
        self.input_name = doc["input_name"]
        self.output_name = doc["output_name"]
        self.input_shape = tuple(doc["input_shape"])
        self.output_shape = tuple(doc["output_shape"])
        self.output_dtype = DataType[doc.get("output_dtype", "F32")]
        quant = doc.get("output_quant")
        if quant:
            self.output_quant = QuantParams(
                QuantType.SCALE,
                np.asarray(quant["scale"], np.float32),
                np.asarray(quant.get("zero_point", 0), np.int32).reshape(-1),
                int(quant.get("axis", 0)),
            )
        else:
            self.output_quant = QuantParams(QuantType.NONE, np.zeros(0, np.float32), np.zeros(0, np.int32), 0)

    def infer(self, x: np.ndarray) -> np.ndarray:
        onnx_input = self.session.get_inputs()[0].name
        logits = self.session.run(None, {onnx_input: x})[0].reshape(self.output_shape)
        if self.output_quant.quant_type is not QuantType.SCALE:
            return logits.astype(np.float32)
        scale, zero = self.output_quant.scale, self.output_quant.zero_point.astype(np.float32)
        if scale.size > 1:  # per channel along axis
            shape = [1] * logits.ndim
            shape[self.output_quant.axis] = scale.size
            scale, zero = scale.reshape(shape), zero.reshape(shape) if zero.size > 1 else zero
        info = np.iinfo(self.output_dtype.value)
        return np.clip(np.round(logits / scale) + zero, info.min, info.max).astype(self.output_dtype.value)


class HB_HBMRuntime:  # noqa: N801 (the real class name)
    def __init__(self, model_file):
        paths = model_file if isinstance(model_file, (list, tuple)) else [model_file]
        models = [_Model(Path(p)) for p in paths]
        self._models = {m.name: m for m in models}
        self._sched = {name: {"priority": 0, "bpu_cores": [0]} for name in self._models}
        self.calls: list = []  # fake only: (model name, run options) per run, for tests to inspect

    @staticmethod
    def version() -> str:
        return "0.0.0-fake"

    @property
    def model_count(self) -> int:
        return len(self._models)

    @property
    def model_names(self) -> list:
        return list(self._models)

    @property
    def input_names(self) -> dict:
        return {n: [m.input_name] for n, m in self._models.items()}

    @property
    def input_shapes(self) -> dict:
        return {n: {m.input_name: m.input_shape} for n, m in self._models.items()}

    @property
    def input_dtypes(self) -> dict:
        return {n: {m.input_name: DataType.F32} for n, m in self._models.items()}

    @property
    def input_quants(self) -> dict:
        none = QuantParams(QuantType.NONE, np.zeros(0, np.float32), np.zeros(0, np.int32), 0)
        return {n: {m.input_name: none} for n, m in self._models.items()}

    @property
    def output_names(self) -> dict:
        return {n: [m.output_name] for n, m in self._models.items()}

    @property
    def output_shapes(self) -> dict:
        return {n: {m.output_name: m.output_shape} for n, m in self._models.items()}

    @property
    def output_dtypes(self) -> dict:
        return {n: {m.output_name: m.output_dtype} for n, m in self._models.items()}

    @property
    def output_quants(self) -> dict:
        return {n: {m.output_name: m.output_quant} for n, m in self._models.items()}

    @property
    def sched_params(self) -> dict:
        return {n: dict(p) for n, p in self._sched.items()}

    def set_scheduling_params(self, priority=None, bpu_cores=None) -> None:
        for name, value in (priority or {}).items():
            self._sched[name]["priority"] = _check_priority(value)
        for name, value in (bpu_cores or {}).items():
            self._sched[name]["bpu_cores"] = _check_cores(value)

    def run(self, inputs, *, priority=None, bpu_cores=None, custom_id=None, device_id=None):
        feeds = self._normalize(inputs)
        options = {"priority": priority, "bpu_cores": bpu_cores, "custom_id": custom_id, "device_id": device_id}
        if priority is not None:
            _check_priority(priority)
        if bpu_cores is not None:
            _check_cores(bpu_cores)
        results = {}
        for name, tensors in feeds.items():
            model = self._models[name]
            if set(tensors) != {model.input_name}:
                raise ValueError(f"model {name} takes inputs {[model.input_name]}, got {sorted(tensors)}")
            x = tensors[model.input_name]
            if not isinstance(x, np.ndarray) or x.dtype != np.float32:
                raise ValueError(
                    f"input {model.input_name} must be float32 ndarray, got {getattr(x, 'dtype', type(x))}"
                )
            if tuple(x.shape) != model.input_shape:
                raise ValueError(f"input {model.input_name} must have shape {model.input_shape}, got {tuple(x.shape)}")
            results[name] = {model.output_name: model.infer(x)}
            self.calls.append((name, options))
        return results

    def _normalize(self, inputs) -> dict:
        """Accept x, {input: x} or {model: {input: x}}, like the real runtime."""
        if isinstance(inputs, np.ndarray):
            if len(self._models) != 1:
                raise ValueError("a bare array needs a single-model runtime")
            ((name, model),) = self._models.items()
            return {name: {model.input_name: inputs}}
        if not isinstance(inputs, dict):
            raise ValueError(f"run() takes an ndarray or a dict, got {type(inputs).__name__}")
        if inputs and all(isinstance(v, dict) for v in inputs.values()):
            unknown = set(inputs) - set(self._models)
            if unknown:
                raise ValueError(f"unknown model(s) {sorted(unknown)}; loaded: {self.model_names}")
            return inputs
        if len(self._models) != 1:
            raise ValueError("{input: array} needs a single-model runtime; use {model: {input: array}}")
        return {next(iter(self._models)): inputs}


def _check_priority(value) -> int:
    if not isinstance(value, int) or not 0 <= value <= 255:
        raise ValueError(f"priority must be an int in 0..255, got {value!r}")
    return value


def _check_cores(value) -> list:
    if not isinstance(value, (list, tuple)) or not value or any(c != 0 for c in value):
        raise ValueError(f"bpu_cores must be a list of core ids of this board ([0]), got {value!r}")
    return list(value)


def write_fake_hbm(
    path,
    onnx_name: str,
    *,
    model_name: str = "r3d_18",
    input_name: str = "video_in",
    output_name: str = "scores",
    input_shape=(1, 3, 16, 112, 112),
    output_shape=(1, 400),
    output_dtype: str = "F32",
    scale=None,
    zero_point=0,
    axis: int = 1,
) -> Path:
    """Write a fake .hbm (JSON) that runs `onnx_name` (relative to the .hbm's folder)."""
    doc = {
        "magic": MAGIC,
        "model_name": model_name,
        "onnx": onnx_name,
        "input_name": input_name,
        "output_name": output_name,
        "input_shape": list(input_shape),
        "output_shape": list(output_shape),
        "output_dtype": output_dtype,
    }
    if scale is not None:
        doc["output_quant"] = {"scale": scale, "zero_point": zero_point, "axis": axis}
    Path(path).write_text(json.dumps(doc), encoding="utf-8")
    return Path(path)
