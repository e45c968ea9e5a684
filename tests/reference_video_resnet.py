"""An independent torch re-implementation of torchvision's video ResNets, for parity tests only.

torchvision is not installable here. This mirrors the module nesting of
`torchvision/models/video/resnet.py`, so `state_dict()` has the keys and shapes of the
official r3d_18 / mc3_18 / r2plus1d_18 checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv3d(cin: int, cout: int, kernel, stride, padding) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, kernel_size=kernel, stride=stride, padding=padding, bias=False)


# Each "conv maker" returns the module standing in for one 3x3x3 conv of a BasicBlock,
# and the stride its block's projection shortcut uses.
def _full(cin, cout, mid, stride):
    return _conv3d(cin, cout, (3, 3, 3), (stride,) * 3, (1, 1, 1))


def _no_temporal(cin, cout, mid, stride):
    return _conv3d(cin, cout, (1, 3, 3), (1, stride, stride), (0, 1, 1))


def _two_plus_one(cin, cout, mid, stride):
    # Spatial conv, BN, ReLU, then temporal conv; the block adds its own BN after it.
    return nn.Sequential(
        _conv3d(cin, mid, (1, 3, 3), (1, stride, stride), (0, 1, 1)),
        nn.BatchNorm3d(mid),
        nn.ReLU(inplace=True),
        _conv3d(mid, cout, (3, 1, 1), (stride, 1, 1), (1, 0, 0)),
    )


_SHORTCUT_STRIDE = {
    _full: lambda s: (s, s, s),
    _no_temporal: lambda s: (1, s, s),
    _two_plus_one: lambda s: (s, s, s),
}


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, maker, stride: int = 1):
        super().__init__()
        mid = (cin * cout * 27) // (cin * 9 + 3 * cout)
        self.conv1 = nn.Sequential(maker(cin, cout, mid, stride), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(maker(cout, cout, mid, 1), nn.BatchNorm3d(cout))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                _conv3d(cin, cout, 1, _SHORTCUT_STRIDE[maker](stride), 0), nn.BatchNorm3d(cout)
            )

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + shortcut)


def _basic_stem() -> nn.Sequential:
    return nn.Sequential(_conv3d(3, 64, (3, 7, 7), (1, 2, 2), (1, 3, 3)), nn.BatchNorm3d(64), nn.ReLU(inplace=True))


def _r2plus1d_stem() -> nn.Sequential:
    return nn.Sequential(
        _conv3d(3, 45, (1, 7, 7), (1, 2, 2), (0, 3, 3)),
        nn.BatchNorm3d(45),
        nn.ReLU(inplace=True),
        _conv3d(45, 64, (3, 1, 1), (1, 1, 1), (1, 0, 0)),
        nn.BatchNorm3d(64),
        nn.ReLU(inplace=True),
    )


ARCHS = {
    "r3d_18": (_basic_stem, [_full] * 4),
    "mc3_18": (_basic_stem, [_full] + [_no_temporal] * 3),
    "r2plus1d_18": (_r2plus1d_stem, [_two_plus_one] * 4),
}


class VideoResNet(nn.Module):
    def __init__(self, arch: str, num_classes: int = 400):
        super().__init__()
        make_stem, makers = ARCHS[arch]
        self.stem = make_stem()
        cin = 64
        for i, (maker, width, stride) in enumerate(zip(makers, (64, 128, 256, 512), (1, 2, 2, 2)), start=1):
            stage = nn.Sequential(BasicBlock(cin, width, maker, stride), BasicBlock(width, width, maker))
            setattr(self, f"layer{i}", stage)
            cin = width
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


@torch.no_grad()
def _randomize(model: nn.Module, seed: int) -> None:
    """Deterministic weights with BatchNorm statistics far from identity, so folding is really exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            fan_in = m.weight[0].numel()
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
        elif isinstance(m, nn.BatchNorm3d):
            c = m.num_features
            m.weight.copy_(torch.rand(c, generator=g) + 0.5)  # gamma in [0.5, 1.5]
            m.bias.copy_(torch.randn(c, generator=g) * 0.2)
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)  # in [0.5, 2]
            m.num_batches_tracked.fill_(1000)
        elif isinstance(m, nn.Linear):
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.in_features**0.5)
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def make_model(arch: str, seed: int = 0, num_classes: int = 400) -> nn.Module:
    """A random-weight `arch` in eval mode, in torchvision's module layout."""
    model = VideoResNet(arch, num_classes)
    _randomize(model, seed)
    return model.eval()


def save_checkpoint(model: nn.Module, path) -> None:
    """Save the way torchvision's checkpoints were saved: a bare state dict."""
    torch.save(model.state_dict(), path)
