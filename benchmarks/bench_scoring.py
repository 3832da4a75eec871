"""Exact all-pairs MIA scoring at CUHK-PEDES test scale, against its floor.

Synthetic features: 6,156 captions (1..12 phrases, ~6 on average) x 3,074 images, n = 6
parts, D = 1024. Measured in one run:

- floor: the matrix products no exact method can avoid (sG; the RGA logits and dot
  products; the BFM logits and phrase-part dot products), as large GEMMs;
- score_all: the whole four-granularity scoring (sG, sR, sL; sF is one more addition);
- the metrics (R@K, mAP, mINP) of sG, sR, sL and sF: the evaluation protocol's cost;
- per-query: a straightforward implementation that builds the aggregated vectors
  (I_R, T_R, Ĩ_j, T̃_i) for one caption against all images, timed on a subset and scaled;
- peak memory (RSS of a fresh process that loads the features and scores them);
- bf16 matrix products: time and the change of every R@K against fp32 (skipped, with the
  reason printed and in the JSON as ``bf16_skipped``, on a CPU without native bf16, where
  bf16 is emulated and a pass would take hours).

    python benchmarks/bench_scoring.py [--queries 6156 --images 3074 --dim 1024]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line, synthetic_embeddings, timeit  # noqa: E402
from mia.evaluation.metrics import rank_metrics  # noqa: E402
from mia.model.similarity import fuse  # noqa: E402
from mia.scoring.exact import score_all  # noqa: E402
from mia.utils.device import cpu_bf16_native  # noqa: E402


def floor(img, txt, dtype) -> float:
    """Seconds for the unavoidable matrix products, as big GEMMs."""
    G, n, D = img.parts.shape
    mask = txt.phrase_mask
    N = txt.phrases[mask].to(dtype)
    A = F.normalize(txt.bfm_keys[mask], dim=-1).to(dtype)
    W = F.normalize(txt.rga_keys[mask], dim=-1).to(dtype)
    T = F.normalize(txt.global_, dim=-1).to(dtype)
    I = F.normalize(img.global_, dim=-1).to(dtype)
    P = img.parts.reshape(G * n, D).to(dtype)
    B = F.normalize(img.bfm_keys, dim=-1).reshape(G * n, D).to(dtype)
    UP = torch.cat([F.normalize(img.rga_keys, dim=-1), img.parts], 1).reshape(-1, D).to(dtype)
    rows, cols = 2048, 4096  # blocked like any large GEMM, so the floor is a fast one

    def blocked(left, right):
        for r in range(0, len(left), rows):
            for c in range(0, len(right), cols):
                left[r:r + rows] @ right[c:c + cols].T

    def run():
        blocked(T, I)
        blocked(T, UP)
        blocked(torch.cat([W, N]), I)
        blocked(A, B)
        blocked(N, P)

    return timeit(run, repeat=2)


def per_query(img, txt, q: int) -> None:
    """Straightforward per-caption scoring: aggregated vectors built explicitly."""
    T, mask = txt.global_[q], txt.phrase_mask[q]
    N, W, A = txt.phrases[q][mask], txt.rga_keys[q][mask], txt.bfm_keys[q][mask]
    I, P, U, B = img.global_, img.parts, img.rga_keys, img.bfm_keys
    cos = F.cosine_similarity
    s_g = cos(I, T[None], dim=-1)
    v = torch.softmax(cos(U, T[None, None], dim=-1), -1)  # [G, n]
    s_i = cos((v[..., None] * P).sum(1), T[None], dim=-1)
    c = torch.softmax(cos(W[None], I[:, None], dim=-1), -1)  # [G, m]
    s_t = cos((c[..., None] * N[None]).sum(1), I, dim=-1)
    logits = torch.einsum("md,gnd->gmn", F.normalize(A, dim=-1), F.normalize(B, dim=-1))
    i_tilde = torch.einsum("gmn,gnd->gmd", torch.softmax(logits, -1), P)
    s_p = cos(i_tilde, N[None], dim=-1).mean(-1)
    t_tilde = torch.einsum("gmn,md->gnd", torch.softmax(logits, 1), N)
    s_n = cos(t_tilde, P, dim=-1).mean(-1)
    return s_g + (s_i + s_t) / 2 + 0.5 * (s_p + s_n) / 2


PEAK_CODE = """
import gc, sys, threading, time
sys.path.insert(0, {bench!r})
from common import synthetic_embeddings
from mia.scoring.exact import score_all

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

img, txt, _, _ = synthetic_embeddings({queries}, {images}, {dim})
gc.collect()
base, peak, done = rss(), [0.0], []

def sample():
    while not done:
        peak[0] = max(peak[0], rss())
        time.sleep(0.002)

thread = threading.Thread(target=sample)
thread.start()
score_all(img, txt, memory_mb={memory_mb})
done.append(1)
thread.join()
print(base, max(peak[0], rss()))
"""


def peak_memory(args) -> tuple[float, float]:
    """(RSS with the features loaded, peak RSS while scoring) of a fresh process, MB."""
    code = PEAK_CODE.format(bench=str(Path(__file__).resolve().parent), queries=args.queries,
                            images=args.images, dim=args.dim, memory_mb=args.memory_mb)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=6156)
    parser.add_argument("--images", type=int, default=3074)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--memory-mb", type=float, default=1024)
    parser.add_argument("--per-query-sample", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    print(machine_line())
    img, txt, q_pids, g_pids = synthetic_embeddings(args.queries, args.images, args.dim)
    phrases = int(txt.phrase_mask.sum())
    res = {"queries": args.queries, "images": args.images, "dim": args.dim,
           "phrases": phrases, "threads": torch.get_num_threads()}
    bf16_native, why = cpu_bf16_native()
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    if not bf16_native:
        res["bf16_skipped"] = why
        del dtypes["bf16"]
        print(f"bf16 pass skipped: {why} (bf16 is emulated there and very slow)", flush=True)
    for name, dtype in dtypes.items():
        res[f"floor_{name}_s"] = floor(img, txt, dtype)
        start = time.perf_counter()
        scores = score_all(img, txt, memory_mb=args.memory_mb, dtype=dtype)
        res[f"score_{name}_s"] = time.perf_counter() - start
        scores["sF"] = fuse(scores, 1.0, 0.5)
        start = time.perf_counter()
        res[f"metrics_{name}"] = {k: rank_metrics(v, q_pids, g_pids) for k, v in scores.items()}
        res[f"metrics_{name}_s"] = time.perf_counter() - start
    sample = range(args.per_query_sample)
    start = time.perf_counter()
    for q in sample:
        per_query(img, txt, q)
    res["per_query_s"] = (time.perf_counter() - start) / len(sample) * args.queries
    res["rss_inputs_mb"], res["rss_peak_mb"] = peak_memory(args)
    if "bf16" in dtypes:
        diffs = [abs(res["metrics_fp32"][k][m] - res["metrics_bf16"][k][m])
                 for k in res["metrics_fp32"] for m in ("R1", "R5", "R10")]
        res["bf16_max_recall_change"] = max(diffs)
    if args.json:
        print(json.dumps(res, indent=1))
        return
    print(f"{args.queries} captions ({phrases} phrases) x {args.images} images, n=6, "
          f"D={args.dim}, {res['threads']} threads, synthetic features")
    for name in dtypes:
        f, s = res[f"floor_{name}_s"], res[f"score_{name}_s"]
        print(f"{name}: unavoidable matrix products {f:.2f} s; whole scoring {s:.2f} s "
              f"= {s / f:.2f}x the floor; + R@K/mAP/mINP of sG, sR, sL, sF "
              f"{res[f'metrics_{name}_s']:.2f} s = evaluation {s + res[f'metrics_{name}_s']:.1f} s")
    print(f"straightforward per-query implementation (from {len(sample)} queries): "
          f"{res['per_query_s']:.0f} s = {res['per_query_s'] / res['score_fp32_s']:.0f}x "
          "slower than score_all fp32")
    print(f"memory: peak RSS {res['rss_peak_mb']:.0f} MB while scoring, of which "
          f"{res['rss_inputs_mb']:.0f} MB is the process with its features loaded "
          f"(working memory {res['rss_peak_mb'] - res['rss_inputs_mb']:.0f} MB)")
    if "bf16" in dtypes:
        print(f"bf16 vs fp32: largest change of any R@1/5/10 over sG, sR, sL, sF: "
              f"{res['bf16_max_recall_change']:.3f} points")
    else:
        print(f"bf16: skipped ({res['bf16_skipped']})")


if __name__ == "__main__":
    main()
