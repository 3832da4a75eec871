"""Text-to-image retrieval metrics (CUHK-PEDES protocol), pure functions over arrays.

A query (caption) is answered by ranking every gallery image by similarity; a hit at rank
K means ANY gallery image of the query's person is in the top K. Ties are broken by gallery
order (a stable sort, as ``np.argsort(-s, kind="stable")``). All values are percentages.

- R@K: fraction of queries with a true image in the top K.
- mAP: mean over queries of the average precision over all true images.
- mINP: mean over queries of (number of true images) / (rank of the last true image).
Queries whose person has no gallery image are excluded and counted in ``no_match``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

KS = (1, 5, 10)


def _as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))


def rank_metrics(scores, query_pids, gallery_pids, ks: tuple[int, ...] = KS,
                 chunk: int = 1024) -> dict[str, float]:
    """scores [Q, G] (higher = more similar), query_pids [Q], gallery_pids [G] -> metrics."""
    scores, q_pids, g_pids = _as_tensor(scores), _as_tensor(query_pids), _as_tensor(gallery_pids)
    if scores.shape != (len(q_pids), len(g_pids)):
        raise ValueError(f"scores {tuple(scores.shape)} do not match {len(q_pids)} queries x "
                         f"{len(g_pids)} gallery images")
    hits = torch.zeros(len(ks), dtype=torch.float64)
    ap_sum = inp_sum = 0.0
    valid = 0
    for start in range(0, len(q_pids), chunk):
        s = scores[start:start + chunk].float()
        order = torch.sort(s, dim=1, descending=True, stable=True).indices
        matches = (g_pids[order] == q_pids[start:start + chunk, None]).to(torch.float64)
        n_true = matches.sum(1)
        keep = n_true > 0
        matches, n_true = matches[keep], n_true[keep]
        valid += int(keep.sum())
        if not len(matches):
            continue
        ranks = torch.arange(1, matches.shape[1] + 1, dtype=torch.float64)
        first = matches.argmax(1)  # 0-based rank of the first true image
        hits += torch.stack([(first < k).sum() for k in ks]).to(torch.float64)
        cum = matches.cumsum(1)
        ap_sum += float(((cum / ranks) * matches).sum(1).div(n_true).sum())
        last = matches.shape[1] - 1 - matches.flip(1).argmax(1)  # 0-based rank of the last
        inp_sum += float((n_true / (last + 1)).sum())
    out = {f"R{k}": 100.0 * float(h) / max(valid, 1) for k, h in zip(ks, hits)}
    out["total"] = sum(out[f"R{k}"] for k in ks)
    out["mAP"] = 100.0 * ap_sum / max(valid, 1)
    out["mINP"] = 100.0 * inp_sum / max(valid, 1)
    out["queries"] = valid
    out["no_match"] = len(q_pids) - valid
    return out
