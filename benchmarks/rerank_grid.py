"""What the fusion weights chosen on validation and the test-time re-ranking add to a
trained run, measured honestly: each is chosen on half of the validation people and
measured on the other half (two folds, people split by id parity, every gallery image kept),
so the gain printed is not the one of a choice made on the same queries.

    python benchmarks/rerank_grid.py --run runs/weak-s0 --data /data/cuhk-weak \\
        --distractors distractors

Prints, for the whole split: sG, sR, sL, sF at the config's lambdas; sF at lambdas chosen
on all of it (what ``--choose-lambdas`` stores); every re-ranking K x BETA on top of that
sF; then the two-fold figures: sF R@1 / mAP at the config's lambdas, with chosen lambdas,
and with chosen lambdas plus a chosen re-ranking, each measured on the fold it was not
chosen on (the mean of the two folds).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line  # noqa: E402
from mia.artifacts.run import load_trained  # noqa: E402
from mia.data.pipeline import load_run_data  # noqa: E402
from mia.evaluation.evaluate import EvalInputs, evaluate_scores  # noqa: E402
from mia.evaluation.fusion import choose_lambdas  # noqa: E402
from mia.evaluation.metrics import rank_metrics  # noqa: E402
from mia.evaluation.rerank import RERANK_GRID, expand, image_affinity  # noqa: E402
from mia.evaluation.run_eval import encode_split  # noqa: E402
from mia.model.similarity import fuse  # noqa: E402
from mia.scoring.exact import granularity_scores  # noqa: E402


def fold(inputs: EvalInputs, rows: torch.Tensor) -> EvalInputs:
    """The queries ``rows`` against the whole gallery."""
    return EvalInputs(inputs.gallery, [t for t, r in zip(inputs.query_texts, rows) if r],
                      inputs.query_pids[rows], inputs.gallery_pids,
                      [s for s, r in zip(inputs.query_subsets, rows) if r])


def best_rerank(fused: torch.Tensor, affinity: torch.Tensor, inputs: EvalInputs) -> tuple:
    """(metrics, K, BETA) of the best re-ranking on these queries (R@1, then mAP); BETA 0
    (no re-ranking) is a candidate."""
    plain = rank_metrics(fused, inputs.query_pids, inputs.gallery_pids)
    best = (plain["R1"], plain["mAP"]), plain, 1, 0.0
    for k, beta in itertools.product(RERANK_GRID["k"], RERANK_GRID["beta"]):
        m = rank_metrics(expand(fused, affinity, k, beta), inputs.query_pids, inputs.gallery_pids)
        if (m["R1"], m["mAP"]) > best[0]:
            best = (m["R1"], m["mAP"]), m, k, beta
    return best[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--distractors", help="a split whose images join the gallery")
    parser.add_argument("--checkpoint")
    args = parser.parse_args()
    if args.split == "test":
        sys.exit("error: this chooses settings on the split it measures: never on test")
    print(machine_line())
    trained = load_trained(args.run, args.checkpoint)
    cfg = trained.config
    data = load_run_data(cfg.data, args.data, vocab=trained.vocab, progress=False,
                         wordpieces=cfg.model.wordpieces)
    inputs, img, txt = encode_split(trained, data, args.split, "cpu", False, args.distractors)
    scores = {k: v.float() for k, v in granularity_scores(img, txt).items()}
    affinity = image_affinity(img)
    default = (cfg.eval.lambda1, cfg.eval.lambda2)
    print(f"{args.run} on {args.split}{'+' + args.distractors if args.distractors else ''}: "
          f"{len(inputs.query_texts)} queries x {len(inputs.gallery)} images of "
          f"{len(set(inputs.gallery_pids.tolist()))} people")
    whole = evaluate_scores(scores, inputs, *default)
    for g in ("sG", "sR", "sL", "sF"):
        print(f"  {g:<28} R@1 {whole[g]['R1']:6.2f}  mAP {whole[g]['mAP']:6.2f}"
              + (f"  (lambdas {default})" if g == "sF" else ""))
    chosen = choose_lambdas(scores, inputs, "R1", default)
    lam = (chosen["lambda1"], chosen["lambda2"])
    print(f"  {'sF, lambdas chosen here':<28} R@1 {chosen['value']:6.2f}  mAP "
          f"{chosen['sF']['mAP']:6.2f}  (lambdas {lam})")
    fused = fuse(scores, *lam)
    print("  re-ranked sF (lambdas chosen here), R@1 / mAP:")
    print("     K " + "".join(f"  BETA {b:<8}" for b in RERANK_GRID["beta"]))
    for k in RERANK_GRID["k"]:
        cells = [rank_metrics(expand(fused, affinity, k, b), inputs.query_pids,
                              inputs.gallery_pids) for b in RERANK_GRID["beta"]]
        print(f"  {k:>4} " + "".join(f"  {m['R1']:6.2f}/{m['mAP']:6.2f}" for m in cells))

    odd = inputs.query_pids % 2 == 1
    totals = {"config lambdas": [], "chosen lambdas": [], "chosen lambdas + re-rank": []}
    for name, choose_rows in (("odd", odd), ("even", ~odd)):
        a, b = fold(inputs, choose_rows), fold(inputs, ~choose_rows)
        sa = {k: v[choose_rows] for k, v in scores.items()}
        sb = {k: v[~choose_rows] for k, v in scores.items()}
        totals["config lambdas"].append(evaluate_scores(sb, b, *default)["sF"])
        pick = choose_lambdas(sa, a, "R1", default)
        lam = (pick["lambda1"], pick["lambda2"])
        totals["chosen lambdas"].append(evaluate_scores(sb, b, *lam)["sF"])
        _, k, beta = best_rerank(fuse(sa, *lam), affinity, a)
        totals["chosen lambdas + re-rank"].append(
            rank_metrics(expand(fuse(sb, *lam), affinity, k, beta) if beta else fuse(sb, *lam),
                         b.query_pids, b.gallery_pids))
        print(f"  chosen on the {name} ids: lambdas {lam}, re-rank K={k} BETA={beta}")
    print("  two folds, each measured on the people it was not chosen on (mean):")
    for name, ms in totals.items():
        r1 = sum(m["R1"] for m in ms) / 2
        mAP = sum(m["mAP"] for m in ms) / 2
        print(f"    {name:<26} sF R@1 {r1:6.2f}  mAP {mAP:6.2f}")


if __name__ == "__main__":
    main()
