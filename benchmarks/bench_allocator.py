"""What glibc's malloc costs the CNN on CPU: the same work with the allocator's defaults
(``MIA_MALLOC=system``) and with ``mia.utils.memory.keep_freed_memory`` (what ``mia train``,
``mia evaluate`` and index builds use), each in a fresh process, one after the other.

Two passes of a recipe's CNN at its resolution, batch and memory layout (ImageNet weights
are not needed for timing):

- frozen forward: all CNN stages, eval mode, no gradients: what step 1, step 3, validation,
  evaluation and indexing compute for an image not yet in a feature cache;
- step-2 CNN: the never-trained stages (model.frozen_stages) without gradients, then the
  trained ones forward + backward: step 2 for an image not yet in the run-wide cache.

For each it prints milliseconds per batch (median of ``--repeat``, after two warm-up
batches), minor page faults per batch, the share of CPU time spent in the kernel and the
process's peak resident memory, then the speed-up.

    python benchmarks/bench_allocator.py [--config recipes/cuhk_weak_cpu] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line  # noqa: E402
from mia.config import load_config  # noqa: E402
from mia.model.backbones import build_backbone, stage_modules  # noqa: E402
from mia.utils.memory import ENV, keep_freed_memory  # noqa: E402

PASSES = ("frozen forward", "step-2 CNN")


def child(args) -> dict:
    """One process: time both passes under the allocator this process was started with."""
    kept = keep_freed_memory()
    cfg = load_config(args.config)
    torch.manual_seed(0)
    net, _ = build_backbone(cfg.model.backbone, last_stride=cfg.model.last_stride)
    stages = stage_modules(net, cfg.model.backbone)
    frozen = cfg.model.frozen_stages
    x = torch.randn(args.batch, 3, cfg.data.height, cfg.data.width)
    if cfg.train.channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(
            memory_format=torch.channels_last)

    def frozen_forward():
        net.eval()
        with torch.no_grad():
            net(x)

    def step2_cnn():
        net.eval()
        h = x
        with torch.no_grad():
            for stage in stages[:frozen]:
                h = stage(h)
        for stage in stages[frozen:]:
            stage.train()
            h = stage(h)
        h.mean().backward()

    result = {"allocator": "kept" if kept else "system"}
    for name, fn in zip(PASSES, (frozen_forward, step2_cnn)):
        fn(), fn()
        times, before = [], resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(args.repeat):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        result[name] = {
            "ms": round(1000 * statistics.median(times), 1),
            "faults": round((after.ru_minflt - before.ru_minflt) / args.repeat),
            "kernel_share": round((after.ru_stime - before.ru_stime) / max(cpu, 1e-9), 3)}
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="recipes/cuhk_weak_cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    runs = {}
    for mode in ("system", "kept"):
        env = {**os.environ, ENV: "system" if mode == "system" else ""}
        out = subprocess.run([sys.executable, __file__, "--child", "--config", args.config,
                              "--batch", str(args.batch), "--repeat", str(args.repeat)],
                             env=env, check=True, capture_output=True, text=True).stdout
        runs[mode] = json.loads(out.strip().splitlines()[-1])
    speedup = {name: round(runs["system"][name]["ms"] / runs["kept"][name]["ms"], 2)
               for name in PASSES}
    report = {"machine": machine_line(), "config": args.config, "batch": args.batch,
              "runs": runs, "speedup": speedup}
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(report["machine"])
    print(f"{args.config}, batch {args.batch}, fp32, median of {args.repeat}")
    print("| pass | allocator | ms / batch | minor faults / batch | kernel share of CPU |")
    print("|---|---|---|---|---|")
    for name in PASSES:
        for mode in ("system", "kept"):
            r = runs[mode][name]
            print(f"| {name} | {runs[mode]['allocator']} | {r['ms']} | {r['faults']} "
                  f"| {100 * r['kernel_share']:.0f}% |")
    print(f"peak resident memory: {runs['system']['peak_rss_mb']} MB (system), "
          f"{runs['kept']['peak_rss_mb']} MB (kept)")
    print("speed-up: " + ", ".join(f"{name} {s}x" for name, s in speedup.items()))


if __name__ == "__main__":
    main()
