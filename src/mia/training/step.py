"""One training batch -> named loss terms. This is the module DistributedDataParallel
wraps, so the model itself stays free of loss logic."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mia.model.mia import MIA
from mia.training.distributed import DistContext, gather_batch
from mia.training.objectives import MatchingConfig, compute_losses

TEXT_KEYS = ("tokens", "lengths", "pieces", "piece_words")
PHRASE_KEYS = ("phrase_starts", "phrase_lengths", "phrase_mask")


class FrozenFeatureCache:
    """Outputs of the CNN stages that do not train in this step, per (image, mirrored),
    computed once and reused every epoch of the step.

    Frozen stages are in eval mode (fixed BatchNorm statistics), so their output depends on
    the image alone and the cache changes nothing but the time. Entries keep the dtype they
    were computed in (bfloat16 under bf16 autocast); beyond ``max_mb`` nothing more is kept.
    """

    def __init__(self, depth: int, max_mb: float):
        self.depth, self.max_bytes = depth, max_mb * 2**20
        self.entries: dict[tuple[int, bool], Tensor] = {}
        self.bytes = 0

    @torch.no_grad()
    def features(self, model: MIA, images: Tensor, image_index: Tensor,
                 flips: Tensor) -> Tensor:
        """The first ``depth`` stages' output for a batch [B, C, h, w]."""
        keys = list(zip(image_index.tolist(), flips.tolist()))
        missing = [b for b, k in enumerate(keys) if k not in self.entries]
        if missing:
            fresh = model.image_encoder.backbone_stages(images[missing], 0, self.depth)
            for b, feat in zip(missing, fresh):
                if self.bytes + feat.nbytes <= self.max_bytes:
                    self.entries[keys[b]] = feat.clone()
                    self.bytes += feat.nbytes
            if len(missing) == len(keys):
                return fresh
            by_row = dict(zip(missing, fresh))
            return torch.stack([by_row[b] if b in by_row else self.entries[k]
                                for b, k in enumerate(keys)])
        return torch.stack([self.entries[k] for k in keys])


class TrainingStep(nn.Module):
    def __init__(self, model: MIA, matching: MatchingConfig, ctx: DistContext,
                 frozen_depth: int = 0, cache_mb: float = 0):
        super().__init__()
        self.model, self.matching, self.ctx = model, matching, ctx
        self.cache = (FrozenFeatureCache(frozen_depth, cache_mb)
                      if frozen_depth and cache_mb > 0 else None)

    def forward(self, batch: dict[str, Tensor], losses: dict[str, float],
                with_parts: bool) -> dict[str, Tensor]:
        images, start = batch["images"], 0
        if self.cache is not None:
            images = self.cache.features(self.model, images, batch["image_index"],
                                         batch["flips"])
            start = self.cache.depth
        img = self.model.encode_images(images, with_parts=with_parts, start_stage=start)
        keys = TEXT_KEYS + (PHRASE_KEYS if with_parts else ())
        txt = self.model.encode_texts(**{k: batch[k] for k in keys if k in batch})
        labels, image_index = batch["labels"], batch["image_index"]
        if self.ctx.enabled:  # every rank scores the whole global batch
            img, txt, labels, image_index = gather_batch(self.ctx, img, txt, labels,
                                                         image_index)
        return compute_losses(self.model, img, txt, labels, image_index, losses,
                              self.matching)
