"""An independent, literal per-pair implementation of the paper's equations (slow, clear).

Used only by tests to check the all-pairs code in mia.model.similarity / mia.retrieval.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cos(a, b):
    return F.cosine_similarity(a, b, dim=-1, eps=1e-8)


def pair_scores(I, P, U, Bv, T, N, W, A, s_rga=1.0, s_bfm=1.0):
    """One image (I [D], P/U/Bv [n, D]) and one caption (T [D], N/W/A [m, D], m >= 1).

    U = MLP_V_RGA(P), Bv = MLP_V_BFM(P), W = MLP_T_RGA(N), A = MLP_T_BFM(N); s_rga, s_bfm
    scale the attention logits (1 in the paper).
    Returns s_g, s_i, s_t, s_p, s_n as floats, following Eq. 4, 6-17 literally.
    """
    s_g = cos(I, T)
    v = torch.softmax(torch.stack([s_rga * cos(U[i], T) for i in range(len(P))]), 0)  # Eq. 6
    I_R = sum(v[i] * P[i] for i in range(len(P)))  # Eq. 7
    s_i = cos(I_R, T)  # Eq. 8
    c = torch.softmax(torch.stack([s_rga * cos(W[j], I) for j in range(len(N))]), 0)  # Eq. 9
    T_R = sum(c[j] * N[j] for j in range(len(N)))  # Eq. 10
    s_t = cos(T_R, I)  # Eq. 11
    s_p = 0.0
    for j in range(len(N)):
        alpha = torch.softmax(torch.stack([s_bfm * cos(A[j], Bv[k]) for k in range(len(P))]),
                              0)  # Eq. 13
        I_tilde = sum(alpha[k] * P[k] for k in range(len(P)))  # Eq. 12
        s_p = s_p + cos(I_tilde, N[j]) / len(N)  # Eq. 14
    s_n = 0.0
    for i in range(len(P)):
        beta = torch.softmax(torch.stack([s_bfm * cos(Bv[i], A[k]) for k in range(len(N))]),
                             0)  # Eq. 16
        T_tilde = sum(beta[k] * N[k] for k in range(len(N)))  # Eq. 15
        s_n = s_n + cos(T_tilde, P[i]) / len(P)  # Eq. 17
    return {k: float(v) for k, v in
            dict(sG=s_g, sI=s_i, sT=s_t, sP=s_p, sN=s_n).items()}


def keyed(img, txt, s_rga=1.0, s_bfm=1.0):
    """Embeddings whose ``*_keys`` hold raw MLP outputs -> the model's attention keys."""
    from mia.model.mia import attention_keys

    s_rga, s_bfm = torch.tensor(s_rga), torch.tensor(s_bfm)
    img = type(img)(img.global_, img.parts, attention_keys(img.rga_keys, s_rga),
                    attention_keys(img.bfm_keys, s_bfm.sqrt()))
    txt = type(txt)(txt.global_, txt.phrases, txt.phrase_mask,
                    attention_keys(txt.rga_keys, s_rga), attention_keys(txt.bfm_keys, s_bfm.sqrt()))
    return img, txt


def all_pairs(img, txt, s_rga=1.0, s_bfm=1.0):
    """Loop over every (caption, image) pair of ImageEmbeddings / TextEmbeddings whose
    ``*_keys`` hold the raw MLP outputs."""
    Q, G = len(txt), len(img)
    out = {k: torch.zeros(Q, G, dtype=torch.float64) for k in ("sG", "sI", "sT", "sP", "sN")}
    for q in range(Q):
        keep = txt.phrase_mask[q]
        for g in range(G):
            scores = pair_scores(img.global_[g], img.parts[g], img.rga_keys[g], img.bfm_keys[g],
                                 txt.global_[q], txt.phrases[q][keep], txt.rga_keys[q][keep],
                                 txt.bfm_keys[q][keep], s_rga, s_bfm)
            for k, v in scores.items():
                out[k][q, g] = v
    out["sR"] = (out["sI"] + out["sT"]) / 2
    out["sL"] = (out["sP"] + out["sN"]) / 2
    return out
