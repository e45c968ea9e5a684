"""An ONNX file's interface against a spec: input and output names and shapes, and stand-in graphs of
a spec's interface for checks."""

from __future__ import annotations

from pathlib import Path


def graph_inputs(onnx_model) -> list:
    """The graph's real inputs (initializers listed as inputs by older exporters left out)."""
    initializers = {init.name for init in onnx_model.graph.initializer}
    return [value for value in onnx_model.graph.input if value.name not in initializers]


def value_shape(value) -> list | None:
    """[int or name] of a graph value; a dimension without a value is its name or "?"; None without a shape."""
    tensor_type = value.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor_type.shape.dim]


def value_dtype(value) -> str | None:
    """The numpy name of a graph value's element type ("float32", "float16", ...), None when unknown."""
    from onnx import helper

    elem_type = value.type.tensor_type.elem_type
    try:
        return str(helper.tensor_dtype_to_np_dtype(elem_type)) if elem_type else None
    except (KeyError, ValueError, TypeError):
        return None


def _dtype_problem(value, which: str, expected: str) -> list:
    dtype = value_dtype(value)
    return [] if dtype is None or dtype == expected else [f"its {which} {value.name!r} is {dtype}, not {expected}"]


def _shape_text(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _shape_differs(actual: list | None, expected: tuple) -> bool:
    """A fixed dimension that differs, or another rank; dynamic dimensions on either side fit anything."""
    if actual is None:
        return False
    if len(actual) != len(expected):
        return True
    return any(isinstance(a, int) and isinstance(e, int) and a != e for a, e in zip(actual, expected))


def _value_problems(value, which: str, expected, model: str, verb: str) -> list:
    """How one graph input or output differs from the spec's tensor: name, shape, dtype."""
    problems = []
    shape = value_shape(value)
    if value.name != expected.name:
        problems.append(f"its {which} is named {value.name!r}, not {expected.name!r}")
    if which == "input" and not value.type.tensor_type.elem_type:
        # onnxruntime refuses such a file, and nothing about it can be checked
        problems.append(f"its input {value.name!r} declares no tensor type, {model} {verb} {expected.dtype}")
    elif which == "input" and shape is None:
        problems.append(f"its input {value.name!r} declares no shape, {model} {verb} {_shape_text(expected.shape)}")
    if _shape_differs(shape, expected.shape):
        problems.append(
            f"its {which} {value.name!r} is {_shape_text(shape)}, {model} {verb} {_shape_text(expected.shape)}"
        )
    problems.extend(_dtype_problem(value, which, expected.dtype))
    return problems


def interface_problems(onnx_model, spec) -> list:
    """What differs between the ONNX graph's input and first output and the spec's, one string each."""
    problems = []
    inputs = graph_inputs(onnx_model)
    if len(inputs) != 1:
        names = ", ".join(repr(i.name) for i in inputs) or "none"
        problems.append(f"it has {len(inputs)} inputs ({names}), {spec.name} takes one ({spec.input.name!r})")
    else:
        problems.extend(_value_problems(inputs[0], "input", spec.input, spec.name, "takes"))
    outputs = list(onnx_model.graph.output)
    if not outputs:
        problems.append("it has no output")
        return problems
    problems.extend(_value_problems(outputs[0], "output", spec.output, spec.name, "gives"))
    return problems


def constant_output_onnx(spec, values, path) -> Path:
    """A tiny ONNX with the spec's input and output whose output is `values` ([1, ...], broadcast over the
    batch), plus a negligible multiple of the input's mean, so the input stays part of the graph."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    values = np.asarray(values, np.float32)
    rank = len(spec.input.shape)
    out_rank = len(spec.output.shape)
    nodes = [
        helper.make_node("ReduceMean", [spec.input.name], ["pooled"], axes=list(range(1, rank)), keepdims=0),
        helper.make_node("Reshape", ["pooled", "batch_shape"], ["per_sample"]),
        helper.make_node("Mul", ["per_sample", "tiny"], ["scaled"]),
        helper.make_node("Add", ["scaled", "values"], [spec.output.name]),
    ]
    initializers = [
        numpy_helper.from_array(np.array([-1] + [1] * (out_rank - 1), np.int64), "batch_shape"),
        numpy_helper.from_array(np.array(1e-6, np.float32), "tiny"),
        numpy_helper.from_array(values, "values"),
    ]
    graph = helper.make_graph(
        nodes,
        "stand_in",
        [helper.make_tensor_value_info(spec.input.name, TensorProto.FLOAT, ["N", *spec.input.shape[1:]])],
        [helper.make_tensor_value_info(spec.output.name, TensorProto.FLOAT, ["N", *spec.output.shape[1:]])],
        initializers,
    )
    opsets = [helper.make_opsetid("", 17)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))
    onnx.save(model, str(path))
    return Path(path)
