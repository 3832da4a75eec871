"""A run directory: everything one training run writes, and how to load it back.

    RUN/config.yaml        resolved configuration (every default spelled out)
    RUN/vocab.json         the vocabulary built from the training split
    RUN/meta.json          dataset, number of identity classes, versions
    RUN/log.jsonl          one JSON record per logged iteration and per epoch
    RUN/tb/                TensorBoard events (when tensorboard is installed)
    RUN/checkpoints/       last.pt (every epoch), best.pt (best validation, last step),
                           <step>.pt (end of each training step)
    RUN/eval/              results written by ``mia evaluate``
    RUN/fusion.json        lambda1 / lambda2 chosen on validation for one checkpoint
                           (``mia evaluate --choose-lambdas``): scoring that checkpoint
                           uses them instead of the config's
    RUN/cache/             while training: the never-trained CNN stages' outputs, so that
                           a resumed run need not compute them again (removed at the end)

``mia export`` turns a run into one file (:mod:`mia.artifacts.export`, read back by
:mod:`mia.artifacts.model_file`); everything that loads a model takes either, and gets a
:class:`mia.artifacts.trained.TrainedModel`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from mia.artifacts.checkpoint import check_compatible, load_checkpoint
from mia.artifacts.model_file import is_export, load_export, read_model_file
from mia.artifacts.trained import TrainedModel
from mia.config import Config, config_from_dict
from mia.model.mia import MIA
from mia.text.vocab import Vocabulary
from mia.utils.errors import CheckpointError, ConfigError


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def vocab(self) -> Path:
        return self.path / "vocab.json"

    @property
    def meta(self) -> Path:
        return self.path / "meta.json"

    @property
    def log(self) -> Path:
        return self.path / "log.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def fusion(self) -> Path:
        return self.path / "fusion.json"

    def default_checkpoint(self) -> Path:
        """best.pt when validation picked one, else last.pt."""
        return self.best if self.best.is_file() else self.last

    def load_config(self) -> Config:
        if not self.config.is_file():
            raise ConfigError(f"{self.path}: not a run directory (no config.yaml)")
        try:
            raw = yaml.safe_load(self.config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"{self.config}: corrupt run configuration "
                              f"({str(exc).splitlines()[0]})") from exc
        try:
            return config_from_dict(raw)
        except ConfigError as exc:
            raise ConfigError(f"{self.config}: {exc}") from exc

    def load_meta(self) -> dict:
        try:
            meta = json.loads(self.meta.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise CheckpointError(f"{self.path}: not a run directory (no meta.json)") from exc
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{self.meta}: corrupt run metadata ({exc})") from exc
        if not isinstance(meta, dict) or not isinstance(meta.get("num_classes"), int):
            raise CheckpointError(f"{self.meta}: corrupt run metadata (no 'num_classes')")
        return meta

    def load_fusion(self) -> dict | None:
        """RUN/fusion.json, or None when there is none; a corrupt file is an error naming
        it."""
        if not self.fusion.is_file():
            return None
        try:
            fusion = json.loads(self.fusion.read_text(encoding="utf-8"))
            float(fusion["lambda1"]), float(fusion["lambda2"]), str(fusion["checkpoint_sha256"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{self.fusion}: corrupt fusion weights ({exc!r}); delete it "
                                  "to score with the config's eval.lambda1 / lambda2") from exc
        return fusion


def load_trained(run_path: str | Path, checkpoint: str | Path | None = None,
                 device: str | torch.device = "cpu", state: dict | None = None,
                 ) -> TrainedModel:
    """The model of a run directory (from ``checkpoint``, default best.pt, else last.pt),
    of a checkpoint file inside a run's ``checkpoints/``, or of an export file
    (``mia export``). ``state``: the checkpoint's contents when the caller has read them."""
    path = Path(run_path)
    if path.is_file():
        state = state if state is not None else read_model_file(path)
        if checkpoint is not None and Path(checkpoint).resolve() != path.resolve():
            raise CheckpointError(f"{path} is a model file: --checkpoint applies to a run "
                                  "directory only")
        if is_export(state):
            return load_export(path, device, state)
        path, checkpoint = path.parent.parent, path  # RUN/checkpoints/X.pt
    run = RunDir(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: neither a run directory nor a model file")
    cfg, meta, vocab = run.load_config(), run.load_meta(), Vocabulary.load(run.vocab)
    ckpt = Path(checkpoint) if checkpoint else run.default_checkpoint()
    if state is None:
        state = load_checkpoint(ckpt)
    check_compatible(state, ckpt, cfg.model, vocab.fingerprint, len(vocab), meta["num_classes"])
    model = MIA(cfg.model, len(vocab), meta["num_classes"])
    model.load_state_dict(state["model"])
    model.to(device).eval()
    trained = TrainedModel(cfg, model, vocab, meta, ckpt, run.path)
    fusion = run.load_fusion()
    if fusion is not None and fusion["checkpoint_sha256"] == trained.weights_sha256():
        trained.fusion = fusion  # chosen for these very weights; another checkpoint: config
    return trained
