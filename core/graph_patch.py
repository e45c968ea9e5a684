"""ONNX rewrites that make a model acceptable to a board toolchain, and the proof that they change nothing.

The S100 toolchain rejects 5-D GlobalAveragePool; the published fix is a ReduceMean over the
pooled axes with keepdims=1, which has the same output shape, so every consumer stays valid.
Heavy module (onnx, numpy, onnxruntime): import it lazily from CLI code paths.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import ConversionError

# Global pooling op -> the reduction that computes the same thing over all spatial axes.
GLOBAL_POOL_REDUCTIONS = {"GlobalAveragePool": "ReduceMean", "GlobalMaxPool": "ReduceMax"}
# ReduceMean/ReduceMax take `axes` as an input from opset 18 on, as an attribute before.
AXES_AS_INPUT_OPSET = 18
DEFAULT_TOLERANCE = 1e-5


def opset_version(model, domain: str = "") -> int:
    """The model's opset for `domain` ("" and "ai.onnx" are the same default domain)."""
    for entry in model.opset_import:
        if entry.domain in (domain, "ai.onnx" if domain == "" else domain):
            return int(entry.version)
    raise ConversionError(f"the model imports no opset for domain {domain or 'ai.onnx'!r}; it is not a valid ONNX model")


def tensor_ranks(model) -> dict:
    """Rank of every tensor whose rank is known; runs ONNX shape inference when value_info is missing.

    torch.onnx.export (TorchScript) writes no value_info for intermediate tensors, so the rank of
    a pooling node's input is only known after inference.
    """
    ranks = _declared_ranks(model.graph)
    wanted = {name for node in model.graph.node for name in node.input if name}
    if wanted - ranks.keys():
        import onnx

        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
        except Exception as exc:  # without ranks no pooling node can be judged: say so rather than guess
            raise ConversionError(f"ONNX shape inference failed on the model ({exc}); check it with onnx.checker") from exc
        ranks.update(_declared_ranks(inferred.graph))
    return ranks


def _declared_ranks(graph) -> dict:
    ranks = {init.name: len(init.dims) for init in graph.initializer}
    for info in (*graph.input, *graph.output, *graph.value_info):
        tensor_type = info.type.tensor_type
        if tensor_type.HasField("shape"):
            ranks[info.name] = len(tensor_type.shape.dim)
    return ranks


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
            replacement = helper.make_node(new_op, [node.input[0]], list(node.output), name=name, axes=list(axes), keepdims=1)
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


# Rewrites the march rule table can name (march_rules.Rule.rewrite), so rules stay plain data.
REWRITES = {"global_pool_to_reduce": replace_global_pooling}


def patch_for_march(model, march: str) -> list:
    """Apply, in place, every automatic rewrite the `march` rule table names; returns the changes."""
    from .march_rules import rules_for

    changes = []
    for rewrite in dict.fromkeys(r.rewrite for r in rules_for(march) if r.rewrite):
        changes.extend(REWRITES[rewrite](model))
    return changes


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


def verify_equivalent(original, patched, *, tolerance: float = DEFAULT_TOLERANCE, seed: int = 0, threads: int | None = None, input_shape: tuple | None = None) -> Equivalence:
    """Run both graphs in onnxruntime on the same random input; raise ConversionError if any output differs.

    The bound is max |a - b| <= tolerance * max |a| over all outputs (absolute when the outputs are all 0).
    Dynamic dimensions of the first input take `input_shape` (the shape the model really gets), else 1.
    """
    import numpy as np

    first = _session(original, threads, "original")
    second = _session(patched, threads, "patched")
    rng = np.random.default_rng(seed)
    feeds = {}
    for index, arg in enumerate(first.get_inputs()):
        wanted = input_shape if index == 0 and input_shape and len(input_shape) == len(arg.shape) else (1,) * len(arg.shape)
        shape = [d if isinstance(d, int) and d > 0 else int(w) for d, w in zip(arg.shape, wanted)]
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


@dataclass(frozen=True)
class PatchResult:
    changes: list
    equivalence: Equivalence | None

    def to_dict(self) -> dict:
        return {
            "changes": [str(c) for c in self.changes],
            "equivalence": self.equivalence.to_dict() if self.equivalence else None,
        }


def patch_model(registry, spec, model, march: str, *, verify: bool = True, threads: int | None = None):
    """Apply every plugin's zoo_patch_graph in order, then validate: onnx.checker and, if anything changed,
    numerical equivalence with the unpatched graph. Returns (patched_model, PatchResult); `model` is untouched.
    """
    import onnx

    from .march_rules import rules_for

    rules_for(march)  # an unknown march fails here, before any plugin runs
    patched = onnx.ModelProto()
    patched.CopyFrom(model)
    changes = list(registry.patch_graph(spec, patched, march))
    if patched.SerializeToString() == model.SerializeToString():
        return patched, PatchResult(changes, None)
    if not changes:  # validated all the same: a silent rewrite is still a rewrite
        changes = ["the graph was changed by a zoo_patch_graph hook that reported no change"]
    try:
        onnx.checker.check_model(patched)
    except onnx.checker.ValidationError as exc:
        raise ConversionError(f"the patched graph is not valid ONNX ({exc}); a zoo_patch_graph hook broke it") from exc
    shape = tuple(1 if isinstance(d, str) else d for d in spec.input.shape)  # the board's batch-1 clip
    equivalence = verify_equivalent(model, patched, threads=threads, input_shape=shape) if verify else None
    return patched, PatchResult(changes, equivalence)
