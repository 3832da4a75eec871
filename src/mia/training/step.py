"""One training batch -> named loss terms. This is the module DistributedDataParallel
wraps, so the model itself stays free of loss logic."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mia.model.mia import MIA
from mia.training.distributed import DistContext, gather_batch
from mia.training.feature_cache import FrozenFeatureCache, frozen_features, step_cache
from mia.training.objectives import MatchingConfig, compute_losses, pair_weights

TEXT_KEYS = ("tokens", "lengths", "pieces", "piece_words")
PHRASE_KEYS = ("phrase_starts", "phrase_lengths", "phrase_mask")


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
                 drop_hardest: float = 0.0, drop_warmup: int = 0,
                 shared_cache: FrozenFeatureCache | None = None):
        """``shared_cache``: the run's cache of the never-trained stages (kept across
        steps); this step's own cache then covers only the stages after it.
        ``drop_hardest`` applies from the step's epoch ``drop_warmup`` (0-based) on
        (:meth:`set_epoch`)."""
        super().__init__()
        self.model, self.matching, self.ctx = model, matching, ctx
        self.erasing, self.label_smoothing = erasing, label_smoothing
        self.weak_weight, self.drop_fraction, self.drop_warmup = (weak_weight, drop_hardest,
                                                                  drop_warmup)
        self.set_epoch(0)  # sets drop_hardest
        self.shared = shared_cache
        self.cache = step_cache(frozen_depth, cache_mb, shared_cache)

    def set_epoch(self, epoch: int) -> None:
        """No pair is dropped in the step's first ``drop_warmup`` epochs."""
        self.drop_hardest = self.drop_fraction if epoch >= self.drop_warmup else 0.0

    def forward(self, batch: dict[str, Tensor], losses: dict[str, float],
                with_parts: bool) -> dict[str, Tensor]:
        images, start = frozen_features(self.model, batch, (self.shared, self.cache))
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
