"""The proof that a rewritten ONNX graph computes what the original did: both run in onnxruntime
on the same random input, and the outputs must agree within float tolerance."""

from __future__ import annotations

import math
from dataclasses import dataclass

from modelzoo.core.errors import ConversionError

DEFAULT_TOLERANCE = 1e-5
# Random input values fed per proof, all inputs together: 16M is 64 MB of float32 (128 MB while drawn),
# far above a 640x640 image (1.2M) or a 16-frame 112x112 clip (0.6M).
MAX_INPUT_VALUES = 1 << 24


@dataclass(frozen=True)
class Equivalence:
    """How close the patched graph's outputs are to the original's on the same random input."""

    max_abs_diff: float
    max_abs_output: float
    tolerance: float
    input_shapes: dict

    @property
    def relative_diff(self) -> float:
        return self.max_abs_diff / self.max_abs_output if self.max_abs_output else self.max_abs_diff

    def to_dict(self) -> dict:
        return {
            "max_abs_diff": self.max_abs_diff,
            "max_abs_output": self.max_abs_output,
            "relative_diff": self.relative_diff,
            "tolerance": self.tolerance,
            "input_shapes": self.input_shapes,
        }


def verify_equivalent(
    original,
    patched,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    threads: int | None = None,
    input_shape: tuple | None = None,
) -> Equivalence:
    """Run both graphs in onnxruntime on the same random input; raise ConversionError if any output differs.

    The bound is max |a - b| <= tolerance * max |a| over all outputs (absolute when the outputs are all 0).
    Dynamic dimensions of the first input take `input_shape` (the shape the model really gets), else 1.
    """
    import numpy as np

    first = _session(original, threads, "original")
    second = _session(patched, threads, "patched")
    rng = np.random.default_rng(seed)
    shapes = {}
    for index, arg in enumerate(first.get_inputs()):
        wanted = (
            input_shape if index == 0 and input_shape and len(input_shape) == len(arg.shape) else (1,) * len(arg.shape)
        )
        shapes[arg.name] = [d if isinstance(d, int) and d > 0 else int(w) for d, w in zip(arg.shape, wanted)]
    # the static dimensions are what the file claims: bounded before anything is allocated
    values = sum(math.prod(shape) for shape in shapes.values())
    if values > MAX_INPUT_VALUES:
        declared = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ConversionError(
            f"the model declares inputs {declared}: {values:,} values, more than the {MAX_INPUT_VALUES:,} zoo "
            "feeds to prove a patch; check that the ONNX is this model's (its input shape)"
        )
    feeds = {}
    for arg in first.get_inputs():
        shape = shapes[arg.name]
        dtype = _numpy_dtype(arg.type)
        feeds[arg.name] = rng.standard_normal(shape).astype(dtype) if dtype.kind == "f" else np.zeros(shape, dtype)
    expected_names = [o.name for o in first.get_outputs()]
    if [o.name for o in second.get_outputs()] != expected_names:
        raise ConversionError(
            f"the patched graph's outputs {[o.name for o in second.get_outputs()]} differ from the original's "
            f"{expected_names}; the patch must keep output names"
        )
    expected = first.run(None, feeds)
    actual = second.run(None, feeds)
    diff, scale = 0.0, 0.0
    for name, a, b in zip(expected_names, expected, actual):
        if a.shape != b.shape:
            raise ConversionError(f"the patch changed output {name!r} from shape {list(a.shape)} to {list(b.shape)}")
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if not np.all(np.isfinite(a)):
            raise ConversionError(
                f"the original graph's output {name!r} is not finite on random input, so the patch cannot be "
                "proven equivalent; check the model's weights"
            )
        # NaN in the patched output must fail, and max() would silently drop it
        diff = max(diff, float(np.max(np.abs(a - b), initial=0.0)) if np.all(np.isfinite(b)) else float("inf"))
        scale = max(scale, float(np.max(np.abs(a), initial=0.0)))
    result = Equivalence(diff, scale, tolerance, {k: list(v.shape) for k, v in feeds.items()})
    if result.relative_diff > tolerance:
        raise ConversionError(
            f"the patched graph is NOT equivalent to the original: max |difference| {diff:.3g} is "
            f"{result.relative_diff:.3g} of max |output| {scale:.3g}, above the {tolerance:g} tolerance; "
            "the patch is wrong for this model, do not compile it (report it with the model file)"
        )
    return result


def _session(model, threads, which: str):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ConversionError(f"onnxruntime cannot load the {which} graph ({exc})") from exc


def _numpy_dtype(ort_type: str):
    import numpy as np

    names = {
        "tensor(float)": np.float32,
        "tensor(double)": np.float64,
        "tensor(float16)": np.float16,
        "tensor(int64)": np.int64,
        "tensor(int32)": np.int32,
        "tensor(int8)": np.int8,
        "tensor(uint8)": np.uint8,
        "tensor(bool)": np.bool_,
    }
    return np.dtype(names.get(ort_type, np.float32))
