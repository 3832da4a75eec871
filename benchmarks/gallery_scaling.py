"""R@1 of a trained run against the number of identities in the gallery: random subsets of
a split's identities (queries and gallery restricted to them), averaged over draws.

A development split is often smaller than the test split it stands for (cuhk-dev val has
200 identities, CUHK-PEDES test 1,000), and R@1 falls as the gallery grows; the curve
tells how far a figure on the small split is from one on a large gallery.

    python benchmarks/gallery_scaling.py --run runs/real/mia-seed0 --data /data/cuhk-dev
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line  # noqa: E402
from mia.evaluation.metrics import rank_metrics  # noqa: E402
from mia.model.similarity import fuse  # noqa: E402
from mia.viz.analysis import Analysis  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100])
    parser.add_argument("--draws", type=int, default=20)
    args = parser.parse_args()
    print(machine_line())
    analysis = Analysis.from_run(args.run, args.data, args.split)
    trained, inputs = analysis.trained, analysis.inputs
    scores = fuse(analysis.scores, trained.config.eval.lambda1, trained.config.eval.lambda2)
    q, g = inputs.query_pids, inputs.gallery_pids
    ids = torch.unique(g).numpy()
    rng = np.random.default_rng(0)
    print(f"{args.run} on {args.data} {args.split}: sF R@1 by gallery identities")
    for n in [*sorted({n for n in args.sizes if 0 < n < len(ids)}), len(ids)]:  # whole split last
        draws = args.draws if n < len(ids) else 1
        r1 = []
        for _ in range(draws):
            keep = torch.from_numpy(rng.choice(ids, n, replace=False))
            qm, gm = torch.isin(q, keep), torch.isin(g, keep)
            r1.append(rank_metrics(scores[qm][:, gm], q[qm], g[gm])["R1"])
        print(f"{n:>6} identities: R@1 {np.mean(r1):.2f} (mean of {draws} draws)")


if __name__ == "__main__":
    main()
