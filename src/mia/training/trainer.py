"""Step training (paper Sec. III-B.2): the steps of the config run in order, each with its
own trainable parameter groups, losses, optimizer and schedule."""

from __future__ import annotations

import logging
import time
from collections import defaultdict

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from mia.config import Config, StepConfig
from mia.data.loading import TrainPairs, UniqueImageBatchSampler, collate_pairs
from mia.model.mia import MIA, PARAMETER_GROUPS
from mia.training.distributed import DistContext
from mia.training.feature_cache import own_cache_mb, run_wide_cache
from mia.training.hooks import Hook, finite_or_raise
from mia.training.objectives import MatchingConfig, needs
from mia.training.step import TrainingStep
from mia.utils.device import AUTOCAST_DTYPES, resolve_precision
from mia.utils.errors import DatasetError

log = logging.getLogger(__name__)


def set_trainable(model: MIA, groups: list[str]) -> list[torch.nn.Parameter]:
    """Unfreeze exactly ``groups``; frozen modules go to eval mode (BatchNorm statistics
    stay fixed). Returns the trainable parameters."""
    model.train()
    for p in model.parameters():
        p.requires_grad_(False)
    params = []
    for group in PARAMETER_GROUPS:
        if group in groups:
            for p in model.group_parameters(group):
                p.requires_grad_(True)
                params.append(p)
        else:
            for module in model.group_modules(group):
                module.eval()
    for module in model.frozen_modules():
        module.eval()
    frozen = {id(p) for p in model.always_frozen()}
    for p in params:
        if id(p) in frozen:
            p.requires_grad_(False)
    return [p for p in params if id(p) not in frozen]


class Trainer:
    def __init__(self, config: Config, model: MIA, pairs: TrainPairs,
                 sampler: UniqueImageBatchSampler, hooks: list[Hook], *, num_classes: int,
                 vocab_fingerprint: str, device: torch.device, progress: bool = True,
                 ctx: DistContext = DistContext(), precision: str | None = None):
        """``precision``: the resolved training precision (fp32/bf16/fp16), as
        launch.train resolved ``train.precision``; None resolves it here."""
        self.config, self.model, self.pairs, self.sampler = config, model, pairs, sampler
        self.hooks, self.device, self.ctx = hooks, device, ctx
        self.progress = progress and ctx.is_main
        if precision is None:
            precision = resolve_precision(config.train.precision, device)[0]
        self.precision = precision
        self.autocast_dtype = AUTOCAST_DTYPES[precision]
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.channels_last = config.train.channels_last
        self.step_module: torch.nn.Module | None = None
        self.num_classes, self.vocab_fingerprint = num_classes, vocab_fingerprint
        self.steps = list(config.steps.items())
        self.optimizer = self.scheduler = None
        self.best: dict | None = None
        self.history: list[dict] = []
        self.position = {"step": 0, "epoch": 0}
        self.global_iteration = 0
        # the output of the stages that never train, computed once for the whole run
        self.shared_cache = run_wide_cache(model.config.frozen_stages,
                                           config.train.feature_cache_mb)

    @property
    def is_last_step(self) -> bool:
        return self.position["step"] >= len(self.steps) - 1

    def _own_cache_mb(self, step: StepConfig) -> float:
        """Memory for the step's own cache (:func:`.feature_cache.own_cache_mb`)."""
        return own_cache_mb(self.config.train.feature_cache_mb, step.epochs, self.pairs)

    def _make_optimizer(self, step: StepConfig) -> None:
        params = set_trainable(self.model, step.train)
        self.optimizer = torch.optim.Adam(self._param_groups(params, step.lr), lr=step.lr,
                                          weight_decay=step.weight_decay)
        trains_cnn = "backbone" in step.train
        depth = (self.model.config.frozen_stages if trains_cnn
                 else self.model.image_encoder.num_stages())
        self.step_module = TrainingStep(self.model, MatchingConfig.of(self.config.train), self.ctx,
                                        frozen_depth=depth,
                                        cache_mb=self._own_cache_mb(step),
                                        erasing=self.config.train.erasing,
                                        label_smoothing=self.config.train.label_smoothing,
                                        weak_weight=self.config.train.weak_weight,
                                        drop_hardest=self.config.train.drop_hardest,
                                        drop_warmup=self.config.train.drop_hardest_warmup,
                                        shared_cache=self.shared_cache)
        if self.ctx.enabled:  # new wrapper per step: the trainable parameters changed
            from torch.nn.parallel import DistributedDataParallel

            self.step_module = DistributedDataParallel(
                self.step_module, device_ids=[self.ctx.local_rank]
                if self.device.type == "cuda" else None, find_unused_parameters=True)
        self.scheduler = (torch.optim.lr_scheduler.StepLR(self.optimizer, step.lr_step,
                                                          step.lr_gamma)
                          if step.lr_step else None)

    def _param_groups(self, params: list, lr: float) -> list[dict]:
        """The step's parameters, with the pretrained MiniLM layers that fine-tune at
        ``train.minilm_lr_scale`` times the step's learning rate."""
        pretrained = {id(p) for name, p in self.model.named_parameters()
                      if name.startswith("text_encoder.minilm.")}
        groups = [{"params": [p for p in params if id(p) not in pretrained]},
                  {"params": [p for p in params if id(p) in pretrained],
                   "lr": lr * self.config.train.minilm_lr_scale}]
        return [g for g in groups if g["params"]]

    def restore(self, state: dict) -> None:
        """Continue from a checkpoint written by the Checkpointer."""
        self.model.load_state_dict(state["model"])
        self.best, self.history = state.get("best"), list(state.get("history", []))
        self.position = dict(state["position"])
        if state.get("scaler") and self.scaler.is_enabled():  # fp16: the same loss scale
            self.scaler.load_state_dict(state["scaler"])
        self.global_iteration = sum(h.get("iterations", 0) for h in self.history)
        s = self.position["step"]
        if s < len(self.steps) and self.position["epoch"] > 0:  # mid-step: same optimizer
            self._make_optimizer(self.steps[s][1])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None and state.get("scheduler"):
                self.scheduler.load_state_dict(state["scheduler"])

    def fit(self) -> list[dict]:
        try:
            while self.position["step"] < len(self.steps):
                s = self.position["step"]
                name, step = self.steps[s]
                if self.position["epoch"] == 0 or self.optimizer is None:
                    self._make_optimizer(step)
                while self.position["epoch"] < step.epochs:
                    self._epoch(s, name, step)
                self.position = {"step": s + 1, "epoch": 0}
                self.optimizer = self.scheduler = None
                for hook in self.hooks:
                    hook.after_step(self, name)
        finally:
            for hook in self.hooks:
                hook.close()
        return self.history

    def _epoch(self, s: int, name: str, step: StepConfig) -> None:
        epoch = self.position["epoch"]
        set_trainable(self.model, step.train)  # restore train/eval modes after validation
        # torch's own generator (random erasing, the loader's worker seeds) is keyed by the
        # epoch too, as the sampler and flips are, so a resumed run draws what an
        # uninterrupted one does
        torch.manual_seed(hash((self.config.train.seed, s, epoch, self.ctx.rank)) & 0xFFFFFFFF)
        self.sampler.set_epoch(s, epoch)
        self.pairs.set_epoch(s, epoch)
        getattr(self.step_module, "module", self.step_module).set_epoch(epoch)  # DDP or not
        loader = DataLoader(self.pairs, batch_sampler=self.sampler, collate_fn=collate_pairs,
                            num_workers=self.config.data.workers,
                            pin_memory=self.device.type == "cuda")
        with_parts, _ = needs(step.losses)
        sums: dict[str, float] = defaultdict(float)
        started, iterations, pairs = time.time(), 0, 0
        bar = tqdm(loader, desc=f"{name} epoch {epoch + 1}/{step.epochs}", unit="batch",
                   disable=not self.progress, leave=False)
        for iterations, batch in enumerate(bar, 1):
            if "error" in batch:
                raise DatasetError(f"{batch['error']} (read at {name}, epoch {epoch + 1}; "
                                   "did the file change after the decode check?)")
            terms = self._train_iteration(batch, step, with_parts,
                                          f"step '{name}', epoch {epoch + 1}, "
                                          f"iteration {iterations}")
            for key, value in terms.items():
                sums[key] += value
            pairs += len(batch["labels"]) * self.ctx.world  # ~ the global batch (shares differ by <= 1)
            self.global_iteration += 1
            bar.set_postfix(loss=f"{sum(terms.values()):.3f}")
            record = {"type": "iteration", "step": name, "epoch": epoch + 1,
                      "iteration": iterations, "global_iteration": self.global_iteration,
                      "lr": self.optimizer.param_groups[0]["lr"], "losses": terms}
            for hook in self.hooks:
                hook.after_iteration(self, record)
        bar.close()
        if self.scheduler is not None:
            self.scheduler.step()
        self.position = {"step": s, "epoch": epoch + 1}
        record = {"type": "epoch", "step": name, "epoch": epoch + 1,
                  "global_epoch": len(self.history) + 1, "iterations": iterations,
                  "seconds": round(time.time() - started, 2),
                  "pairs_per_second": round(pairs / max(time.time() - started, 1e-9), 1),
                  "losses": {k: v / max(iterations, 1) for k, v in sums.items()}}
        self.history.append(record)
        for hook in self.hooks:  # validation, then logging, then checkpoints
            hook.after_epoch(self, record)
        losses = ", ".join(f"{k} {v:.4f}" for k, v in record["losses"].items())
        log.info("%s epoch %d/%d: %s (%.1fs)", name, epoch + 1, step.epochs, losses,
                 record["seconds"])

    def _train_iteration(self, batch: dict, step: StepConfig, with_parts: bool,
                         where: str) -> dict[str, float]:
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        if self.channels_last:
            batch["images"] = batch["images"].contiguous(memory_format=torch.channels_last)
        dtype = self.autocast_dtype
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            terms = self.step_module(batch, step.losses, with_parts)
        finite_or_raise(terms, where)
        loss = sum(terms.values())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.train.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(
                [p for g in self.optimizer.param_groups for p in g["params"]],
                self.config.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {k: float(v.detach()) for k, v in terms.items()}
