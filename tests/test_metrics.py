"""The ranking metrics against an independent brute-force implementation (ties included)."""

import numpy as np
import pytest

from mia.evaluation.metrics import rank_metrics


def brute_force(scores, q_pids, g_pids, ks=(1, 5, 10)):
    """Straight from the definitions, one query at a time, ties broken by gallery order."""
    r = {k: 0 for k in ks}
    aps, inps, n = [], [], 0
    for q in range(len(q_pids)):
        order = sorted(range(len(g_pids)), key=lambda g: (-scores[q][g], g))
        rel = [g_pids[g] == q_pids[q] for g in order]
        if not any(rel):
            continue
        n += 1
        first = rel.index(True) + 1
        for k in ks:
            r[k] += first <= k
        hits, precisions = 0, []
        for rank, is_true in enumerate(rel, 1):
            if is_true:
                hits += 1
                precisions.append(hits / rank)
        aps.append(sum(precisions) / hits)
        last = max(i for i, t in enumerate(rel, 1) if t)
        inps.append(hits / last)
    out = {f"R{k}": 100 * r[k] / n for k in ks}
    out["mAP"], out["mINP"] = 100 * np.mean(aps), 100 * np.mean(inps)
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("chunk", [1, 7, 1024])
def test_metrics_match_brute_force_with_ties_and_many_true_images(seed, chunk):
    rng = np.random.default_rng(seed)
    Q, G = 37, 23
    g_pids = rng.integers(0, 6, size=G)
    q_pids = rng.integers(0, 7, size=Q)  # pid 6 has no gallery image: excluded
    scores = rng.integers(0, 4, size=(Q, G)).astype(np.float32)  # many ties
    got = rank_metrics(scores, q_pids, g_pids, chunk=chunk)
    want = brute_force(scores.tolist(), q_pids.tolist(), g_pids.tolist())
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key
    assert got["total"] == pytest.approx(want["R1"] + want["R5"] + want["R10"])
    assert got["no_match"] == sum(p not in set(g_pids.tolist()) for p in q_pids.tolist())


def test_perfect_and_worst_rankings():
    g = np.array([0, 1, 2])
    perfect = rank_metrics(np.eye(3), g, g)
    assert perfect["R1"] == perfect["mAP"] == perfect["mINP"] == 100.0
    worst = rank_metrics(-np.eye(3), g, g)
    assert worst["R1"] == 0.0 and worst["R5"] == 100.0
    assert worst["mAP"] == pytest.approx(100 / 3)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="do not match"):
        rank_metrics(np.zeros((2, 3)), [0, 1], [0, 1])
