"""Exact all-pairs MIA scoring at gallery scale, within a memory budget.

:func:`score_all` returns sG, sR, sL (and on request sI, sT, sP, sN) for every
(caption, image) pair from cached embeddings. It computes exactly the per-pair equations
(see :mod:`mia.model.similarity`, which holds the same math in its simplest form) but is
organised for speed:

- **No aggregated vectors.** cos(Σ_i w_i X_i, Y) = Σ_i w_i (X_i·Y) / sqrt(wᵀ(XXᵀ)w), so every
  granularity needs only dot products (large matrix products) and small Gram matrices.
- **No softmax normalisation.** The cosine is scale-invariant, so the softmax denominator
  cancels: unnormalised weights ``exp(logit - bound)`` give the same cosine. The logits are
  scaled cosines, at most ``bound`` (the largest key norm, i.e. the attention scale), so
  ``exp`` cannot overflow.
- **Captions bucketed by phrase count.** Queries with the same number m of phrases are
  scored together, so no work is spent on padding.
- **Blocks sized to the cache and the budget.** Each block of captions x images is scored
  with two matrix products and a few in-place passes over a tensor that fits in cache.
- **bf16 matrix products** optionally (``dtype=torch.bfloat16``); all elementwise work and
  every output stays in float32.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mia.model.embeddings import ImageEmbeddings, TextEmbeddings

EPS = 1e-8
TINY = 1e-30  # exp(-2 s)^2 for the largest attention scale s = 10 is 4e-18
BLOCK_ELEMENTS = 1 << 21  # ~8 MB of float32 per [q, m, g, n] block: stays in L2/L3 cache
ALL_KEYS = ("sG", "sI", "sT", "sR", "sP", "sN", "sL")
DEFAULT_KEYS = ("sG", "sR", "sL")


@dataclass
class Gallery:
    """Per-image tensors every query needs, computed once. G images, n parts."""

    i_hat: Tensor  # unit I [G, D]
    rga_dots_rhs: Tensor  # [RGA keys ; P] flattened [G * 2n, D] (matmul dtype)
    bfm_keys: Tensor  # BFM keys [G * n, D] (matmul dtype)
    parts: Tensor  # P [G * n, D] (matmul dtype)
    gram: Tensor  # P Pᵀ [G, n, n] float32
    part_norm: Tensor  # |P_i| [G, n] float32
    n: int
    rga_bound: float  # largest RGA key norm (bounds the I->T logits)
    bfm_bound: float  # largest BFM key norm

    @classmethod
    def build(cls, img: ImageEmbeddings, dtype: torch.dtype) -> Gallery:
        G, n, D = img.parts.shape
        parts = img.parts.float()
        rhs = torch.cat([img.rga_keys.float(), parts], dim=1)
        return cls(i_hat=F.normalize(img.global_.float(), dim=-1, eps=EPS),
                   rga_dots_rhs=rhs.reshape(G * 2 * n, D).to(dtype),
                   bfm_keys=img.bfm_keys.reshape(G * n, D).to(dtype),
                   parts=parts.reshape(G * n, D).to(dtype),
                   gram=parts @ parts.transpose(1, 2),
                   part_norm=parts.norm(dim=-1).clamp_min(EPS), n=n,
                   rga_bound=_max_norm(img.rga_keys), bfm_bound=_max_norm(img.bfm_keys))

    def __len__(self) -> int:
        return self.i_hat.shape[0]

    @staticmethod
    def bytes_per_image(dim: int, parts: int, dtype: torch.dtype = torch.float32) -> int:
        """Memory a prepared gallery needs per image."""
        size = torch.finfo(dtype).bits // 8
        return (4 * parts + 1) * dim * size + 4 * dim + 4 * parts * (parts + 1)


@dataclass
class QueryBucket:
    """Captions that all have exactly m phrases (rows ``index`` of the query set)."""

    index: Tensor  # [q] positions in the full query set
    rga_lhs: Tensor  # [RGA keys ; N] [q, 2m, D] (matmul dtype)
    bfm_keys: Tensor  # BFM keys [q * m, D] (matmul dtype)
    phrases: Tensor  # N [q * m, D] (matmul dtype)
    gram: Tensor  # N Nᵀ [q, m, m] float32
    phrase_norm: Tensor  # |N_j| [q, m] float32
    m: int
    rga_bound: float  # largest RGA key norm (bounds the T->I logits)
    bfm_bound: float  # largest BFM key norm


def _max_norm(keys: Tensor) -> float:
    """The largest vector norm in ``keys`` (0 when empty)."""
    return float(keys.float().norm(dim=-1).max()) if keys.numel() else 0.0

def _gather_phrases(x: Tensor, order: Tensor) -> Tensor:
    """x [q, m_max, D] -> the phrases ``order`` [q, m] of each row, float32."""
    return torch.gather(x.float(), 1, order[..., None].expand(-1, -1, x.shape[-1]))


def bucket_queries(txt: TextEmbeddings, dtype: torch.dtype) -> Iterator[QueryBucket]:
    """One bucket per phrase count, built lazily (only one bucket's copies live at once)."""
    counts = txt.phrase_mask.sum(1)
    for m in sorted(set(counts.tolist())):
        index = torch.nonzero(counts == m).squeeze(1)
        # keep the real phrases of each caption, in order (they may not be left-aligned)
        order = torch.argsort((~txt.phrase_mask[index]).int(), dim=1, stable=True)[:, :m]
        N, W, A = (_gather_phrases(x[index], order)
                   for x in (txt.phrases, txt.rga_keys, txt.bfm_keys))
        q, D = len(index), txt.phrases.shape[-1]
        yield QueryBucket(
            index=index, rga_lhs=torch.cat([W, N], dim=1).to(dtype),
            bfm_keys=A.reshape(q * m, D).to(dtype),
            phrases=N.reshape(q * m, D).to(dtype), gram=N @ N.transpose(1, 2),
            phrase_norm=N.norm(dim=-1).clamp_min(EPS), m=m,
            rga_bound=_max_norm(W), bfm_bound=_max_norm(A))


def _cos(num: Tensor, sq_norm: Tensor) -> Tensor:
    """num / sqrt(sq_norm); the floor only guards all-zero vectors, since with the logits
    shifted by their bound the weights, hence sq_norm, can be legitimately tiny."""
    return num / sq_norm.clamp_min(TINY).sqrt_()


def _quad_per_image(e: Tensor, gram: Tensor) -> Tensor:
    """e [x, g, n], gram [g, n, n] -> eᵀ gram_g e [x, g].

    Computed as a batched product over images with the long axis x last: 6x6 matrices
    times [n, x] panels run several times faster than [x, n] x [n, n] ones."""
    e_t = e.permute(1, 2, 0).contiguous()  # [g, n, x]
    return (torch.bmm(gram, e_t) * e_t).sum(1).T


def _rga_image_to_text(t_hat: Tensor, gal: Gallery, g: slice) -> Tensor:
    """sI [q, g] (Eq. 6-8) for unit sentence features t_hat [q, D]."""
    n = gal.n
    rhs = gal.rga_dots_rhs[g.start * 2 * n: g.stop * 2 * n]
    dots = (t_hat.to(rhs.dtype) @ rhs.T).float().view(len(t_hat), -1, 2 * n)
    e = (dots[..., :n] - gal.rga_bound).exp()  # unnormalised relation weights v_i [q, g, n]
    num = (e * dots[..., n:]).sum(-1)
    return _cos(num, _quad_per_image(e, gal.gram[g]))


def _rga_text_to_image(b: QueryBucket, gal: Gallery, g: slice, rows: slice) -> Tensor:
    """sT [q, g] (Eq. 9-11) for the captions ``rows`` of a bucket."""
    m = b.m
    lhs = b.rga_lhs[rows]
    dots = (lhs.reshape(-1, lhs.shape[-1]) @ gal.i_hat[g].to(lhs.dtype).T).float()
    dots = dots.view(lhs.shape[0], 2 * m, -1)
    e = (dots[:, :m] - b.rga_bound).exp()  # unnormalised phrase weights c_j [q, m, g]
    num = (e * dots[:, m:]).sum(1)
    quad = (torch.bmm(b.gram[rows], e) * e).sum(1)
    return _cos(num, quad)


def _bfm(b: QueryBucket, gal: Gallery, g: slice, rows: slice) -> tuple[Tensor, Tensor]:
    """(sP, sN) [q, g] (Eq. 12-17) for the captions ``rows`` of a bucket."""
    m, n = b.m, gal.n
    q = rows.stop - rows.start
    x = slice(rows.start * m, rows.stop * m)
    k = slice(g.start * n, g.stop * n)
    # shared unnormalised weights [q*m, g*n]
    e = (b.bfm_keys[x] @ gal.bfm_keys[k].T).float().sub_(b.bfm_bound * gal.bfm_bound).exp_()
    prod = (b.phrases[x] @ gal.parts[k].T).float().mul_(e)  # e * (N_j . P_k)
    # P->N: phrase j attends over parts k
    num_p = prod.view(q * m, -1, n).sum(-1)
    quad_p = _quad_per_image(e.view(q * m, -1, n), gal.gram[g])
    cos_p = _cos(num_p, quad_p).div_(b.phrase_norm[rows].reshape(-1, 1))
    s_p = cos_p.view(q, m, -1).mean(1)
    # N->P: part i attends over the caption's phrases k
    e3 = e.view(q, m, -1)
    num_n = prod.view(q, m, -1).sum(1)
    quad_n = (torch.bmm(b.gram[rows], e3) * e3).sum(1)
    cos_n = _cos(num_n, quad_n).view(q, -1, n).div_(gal.part_norm[g])
    return s_p, cos_n.mean(-1)


def _block_shape(budget: int, rows_per_query: int, cols_per_image: int, Q: int, G: int
                 ) -> tuple[int, int]:
    """(queries, images) per block: a near-square [q * rows, g * cols] product of about
    ``budget`` elements, so both operands are reused from cache."""
    side = max(int(budget ** 0.5), 1)
    g = max(1, min(G, side // cols_per_image))
    q = max(1, min(Q, budget // (rows_per_query * cols_per_image * g)))
    # few queries (a search request): widen the image side to use the whole budget
    g = max(g, min(G, budget // (q * rows_per_query * cols_per_image)))
    return q, g


def _blocks(total: int, size: int):
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))


class _Outputs:
    """The requested matrices; a component (sI, sT, sP, sN) is written where it is
    wanted and accumulated with weight 1/2 into sR / sL, so nothing else is stored."""

    PARENT = {"sI": "sR", "sT": "sR", "sP": "sL", "sN": "sL"}

    def __init__(self, keys: tuple[str, ...], Q: int, G: int, device):
        self.mats = {k: torch.zeros(Q, G, device=device) for k in keys}

    def wants(self, component: str) -> bool:
        return component in self.mats or self.PARENT.get(component) in self.mats

    def put(self, component: str, rows, cols: slice, value: Tensor) -> None:
        if component in self.mats:
            self.mats[component][rows, cols] = value
        parent = self.PARENT.get(component)
        if parent in self.mats:
            self.mats[parent][rows, cols] += 0.5 * value


@torch.no_grad()
def score_all(img: ImageEmbeddings, txt: TextEmbeddings, keys: tuple[str, ...] = DEFAULT_KEYS,
              memory_mb: float = 1024, dtype: torch.dtype = torch.float32,
              block_elements: int = BLOCK_ELEMENTS) -> dict[str, Tensor]:
    """Similarity matrices ``[Q, G]`` (float32, on the embeddings' device) for ``keys``
    among sG, sI, sT, sR, sP, sN, sL.

    ``memory_mb`` bounds the working memory beyond inputs, outputs and the normalised
    copies of the features; ``dtype`` is the matrix-product precision (float32 or
    bfloat16; elementwise work is float32 either way).
    """
    return score_prepared(Gallery.build(img, dtype), txt, keys, memory_mb, dtype,
                          block_elements)


@torch.no_grad()
def score_prepared(gal: Gallery, txt: TextEmbeddings, keys: tuple[str, ...] = DEFAULT_KEYS,
                   memory_mb: float = 1024, dtype: torch.dtype = torch.float32,
                   block_elements: int = BLOCK_ELEMENTS) -> dict[str, Tensor]:
    """:func:`score_all` with the per-image tensors prepared once (a served gallery)."""
    unknown = set(keys) - set(ALL_KEYS)
    if unknown:
        raise ValueError(f"unknown similarity keys {sorted(unknown)} (valid: {ALL_KEYS})")
    Q, G = len(txt), len(gal)
    out = _Outputs(keys, Q, G, gal.i_hat.device)
    t_hat = F.normalize(txt.global_.float(), dim=-1, eps=EPS)
    if "sG" in keys:
        out.mats["sG"] = t_hat @ gal.i_hat.T
    # elements of the largest per-block tensor: caps both the cache footprint and the budget
    budget = int(max(min(block_elements, memory_mb * 2**20 / (6 * 4)), 4096))
    if out.wants("sI"):
        q_size, g_size = _block_shape(budget, 1, 2 * gal.n, Q, G)
        for rows in _blocks(Q, q_size):
            for g in _blocks(G, g_size):
                out.put("sI", rows, g, _rga_image_to_text(t_hat[rows], gal, g))
    if any(out.wants(k) for k in ("sT", "sP", "sN")):
        for bucket in bucket_queries(txt, dtype):
            _score_bucket(bucket, gal, out, budget)
    return out.mats


def _score_bucket(b: QueryBucket, gal: Gallery, out: _Outputs, budget: int) -> None:
    m, n, G = b.m, gal.n, len(gal)
    if m == 0:  # captions without phrases: sT = sP = sN = 0, as in mia.model.similarity
        return
    q_size, g_size = _block_shape(budget, m, n, len(b.index), G)
    for rows in _blocks(len(b.index), q_size):
        idx = b.index[rows]
        for g in _blocks(G, g_size):
            if out.wants("sT"):
                out.put("sT", idx, g, _rga_text_to_image(b, gal, g, rows))
            if out.wants("sP") or out.wants("sN"):
                s_p, s_n = _bfm(b, gal, g, rows)
                out.put("sP", idx, g, s_p)
                out.put("sN", idx, g, s_n)


def granularity_scores(img: ImageEmbeddings, txt: TextEmbeddings, memory_mb: float = 1024,
                       dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """{"sG", "sR", "sL"} -> [texts, images] similarity matrices (Eq. 4-17)."""
    return score_all(img, txt, keys=DEFAULT_KEYS, memory_mb=memory_mb, dtype=dtype)


def fused_scores(img: ImageEmbeddings, txt: TextEmbeddings, lambda1: float, lambda2: float,
                 memory_mb: float = 1024, dtype: torch.dtype = torch.float32
                 ) -> dict[str, Tensor]:
    """sG, sR, sL and sF = sG + lambda1 sR + lambda2 sL (Eq. 18) for every (text, image)
    pair, [texts, images]: the one scoring of ``mia evaluate``, the API and the figures."""
    from mia.model.similarity import fuse

    out = granularity_scores(img, txt, memory_mb=memory_mb, dtype=dtype)
    out["sF"] = fuse(out, lambda1, lambda2)
    return out
