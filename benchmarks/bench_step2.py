"""Where one step-2 iteration of a recipe spends its time, part by part, on this machine.

The recipe's model (default ``recipes/cuhk_small_cpu``, its ImageNet weights included) and
real batches from a synthetic set generated at the recipe's resolution, read by the same
TrainPairs / sampler / collate code as ``mia train``; step 2's trainable groups, losses and
Adam. Each part is timed alone (best of ``--repeat``, after a warm-up), then the whole
iteration exactly as the trainer runs it:

- data: one batch from the (in-memory) image cache: mirroring, normalisation, token ids,
  collate; and the frozen-stage feature cache lookup (train.feature_cache_mb);
- cnn: the CNN stages step 2 trains (after model.frozen_stages), forward + backward, from
  cached features: the floor, and the reference of the target "step 2 <= 1.5 x cnn";
- image heads: global FC, 1x1 part convolution and stripe pooling, forward + backward;
- text: word features + Bi-GRU over sentences and noun phrases + FCs, forward + backward;
- mlps: the RGA MLPs of both modalities (part of step 2's encoders), forward + backward;
- losses: similarities (Eq. 4-10) and losses (Eq. 19-20) from fixed embeddings, f + b;
- optimizer: zero_grad + Adam step over step 2's parameters.

    python benchmarks/bench_step2.py [--config recipes/cuhk_small_cpu] [--batch 32]
                                     [--repeat 5] [--json]

fp32 unless ``--precision bf16`` (refused where bf16 is not native).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line  # noqa: E402
from mia.config import load_config  # noqa: E402
from mia.data.loading import TrainPairs, collate_pairs  # noqa: E402
from mia.data.pipeline import load_run_data  # noqa: E402
from mia.data.records import label_map  # noqa: E402
from mia.model.embeddings import ImageEmbeddings, TextEmbeddings  # noqa: E402
from mia.model.mia import MIA  # noqa: E402
from mia.synth.generate import generate_dataset  # noqa: E402
from mia.training.distributed import DistContext  # noqa: E402
from mia.training.objectives import MatchingConfig, compute_losses, needs  # noqa: E402
from mia.training.step import PHRASE_KEYS, TEXT_KEYS, TrainingStep  # noqa: E402
from mia.training.trainer import set_trainable  # noqa: E402
from mia.utils.device import bf16_native  # noqa: E402
from mia.utils.memory import keep_freed_memory  # noqa: E402


def best_of(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def setup(args):
    cfg = load_config(args.config, [f"train.batch_size={args.batch}", *args.set])
    work = Path(tempfile.mkdtemp(prefix="bench_step2_"))
    generate_dataset(work / "synth", n_ids=args.ids, seed=0, height=cfg.data.height,
                     width=cfg.data.width, images_per_id=(2, 3))
    data = load_run_data(cfg.data, work / "synth", progress=False)
    records = data.dataset.split("train")
    labels = label_map(records)
    pairs = TrainPairs(records, data.store, data.corpus, labels, flip=cfg.data.flip, seed=0)
    torch.manual_seed(0)
    model = MIA(cfg.model, len(data.vocab), len(labels))
    model.load_pretrained_backbone()
    model.load_pretrained_text()
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return cfg, pairs, model


def measure(args) -> dict:
    cfg, pairs, model = setup(args)
    step = cfg.steps["step2"]
    with_parts, _ = needs(step.losses)
    params = set_trainable(model, step.train)
    optimizer = torch.optim.Adam(params, lr=step.lr)
    trains_cnn = "backbone" in step.train
    depth = model.config.frozen_stages if trains_cnn else model.image_encoder.num_stages()
    step_module = TrainingStep(model, MatchingConfig.of(cfg.train), DistContext(),
                               frozen_depth=depth, cache_mb=cfg.train.feature_cache_mb)
    dtype = {"fp32": None, "bf16": torch.bfloat16}[args.precision]

    def autocast():
        return torch.autocast("cpu", dtype=dtype, enabled=dtype is not None)

    indices = list(range(args.batch))
    for i in indices:  # fill the image cache (an epoch in, every image is cached)
        pairs[i]

    def load_batch():
        b = collate_pairs([pairs[i] for i in indices])
        if cfg.train.channels_last:
            b["images"] = b["images"].contiguous(memory_format=torch.channels_last)
        return b

    batch = load_batch()
    start = depth if step_module.cache is not None else 0
    feats = (step_module.cache.features(model, batch["images"], batch["image_index"],
                                        batch["flips"])
             if step_module.cache is not None else batch["images"])
    times = {"data": best_of(load_batch, args.repeat)}
    if step_module.cache is not None:
        times["feature cache"] = best_of(lambda: step_module.cache.features(
            model, batch["images"], batch["image_index"], batch["flips"]), args.repeat)
    enc = model.image_encoder

    def cnn():
        with autocast():
            out = enc.backbone_stages(feats, start)
        out.float().mean().backward()

    def image_path():
        with autocast():
            g, p = enc(feats, with_parts=with_parts, start_stage=start)
        (g.float().mean() + (p.float().mean() if p is not None else 0)).backward()

    text_args = {k: batch[k] for k in TEXT_KEYS + (PHRASE_KEYS if with_parts else ())
                 if k in batch}

    def text():
        with autocast():
            t, n = model.text_encoder(**text_args)
        (t.float().mean() + (n.float().mean() if n is not None else 0)).backward()

    with torch.no_grad(), autocast():
        img0 = model.encode_images(feats, with_parts=with_parts, start_stage=start)
        txt0 = model.encode_texts(**text_args)
        g_img, p_img = enc(feats, with_parts=with_parts, start_stage=start)
        _, n_txt = model.text_encoder(**text_args)

    def mlps():
        p, n = p_img.float().requires_grad_(), n_txt.float().requires_grad_()
        with autocast():
            out = model.mlp_v_rga(p).float().mean() + model.mlp_t_rga(n).float().mean()
            if "bfm" in step.train:
                out = out + model.mlp_v_bfm(p).float().mean() + model.mlp_t_bfm(n).float().mean()
        out.backward()

    def leaf(emb, cls):
        return cls(*(t.float().detach().requires_grad_() if t.is_floating_point() else t
                     for t in emb.state().values()))

    def losses():
        img, txt = leaf(img0, ImageEmbeddings), leaf(txt0, TextEmbeddings)
        with autocast():
            terms = compute_losses(model, img, txt, batch["labels"], batch["image_index"],
                                   step.losses, MatchingConfig.of(cfg.train))
        sum(terms.values()).backward()

    times["cnn"] = best_of(cnn, args.repeat)
    times["image heads"] = best_of(image_path, args.repeat) - times["cnn"]
    times["text"] = best_of(text, args.repeat)
    times["mlps"] = best_of(mlps, args.repeat)
    times["losses"] = best_of(losses, args.repeat)

    def opt():
        optimizer.zero_grad(set_to_none=False)
        optimizer.step()

    optimizer.zero_grad()
    losses()  # grads exist for the step
    times["optimizer"] = best_of(opt, args.repeat)

    def iteration():
        b = load_batch()
        with autocast():
            terms = step_module(b, step.losses, with_parts)
        optimizer.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        optimizer.step()

    times["step 2 iteration"] = best_of(iteration, args.repeat)
    return {"config": cfg.name, "batch": args.batch, "precision": args.precision,
            "image": [cfg.data.height, cfg.data.width], "backbone": cfg.model.backbone,
            "frozen_stages": cfg.model.frozen_stages, "threads": torch.get_num_threads(),
            "ms": {k: round(1000 * v, 1) for k, v in times.items()},
            "step2_over_cnn": round(times["step 2 iteration"] / times["cnn"], 2),
            "allocator": "kept" if keep_freed_memory() else "system"}


def main() -> None:
    keep_freed_memory()  # as mia train does (mia.utils.memory; MIA_MALLOC=system: not)
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="recipes/cuhk_small_cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--ids", type=int, default=40, help="synthetic identities generated")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, as mia train --set (repeatable)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.precision == "bf16":
        native, why = bf16_native(torch.device("cpu"))
        if not native:
            raise SystemExit(f"--precision bf16: {why} (emulated there, hours per run)")
    result = measure(args)
    result["machine"] = machine_line()
    if args.json:
        print(json.dumps(result))
        return
    print(result["machine"])
    print(f"{result['config']}{' ' + ' '.join(args.set) if args.set else ''}: {result['backbone']} at {result['image'][0]}x"
          f"{result['image'][1]}, frozen stages {result['frozen_stages']}, batch "
          f"{result['batch']}, {result['precision']}, {result['threads']} threads")
    parts = {k: v for k, v in result["ms"].items() if k != "step 2 iteration"}
    total = result["ms"]["step 2 iteration"]
    for name, ms in parts.items():
        print(f"  {name:<14} {ms:8.1f} ms  {100 * ms / total:5.1f}%")
    print(f"  {'sum of parts':<14} {sum(parts.values()):8.1f} ms")
    print(f"  {'iteration':<14} {total:8.1f} ms  ({args.batch / total * 1000:.1f} pairs/s)")
    print(f"step 2 / trained CNN stages (forward + backward): {result['step2_over_cnn']}x "
          "(target <= 1.5x)")


if __name__ == "__main__":
    main()
