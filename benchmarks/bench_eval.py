"""Evaluation time at the CUHK-PEDES test-split scale, from synthetic features.

6,156 captions x 3,074 images, n = 6 parts, ~6 phrases per caption (1..12), D = 1024:
all four granularities (sG, sR, sL, sF) scored for every pair, then R@K / mAP / mINP.
Encoding is not included (it depends on the backbone; see bench_train.py).

    python benchmarks/bench_eval.py [--queries 6156 --images 3074 --dim 1024 --memory-mb 1024]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import synthetic_embeddings  # noqa: E402
from mia.evaluation.evaluate import EvalInputs, evaluate_scores, granularity_scores  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=6156)
    parser.add_argument("--images", type=int, default=3074)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--memory-mb", type=float, default=1024)
    args = parser.parse_args()
    img, txt, q_pids, g_pids = synthetic_embeddings(args.queries, args.images, args.dim)
    inputs = EvalInputs([], [], q_pids, g_pids, [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{args.queries} queries x {args.images} images, D={args.dim}, "
          f"m_max={txt.phrases.shape[1]}, n=6 (synthetic features)")
    start = time.perf_counter()
    scores = granularity_scores(img, txt, memory_mb=args.memory_mb)
    scored = time.perf_counter()
    metrics = evaluate_scores(scores, inputs, 1.0, 0.5)
    done = time.perf_counter()
    print(f"scoring sG+sR+sL (all pairs): {scored - start:.2f} s")
    print(f"metrics for sG, sR, sL, sF:    {done - scored:.2f} s")
    print(f"evaluation total:              {done - start:.2f} s "
          f"(sF R@1 {metrics['sF']['R1']:.2f} on random features)")


if __name__ == "__main__":
    main()
