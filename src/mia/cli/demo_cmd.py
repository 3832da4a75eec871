"""``mia demo``: the whole pipeline on the built-in synthetic pedestrian set."""

from __future__ import annotations

import argparse

from mia.cli.common import HelpFormatter, nonneg_int, positive_int, print_json

DESCRIPTION = """Generate the synthetic pedestrian set (if missing), train the GC baseline
and MIA with its three training steps on CPU, evaluate both on the test split and print
the paper-style table (GC(G), MIA(G), MIA(R), MIA(L), MIA(F)). Finished parts are reused
and an interrupted run resumes. Results are synthetic, not CUHK-PEDES numbers."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="run the end-to-end demo on synthetic data",
                            description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("--out", default="runs/demo", help="directory for data, runs, results")
    parser.add_argument("--ids", type=positive_int, default=1000, help="synthetic identities")
    parser.add_argument("--seed", type=nonneg_int, default=0, help="seed of the synthetic set")
    parser.add_argument("--fresh", action="store_true", help="delete --out and start over")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a value of both configs, e.g. steps.step2.epochs=2")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mia.demo import run_demo

    summary = run_demo(args.out, ids=args.ids, seed=args.seed, fresh=args.fresh,
                       overrides=args.set,
                       progress=not (args.no_progress or args.json))
    if args.json:
        print_json({k: v for k, v in summary.items() if k != "text"})
        return 0
    print(summary["text"])
    print(f"({summary['queries']} queries x {summary['images']} images; "
          f"{summary['seconds']:.0f}s; results in {args.out}/results.json)")
    for note in summary["checks"]:
        print(f"note: {note}")
    return 0
