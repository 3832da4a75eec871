"""Reading a model file: an export (``mia export``, laid out as :mod:`mia.artifacts.export`
describes) or a checkpoint, and the model of an export.

Writing an export lives in :mod:`mia.artifacts.export`; loading any model (run directory,
checkpoint or export) in :func:`mia.artifacts.run.load_trained`. Format versions only grow;
a file from a newer version is refused with one line.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from mia._version import __version__
from mia.artifacts.checkpoint import FORMAT as CHECKPOINT_FORMAT
from mia.artifacts.checkpoint import read_torch_file
from mia.artifacts.trained import TrainedModel
from mia.config import config_from_dict
from mia.model.mia import MIA
from mia.text.vocab import Vocabulary
from mia.utils.errors import CheckpointError, ConfigError

EXPORT_FORMAT = "mia-export"
EXPORT_VERSION = 1
TRAINING_ONLY = ("classifier.",)  # state_dict prefixes an export leaves out


def read_model_file(path: str | Path, map_location="cpu") -> dict:
    """The contents of an export or a checkpoint file; one-line errors for a missing,
    truncated or foreign file, or one from a newer export format."""
    path = Path(path)
    state = read_torch_file(path, map_location, what="model file (export or checkpoint)")
    fmt = state.get("format") if isinstance(state, dict) else None
    if fmt == EXPORT_FORMAT:
        version = state.get("format_version")
        if not isinstance(version, int):
            raise CheckpointError(f"{path}: corrupt export (no format_version)")
        if version > EXPORT_VERSION:
            raise CheckpointError(
                f"{path}: export format {version} was written by a newer mia "
                f"({state.get('meta', {}).get('mia_version', '?')}); this mia "
                f"{__version__} reads up to format {EXPORT_VERSION}: upgrade mia")
        missing = [k for k in ("weights", "config", "vocab", "meta") if k not in state]
        if missing:
            raise CheckpointError(f"{path}: corrupt export (missing {', '.join(missing)})")
    elif fmt != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a MIA export or checkpoint (no '{EXPORT_FORMAT}' "
                              "format mark)")
    return state


def is_export(state: dict) -> bool:
    return state.get("format") == EXPORT_FORMAT



def load_export(path: str | Path, device: str | torch.device = "cpu",
                state: dict | None = None) -> TrainedModel:
    """The model of an export file, ready to encode and score."""
    path = Path(path)
    state = state if state is not None else read_model_file(path)
    if not is_export(state):
        raise CheckpointError(f"{path}: not a MIA export")
    try:
        cfg = config_from_dict(state["config"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: corrupt export configuration ({exc})") from exc
    try:
        vocab = Vocabulary(state["vocab"])
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: corrupt export vocabulary ({exc})") from exc
    meta = dict(state["meta"])
    with warnings.catch_warnings():  # a zero-row classifier: "initializing zero-element"
        warnings.simplefilter("ignore", UserWarning)
        model = MIA(cfg.model, len(vocab), 0)
    weights = state["weights"]
    result = model.load_state_dict(weights, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(TRAINING_ONLY)]
    if missing or result.unexpected_keys:
        raise CheckpointError(f"{path}: export weights do not fit its model (missing "
                              f"{missing[:3]}, unexpected {result.unexpected_keys[:3]})")
    model.to(device).eval()
    meta.setdefault("num_classes", 0)
    return TrainedModel(cfg, model, vocab, meta, path, path,
                        _weights_sha256=meta.get("checkpoint_sha256"),
                        fusion=meta.get("fusion"))
