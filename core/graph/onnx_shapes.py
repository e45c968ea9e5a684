"""What an ONNX graph says about its tensors: opset, shapes and ranks, inferred where not declared."""

from __future__ import annotations

from modelzoo.core.errors import ConversionError


def opset_version(model, domain: str = "") -> int:
    """The model's opset for `domain` ("" and "ai.onnx" are the same default domain)."""
    for entry in model.opset_import:
        if entry.domain in (domain, "ai.onnx" if domain == "" else domain):
            return int(entry.version)
    raise ConversionError(
        f"the model imports no opset for domain {domain or 'ai.onnx'!r}; it is not a valid ONNX model"
    )


def tensor_ranks(model) -> dict:
    """Rank of every tensor whose rank is known; runs ONNX shape inference when value_info is missing.

    torch.onnx.export (TorchScript) writes no value_info for intermediate tensors, so the rank of
    a pooling node's input is only known after inference.
    """
    return {name: len(shape) for name, shape in tensor_shapes(model).items()}


def tensor_shapes(model) -> dict:
    """Shape of every tensor whose rank is known, as a tuple of dims: an int when static, else the
    dimension's name (e.g. "N") or None. Runs ONNX shape inference when value_info is missing."""
    shapes = _declared_shapes(model.graph)
    wanted = {name for node in model.graph.node for name in node.input if name}
    if wanted - shapes.keys():
        import onnx

        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
        except Exception as exc:  # without shapes no pooling node can be judged: say so rather than guess
            raise ConversionError(
                f"ONNX shape inference failed on the model ({exc}); check it with onnx.checker"
            ) from exc
        shapes.update(_declared_shapes(inferred.graph))
    return shapes


def _declared_shapes(graph) -> dict:
    shapes = {init.name: tuple(int(d) for d in init.dims) for init in graph.initializer}
    for info in (*graph.input, *graph.output, *graph.value_info):
        tensor_type = info.type.tensor_type
        if tensor_type.HasField("shape"):
            shapes[info.name] = tuple(
                d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor_type.shape.dim
            )
    return shapes
