"""Training objectives (paper Sec. III-B.1): identity loss (Eq. 19) and the sum-of-hinges
matching loss (Eq. 20) on each similarity. Every loss returns named terms; the trainer
sums and logs whatever comes back.

Beyond the paper, as options (``train.matching_loss``, ``train.negatives``): the hardest-
negative hinge of VSE++ ("max_hinge"), a softmax contrastive loss ("contrastive", InfoNCE
in both directions), and negatives by identity rather than by image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mia.config import TrainConfig
from mia.model.embeddings import ImageEmbeddings, TextEmbeddings
from mia.model.mia import MIA
from mia.model.similarity import similarities

# matching loss name -> (granularity computed by similarities(), similarity it uses)
MATCHING = {"gc": ("g", "sG"), "rga_it": ("r", "sI"), "rga_ti": ("r", "sT"),
            "bfm_pn": ("l", "sP"), "bfm_np": ("l", "sN")}


@dataclass(frozen=True)
class MatchingConfig:
    loss: str = "sum_hinge"  # the paper's Eq. 20
    margin: float = 0.2  # alpha of the hinges
    negatives: str = "image"  # the paper: every other image, even of the same person
    temperature: float = 0.05  # of the contrastive loss

    @classmethod
    def of(cls, train: TrainConfig) -> MatchingConfig:
        """The matching loss a config's ``train`` section asks for."""
        return cls(train.matching_loss, train.margin, train.negatives,
                   train.matching_temperature)


def sum_of_hinges(scores: Tensor, negatives: Tensor, margin: float) -> Tensor:
    """Eq. 20 over a batch. scores [B, B]: caption b (row) x image b' (column), true pairs on
    the diagonal; negatives [B, B] marks the pairs that count as mismatched.

    Both directions, all in-batch negatives, summed over negatives, averaged over anchors.
    """
    positive = scores.diagonal()
    text_anchor = (margin - positive[:, None] + scores).clamp_min(0)  # S(T, Î) terms
    image_anchor = (margin - positive[None, :] + scores).clamp_min(0)  # S(I, T̂) terms
    mask = negatives.to(scores.dtype)
    return ((text_anchor * mask).sum() + (image_anchor * mask).sum()) / scores.shape[0]


def max_of_hinges(scores: Tensor, negatives: Tensor, margin: float) -> Tensor:
    """VSE++: the hinge of the hardest negative only, both directions, mean over anchors."""
    positive = scores.diagonal()
    hard = scores.masked_fill(~negatives, float("-inf"))
    text_anchor = (margin - positive + hard.amax(1)).clamp_min(0)
    image_anchor = (margin - positive + hard.amax(0)).clamp_min(0)
    return (text_anchor.nan_to_num(0.0, neginf=0.0).sum()
            + image_anchor.nan_to_num(0.0, neginf=0.0).sum()) / scores.shape[0]


def contrastive(scores: Tensor, negatives: Tensor, temperature: float) -> Tensor:
    """InfoNCE in both directions: each true pair against its row's / column's negatives
    (pairs that are neither the true pair nor a negative are left out)."""
    eye = torch.eye(len(scores), dtype=torch.bool, device=scores.device)
    logits = (scores / temperature).masked_fill(~(negatives | eye), float("-inf"))
    target = torch.arange(len(scores), device=scores.device)
    return F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)


def matching_loss(scores: Tensor, negatives: Tensor, cfg: MatchingConfig) -> Tensor:
    if cfg.loss == "sum_hinge":
        return sum_of_hinges(scores, negatives, cfg.margin)
    if cfg.loss == "max_hinge":
        return max_of_hinges(scores, negatives, cfg.margin)
    return contrastive(scores, negatives, cfg.temperature)


def image_negatives(image_index: Tensor) -> Tensor:
    """Negatives by image [B, B]: another image (even of the same person) is a negative; the
    same image (e.g. its other caption) is not."""
    return image_index[:, None] != image_index[None, :]


def identity_negatives(labels: Tensor) -> Tensor:
    """Negatives by identity [B, B]: only images of other people are negatives."""
    return labels[:, None] != labels[None, :]


def needs(losses: dict[str, float]) -> tuple[bool, tuple[str, ...]]:
    """(parts and phrases needed?, granularities to compute) for a set of losses."""
    grans = tuple(dict.fromkeys(MATCHING[k][0] for k in losses if k in MATCHING))
    return any(g in ("r", "l") for g in grans), grans


def compute_losses(model: MIA, img: ImageEmbeddings, txt: TextEmbeddings, labels: Tensor,
                   image_index: Tensor, losses: dict[str, float],
                   matching: MatchingConfig, label_smoothing: float = 0.0) -> dict[str, Tensor]:
    """Weighted loss terms for one batch, e.g. {"id_image", "id_text", "match_gc", ...}.
    ``label_smoothing`` (0 in the paper) softens the identity targets of Eq. 19."""
    terms: dict[str, Tensor] = {}
    if "id" in losses:  # Eq. 19: one classifier W_s shared by images and texts
        for name, feats in (("id_image", img.global_), ("id_text", txt.global_)):
            terms[name] = losses["id"] * F.cross_entropy(model.classifier(feats), labels,
                                                         label_smoothing=label_smoothing)
    _, grans = needs(losses)
    if grans:
        sims = similarities(img, txt, grans)
        negatives = (image_negatives(image_index) if matching.negatives == "image"
                     else identity_negatives(labels))
        for name, weight in losses.items():
            if name in MATCHING:
                terms[f"match_{name}"] = weight * matching_loss(sims[MATCHING[name][1]],
                                                                negatives, matching)
    return terms
