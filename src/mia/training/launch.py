"""``mia train`` as a library function: prepare a run directory, build everything, train.

Also runs under ``torchrun`` (one process per device): every rank builds the same data and
model; rank 0 alone writes the run directory, logs and checkpoints.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from mia._version import __version__
from mia.artifacts.checkpoint import check_compatible, load_checkpoint
from mia.artifacts.run import RunDir
from mia.config import Config, check_start_files, dump_yaml
from mia.data.loading import TrainPairs, UniqueImageBatchSampler
from mia.data.pipeline import load_run_data
from mia.data.records import label_map
from mia.evaluation.evaluate import EvalInputs, evaluate_scores
from mia.evaluation.run_eval import evaluate_run
from mia.model.embeddings import ImageEmbeddings, TextEmbeddings
from mia.model.mia import MIA
from mia.scoring.encode import encode_captions, encode_gallery
from mia.scoring.exact import granularity_scores
from mia.text.vocab import Vocabulary
from mia.training import distributed
from mia.training.branch import Start, check_train_data, load_start
from mia.training.feature_cache import RunFeatureCache
from mia.training.hooks import Checkpointer, JsonlLogger, TensorBoardLogger, Validator
from mia.training.trainer import Trainer
from mia.utils.device import AUTOCAST_DTYPES, resolve_device, resolve_precision
from mia.utils.errors import CheckpointError, MiaError
from mia.utils.io import atomic_write_json, atomic_write_text, sha256_json
from mia.utils.memory import keep_freed_memory

log = logging.getLogger(__name__)


def prepare_run(run: RunDir, config: Config | None, resume: bool, write: bool = True) -> Config:
    """The run's config: a new run saves it (when ``write``), a resumed run reads it back."""
    if resume:
        if not run.last.is_file():
            raise CheckpointError(f"--resume: {run.last} not found (nothing to resume)")
        saved = run.load_config()
        if config is not None and config.to_dict() != saved.to_dict():
            raise MiaError(f"--resume: {run.config} differs from the given config; resume "
                           "without --config/--set, or start a new run with another --out")
        return saved
    if config is None:
        raise MiaError("--config is required for a new run")
    if write:
        kept = sorted(run.checkpoints.glob("*.pt")) if run.checkpoints.is_dir() else []
        if kept:  # last.pt, or the best/step checkpoints of a run whose last.pt is gone
            resumable = run.last.is_file()
            raise MiaError(f"{run.path} already holds a trained run "
                           f"({run.last if resumable else kept[0]}); "
                           f"{'use --resume to continue it or ' if resumable else ''}choose "
                           "another --out (nothing was overwritten)")
        run.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run.config, dump_yaml(config))
    return config


def with_word_vectors_dim(cfg: Config) -> Config:
    """Fill in model.word_vectors_dim from the configured vectors (new runs)."""
    if not cfg.model.word_vectors or cfg.model.word_vectors_dim:
        return cfg
    from mia.text.word_vectors import load_word_vectors

    dim = load_word_vectors(cfg.model.word_vectors)[1].shape[1]
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, word_vectors_dim=dim))


@dataclass(frozen=True)
class TrainOptions:
    """Every option of ``mia train`` that is not a config value (``mia.train``'s keywords),
    declared once: config values (``--set``, ``--precision``, ...) are saved with the run,
    these are not. ``device`` overrides ``train.device`` (a resumed run may move);
    ``start_from``: a new run continues from another run's step checkpoint
    (:mod:`mia.training.branch`)."""

    resume: bool = False
    format: str | None = None
    skip_bad: bool = False
    progress: bool = True
    device: str | None = None
    start_from: str | Path | None = None


def train(config: Config | None, data_dir: str | Path, out: str | Path,
          options: TrainOptions | None = None, **fields) -> dict:
    """Train a run end to end with ``options`` (or the :class:`TrainOptions` ``fields``
    given as keywords); returns the run summary (also written to RUN/summary.json)."""
    o = dataclasses.replace(options or TrainOptions(), **fields)
    resume, start_from, device = o.resume, o.start_from, o.device
    run = RunDir(Path(out))
    keep_freed_memory()
    if start_from is not None and (resume or config is None):
        raise MiaError("--start-from starts a new run: it needs --config and no --resume")
    if config is not None and not resume:
        check_start_files(config)
    config = with_word_vectors_dim(config) if config is not None else None
    start = load_start(start_from, config) if start_from is not None else None
    # a resumed run (config None) trains on the device its saved config names
    saved = run.load_config() if config is None and resume and run.config.is_file() else None
    dev = resolve_device(device or (config or saved or Config()).train.device)
    ctx = distributed.from_environment(dev.type)
    if dev.type == "cuda" and ctx.enabled:
        dev = torch.device("cuda", ctx.local_rank)
    try:
        cfg = prepare_run(run, config, resume, write=ctx.is_main)
        _barrier(ctx)
        precision = _precision(cfg, dev, ctx)
        state = load_checkpoint(run.last, map_location=dev) if resume else None
        summary = _train(Launch(cfg, run, data_dir, o.format, o.skip_bad, o.progress, dev,
                                ctx, precision, state, start))
        if cfg.eval.choose_lambdas and summary["last_val"] is not None and ctx.is_main:
            summary["fusion"] = _choose_lambdas(cfg, run, data_dir, o.format, o.skip_bad, dev,
                                                o.progress)
            atomic_write_json(run.path / "summary.json", summary)
        return summary
    finally:
        distributed.shutdown()


def _choose_lambdas(cfg: Config, run: RunDir, data_dir, format, skip_bad, dev,
                    progress) -> dict:
    """eval.choose_lambdas: lambda1 / lambda2 chosen on val (+ eval.distractors) for the
    run's final checkpoint, stored as RUN/fusion.json."""
    result = evaluate_run(run.path, data_dir, "val", format=format, skip_bad=skip_bad,
                          device=str(dev), distractors=cfg.eval.distractors,
                          choose_lambdas=True, progress=progress)
    fusion = result["fusion"]
    log.info("fusion chosen on val: lambda1=%s, lambda2=%s (%s %.2f; %.2f at %s, %s)",
             fusion["lambda1"], fusion["lambda2"], fusion["metric"], fusion["value"],
             fusion["default"]["sF"][fusion["metric"][3:]], fusion["default"]["lambda1"],
             fusion["default"]["lambda2"])
    return {k: fusion[k] for k in ("lambda1", "lambda2", "metric", "value")}


def _precision(cfg: Config, dev: torch.device, ctx) -> dict:
    """The training precision this machine uses for ``train.precision`` (``auto`` is
    resolved here, on every start: a resumed run re-resolves on its new machine; the saved
    config keeps the request). Errors come before any work."""
    resolved, reason = resolve_precision(cfg.train.precision, dev)
    if ctx.is_main:
        log.info("precision: %s -> %s (%s)", cfg.train.precision, resolved, reason)
    return {"requested": cfg.train.precision, "resolved": resolved, "reason": reason}


def _note_precision_change(run: RunDir, precision: dict) -> None:
    """A resumed run that continues in another precision than it started in says so."""
    try:
        before = run.load_meta().get("precision", {}).get("resolved")
    except (MiaError, OSError, ValueError, AttributeError):
        return
    if before and before != precision["resolved"]:
        log.warning("this run started in %s (RUN/meta.json) and continues in %s on this "
                    "machine", before, precision["resolved"])


@dataclass
class Launch:
    """Everything one training process starts from: the resolved config, the run directory,
    the data source, the device and process group, the precision, and where training
    begins (``state``: a resumed run's last.pt; ``start``: another run's step checkpoint)."""

    cfg: Config
    run: RunDir
    data_dir: str | Path
    format: str | None
    skip_bad: bool
    progress: bool
    device: torch.device
    ctx: distributed.DistContext
    precision: dict
    state: dict | None = None
    start: Start | None = None


def _train(launch: Launch) -> dict:
    cfg, run, ctx, state, start = launch.cfg, launch.run, launch.ctx, launch.state, launch.start
    data, train_records, labels, identity = _training_data(launch)
    model = _build_model(cfg, data.vocab, len(labels), fresh=state is None and start is None,
                         device=launch.device, ctx=ctx)
    trainer = _trainer(launch, data, train_records, labels, model)
    begin = state if state is not None else start.state if start is not None else None
    if begin is not None:  # a resumed run, or a new one at the end of another run's step
        origin = run.last if state is not None else start.record["checkpoint"]
        check_compatible(begin, origin, cfg.model, data.vocab.fingerprint, len(data.vocab),
                         len(labels))
        trainer.restore(begin)
    if ctx.is_main:
        next(h for h in trainer.hooks if isinstance(h, JsonlLogger)).keep_until(
            trainer.global_iteration, len(trainer.history))
    if state is not None:
        _note_precision_change(run, launch.precision)
        log.info("resuming %s at step %d, epoch %d", run.path, state["position"]["step"] + 1,
                 state["position"]["epoch"] + 1)
    elif start is not None:
        if ctx.is_main:  # the run is complete and resumable from its first moment
            Checkpointer(run).save_last(trainer)
        log.info("starting %s at step %d from %s", run.path,
                 start.state["position"]["step"] + 1, start.record["checkpoint"])
    kept = _keep_feature_cache(trainer, launch, identity)
    history = trainer.fit()
    if kept is not None:  # finished: nothing will resume it
        kept.finish()
    summary = {"run": str(run.path), "epochs": len(history), "best": trainer.best,
               "last_val": next((h["val"] for h in reversed(history) if "val" in h), None),
               "seconds": round(sum(h["seconds"] for h in history), 1)}
    if ctx.is_main:
        atomic_write_json(run.path / "summary.json", summary)
    return summary


def _training_data(launch: Launch):
    """(RunData, training records, label map, training-data identity); a new run writes its
    vocabulary and RUN/meta.json; a resumed or branched run is checked against its data."""
    cfg, run, ctx, state, start = launch.cfg, launch.run, launch.ctx, launch.state, launch.start
    vocab = (Vocabulary.load(run.vocab) if state is not None
             else Vocabulary.load(start.source.vocab) if start is not None else None)
    data = load_run_data(cfg.data, launch.data_dir, launch.format, launch.skip_bad, vocab=vocab,
                         progress=launch.progress and ctx.is_main,
                         wordpieces=cfg.model.wordpieces, require_splits=(
                             "train", *([cfg.eval.distractors] if cfg.train.validate
                                        and cfg.eval.distractors else [])))
    train_records = data.dataset.split("train")
    labels = label_map(train_records)
    identity = train_data_identity(launch.data_dir, data.dataset.format, train_records)
    if start is not None:
        check_train_data(start, identity)
    if state is not None:
        check_resumed_data(run, identity)
    if state is None and ctx.is_main:
        data.vocab.save(run.vocab)
        atomic_write_json(run.meta, {
            "num_classes": len(labels), "data": str(Path(launch.data_dir).resolve()),
            "format": data.dataset.format, "vocab_size": len(data.vocab),
            "vocab_fingerprint": data.vocab.fingerprint, "mia_version": __version__,
            "torch": torch.__version__, "python": platform.python_version(),
            "world_size": ctx.world, "precision": launch.precision,
            "train_data": identity,
            **({"started_from": start.record} if start is not None else {})})
    return data, train_records, labels, identity


def _trainer(launch: Launch, data, train_records, labels, model: MIA) -> Trainer:
    """The trainer with its pairs, sampler and hooks (validation, logs, checkpoints)."""
    cfg, ctx = launch.cfg, launch.ctx
    pairs = TrainPairs(train_records, data.store, data.corpus, labels, flip=cfg.data.flip,
                       seed=cfg.train.seed, word_dropout=cfg.data.word_dropout,
                       phrase_dropout=cfg.data.phrase_dropout)
    sampler = UniqueImageBatchSampler(
        pairs.image_of, cfg.train.batch_size, seed=cfg.train.seed,
        person_of=[train_records[i].person_id for i in pairs.image_of],
        pk=tuple(cfg.train.pk) if cfg.train.sampler == "pk" else None,
        rank=ctx.rank, world_size=ctx.world)
    hooks = []
    if cfg.train.validate and "val" in data.dataset.splits:
        hooks.append(Validator(_validation_fn(cfg, data, launch.device, ctx,
                                              launch.precision["resolved"])))
    elif cfg.train.validate:
        log.warning("no 'val' split: no validation; evaluate uses the last checkpoint")
    if ctx.is_main:
        hooks += [JsonlLogger(launch.run.log), TensorBoardLogger(launch.run.path / "tb"),
                  Checkpointer(launch.run)]
    return Trainer(cfg, model, pairs, sampler, hooks, num_classes=len(labels),
                   vocab_fingerprint=data.vocab.fingerprint, device=launch.device,
                   progress=launch.progress, ctx=ctx, precision=launch.precision["resolved"])


def _keep_feature_cache(trainer: Trainer, launch: Launch,
                        identity: dict) -> RunFeatureCache | None:
    """The run-wide cache of the never-trained CNN stages in RUN/cache/
    (:class:`.feature_cache.RunFeatureCache`), read back when the run resumes and kept
    up to date while it trains; None when the run has none."""
    kept = RunFeatureCache.open(trainer, launch.run.path, launch.cfg,
                                train_data=identity["sha256"],
                                precision=launch.precision["resolved"],
                                device=launch.device.type, rank=launch.ctx.rank,
                                resume=launch.state is not None)
    if kept is None:
        return None
    if kept.read:
        log.info("feature cache: %d entries of CNN stages 1-%d read from %s", kept.read,
                 kept.cache.depth, kept.path)
    trainer.hooks.append(kept.keeper())
    return kept


def check_resumed_data(run: RunDir, identity: dict) -> None:
    """A resumed run trains on the data it started on (the content hash in meta.json)."""
    saved = run.load_meta().get("train_data") or {}
    if saved.get("sha256") not in (None, identity["sha256"]):
        raise MiaError(f"--resume: the training split of this data ({identity['images']} "
                       f"images, {identity['people']} people) is not the one {run.path} "
                       f"started on ({saved.get('images')} images, {saved.get('people')} "
                       f"people; {run.meta}): give --data the run's data")


def train_data_identity(data_dir, format: str, records) -> dict:
    """Name, format, size and content hash of a training split (what an export records):
    the hash covers every image path, identity and caption, in order."""
    return {"name": Path(data_dir).resolve().name, "format": format, "images": len(records),
            "people": len({r.person_id for r in records}),
            "sha256": sha256_json([[r.file_path, r.person_id, list(r.captions)]
                                   for r in records])}


def _build_model(cfg: Config, vocab: Vocabulary, num_classes: int, fresh: bool, device,
                 ctx) -> MIA:
    torch.manual_seed(cfg.train.seed)
    model = MIA(cfg.model, len(vocab), num_classes)
    if fresh:
        model.load_pretrained_backbone()
        model.load_pretrained_text()
        coverage = model.load_word_vectors(vocab, cfg.train.seed)
        if cfg.model.word_vectors:
            log.info("word vectors %s cover %.1f%% of the vocabulary", cfg.model.word_vectors,
                     100 * coverage)
    log.info("model parameters per group: %s", model.describe()["parameters"])
    if device.type != "cuda" and ctx.enabled and ctx.is_main and _trains_batchnorm(cfg, model):
        log.warning("%d CPU processes: BatchNorm cannot be synchronised without CUDA, so "
                    "each process normalises its own share of every batch and the result "
                    "differs slightly from one process on the same batches", ctx.world)
    if device.type == "cuda" and ctx.enabled and cfg.train.sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.to(device)


def _trains_batchnorm(cfg: Config, model: MIA) -> bool:
    """Whether a step trains a module holding BatchNorm (its batch statistics are used)."""
    frozen = {id(m) for m in model.frozen_modules()}
    for step in cfg.steps.values():
        for group in step.train:
            for module in model.group_modules(group):
                if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                       and id(m) not in frozen for m in module.modules()):
                    return True
    return False


def _barrier(ctx) -> None:
    if ctx.enabled:
        torch.distributed.barrier()


def _validation_fn(cfg: Config, data, device, ctx, precision: str):
    """Validation on every rank: each encodes its share of the split, all gather. The
    images of ``eval.distractors`` join the gallery (checked here, before any training)."""
    extra = data.dataset.split(cfg.eval.distractors) if cfg.eval.distractors else []
    inputs = EvalInputs.from_records(data.dataset.split("val"), extra)
    if extra:
        log.info("validation gallery: val + %s, %d images of %d people", cfg.eval.distractors,
                 len(inputs.gallery), len({r.person_id for r in inputs.gallery}))

    def share(items: list) -> list:
        per = -(-len(items) // ctx.world)
        return items[ctx.rank * per:(ctx.rank + 1) * per]

    dtype = AUTOCAST_DTYPES[precision]  # validate in the (resolved) training precision

    def evaluate(model: MIA) -> dict:
        img = encode_gallery(model, share(inputs.gallery), data.store, cfg.eval.batch_size,
                             device, autocast_dtype=dtype)
        txt = encode_captions(model, share(inputs.query_texts), data.corpus,
                              cfg.eval.batch_size, device, autocast_dtype=dtype)
        if ctx.enabled:
            img = ImageEmbeddings.cat([p for p in distributed.gather_objects(ctx, img)
                                       if len(p)])
            txt = TextEmbeddings.cat([p for p in distributed.gather_objects(ctx, txt)
                                      if len(p)])
        return evaluate_scores(granularity_scores(img, txt), inputs, cfg.eval.lambda1,
                               cfg.eval.lambda2)

    return evaluate
