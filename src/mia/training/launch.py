"""``mia train`` as a library function: prepare a run directory, build everything, train."""

from __future__ import annotations

import logging
import platform
from pathlib import Path

import torch

from mia import __version__
from mia.data.loading import TrainPairs, UniqueImageBatchSampler
from mia.data.pipeline import load_run_data
from mia.data.records import label_map
from mia.evaluation.encode import encode_captions, encode_gallery
from mia.evaluation.evaluate import EvalInputs, evaluate_scores, granularity_scores
from mia.model.mia import MIA
from mia.text.vocab import Vocabulary
from mia.training.checkpoint import check_compatible, load_checkpoint
from mia.training.config import Config, dump_yaml
from mia.training.device import check_precision, resolve_device
from mia.training.hooks import Checkpointer, JsonlLogger, TensorBoardLogger, Validator
from mia.training.run import RunDir
from mia.training.trainer import Trainer
from mia.utils.errors import CheckpointError, MiaError
from mia.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)


def prepare_run(run: RunDir, config: Config | None, resume: bool) -> Config:
    """The run's config: a new run saves it, a resumed run reads it back."""
    if resume:
        if not run.last.is_file():
            raise CheckpointError(f"--resume: {run.last} not found (nothing to resume)")
        saved = run.load_config()
        if config is not None and config.to_dict() != saved.to_dict():
            raise MiaError(f"--resume: {run.config} differs from the given config; resume "
                           "without --config/--set, or start a new run with another --out")
        return saved
    if run.last.is_file():
        raise MiaError(f"{run.path} already holds a trained run ({run.last}); use --resume "
                       "to continue it or choose another --out (nothing was overwritten)")
    if config is None:
        raise MiaError("--config is required for a new run")
    run.path.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.config, dump_yaml(config))
    return config


def train(config: Config | None, data_dir: str | Path, out: str | Path, *, resume: bool = False,
          format: str | None = None, skip_bad: bool = False, progress: bool = True,
          device: str | None = None) -> dict:
    """Train a run end to end; returns the run summary (also written to RUN/summary.json)."""
    run = RunDir(Path(out))
    cfg = prepare_run(run, config, resume)
    dev = resolve_device(device or cfg.train.device)
    check_precision(cfg.train.precision, dev)
    state = load_checkpoint(run.last, map_location=dev) if resume else None
    vocab = Vocabulary.load(run.vocab) if resume else None
    data = load_run_data(cfg.data, data_dir, format, skip_bad, vocab=vocab, progress=progress)
    train_records = data.dataset.split("train")
    labels = label_map(train_records)
    if not resume:
        data.vocab.save(run.vocab)
        atomic_write_json(run.meta, {
            "num_classes": len(labels), "data": str(Path(data_dir).resolve()),
            "format": data.dataset.format, "vocab_size": len(data.vocab),
            "vocab_fingerprint": data.vocab.fingerprint, "mia_version": __version__,
            "torch": torch.__version__, "python": platform.python_version()})
    torch.manual_seed(cfg.train.seed)
    model = MIA(cfg.model, len(data.vocab), len(labels))
    if not resume:
        model.load_pretrained_backbone()
    model.to(dev)
    pairs = TrainPairs(train_records, data.store, data.corpus, labels, flip=cfg.data.flip,
                       seed=cfg.train.seed)
    sampler = UniqueImageBatchSampler(
        pairs.image_of, cfg.train.batch_size, seed=cfg.train.seed,
        person_of=[r.person_id for r in (train_records[i] for i in pairs.image_of)],
        pk=tuple(cfg.train.pk) if cfg.train.sampler == "pk" else None)
    hooks = []
    if cfg.train.validate and "val" in data.dataset.splits:
        hooks.append(Validator(_validation_fn(cfg, data, dev)))
    elif cfg.train.validate:
        log.warning("no 'val' split: no validation; evaluate uses the last checkpoint")
    hooks += [JsonlLogger(run.log), TensorBoardLogger(run.path / "tb"), Checkpointer(run)]
    trainer = Trainer(cfg, model, pairs, sampler, hooks, num_classes=len(labels),
                      vocab_fingerprint=data.vocab.fingerprint, device=dev, progress=progress)
    if state is not None:
        check_compatible(state, run.last, cfg.model, data.vocab.fingerprint, len(data.vocab),
                         len(labels))
        trainer.restore(state)
        log.info("resuming %s at step %d, epoch %d", run.path, state["position"]["step"] + 1,
                 state["position"]["epoch"] + 1)
    history = trainer.fit()
    summary = {"run": str(run.path), "epochs": len(history), "best": trainer.best,
               "last_val": next((h["val"] for h in reversed(history) if "val" in h), None),
               "seconds": round(sum(h["seconds"] for h in history), 1)}
    atomic_write_json(run.path / "summary.json", summary)
    return summary


def _validation_fn(cfg: Config, data, device):
    inputs = EvalInputs.from_records(data.dataset.split("val"))

    def evaluate(model: MIA) -> dict:
        img = encode_gallery(model, inputs.gallery, data.store, cfg.eval.batch_size, device)
        txt = encode_captions(model, inputs.query_texts, data.corpus, cfg.eval.batch_size,
                              device)
        scores = granularity_scores(img, txt)
        return evaluate_scores(scores, inputs, cfg.eval.lambda1, cfg.eval.lambda2)

    return evaluate
