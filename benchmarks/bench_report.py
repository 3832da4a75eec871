"""Time ``mia report`` at CUHK-PEDES test scale: about 1,000 identities, 3,000 images and
6,000 captions in the analysed split (the official test split has 1,000, 3,074 and 6,156).

A synthetic set of that size is generated, a small run is trained for one epoch per step
on a few other identities (the model's quality does not matter here, its dimensions do),
and the report is written with each of its phases timed: encoding and scoring every
(caption, image) pair, the metrics, the lambda sweeps (Tables XI, XII), the sub-dataset
table, and the figures (7a, 7b, 8, 9, training curves, sweeps).

    python benchmarks/bench_report.py --work /tmp/bench-report
    python benchmarks/bench_report.py --work DIR --run RUN   # time an existing run instead
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line  # noqa: E402
from mia.synth.generate import generate_dataset  # noqa: E402
from mia.viz import report  # noqa: E402


def timed(table: dict, name: str, fn):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            table[name] = table.get(name, 0.0) + time.perf_counter() - start
    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="folder for the data and the run")
    parser.add_argument("--run", help="a trained run to report on (default: train a small one)")
    parser.add_argument("--config", default="demo/mia", help="config of the small run")
    parser.add_argument("--ids", type=int, default=1000, help="identities in the split")
    args = parser.parse_args()
    print(machine_line())
    work = Path(args.work)
    data = work / "data"
    if not (data / "reid_raw.json").is_file():
        # almost every identity goes to the test split; train and val keep a few
        total = round(args.ids / 0.96)
        generate_dataset(data, total, seed=0, height=96, width=32, images_per_id=(2, 4),
                         split_fractions=(0.02, 0.02, 0.96), workers=2)
    run = Path(args.run) if args.run else work / "run"
    if not args.run and not (run / "checkpoints").is_dir():
        sets = [f"steps.{s}.epochs=1" for s in ("step1", "step2", "step3")]
        subprocess.run([sys.executable, "-m", "mia", "train", "--config", args.config,
                        "--data", str(data), "--out", str(run), "--no-progress",
                        *[a for s in sets for a in ("--set", s)]], check=True)
    phases: dict[str, float] = {}
    from_run, seen = report.Analysis.from_run, []

    def analysed(*args, **kwargs):  # the report's analysis, kept for the sizes printed
        seen.append(from_run(*args, **kwargs))
        return seen[-1]

    report.Analysis.from_run = timed(phases, "encode + score all pairs", analysed)
    for name, label in (("evaluate_scores", "metrics"), ("lambda_sweeps", "lambda sweeps"),
                        ("per_subset", "sub-dataset table"), ("_figures", "figures")):
        setattr(report, name, timed(phases, label, getattr(report, name)))
    start = time.perf_counter()
    out = report.write_report(run, data, work / "report", "test", progress=False)
    total = time.perf_counter() - start
    inputs, model = seen[0].inputs, seen[0].trained.config.model
    print(f"report of {run} on {data}, test split: {len(inputs.query_texts)} captions x "
          f"{len(inputs.gallery)} images, {int(inputs.gallery_pids.unique().numel())} ids; "
          f"model {model.backbone}, D = {model.embed_dim}: {out}")
    for name, seconds in phases.items():
        print(f"  {name:<26} {seconds:8.1f} s")
    print(f"  {'whole report':<26} {total:8.1f} s")


if __name__ == "__main__":
    main()
