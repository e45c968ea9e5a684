"""FAKE hbm_runtime, for tests only: NOT D-Robotics' package. It runs no BPU and knows nothing of modelzoo.

It is written from the public interface alone (docs/board.md, "hbm_runtime"; source: D-Robotics/rdk_s_doc,
`04_Algorithm_Application/02_Python_API.md`), and imports neither modelzoo, onnxruntime nor OpenCV, so a
test that compares zoo's answer with an independent computation of this fake's model checks zoo, not a
copy of itself:

- `HB_HBMRuntime(model_file: str)` / `HB_HBMRuntime(model_files: List[str])`;
- read-only properties keyed by model name (then tensor name): `model_names`, `model_count`, `model_descs`,
  `hbm_descs`, `compile_bpu_core_num`, `input_counts`, `input_names`, `input_shapes`, `input_dtypes`
  (`hbDNNDataType`), `input_quants` (`QuantParams`), the same for outputs, and `sched_params`
  (`SchedParam`: `.priority`, `.customId`, `.bpu_cores`, `.deviceId`);
- `version`: a read-only `str` attribute, on the class (`HB_HBMRuntime.version`) and on instances;
- `run(x | {input: x} | {model: {input: x}}, model_name=None, priority=None, bpu_cores=None, custom_id=None,
  device_id=None)` -> `{model: {output: ndarray}}`; a wrong shape or dtype is a ValueError; the scheduling
  arguments are dicts keyed by loaded model names (a bare value is a TypeError, as pybind11 refuses an
  argument of the wrong type; an unknown model name, a priority outside 0..255 or cores the S100 does not
  have are ValueErrors) and override `set_scheduling_params(...)`'s defaults for that call only;
- the S100 has one BPU core: `bpu_cores` is `[0]`, or `[-1]` for "any core" (the default here).

A fake ".hbm" is a JSON file this module defines (`write_fake_hbm`, with `featuremap_model` / `nv12_model`):
per model its inputs, outputs and a tiny reference computation the fake evaluates with numpy:

- "featuremap": one float32 input, channels on axis 1. The features are each channel's mean over every other
  axis but the batch, per cell of a `grid` x `grid` split of the last two axes, ordered (channel, row cell,
  column cell); logits = features @ weight + bias.
- "nv12": uint8 Y [N,H,W,1] and UV [N,H/2,W/2,2] (U then V, each sample covering a 2x2 block of pixels),
  turned back into RGB 0..255 with BT.601 limited range as ITU-R BT.601 defines it (Y = 16 + 219 E'y,
  Cb = 128 + 224 (E'b - E'y) / 1.772, Cr = 128 + 224 (E'r - E'y) / 1.402 with E'y = 0.299 E'r + 0.587 E'g
  + 0.114 E'b), normalized as hb_compile's `data_mean_and_scale` does, (rgb - mean_value) * scale_value,
  then the same features and logits.

- "detections" (in `compute`, with either input kind): the logits are read as K designed candidates' class
  logits [K, C]. Each candidate sits in one cell (row, col) of one stride's grid over the input and has
  the distances from that cell's centre to its box's left, top, right and bottom edges, in cells. Outputs
  then hold one of two layouts (their `value`):
  "anchor_free": [N, 4 + C, A], every cell of every stride (stride order, row-major), the box centre x, y,
  width and height in input pixels (centre +- distance, times the stride), then the sigmoid of each class
  logit; cells with no candidate hold 0.
  "class_logits" / "box_distributions" (with a `stride`): the head split per stride, NHWC as D-Robotics'
  S100 detectors give it: the class logits [N, H/s, W/s, C] (`background`, -20 by default, elsewhere),
  and per edge `bins` logits whose softmax has the edge distance as its mean [N, H/s, W/s, 4 * bins]
  (the probability shared between the two bins around the distance; zeros elsewhere).

An output whose dtype is an integer type and that has a SCALE quantization holds
`clip(round(value / scale) + zero_point)`, per tensor or along `axis`; reading it back is
`(q - zero_point) * scale` (docs/board.md).

Fake only: `RUNTIMES` lists every runtime created; each keeps `calls` (one record per model per `run`:
input shapes and dtypes, the overrides given and the scheduling in effect), `scheduling_calls` (the
arguments of each `set_scheduling_params`) and `last_inputs` ({model: {input: copy}} of the last run).
Set FAKE_HBM_RUNTIME_IMPORT_ERROR=1 to make the import raise RuntimeError, as the real package does on a
machine without the board libraries (HBM_RUNTIME_SKIP_CHECK=1 overrides it).
"""

from __future__ import annotations

import enum
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FAKE = True
FORMAT = "fake-hbm/1"
VERSION = "3.5.0-fake"
RUNTIMES: list = []  # fake only: every HB_HBMRuntime created, for tests to inspect

if os.environ.get("FAKE_HBM_RUNTIME_IMPORT_ERROR") and not os.environ.get("HBM_RUNTIME_SKIP_CHECK"):
    raise RuntimeError("libhbucp.so: cannot open shared object file (fake hbm_runtime simulating a host)")


class hbDNNDataType(enum.IntEnum):  # noqa: N801 (the documented name); values as the docs print them (U8: 3, S32: 8)
    S4 = 0
    U4 = 1
    S8 = 2
    U8 = 3
    F16 = 4
    S16 = 5
    U16 = 6
    F32 = 7
    S32 = 8
    U32 = 9
    F64 = 10
    S64 = 11
    U64 = 12
    BOOL8 = 13
    MAX = 14


class hbDNNQuantiType(enum.IntEnum):  # noqa: N801 (the documented name)
    NONE = 0
    SCALE = 1


NUMPY_DTYPES = {
    "S8": np.int8,
    "U8": np.uint8,
    "F16": np.float16,
    "S16": np.int16,
    "U16": np.uint16,
    "F32": np.float32,
    "S32": np.int32,
    "U32": np.uint32,
    "F64": np.float64,
    "S64": np.int64,
    "U64": np.uint64,
    "BOOL8": np.bool_,
}
S100_BPU_CORES = (0, -1)  # "S100 allows 1 core"; -1 = any (API, SchedParam)


@dataclass
class QuantParams:
    scale: np.ndarray
    zero_point: np.ndarray
    quant_type: hbDNNQuantiType
    axis: int = 0


@dataclass
class SchedParam:
    priority: int = 0
    customId: int = 0  # noqa: N815 (the documented attribute names)
    bpu_cores: list = field(default_factory=lambda: [-1])
    deviceId: int = 0  # noqa: N815

    def copy(self) -> SchedParam:
        return SchedParam(self.priority, self.customId, list(self.bpu_cores), self.deviceId)


def _no_quant() -> QuantParams:
    return QuantParams(np.zeros(0, np.float32), np.zeros(0, np.int32), hbDNNQuantiType.NONE, 0)


# --- the fake model ------------------------------------------------------------------------------


@dataclass
class _Tensor:
    name: str
    shape: tuple
    dtype: hbDNNDataType
    quant: QuantParams
    value: str = "logits"  # outputs: "logits", "features", or a detections layout (see the module docstring)
    stride: int = 0  # the split head's outputs: which stride's grid

    @classmethod
    def parse(cls, doc: dict) -> _Tensor:
        quant = _no_quant()
        if doc.get("quant"):
            q = doc["quant"]
            scale = np.asarray(q["scale"], np.float32).reshape(-1)
            quant = QuantParams(
                scale,
                np.asarray(q.get("zero_point", [0]), np.int32).reshape(-1),
                hbDNNQuantiType.SCALE,
                int(q.get("axis", 0)),
            )
        return cls(
            doc["name"],
            tuple(int(d) for d in doc["shape"]),
            hbDNNDataType[doc["dtype"]],
            quant,
            doc.get("value", "logits"),
            int(doc.get("stride", 0)),
        )


class _Model:
    def __init__(self, doc: dict, path: str):
        self.name = doc["name"]
        self.path = path
        self.desc = doc.get("desc", "")
        self.core_num = int(doc.get("compile_bpu_core_num", 1))
        self.inputs = [_Tensor.parse(t) for t in doc["inputs"]]
        self.outputs = [_Tensor.parse(t) for t in doc["outputs"]]
        compute = doc["compute"]
        self.kind = compute["kind"]
        self.grid = int(compute.get("grid", 1))
        self.weight = np.asarray(compute["weight"], np.float64)
        self.bias = np.asarray(compute["bias"], np.float64)
        if self.kind == "nv12":
            self.y_name, self.uv_name = compute["y"], compute["uv"]
            self.mean_value = np.asarray(compute.get("mean_value", [0, 0, 0]), np.float64).reshape(1, 3, 1, 1)
            self.scale_value = np.asarray(compute.get("scale_value", [1, 1, 1]), np.float64).reshape(1, 3, 1, 1)
        elif self.kind != "featuremap":
            raise RuntimeError(f"unknown fake compute kind {self.kind!r}")
        self.detections = compute.get("detections")

    def tensor(self, name: str) -> _Tensor:
        return next(t for t in self.inputs if t.name == name)

    def check(self, name: str, array) -> np.ndarray:
        """The documented checks: known input, same dtype, same shape; non-contiguous arrays are copied."""
        if name not in [t.name for t in self.inputs]:
            raise ValueError(f"model {self.name} has no input {name!r}; inputs: {[t.name for t in self.inputs]}")
        if not isinstance(array, np.ndarray):
            raise TypeError(f"input {name} must be a numpy.ndarray, got {type(array).__name__}")
        spec = self.tensor(name)
        if array.dtype != np.dtype(NUMPY_DTYPES[spec.dtype.name]):
            raise ValueError(f"input {name} of {self.name} must be {spec.dtype.name}, got {array.dtype}")
        if tuple(array.shape) != spec.shape:
            raise ValueError(f"input {name} of {self.name} must have shape {list(spec.shape)}, got {list(array.shape)}")
        return np.ascontiguousarray(array)

    def infer(self, feeds: dict) -> dict:
        if self.kind == "featuremap":
            x = feeds[self.inputs[0].name].astype(np.float64)
        else:
            rgb = nv12_to_rgb(feeds[self.y_name], feeds[self.uv_name])  # [N, H, W, 3], 0..255
            x = (rgb.transpose(0, 3, 1, 2) - self.mean_value) * self.scale_value
        features = _cell_means(x, self.grid)
        values = {"features": features, "logits": features @ self.weight + self.bias}
        results = {}
        for t in self.outputs:
            if t.value in values:
                value = values[t.value]
            else:
                value = _detection_layout(self.detections, values["logits"], t.value, t.stride)
            results[t.name] = _store(value.reshape(t.shape), t)
        return results


def _detection_layout(design: dict, logits: np.ndarray, layout: str, stride: int) -> np.ndarray:
    """One output of a designed detector (module docstring) for the logits [N, K * C] of its K candidates."""
    height, width = design["size"]
    strides, bins, classes = design["strides"], int(design["bins"]), int(design["classes"])
    candidates = design["candidates"]
    count = logits.shape[0]
    per_candidate = logits.reshape(count, len(candidates), classes)
    if layout == "anchor_free":
        offsets = np.cumsum([0] + [(height // s) * (width // s) for s in strides])
        out = np.zeros((count, 4 + classes, int(offsets[-1])))
        for k, candidate in enumerate(candidates):
            s = strides[candidate["level"]]
            left, top, right, bottom = candidate["ltrb"]
            x, y = candidate["col"] + 0.5, candidate["row"] + 0.5  # the cell centre, in cells
            x1, y1, x2, y2 = (x - left) * s, (y - top) * s, (x + right) * s, (y + bottom) * s
            index = offsets[candidate["level"]] + candidate["row"] * (width // s) + candidate["col"]
            out[:, :4, index] = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
            out[:, 4:, index] = 1.0 / (1.0 + np.exp(-per_candidate[:, k, :]))
        return out
    level = strides.index(stride)
    mine = [(k, c) for k, c in enumerate(candidates) if c["level"] == level]
    if layout == "class_logits":
        out = np.full((count, height // stride, width // stride, classes), float(design.get("background", -20.0)))
        for k, candidate in mine:
            out[:, candidate["row"], candidate["col"], :] = per_candidate[:, k, :]
        return out
    if layout == "box_distributions":
        out = np.zeros((count, height // stride, width // stride, 4 * bins))
        for _, candidate in mine:
            for edge, distance in enumerate(candidate["ltrb"]):
                low = int(np.floor(distance))
                probabilities = np.zeros(bins)
                probabilities[low] = 1.0 - (distance - low)
                if distance > low:
                    probabilities[low + 1] = distance - low
                # the log of each probability: a softmax gives them back (e^-60 for the empty bins)
                logs = np.log(np.maximum(probabilities, np.exp(-60.0)))
                out[:, candidate["row"], candidate["col"], edge * bins : (edge + 1) * bins] = logs
        return out
    raise RuntimeError(f"unknown fake output value {layout!r}")


def _cell_means(x: np.ndarray, grid: int) -> np.ndarray:
    """[N, C, ..., H, W] -> [N, C * grid * grid]: each channel's mean per cell of a grid over (H, W)."""
    n, c = x.shape[:2]
    h, w = x.shape[-2:]
    if h % grid or w % grid:
        raise ValueError(f"fake model: {h}x{w} does not split into a {grid}x{grid} grid")
    middle = int(np.prod(x.shape[2:-2], dtype=np.int64))
    cells = x.reshape(n, c, middle, grid, h // grid, grid, w // grid)
    return cells.mean(axis=(2, 4, 6)).reshape(n, c * grid * grid)


def _store(values: np.ndarray, tensor: _Tensor) -> np.ndarray:
    """The output as the board hands it back: float, or quantized with SCALE."""
    dtype = np.dtype(NUMPY_DTYPES[tensor.dtype.name])
    if tensor.quant.quant_type is not hbDNNQuantiType.SCALE:
        return values.astype(dtype)
    scale = tensor.quant.scale.astype(np.float64)
    zero = tensor.quant.zero_point.astype(np.float64)
    if scale.size > 1 or zero.size > 1:
        shape = [1] * values.ndim
        shape[tensor.quant.axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    info = np.iinfo(dtype)
    return np.clip(np.rint(values / scale) + zero, info.min, info.max).astype(dtype)


def nv12_to_rgb(y: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """uint8 Y [N,H,W,1] + UV [N,H/2,W/2,2] (U, V) -> float RGB [N,H,W,3] in 0..255, BT.601 limited range."""
    luma = (y[..., 0].astype(np.float64) - 16.0) / 219.0  # E'y
    chroma = uv.astype(np.float64).repeat(2, axis=1).repeat(2, axis=2)  # each sample covers 2x2 pixels
    b_minus_y = (chroma[..., 0] - 128.0) / 224.0 * 1.772  # E'b - E'y, from Cb
    r_minus_y = (chroma[..., 1] - 128.0) / 224.0 * 1.402  # E'r - E'y, from Cr
    red = luma + r_minus_y
    blue = luma + b_minus_y
    green = (luma - 0.299 * red - 0.114 * blue) / 0.587
    return np.clip(np.stack([red, green, blue], axis=-1) * 255.0, 0.0, 255.0)


# --- the runtime ---------------------------------------------------------------------------------


class _RuntimeMeta(type):
    @property
    def version(cls) -> str:
        """`HB_HBMRuntime.version`, read-only (a data descriptor of the metaclass)."""
        return VERSION


class HB_HBMRuntime(metaclass=_RuntimeMeta):  # noqa: N801 (the real class name)
    def __init__(self, model_file):
        if isinstance(model_file, str):
            paths = [model_file]
        elif isinstance(model_file, list) and model_file and all(isinstance(p, str) for p in model_file):
            paths = list(model_file)
        else:  # the documented overloads take str or List[str]
            raise TypeError(f"HB_HBMRuntime() takes a str or a List[str], got {model_file!r}")
        self._models: dict = {}
        self._hbm_descs: dict = {}
        for path in paths:
            doc = _read_fake_hbm(path)
            self._hbm_descs[path] = doc.get("desc", "")
            for model_doc in doc["models"]:
                model = _Model(model_doc, path)
                if model.name in self._models:
                    raise RuntimeError(f"model {model.name} is loaded twice")
                self._models[model.name] = model
        self._sched = {name: SchedParam() for name in self._models}
        self.calls: list = []
        self.scheduling_calls: list = []
        self.last_inputs: dict = {}
        RUNTIMES.append(self)

    # -- read-only properties ------------------------------------------------------------------
    @property
    def version(self) -> str:
        return VERSION

    @property
    def model_names(self) -> list:
        return list(self._models)

    @property
    def model_count(self) -> int:
        return len(self._models)

    @property
    def model_descs(self) -> dict:
        return {n: m.desc for n, m in self._models.items()}

    @property
    def hbm_descs(self) -> dict:
        return dict(self._hbm_descs)

    @property
    def compile_bpu_core_num(self) -> dict:
        return {n: m.core_num for n, m in self._models.items()}

    @property
    def input_counts(self) -> dict:
        return {n: len(m.inputs) for n, m in self._models.items()}

    @property
    def input_names(self) -> dict:
        return {n: [t.name for t in m.inputs] for n, m in self._models.items()}

    @property
    def input_shapes(self) -> dict:
        return {n: {t.name: list(t.shape) for t in m.inputs} for n, m in self._models.items()}

    @property
    def input_dtypes(self) -> dict:
        return {n: {t.name: t.dtype for t in m.inputs} for n, m in self._models.items()}

    @property
    def input_quants(self) -> dict:
        return {n: {t.name: t.quant for t in m.inputs} for n, m in self._models.items()}

    @property
    def output_counts(self) -> dict:
        return {n: len(m.outputs) for n, m in self._models.items()}

    @property
    def output_names(self) -> dict:
        return {n: [t.name for t in m.outputs] for n, m in self._models.items()}

    @property
    def output_shapes(self) -> dict:
        return {n: {t.name: list(t.shape) for t in m.outputs} for n, m in self._models.items()}

    @property
    def output_dtypes(self) -> dict:
        return {n: {t.name: t.dtype for t in m.outputs} for n, m in self._models.items()}

    @property
    def output_quants(self) -> dict:
        return {n: {t.name: t.quant for t in m.outputs} for n, m in self._models.items()}

    @property
    def sched_params(self) -> dict:
        return {n: p.copy() for n, p in self._sched.items()}

    # -- scheduling ----------------------------------------------------------------------------
    def set_scheduling_params(self, priority=None, bpu_cores=None, custom_id=None, device_id=None) -> None:
        given = {"priority": priority, "bpu_cores": bpu_cores, "custom_id": custom_id, "device_id": device_id}
        updates = self._scheduling(given)  # validate everything before changing anything
        self.scheduling_calls.append({k: v for k, v in given.items() if v is not None})
        for name, params in updates.items():
            self._sched[name] = params

    def _scheduling(self, given: dict) -> dict:
        """{model: SchedParam} with `given` (documented dicts keyed by model name) applied to the defaults."""
        result = {name: params.copy() for name, params in self._sched.items()}
        for argument, value in given.items():
            if value is None:
                continue
            if not isinstance(value, dict):
                raise TypeError(
                    f"{argument} must be a dict keyed by model name (e.g. {{{self.model_names[0]!r}: ...}}), "
                    f"got {type(value).__name__} {value!r}"
                )
            for name, item in value.items():
                if name not in self._models:
                    raise ValueError(f"{argument}: unknown model {name!r}; loaded: {self.model_names}")
                params = result[name]
                if argument == "bpu_cores":
                    params.bpu_cores = _check_cores(item)
                elif argument == "priority":
                    params.priority = _check_int(argument, item, 0, 255)
                elif argument == "custom_id":
                    params.customId = _check_int(argument, item, 0, None)
                else:
                    params.deviceId = _check_int(argument, item, 0, None)
        return result

    # -- inference -----------------------------------------------------------------------------
    def run(self, inputs, model_name=None, priority=None, bpu_cores=None, custom_id=None, device_id=None) -> dict:
        given = {"priority": priority, "bpu_cores": bpu_cores, "custom_id": custom_id, "device_id": device_id}
        effective = self._scheduling(given)  # run-local: the stored defaults do not change
        feeds = self._feeds(inputs, model_name)
        results = {}
        for name, tensors in feeds.items():
            model = self._models[name]
            checked = {key: model.check(key, array) for key, array in tensors.items()}
            missing = [t.name for t in model.inputs if t.name not in checked]
            if missing:
                raise ValueError(f"model {name} is missing inputs {missing}")
            self.calls.append(
                {
                    "model": name,
                    "inputs": {key: (tuple(a.shape), a.dtype.name) for key, a in checked.items()},
                    "overrides": {k: v for k, v in given.items() if v is not None},
                    "sched": effective[name].copy(),
                }
            )
            self.last_inputs[name] = {key: a.copy() for key, a in checked.items()}
            results[name] = model.infer(checked)
        return results

    def _feeds(self, inputs, model_name) -> dict:
        """x, {input: x} or {model: {input: x}} -> {model: {input: x}}, as the three documented overloads."""
        if model_name is not None and model_name not in self._models:
            raise ValueError(f"unknown model {model_name!r}; loaded: {self.model_names}")
        if isinstance(inputs, dict) and inputs and all(isinstance(v, dict) for v in inputs.values()):
            unknown = [name for name in inputs if name not in self._models]
            if unknown:
                raise ValueError(f"unknown model(s) {unknown}; loaded: {self.model_names}")
            if model_name is not None:
                if model_name not in inputs:
                    raise ValueError(f"no inputs for model {model_name!r}")
                return {model_name: inputs[model_name]}
            return inputs
        if model_name is None:
            if len(self._models) != 1:
                raise ValueError(f"model_name is required when several models are loaded ({self.model_names})")
            model_name = self.model_names[0]
        if isinstance(inputs, np.ndarray):
            model = self._models[model_name]
            if len(model.inputs) != 1:
                raise ValueError(f"model {model_name} has {len(model.inputs)} inputs: pass {{input_name: array}}")
            return {model_name: {model.inputs[0].name: inputs}}
        if isinstance(inputs, dict) and inputs and all(isinstance(v, np.ndarray) for v in inputs.values()):
            return {model_name: inputs}
        raise TypeError(
            "run() takes an np.ndarray, a Dict[str, np.ndarray] or a Dict[str, Dict[str, np.ndarray]], "
            f"got {type(inputs).__name__}"
        )


def _check_int(argument: str, value, low: int, high) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{argument} values must be int, got {type(value).__name__} {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{argument} must be in {low}..{high if high is not None else ''}, got {value}")
    return int(value)


def _check_cores(value) -> list:
    if not isinstance(value, list) or any(isinstance(c, bool) or not isinstance(c, (int, np.integer)) for c in value):
        raise TypeError(f"bpu_cores values must be List[int], got {value!r}")
    if len(value) != 1 or value[0] not in S100_BPU_CORES:
        raise ValueError(f"bpu_cores {value!r}: the S100 has one BPU core, use [0] (or [-1] for any)")
    return [int(c) for c in value]


# --- fake .hbm files -----------------------------------------------------------------------------


def _read_fake_hbm(path: str) -> dict:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RuntimeError(f"failed to load hbm {path}: not a (fake) hbm file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not doc.get("models"):
        raise RuntimeError(f"failed to load hbm {path}: not a (fake) hbm file")
    return doc


def read_fake_hbm(path) -> dict:
    """The JSON document of a fake .hbm, for tests that compute the expected answer themselves."""
    return _read_fake_hbm(str(path))


def _output(name: str, shape, dtype: str, scale, zero_point, axis: int, value: str = "logits") -> dict:
    out = {"name": name, "shape": [int(d) for d in shape], "dtype": dtype, "value": value}
    if scale is not None:
        zero_point = 0 if zero_point is None else zero_point
        out["quant"] = {
            "scale": np.asarray(scale, np.float32).reshape(-1).tolist(),
            "zero_point": np.asarray(zero_point, np.int64).reshape(-1).tolist(),
            "axis": int(axis),
        }
    return out


def _compute(kind: str, features: int, classes: int, grid: int, seed: int, weight, bias, **extra) -> dict:
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((features, classes)) if weight is None else np.asarray(weight, np.float64)
    bias = rng.standard_normal(classes) * 0.1 if bias is None else np.asarray(bias, np.float64)
    if weight.shape != (features, classes) or bias.shape != (classes,):
        raise ValueError(f"weight must be [{features}, {classes}] and bias [{classes}]")
    return {"kind": kind, "grid": grid, "weight": weight.tolist(), "bias": bias.tolist(), **extra}


def featuremap_model(
    name: str = "r3d_18",
    *,
    input_name: str = "video",
    input_shape=(1, 3, 16, 112, 112),
    input_dtype: str = "F32",
    output_name: str = "scores",
    classes: int = 400,
    grid: int = 1,
    seed: int = 0,
    weight=None,
    bias=None,
    output_dtype: str = "F32",
    scale=None,
    zero_point=None,
    axis: int = 1,
    extra_outputs: tuple = (),
) -> dict:
    """One model with a featuremap input (float32 as the published r3d_18.hbm); `scale` makes the
    output quantized (SCALE) with `zero_point` along `axis`. `extra_outputs` names outputs that hold the
    features, after the logits."""
    channels = int(input_shape[1])
    batch = int(input_shape[0])
    outputs = [_output(output_name, (batch, classes), output_dtype, scale, zero_point, axis)]
    outputs += [_output(o, (batch, channels * grid * grid), "F32", None, None, 0, "features") for o in extra_outputs]
    return {
        "name": name,
        "desc": f"fake featuremap model {name}",
        "inputs": [{"name": input_name, "shape": [int(d) for d in input_shape], "dtype": input_dtype}],
        "outputs": outputs,
        "compute": _compute("featuremap", channels * grid * grid, classes, grid, seed, weight, bias, input=input_name),
    }


def nv12_model(
    name: str = "resnet18_224x224_nv12",
    *,
    y_name: str = "data_y",
    uv_name: str = "data_uv",
    height: int = 224,
    width: int = 224,
    output_name: str = "output",
    classes: int = 1000,
    grid: int = 2,
    seed: int = 0,
    weight=None,
    bias=None,
    mean_value=(0.0, 0.0, 0.0),
    scale_value=(1.0, 1.0, 1.0),
    output_dtype: str = "F32",
    scale=None,
    zero_point=None,
    axis: int = 1,
) -> dict:
    """One model compiled with input_type_rt nv12 and norm_type data_mean_and_scale: Y and UV uint8 inputs."""
    return {
        "name": name,
        "desc": f"fake NV12 model {name}",
        "inputs": [
            {"name": y_name, "shape": [1, height, width, 1], "dtype": "U8"},
            {"name": uv_name, "shape": [1, height // 2, width // 2, 2], "dtype": "U8"},
        ],
        "outputs": [_output(output_name, (1, classes), output_dtype, scale, zero_point, axis)],
        "compute": _compute(
            "nv12",
            3 * grid * grid,
            classes,
            grid,
            seed,
            weight,
            bias,
            y=y_name,
            uv=uv_name,
            mean_value=[float(v) for v in mean_value],
            scale_value=[float(v) for v in scale_value],
        ),
    }


def detector_model(
    name: str = "yolo11n",
    *,
    layout: str = "split",
    candidates: list,
    classes: int = 80,
    size=(640, 640),
    strides=(8, 16, 32),
    bins: int = 16,
    nv12: bool = True,
    input_name: str = "images",
    output_names=None,
    grid: int = 2,
    weight=None,
    bias=None,
    scale_value=(1 / 255, 1 / 255, 1 / 255),
    box_scale=None,
) -> dict:
    """A designed detector (module docstring): `candidates` are dicts with level (index into `strides`),
    row, col and ltrb. `layout` "split" gives the head per stride (class logits then box distributions,
    stride by stride, as D-Robotics' S100 .hbm lists them), "anchor_free" the one decoded output
    [1, 4 + classes, cells]. NV12 input `<input_name>_y`/`_uv` normalized with data_scale `scale_value`,
    else a float32 featuremap `input_name`. `box_scale` stores the box distributions as S32 with that
    per-channel SCALE (axis 3), as the S100 samples allow for them. The class logits of candidate k are
    features @ weight[:, k*C:(k+1)*C] + bias[k*C:(k+1)*C]."""
    height, width = (int(d) for d in size)
    if layout == "split":
        outputs = []
        for stride in strides:
            grid_shape = (1, height // stride, width // stride)
            outputs.append(_output("", (*grid_shape, classes), "F32", None, None, 3, "class_logits"))
            box_dtype = "S32" if box_scale is not None else "F32"
            outputs.append(_output("", (*grid_shape, 4 * bins), box_dtype, box_scale, 0, 3, "box_distributions"))
            outputs[-2]["stride"] = outputs[-1]["stride"] = int(stride)
    elif layout == "anchor_free":
        cells = sum((height // s) * (width // s) for s in strides)
        outputs = [_output("", (1, 4 + classes, cells), "F32", None, None, 1, "anchor_free")]
    else:
        raise ValueError(f"layout is split or anchor_free, not {layout!r}")
    names = list(output_names) if output_names else [f"output{i}" for i in range(len(outputs))]
    for output, output_name in zip(outputs, names, strict=True):
        output["name"] = output_name
    design = {
        "size": [height, width],
        "strides": [int(s) for s in strides],
        "bins": int(bins),
        "classes": int(classes),
        "candidates": [dict(c) for c in candidates],
    }
    if nv12:
        inputs = [
            {"name": f"{input_name}_y", "shape": [1, height, width, 1], "dtype": "U8"},
            {"name": f"{input_name}_uv", "shape": [1, height // 2, width // 2, 2], "dtype": "U8"},
        ]
        extra = {"y": f"{input_name}_y", "uv": f"{input_name}_uv", "scale_value": [float(v) for v in scale_value]}
        compute = _compute("nv12", 3 * grid * grid, len(candidates) * classes, grid, 0, weight, bias, **extra)
    else:
        inputs = [{"name": input_name, "shape": [1, 3, height, width], "dtype": "F32"}]
        compute = _compute("featuremap", 3 * grid * grid, len(candidates) * classes, grid, 0, weight, bias)
    compute["detections"] = design
    return {"name": name, "desc": f"fake detector {name}", "inputs": inputs, "outputs": outputs, "compute": compute}


def write_fake_hbm(path, note: str | None = None, *, models=None, desc: str = "", **featuremap) -> Path:
    """Write a fake .hbm holding `models` (dicts from featuremap_model / nv12_model), or one
    `featuremap_model(**featuremap)`. `note` is kept in the file for people reading it (e.g. which ONNX the
    fake stands in for); the fake never reads it."""
    if models is None:
        models = [featuremap_model(**featuremap)]
    elif featuremap:
        raise TypeError("pass either models or featuremap_model keywords, not both")
    doc = {"format": FORMAT, "desc": desc, "note": note, "models": list(models)}
    Path(path).write_text(json.dumps(doc), encoding="utf-8")
    return Path(path)
