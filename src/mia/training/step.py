"""One training batch -> named loss terms. This is the module DistributedDataParallel
wraps, so the model itself stays free of loss logic."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch
from torch import Tensor, nn

from mia.model.mia import MIA
from mia.training.distributed import DistContext, gather_batch
from mia.training.objectives import MatchingConfig, compute_losses, pair_weights
from mia.utils.io import atomic_torch_save

log = logging.getLogger(__name__)

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
    and 3) adds one for the stages after them, fed from the first. The run-wide one is kept
    on disk between sessions (:meth:`save`, :meth:`load`).

    (Computing both mirrorings of an image at its first miss was tried and dropped: over
    three epochs that computes stages 1-4 twice per image, against about 1.75 times when
    each mirroring is computed as it is drawn; docs/EXPERIMENTS.md.)
    """

    def __init__(self, depth: int, max_mb: float, start: int = 0,
                 pool: tuple[FrozenFeatureCache, ...] = ()):
        self.start, self.depth, self.max_bytes = start, depth, max_mb * 2**20
        self.pool = pool
        self.entries: dict[tuple[int, bool], Tensor] = {}
        self.bytes = 0

    def _used(self) -> float:
        return self.bytes + sum(c.bytes for c in self.pool)

    def _keep(self, key: tuple[int, bool], feat: Tensor, used: float) -> float:
        if key not in self.entries and used + feat.nbytes <= self.max_bytes:
            self.entries[key] = feat.clone()
            self.bytes += feat.nbytes
            used += feat.nbytes
        return used

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
            used = self._used()
            for b, feat in zip(missing, fresh):
                used = self._keep(keys[b], feat, used)
            if len(missing) == len(keys):
                return fresh
            by_row = dict(zip(missing, fresh))
            return torch.stack([by_row[b] if b in by_row else self.entries[k]
                                for b, k in enumerate(keys)])
        return torch.stack([self.entries[k] for k in keys])

    def save(self, path: Path, fingerprint: str) -> None:
        """Write the entries (atomically) for a later session of the same run."""
        keys = sorted(self.entries)
        atomic_torch_save({"fingerprint": fingerprint, "depth": self.depth,
                           "keys": torch.tensor(keys, dtype=torch.int64).reshape(-1, 2),
                           "features": torch.stack([self.entries[k] for k in keys])
                           if keys else torch.empty(0)}, path)

    def load(self, path: Path, fingerprint: str) -> int:
        """Read what :meth:`save` wrote, if it was made by the same frozen stages from the
        same images (``fingerprint``); returns how many entries were read (0 when the file
        is absent, stale or unreadable: a cache is only ever a saving of time)."""
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            return 0
        except Exception as exc:  # truncated or foreign: recompute
            log.warning("%s: unreadable feature cache, recomputed (%s)", path,
                        " ".join(str(exc).split())[:120])
            return 0
        if not isinstance(saved, dict) or saved.get("fingerprint") != fingerprint \
                or saved.get("depth") != self.depth:
            log.info("%s: made by other frozen stages or images, recomputed", path)
            return 0
        used = self._used()
        for (index, flip), feat in zip(saved["keys"].tolist(), saved["features"]):
            used = self._keep((index, bool(flip)), feat, used)
        return len(self.entries)


def stages_fingerprint(model: MIA, depth: int, **context) -> str:
    """What the output of CNN stages 1..``depth`` depends on: their weights and buffers,
    and ``context`` (the images' identity and size, the precision, the device)."""
    from mia.model.backbones import stage_modules

    digest = hashlib.sha256(json.dumps(context, sort_keys=True, default=str).encode())
    encoder = model.image_encoder
    for stage in stage_modules(encoder.backbone, encoder.backbone_name)[:depth]:
        for name, tensor in stage.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
                          .tobytes())
    return digest.hexdigest()


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
        base = shared_cache.depth if shared_cache is not None else 0
        self.cache = (FrozenFeatureCache(frozen_depth, cache_mb, start=base,
                                         pool=(shared_cache,) if shared_cache else ())
                      if frozen_depth > base and cache_mb > 0 else None)
        if shared_cache is not None:  # one budget for both; the last step's cache is gone
            shared_cache.pool = (self.cache,) if self.cache is not None else ()

    def set_epoch(self, epoch: int) -> None:
        """No pair is dropped in the step's first ``drop_warmup`` epochs."""
        self.drop_hardest = self.drop_fraction if epoch >= self.drop_warmup else 0.0

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
