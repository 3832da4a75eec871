"""The real-data table of the README: GC, GC + RGA and MIA trained with the CPU recipes on a
small real training set, evaluated on its validation split, for several seeds.

    python benchmarks/real_data.py --data /data/cuhk-dev --out runs/real --seeds 0 1

/data/cuhk-dev is a CUHK-PEDES-format directory (reid_raw.json + imgs/) made from the
official CUHK-PEDES validation people only (800 ids as train, 200 as val, with their real
captions; docs/EXPERIMENTS.md says how); any dataset with train and val splits works.

Every run trains on the `train` split and is evaluated on the `val` split (never on an
official test split). Finished runs are reused, so the script can be stopped and restarted.
Each row prints R@1 / R@5 / R@10 / mAP of sG, sR, sL and sF per seed, their mean, and the
training time.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line  # noqa: E402
from mia.config import load_config  # noqa: E402
from mia.evaluation.run_eval import evaluate_run  # noqa: E402
from mia.training.launch import train  # noqa: E402

RECIPES = {"GC": "recipes/cuhk_small_cpu_gc", "GC+RGA": "recipes/cuhk_small_cpu_gc_rga",
           "MIA": "recipes/cuhk_small_cpu"}


def run(name: str, seed: int, data: Path, out: Path, split: str,
        overrides: list[str]) -> tuple[dict, float]:
    path = out / f"{name.lower().replace('+', '_')}-seed{seed}"
    if not (path / "summary.json").is_file():
        resume = (path / "checkpoints" / "last.pt").is_file()
        train(None if resume else load_config(RECIPES[name], [f"train.seed={seed}", *overrides]),
              data, path, progress=False, resume=resume)
    seconds = json.loads((path / "summary.json").read_text())["seconds"]
    return evaluate_run(path, data, split, progress=False), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a dataset with train and val splits")
    parser.add_argument("--out", default="runs/real")
    parser.add_argument("--split", default="val")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--rows", nargs="+", default=list(RECIPES), choices=RECIPES)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a value of every recipe (a variant; use another --out)")
    args = parser.parse_args()
    print(machine_line())
    print(f"data {args.data}, trained on train, evaluated on {args.split}; overrides: "
          f"{' '.join(args.set) or 'none'}")
    print("| model | seed | sG R@1/5/10/mAP | sR | sL | sF | training |")
    print("|---|---|---|---|---|---|---|")
    for name in args.rows:
        results = []
        for seed in args.seeds:
            result, seconds = run(name, seed, Path(args.data), Path(args.out), args.split,
                                  args.set)
            results.append(result)
            print(f"| {name} | {seed} | " + " | ".join(
                "{R1:.2f} / {R5:.2f} / {R10:.2f} / {mAP:.2f}".format(**result[g])
                for g in ("sG", "sR", "sL", "sF")) + f" | {seconds / 60:.0f} min |", flush=True)
        mean = {g: {k: sum(r[g][k] for r in results) / len(results)
                    for k in ("R1", "R5", "R10", "mAP")} for g in ("sG", "sR", "sL", "sF")}
        print(f"| {name} | mean | " + " | ".join(
            "{R1:.2f} / {R5:.2f} / {R10:.2f} / {mAP:.2f}".format(**mean[g])
            for g in ("sG", "sR", "sL", "sF")) + " | |", flush=True)


if __name__ == "__main__":
    main()
