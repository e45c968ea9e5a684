"""ONNX rewrites that make a model acceptable to a board toolchain.

The S100 toolchain rejects 5-D GlobalAveragePool; the published fix is a ReduceMean over the
pooled axes with keepdims=1, which has the same output shape, so every consumer stays valid.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelzoo.core.errors import ConversionError
from modelzoo.core.graph.onnx_shapes import opset_version, tensor_ranks

# Global pooling op -> the reduction that computes the same thing over all spatial axes.
GLOBAL_POOL_REDUCTIONS = {"GlobalAveragePool": "ReduceMean", "GlobalMaxPool": "ReduceMax"}
# ReduceMean/ReduceMax take `axes` as an input from opset 18 on, as an attribute before.
AXES_AS_INPUT_OPSET = 18


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


def _unique(name: str, taken: set) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    taken.add(candidate)
    return candidate
