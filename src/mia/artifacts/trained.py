"""A trained model loaded for scoring, whatever it was loaded from: a run directory, a
checkpoint in one (:func:`mia.artifacts.run.load_trained`) or an export file
(:func:`mia.artifacts.model_file.load_export`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mia.config import Config
from mia.model.mia import MIA
from mia.text.vocab import Vocabulary
from mia.utils.io import sha256_file


@dataclass
class TrainedModel:
    """A model with what scoring needs: its config, vocabulary and where it came from
    (``run`` and ``checkpoint`` are the same file for an export)."""

    config: Config
    model: MIA
    vocab: Vocabulary
    meta: dict
    checkpoint: Path
    run: Path
    _weights_sha256: str | None = None
    # lambda1 / lambda2 chosen on validation for these weights (RUN/fusion.json), or None
    fusion: dict | None = None

    def weights_sha256(self) -> str:
        """SHA-256 of the checkpoint the weights come from (an export records its source's):
        what a gallery index checks before it answers with this model."""
        if self._weights_sha256 is None:
            self._weights_sha256 = sha256_file(self.checkpoint)
        return self._weights_sha256

    def lambdas(self, lambda1: float | None = None,
                lambda2: float | None = None) -> tuple[float, float]:
        """(lambda1, lambda2) of sF = sG + lambda1 sR + lambda2 sL (Eq. 18): the given
        values, else those chosen on validation for these weights (``fusion``), else the
        run's eval.lambda1 / eval.lambda2. The one place they resolve."""
        chosen = self.fusion or {}
        return (float(chosen.get("lambda1", self.config.eval.lambda1)) if lambda1 is None
                else float(lambda1),
                float(chosen.get("lambda2", self.config.eval.lambda2)) if lambda2 is None
                else float(lambda2))

    @property
    def lambdas_source(self) -> str:
        """Where the default lambdas come from: 'fusion.json' or 'config'."""
        return "fusion.json" if self.fusion else "config"
