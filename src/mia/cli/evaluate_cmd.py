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
the same similarities without re-encoding. lambda1 / lambda2 default to those chosen on
validation for the checkpoint (RUN/fusion.json, written by --choose-lambdas or by a
recipe with eval.choose_lambdas), else the config's. Results are also saved in RUN/eval/."""


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
    parser.add_argument("--choose-lambdas", action="store_true",
                        help="choose lambda1 and lambda2 on this split (a grid, by the "
                        "config's eval.select metric) and store them as RUN/fusion.json: "
                        "later scoring of this checkpoint uses them; refused on test")
    parser.add_argument("--rerank", metavar="K:BETA", type=_rerank,
                        help="also report sF re-ranked with the gallery's image-image "
                        "similarities: each caption's score of an image plus BETA times that "
                        "image's mean affinity to the caption's top K (both standardised); "
                        "not in the paper, off by default (docs/MODEL.md)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def _rerank(text: str) -> tuple[int, float]:
    from mia.evaluation.rerank import parse_rerank

    try:
        return parse_rerank(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--rerank {text!r}: ")) from exc


def run(args: argparse.Namespace) -> int:
    import mia.api
    from mia.evaluation.report import results_table, sweep_table

    result = mia.api.evaluate(args.run, args.data, args.split, checkpoint=args.checkpoint,
                              format=args.format, skip_bad=args.skip_bad, sweep=args.sweep,
                              lambda1=args.lambda1, lambda2=args.lambda2, device=args.device,
                              memory_mb=args.memory_mb, score_dtype=args.score_dtype,
                              distractors=args.distractors,
                              choose_lambdas=args.choose_lambdas, rerank=args.rerank,
                              progress=not (args.no_progress or args.json))
    if args.json:
        print_json(result)
        return 0
    meta = result["meta"]
    rows = [(g, result[g]) for g in ("sG", "sR", "sL", "sF")]
    if "sF_rerank" in result:
        rows.append((f"sF re-ranked (K={meta['rerank']['k']}, BETA={meta['rerank']['beta']})",
                     result["sF_rerank"]))
    print(results_table(rows, title=f"{meta['config']} on {meta['split']} ({meta['queries']} queries x "
                        f"{meta['images']} images; lambda1={meta['lambda1']}, "
                        f"lambda2={meta['lambda2']})"))
    print(f"unknown words: {100 * meta['unknown_word_fraction']:.2f}% of the query words are "
          "not in the model's vocabulary (read as <unk>)")
    for name, sub in result.get("subsets", {}).items():
        print()
        print(results_table([(g, sub[g]) for g in ("sG", "sR", "sL", "sF")],
                            title=f"{name} queries ({sub['sF']['queries']}), whole gallery"))
    if "fusion" in result:
        f = result["fusion"]
        print(f"\nchose lambda1={f['lambda1']}, lambda2={f['lambda2']} on {meta['split']}: "
              f"{f['metric']} {f['value']:.2f} (at the config's {f['default']['lambda1']}, "
              f"{f['default']['lambda2']}: {f['default']['sF'][f['metric'][3:]]:.2f}); "
              f"stored in {f['file']}")
    if "sweep" in result:
        print("\nlambda1 sweep (lambda2 = 0), sF:")
        print(sweep_table(result["sweep"]["lambda1"], "lambda1"))
        print("\nlambda2 sweep (lambda1 = 0), sF:")
        print(sweep_table(result["sweep"]["lambda2"], "lambda2"))
    return 0
