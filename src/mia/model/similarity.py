"""All-pairs similarities of MIA: sG (Eq. 4), sR (Eq. 6-11), sL (Eq. 12-17), sF (Eq. 18).

Every function takes ``Q`` encoded captions and ``G`` encoded images and returns ``[Q, G]``
matrices, exactly equal to the per-pair equations, without materialising any per-pair
aggregated vector (``I_R``, ``T_R``, ``Ĩ_j``, ``T̃_i``). The trick: a cosine with an attention-
weighted sum needs only dot products and a Gram matrix,

    cos(sum_i v_i P_i, T) = sum_i v_i (P_i . T^) / sqrt(v^T (P P^T) v),

so the work is a few matrix products plus small ``n x n`` / ``m x m`` quadratic forms.
The same code gives the in-batch ``B x B`` matrices of the matching losses (it is
differentiable) and, chunked by :mod:`mia.scoring.exact`, the gallery-scale scores.
Shapes: ``D`` joint dimension, ``n`` parts per image, ``m`` phrases per caption (padded,
``phrase_mask``). The MLP outputs arrive as attention keys (``attention_keys``: unit length
times the attention scale s), so an attention logit is a plain dot product, s * cos(...).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mia.model.embeddings import ImageEmbeddings, TextEmbeddings

EPS = 1e-8
GRANULARITIES = ("g", "r", "l")


def _unit(x: Tensor) -> Tensor:
    return F.normalize(x, dim=-1, eps=EPS)


def _cos_from_parts(num: Tensor, sq_norm: Tensor) -> Tensor:
    """num / sqrt(sq_norm) with the norm kept away from zero."""
    return num / sq_norm.clamp_min(EPS * EPS).sqrt()


def masked_softmax(logits: Tensor, mask: Tensor, dim: int) -> Tensor:
    """Softmax over ``dim`` ignoring ``mask == False``; all-masked slices give zeros."""
    logits = logits.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(logits, dim=dim)
    return torch.nan_to_num(weights, nan=0.0)


def s_g(img: ImageEmbeddings, txt: TextEmbeddings) -> Tensor:
    """GC, Eq. 4: sG = cos(I, T) -> [Q, G]."""
    return _unit(txt.global_) @ _unit(img.global_).T


def rga_image_to_text(img: ImageEmbeddings, txt: TextEmbeddings) -> Tensor:
    """RGA I->T, Eq. 6-8: sI = cos(sum_i v_i P_i, T), v = softmax_i cos(MLP_V(P_i), T).

    Returns ``[Q, G]``.
    """
    G, n, D = img.parts.shape
    t_hat = _unit(txt.global_)  # [Q, D]
    keys_and_parts = torch.cat([img.rga_keys, img.parts], dim=1)  # [G, 2n, D]
    dots = (t_hat @ keys_and_parts.reshape(G * 2 * n, D).T).view(-1, G, 2 * n)
    v = torch.softmax(dots[..., :n], dim=-1)  # relation weights v_i [Q, G, n]
    num = (v * dots[..., n:]).sum(-1)  # I_R . T^
    gram = img.parts @ img.parts.transpose(1, 2)  # [G, n, n]
    sq = (torch.einsum("qgi,gij->qgj", v, gram) * v).sum(-1)  # |I_R|^2
    return _cos_from_parts(num, sq)


def rga_text_to_image(img: ImageEmbeddings, txt: TextEmbeddings) -> Tensor:
    """RGA T->I, Eq. 9-11: sT = cos(sum_j c_j N_j, I), c = softmax_j cos(MLP_T(N_j), I).

    Returns ``[Q, G]``; captions with no phrase score 0.
    """
    Q, m, D = txt.phrases.shape
    i_hat = _unit(img.global_)  # [G, D]
    keys_and_phrases = torch.cat([txt.rga_keys, txt.phrases], dim=1)  # [Q, 2m, D]
    dots = (keys_and_phrases.reshape(Q * 2 * m, D) @ i_hat.T).view(Q, 2 * m, -1)
    c = masked_softmax(dots[:, :m], txt.phrase_mask[:, :, None], dim=1)  # c_j [Q, m, G]
    num = (c * dots[:, m:]).sum(1)  # T_R . I^
    gram = txt.phrases @ txt.phrases.transpose(1, 2)  # [Q, m, m]
    sq = (torch.bmm(gram, c) * c).sum(1)  # |T_R|^2
    return _cos_from_parts(num, sq)


def bfm(img: ImageEmbeddings, txt: TextEmbeddings) -> tuple[Tensor, Tensor]:
    """BFM, Eq. 12-17: (sP, sN), each ``[Q, G]``.

    P->N: a_jk = softmax_k cos(MLP_T(N_j), MLP_V(P_k)), sP = mean_j cos(sum_k a_jk P_k, N_j).
    N->P: b_ik = softmax_k cos(MLP_V(P_i), MLP_T(N_k)), sN = mean_i cos(sum_k b_ik N_k, P_i).
    """
    Q, m, D = txt.phrases.shape
    G, n, _ = img.parts.shape
    mask = txt.phrase_mask  # [Q, m]
    logits = (txt.bfm_keys.reshape(Q * m, D)
              @ img.bfm_keys.reshape(G * n, D).T).view(Q, m, G, n)
    np_dots = (txt.phrases.reshape(Q * m, D) @ img.parts.reshape(G * n, D).T).view(Q, m, G, n)
    n_norm = txt.phrases.norm(dim=-1).clamp_min(EPS)  # [Q, m]
    p_norm = img.parts.norm(dim=-1).clamp_min(EPS)  # [G, n]

    a = torch.softmax(logits, dim=-1)  # over parts k
    num_p = (a * np_dots).sum(-1) / n_norm[:, :, None]  # Ĩ_j . N_j^  [Q, m, G]
    gram_p = img.parts @ img.parts.transpose(1, 2)  # [G, n, n]
    sq_p = (torch.einsum("qjgk,gkl->qjgl", a, gram_p) * a).sum(-1)  # |Ĩ_j|^2
    cos_p = _cos_from_parts(num_p, sq_p) * mask[:, :, None]
    s_p = cos_p.sum(1) / mask.sum(1, keepdim=True).clamp_min(1)

    b = masked_softmax(logits, mask[:, :, None, None], dim=1)  # over phrases k [Q, m, G, n]
    num_n = (b * np_dots).sum(1) / p_norm[None]  # T̃_i . P_i^  [Q, G, n]
    gram_n = txt.phrases @ txt.phrases.transpose(1, 2)  # [Q, m, m]
    b_flat = b.reshape(Q, m, G * n)
    sq_n = (torch.bmm(gram_n, b_flat) * b_flat).sum(1).view(Q, G, n)  # |T̃_i|^2
    s_n = _cos_from_parts(num_n, sq_n).mean(-1)
    return s_p, s_n


def similarities(img: ImageEmbeddings, txt: TextEmbeddings,
                 granularities: tuple[str, ...] = GRANULARITIES) -> dict[str, Tensor]:
    """The requested similarity matrices ``[Q, G]``, keyed by the paper's names.

    ``g`` -> sG; ``r`` -> sI, sT, sR = (sI + sT) / 2; ``l`` -> sP, sN, sL.
    """
    out: dict[str, Tensor] = {}
    if "g" in granularities:
        out["sG"] = s_g(img, txt)
    if "r" in granularities:
        out["sI"] = rga_image_to_text(img, txt)
        out["sT"] = rga_text_to_image(img, txt)
        out["sR"] = (out["sI"] + out["sT"]) / 2
    if "l" in granularities:
        out["sP"], out["sN"] = bfm(img, txt)
        out["sL"] = (out["sP"] + out["sN"]) / 2
    return out


def fuse(scores: dict[str, Tensor], lambda1: float, lambda2: float) -> Tensor:
    """Eq. 18: sF = sG + lambda1 sR + lambda2 sL from ``{"sG", "sR", "sL"}`` (a missing
    term counts as 0). The one fusion of the code: training, evaluation, search, figures."""
    s_f = scores["sG"].clone()
    if lambda1 and scores.get("sR") is not None:
        s_f += lambda1 * scores["sR"]
    if lambda2 and scores.get("sL") is not None:
        s_f += lambda2 * scores["sL"]
    return s_f


def paired_attention(img: ImageEmbeddings, txt: TextEmbeddings) -> dict[str, Tensor]:
    """Attention weights of aligned pairs (image b with caption b), for explanations.

    v: RGA I->T stripe weights [B, n]; c: RGA T->I phrase weights [B, m];
    a: BFM P->N phrase-to-stripe weights [B, m, n]; b: BFM N->P stripe-to-phrase [B, n, m].
    """
    mask = txt.phrase_mask
    v = torch.softmax(torch.einsum("bd,bnd->bn", _unit(txt.global_), img.rga_keys), -1)
    c = masked_softmax(torch.einsum("bmd,bd->bm", txt.rga_keys, _unit(img.global_)),
                       mask, dim=1)
    logits = torch.einsum("bmd,bnd->bmn", txt.bfm_keys, img.bfm_keys)
    a = torch.softmax(logits, dim=-1)
    b = masked_softmax(logits, mask[:, :, None], dim=1).transpose(1, 2)
    return {"v": v, "c": c, "a": a, "b": b}
