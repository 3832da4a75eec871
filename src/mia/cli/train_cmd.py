"""``mia train``: step training of a configuration on a dataset.

``--pretrained``, ``--word-vectors`` and ``--precision`` are short for ``--set KEY=VALUE``
(:data:`CONFIG_FLAGS`): config values, saved with the run, so they need ``--config`` (a
resumed run keeps its saved config). ``--device`` is not one of them: it is a runtime
choice that a resumed run may change (it overrides ``train.device`` of the config or of
the saved one), so it goes to :func:`mia.api.train` as the keyword ``device=``.
"""

from __future__ import annotations

import argparse

from mia.cli.common import HelpFormatter, add_data_options, positive_int, print_json
from mia.utils.choices import PRECISIONS

# flag -> the config key it sets: run() turns each given one into a --set override, and
# without --config names them all in its error (their dest is argparse's: --word-vectors
# -> args.word_vectors)
CONFIG_FLAGS = {"--pretrained": "model.pretrained", "--word-vectors": "model.word_vectors",
                "--precision": "train.precision"}

DESCRIPTION = """Train MIA (or one of the paper's ablations) with step training.

A config is a YAML file or the name of one under configs/ (e.g. mia, mia_resnet50,
ablations/gc, ablations/gc_rga, ablations/steps12_merged, demo/mia). Each epoch writes
RUN/checkpoints/last.pt atomically, validates on the 'val' split and keeps best.pt; losses
go to RUN/log.jsonl and TensorBoard (RUN/tb). --resume continues an interrupted run exactly
where its last checkpoint stopped. --start-from begins a new run at the end of a step of
another run whose config trains that far exactly as this one would (the ablations GC,
GC+RGA and MIA share step 1; GC+RGA is MIA's steps 1-2), so that step is not trained again.

examples:
  mia train --config demo/mia --data data/synth --out runs/demo/mia
  mia train --config mia --data /data/CUHK-PEDES --out runs/mia-vgg --set train.batch_size=64
  mia train --data /data/CUHK-PEDES --out runs/mia-vgg --resume
  mia train --config ablations/gc --data /data/CUHK-PEDES --out runs/gc \
      --start-from runs/mia-vgg/checkpoints/step1.pt
  mia train --config mia_resnet50 --data /data/CUHK-PEDES --out runs/r50 --nproc 4
  torchrun --nproc_per_node 4 -m mia train --config mia_resnet50 ...   (the same)"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="train a model (step training)",
                            description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("--config", help="config file or name (not needed with --resume)")
    add_data_options(parser)
    parser.add_argument("--out", required=True, metavar="RUN", help="run directory to write")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. steps.step1.epochs=3 (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue RUN from last.pt")
    parser.add_argument("--start-from", metavar="CHECKPOINT",
                        help="start this new run from another run's RUN/checkpoints/<step>.pt; "
                        "the model, data and train settings and the steps up to it must be "
                        "the same (the first difference is named)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"),
                        help="override train.device")
    key = CONFIG_FLAGS["--precision"]
    parser.add_argument("--precision", choices=PRECISIONS,
                        help=f"override {key}; auto ({key}'s default) "
                        "= bf16 where it is native (a CPU with avx512_bf16/amx_bf16, a GPU "
                        "with bf16), else fp32, logged and kept in RUN/meta.json; fp16 "
                        "needs a GPU")
    parser.add_argument("--pretrained", metavar="PATH|imagenet",
                        help="initial CNN weights: a local state_dict file or 'imagenet' "
                        f"(sets {CONFIG_FLAGS['--pretrained']})")
    parser.add_argument("--word-vectors", metavar="PATH|glove-6b-50d",
                        help=f"initial word embeddings (sets {CONFIG_FLAGS['--word-vectors']})")
    parser.add_argument("--nproc", type=positive_int, default=1,
                        help="processes (one per GPU); runs itself under torchrun")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print the run summary as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    import mia.api
    from mia.config import load_config
    from mia.utils.errors import ConfigError

    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _relaunch_under_torchrun(args.nproc, args.argv)
    sets = list(args.set) + config_flag_overrides(args)
    config = None
    if args.config:
        config = load_config(args.config, sets)
    elif sets:
        raise ConfigError(f"{'/'.join(['--set', *CONFIG_FLAGS])} need --config "
                          "(a resumed run keeps its saved config)")
    summary = mia.api.train(config, args.data, args.out, resume=args.resume,
                            format=args.format, skip_bad=args.skip_bad,
                            progress=not args.no_progress, device=args.device,
                            start_from=args.start_from).summary
    if args.json:
        print_json(summary)
    else:
        best = summary["best"]
        print(f"trained {summary['epochs']} epochs in {summary['seconds']}s -> {args.out}"
              + (f"; best {best['metric']} = {best['value']:.2f} (step {best['step']}, "
                 f"epoch {best['epoch']})" if best else ""))
    return 0


def config_flag_overrides(args: argparse.Namespace) -> list[str]:
    """``KEY=VALUE`` of each :data:`CONFIG_FLAGS` flag given, in the table's order."""
    given = ((key, getattr(args, flag[2:].replace("-", "_")))
             for flag, key in CONFIG_FLAGS.items())
    return [f"{key}={value}" for key, value in given if value]


def _relaunch_under_torchrun(nproc: int, argv: list[str]) -> int:
    """Run this same command (``argv``, as given to ``main``) in ``nproc`` processes with
    torchrun (single node)."""
    import subprocess
    import sys

    argv = list(argv)
    if "--nproc" in argv:
        i = argv.index("--nproc")
        argv = argv[:i] + argv[i + 2:]
    argv = [a for a in argv if not a.startswith("--nproc=")]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           str(nproc), "-m", "mia", *argv]
    return subprocess.call(cmd)
