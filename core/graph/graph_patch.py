"""ONNX rewrites that make a model acceptable to a board toolchain.

The S100 toolchain rejects 5-D GlobalAveragePool. D-Robotics' S100 video sample replaced it "with the
2D ReduceMean operator" (docs/board.md, source VID); the edited graph itself is not published.
Two rewrites, both exact:

- `reduce_in_4d` (zoo's default): Reshape the 5-D features [N,C,T,H,W] to the 4-D [N,C,T*H,W]
  (T folded into H, a view of the same memory), reduce over axes 2,3 with keepdims=1, giving
  [N,C,1,1]. Every value of the T*H*W block is averaged once, as before. When every consumer is a
  Flatten(axis=1) the 4-D result feeds it directly ([N,C] either way); otherwise a last Reshape
  restores [N,C,1,1,1]. No pooling or reduction node keeps a 5-D input.
- `replace_global_pooling`: a ReduceMean (ReduceMax) over axes 2,3,4 of the 5-D input, keepdims=1.
  Same output shape, but a 5-D reduction that no public source shows nash-e accepting.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelzoo.core.errors import ConversionError
from modelzoo.core.graph.onnx_shapes import opset_version, tensor_ranks, tensor_shapes

# Global pooling op -> the reduction that computes the same thing over all spatial axes.
GLOBAL_POOL_REDUCTIONS = {"GlobalAveragePool": "ReduceMean", "GlobalMaxPool": "ReduceMax"}
# ReduceMean/ReduceMax take `axes` as an input from opset 18 on, as an attribute before.
AXES_AS_INPUT_OPSET = 18
# Reductions that reduce_in_4d also moves to 4-D when they cover axes 2,3,4 of a 5-D input;
# ReduceSum took its axes as an input already from opset 13.
REDUCTIONS = ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum")
_AXES_INPUT_SINCE = {"ReduceSum": 13}


@dataclass(frozen=True)
class Change:
    """One rewritten node."""

    node: str
    old_op: str
    new_op: str
    rank: int
    axes: tuple

    def __str__(self) -> str:
        axes = ", ".join(map(str, self.axes))
        return f"{self.node}: {self.old_op} ({self.rank}-D input) -> {self.new_op}(axes=[{axes}], keepdims=1)"


def replace_global_pooling(model, ranks: tuple = (5,)) -> list:
    """Replace every global pooling node whose input rank is in `ranks` by the equivalent reduction, in place.

    Node and output names are kept, so the rest of the graph is untouched. Returns the Change list.
    Raises ConversionError when a global pooling node's input rank cannot be determined.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    targets = [n for n in model.graph.node if n.op_type in GLOBAL_POOL_REDUCTIONS and n.domain in ("", "ai.onnx")]
    if not targets:
        return []
    known = tensor_ranks(model)
    opset = opset_version(model)
    taken = {init.name for init in model.graph.initializer} | {
        name for node in model.graph.node for name in (*node.input, *node.output)
    }
    changes = []
    for node in targets:
        rank = known.get(node.input[0])
        if rank is None:
            raise ConversionError(
                f"cannot tell the rank of {node.op_type} node {node.name or node.output[0]!r}'s input "
                f"{node.input[0]!r}, even after ONNX shape inference; export the model with a static input shape"
            )
        if rank not in ranks:
            continue
        axes = tuple(range(2, rank))
        old_op = node.op_type
        new_op = GLOBAL_POOL_REDUCTIONS[node.op_type]
        name = node.name or f"{node.output[0]}_{new_op}"
        if opset >= AXES_AS_INPUT_OPSET:
            axes_name = _unique(f"{name}_axes", taken)
            model.graph.initializer.append(numpy_helper.from_array(np.array(axes, dtype=np.int64), axes_name))
            replacement = helper.make_node(new_op, [node.input[0], axes_name], list(node.output), name=name, keepdims=1)
        else:
            replacement = helper.make_node(
                new_op, [node.input[0]], list(node.output), name=name, axes=list(axes), keepdims=1
            )
        replacement.doc_string = f"replaces {old_op} {node.name!r} (modelzoo graph patch)"
        node.CopyFrom(replacement)  # same position in the topologically sorted node list
        changes.append(Change(name, old_op, new_op, rank, axes))
    return changes


@dataclass(frozen=True)
class Change4D:
    """One 5-D pooling or reduction node now computed as a 4-D reduction between Reshapes."""

    node: str
    old_op: str
    new_op: str
    input_shape: tuple  # the 5-D input's dims (int, dimension name or None)
    reshaped: tuple  # the 4-D shape the reduction reads
    restored: tuple | None  # the 5-D shape a final Reshape gives back, or None (the consumers take 4-D)
    keepdims: int = 1

    def __str__(self) -> str:
        text = (
            f"{self.node}: {self.old_op} ({len(self.input_shape)}-D input {_dims(self.input_shape)}) -> "
            f"Reshape to {_dims(self.reshaped)}, {self.new_op}(axes=[2, 3], keepdims={self.keepdims}) (4-D input)"
        )
        return text + (f", Reshape back to {_dims(self.restored)}" if self.restored else "")


def reduce_in_4d(model) -> list:
    """Compute every 5-D global pooling node, and every 5-D ReduceMean/Max/Min/Sum over axes 2,3,4,
    as the same reduction over axes 2,3 of a 4-D Reshape [N,C,T*H,W], in place. Exact: the same
    values are reduced, only the axes are grouped differently.

    The reduction node keeps its name; the original output name is kept (by the reduction when all
    its consumers are Flatten(axis=1), else by a final Reshape to the original shape), so the rest
    of the graph is untouched. Returns the Change4D list. Raises ConversionError when a global
    pooling node's input rank cannot be determined.
    """
    from onnx import helper

    graph = model.graph
    candidates = [
        (index, n)
        for index, n in enumerate(graph.node)
        if n.domain in ("", "ai.onnx") and (n.op_type in GLOBAL_POOL_REDUCTIONS or n.op_type in REDUCTIONS)
    ]
    if not candidates:
        return []
    shapes = tensor_shapes(model)
    opset = opset_version(model)
    initializers = {init.name: init for init in graph.initializer}
    constants = {n.output[0]: n for n in graph.node if n.op_type == "Constant" and n.output}
    graph_outputs = {o.name for o in graph.output}
    consumers: dict = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    taken = (
        set(initializers)
        | {name for node in graph.node for name in (*node.input, *node.output)}
        | {node.name for node in graph.node if node.name}
    )

    replacements: dict = {}  # index of the original node -> the nodes that replace it
    changes = []
    for index, node in candidates:
        shape = shapes.get(node.input[0])
        if node.op_type in GLOBAL_POOL_REDUCTIONS:
            if shape is None:
                raise ConversionError(
                    f"cannot tell the rank of {node.op_type} node {node.name or node.output[0]!r}'s input "
                    f"{node.input[0]!r}, even after ONNX shape inference; export the model with a static input shape"
                )
            if len(shape) != 5:
                continue
            new_op, keepdims = GLOBAL_POOL_REDUCTIONS[node.op_type], 1
        else:
            if shape is None or len(shape) != 5:
                continue
            axes = _reduce_axes(node, initializers, constants)
            if axes is None or sorted(a % 5 for a in axes) != [2, 3, 4]:
                continue
            new_op, keepdims = node.op_type, _int_attribute(node, "keepdims", 1)
        name = node.name or _unique(f"{node.output[0]}_{new_op}", taken)
        channels, time, height, width = shape[1:]
        static = all(isinstance(d, int) and d > 0 for d in (channels, time, height, width))
        # 0 copies the batch (dynamic or not); without static C,T,H,W the block becomes [T*H*W, 1]
        target = (0, channels, time * height, width) if static else (0, 0, -1, 1)
        shown = (shape[0], channels, time * height, width) if static else (shape[0], shape[1], None, 1)
        out = node.output[0]
        users = consumers.get(out, [])
        feeds_flatten = (
            keepdims == 1
            and out not in graph_outputs
            and users
            and all(u.op_type == "Flatten" and _int_attribute(u, "axis", 1) == 1 for u in users)
        )
        restore = keepdims == 1 and not feeds_flatten
        note = f"modelzoo graph patch: {node.op_type} {node.name!r} computed on a 4-D view"
        four_d = _unique(f"{name}_4d_input", taken)
        reduced = _unique(f"{out}_4d", taken) if restore else out
        nodes = [
            helper.make_node(
                "Reshape",
                [node.input[0], _constant(graph, f"{name}_shape_4d", target, taken)],
                [four_d],
                name=_unique(f"{name}_to_4d", taken),
            )
        ]
        if opset >= _AXES_INPUT_SINCE.get(new_op, AXES_AS_INPUT_OPSET):
            nodes.append(
                helper.make_node(
                    new_op,
                    [four_d, _constant(graph, f"{name}_axes", (2, 3), taken)],
                    [reduced],
                    name=name,
                    keepdims=keepdims,
                )
            )
        else:
            nodes.append(helper.make_node(new_op, [four_d], [reduced], name=name, axes=[2, 3], keepdims=keepdims))
        restored = None
        if restore:
            back = (0, channels, 1, 1, 1) if static else (0, 0, 1, 1, 1)
            restored = (shape[0], shape[1], 1, 1, 1)
            nodes.append(
                helper.make_node(
                    "Reshape",
                    [reduced, _constant(graph, f"{name}_shape_5d", back, taken)],
                    [out],
                    name=_unique(f"{name}_to_5d", taken),
                )
            )
        elif keepdims == 1:  # `out` is now [N,C,1,1]: a declared 5-D shape for it would be wrong
            _forget_shape(graph, out)
        for new in nodes:
            new.doc_string = note
        replacements[index] = nodes
        changes.append(Change4D(name, node.op_type, new_op, tuple(shape), shown, restored, keepdims))
    if replacements:
        rebuilt = []
        for index, node in enumerate(graph.node):
            rebuilt.extend(replacements.get(index, [_copy(node)]))
        del graph.node[:]
        graph.node.extend(rebuilt)  # same topological order: each replacement sits where its node was
    return changes


def _constant(graph, name: str, values, taken: set) -> str:
    """A new int64 initializer holding `values`; returns its (unique) name."""
    import numpy as np
    from onnx import numpy_helper

    name = _unique(name, taken)
    graph.initializer.append(numpy_helper.from_array(np.array(values, dtype=np.int64), name))
    return name


def _reduce_axes(node, initializers: dict, constants: dict):
    """A reduction node's axes from its attribute or constant input; None when not known statically
    (or absent, meaning all axes)."""
    from onnx import numpy_helper

    for attr in node.attribute:
        if attr.name == "axes":
            return list(attr.ints)
    if len(node.input) > 1 and node.input[1]:
        source = node.input[1]
        if source in initializers:
            return numpy_helper.to_array(initializers[source]).reshape(-1).tolist()
        if source in constants:
            for attr in constants[source].attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t).reshape(-1).tolist()
                if attr.name == "value_ints":
                    return list(attr.ints)
    return None


def _int_attribute(node, name: str, default: int) -> int:
    for attr in node.attribute:
        if attr.name == name:
            return int(attr.i)
    return default


def _forget_shape(graph, name: str) -> None:
    for index in reversed(range(len(graph.value_info))):
        if graph.value_info[index].name == name:
            del graph.value_info[index]


def _copy(node):
    from onnx import NodeProto

    clone = NodeProto()
    clone.CopyFrom(node)
    return clone


def _dims(shape) -> str:
    return "[" + ", ".join(str(d) if d is not None else "?" for d in shape) + "]"


def _unique(name: str, taken: set) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    taken.add(candidate)
    return candidate
