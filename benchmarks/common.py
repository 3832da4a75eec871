"""Helpers shared by the benchmark scripts: the machine, timing, synthetic embeddings."""

from __future__ import annotations

import datetime
import os
import platform
import time

import torch
import torch.nn.functional as F

from mia.model.embeddings import ImageEmbeddings, TextEmbeddings


def machine_line() -> str:
    """Date, CPU model and features, cores, torch version: printed by every benchmark."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = ", ".join(name for flag, name in (("avx512f", "AVX-512"), ("avx512_bf16", "BF16"),
                                            ("amx_bf16", "AMX")) if flag in flags)
    gpu = (f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "")
    return (f"{datetime.date.today().isoformat()}, {model} ({os.cpu_count()} cores"
            f"{', ' + isa if isa else ''}{', no AMX' if flags and 'amx_bf16' not in flags else ''})"
            f"{gpu}, torch {torch.__version__}")


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
    keys = lambda *shape: F.normalize(r(*shape), dim=-1)  # noqa: E731  (scale-1 attention keys)
    img = ImageEmbeddings(img_global, img_global[:, None] + r(n_images, parts, dim),
                          keys(n_images, parts, dim), keys(n_images, parts, dim))
    z = mask[..., None].float()
    txt = TextEmbeddings(txt_global, (txt_global[:, None] + r(n_queries, m, dim)) * z, mask,
                         keys(n_queries, m, dim) * z, keys(n_queries, m, dim) * z)
    return img, txt, query_pids, gallery_pids
