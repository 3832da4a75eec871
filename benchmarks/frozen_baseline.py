"""The frozen baseline of the real-data issue: ImageNet CNN features + a pretrained sentence
encoder, both frozen, and two linear maps into a joint space learned on the training ids.

MIA has to beat this by a wide margin to be worth training. It also calibrates a small
validation split against a larger test split: the same baseline measured on both tells
how R@K scales with the gallery.

    python benchmarks/frozen_baseline.py --data /path/to/cuhk-dev [--split val]

Image features: EfficientNet-Lite0 (ImageNet, from its wheel) at 256x96, global mean pool
(1280-d), averaged with the mirrored image. Text features: all-MiniLM-L6-v2 mean pooled
(384-d). Maps: linear, 512-d, trained with a symmetric InfoNCE loss (temperature 0.05,
negatives = other identities in the batch) for 60 epochs; every number is printed with the
data it comes from.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from common import machine_line
from mia.data.images import load_image, normalize, to_pixels
from mia.data.reader import open_dataset
from mia.evaluation.metrics import rank_metrics
from mia.model.backbones import build_backbone
from mia.model.minilm import MiniLM, wordpieces
from mia.model.pretrained import load_backbone_weights
from mia.text.phrases import parse_caption


@torch.no_grad()
def image_features(dataset, records, size=(256, 96), batch=64) -> torch.Tensor:
    net, _ = build_backbone("efficientnet_lite0")
    load_backbone_weights(net, "efficientnet_lite0", "imagenet")
    net.eval()
    out = []
    for start in range(0, len(records), batch):
        x = torch.stack([normalize(to_pixels(load_image(dataset.image_path(r)), size))
                         for r in records[start:start + batch]])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            f = net(x).float().mean((2, 3)) + net(x.flip(-1)).float().mean((2, 3))
        out.append(f / 2)
    return torch.cat(out)


@torch.no_grad()
def text_features(texts: list[str], batch=64) -> torch.Tensor:
    lm = MiniLM()
    lm.load_pretrained()
    lm.eval()
    out = []
    for start in range(0, len(texts), batch):
        enc = [wordpieces(parse_caption(t).tokens) for t in texts[start:start + batch]]
        width = max(len(ids) for ids, _ in enc)
        pieces = torch.zeros(len(enc), width, dtype=torch.long)
        for b, (ids, _) in enumerate(enc):
            pieces[b, :len(ids)] = torch.tensor(ids)
        states = lm._states(pieces)
        mask = (pieces > 0).float()[..., None]
        out.append((states * mask).sum(1) / mask.sum(1))
    return torch.cat(out)


def train_maps(img, txt, img_of_txt, labels, dim=512, epochs=60, batch=128, seed=0):
    torch.manual_seed(seed)
    wi, wt = torch.nn.Linear(img.shape[1], dim), torch.nn.Linear(txt.shape[1], dim)
    opt = torch.optim.Adam([*wi.parameters(), *wt.parameters()], lr=1e-3, weight_decay=1e-4)
    img_n, txt_n = F.normalize(img, dim=1), F.normalize(txt, dim=1)
    for _ in range(epochs):
        for idx in torch.randperm(len(txt)).split(batch):
            a = F.normalize(wt(txt_n[idx]), dim=1)
            b = F.normalize(wi(img_n[img_of_txt[idx]]), dim=1)
            logits = a @ b.T / 0.05
            same = labels[idx][:, None] == labels[idx][None, :]
            logits = logits.masked_fill(same & ~torch.eye(len(idx), dtype=torch.bool), -1e4)
            target = torch.arange(len(idx))
            loss = F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return wi, wt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    ds = open_dataset(args.data)
    train, evaluated = ds.split("train"), ds.split(args.split)
    started = time.time()
    records = train + evaluated
    feats = image_features(ds, records)
    texts = [c for r in records for c in r.captions]
    tfeats = text_features(texts)
    owner = torch.tensor([i for i, r in enumerate(records) for _ in r.captions])
    n_train_caps = sum(len(r.captions) for r in train)
    pid = {p: k for k, p in enumerate(sorted({r.person_id for r in train}))}
    labels = torch.tensor([pid[records[i].person_id] for i in owner[:n_train_caps].tolist()])
    print(f"{machine_line()}\nfeatures: {len(records)} images, {len(texts)} captions "
          f"({time.time() - started:.0f} s)")
    q_pids = [records[i].person_id for i in owner[n_train_caps:].tolist()]
    g_pids = [r.person_id for r in evaluated]
    for seed in args.seeds:
        wi, wt = train_maps(feats[:len(train)], tfeats[:n_train_caps], owner[:n_train_caps],
                            labels, seed=seed)
        with torch.no_grad():
            g = F.normalize(wi(F.normalize(feats[len(train):], dim=1)), dim=1)
            q = F.normalize(wt(F.normalize(tfeats[n_train_caps:], dim=1)), dim=1)
        m = rank_metrics(q @ g.T, q_pids, g_pids)
        print(f"frozen baseline, {args.data} {args.split} split ({len(q_pids)} queries x "
              f"{len(g_pids)} images), seed {seed}: R@1 {m['R1']:.2f}  R@5 {m['R5']:.2f}  "
              f"R@10 {m['R10']:.2f}  mAP {m['mAP']:.2f}")


if __name__ == "__main__":
    main()
