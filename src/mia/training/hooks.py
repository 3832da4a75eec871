"""Trainer hooks: logging (JSONL, TensorBoard), validation, checkpoints.

The training loop only calls ``hook.after_iteration`` / ``after_epoch`` / ``after_step``;
each concern lives in one hook, and evaluation never touches the optimizer.
"""

from __future__ import annotations

import json
import logging
import math
from typing import TYPE_CHECKING

import torch

from mia.artifacts.checkpoint import save_checkpoint
from mia.utils.io import atomic_write_text, remove_stale_temporaries

if TYPE_CHECKING:
    from mia.training.trainer import Trainer

log = logging.getLogger(__name__)


class Hook:
    def after_iteration(self, trainer: Trainer, record: dict) -> None: ...

    def after_epoch(self, trainer: Trainer, record: dict) -> None: ...

    def after_step(self, trainer: Trainer, step_name: str) -> None: ...

    def close(self) -> None: ...


class JsonlLogger(Hook):
    """Appends every iteration record (every ``every`` iterations) and epoch record."""

    def __init__(self, path, every: int = 10):
        self.path, self.every = path, every

    def keep_until(self, iterations: int, epochs: int) -> None:
        """Start from the checkpoint the run continues from: drop what a stopped process
        logged after it (a resumed run logs those iterations again; a new run in the same
        directory, all of it) and a line torn by the stop."""
        if not self.path.is_file():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()
        kept = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            if (record.get("type") == "iteration"
                    and record.get("global_iteration", 0) > iterations) or (
                    record.get("type") == "epoch" and record.get("global_epoch", 0) > epochs):
                continue
            kept.append(line)
        if len(kept) < len(lines):
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))
            log.info("%s: dropped %d records logged after the checkpoint", self.path,
                     len(lines) - len(kept))

    def _write(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def after_iteration(self, trainer, record):
        if record["iteration"] % self.every == 0:
            self._write(record)

    def after_epoch(self, trainer, record):
        self._write(record)


class TensorBoardLogger(Hook):
    """Scalars per iteration and per epoch; silently off when tensorboard is missing."""

    def __init__(self, log_dir):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # optional dependency
            log.info("tensorboard not installed: no TensorBoard events (pip install tensorboard)")
            self.writer = None
            return
        self.writer = SummaryWriter(str(log_dir))

    def after_iteration(self, trainer, record):
        if self.writer is not None:
            for key, value in record["losses"].items():
                self.writer.add_scalar(f"train/{key}", value, record["global_iteration"])
            self.writer.add_scalar("train/lr", record["lr"], record["global_iteration"])

    def after_epoch(self, trainer, record):
        if self.writer is None:
            return
        for gran, metrics in (record.get("val") or {}).items():
            for key in ("R1", "R5", "R10", "mAP"):
                self.writer.add_scalar(f"val/{gran}/{key}", metrics[key], record["global_epoch"])
        self.writer.flush()

    def close(self):
        if self.writer is not None:
            self.writer.close()


class Validator(Hook):
    """Evaluates on the validation split after every epoch and stores the result in the
    epoch record (``record["val"]``) before the checkpointer sees it."""

    def __init__(self, evaluate_fn):
        self.evaluate_fn = evaluate_fn

    def after_epoch(self, trainer, record):
        record["val"] = self.evaluate_fn(trainer.model)
        sel = trainer.config.eval.select
        gran, metric = sel.split(".")
        log.info("validation %s: %s", sel, f"{record['val'][gran][metric]:.2f}")


class Checkpointer(Hook):
    """last.pt every epoch; best.pt on a better validation metric in the last step;
    <step>.pt at the end of each step. All writes are atomic."""

    def __init__(self, run):
        self.run = run
        if remove_stale_temporaries(run.checkpoints / "*"):  # a process killed mid-write
            log.info("%s: removed the temporary files of interrupted writes", run.checkpoints)

    def _save(self, trainer, path):
        save_checkpoint(path, trainer.model, vocab_fingerprint=trainer.vocab_fingerprint,
                        num_classes=trainer.num_classes, position=trainer.position,
                        optimizer=trainer.optimizer, scheduler=trainer.scheduler,
                        extra={"best": trainer.best, "history": trainer.history,
                               "scaler": trainer.scaler.state_dict()})

    def after_epoch(self, trainer, record):
        sel = trainer.config.eval.select
        if trainer.is_last_step and "val" in record:
            gran, metric = sel.split(".")
            value = record["val"][gran][metric]
            if trainer.best is None or value > trainer.best["value"] or math.isnan(
                    trainer.best["value"]):
                trainer.best = {"value": value, "metric": sel, "step": record["step"],
                                "epoch": record["epoch"]}
                self._save(trainer, self.run.best)
        self.save_last(trainer)

    def save_last(self, trainer) -> None:
        self._save(trainer, self.run.last)

    def after_step(self, trainer, step_name):
        self._save(trainer, self.run.checkpoints / f"{step_name}.pt")


def finite_or_raise(terms: dict[str, torch.Tensor], where: str) -> None:
    from mia.utils.errors import MiaError

    for name, value in terms.items():
        if not torch.isfinite(value).all():
            raise MiaError(f"training diverged at {where}: loss term '{name}' is "
                           f"{float(value.detach())}; the last good checkpoint is kept")
