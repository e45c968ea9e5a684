"""The torchvision video ResNet family (r3d_18, mc3_18, r2plus1d_18) as ONNX, built from a state dict.

The three architectures differ only in their stem and in how each stage realises a 3x3x3
convolution, so they are described as data below and one walker builds all of them.
Heavy module (numpy, onnx): import it lazily from CLI code paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from modelzoo.core.errors import ConversionError

BN_EPS = 1e-5
DEFAULT_NUM_CLASSES = 400
_BN_KEYS = ("weight", "bias", "running_mean", "running_var")

Triple = tuple[int, int, int]


@dataclass(frozen=True)
class ConvKind:
    """How a BasicBlock realises its 3x3x3 conv: one Conv3d, or a (2+1)D pair sharing a middle width."""

    kernels: tuple[Triple, ...]
    stride_axes: tuple[Triple, ...]  # 1 on the (T, H, W) axes where the block's stride applies
    downsample_axes: Triple


CONV_KINDS = {
    "conv3d": ConvKind(kernels=((3, 3, 3),), stride_axes=((1, 1, 1),), downsample_axes=(1, 1, 1)),
    # mc3's upper stages keep T: the 1x3x3 kernel and its shortcut never stride in time.
    "conv3d_no_temporal": ConvKind(kernels=((1, 3, 3),), stride_axes=((0, 1, 1),), downsample_axes=(0, 1, 1)),
    "conv2plus1d": ConvKind(
        kernels=((1, 3, 3), (3, 1, 1)), stride_axes=((0, 1, 1), (1, 0, 0)), downsample_axes=(1, 1, 1)
    ),
}


@dataclass(frozen=True)
class StemConv:
    """One Conv3d + BatchNorm3d + ReLU of a stem (torchvision keys stem.{3i}, stem.{3i+1})."""

    out_channels: int
    kernel: Triple
    stride: Triple
    padding: Triple


@dataclass(frozen=True)
class Architecture:
    name: str
    stem: tuple[StemConv, ...]
    stage_convs: tuple[str, str, str, str]  # a CONV_KINDS key per stage
    widths: tuple[int, ...] = (64, 128, 256, 512)
    blocks: tuple[int, ...] = (2, 2, 2, 2)
    strides: tuple[int, ...] = (1, 2, 2, 2)


_BASIC_STEM = (StemConv(64, (3, 7, 7), (1, 2, 2), (1, 3, 3)),)
_R2PLUS1D_STEM = (
    StemConv(45, (1, 7, 7), (1, 2, 2), (0, 3, 3)),
    StemConv(64, (3, 1, 1), (1, 1, 1), (1, 0, 0)),
)

_ARCHS = {
    a.name: a
    for a in (
        Architecture("r3d_18", _BASIC_STEM, ("conv3d",) * 4),
        Architecture("mc3_18", _BASIC_STEM, ("conv3d",) + ("conv3d_no_temporal",) * 3),
        Architecture("r2plus1d_18", _R2PLUS1D_STEM, ("conv2plus1d",) * 4),
    )
}
ARCHITECTURES: tuple[str, ...] = tuple(_ARCHS)


@dataclass(frozen=True)
class ConvBN:
    """One Conv3d (no bias) and the BatchNorm3d after it, by state-dict prefix; `relu` names a following ReLU."""

    conv: str
    bn: str
    in_channels: int
    out_channels: int
    kernel: Triple
    stride: Triple
    padding: Triple
    relu: str | None

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.in_channels, *self.kernel)


@dataclass(frozen=True)
class Block:
    """A BasicBlock: main path, optional projection shortcut, then add and ReLU."""

    name: str
    main: tuple[ConvBN, ...]
    shortcut: ConvBN | None


def _block_conv(
    kind: ConvKind, prefix: str, cin: int, cout: int, mid: int, stride: int, last_relu: bool
) -> list[ConvBN]:
    """The ConvBN units of one `conv1`/`conv2` Sequential of a BasicBlock."""
    n = len(kind.kernels)
    units = []
    for j, (kernel, axes) in enumerate(zip(kind.kernels, kind.stride_axes)):
        last = j == n - 1
        # A factorised conv nests as Sequential(conv, BN, ReLU, conv) at index 0; the block's BN is at 1.
        conv = f"{prefix}.0.{3 * j}" if n > 1 else f"{prefix}.0"
        bn = f"{prefix}.1" if last else f"{prefix}.0.{3 * j + 1}"
        relu = (f"{prefix}.2" if last_relu else None) if last else f"{prefix}.0.{3 * j + 2}"
        units.append(
            ConvBN(
                conv=conv,
                bn=bn,
                in_channels=cin if j == 0 else mid,
                out_channels=cout if last else mid,
                kernel=kernel,
                stride=tuple(stride if a else 1 for a in axes),
                padding=tuple(k // 2 for k in kernel),
                relu=relu,
            )
        )
    return units


@cache
def _plan(arch: str) -> tuple[tuple[ConvBN, ...], tuple[Block, ...]]:
    """Unroll an Architecture into its stem units and blocks, in execution order."""
    try:
        a = _ARCHS[arch]
    except KeyError:
        raise ConversionError(
            f"unknown video ResNet architecture {arch!r}; known: {', '.join(ARCHITECTURES)}"
        ) from None
    stem, cin = [], 3
    for i, s in enumerate(a.stem):
        stem.append(
            ConvBN(
                f"stem.{3 * i}",
                f"stem.{3 * i + 1}",
                cin,
                s.out_channels,
                s.kernel,
                s.stride,
                s.padding,
                relu=f"stem.{3 * i + 2}",
            )
        )
        cin = s.out_channels
    blocks = []
    for stage, (kind_name, width, count, stage_stride) in enumerate(
        zip(a.stage_convs, a.widths, a.blocks, a.strides), start=1
    ):
        kind = CONV_KINDS[kind_name]
        for b in range(count):
            name = f"layer{stage}.{b}"
            stride = stage_stride if b == 0 else 1
            # torchvision computes the (2+1)D middle width once per block from its in/out widths.
            mid = (cin * width * 27) // (cin * 9 + 3 * width)
            main = _block_conv(kind, f"{name}.conv1", cin, width, mid, stride, last_relu=True)
            main += _block_conv(kind, f"{name}.conv2", width, width, mid, 1, last_relu=False)
            shortcut = None
            if stride != 1 or cin != width:
                ds = tuple(stride if ax else 1 for ax in kind.downsample_axes)
                shortcut = ConvBN(
                    f"{name}.downsample.0", f"{name}.downsample.1", cin, width, (1, 1, 1), ds, (0, 0, 0), relu=None
                )
            blocks.append(Block(name, tuple(main), shortcut))
            cin = width
    return tuple(stem), tuple(blocks)


def _all_units(arch: str):
    stem, blocks = _plan(arch)
    yield from stem
    for block in blocks:
        yield from block.main
        if block.shortcut is not None:
            yield block.shortcut


def expected_keys(arch: str, num_classes: int = DEFAULT_NUM_CLASSES) -> dict[str, tuple[int, ...]]:
    """Every state-dict key of `arch` with its shape (without `num_batches_tracked`)."""
    keys: dict[str, tuple[int, ...]] = {}
    for unit in _all_units(arch):
        keys[f"{unit.conv}.weight"] = unit.weight_shape
        for k in _BN_KEYS:
            keys[f"{unit.bn}.{k}"] = (unit.out_channels,)
    feature_width = _ARCHS[arch].widths[-1]
    keys["fc.weight"] = (num_classes, feature_width)
    keys["fc.bias"] = (num_classes,)
    return keys


def _fmt(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _list(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _validated(state_dict: Mapping, arch: str, num_classes: int | None):
    """Check keys, shapes and dtypes; return (float32-compatible arrays by key, num_classes)."""
    import numpy as np

    hint = (
        f"checkpoint is not a {arch} state dict: {{}}; pass the {arch} weights "
        f"(a state dict of torchvision.models.video.{arch})"
    )
    if not isinstance(state_dict, Mapping) or not state_dict:
        raise ConversionError(hint.format("it is empty or not a mapping of tensors"))
    # num_batches_tracked only matters for training; BatchNorm in eval mode ignores it.
    given = {k: v for k, v in state_dict.items() if not str(k).endswith(".num_batches_tracked")}
    if num_classes is None:
        fc = given.get("fc.weight")
        num_classes = int(np.shape(fc)[0]) if fc is not None and np.ndim(fc) == 2 else DEFAULT_NUM_CLASSES
    expected = expected_keys(arch, num_classes)

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
        arrays[key] = value
    return arrays, num_classes


def build_video_resnet(
    state_dict: Mapping,
    arch: str,
    num_classes: int | None = None,
    *,
    input_name: str = "video",
    output_name: str = "logits",
    clip_len: int = 16,
    size: int = 112,
):
    """Build the ONNX graph of `arch` with BatchNorm folded; input [N,3,clip_len,size,size], output [N,classes].

    `num_classes=None` takes the class count from `fc.weight`. Raises ConversionError if the
    state dict does not match the architecture.
    """
    from modelzoo.core.graph.onnx_builder import GraphBuilder, fold_batchnorm

    stem, blocks = _plan(arch)  # raises for an unknown arch before the state dict is touched
    sd, num_classes = _validated(state_dict, arch, num_classes)
    g = GraphBuilder(arch)

    def conv_bn(unit: ConvBN, x: str) -> str:
        w, b = fold_batchnorm(sd[f"{unit.conv}.weight"], *(sd[f"{unit.bn}.{k}"] for k in _BN_KEYS), eps=BN_EPS)
        y = g.conv(x, w, b, stride=unit.stride, pads=unit.padding, name=unit.conv)
        return g.relu(y, unit.relu) if unit.relu else y

    x = g.add_input(input_name, ["N", 3, clip_len, size, size])
    for unit in stem:
        x = conv_bn(unit, x)
    for block in blocks:
        y = x
        for unit in block.main:
            y = conv_bn(unit, y)
        shortcut = conv_bn(block.shortcut, x) if block.shortcut else x
        x = g.relu(g.add(y, shortcut, f"{block.name}.add"), f"{block.name}.relu")
    # A 5-D GlobalAveragePool is what torch exports and what the S100 toolchain rejects;
    # the board's graph patch rewrites exactly this node, so it stays as is here.
    x = g.global_average_pool(x, "avgpool")
    x = g.flatten(x, "flatten")
    g.gemm(x, sd["fc.weight"], sd["fc.bias"], name="fc", output=output_name)
    g.add_output(output_name, ["N", num_classes])
    return g.finish(
        doc_string=f"torchvision {arch} video classifier converted by modelzoo; BatchNorm folded (eps {BN_EPS}).",
        metadata={
            "architecture": arch,
            "num_classes": str(num_classes),
            "input_layout": "NCTHW",
            "input_shape": f"N,3,{clip_len},{size},{size}",
        },
    )
