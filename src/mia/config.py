"""The configuration schema, read by every layer: YAML files (the package's ``mia/configs/`` or any path), validated
into dataclasses.

A config may name a ``base`` config (a path relative to it, or a name in ``configs/``)
whose values it overrides; ``--set key=value`` overrides any key afterwards: a step's
field by the step's name (``--set steps.step1.epochs=3``), a list item by its index
(``--set steps.step2.train.0=text``). Unknown keys are errors that list the valid keys.
The paper's step training is data: ``steps`` is an ordered mapping name ->
:class:`StepConfig` (what trains, on which losses, at which learning rate, how long); a
derived config can change one field of one step (``steps: {step1: {epochs: 3}}``) or drop a
step (``step3: null``). ``base`` may also be a list, merged left to right.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mia.model.backbones import BACKBONES, backbone_stride, stage_prefixes
from mia.model.mia import MAX_ATTENTION_SCALE, PARAMETER_GROUPS, ModelConfig
from mia.model.text_encoder import WORD_ENCODERS
from mia.text.phrases import PHRASE_MODES
from mia.utils.choices import PRECISIONS
from mia.utils.errors import ConfigError

# shipped inside the package (configs/ at the top of the checkout links here)
CONFIG_DIR = Path(str(resources.files("mia") / "configs"))
# The losses a step may name (StepConfig.losses), computed by training/objectives.py:
IDENTITY_LOSS = "id"  # Eq. 19: one classifier on the global features of images and texts
# each matching loss (Eq. 20) -> (the granularity model.similarity.similarities() computes
# for it, the similarity it compares)
MATCHING_SIMILARITY = {"gc": ("g", "sG"), "rga_it": ("r", "sI"), "rga_ti": ("r", "sT"),
                       "bfm_pn": ("l", "sP"), "bfm_np": ("l", "sN")}
LOSS_NAMES = (IDENTITY_LOSS, *MATCHING_SIMILARITY)
MATCHING_LOSSES = ("sum_hinge", "max_hinge", "contrastive")  # training/objectives.py
NEGATIVES = ("image", "identity")
SUBSET_NAMES = ("CUHK01", "CUHK03", "Market", "SSM", "VIPER")  # data/subsets.py


@dataclass
class DataConfig:
    phrase_mode: str = "noun_phrases"  # or "words": every word is a phrase (Table VII)
    min_word_count: int = 1  # words rarer than this in the training split become <unk>
    height: int = 384
    width: int = 128
    max_phrases: int | None = None  # the paper does not cap m
    flip: bool = True  # random horizontal mirroring in training
    cache_images: bool = False  # keep resized images in memory (small datasets)
    workers: int = 0  # DataLoader worker processes
    # Train and evaluate on one CUHK-PEDES sub-dataset only (CUHK01, CUHK03, Market, SSM,
    # VIPER): the paper's Table IX re-trains MIA on SSM (data.subset=SSM)
    subset: str | None = None
    # Probability that a training word is read as <unk> (so the <unk> vector learns what
    # unseen words should look like); 0 in the paper
    word_dropout: float = 0.0
    # Probability that a noun phrase of a training caption is removed, words and span (at
    # least one phrase stays): phrase cutout, mia.data.augment; 0 in the paper
    phrase_dropout: float = 0.0
    text_workers: int = 2  # processes for noun-phrase extraction (cached afterwards)


@dataclass
class StepConfig:
    epochs: int
    lr: float
    train: list[str]  # parameter groups that learn in this step (mia.model.mia.PARAMETER_GROUPS)
    losses: dict[str, float]  # loss name -> weight (LOSS_NAMES)
    lr_step: int | None = None  # multiply the lr by lr_gamma every lr_step epochs
    lr_gamma: float = 0.1
    weight_decay: float = 0.0


@dataclass
class TrainConfig:
    batch_size: int = 96
    margin: float = 0.2  # alpha of the sum-of-hinges matching loss (Eq. 20)
    # Matching loss: sum_hinge (the paper, Eq. 20), max_hinge (VSE++: hardest negative) or
    # contrastive (InfoNCE at matching_temperature); negatives: image (the paper: any other
    # image) or identity (only other people's images)
    matching_loss: str = "sum_hinge"
    negatives: str = "image"
    matching_temperature: float = 0.05
    sampler: str = "unique"  # "unique": shuffled captions, no image twice; "pk": P ids x K images
    pk: list[int] | None = None  # [P, K] for sampler "pk"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 where native, else fp32) | fp32 | bf16 | fp16
    grad_clip: float | None = None
    validate: bool = True  # evaluate on the validation split after every epoch
    channels_last: bool = False  # NHWC memory layout for the CNN (faster on many CPUs/GPUs)
    sync_bn: bool = True  # SyncBatchNorm when training on several GPUs
    # Memory for the outputs of the CNN stages a step does not train (all of them in steps
    # that freeze the CNN, model.frozen_stages otherwise), computed once per image and
    # mirroring and reused every epoch (a step that draws each image fewer than twice keeps
    # only the run-wide cache of model.frozen_stages); 0 turns the cache off
    feature_cache_mb: float = 0.0
    # Beyond the paper (0 there), against memorising a small training set:
    # random erasing of each training image with this probability (applied to the first
    # trained stage's input, i.e. to cached feature maps when the CNN's first stages are
    # frozen, see training/step.py: random_erasing), and label smoothing of the identity
    # loss (Eq. 19)
    erasing: float = 0.0
    label_smoothing: float = 0.0
    # Learning rate of the pretrained MiniLM layers that fine-tune
    # (model.minilm_trainable_layers), relative to the step's: a from-scratch rate (1e-3 in
    # step 1) would wash out what they learned in pre-training
    minilm_lr_scale: float = 0.1
    # Beyond the paper, for captions of uneven quality (entries marked "weak": true, e.g.
    # machine paraphrases): the loss weight of a weak pair (1: counted as any other), and
    # the fraction of each batch's pairs with the highest matching loss left out of that
    # batch's losses (0: none; small-loss selection against pairs that do not match),
    # from the step's epoch drop_hardest_warmup + 1 on (0: from its first)
    weak_weight: float = 1.0
    drop_hardest: float = 0.0
    drop_hardest_warmup: int = 0


@dataclass
class EvalConfig:
    lambda1: float = 1.0  # weight of sR in sF (Eq. 18)
    lambda2: float = 0.5  # weight of sL in sF
    batch_size: int = 128
    select: str = "sF.R1"  # validation metric that picks best.pt (last step)
    # a split whose images (other people, never queried) join the val gallery in training's
    # validation, e.g. "distractors": a gallery as large as a test split's; null: val alone
    distractors: str | None = None
    # after training, choose lambda1 / lambda2 on val (+ distractors) for the final
    # checkpoint and store them as RUN/fusion.json (mia evaluate --choose-lambdas)
    choose_lambdas: bool = False


@dataclass
class Config:
    name: str = "mia"
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    steps: dict[str, StepConfig] = field(default_factory=dict)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_config_path(name: str | Path, relative_to: Path | None = None) -> Path:
    """A config file from a path, a path relative to another config, or a name."""
    candidates = [Path(name)]
    if relative_to is not None:
        candidates.insert(0, relative_to / name)
    suffix = "" if str(name).endswith((".yaml", ".yml")) else ".yaml"
    candidates.append(CONFIG_DIR / f"{name}{suffix}")
    for path in candidates:
        if path.is_file():
            return path
    available = sorted(str(p.relative_to(CONFIG_DIR))[:-5] for p in CONFIG_DIR.rglob("*.yaml"))
    raise ConfigError(f"config {str(name)!r} not found (a file path, or one of: "
                      f"{', '.join(available)})")


def load_raw(path: Path, _seen: tuple[Path, ...] = ()) -> dict:
    """The YAML dict of a config with its ``base`` chain merged in."""
    path = path.resolve()
    if path in _seen:
        raise ConfigError(f"{path}: circular 'base' chain")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: " + " ".join(str(exc).split())) from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    bases = raw.pop("base", None)
    if bases is None:
        return raw
    merged: dict = {}
    for base in [bases] if isinstance(bases, str) else bases:
        merged = deep_merge(merged, load_raw(resolve_config_path(base, path.parent),
                                             (*_seen, path)))
    return deep_merge(merged, raw)


def deep_merge(base: dict, over: dict) -> dict:
    """Mappings merge key by key (``losses`` is replaced whole); None deletes a step."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "losses":
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _drop_null_steps(raw: dict) -> dict:
    if isinstance(raw.get("steps"), dict):
        raw["steps"] = {k: v for k, v in raw["steps"].items() if v is not None}
    return raw


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` strings (values parsed as YAML) to a raw config dict."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.batch_size=32")
        key, text = item.split("=", 1)
        value = yaml.safe_load(text) if text else None
        node: Any = raw
        parts = key.strip().split(".")
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"--set {key}: {'.'.join(parts[:depth])} has "
                                      f"{len(node)} items; {part!r} is not a valid index")
                part = int(part)
            elif not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[:depth])} is not a section")
            if last:
                node[part] = value
            else:
                if isinstance(node, dict) and part not in node:
                    node[part] = {}
                node = node[part]
    return raw


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, where)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(item, v, f"{where}.{i}") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        _, item = typing.get_args(tp)
        return {str(k): _convert(item, v, f"{where}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML reads "1e-3" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp in (int, float, str, bool) and (not isinstance(value, tp) or
                                          (tp is int and isinstance(value, bool))):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type, raw: Any, where: str = "config") -> Any:
    """Build dataclass ``cls`` from a dict; unknown keys are errors listing the valid ones."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in raw if k not in names]
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"valid keys: {', '.join(names)}")
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in raw
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    return cls(**{k: _convert(hints[k], v, f"{where}.{k}") for k, v in raw.items()})


METRICS = ("R1", "R5", "R10", "total", "mAP", "mINP")
GRANULARITY_KEYS = ("sG", "sR", "sL", "sF")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _positive(where: str, value, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    _check(ok and value == value, f"{where}: must be {'>= 0' if allow_zero else 'positive'}, "
           f"got {value!r}")


def _choice(where: str, value, choices) -> None:
    _check(value in choices, f"{where}: {value!r} is not one of {', '.join(map(str, choices))}")


def validate(cfg: Config) -> Config:
    """Every value checked at load time: errors name the key and the valid values or range."""
    _validate_model(cfg.model, cfg.data)
    _validate_data(cfg.data)
    _validate_train(cfg.train)
    _check(bool(cfg.steps), "steps: at least one training step is needed")
    for name, step in cfg.steps.items():
        _validate_step(f"steps.{name}", step)
    _validate_eval(cfg.eval)
    return cfg


def _validate_model(m: ModelConfig, data: DataConfig) -> None:
    _choice("model.backbone", m.backbone, BACKBONES)
    for key in ("embed_dim", "part_channels", "num_parts", "word_dim", "gru_hidden",
                "mlp_hidden", "small_width"):
        _positive(f"model.{key}", getattr(m, key))
    _choice("model.last_stride", m.last_stride, (1, 2))
    _positive("model.word_vectors_dim", m.word_vectors_dim, allow_zero=True)
    _choice("model.word_encoder", m.word_encoder, WORD_ENCODERS)
    _check(0 <= m.minilm_trainable_layers <= 6,
           f"model.minilm_trainable_layers: must be between 0 and 6, got {m.minilm_trainable_layers}")
    stages = len(stage_prefixes(m.backbone))
    _check(0 <= m.frozen_stages <= stages, f"model.frozen_stages: must be between 0 and "
           f"{stages} (the stages of {m.backbone}), got {m.frozen_stages}")
    _check(0 < m.attention_scale <= MAX_ATTENTION_SCALE,
           f"model.attention_scale: must be in (0, {MAX_ATTENTION_SCALE:g}], got "
           f"{m.attention_scale}")
    stride = backbone_stride(m.backbone, m.last_stride)
    rows = data.height // stride
    _check(rows >= m.num_parts and data.width // stride >= 1,
           f"data.height/width: {data.height}x{data.width} gives a {rows}x"
           f"{data.width // stride} feature map with {m.backbone} (stride {stride}); the "
           f"{m.num_parts} stripes need at least {m.num_parts} rows: height >= "
           f"{m.num_parts * stride}")


def check_start_files(cfg: Config) -> None:
    """The files a new run starts from exist (a trained run no longer needs them)."""
    m = cfg.model
    _check(m.pretrained in (None, "imagenet") or Path(m.pretrained).is_file(),
           f"model.pretrained: {m.pretrained!r} is neither null, 'imagenet' nor an existing "
           "state_dict file")
    if m.word_vectors is not None:
        from mia.text.word_vectors import BUNDLED

        _check(m.word_vectors in BUNDLED or Path(m.word_vectors).is_file(),
               f"model.word_vectors: {m.word_vectors!r} is neither null, one of "
               f"{', '.join(sorted(BUNDLED))} nor an existing vector file")


def _validate_data(d: DataConfig) -> None:
    _choice("data.phrase_mode", d.phrase_mode, PHRASE_MODES)
    if d.subset is not None:
        _choice("data.subset", d.subset, SUBSET_NAMES)
    for key in ("height", "width", "min_word_count", "text_workers"):
        _positive(f"data.{key}", getattr(d, key))
    _positive("data.workers", d.workers, allow_zero=True)
    _check(d.max_phrases is None or d.max_phrases >= 1,
           f"data.max_phrases: must be null or >= 1, got {d.max_phrases}")
    for key in ("word_dropout", "phrase_dropout"):
        value = getattr(d, key)
        _check(0 <= value < 1, f"data.{key}: must be in [0, 1), got {value}")


def _validate_train(t: TrainConfig) -> None:
    _check(t.batch_size >= 2, f"train.batch_size: must be at least 2, got {t.batch_size}")
    _positive("train.margin", t.margin, allow_zero=True)
    _choice("train.sampler", t.sampler, ("unique", "pk"))
    if t.sampler == "pk":
        _check(t.pk is not None and len(t.pk) == 2 and t.pk[0] >= 2 and t.pk[1] >= 1,
               f"train.pk: sampler 'pk' needs pk: [P, K] with P >= 2 identities and K >= 1 "
               f"images each, got {t.pk}")
    _choice("train.matching_loss", t.matching_loss, MATCHING_LOSSES)
    _choice("train.negatives", t.negatives, NEGATIVES)
    _positive("train.matching_temperature", t.matching_temperature)
    _positive("train.feature_cache_mb", t.feature_cache_mb, allow_zero=True)
    _check(0 <= t.erasing <= 1, f"train.erasing: must be in [0, 1], got {t.erasing}")
    _positive("train.minilm_lr_scale", t.minilm_lr_scale)
    _check(t.weak_weight >= 0, f"train.weak_weight: must be >= 0, got {t.weak_weight}")
    _check(0 <= t.drop_hardest < 1,
           f"train.drop_hardest: must be in [0, 1), got {t.drop_hardest}")
    _check(isinstance(t.drop_hardest_warmup, int) and t.drop_hardest_warmup >= 0,
           f"train.drop_hardest_warmup: must be a whole number of epochs >= 0, got "
           f"{t.drop_hardest_warmup}")
    _check(0 <= t.label_smoothing < 1,
           f"train.label_smoothing: must be in [0, 1), got {t.label_smoothing}")
    _choice("train.precision", t.precision, PRECISIONS)
    _choice("train.device", t.device, ("auto", "cpu", "cuda"))
    _check(t.grad_clip is None or t.grad_clip > 0,
           f"train.grad_clip: must be null or positive, got {t.grad_clip}")


def _validate_step(where: str, step: StepConfig) -> None:
    _positive(f"{where}.epochs", step.epochs, allow_zero=True)
    _positive(f"{where}.lr", step.lr)
    _check(step.lr_step is None or step.lr_step >= 1,
           f"{where}.lr_step: must be null or >= 1 epoch, got {step.lr_step}")
    _check(0 < step.lr_gamma <= 1, f"{where}.lr_gamma: must be in (0, 1], got {step.lr_gamma}")
    _positive(f"{where}.weight_decay", step.weight_decay, allow_zero=True)
    bad = [g for g in step.train if g not in PARAMETER_GROUPS]
    _check(not bad, f"{where}.train: unknown group(s) {bad}; valid: "
           f"{', '.join(PARAMETER_GROUPS)}")
    bad = [k for k in step.losses if k not in LOSS_NAMES]
    _check(not bad, f"{where}.losses: unknown loss(es) {bad}; valid: {', '.join(LOSS_NAMES)}")
    _check(bool(step.losses), f"{where}.losses: at least one loss is needed")
    for key, weight in step.losses.items():
        _positive(f"{where}.losses.{key}", weight, allow_zero=True)


def _validate_eval(e: EvalConfig) -> None:
    _positive("eval.lambda1", e.lambda1, allow_zero=True)
    _positive("eval.lambda2", e.lambda2, allow_zero=True)
    _positive("eval.batch_size", e.batch_size)
    metric = e.select.split(".")
    _check(len(metric) == 2 and metric[0] in GRANULARITY_KEYS and metric[1] in METRICS,
           f"eval.select: {e.select!r} is not <{'|'.join(GRANULARITY_KEYS)}>."
           f"<{'|'.join(METRICS)}>")
    _check(e.distractors is None or (isinstance(e.distractors, str)
                                     and e.distractors not in ("", "train", "val")),
           f"eval.distractors: must be null or the name of a split other than train and val, "
           f"got {e.distractors!r}")


def load_config(name: str | Path, overrides: list[str] | None = None) -> Config:
    raw = apply_overrides(load_raw(resolve_config_path(name)), list(overrides or []))
    return validate(from_dict(Config, _drop_null_steps(raw)))


def config_from_dict(raw: dict) -> Config:
    return validate(from_dict(Config, _drop_null_steps(raw)))


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
