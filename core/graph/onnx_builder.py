"""Build ONNX graphs straight from numpy weights, so converting a checkpoint needs no PyTorch.

Heavy module (numpy, onnx): import it lazily from CLI code paths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from modelzoo.core.errors import ConversionError
from modelzoo.core.version import zoo_version

# Opset 17 is the lowest the issue allows; staying there keeps the graph loadable by
# older converters (the S100 toolchain ships its own onnx) as well as onnxruntime.
DEFAULT_OPSET = 17
PRODUCER_NAME = "modelzoo"


def fold_batchnorm(
    weight: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    eps: float = 1e-5,
    bias: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fold an inference-mode BatchNorm into the conv before it; returns float32 (weight, bias).

    Computed in float64 so the folded graph stays within float32 rounding of the unfolded one.
    """
    scale = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
    w = np.asarray(weight, np.float64) * scale.reshape((-1,) + (1,) * (np.ndim(weight) - 1))
    b0 = np.zeros_like(scale) if bias is None else np.asarray(bias, np.float64)
    b = (b0 - np.asarray(mean, np.float64)) * scale + np.asarray(beta, np.float64)
    return w.astype(np.float32), b.astype(np.float32)


class GraphBuilder:
    """Accumulates nodes and initializers under unique, readable names (state-dict prefixes)."""

    def __init__(self, name: str):
        self.name = name
        # Everything is written straight into the final ModelProto: assembling lists and then
        # calling make_graph/make_model would hold two extra copies of every weight.
        self._model = onnx.ModelProto()
        self._graph = self._model.graph
        self._graph.name = name
        # Tensor and node names live in separate ONNX namespaces; each must be unique.
        self._tensor_names: set[str] = set()
        self._node_names: set[str] = set()

    @staticmethod
    def _unique(name: str, taken: set[str]) -> str:
        candidate, n = name, 1
        while candidate in taken:
            candidate = f"{name}_{n}"
            n += 1
        taken.add(candidate)
        return candidate

    def add_input(self, name: str, shape: Sequence[int | str], elem_type: int = TensorProto.FLOAT) -> str:
        """Declare a graph input; a string dimension is dynamic (e.g. "N")."""
        if name in self._tensor_names:
            raise ValueError(f"tensor name {name!r} is already used")
        self._tensor_names.add(name)
        self._graph.input.append(helper.make_tensor_value_info(name, elem_type, list(shape)))
        return name

    def add_output(self, name: str, shape: Sequence[int | str], elem_type: int = TensorProto.FLOAT) -> str:
        """Declare an existing tensor (usually a node output) as a graph output."""
        if name not in self._tensor_names:
            raise ValueError(f"no tensor named {name!r} in graph {self.name!r}")
        self._graph.output.append(helper.make_tensor_value_info(name, elem_type, list(shape)))
        return name

    def initializer(self, name: str, array: np.ndarray) -> str:
        """Store a constant; the array is copied into the proto, so the caller may drop it."""
        name = self._unique(name, self._tensor_names)
        self._graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op_type: str, inputs: Sequence[str], name: str, *, output: str | None = None, **attrs) -> str:
        """Add a single-output node; its output tensor is named after the node unless `output` is given."""
        node_name = self._unique(name, self._node_names)
        if output is None:
            out = self._unique(node_name, self._tensor_names)
        elif output in self._tensor_names:
            raise ValueError(f"tensor name {output!r} is already used")
        else:
            out = output
            self._tensor_names.add(out)
        self._graph.node.append(helper.make_node(op_type, list(inputs), [out], name=node_name, **attrs))
        return out

    def conv(
        self,
        x: str,
        weight: np.ndarray,
        bias: np.ndarray | None = None,
        *,
        stride: Sequence[int],
        pads: Sequence[int],
        name: str,
    ) -> str:
        """Conv of any rank. `pads` is per spatial axis (torch's symmetric padding) or ONNX's begin+end list."""
        spatial = weight.ndim - 2
        pads = list(pads)
        if len(pads) == spatial:
            pads = pads + pads
        if len(pads) != 2 * spatial or len(stride) != spatial:
            raise ValueError(f"{name}: stride {stride} / pads {pads} do not fit a {spatial}-D kernel")
        inputs = [x, self.initializer(f"{name}.weight", weight.astype(np.float32, copy=False))]
        if bias is not None:
            inputs.append(self.initializer(f"{name}.bias", bias.astype(np.float32, copy=False)))
        return self.node(
            "Conv",
            inputs,
            name,
            kernel_shape=list(weight.shape[2:]),
            strides=list(stride),
            pads=pads,
        )

    def relu(self, x: str, name: str) -> str:
        return self.node("Relu", [x], name)

    def add(self, a: str, b: str, name: str) -> str:
        return self.node("Add", [a, b], name)

    def global_average_pool(self, x: str, name: str) -> str:
        return self.node("GlobalAveragePool", [x], name)

    def flatten(self, x: str, name: str, axis: int = 1) -> str:
        return self.node("Flatten", [x], name, axis=axis)

    def gemm(self, x: str, weight: np.ndarray, bias: np.ndarray | None, *, name: str, output: str | None = None) -> str:
        """y = x @ weight.T + bias, with `weight` in torch Linear layout [out, in]."""
        inputs = [x, self.initializer(f"{name}.weight", weight.astype(np.float32, copy=False))]
        if bias is not None:
            inputs.append(self.initializer(f"{name}.bias", bias.astype(np.float32, copy=False)))
        return self.node("Gemm", inputs, name, output=output, transB=1)

    def finish(
        self,
        *,
        doc_string: str = "",
        metadata: Mapping[str, str] | None = None,
        opset: int = DEFAULT_OPSET,
    ) -> onnx.ModelProto:
        """Assemble and check the model; raises ConversionError if onnx.checker rejects it."""
        if not self._graph.input or not self._graph.output:
            raise ValueError(f"graph {self.name!r} needs at least one input and one output")
        model = self._model
        if model.opset_import:
            raise ValueError(f"graph {self.name!r} is already finished; use a new GraphBuilder")
        model.opset_import.append(helper.make_opsetid("", opset))
        # The lowest IR version that carries this opset: the newest onnx package would
        # otherwise stamp an IR version that released onnxruntimes refuse to load.
        model.ir_version = helper.find_min_ir_version_for(list(model.opset_import))
        model.producer_name = PRODUCER_NAME
        model.producer_version = zoo_version()
        model.doc_string = doc_string
        if metadata:
            helper.set_model_props(model, {str(k): str(v) for k, v in metadata.items()})
        try:
            onnx.checker.check_model(model)
        except onnx.checker.ValidationError as exc:
            raise ConversionError(
                f"the generated graph {self.name!r} is not valid ONNX ({exc}); "
                "this is a bug in the model's converter, please report it"
            ) from exc
        return model
