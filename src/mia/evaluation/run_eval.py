"""``mia evaluate`` as a library function: a run, a checkpoint, a dataset split -> metrics."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from mia.artifacts.run import RunDir, load_trained
from mia.data.pipeline import load_run_data
from mia.evaluation.evaluate import EvalInputs, evaluate_scores, lambda_sweeps, per_subset
from mia.evaluation.fusion import choose_lambdas, save_fusion
from mia.evaluation.metrics import rank_metrics
from mia.evaluation.rerank import expand, image_affinity
from mia.model.similarity import fuse
from mia.scoring.encode import encode_captions, encode_gallery
from mia.scoring.exact import granularity_scores
from mia.utils.device import resolve_device
from mia.utils.errors import MiaError
from mia.utils.io import atomic_write_json
from mia.utils.memory import keep_freed_memory


@dataclass(frozen=True)
class EvalOptions:
    """Every option of ``mia evaluate`` (``mia.evaluate``'s keywords, the command's flags),
    declared once. ``choose_lambdas``: choose lambda1 / lambda2 on the split
    (:mod:`mia.evaluation.fusion`), store them as RUN/fusion.json for the checkpoint and
    report with them (never on a test split). ``rerank`` (K, BETA): also report sF
    re-ranked with the gallery's image-image similarities (:mod:`mia.evaluation.rerank`)
    as "sF_rerank"."""

    checkpoint: str | Path | None = None
    format: str | None = None
    skip_bad: bool = False
    sweep: bool = False
    lambda1: float | None = None
    lambda2: float | None = None
    device: str = "auto"
    memory_mb: float = 1024
    score_dtype: str = "fp32"
    distractors: str | None = None
    choose_lambdas: bool = False
    rerank: tuple[int, float] | None = None
    progress: bool = True
    save: bool = True


def evaluate_run(run: str | Path, data_dir: str | Path, split: str = "test",
                 options: EvalOptions | None = None, **fields) -> dict:
    """Evaluate a trained run (or an exported file) on a split with ``options`` (or the
    :class:`EvalOptions` ``fields`` given as keywords); the result is also saved under
    RUN/eval/ (an export: FILE.eval/)."""
    o = dataclasses.replace(options or EvalOptions(), **fields)
    if o.choose_lambdas:
        _check_choosable(run, split, o.lambda1, o.lambda2)
    keep_freed_memory()
    dev = resolve_device(o.device)
    trained = load_trained(run, o.checkpoint, dev)
    cfg = trained.config
    data = load_run_data(cfg.data, data_dir, o.format, o.skip_bad, vocab=trained.vocab,
                         progress=o.progress, wordpieces=cfg.model.wordpieces)
    started = time.time()
    inputs, img, txt = encode_split(trained, data, split, dev, o.progress, o.distractors)
    encoded = time.time()
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[o.score_dtype]
    scores = granularity_scores(img.to(dev), txt.to(dev), memory_mb=o.memory_mb, dtype=dtype)
    scores = {k: v.cpu() for k, v in scores.items()}
    fusion = (choose_lambdas_on(trained, scores, inputs, split, o.distractors)
              if o.choose_lambdas else None)
    l1, l2 = trained.lambdas(o.lambda1, o.lambda2)
    result = evaluate_scores(scores, inputs, l1, l2)
    if fusion is not None:
        result["fusion"] = fusion
    if o.rerank is not None:
        reranked = expand(fuse(scores, l1, l2), image_affinity(img.to("cpu")), *o.rerank)
        result["sF_rerank"] = rank_metrics(reranked, inputs.query_pids, inputs.gallery_pids)
    subsets = per_subset(scores, inputs, l1, l2)
    if subsets:
        result["subsets"] = subsets
    if o.sweep:
        result["sweep"] = lambda_sweeps(scores, inputs)
    result["meta"] = {
        "run": str(run), "checkpoint": str(trained.checkpoint), "data": str(data_dir),
        "split": split, "distractors": o.distractors, "queries": len(inputs.query_texts),
        "images": len(inputs.gallery), "lambda1": l1, "lambda2": l2, "lambdas_from": (
            "given" if o.lambda1 is not None or o.lambda2 is not None
            else trained.lambdas_source),
        "score_dtype": o.score_dtype,
        "rerank": None if o.rerank is None else {"k": o.rerank[0], "beta": o.rerank[1]},
        "encode_seconds": round(encoded - started, 2),
        "score_seconds": round(time.time() - encoded, 2), "config": cfg.name,
        "unknown_word_fraction": _unknown_fraction(data, inputs.query_texts),
    }
    if o.save:
        name = (f"{split}{'+' + o.distractors if o.distractors else ''}-"
                f"{Path(trained.checkpoint).stem}.json")
        atomic_write_json(eval_dir(trained) / name, result)
    return result


def _check_choosable(run, split: str, lambda1, lambda2) -> None:
    """--choose-lambdas tunes on the split it evaluates: refused on a test split, with
    given lambdas, or on an export (it writes into a run directory)."""
    if split == "test":
        raise MiaError("--choose-lambdas tunes the fusion on the split it evaluates: choose "
                       "on a validation split (e.g. --split val), never on test")
    if lambda1 is not None or lambda2 is not None:
        raise MiaError("--choose-lambdas chooses lambda1 and lambda2: give neither")
    if not Path(run).is_dir():
        raise MiaError(f"--choose-lambdas writes RUN/fusion.json: {run} is not a run "
                       "directory (choose on the run, then export it)")


def choose_lambdas_on(trained, scores: dict, inputs: EvalInputs, split: str,
                      distractors: str | None) -> dict:
    """Choose lambda1 / lambda2 on these scores, attach them to ``trained`` and store them
    as RUN/fusion.json for its checkpoint."""
    metric = trained.config.eval.select.split(".")[1]
    config = trained.config.eval
    choice = choose_lambdas(scores, inputs, metric, (config.lambda1, config.lambda2))
    path = save_fusion(trained.run, choice, trained.checkpoint, trained.weights_sha256(),
                       {"split": split, "distractors": distractors,
                        "queries": len(inputs.query_texts), "images": len(inputs.gallery)})
    trained.fusion = RunDir(trained.run).load_fusion()
    return {"lambda1": choice["lambda1"], "lambda2": choice["lambda2"],
            "metric": choice["metric"], "value": choice["value"], "file": str(path),
            "default": choice["default"]}


def eval_dir(trained) -> Path:
    """Where evaluation results of a model go: RUN/eval/ of a run, FILE.eval/ of an export."""
    run = Path(trained.run)
    return run / "eval" if run.is_dir() else run.with_name(run.name + ".eval")


def _unknown_fraction(data, texts: list[str]) -> float:
    tokens = [t for text in texts for t in data.parsed[text].tokens]
    return round(data.vocab.unknown_fraction(tokens), 4) if tokens else 0.0


def encode_split(trained, data, split: str, device: str | torch.device = "cpu",
                 progress: bool = False, distractors: str | None = None):
    """(EvalInputs, gallery embeddings, caption embeddings) of one split of ``data``
    (a :class:`mia.data.pipeline.RunData`) under a trained run, each image encoded once;
    the images of the split ``distractors`` join the gallery when given."""
    cfg = trained.config
    extra = data.dataset.split(distractors) if distractors else []
    inputs = EvalInputs.from_records(data.dataset.split(split), extra)
    img = encode_gallery(trained.model, inputs.gallery, data.store, cfg.eval.batch_size,
                         device, workers=cfg.data.workers, progress=progress)
    txt = encode_captions(trained.model, inputs.query_texts, data.corpus, cfg.eval.batch_size,
                          device, progress=progress)
    return inputs, img, txt
