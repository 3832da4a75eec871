"""Checkpoints: written atomically, loaded without unpickling arbitrary objects, and
checked against the run's model configuration and vocabulary before use."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from mia.model.mia import MIA, NON_ARCHITECTURE, ModelConfig
from mia.utils.errors import CheckpointError
from mia.utils.io import atomic_torch_save

FORMAT = "mia-checkpoint-v1"


def save_checkpoint(path: Path, model: MIA, *, vocab_fingerprint: str, num_classes: int,
                    position: dict, optimizer=None, scheduler=None, extra: dict | None = None,
                    ) -> None:
    state = {
        "format": FORMAT,
        "model": model.state_dict(),
        "model_config": dataclasses.asdict(model.config),
        "vocab_fingerprint": vocab_fingerprint,
        "vocab_size": model.text_encoder.vocab_size,
        "num_classes": num_classes,
        "position": position,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        **(extra or {}),
    }
    atomic_torch_save(state, path)


def read_torch_file(path: str | Path, map_location="cpu", what: str = "checkpoint"):
    """``torch.load(weights_only=True)`` of a model file (nothing arbitrary is unpickled),
    with one-line errors naming the file for a missing, truncated or foreign one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated, not a zip, or holds non-tensor objects
        reason = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"{path}: unreadable or corrupt {what}: truncated, or not "
                              f"written by torch ({reason})") from exc


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    state = read_torch_file(path, map_location)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a MIA checkpoint (format {FORMAT} expected)")
    return state


def check_compatible(state: dict, path: str | Path, model_config: ModelConfig,
                     vocab_fingerprint: str, vocab_size: int, num_classes: int) -> None:
    """Raise CheckpointError naming every difference between a checkpoint and a run."""
    diffs = []
    expected = dataclasses.asdict(model_config)
    defaults = dataclasses.asdict(ModelConfig())  # keys added after a checkpoint was made
    saved = {**defaults, **state["model_config"]}
    for key in sorted((set(expected) | set(saved)) - set(NON_ARCHITECTURE)):
        ours, theirs = expected.get(key), saved.get(key)
        if ours != theirs:
            diffs.append(f"model.{key}: checkpoint {theirs!r}, config {ours!r}")
    if state["vocab_fingerprint"] != vocab_fingerprint or state["vocab_size"] != vocab_size:
        diffs.append(f"vocabulary: checkpoint {state['vocab_size']} words "
                     f"({state['vocab_fingerprint']}), run {vocab_size} words "
                     f"({vocab_fingerprint})")
    if state["num_classes"] != num_classes:
        diffs.append(f"identity classes: checkpoint {state['num_classes']}, run {num_classes}")
    if diffs:
        raise CheckpointError(f"{path} was made with another configuration or vocabulary: "
                              + "; ".join(diffs))
