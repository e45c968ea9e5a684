"""A ResNet of BasicBlocks as ONNX, built from a state dict, for 2-D and 3-D families alike.

A family describes its network as data (stem units, blocks, head); this module checks the state
dict against that plan and walks it: Conv with BatchNorm folded, ReLU, residual Add, then global
average pooling, Flatten and the classifier. Heavy (numpy, onnx): import it when converting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from modelzoo.plugin import ConversionError

BN_EPS = 1e-5
BN_KEYS = ("weight", "bias", "running_mean", "running_var")


@dataclass(frozen=True)
class ConvBN:
    """One Conv (no bias) and the BatchNorm after it, by state-dict prefix; `relu` names a following ReLU."""

    conv: str
    bn: str
    in_channels: int
    out_channels: int
    kernel: tuple
    stride: tuple
    padding: tuple
    relu: str | None

    @property
    def weight_shape(self) -> tuple:
        return (self.out_channels, self.in_channels, *self.kernel)


@dataclass(frozen=True)
class Block:
    """A BasicBlock: main path, optional projection shortcut, then add and ReLU."""

    name: str
    main: tuple
    shortcut: ConvBN | None


@dataclass(frozen=True)
class MaxPool:
    """A max pooling after the stem (2-D ResNets)."""

    name: str
    kernel: tuple
    stride: tuple
    padding: tuple


@dataclass(frozen=True)
class Plan:
    """A whole network: stem units, an optional pool, blocks, and the classifier's input width."""

    arch: str
    stem: tuple
    pool: MaxPool | None
    blocks: tuple
    feature_width: int

    def units(self):
        yield from self.stem
        for block in self.blocks:
            yield from block.main
            if block.shortcut is not None:
                yield block.shortcut


def expected_keys(plan: Plan, num_classes: int) -> dict:
    """Every state-dict key of `plan` with its shape (without `num_batches_tracked`)."""
    keys: dict = {}
    for unit in plan.units():
        keys[f"{unit.conv}.weight"] = unit.weight_shape
        for k in BN_KEYS:
            keys[f"{unit.bn}.{k}"] = (unit.out_channels,)
    keys["fc.weight"] = (num_classes, plan.feature_width)
    keys["fc.bias"] = (num_classes,)
    return keys


def _fmt(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _list(items: list, limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def validated(state_dict: Mapping, plan: Plan, num_classes: int | None, hint: str):
    """Check keys, shapes and dtypes; return (arrays by key, num_classes). `hint` has one `{}` for the problem."""
    import numpy as np

    if not isinstance(state_dict, Mapping) or not state_dict:
        raise ConversionError(hint.format("it is empty or not a mapping of tensors"))
    # num_batches_tracked only matters for training; BatchNorm in eval mode ignores it.
    given = {k: v for k, v in state_dict.items() if not str(k).endswith(".num_batches_tracked")}
    if num_classes is None:
        fc = given.get("fc.weight")
        num_classes = int(np.shape(fc)[0]) if fc is not None and np.ndim(fc) == 2 else None
    if num_classes is None:
        raise ConversionError(hint.format("'fc.weight' is missing or not a matrix"))
    expected = expected_keys(plan, num_classes)
    missing = [k for k in expected if k not in given]
    unexpected = [str(k) for k in given if k not in expected]
    if missing or unexpected:
        problems = []
        if missing:
            problems.append("missing " + _list([f"'{k}' (expected shape {_fmt(expected[k])})" for k in missing]))
        if unexpected:
            problems.append("unexpected " + _list([f"'{k}' (shape {_fmt(np.shape(given[k]))})" for k in unexpected]))
        message = hint.format("; ".join(problems))
        if all(str(k).startswith("module.") for k in given):
            message += "; its keys start with 'module.' (saved from DataParallel): strip that prefix"
        raise ConversionError(message)
    arrays = {}
    for key, shape in expected.items():
        value = np.asarray(given[key])
        if value.shape != shape:
            raise ConversionError(hint.format(f"'{key}' has shape {_fmt(value.shape)}, expected {_fmt(shape)}"))
        if value.dtype.kind != "f":
            raise ConversionError(hint.format(f"'{key}' has dtype {value.dtype}, expected floating point"))
        # Either would make every output NaN: a run would print labels with no scores, exit 0.
        if not np.isfinite(value).all():
            raise ConversionError(hint.format(f"'{key}' holds NaN or infinity (diverged training or a damaged file)"))
        if key.endswith(".running_var") and (value < 0).any():
            raise ConversionError(hint.format(f"'{key}' holds negative variances, which no trained BatchNorm has"))
        arrays[key] = value
    _refuse_untrained(arrays, plan, hint)
    return arrays, num_classes


def _refuse_untrained(arrays: dict, plan: Plan, hint: str) -> None:
    """Refuse a freshly initialised network: every BatchNorm still as torch initialises it.

    Training moves these statistics in every layer, so this is a model built without its weights
    (e.g. `r3d_18()` instead of `r3d_18(weights=...)`) and saved: it converts and runs, but every
    answer it gives is noise.
    """
    import numpy as np

    def initial(bn: str) -> bool:
        mean, var, gamma, beta = (arrays[f"{bn}.{k}"] for k in ("running_mean", "running_var", "weight", "bias"))
        return not np.any(mean) and not np.any(beta) and np.all(var == 1) and np.all(gamma == 1)

    bns = {unit.bn for unit in plan.units()}
    if all(initial(bn) for bn in bns):
        raise ConversionError(
            hint.format(
                f"all {len(bns)} BatchNorm layers hold their initial values (mean 0, variance 1, scale 1, shift 0), "
                "so these are untrained, randomly initialised weights (a model built without weights=... and saved)"
            )
        )


def build_resnet(
    state_dict: Mapping,
    plan: Plan,
    *,
    input_name: str,
    input_shape: list,
    output_name: str,
    num_classes: int | None,
    hint: str,
    doc_string: str,
    metadata: dict,
):
    """The ONNX graph of `plan` with BatchNorm folded: input `input_shape`, output [N, classes].

    The global average pool is what torch exports (GlobalAveragePool); a board's graph patch
    rewrites it where the toolchain needs another form.
    """
    from modelzoo.plugin import GraphBuilder, fold_batchnorm

    sd, num_classes = validated(state_dict, plan, num_classes, hint)
    g = GraphBuilder(plan.arch)

    def conv_bn(unit: ConvBN, x: str) -> str:
        w, b = fold_batchnorm(sd[f"{unit.conv}.weight"], *(sd[f"{unit.bn}.{k}"] for k in BN_KEYS), eps=BN_EPS)
        y = g.conv(x, w, b, stride=unit.stride, pads=unit.padding, name=unit.conv)
        return g.relu(y, unit.relu) if unit.relu else y

    x = g.add_input(input_name, input_shape)
    for unit in plan.stem:
        x = conv_bn(unit, x)
    if plan.pool is not None:
        pool = plan.pool
        x = g.node(
            "MaxPool", [x], pool.name,
            kernel_shape=list(pool.kernel), strides=list(pool.stride), pads=list(pool.padding) * 2,
        )  # fmt: skip
    for block in plan.blocks:
        y = x
        for unit in block.main:
            y = conv_bn(unit, y)
        shortcut = conv_bn(block.shortcut, x) if block.shortcut else x
        x = g.relu(g.add(y, shortcut, f"{block.name}.add"), f"{block.name}.relu")
    x = g.global_average_pool(x, "avgpool")
    x = g.flatten(x, "flatten")
    g.gemm(x, sd["fc.weight"], sd["fc.bias"], name="fc", output=output_name)
    g.add_output(output_name, ["N", num_classes])
    return g.finish(
        doc_string=doc_string,
        metadata={"architecture": plan.arch, "num_classes": str(num_classes), **metadata},
    )


def refuse_other_architecture(onnx_model, name: str) -> None:
    """Refuse an ONNX that `build_resnet` made for another architecture than `name` (its metadata
    records which; ONNX files from elsewhere record none and pass)."""
    recorded = {prop.key: prop.value for prop in onnx_model.metadata_props}.get("architecture")
    if recorded and recorded != name:
        raise ConversionError(
            f"this ONNX was converted from a {recorded} checkpoint, not {name}; "
            f"run it as `zoo run {recorded} --model FILE`, or convert {name}'s own weights"
        )
