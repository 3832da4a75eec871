"""One file that holds a trained model: ``mia export RUN --out FILE``.

A run directory holds a model plus everything needed to go on training it (optimizer state,
every step's checkpoint, logs). An export holds only what scoring needs, in one file that
loads with ``torch.load(weights_only=True)`` (no arbitrary objects are unpickled):

    format, format_version   "mia-export", EXPORT_VERSION
    weights                  the model's state_dict without the identity classifier (a
                             training-only head, W_s of Eq. 19: with 11,000 people it is the
                             largest single tensor) and without optimizer state
    config                   the run's resolved configuration: the model, the preprocessing
                             (data.height / width; normalisation is ImageNet mean / std),
                             eval.lambda1 / lambda2
    vocab                    the vocabulary's words, in id order
    meta                     training data (name, format, content hash), validation metrics
                             of the exported checkpoint, its position, the source checkpoint's
                             SHA-256 (so a gallery index built with the run serves the export
                             and the reverse), package and torch versions, the lambdas it
                             scores with and, when they were chosen on validation, that
                             choice (RUN/fusion.json; None otherwise)

Format versions only grow; a file from a newer version is refused with one line.
"""

from __future__ import annotations

import datetime
import warnings
from pathlib import Path

import torch

from mia._version import __version__
from mia.artifacts.checkpoint import FORMAT as CHECKPOINT_FORMAT
from mia.artifacts.checkpoint import load_checkpoint, read_torch_file
from mia.artifacts.run import RunDir, TrainedModel
from mia.config import config_from_dict
from mia.data.images import IMAGENET_MEAN, IMAGENET_STD
from mia.model.mia import MIA
from mia.text.vocab import Vocabulary
from mia.utils.errors import CheckpointError, ConfigError
from mia.utils.io import atomic_torch_save, sha256_file

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


def _holds_export(path: Path) -> bool:
    try:
        return path.is_file() and is_export(read_model_file(path))
    except CheckpointError:  # unreadable, or not a model file at all
        return False


def export_run(run: str | Path, out: str | Path, checkpoint: str | Path = "best") -> dict:
    """Write ``run``'s model to the single file ``out`` (atomically); returns what was
    written. ``checkpoint``: "best" (best.pt, else last.pt, as evaluation picks), "last",
    or a checkpoint file."""
    from mia.artifacts.run import load_trained

    rundir = RunDir(Path(run))
    if checkpoint == "best":
        path = rundir.default_checkpoint()
    elif checkpoint == "last":
        path = rundir.last
    else:
        path = Path(checkpoint)
    out = Path(out)
    if out.resolve() == path.resolve():
        raise CheckpointError(f"--out {out}: would overwrite the checkpoint it exports")
    if out.exists() and not _holds_export(out):
        raise CheckpointError(f"--out {out}: exists and is not an export (a checkpoint?); "
                              "an export replaces only an export: choose another --out")
    state = load_checkpoint(path)
    trained = load_trained(rundir.path, path, state=state)
    weights = {k: v for k, v in trained.model.state_dict().items()
               if not k.startswith(TRAINING_ONLY)}
    history = state.get("history") or []
    val = next((h["val"] for h in reversed(history) if "val" in h), None)
    meta = trained.meta
    payload = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_VERSION,
        "weights": weights,
        "config": trained.config.to_dict(),
        "vocab": list(trained.vocab.words),
        "meta": {
            "mia_version": __version__, "torch": str(torch.__version__),
            "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "source_run": str(rundir.path.resolve()), "source_checkpoint": path.name,
            "checkpoint_sha256": trained.weights_sha256(),
            "position": state.get("position"), "best": state.get("best"),
            "validation": val,
            "num_classes": meta["num_classes"],
            "train_data": meta.get("train_data") or {"path": meta.get("data"),
                                                     "format": meta.get("format")},
            "preprocessing": {"height": trained.config.data.height,
                              "width": trained.config.data.width,
                              "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
            "lambda1": trained.lambdas()[0], "lambda2": trained.lambdas()[1],
            "fusion": trained.fusion,
        },
    }
    atomic_torch_save(payload, out)
    return {"out": str(out), "bytes": out.stat().st_size, "sha256": sha256_file(out),
            "checkpoint": str(path), "checkpoint_bytes": path.stat().st_size,
            "validation": val}


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
