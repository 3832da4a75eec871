"""The MIA model (paper Fig. 4): encoders, the RGA and BFM MLPs, the shared ID classifier.

The model's job ends at :meth:`MIA.encode_images` / :meth:`MIA.encode_texts`; similarities
are pure functions of their outputs (:mod:`mia.model.similarity`), so a gallery is encoded
once and scored many times.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from mia.model.embeddings import ImageEmbeddings, TextEmbeddings
from mia.model.image_encoder import ImageEncoder
from mia.model.mlp import mlp
from mia.model.text_encoder import TextEncoder

# Parameter groups a training step can unfreeze, by module-name prefix.
PARAMETER_GROUPS = {
    "backbone": ("image_encoder.backbone.",),
    "global_fc": ("image_encoder.global_fc.",),
    "part_branch": ("image_encoder.part_conv.", "image_encoder.part_proj."),
    "text": ("text_encoder.",),
    "classifier": ("classifier.",),
    "rga": ("mlp_v_rga.", "mlp_t_rga."),
    "bfm": ("mlp_v_bfm.", "mlp_t_bfm."),
}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters (paper defaults; demo configs shrink them)."""

    backbone: str = "vgg16"
    embed_dim: int = 1024  # V = C = N = P: joint space of I, T, N_j, P_i
    part_channels: int = 1024  # output of the 1x1 conv; != embed_dim adds part_proj
    num_parts: int = 6  # n
    word_dim: int = 300  # E
    gru_hidden: int = 1024  # H
    mlp_hidden: int = 1024
    small_width: int = 32  # channel width of the "small" backbone
    last_stride: int = 1  # stride of the last stage of resnet50 / efficientnet_lite0
    # Initial backbone weights: null (random), "imagenet", or a state_dict file. Only used
    # when a run starts; checkpoints carry the trained weights.
    pretrained: str | None = None
    # Initial word embeddings: null (random, as the paper), "glove-6b-50d", or a text file
    # of vectors; word_vectors_dim is their size, filled in when a run starts.
    word_vectors: str | None = None
    word_vectors_dim: int = 0


# ModelConfig fields that do not change the architecture (not compared with checkpoints)
NON_ARCHITECTURE = ("pretrained", "word_vectors")


class MIA(nn.Module):
    def __init__(self, config: ModelConfig, vocab_size: int, num_classes: int):
        super().__init__()
        self.config = config
        d, h = config.embed_dim, config.mlp_hidden
        self.image_encoder = ImageEncoder(
            backbone=config.backbone, embed_dim=d, part_channels=config.part_channels,
            num_parts=config.num_parts, small_width=config.small_width,
            last_stride=config.last_stride)
        self.text_encoder = TextEncoder(vocab_size=vocab_size, word_dim=config.word_dim,
                                        hidden=config.gru_hidden, embed_dim=d,
                                        vectors_dim=config.word_vectors_dim)
        self.mlp_v_rga, self.mlp_t_rga = mlp(d, h, d), mlp(d, h, d)
        self.mlp_v_bfm, self.mlp_t_bfm = mlp(d, h, d), mlp(d, h, d)
        self.classifier = nn.Linear(d, num_classes)  # W_s, b_s shared by I and T (Eq. 19)

    def load_pretrained_backbone(self) -> None:
        """Initialise the CNN from ``config.pretrained`` (no-op when it is null)."""
        if self.config.pretrained:
            from mia.model.pretrained import load_backbone_weights

            load_backbone_weights(self.image_encoder.backbone, self.config.backbone,
                                  self.config.pretrained)

    def load_word_vectors(self, vocab, seed: int = 0) -> float:
        """Initialise the word embedding from ``config.word_vectors``; returns the fraction
        of the vocabulary the vectors cover (1.0 when no vectors are configured)."""
        if not self.config.word_vectors:
            return 1.0
        from mia.text.word_vectors import embedding_matrix, load_word_vectors

        words, vectors = load_word_vectors(self.config.word_vectors)
        matrix, coverage = embedding_matrix(vocab, words, vectors, seed)
        with torch.no_grad():
            self.text_encoder.embedding.weight.copy_(torch.from_numpy(matrix))
        return coverage

    def encode_images(self, images: Tensor, with_parts: bool = True) -> ImageEmbeddings:
        """images [B, 3, H, W] -> I, P and the visual MLP outputs."""
        global_, parts = self.image_encoder(images, with_parts=with_parts)
        if parts is None:
            empty = global_.new_zeros(global_.shape[0], 0, global_.shape[1])
            return ImageEmbeddings(global_, empty, empty, empty)
        return ImageEmbeddings(global_, parts, self.mlp_v_rga(parts), self.mlp_v_bfm(parts))

    def encode_texts(self, tokens: Tensor, lengths: Tensor, phrase_tokens: Tensor | None = None,
                     phrase_lengths: Tensor | None = None,
                     phrase_mask: Tensor | None = None) -> TextEmbeddings:
        """Token ids -> T, N_1..N_m and the textual MLP outputs (see TextEncoder.forward)."""
        global_, phrases = self.text_encoder(tokens, lengths, phrase_tokens, phrase_lengths,
                                             phrase_mask)
        if phrases is None:
            empty = global_.new_zeros(global_.shape[0], 0, global_.shape[1])
            mask = torch.zeros(global_.shape[0], 0, dtype=torch.bool, device=global_.device)
            return TextEmbeddings(global_, empty, mask, empty, empty)
        return TextEmbeddings(global_, phrases, phrase_mask, self.mlp_t_rga(phrases),
                              self.mlp_t_bfm(phrases))

    def group_parameters(self, group: str) -> list[nn.Parameter]:
        prefixes = PARAMETER_GROUPS[group]
        return [p for name, p in self.named_parameters() if name.startswith(prefixes)]

    def group_modules(self, group: str) -> list[nn.Module]:
        prefixes = tuple(p.rstrip(".") for p in PARAMETER_GROUPS[group])
        return [m for name, m in self.named_modules() if name in prefixes]

    def describe(self) -> dict:
        return {"config": asdict(self.config),
                "parameters": {g: sum(p.numel() for p in self.group_parameters(g))
                               for g in PARAMETER_GROUPS}}
