"""Training objectives (paper Sec. III-B.1): identity loss (Eq. 19) and the sum-of-hinges
matching loss (Eq. 20) on each similarity. Every loss returns named terms; the trainer
sums and logs whatever comes back."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from mia.model.embeddings import ImageEmbeddings, TextEmbeddings
from mia.model.mia import MIA
from mia.model.similarity import similarities

# matching loss name -> (granularity computed by similarities(), similarity it uses)
MATCHING = {"gc": ("g", "s_g"), "rga_it": ("r", "s_i"), "rga_ti": ("r", "s_t"),
            "bfm_pn": ("l", "s_p"), "bfm_np": ("l", "s_n")}


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


def image_negatives(image_index: Tensor) -> Tensor:
    """Negatives by image [B, B]: another image (even of the same person) is a negative; the
    same image (e.g. its other caption) is not."""
    return image_index[:, None] != image_index[None, :]


def needs(losses: dict[str, float]) -> tuple[bool, tuple[str, ...]]:
    """(parts and phrases needed?, granularities to compute) for a set of losses."""
    grans = tuple(dict.fromkeys(MATCHING[k][0] for k in losses if k in MATCHING))
    return any(g in ("r", "l") for g in grans), grans


def compute_losses(model: MIA, img: ImageEmbeddings, txt: TextEmbeddings, labels: Tensor,
                   image_index: Tensor, losses: dict[str, float],
                   margin: float) -> dict[str, Tensor]:
    """Weighted loss terms for one batch, e.g. {"id_image", "id_text", "match_gc", ...}."""
    terms: dict[str, Tensor] = {}
    if "id" in losses:  # Eq. 19: one classifier W_s shared by images and texts
        terms["id_image"] = losses["id"] * F.cross_entropy(model.classifier(img.global_), labels)
        terms["id_text"] = losses["id"] * F.cross_entropy(model.classifier(txt.global_), labels)
    _, grans = needs(losses)
    if grans:
        sims = similarities(img, txt, grans)
        negatives = image_negatives(image_index)
        for name, weight in losses.items():
            if name in MATCHING:
                terms[f"match_{name}"] = weight * sum_of_hinges(sims[MATCHING[name][1]],
                                                                negatives, margin)
    return terms
