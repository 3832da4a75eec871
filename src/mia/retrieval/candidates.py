"""Stage 1 of large-gallery search: candidate images from the global features alone.

Backends: ``torch`` (exact inner products over unit global features, float16 or float32,
no extra dependency), ``faiss-flat`` (exact, FAISS), ``faiss-ivf`` (inverted lists over
k-means cells, approximate, fast to build) and ``faiss-hnsw`` (graph search, approximate,
slow to build). FAISS is optional (``pip install faiss-cpu``) and imported only when asked
for.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mia.utils.errors import MiaError

BACKENDS = ("torch", "faiss-flat", "faiss-ivf", "faiss-hnsw")


def _faiss():
    try:
        import faiss
    except ImportError as exc:
        raise MiaError("FAISS is not installed: pip install faiss-cpu (or mia-reid[faiss]); "
                       "or use the pure-torch candidate search (--backend torch)") from exc
    return faiss


class CandidateIndex:
    """Top-C images by sG = cos(I, T) for one or more unit sentence features."""

    def __init__(self, global_features: np.ndarray | torch.Tensor, backend: str = "torch",
                 dtype: torch.dtype = torch.float16, hnsw_m: int = 32, ef_search: int = 128,
                 nprobe: int = 32):
        if backend not in BACKENDS:
            raise MiaError(f"unknown candidate backend {backend!r} (valid: {', '.join(BACKENDS)})")
        self.backend, self.ef_search, self.nprobe = backend, ef_search, nprobe
        feats = torch.from_numpy(np.array(global_features, dtype=np.float32))
        feats = F.normalize(feats, dim=-1)
        if backend == "torch":
            self.features = feats.to(dtype)
            return
        faiss = _faiss()
        data = np.ascontiguousarray(feats.numpy(), dtype=np.float32)
        if backend == "faiss-flat":
            self.index = faiss.IndexFlatIP(data.shape[1])
        elif backend == "faiss-ivf":
            cells = max(1, min(int(4 * len(data) ** 0.5), len(data) // 39))
            self.quantizer = faiss.IndexFlatIP(data.shape[1])
            self.index = faiss.IndexIVFFlat(self.quantizer, data.shape[1], cells,
                                            faiss.METRIC_INNER_PRODUCT)
            sample = data[np.random.default_rng(0).permutation(len(data))[:cells * 64]]
            self.index.train(sample)
            self.index.nprobe = min(nprobe, cells)
        else:
            self.index = faiss.IndexHNSWFlat(data.shape[1], hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efSearch = ef_search
        self.index.add(data)

    def search(self, t_hat: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """t_hat [B, D] unit sentence features -> (sG [B, C], image indices [B, C])."""
        if self.backend == "torch":
            scores = t_hat.to(self.features.dtype) @ self.features.T
            top = torch.topk(scores.float(), min(count, scores.shape[1]), dim=1)
            return top.values, top.indices
        if self.backend == "faiss-hnsw":  # the beam must be at least as wide as the answer
            self.index.hnsw.efSearch = max(self.ef_search, 2 * count)
        values, indices = self.index.search(np.ascontiguousarray(t_hat.float().numpy()), count)
        values, indices = torch.from_numpy(values), torch.from_numpy(indices).long()
        found = indices[0] >= 0  # FAISS pads with -1 when it finds fewer than count
        return values[:, found], indices[:, found]
