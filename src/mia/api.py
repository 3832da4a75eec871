"""The Python API: train, evaluate, export, and a trained model that encodes your photos
and sentences and scores them.

    import mia

    run = mia.train("demo/mia", "data/synth", "runs/mia", train__seed=1)   # mia train
    mia.evaluate(run, "data/synth", split="test")            # the dict of mia evaluate --json
    mia.export(run, "mia-demo.pt")                           # one file (mia export)
    model = mia.load("mia-demo.pt")                          # a run directory or an export
    images = model.encode_images(["a.jpg", "b.png"])         # paths, PIL images or tensors
    texts = model.encode_texts(["a man in a red jacket"])
    scores = model.score(images, texts)                      # {"sG","sR","sL","sF"}: [texts, images]
    model.explain("a.jpg", "a man in a red jacket")          # stripe weights, phrase -> stripe
    index = model.build_index("photos/", "photos.index")     # a persistent gallery index
    model.search(index, "a man in a red jacket", k=10)
    net = mia.create_model("mia", vocab_size=5000)           # an untrained torch module
    mia.list_configs()                                       # the configs shipped inside

Everything the command line does goes through these calls: ``mia train``, ``mia evaluate``
and ``mia export`` call :func:`train`, :func:`evaluate` and :func:`export`; ``mia search`` /
``mia serve`` answer with :meth:`Retriever.search`, ``mia index build`` is
:meth:`Retriever.build_index`. Config overrides are keyword arguments named by the config
key with ``__`` for each dot (``train__batch_size=32`` is ``--set train.batch_size=32``;
``**{"train.batch_size": 32}`` works too).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from mia.config import CONFIG_DIR, Config, load_config
from mia.retrieval.retriever import MiaWarning, Retriever, as_pil, score
from mia.utils.errors import ConfigError

__all__ = ["Run", "load", "export", "list_configs", "config", "create_model", "train",
           "evaluate", "Retriever", "MiaWarning", "score", "as_pil"]
PathLike = str | os.PathLike


@dataclass(frozen=True)
class Run:
    """A trained run directory (what :func:`train` returns); usable wherever a path is."""

    path: Path
    summary: dict = field(default_factory=dict, compare=False)

    def __fspath__(self) -> str:
        return str(self.path)

    def load(self, device: str = "auto", checkpoint: PathLike | None = None) -> Retriever:
        return load(self.path, device, checkpoint)

    def export(self, out: PathLike, checkpoint: str = "best") -> dict:
        return export(self.path, out, checkpoint)

    def evaluate(self, data: PathLike, split: str = "test", **options) -> dict:
        return evaluate(self.path, data, split, **options)


def load(model: PathLike, device: str = "auto",
         checkpoint: PathLike | None = None) -> Retriever:
    """A trained model ready to encode and score.

    ``model``: a run directory (``mia train --out``), whose ``best.pt`` (else ``last.pt``)
    is used unless ``checkpoint`` names another; a checkpoint file inside a run's
    ``checkpoints/`` folder; or an exported file (:func:`export`), which needs nothing
    else. ``device``: auto (a GPU when there is one), cpu or cuda.
    """
    return Retriever.load(Path(model), device, checkpoint)


def export(run: PathLike, out: PathLike, checkpoint: str | PathLike = "best") -> dict:
    """Write a run's model to one file (``mia export``): weights without optimizer state or
    the training-only identity classifier, config, vocabulary, lambdas, preprocessing,
    training data and validation metrics. ``checkpoint``: "best" (best.pt, else last.pt),
    "last", or a checkpoint file. Returns what was written (path, size, sha256)."""
    from mia.artifacts.export import export_run

    return export_run(Path(run), Path(out), checkpoint if checkpoint in ("best", "last")
                      else Path(checkpoint))


def list_configs() -> list[str]:
    """The names of the configs shipped inside the package (``mia train --config NAME``)."""
    return sorted(p.relative_to(CONFIG_DIR).with_suffix("").as_posix()
                  for p in CONFIG_DIR.rglob("*.yaml"))


def config(name: PathLike | Config = "mia", **overrides) -> Config:
    """A validated config from a name (:func:`list_configs`), a YAML file, or a Config,
    with ``overrides`` applied (``train__seed=1``; see the module docstring)."""
    sets = _as_sets(overrides)
    if isinstance(name, Config):
        if not sets:
            return name
        from mia.config import apply_overrides, config_from_dict

        return config_from_dict(apply_overrides(name.to_dict(), sets))
    return load_config(name, sets)


def create_model(config_name: PathLike | Config = "mia", *, vocab_size: int = 10000,
                 num_classes: int = 0, pretrained: bool = False, **overrides):
    """An untrained :class:`mia.model.mia.MIA` (a ``torch.nn.Module``) built from a config.

    ``vocab_size`` words (ids 0 and 1 are padding and unknown), ``num_classes`` identity
    classes for the ID loss (Eq. 19; 0: no classifier rows). ``pretrained``: load the
    initial weights the config names (model.pretrained, model.word_vectors), as a new
    training run does. ``overrides``: a bare name is a model field (``backbone="small"``),
    ``section__key`` any config key.
    """
    from mia.model.mia import MIA

    cfg = config(config_name, **{(k if "__" in k or "." in k else f"model.{k}"): v
                                 for k, v in overrides.items()})
    for name, value in (("vocab_size", vocab_size), ("num_classes", num_classes)):
        if not isinstance(value, int) or value < (2 if name == "vocab_size" else 0):
            raise ConfigError(f"create_model: {name} must be an integer >= "
                              f"{2 if name == 'vocab_size' else 0}, got {value!r}")
    with warnings.catch_warnings():  # num_classes = 0: "initializing zero-element tensors"
        warnings.simplefilter("ignore", UserWarning)
        model = MIA(cfg.model, vocab_size, num_classes)
    if pretrained:
        model.load_pretrained_backbone()
        model.load_pretrained_text()
    return model


def train(config_name: PathLike | Config | None, data: PathLike, out: PathLike, *,
          resume: bool = False, format: str | None = None, skip_bad: bool = False,
          progress: bool = True, device: str | None = None,
          start_from: PathLike | None = None, **overrides) -> Run:
    """Train a run end to end (``mia train``); returns the :class:`Run` (its ``summary`` is
    RUN/summary.json). ``config_name`` is a config name, file or Config; None with
    ``resume=True`` continues the run at ``out`` with its saved config. ``start_from``: a
    new run begins at another run's ``RUN/checkpoints/<step>.pt`` (``--start-from``).
    ``overrides`` change config keys (``train__seed=1``)."""
    from mia.training.launch import TrainOptions
    from mia.training.launch import train as launch

    cfg = None
    if config_name is not None:
        cfg = config(config_name, **overrides)
    elif overrides:
        raise ConfigError("overrides need a config (a resumed run keeps its saved config)")
    summary = launch(cfg, Path(data), Path(out), TrainOptions(
        resume=resume, format=format, skip_bad=skip_bad, progress=progress, device=device,
        start_from=start_from))
    return Run(Path(out), summary)


def evaluate(model: PathLike, data: PathLike, split: str = "test", *,
             checkpoint: PathLike | None = None, format: str | None = None,
             skip_bad: bool = False, sweep: bool = False, lambda1: float | None = None,
             lambda2: float | None = None, device: str = "auto", memory_mb: float = 1024,
             score_dtype: str = "fp32", distractors: str | None = None,
             progress: bool = False, save: bool = True, choose_lambdas: bool = False,
             rerank: tuple[int, float] | None = None) -> dict:
    """The CUHK-PEDES protocol on a split (``mia evaluate``): every caption queries every
    image; returns exactly the dict ``mia evaluate --json`` prints (R@1/5/10, Total, mAP,
    mINP per granularity sG, sR, sL, sF, plus "meta"; scores are computed as [texts,
    images]). ``model``: a run directory or an exported file. Saved under RUN/eval/ (an
    export: FILE.eval/) unless ``save`` is False. ``choose_lambdas``: choose lambda1 /
    lambda2 on this split (never test), store them as RUN/fusion.json, report with them.
    ``rerank`` (K, BETA): also report sF re-ranked by the gallery's image-image similarities
    ("sF_rerank"; :mod:`mia.evaluation.rerank`)."""
    from mia.evaluation.run_eval import EvalOptions, evaluate_run

    return evaluate_run(Path(model), Path(data), split, EvalOptions(
        checkpoint=checkpoint, format=format, skip_bad=skip_bad, sweep=sweep, lambda1=lambda1,
        lambda2=lambda2, device=device, memory_mb=memory_mb, score_dtype=score_dtype,
        distractors=distractors, choose_lambdas=choose_lambdas, rerank=rerank,
        progress=progress, save=save))


def _as_sets(overrides: dict) -> list[str]:
    """Keyword overrides as ``--set`` strings (values written as JSON, which YAML reads)."""
    return [f"{key.replace('__', '.')}={json.dumps(value, default=str)}" for key, value in overrides.items()]


