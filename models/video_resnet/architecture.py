"""The torchvision video ResNet family (r3d_18, mc3_18, r2plus1d_18) as data for the shared ResNet builder.

The three architectures differ only in their stem and in how each stage realises a 3x3x3
convolution, so they are described as data below; modelzoo.models._resnet walks all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from modelzoo.models._resnet import Block, ConvBN, Plan, build_resnet
from modelzoo.models._resnet import expected_keys as _plan_keys
from modelzoo.plugin import ConversionError

DEFAULT_NUM_CLASSES = 400

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
def _plan(arch: str) -> Plan:
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
    return Plan(arch, tuple(stem), None, tuple(blocks), a.widths[-1])


def expected_keys(arch: str, num_classes: int = DEFAULT_NUM_CLASSES) -> dict[str, tuple[int, ...]]:
    """Every state-dict key of `arch` with its shape (without `num_batches_tracked`)."""
    return _plan_keys(_plan(arch), num_classes)


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
    plan = _plan(arch)  # raises for an unknown arch before the state dict is touched
    if num_classes is None and not (isinstance(state_dict, Mapping) and "fc.weight" in state_dict):
        num_classes = DEFAULT_NUM_CLASSES  # so a missing head is listed with the other missing keys
    hint = (
        f"checkpoint is not a {arch} state dict: {{}}; pass the {arch} weights "
        f"(a state dict of torchvision.models.video.{arch})"
    )
    return build_resnet(
        state_dict,
        plan,
        input_name=input_name,
        input_shape=["N", 3, clip_len, size, size],
        output_name=output_name,
        num_classes=num_classes,
        hint=hint,
        doc_string=f"torchvision {arch} video classifier converted by modelzoo; BatchNorm folded (eps 1e-05).",
        metadata={"input_layout": "NCTHW", "input_shape": f"N,3,{clip_len},{size},{size}"},
    )
