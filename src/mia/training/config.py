"""Run configuration: YAML files (the package's ``mia/configs/`` or any path), validated
into dataclasses.

A config may name a ``base`` config (a path relative to it, or a name in ``configs/``)
whose values it overrides; ``--set key=value`` overrides any key afterwards, including
list items (``steps.1.epochs=3``). Unknown keys are errors that list the valid keys.
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

from mia.model.backbones import BACKBONES, stage_prefixes
from mia.model.mia import MAX_ATTENTION_SCALE, PARAMETER_GROUPS, ModelConfig
from mia.model.text_encoder import WORD_ENCODERS
from mia.text.phrases import PHRASE_MODES
from mia.training.objectives import MATCHING_LOSSES, NEGATIVES
from mia.utils.errors import ConfigError

# shipped inside the package (configs/ at the top of the checkout links here)
CONFIG_DIR = Path(str(resources.files("mia") / "configs"))
LOSS_NAMES = ("id", "gc", "rga_it", "rga_ti", "bfm_pn", "bfm_np")


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
    # Probability that a training word is read as <unk> (so the <unk> vector learns what
    # unseen words should look like); 0 in the paper
    word_dropout: float = 0.0
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
    precision: str = "fp32"  # fp32 | bf16 | fp16
    grad_clip: float | None = None
    validate: bool = True  # evaluate on the validation split after every epoch
    channels_last: bool = False  # NHWC memory layout for the CNN (faster on many CPUs/GPUs)
    sync_bn: bool = True  # SyncBatchNorm when training on several GPUs
    # Memory for the outputs of the CNN stages a step does not train (all of them in steps
    # that freeze the CNN, model.frozen_stages otherwise), computed once per image and
    # mirroring and reused every epoch; 0 turns the cache off
    feature_cache_mb: float = 0.0

    def matching(self):
        from mia.training.objectives import MatchingConfig

        return MatchingConfig(self.matching_loss, self.margin, self.negatives,
                              self.matching_temperature)


@dataclass
class EvalConfig:
    lambda1: float = 1.0  # weight of sR in sF (Eq. 18)
    lambda2: float = 0.5  # weight of sL in sF
    batch_size: int = 128
    select: str = "sF.R1"  # validation metric that picks best.pt (last step)


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
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
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


def validate(cfg: Config) -> Config:
    def check(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(message)

    check(cfg.model.backbone in BACKBONES,
          f"model.backbone: {cfg.model.backbone!r} is not one of {', '.join(BACKBONES)}")
    check(cfg.model.word_encoder in WORD_ENCODERS,
          f"model.word_encoder: {cfg.model.word_encoder!r} is not one of "
          f"{', '.join(WORD_ENCODERS)}")
    check(0 <= cfg.model.minilm_trainable_layers <= 6,
          "model.minilm_trainable_layers: must be between 0 and 6")
    stages = len(stage_prefixes(cfg.model.backbone)) if cfg.model.backbone in BACKBONES else 0
    check(0 <= cfg.model.frozen_stages <= stages,
          f"model.frozen_stages: must be between 0 and {stages} (the stages of "
          f"{cfg.model.backbone})")
    check(cfg.data.phrase_mode in PHRASE_MODES,
          f"data.phrase_mode: {cfg.data.phrase_mode!r} is not one of {', '.join(PHRASE_MODES)}")
    check(cfg.train.sampler in ("unique", "pk"), "train.sampler: must be 'unique' or 'pk'")
    check(cfg.train.sampler != "pk" or (cfg.train.pk is not None and len(cfg.train.pk) == 2),
          "train.pk: sampler 'pk' needs pk: [P, K]")
    check(cfg.train.batch_size >= 2, "train.batch_size: must be at least 2")
    check(cfg.train.matching_loss in MATCHING_LOSSES,
          f"train.matching_loss: {cfg.train.matching_loss!r} is not one of "
          f"{', '.join(MATCHING_LOSSES)}")
    check(cfg.train.negatives in NEGATIVES,
          f"train.negatives: {cfg.train.negatives!r} is not one of {', '.join(NEGATIVES)}")
    check(cfg.train.matching_temperature > 0, "train.matching_temperature: must be positive")
    check(cfg.train.feature_cache_mb >= 0, "train.feature_cache_mb: must be >= 0")
    check(0 <= cfg.data.word_dropout < 1, "data.word_dropout: must be in [0, 1)")
    check(0 < cfg.model.attention_scale <= MAX_ATTENTION_SCALE,
          f"model.attention_scale: must be in (0, {MAX_ATTENTION_SCALE:g}]")
    check(cfg.train.precision in ("fp32", "bf16", "fp16"),
          "train.precision: must be fp32, bf16 or fp16")
    check(cfg.train.device in ("auto", "cpu", "cuda"), "train.device: must be auto, cpu or cuda")
    check(bool(cfg.steps), "steps: at least one training step is needed")
    for name, step in cfg.steps.items():
        where = f"steps.{name}"
        check(step.epochs >= 0, f"{where}.epochs: must be >= 0")
        check(step.lr > 0, f"{where}.lr: must be positive")
        bad = [g for g in step.train if g not in PARAMETER_GROUPS]
        check(not bad, f"{where}.train: unknown group(s) {bad}; valid: "
              f"{', '.join(PARAMETER_GROUPS)}")
        bad = [k for k in step.losses if k not in LOSS_NAMES]
        check(not bad, f"{where}.losses: unknown loss(es) {bad}; valid: {', '.join(LOSS_NAMES)}")
        check(bool(step.losses), f"{where}.losses: at least one loss is needed")
    metric = cfg.eval.select.split(".")
    check(len(metric) == 2 and metric[0] in ("sG", "sR", "sL", "sF"),
          "eval.select: expected <sG|sR|sL|sF>.<R1|R5|R10|total|mAP|mINP>")
    return cfg


def load_config(name: str | Path, overrides: list[str] | None = None) -> Config:
    raw = apply_overrides(load_raw(resolve_config_path(name)), list(overrides or []))
    return validate(from_dict(Config, _drop_null_steps(raw)))


def config_from_dict(raw: dict) -> Config:
    return validate(from_dict(Config, _drop_null_steps(raw)))


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
