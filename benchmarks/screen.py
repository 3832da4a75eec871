"""Screen one variant of a recipe with a short probe: step 2 for a few epochs (no step 3),
started from a step1.pt where the variant leaves step 1 alone, and compared with the
reference probe (no override) on the same batches.

    python benchmarks/screen.py --data /data/cuhk-weak --start RUN/checkpoints/step1.pt \\
        --out runs/screen --name reference
    python benchmarks/screen.py --data /data/cuhk-weak --start RUN/checkpoints/step1.pt \\
        --out runs/screen --name frozen3 --set model.frozen_stages=3

A probe trains ``RUNS/NAME`` with the recipe (default ``recipes/cuhk_weak_cpu``), the seed
of the run that wrote ``--start``, ``steps.step2.epochs=EPOCHS``, no step 3, and the
``--set`` overrides. Where the overrides keep step 1 as it was (the matching losses'
settings, later steps, runtime settings) it starts from ``--start`` (``mia train
--start-from``: the weights of the same run from scratch, a step 1 saved); otherwise
(``train.weak_weight``, the model, step 1 itself) it trains step 1 too, and says so; the
training column counts only what the probe trained. The sampler and mirroring depend on the seed, step and epoch only, so every probe of one seed
sees the same batches in the same order: paired differences, less noisy than two seeds.
An interrupted probe continues where it stopped when the same command is run again.

It prints the table of every probe under ``--out`` (R@1 / R@5 / R@10 / mAP of sG, sR, sL,
sF on the val split after the probe's last epoch, its training time, and sF R@1 and mAP
against the reference of the same ``--epochs``: a probe named ``reference`` or
``reference-2``, say, with no override). sL and the sF it enters use the BFM MLPs before
step 3 has trained them, as in any run after step 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line  # noqa: E402
from mia.artifacts.checkpoint import load_checkpoint  # noqa: E402
from mia.artifacts.run import RunDir  # noqa: E402
from mia.config import load_config  # noqa: E402
from mia.evaluation.run_eval import evaluate_run  # noqa: E402
from mia.training.branch import first_difference  # noqa: E402
from mia.training.launch import train, with_word_vectors_dim  # noqa: E402
from mia.utils.io import atomic_write_json  # noqa: E402

GRANULARITIES = ("sG", "sR", "sL", "sF")


def probe(args) -> None:
    """Train (or resume, or reuse) ``--out/--name`` and write its ``screen.json``."""
    path = Path(args.out) / args.name
    start = Path(args.start)
    source = RunDir(start.parent.parent).load_config()
    config = with_word_vectors_dim(load_config(args.config, [
        f"train.seed={source.train.seed}", f"steps.step2.epochs={args.epochs}",
        "steps.step3=null", *args.set]))
    if (path / "screen.json").is_file():
        if RunDir(path).load_config().to_dict() != config.to_dict():
            sys.exit(f"error: {path} holds a probe with other settings: use another --name")
        return
    if (path / "summary.json").is_file():  # trained; stopped in its evaluation
        pass
    elif (path / "checkpoints" / "last.pt").is_file():
        train(config, args.data, path, progress=args.progress, resume=True)  # same config
    else:
        difference = first_difference(source, config, steps_done=1)
        print(f"{args.name}: " + (f"trains step 1 too: {difference}" if difference
                                  else f"starts from {start}"), flush=True)
        train(config, args.data, path, progress=args.progress,
              start_from=None if difference else start)
    meta = RunDir(path).load_meta()
    history = load_checkpoint(path / "checkpoints" / "last.pt")["history"]
    own = ([h for h in history if h["step"] != "step1"] if "started_from" in meta
           else history)  # a probe from step1.pt holds the source's step-1 epoch too
    result = evaluate_run(path, args.data, "val", checkpoint=path / "checkpoints" / "last.pt",
                          progress=False)
    atomic_write_json(path / "screen.json", {
        "overrides": args.set, "epochs": args.epochs, "seed": config.train.seed,
        "started": "from step1.pt" if "started_from" in meta else "step 1 trained too",
        "seconds": round(sum(h["seconds"] for h in own), 1),
        "val": {g: result[g] for g in GRANULARITIES}})


def table(out: Path) -> None:
    rows = {p.parent.name: json.loads(p.read_text()) for p in sorted(out.glob("*/screen.json"))}
    refs = {row["epochs"]: row for name, row in rows.items() if name.startswith("reference")}
    print("| probe | overrides | sG | sR | sL | sF R@1 / R@5 / R@10 / mAP | vs reference "
          "(sF R@1, mAP) | training |")
    print("|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        val, ref = row["val"], refs.get(row["epochs"])
        diff = (f"{val['sF']['R1'] - ref['val']['sF']['R1']:+.2f}, "
                f"{val['sF']['mAP'] - ref['val']['sF']['mAP']:+.2f}"
                if ref and ref is not row else "")
        print(f"| {name} | {' '.join(row['overrides']) or '-'} | "
              + " | ".join(f"{val[g]['R1']:.2f}" for g in GRANULARITIES[:3])
              + " | {R1:.2f} / {R5:.2f} / {R10:.2f} / {mAP:.2f}".format(**val["sF"])
              + f" | {diff} | {row['epochs']} ep, {row['seconds'] / 60:.0f} min; "
              f"{row['started']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a dataset with train and val splits")
    parser.add_argument("--start", required=True,
                        help="a step1.pt of a finished step 1 of the recipe (RUN/checkpoints/)")
    parser.add_argument("--out", required=True, help="where the probes go, one folder each")
    parser.add_argument("--name", help="this probe's folder under --out (a name starting "
                        "with 'reference': no override, the probes of its --epochs are "
                        "compared with it); without it, only the table is printed")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an override of the recipe (repeatable)")
    parser.add_argument("--config", default="recipes/cuhk_weak_cpu")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of step 2 (default 1; "
                        "a variant that acts later, such as a warm-up, needs more)")
    parser.add_argument("--progress", action="store_true", help="progress bars")
    args = parser.parse_args()
    if args.name and args.name.startswith("reference") and args.set:
        parser.error("a reference probe takes no --set")
    print(machine_line())
    print(f"data {args.data}, val split; start {args.start}; step 2 for {args.epochs} "
          "epoch(s)")
    if args.name:
        probe(args)
    table(Path(args.out))


if __name__ == "__main__":
    main()
