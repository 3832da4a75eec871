"""Test-time re-ranking with the gallery's own image-image similarities (not in the paper;
off unless asked for: ``mia evaluate --rerank K:BETA``).

A caption's first hits are most often its person; that person's other images look like
them more than like anyone else. Query expansion over the top images (the gallery-side
analogue of average query expansion in image retrieval, Chum et al. 2007; in person re-id,
e.g. the expansion step of k-reciprocal re-ranking, Zhong et al. 2017) therefore adds to
each caption's score of an image how much that image resembles the caption's top K:

    e(q, g) = mean_{j in top_K(q)} A(j, g)
    s'(q, g) = z(s(q, .))(g) + BETA z(e(q, .))(g)

with ``A`` the image affinity (the mean of the global cosine cos(I_a, I_b) and the
stripe-wise cosines cos(P_a,i, P_b,i)), and ``z`` a standardisation over the gallery per
caption (the two terms have different scales). BETA = 0 keeps the ranking. Everything is
computed from embeddings already encoded: no image is encoded again. The affinity is G x G
(G = 3,074 test images: 38 MB in fp32).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mia.model.embeddings import ImageEmbeddings

RERANK_GRID = {"k": (1, 2, 3, 5, 8), "beta": (0.1, 0.2, 0.3, 0.5, 0.75, 1.0)}


def image_affinity(img: ImageEmbeddings) -> Tensor:
    """[G, G]: (cos(I_a, I_b) + mean_i cos(P_a,i, P_b,i)) / 2."""
    glob = F.normalize(img.global_.float(), dim=-1)
    parts = F.normalize(img.parts.float(), dim=-1)  # [G, n, D]
    stripe = torch.einsum("and,bnd->ab", parts, parts) / parts.shape[1]
    return (glob @ glob.T + stripe) / 2


def standardise(x: Tensor) -> Tensor:
    """Each row minus its mean, over its standard deviation (a query's scores on one scale)."""
    return (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True).clamp_min(1e-12)


def expand(scores: Tensor, affinity: Tensor, k: int, beta: float, chunk: int = 256) -> Tensor:
    """s' of the module docstring for every caption (rows) and image (columns); ``chunk``
    captions at a time (each holds a [chunk, K, G] gather)."""
    if k < 1 or beta < 0:
        raise ValueError(f"re-ranking needs K >= 1 and BETA >= 0, got K={k}, BETA={beta}")
    out = torch.empty(scores.shape, dtype=torch.float32)
    for start in range(0, scores.shape[0], chunk):
        rows = scores[start:start + chunk].float()
        top = rows.topk(min(k, rows.shape[1]), dim=1).indices  # [c, K]
        expansion = affinity[top].mean(1)  # [c, G]
        out[start:start + chunk] = standardise(rows) + beta * standardise(expansion)
    return out


def parse_rerank(text: str) -> tuple[int, float]:
    """'K:BETA' -> (K, BETA), for the command line."""
    try:
        k, beta = text.split(":")
        k, beta = int(k), float(beta)
    except ValueError as exc:
        raise ValueError(f"--rerank {text!r}: expected K:BETA, e.g. 3:0.5") from exc
    if k < 1 or not beta >= 0:
        raise ValueError(f"--rerank {text!r}: K must be >= 1 and BETA >= 0")
    return k, beta
