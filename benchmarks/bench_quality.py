"""Quality tables of the README on the synthetic set: the demo MIA in fp32 and in bf16, and
with an ImageNet-pretrained EfficientNet-Lite0 instead of the small CNN from scratch.

    python benchmarks/bench_quality.py --out runs/quality          # about 25 min on 2 cores

Each variant trains on the demo's synthetic set (1,000 identities, seed 0; generated under
--out unless it exists) and is evaluated on its test split. Finished runs are reused. The
bf16 variant is not trained, and is reported skipped with the reason, where bf16 is not
native (a CPU without avx512_bf16/amx_bf16: emulated, many hours); the others pin fp32.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line  # noqa: E402
from mia.config import load_config  # noqa: E402
from mia.demo import ensure_dataset  # noqa: E402
from mia.evaluation.run_eval import evaluate_run  # noqa: E402
from mia.training.launch import train  # noqa: E402
from mia.utils.device import bf16_native, resolve_device  # noqa: E402

VARIANTS = {  # name -> (config, overrides, label)
    "fp32": ("demo/mia", ["train.precision=fp32"], "demo/mia, fp32"),
    "bf16": ("demo/mia", ["train.precision=bf16"], "demo/mia, bf16 (mia train --precision bf16)"),
    "pretrained": ("demo/mia_pretrained", ["train.precision=fp32"],
                   "demo/mia_pretrained (EfficientNet-Lite0, ImageNet)"),
}


def run_variant(name: str, data: Path, out: Path) -> dict:
    config, overrides, _ = VARIANTS[name]
    run = out / name
    if not (run / "summary.json").is_file():
        train(load_config(config, overrides), data, run, progress=False)
    summary = json.loads((run / "summary.json").read_text())
    result = evaluate_run(run, data, "test", progress=False)
    epochs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()
              if '"type": "epoch"' in line]
    step1 = [e for e in epochs if e["step"] == "step1"]
    return {"result": result, "seconds": summary["seconds"],
            "val_after_step1": step1[-1]["val"]["sF"]["R1"] if step1 and "val" in step1[-1]
            else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/quality")
    parser.add_argument("--ids", type=int, default=1000)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = parser.parse_args()
    print(machine_line())
    out = Path(args.out)
    data = out / "data"
    ensure_dataset(data, args.ids, 0, progress=False)
    print(f"synthetic set ({args.ids} identities), test split; not CUHK-PEDES")
    print("| variant | sG R@1 | sR R@1 | sL R@1 | sF R@1 | sF R@5 | sF R@10 | sF mAP | "
          "val sF R@1 after step 1 | training time |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    native, why = bf16_native(resolve_device("auto"))  # the device train() picks
    for name in args.variants:
        if name == "bf16" and not native and not (out / name / "summary.json").is_file():
            print(f"| {VARIANTS[name][2]} | skipped: {why} (bf16 is emulated there and "
                  "very slow) |", flush=True)
            continue
        got = run_variant(name, data, out)
        r = got["result"]
        print(f"| {VARIANTS[name][2]} | {r['sG']['R1']:.2f} | {r['sR']['R1']:.2f} | "
              f"{r['sL']['R1']:.2f} | {r['sF']['R1']:.2f} | {r['sF']['R5']:.2f} | "
              f"{r['sF']['R10']:.2f} | {r['sF']['mAP']:.2f} | {got['val_after_step1']:.1f} | "
              f"{got['seconds']:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
