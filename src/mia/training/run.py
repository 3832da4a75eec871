"""A run directory: everything one training run writes, and how to load it back.

    RUN/config.yaml        resolved configuration (every default spelled out)
    RUN/vocab.json         the vocabulary built from the training split
    RUN/meta.json          dataset, number of identity classes, versions
    RUN/log.jsonl          one JSON record per logged iteration and per epoch
    RUN/tb/                TensorBoard events (when tensorboard is installed)
    RUN/checkpoints/       last.pt (every epoch), best.pt (best validation, last step),
                           <step>.pt (end of each training step)
    RUN/eval/              results written by ``mia evaluate``
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from mia.model.mia import MIA
from mia.text.vocab import Vocabulary
from mia.training.checkpoint import check_compatible, load_checkpoint
from mia.training.config import Config, config_from_dict
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


@dataclass
class TrainedModel:
    config: Config
    model: MIA
    vocab: Vocabulary
    meta: dict
    checkpoint: Path
    run: Path


def load_trained(run_path: str | Path, checkpoint: str | Path | None = None,
                 device: str | torch.device = "cpu") -> TrainedModel:
    """The model of a run, from ``checkpoint`` (default: best.pt, else last.pt)."""
    run = RunDir(Path(run_path))
    cfg, meta, vocab = run.load_config(), run.load_meta(), Vocabulary.load(run.vocab)
    path = Path(checkpoint) if checkpoint else run.default_checkpoint()
    state = load_checkpoint(path)
    check_compatible(state, path, cfg.model, vocab.fingerprint, len(vocab), meta["num_classes"])
    model = MIA(cfg.model, len(vocab), meta["num_classes"])
    model.load_state_dict(state["model"])
    model.to(device).eval()
    return TrainedModel(cfg, model, vocab, meta, path, run.path)
