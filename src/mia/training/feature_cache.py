"""The frozen-feature caches (``train.feature_cache_mb``, ``model.frozen_stages``): the
outputs of the CNN stages a step does not train, computed once per (image, mirrored) and
reused every epoch.

Everything about them lives here: the cache itself (:class:`FrozenFeatureCache`), what
its entries depend on (:func:`stages_fingerprint`), the caches a run and each of its steps
keep (:func:`run_wide_cache`, :func:`own_cache_mb`, :func:`step_cache`), how a step reads
its features through them (:func:`frozen_features`), and the run-wide cache's life in
``RUN/cache/`` (:class:`RunFeatureCache`: read back on ``--resume``, kept up to date by
:class:`FeatureCacheKeeper`, removed when the run finishes). The trainer and the training
step only call these; no other module reads or writes ``RUN/cache/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mia.config import Config
from mia.model.mia import MIA
from mia.training.hooks import Hook
from mia.utils.io import atomic_torch_save, remove_stale_temporaries

if TYPE_CHECKING:
    from mia.training.trainer import Trainer

log = logging.getLogger(__name__)


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
    on disk across restarts (:meth:`save`, :meth:`load`).

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
        """Write the entries (atomically) for a later process of the same run (--resume)."""
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


# --- the caches of a run and of its steps ----------------------------------------------------

def run_wide_cache(frozen_stages: int, budget_mb: float) -> FrozenFeatureCache | None:
    """The cache of the stages that never train (``model.frozen_stages``), computed once
    for the whole run; None without such stages or without a budget."""
    return FrozenFeatureCache(frozen_stages, budget_mb) if frozen_stages and budget_mb > 0 \
        else None


def own_cache_mb(budget_mb: float, epochs: int, pairs) -> float:
    """Memory for a step's own cache (the stages it freezes after the run-wide ones), of
    ``epochs`` over ``pairs`` (their ``image_of``: each pair's image). It pays only where
    an image comes back within the step: a step that draws each image about once (one
    epoch, one caption per image, as on cuhk-weak) would fill the budget that the run-wide
    cache needs with entries hardly ever read (docs/EXPERIMENTS.md)."""
    images = len(set(pairs.image_of))
    draws = epochs * len(pairs) / max(images, 1)
    return budget_mb if draws >= 2 else 0.0


def step_cache(frozen_depth: int, cache_mb: float,
               shared: FrozenFeatureCache | None) -> FrozenFeatureCache | None:
    """A step's own cache of CNN stages up to ``frozen_depth`` after the run-wide ones
    (``shared``), within ``cache_mb`` shared with them; None when the step freezes no stage
    beyond them or has no budget. The run-wide cache then counts this one in its budget
    (and no longer the last step's, which is gone)."""
    base = shared.depth if shared is not None else 0
    cache = (FrozenFeatureCache(frozen_depth, cache_mb, start=base,
                                pool=(shared,) if shared else ())
             if frozen_depth > base and cache_mb > 0 else None)
    if shared is not None:  # one budget for both; the last step's cache is gone
        shared.pool = (cache,) if cache is not None else ()
    return cache


def frozen_features(model: MIA, batch: dict[str, Tensor],
                    caches: tuple[FrozenFeatureCache | None, ...]) -> tuple[Tensor, int]:
    """The batch's images through the cached frozen stages, in order (the run-wide cache,
    then the step's own), and the first stage still to compute."""
    images, start = batch["images"], 0
    for cache in caches:
        if cache is not None:
            images = cache.features(model, images, batch["image_index"], batch["flips"])
            start = cache.depth
    return images, start


# --- the run-wide cache on disk (RUN/cache/) -------------------------------------------------

class FeatureCacheKeeper(Hook):
    """Keeps the run-wide cache of the never-trained CNN stages on disk, so that a run
    resumed in another process reads it instead of computing it again: written
    (atomically) after an epoch in which it grew; the run removes it when it finishes."""

    def __init__(self, cache, path, fingerprint: str):
        self.cache, self.path, self.fingerprint = cache, path, fingerprint
        self.saved = len(cache.entries)
        self.failed = False
        if remove_stale_temporaries(path):  # a process killed while it wrote the cache
            log.info("%s: removed the temporary file of an interrupted write", path.parent)

    def after_epoch(self, trainer, record):
        if self.failed or len(self.cache.entries) <= self.saved:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.cache.save(self.path, self.fingerprint)
        except OSError as exc:  # the cache only saves time: training goes on without it
            self.failed = True
            log.warning("%s: could not be saved (%s); training goes on, and a resumed run "
                        "computes the frozen stages again", self.path, exc)
            return
        self.saved = len(self.cache.entries)


class RunFeatureCache:
    """RUN/cache/frozen-stages-RANK.pt: the run-wide cache of one process across restarts.

    :meth:`open` (at the run's start) fingerprints the frozen stages and what their output
    depends on, and reads the file back when the run resumes; :meth:`keeper` is the hook
    that keeps it up to date while the run trains; :meth:`finish` removes it once the run
    has finished (nothing will resume it)."""

    def __init__(self, cache: FrozenFeatureCache, path: Path, fingerprint: str,
                 read: int = 0):
        self.cache, self.path, self.fingerprint = cache, path, fingerprint
        self.read = read  # entries read back from an earlier process

    @classmethod
    def open(cls, trainer: Trainer, run_path: Path, cfg: Config, *, train_data: str,
             precision: str, device: str, rank: int, resume: bool) -> RunFeatureCache | None:
        """The trainer's run-wide cache (None when it has none) tied to its file:
        ``train_data`` is the training split's content hash, ``precision`` the resolved
        precision, ``device`` the device type; a resumed run (``resume``) reads back what
        an earlier process of it saved, if the fingerprint still matches."""
        cache = trainer.shared_cache
        if cache is None:
            return None
        fingerprint = stages_fingerprint(
            trainer.model, cache.depth, train_data=train_data, height=cfg.data.height,
            width=cfg.data.width, precision=precision, device=device,
            channels_last=cfg.train.channels_last, backbone=cfg.model.backbone)
        path = run_path / "cache" / f"frozen-stages-{rank}.pt"
        return cls(cache, path, fingerprint,
                   read=cache.load(path, fingerprint) if resume else 0)

    def keeper(self) -> FeatureCacheKeeper:
        """The hook that saves the cache after an epoch in which it grew."""
        return FeatureCacheKeeper(self.cache, self.path, self.fingerprint)

    def finish(self) -> None:
        """The run has finished: nothing will resume it, so its cache goes."""
        self.path.unlink(missing_ok=True)
