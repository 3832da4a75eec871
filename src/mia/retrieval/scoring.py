"""Exact all-pairs MIA scoring at gallery scale, chunked to a memory budget.

:func:`score_all` evaluates sG, sR, sL (and sF) for every (caption, image) pair from cached
embeddings by calling :func:`mia.model.similarity.similarities` on blocks of queries x
images. Block sizes follow from ``memory_mb``: the largest intermediate is BFM's
``[q, m, g, n]`` logits, and a handful of such tensors live at once.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mia.model.embeddings import ImageEmbeddings, TextEmbeddings
from mia.model.similarity import GRANULARITIES, fuse, similarities

OUTPUTS = {"g": ("s_g",), "r": ("s_r",), "l": ("s_l",)}
LIVE_BLOCKS = 8  # [q, m, g, n]-sized tensors alive at the peak of bfm()


def block_sizes(n_queries: int, n_images: int, m: int, n: int, memory_mb: float,
                bytes_per: int = 4) -> tuple[int, int]:
    """(queries, images) per block so that the BFM intermediates fit ``memory_mb``."""
    budget = memory_mb * 2**20 / (LIVE_BLOCKS * bytes_per * max(m, 1) * max(n, 1))
    images = min(n_images, max(1, int(math.sqrt(budget))))
    queries = min(n_queries, max(1, int(budget // images)))
    return queries, images


@torch.no_grad()
def score_all(img: ImageEmbeddings, txt: TextEmbeddings,
              granularities: tuple[str, ...] = GRANULARITIES, memory_mb: float = 1024,
              dtype: torch.dtype = torch.float32, keep: tuple[str, ...] | None = None,
              ) -> dict[str, Tensor]:
    """Similarity matrices ``[Q, G]`` (float32, on the embeddings' device), keyed s_g/s_r/s_l
    by default (``keep`` selects other keys of :func:`similarities`, e.g. s_i, s_p)."""
    keep = keep or tuple(k for g in granularities for k in OUTPUTS[g])
    Q, G = len(txt), len(img)
    qb, gb = block_sizes(Q, G, txt.phrases.shape[1], img.parts.shape[1], memory_mb,
                         torch.finfo(dtype).bits // 8)
    out = {k: torch.empty(Q, G, device=img.global_.device) for k in keep}
    img_c, txt_c = img.to(dtype=dtype), txt.to(dtype=dtype)
    for q0 in range(0, Q, qb):
        t = txt_c.select(slice(q0, q0 + qb))
        for g0 in range(0, G, gb):
            block = similarities(img_c.select(slice(g0, g0 + gb)), t, granularities)
            for k in keep:
                out[k][q0:q0 + qb, g0:g0 + gb] = block[k].float()
    return out


def fused(scores: dict[str, Tensor], lambda1: float, lambda2: float) -> Tensor:
    return fuse(scores["s_g"], scores.get("s_r"), scores.get("s_l"), lambda1, lambda2)
