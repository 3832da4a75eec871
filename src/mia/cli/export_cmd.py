"""``mia export``: a run's model as one file to hand over or serve elsewhere."""

from __future__ import annotations

import argparse

from mia.cli.common import HelpFormatter, print_json

DESCRIPTION = """Write a trained run's model to one file: the weights (no optimizer state,
no training-only identity classifier), the model config, vocabulary, lambda1 / lambda2,
the preprocessing (image size, normalisation), the training data's name and content hash,
the checkpoint's validation metrics and the package version. It loads without unpickling
arbitrary objects, and every command that takes --run (evaluate, report, index build,
search, serve) and mia.load() take the file as they take the run directory, with the same
numbers. The file is written atomically: an interrupted export leaves no partial file.

examples:
  mia export runs/demo/mia --out mia-demo.pt
  mia export runs/demo/mia --out mia-last.pt --checkpoint last
  mia evaluate --run mia-demo.pt --data data/synth --split test"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("export", help="write a run's model to one file",
                            description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("run", metavar="RUN", help="trained run directory")
    parser.add_argument("--out", required=True, metavar="FILE", help="file to write")
    parser.add_argument("--checkpoint", default="best", metavar="best|last|PATH",
                        help="best: best.pt (else last.pt, as mia evaluate picks); last: "
                        "last.pt; or a checkpoint file of the run")
    parser.add_argument("--json", action="store_true", help="print what was written as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import mia.api

    info = mia.api.export(args.run, args.out, args.checkpoint)
    if args.json:
        print_json(info)
    else:
        print(f"exported {info['checkpoint']} -> {info['out']} ({info['bytes'] / 1e6:.2f} MB; "
              f"the checkpoint is {info['checkpoint_bytes'] / 1e6:.2f} MB)")
    return 0
