"""The network and the paper's equations: backbones (:mod:`.backbones`,
:mod:`.efficientnet_lite`, :mod:`.pretrained`), the image and text encoders
(:mod:`.image_encoder`, :mod:`.text_encoder`, :mod:`.minilm`), the four MLPs
(:mod:`.mlp`), MIA itself (:mod:`.mia`), embeddings (:mod:`.embeddings`) and every
per-pair similarity (:mod:`.similarity`, Eq. 4-18).

Other parts import from the modules listed in ``__all__`` (docs/ARCHITECTURE.md)."""

__all__ = ["backbones", "efficientnet_lite", "embeddings", "image_encoder", "mia", "minilm", "mlp",
           "pretrained", "similarity", "text_encoder"]
