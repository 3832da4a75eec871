"""CNN backbones that turn an image into a feature map ``[B, C, h, w]``.

- ``vgg16``: torchvision VGG-16 ``features`` (the map before the first FC: 512 x 12 x 4 at
  384 x 128), as in the paper.
- ``resnet50``: torchvision ResNet-50 up to ``layer4`` with the last stride set to 1
  (PCB-style), giving 2048 x 24 x 8 at 384 x 128 as the paper states.
- ``small``: a 5-block CNN (~0.4 M parameters) so CPU runs finish in minutes.
"""

from __future__ import annotations

from torch import nn

BACKBONES = ("small", "vgg16", "resnet50")


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

    return vgg16(weights=None).features, 512


def _resnet50() -> tuple[nn.Module, int]:
    from torchvision.models import resnet50

    net = resnet50(weights=None)
    net.layer4[0].conv2.stride = (1, 1)  # last stride 1: 24 x 8 maps at 384 x 128 (PCB)
    net.layer4[0].downsample[0].stride = (1, 1)
    body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                         net.layer1, net.layer2, net.layer3, net.layer4)
    return body, 2048


def build_backbone(name: str, small_width: int = 32) -> tuple[nn.Module, int]:
    """(feature extractor, output channels C) for a backbone name."""
    if name == "small":
        return _small(small_width)
    builders = {"vgg16": _vgg16, "resnet50": _resnet50}
    if name not in builders:
        raise ValueError(f"unknown backbone {name!r} (valid: {', '.join(BACKBONES)})")
    return builders[name]()

