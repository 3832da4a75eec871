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

from mia.config import IDENTITY_LOSS, MATCHING_SIMILARITY, TrainConfig
from mia.model.embeddings import ImageEmbeddings, TextEmbeddings
from mia.model.mia import MIA
from mia.model.similarity import similarities

# matching loss name -> (granularity computed by similarities(), similarity it uses): the
# table of mia.config, which validates a step's loss names against it (LOSS_NAMES)
MATCHING = MATCHING_SIMILARITY


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


def hinge_pairs(scores: Tensor, negatives: Tensor, margin: float) -> Tensor:
    """Eq. 20 per pair b [B]: the hinges of caption b as anchor (row b) plus those of
    image b as anchor (column b), summed over their negatives. scores [B, B]: caption b
    (row) x image b' (column), true pairs on the diagonal; negatives [B, B] marks the
    pairs that count as mismatched."""
    positive = scores.diagonal()
    mask = negatives.to(scores.dtype)
    text_anchor = ((margin - positive[:, None] + scores).clamp_min(0) * mask).sum(1)  # S(T, Î)
    image_anchor = ((margin - positive[None, :] + scores).clamp_min(0) * mask).sum(0)  # S(I, T̂)
    return text_anchor + image_anchor


def max_hinge_pairs(scores: Tensor, negatives: Tensor, margin: float) -> Tensor:
    """VSE++ per pair [B]: the hinge of the hardest negative only, both directions."""
    positive = scores.diagonal()
    hard = scores.masked_fill(~negatives, float("-inf"))
    text_anchor = (margin - positive + hard.amax(1)).clamp_min(0)
    image_anchor = (margin - positive + hard.amax(0)).clamp_min(0)
    return (text_anchor.nan_to_num(0.0, neginf=0.0)
            + image_anchor.nan_to_num(0.0, neginf=0.0))


def contrastive_pairs(scores: Tensor, negatives: Tensor, temperature: float) -> Tensor:
    """InfoNCE per pair [B], both directions: each true pair against its row's / column's
    negatives (pairs that are neither the true pair nor a negative are left out)."""
    eye = torch.eye(len(scores), dtype=torch.bool, device=scores.device)
    logits = (scores / temperature).masked_fill(~(negatives | eye), float("-inf"))
    target = torch.arange(len(scores), device=scores.device)
    return (F.cross_entropy(logits, target, reduction="none")
            + F.cross_entropy(logits.T, target, reduction="none"))


def sum_of_hinges(scores: Tensor, negatives: Tensor, margin: float) -> Tensor:
    """Eq. 20 over a batch: all in-batch negatives, summed over negatives, averaged over
    anchors (both directions)."""
    return hinge_pairs(scores, negatives, margin).mean()


def max_of_hinges(scores: Tensor, negatives: Tensor, margin: float) -> Tensor:
    return max_hinge_pairs(scores, negatives, margin).mean()


def contrastive(scores: Tensor, negatives: Tensor, temperature: float) -> Tensor:
    return contrastive_pairs(scores, negatives, temperature).mean()


def matching_pairs(scores: Tensor, negatives: Tensor, cfg: MatchingConfig) -> Tensor:
    """The configured matching loss of each pair of the batch [B]."""
    if cfg.loss == "sum_hinge":
        return hinge_pairs(scores, negatives, cfg.margin)
    if cfg.loss == "max_hinge":
        return max_hinge_pairs(scores, negatives, cfg.margin)
    return contrastive_pairs(scores, negatives, cfg.temperature)


def matching_loss(scores: Tensor, negatives: Tensor, cfg: MatchingConfig,
                  weight: Tensor | None = None) -> Tensor:
    """Mean over the batch's pairs, each pair's loss times its ``weight`` (default 1)."""
    return weighted_mean(matching_pairs(scores, negatives, cfg), weight)


def weighted_mean(values: Tensor, weight: Tensor | None) -> Tensor:
    """sum_b w_b v_b / B: with all weights 1, the plain mean (the paper); a weight of 0
    removes a pair without changing the other pairs' share."""
    if weight is None:
        return values.mean()
    return (values * weight.to(values.dtype)).sum() / len(values)


def pair_weights(weak: Tensor | None, weak_weight: float, device=None) -> Tensor | None:
    """Per-pair loss weights [B]: ``weak_weight`` for pairs whose caption is marked weak, 1
    for the others; None when every weight is 1."""
    if weak is None or weak_weight == 1.0 or not bool(weak.any()):
        return None
    return torch.where(weak.to(device), torch.tensor(float(weak_weight), device=device),
                       torch.tensor(1.0, device=device))


def drop_hardest(weight: Tensor | None, pair_loss: Tensor, fraction: float) -> Tensor | None:
    """Small-loss selection against noisy pairs (as in the noisy-correspondence
    literature): the weights of the ``fraction`` of pairs with the highest matching loss
    set to 0, so a caption that does not fit its image teaches nothing this batch."""
    if fraction <= 0:
        return weight
    k = int(fraction * len(pair_loss))
    if k == 0:
        return weight
    weight = torch.ones_like(pair_loss) if weight is None else weight.clone()
    weight[pair_loss.detach().topk(k).indices] = 0.0
    return weight


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
                   matching: MatchingConfig, label_smoothing: float = 0.0,
                   weight: Tensor | None = None, drop_fraction: float = 0.0
                   ) -> dict[str, Tensor]:
    """Weighted loss terms for one batch, e.g. {"id_image", "id_text", "match_gc", ...}.
    ``label_smoothing`` (0 in the paper) softens the identity targets of Eq. 19.
    ``weight`` [B] scales each pair's terms (see :func:`pair_weights`; None: the paper's
    plain means); ``drop_fraction`` > 0 also zeroes the pairs with the highest summed
    matching loss (:func:`drop_hardest`)."""
    terms: dict[str, Tensor] = {}
    _, grans = needs(losses)
    pair_terms: dict[str, Tensor] = {}
    if grans:
        sims = similarities(img, txt, grans)
        negatives = (image_negatives(image_index) if matching.negatives == "image"
                     else identity_negatives(labels))
        for name in losses:
            if name in MATCHING:
                pair_terms[name] = matching_pairs(sims[MATCHING[name][1]], negatives, matching)
    if pair_terms and drop_fraction > 0:
        weight = drop_hardest(weight, sum(pair_terms.values()), drop_fraction)
    if IDENTITY_LOSS in losses:  # Eq. 19: one classifier W_s shared by images and texts
        for name, feats in (("id_image", img.global_), ("id_text", txt.global_)):
            per_pair = F.cross_entropy(model.classifier(feats), labels,
                                       label_smoothing=label_smoothing, reduction="none")
            terms[name] = losses[IDENTITY_LOSS] * weighted_mean(per_pair, weight)
    for name, per_pair in pair_terms.items():
        terms[f"match_{name}"] = losses[name] * weighted_mean(per_pair, weight)
    return terms
