"""One training batch -> named loss terms. This is the module DistributedDataParallel
wraps, so the model itself stays free of loss logic."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mia.model.mia import MIA
from mia.training.distributed import DistContext, gather_batch
from mia.training.objectives import MatchingConfig, compute_losses, pair_weights

TEXT_KEYS = ("tokens", "lengths", "pieces", "piece_words")
PHRASE_KEYS = ("phrase_starts", "phrase_lengths", "phrase_mask")


class FrozenFeatureCache:
    """Outputs of the CNN stages that do not train in this step, per (image, mirrored),
    computed once and reused every epoch of the step.

    Frozen stages are in eval mode (fixed BatchNorm statistics), so their output depends on
    the image alone and the cache changes nothing but the time. Entries keep the dtype they
    were computed in (bfloat16 under bf16 autocast); beyond ``max_mb``, counted together
    with the caches in ``pool`` (which share one budget), nothing more is kept.

    The stages that never train (model.frozen_stages) have one cache for the whole run
    (their output is the same in every step); a step that freezes more of the CNN (steps 1
    and 3) adds one for the stages after them, fed from the first.
    """

    def __init__(self, depth: int, max_mb: float, start: int = 0,
                 pool: tuple[FrozenFeatureCache, ...] = ()):
        self.start, self.depth, self.max_bytes = start, depth, max_mb * 2**20
        self.pool = pool
        self.entries: dict[tuple[int, bool], Tensor] = {}
        self.bytes = 0

    @torch.no_grad()
    def features(self, model: MIA, images: Tensor, image_index: Tensor,
                 flips: Tensor) -> Tensor:
        """Stages ``start`` .. ``depth`` of a batch [B, C, h, w] (``images``: the output of
        the first ``start`` stages)."""
        keys = list(zip(image_index.tolist(), flips.tolist()))
        missing = [b for b, k in enumerate(keys) if k not in self.entries]
        if missing:
            fresh = model.image_encoder.backbone_stages(images[missing], self.start,
                                                        self.depth)
            used = self.bytes + sum(c.bytes for c in self.pool)
            for b, feat in zip(missing, fresh):
                if used + feat.nbytes <= self.max_bytes:
                    used += feat.nbytes
                    self.entries[keys[b]] = feat.clone()
                    self.bytes += feat.nbytes
            if len(missing) == len(keys):
                return fresh
            by_row = dict(zip(missing, fresh))
            return torch.stack([by_row[b] if b in by_row else self.entries[k]
                                for b, k in enumerate(keys)])
        return torch.stack([self.entries[k] for k in keys])


def random_erasing(x: Tensor, p: float, area: tuple[float, float] = (0.02, 0.4),
                   aspect: tuple[float, float] = (0.3, 3.3)) -> Tensor:
    """Random erasing (Zhong et al., AAAI 2020) of a batch [B, C, H, W]: with probability
    ``p`` each sample gets one rectangle of ``area`` x its size and ``aspect`` (height /
    width, log-uniform) set to zero (the mean pixel after normalisation). Works on images
    and on a feature cache's maps alike (feature-level augmentation), which keeps the
    cache of unchanging first-stage outputs usable."""
    if p <= 0:
        return x
    b, _, h, w = x.shape
    keep = torch.ones(b, 1, h, w, dtype=x.dtype, device=x.device)
    chosen = torch.rand(b) < p
    areas = torch.empty(b).uniform_(*area) * h * w
    ratios = torch.exp(torch.empty(b).uniform_(*(torch.log(torch.tensor(aspect)).tolist())))
    for i in torch.nonzero(chosen).flatten().tolist():
        eh = min(h, max(1, round((areas[i] * ratios[i]).sqrt().item())))
        ew = min(w, max(1, round((areas[i] / ratios[i]).sqrt().item())))
        top = int(torch.randint(0, h - eh + 1, ()))
        left = int(torch.randint(0, w - ew + 1, ()))
        keep[i, :, top:top + eh, left:left + ew] = 0
    return x * keep


class TrainingStep(nn.Module):
    def __init__(self, model: MIA, matching: MatchingConfig, ctx: DistContext,
                 frozen_depth: int = 0, cache_mb: float = 0, erasing: float = 0.0,
                 label_smoothing: float = 0.0, weak_weight: float = 1.0,
                 drop_hardest: float = 0.0, shared_cache: FrozenFeatureCache | None = None):
        """``shared_cache``: the run's cache of the never-trained stages (kept across
        steps); this step's own cache then covers only the stages after it."""
        super().__init__()
        self.model, self.matching, self.ctx = model, matching, ctx
        self.erasing, self.label_smoothing = erasing, label_smoothing
        self.weak_weight, self.drop_hardest = weak_weight, drop_hardest
        self.shared = shared_cache
        base = shared_cache.depth if shared_cache is not None else 0
        self.cache = (FrozenFeatureCache(frozen_depth, cache_mb, start=base,
                                         pool=(shared_cache,) if shared_cache else ())
                      if frozen_depth > base and cache_mb > 0 else None)
        if shared_cache is not None:  # one budget for both; the last step's cache is gone
            shared_cache.pool = (self.cache,) if self.cache is not None else ()

    def forward(self, batch: dict[str, Tensor], losses: dict[str, float],
                with_parts: bool) -> dict[str, Tensor]:
        images, start = batch["images"], 0
        if self.shared is not None:
            images = self.shared.features(self.model, images, batch["image_index"],
                                          batch["flips"])
            start = self.shared.depth
        if self.cache is not None:
            images = self.cache.features(self.model, images, batch["image_index"],
                                         batch["flips"])
            start = self.cache.depth
        images = random_erasing(images, self.erasing)
        img = self.model.encode_images(images, with_parts=with_parts, start_stage=start)
        keys = TEXT_KEYS + (PHRASE_KEYS if with_parts else ())
        txt = self.model.encode_texts(**{k: batch[k] for k in keys if k in batch})
        labels, image_index = batch["labels"], batch["image_index"]
        weight = pair_weights(batch.get("weak"), self.weak_weight, labels.device)
        if self.ctx.enabled:  # every rank scores the whole global batch
            if weight is None:  # all ranks gather the same tensors
                weight = torch.ones(len(labels), device=labels.device)
            img, txt, labels, image_index, weight = gather_batch(self.ctx, img, txt, labels,
                                                                 image_index, weight)
        return compute_losses(self.model, img, txt, labels, image_index, losses,
                              self.matching, self.label_smoothing, weight, self.drop_hardest)
