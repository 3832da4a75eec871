"""Training throughput of MIA step 2 beside the backbone's own forward + backward.

One batch of caption-image pairs with the paper's shapes (384x128 images, D = E-sized
text path, ~23-word captions with ~6 noun phrases of ~3 words). Measured in the same run:

- backbone: CNN forward + backward only (the floor: what any image-text model pays);
- step 2: the full MIA iteration (CNN, global and part branches, Bi-GRU on sentences and
  phrases, RGA MLPs, identity + GC + RGA matching losses, backward, Adam step).

The overhead (step 2 / backbone - 1) is what the heads, text path and losses add.

    python benchmarks/bench_train.py [--backbone resnet50] [--batch 16] [--precision fp32|bf16]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import timeit  # noqa: E402
from mia.model.mia import MIA, ModelConfig  # noqa: E402
from mia.training.config import load_config  # noqa: E402
from mia.training.objectives import compute_losses  # noqa: E402
from mia.training.trainer import set_trainable  # noqa: E402


def fake_batch(batch: int, height: int, width: int, vocab: int, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(15, 45, (batch,), generator=gen)
    tokens = torch.randint(2, vocab, (batch, int(lengths.max())), generator=gen)
    tokens[torch.arange(tokens.shape[1])[None] >= lengths[:, None]] = 0
    m = 10
    counts = torch.randint(3, m + 1, (batch,), generator=gen)
    phrase_lengths = torch.randint(1, 5, (batch, m), generator=gen)
    phrase_lengths[torch.arange(m)[None] >= counts[:, None]] = 0
    phrase_tokens = torch.randint(2, vocab, (batch, m, 4), generator=gen)
    phrase_tokens[torch.arange(4)[None, None] >= phrase_lengths[..., None]] = 0
    return {"images": torch.randn(batch, 3, height, width, generator=gen), "tokens": tokens,
            "lengths": lengths, "phrase_tokens": phrase_tokens,
            "phrase_lengths": phrase_lengths, "phrase_mask": phrase_lengths > 0,
            "labels": torch.randint(0, 1000, (batch,), generator=gen),
            "image_index": torch.arange(batch)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--height", type=int, default=384)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    cfg = load_config("mia")
    model_cfg = ModelConfig(**{**cfg.model.__dict__, "backbone": args.backbone})
    model = MIA(model_cfg, vocab_size=5000, num_classes=1000).to(device)
    step = cfg.steps["step2"]
    params = set_trainable(model, step.train)
    optimizer = torch.optim.Adam(params, lr=step.lr)
    batch = {k: v.to(device) for k, v in
             fake_batch(args.batch, args.height, args.width, 5000).items()}
    dtype = torch.bfloat16 if args.precision == "bf16" else None
    autocast = lambda: torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)  # noqa: E731

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def backbone_only():
        with autocast():
            out = model.image_encoder.backbone(batch["images"]).float().mean()
        out.backward()
        sync()

    def full_step():
        with autocast():
            img = model.encode_images(batch["images"])
            txt = model.encode_texts(batch["tokens"], batch["lengths"], batch["phrase_tokens"],
                                     batch["phrase_lengths"], batch["phrase_mask"])
            terms = compute_losses(model, img, txt, batch["labels"], batch["image_index"],
                                   step.losses, cfg.train.margin)
        optimizer.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        optimizer.step()
        sync()

    t_backbone = timeit(backbone_only, repeat=args.repeat)
    t_full = timeit(full_step, repeat=args.repeat)
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, "
          f"{args.precision}; {args.backbone} at {args.height}x{args.width}, batch {args.batch},"
          f" paper dims (D=1024, E=300, H=1024)")
    print(f"backbone forward+backward: {t_backbone:.3f} s/batch = "
          f"{args.batch / t_backbone:.1f} pairs/s")
    print(f"MIA step 2 iteration:      {t_full:.3f} s/batch = {args.batch / t_full:.1f} pairs/s")
    print(f"overhead of heads, text path and losses: {100 * (t_full / t_backbone - 1):.1f}%")


if __name__ == "__main__":
    main()
