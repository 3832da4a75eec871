"""Training throughput of each MIA step, beside the backbone's own forward + backward.

One batch of caption-image pairs with the paper's shapes (384x128 images, D = 1024,
E = 300, H = 1024, ~23-word captions with 3-10 noun phrases). Measured in the same run:

- backbone: CNN forward + backward only (the floor any image-text model pays);
- step 1 / 2 / 3: the full iteration of that step as configs/mia.yaml describes it
  (trainable groups, losses, backward, Adam step).

The step-2 overhead (step 2 / backbone - 1) is what MIA's heads, text path and losses add.
``--project`` turns the per-step throughput into the time of the paper's whole recipe on
CUHK-PEDES (68,108 training pairs; 10 + 20 + 5 epochs).

    python benchmarks/bench_train.py [--backbone resnet50] [--batch 16]
                                     [--precision fp32 bf16] [--device cpu|cuda]
bf16 is skipped, with the reason printed (and ``bf16_skipped`` in the JSON), where it is not
native (a CPU without avx512_bf16/amx_bf16: emulated, hours per measurement).
On a GPU (one command, a few minutes):
    python benchmarks/bench_train.py --device cuda --batch 96 --precision bf16 --project
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line, timeit  # noqa: E402
from mia.config import load_config  # noqa: E402
from mia.model.mia import MIA, ModelConfig  # noqa: E402
from mia.training.distributed import DistContext  # noqa: E402
from mia.training.objectives import MatchingConfig, needs  # noqa: E402
from mia.training.step import TrainingStep  # noqa: E402
from mia.training.trainer import set_trainable  # noqa: E402
from mia.utils.device import bf16_native  # noqa: E402

CUHK_TRAIN_PAIRS = 68108


def fake_batch(batch: int, height: int, width: int, vocab: int, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(15, 45, (batch,), generator=gen)
    tokens = torch.randint(2, vocab, (batch, int(lengths.max())), generator=gen)
    tokens[torch.arange(tokens.shape[1])[None] >= lengths[:, None]] = 0
    m = 10
    counts = torch.randint(3, m + 1, (batch,), generator=gen)
    phrase_lengths = torch.randint(1, 5, (batch, m), generator=gen)
    phrase_lengths[torch.arange(m)[None] >= counts[:, None]] = 0
    phrase_starts = (torch.arange(m) * 4)[None].expand(batch, m).clamp_max(10)
    return {"images": torch.randn(batch, 3, height, width, generator=gen), "tokens": tokens,
            "lengths": lengths, "phrase_starts": phrase_starts,
            "phrase_lengths": phrase_lengths, "phrase_mask": phrase_lengths > 0,
            "labels": torch.randint(0, 1000, (batch,), generator=gen),
            "image_index": torch.arange(batch)}


def measure(args, precision: str) -> dict:
    device = torch.device(args.device)
    cfg = load_config("mia")
    model_cfg = ModelConfig(**{**cfg.model.__dict__, "backbone": args.backbone,
                               "pretrained": None})
    model = MIA(model_cfg, vocab_size=5000, num_classes=1000).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    batch = {k: v.to(device) for k, v in
             fake_batch(args.batch, args.height, args.width, 5000).items()}
    if args.channels_last:
        batch["images"] = batch["images"].contiguous(memory_format=torch.channels_last)
    dtype = {"bf16": torch.bfloat16, "fp32": None}[precision]
    step_module = TrainingStep(model, MatchingConfig.of(cfg.train), DistContext())

    def autocast():
        return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def backbone_only():
        with autocast():
            out = model.image_encoder.backbone(batch["images"]).float().mean()
        out.backward()
        sync()

    set_trainable(model, ["backbone"])
    times = {"backbone": timeit(backbone_only, repeat=args.repeat)}
    for name in args.steps:
        step = cfg.steps[name]
        optimizer = torch.optim.Adam(set_trainable(model, step.train), lr=step.lr)
        with_parts, _ = needs(step.losses)

        def iteration(step=step, optimizer=optimizer, with_parts=with_parts):
            with autocast():
                terms = step_module(batch, step.losses, with_parts)
            optimizer.zero_grad(set_to_none=True)
            sum(terms.values()).backward()
            optimizer.step()
            sync()

        times[name] = timeit(iteration, repeat=args.repeat)
    return {k: args.batch / v for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--height", type=int, default=384)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=("fp32", "bf16"))
    parser.add_argument("--steps", nargs="+", default=["step2"],
                        choices=("step1", "step2", "step3"))
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--project", action="store_true",
                        help="also measure steps 1 and 3 and project the paper's recipe")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    print(machine_line())
    if args.project:
        args.steps = ["step1", "step2", "step3"]
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    skipped = {}
    if "bf16" in args.precision:
        native, why = bf16_native(torch.device(args.device))
        if not native:
            skipped["bf16_skipped"] = why
            print(f"bf16 skipped: {why} (bf16 is emulated there and very slow)", flush=True)
    results = {p: measure(args, p) for p in args.precision
               if not (p == "bf16" and skipped)}
    if args.json:
        print(json.dumps({"device": name, "batch": args.batch, "pairs_per_s": results,
                          **skipped}))
        return
    print(f"torch {torch.__version__}, {name}, {torch.get_num_threads()} threads; "
          f"{args.backbone} at {args.height}x{args.width}, batch {args.batch}, paper dims "
          f"(D=1024, E=300, H=1024){', channels_last' if args.channels_last else ''}")
    for precision, pps in results.items():
        line = ", ".join(f"{k} {v:.1f}" for k, v in pps.items())
        print(f"{precision}: pairs/s: {line}")
        if "step2" in pps:
            print(f"{precision}: step-2 overhead over the backbone alone: "
                  f"{100 * (pps['backbone'] / pps['step2'] - 1):.1f}%")
        if args.project:
            cfg = load_config("mia")
            hours = sum(s.epochs * CUHK_TRAIN_PAIRS / pps[n] for n, s in cfg.steps.items())
            print(f"{precision}: projected paper recipe on CUHK-PEDES (10 + 20 + 5 epochs of "
                  f"{CUHK_TRAIN_PAIRS} pairs, data loading excluded): {hours / 3600:.1f} h")


if __name__ == "__main__":
    main()
