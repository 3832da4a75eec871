"""The real-data table of the README: GC, GC + RGA and MIA trained with the CPU recipes on a
real training set, evaluated on its validation split, for several seeds.

    python benchmarks/real_data.py --data /data/cuhk-dev --out runs/real --seeds 0 1
    python benchmarks/real_data.py --family weak --data /data/cuhk-weak --out runs/weak
    python benchmarks/real_data.py --family weak1k --data /data/cuhk-weak --out runs/weak1k

/data/cuhk-dev is a CUHK-PEDES-format directory (reid_raw.json + imgs/) made from the
official CUHK-PEDES validation people only (800 ids as train, 200 as val, with their real
captions; docs/EXPERIMENTS.md says how); any dataset with train and val splits works.
``--family weak`` uses the recipes for about 11,800 people (cuhk-weak, same val);
``--family weak1k`` the same recipes validated on val-1k (val + the ``distractors`` split,
a 1,000-person gallery; benchmarks/build_cuhk_sets.py makes such a cuhk-weak), and it
evaluates there unless ``--distractors none``.

The three rows share their first steps: MIA is trained first, GC + RGA starts from its
step2.pt (MIA's steps 1-2 are GC + RGA's, so nothing is trained again) and GC from its
step1.pt (``mia train --start-from``; the result equals a run from scratch, as a resumed
run does). ``--no-share`` trains each row from scratch. The training column is each row's
own training time plus that of the steps it shares.

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
from mia.artifacts.run import RunDir  # noqa: E402
from mia.config import load_config  # noqa: E402
from mia.evaluation.run_eval import evaluate_run  # noqa: E402
from mia.training.launch import train  # noqa: E402

FAMILIES = {family: {"GC": f"recipes/{prefix}_gc", "GC+RGA": f"recipes/{prefix}_gc_rga",
                      "MIA": f"recipes/{prefix}"}
            for family, prefix in (("small", "cuhk_small_cpu"), ("weak", "cuhk_weak_cpu"),
                                   ("weak1k", "cuhk_weak1k_cpu"))}
ROWS = ("GC", "GC+RGA", "MIA")
SHARED = {"GC": "step1", "GC+RGA": "step2"}  # the MIA checkpoint each row starts from


def same_run(path: Path, config, data: str) -> None:
    """Exit with one line if an existing run was trained with another config or data."""
    run = RunDir(path)
    saved, meta = run.load_config().to_dict(), run.load_meta()
    if saved != config.to_dict() or Path(meta["data"]).resolve() != Path(data).resolve():
        sys.exit(f"error: {path} holds a run of {saved['name']} on {meta['data']}, not of "
                 f"{config.name} on {data} with these overrides: use another --out")


def trained(name: str, seed: int, args) -> Path:
    """The run directory of one row and seed, trained (or resumed) if it is not finished."""
    out = Path(args.out)
    path = out / f"{name.lower().replace('+', '_')}-seed{seed}"
    config = load_config(FAMILIES[args.family][name], [f"train.seed={seed}", *args.set])
    if (path / "summary.json").is_file():
        same_run(path, config, args.data)
        return path
    if (path / "checkpoints" / "last.pt").is_file():
        same_run(path, config, args.data)
        train(None, args.data, path, progress=False, resume=True)
        return path
    start = None
    if args.share and name in SHARED:
        start = trained("MIA", seed, args) / "checkpoints" / f"{SHARED[name]}.pt"
    train(config, args.data, path, progress=False, start_from=start)
    return path


def run(name: str, seed: int, args) -> tuple[dict, float]:
    path = trained(name, seed, args)
    seconds = json.loads((path / "summary.json").read_text())["seconds"]
    return evaluate_run(path, Path(args.data), args.split, progress=False,
                        distractors=args.distractors), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a dataset with train and val splits")
    parser.add_argument("--out", help="where the runs go (default: runs/real for the small "
                        "family, runs/weak for the weak one)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--distractors", metavar="SPLIT|none",
                        help="a split whose images join the gallery (default: distractors for "
                        "--family weak1k, none otherwise)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--family", choices=FAMILIES, default="small",
                        help="recipes/cuhk_small_cpu* (about 900 people), "
                        "recipes/cuhk_weak_cpu* (about 11,800) or recipes/cuhk_weak1k_cpu* "
                        "(the same, validated on val-1k)")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument("--no-share", dest="share", action="store_false",
                        help="train every row from scratch (default: GC and GC + RGA start "
                        "from MIA's step checkpoints)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a value of every recipe (a variant; use another --out)")
    args = parser.parse_args()
    args.out = args.out or {"small": "runs/real", "weak": "runs/weak",
                            "weak1k": "runs/weak1k"}[args.family]
    if args.distractors is None and args.family == "weak1k":
        args.distractors = "distractors"
    args.distractors = None if args.distractors == "none" else args.distractors
    print(machine_line())
    gallery = f"{args.split}{' + ' + args.distractors if args.distractors else ''}"
    print(f"data {args.data}, trained on train, evaluated on {gallery}; overrides: "
          f"{' '.join(args.set) or 'none'}")
    print("| model | seed | sG R@1/5/10/mAP | sR | sL | sF | training |")
    print("|---|---|---|---|---|---|---|")
    for name in args.rows:
        results = []
        for seed in args.seeds:
            result, seconds = run(name, seed, args)
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
