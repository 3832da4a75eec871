"""How a trained run's granularities combine: the scale of sG, sR and sL, how alike they
rank, where one is right and another wrong, and R@1 of weighted fusions.

Eq. 18 adds the raw scores, sF = sG + lambda1 sR + lambda2 sL. That helps only where the
terms are on one scale and err on different queries; when sF stays below one of its terms
(as on cuhk-weak, where sR alone beats sF), this tells which of the two fails. The fusions
here are a diagnostic, not a model option: they are chosen on the split they are measured
on, so they are optimistic.

    python benchmarks/fusion.py --run runs/weak/mia-seed0 --data /data/cuhk-weak
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line  # noqa: E402
from mia.evaluation.metrics import rank_metrics  # noqa: E402
from mia.evaluation.rerank import standardise  # noqa: E402
from mia.viz.analysis import Analysis  # noqa: E402

WEIGHTS_G = (1.0, 0.75, 0.5, 0.25, 0.0)  # weight of sG against sR's 1
WEIGHTS_L = (0.0, 0.5, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    args = parser.parse_args()
    print(machine_line())
    analysis = Analysis.from_run(args.run, args.data, args.split)
    trained, inputs = analysis.trained, analysis.inputs
    scores = {k: v.float() for k, v in analysis.scores.items()}
    q, g = inputs.query_pids, inputs.gallery_pids

    def r1(s: torch.Tensor) -> float:
        return rank_metrics(s, q, g)["R1"]

    print(f"{args.run} on {args.data} {args.split} ({len(q)} queries x {len(g)} images)")
    print("| score | R@1 | mean | std over a query's gallery |\n|---|---|---|---|")
    for name, s in scores.items():
        print(f"| {name} | {r1(s):.2f} | {s.mean():.3f} | {s.std(1).mean():.3f} |")
    z = {name: standardise(s) for name, s in scores.items()}
    right = {name: g[s.argmax(1)] == q for name, s in scores.items()}
    print("\n| pair | correlation of standardised scores | top-1 right only in the first "
          "| only in the second | in both |\n|---|---|---|---|---|")
    for a, b in itertools.combinations(scores, 2):
        corr = torch.corrcoef(torch.stack([z[a].flatten(), z[b].flatten()]))[0, 1]
        print(f"| {a}, {b} | {corr:.3f} | {int((right[a] & ~right[b]).sum())} "
              f"| {int((right[b] & ~right[a]).sum())} | {int((right[a] & right[b]).sum())} |")
    l1, l2 = trained.config.eval.lambda1, trained.config.eval.lambda2
    raw = scores["sG"] + l1 * scores["sR"] + l2 * scores["sL"]
    print(f"\nEq. 18 with the run's lambda1 = {l1}, lambda2 = {l2}: sF R@1 {r1(raw):.2f}")
    print("R@1 of wG sG + sR + wL sL, raw | standardised per query:")
    print("| wG | " + " | ".join(f"wL {w}" for w in WEIGHTS_L) + " |\n|---|"
          + "---|" * len(WEIGHTS_L))
    for wg in WEIGHTS_G:
        cells = []
        for wl in WEIGHTS_L:
            fused_raw = wg * scores["sG"] + scores["sR"] + wl * scores["sL"]
            fused_z = wg * z["sG"] + z["sR"] + wl * z["sL"]
            cells.append(f"{r1(fused_raw):.2f} / {r1(fused_z):.2f}")
        print(f"| {wg} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
