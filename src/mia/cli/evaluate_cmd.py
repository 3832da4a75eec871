"""``mia evaluate``: the CUHK-PEDES protocol on a trained run."""

from __future__ import annotations

import argparse

from mia.cli.common import HelpFormatter, add_data_options, nonneg_float, positive_float, print_json

DESCRIPTION = """Evaluate a trained run: every caption of the split queries every image
of the split; a hit at rank K means any image of the query's person is in the top K.
Prints R@1, R@5, R@10, Total, mAP and mINP for each granularity: sG (GC), sR (RGA),
sL (BFM) and the fusion sF = sG + lambda1 sR + lambda2 sL. Per CUHK-PEDES sub-dataset
results are added when the image paths reveal them (CUHK01, CUHK03, Market, SSM, VIPER).
--sweep adds the lambda1 / lambda2 sweeps of the paper's Tables XI / XII, computed from
the same similarities without re-encoding. Results are also saved in RUN/eval/."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("evaluate", help="evaluate a trained run (R@K, mAP, mINP)",
                            description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("--run", required=True, metavar="RUN",
                        help="run directory or exported model file (mia export)")
    parser.add_argument("--checkpoint", help="checkpoint file (default: best.pt, else last.pt)")
    add_data_options(parser)
    parser.add_argument("--split", default="test", help="split to evaluate")
    parser.add_argument("--lambda1", type=nonneg_float, help="weight of sR in sF (default: config)")
    parser.add_argument("--lambda2", type=nonneg_float, help="weight of sL in sF (default: config)")
    parser.add_argument("--sweep", action="store_true", help="lambda1 and lambda2 sweeps")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--memory-mb", type=positive_float, default=1024,
                        help="memory budget of the all-pairs scoring")
    parser.add_argument("--score-dtype", default="fp32", choices=("fp32", "bf16"),
                        help="precision of the scoring's matrix products")
    parser.add_argument("--distractors", metavar="SPLIT",
                        help="add the images of another split (other people) to the gallery: "
                        "a larger, harder gallery from the same data, e.g. the queries of "
                        "a small val split against val + train images")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import mia.api
    from mia.evaluation.report import results_table, sweep_table

    result = mia.api.evaluate(args.run, args.data, args.split, checkpoint=args.checkpoint,
                              format=args.format, skip_bad=args.skip_bad, sweep=args.sweep,
                              lambda1=args.lambda1, lambda2=args.lambda2, device=args.device,
                              memory_mb=args.memory_mb, score_dtype=args.score_dtype,
                              distractors=args.distractors,
                              progress=not (args.no_progress or args.json))
    if args.json:
        print_json(result)
        return 0
    meta = result["meta"]
    print(results_table([(g, result[g]) for g in ("sG", "sR", "sL", "sF")],
                        title=f"{meta['config']} on {meta['split']} ({meta['queries']} queries x "
                        f"{meta['images']} images; lambda1={meta['lambda1']}, "
                        f"lambda2={meta['lambda2']})"))
    print(f"unknown words: {100 * meta['unknown_word_fraction']:.2f}% of the query words are "
          "not in the model's vocabulary (read as <unk>)")
    for name, sub in result.get("subsets", {}).items():
        print()
        print(results_table([(g, sub[g]) for g in ("sG", "sR", "sL", "sF")],
                            title=f"{name} queries ({sub['sF']['queries']}), whole gallery"))
    if "sweep" in result:
        print("\nlambda1 sweep (lambda2 = 0), sF:")
        print(sweep_table(result["sweep"]["lambda1"], "lambda1"))
        print("\nlambda2 sweep (lambda1 = 0), sF:")
        print(sweep_table(result["sweep"]["lambda2"], "lambda2"))
    return 0
