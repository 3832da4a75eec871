"""Helpers shared by the benchmark scripts: timing and synthetic embeddings."""

from __future__ import annotations

import time

import torch

from mia.model.embeddings import ImageEmbeddings, TextEmbeddings


def timeit(fn, repeat: int = 3, warmup: int = 1) -> float:
    """Best wall time of ``repeat`` calls, in seconds."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def synthetic_embeddings(n_queries: int, n_images: int, dim: int = 1024, parts: int = 6,
                         mean_phrases: float = 6.0, max_phrases: int = 12, seed: int = 0
                         ) -> tuple[ImageEmbeddings, TextEmbeddings, torch.Tensor, torch.Tensor]:
    """Random gallery/query embeddings with CUHK-PEDES-like shapes and person ids
    (about two images per person, two captions per image), phrase counts varying 1..max."""
    gen = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=gen)

    gallery_pids = torch.arange(n_images) // 3
    query_pids = gallery_pids[torch.randint(0, n_images, (n_queries,), generator=gen)]
    counts = torch.poisson(torch.full((n_queries,), mean_phrases - 1), generator=gen)
    counts = counts.clamp(0, max_phrases - 1).long() + 1
    m = int(counts.max())
    mask = torch.arange(m)[None] < counts[:, None]
    # person-correlated features so rankings are not random
    proto = r(int(gallery_pids.max()) + 1, dim)
    img_global = proto[gallery_pids] + 0.8 * r(n_images, dim)
    txt_global = proto[query_pids] + 0.8 * r(n_queries, dim)
    img = ImageEmbeddings(img_global, img_global[:, None] + r(n_images, parts, dim),
                          r(n_images, parts, dim), r(n_images, parts, dim))
    z = mask[..., None].float()
    txt = TextEmbeddings(txt_global, (txt_global[:, None] + r(n_queries, m, dim)) * z, mask,
                         r(n_queries, m, dim) * z, r(n_queries, m, dim) * z)
    return img, txt, query_pids, gallery_pids
