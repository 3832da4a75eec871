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

Format versions only grow; a file from a newer version is refused with one line. Reading
an export (and that refusal) lives in :mod:`mia.artifacts.model_file`.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import torch

from mia._version import __version__
from mia.artifacts.checkpoint import load_checkpoint
from mia.artifacts.model_file import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    TRAINING_ONLY,
    is_export,
    read_model_file,
)
from mia.artifacts.run import RunDir, load_trained
from mia.data.images import IMAGENET_MEAN, IMAGENET_STD
from mia.utils.errors import CheckpointError
from mia.utils.io import atomic_torch_save, sha256_file


def _holds_export(path: Path) -> bool:
    try:
        return path.is_file() and is_export(read_model_file(path))
    except CheckpointError:  # unreadable, or not a model file at all
        return False


def export_run(run: str | Path, out: str | Path, checkpoint: str | Path = "best") -> dict:
    """Write ``run``'s model to the single file ``out`` (atomically); returns what was
    written. ``checkpoint``: "best" (best.pt, else last.pt, as evaluation picks), "last",
    or a checkpoint file."""
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
