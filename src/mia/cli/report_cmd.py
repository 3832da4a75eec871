"""``mia report``: a self-contained HTML report of a trained run."""

from __future__ import annotations

import argparse

from mia.cli.common import HelpFormatter

DESCRIPTION = """Write an HTML report of a trained run on a dataset split: results per
granularity (sG, sR, sL, sF) and per CUHK-PEDES sub-dataset, the evaluations of runs
found next to RUN (e.g. the ablations), training curves, the lambda sweeps, and the
paper's figures 7a (RGA stripe weights), 7b (BFM phrase -> stripe), 8 (top-10 under GC,
GC+RGA, MIA) and 9 (failure cases), plus the dataset statistics. The page embeds its
images and style, so it opens offline. PNGs are also written to OUT/figures/."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("report", help="write an HTML report with the paper's figures",
                            description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("--run", required=True, metavar="RUN",
                        help="trained run directory or exported model file (mia export)")
    parser.add_argument("--data", required=True, metavar="DIR", help="dataset directory")
    parser.add_argument("--split", default="test", help="split to analyse")
    parser.add_argument("--out", metavar="DIR", help="output directory (default: RUN/report)")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mia.viz.report import write_report

    path = write_report(args.run, args.data, args.out, args.split,
                        progress=not args.no_progress)
    print(f"report written to {path}")
    return 0
