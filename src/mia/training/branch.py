"""A new run that starts from another run's step checkpoint (``mia train --start-from``).

The paper's ablations (GC, GC + RGA, MIA; Table III) share their first steps: their
configs differ only in the steps that come later. A run of one of them may therefore start
from the end of a shared step of a run already trained, instead of training that step
again; at 11,000 people on a CPU that saves one step 1 (about 22 minutes) per ablation.

What it is worth is what ``--resume`` is worth: the new run is the run the source would
have been with the new config, continued from the source's ``RUN/checkpoints/<step>.pt``.
That holds only where everything the earlier steps computed from is the same, so the
model, data and training settings and every step before the start must equal the
source's (but for the settings of the matching losses, where every shared step trains the
identity loss alone), and the training split must be the one the source trained on (by
content hash); the first difference is named in one line. The evaluation settings and the
later steps may differ. The new run records where it started in RUN/meta.json
("started_from").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mia.artifacts.checkpoint import load_checkpoint
from mia.artifacts.run import RunDir
from mia.config import Config
from mia.training.objectives import MATCHING
from mia.utils.errors import CheckpointError, MiaError
from mia.utils.io import sha256_file

# settings that change how fast a run goes or what it reports, not what it computes
RUNTIME_ONLY = {"train.device", "train.validate", "train.feature_cache_mb",
                "data.cache_images", "data.workers", "data.text_workers"}
# settings that shape only the matching losses (training/objectives.py: compute_losses): a
# step without any of them (the paper's step 1: identity loss alone) computes the same
# whatever their values, so a run may start after such steps with other values (screening
# them from one step1.pt)
MATCHING_ONLY = {"train.matching_loss", "train.margin", "train.negatives",
                 "train.matching_temperature", "train.drop_hardest",
                 "train.drop_hardest_warmup"}


@dataclass
class Start:
    """A checkpoint to start a new run from, with the run that wrote it."""

    state: dict  # the checkpoint, with no best (the new run selects its own best.pt)
    source: RunDir
    record: dict  # what RUN/meta.json keeps under "started_from"


def load_start(checkpoint: str | Path, config: Config) -> Start:
    """Read a step checkpoint and check that ``config`` may continue from it."""
    path = Path(checkpoint)
    if path.parent.name != "checkpoints":
        raise MiaError(f"--start-from {path}: not a checkpoint inside a run's "
                       "checkpoints/ folder (e.g. RUN/checkpoints/step1.pt)")
    state = load_checkpoint(path)
    source = RunDir(path.parent.parent)
    done, epoch = state["position"]["step"], state["position"]["epoch"]
    if epoch != 0 or done < 1:
        raise MiaError(f"--start-from {path}: not the end of a step (it stopped in step "
                       f"{done + 1}, epoch {epoch}); use RUN/checkpoints/<step>.pt")
    difference = first_difference(source.load_config(), config, done)
    if difference:
        raise MiaError(f"--start-from {path}: {difference}; a run can start only from "
                       "steps trained exactly as its config would train them")
    meta = source.load_meta()
    state = {**state, "best": None}
    return Start(state, source, {
        "checkpoint": str(path.resolve()), "sha256": sha256_file(path),
        "steps_done": done, "train_data_sha256": meta.get("train_data", {}).get("sha256")})


def first_difference(source: Config, config: Config, steps_done: int) -> str | None:
    """The first setting in which ``config``'s first ``steps_done`` steps would not train as
    ``source``'s did, or None."""
    ours, theirs = config.to_dict(), source.to_dict()
    ignored = set(RUNTIME_ONLY)
    shared = list(theirs["steps"].values())[:steps_done]
    if not any(loss in MATCHING for step in shared for loss in step["losses"]):
        ignored |= MATCHING_ONLY
    for section in ("model", "data", "train"):
        for key in sorted(set(ours[section]) | set(theirs[section])):
            name = f"{section}.{key}"
            if name not in ignored and ours[section].get(key) != theirs[section].get(key):
                return (f"{name} is {ours[section].get(key)!r} here and "
                        f"{theirs[section].get(key)!r} in the source run")
    mine, source_steps = list(ours["steps"].items()), list(theirs["steps"].items())
    if len(mine) < steps_done:
        return (f"the config has {len(mine)} steps and the checkpoint ends step "
                f"{steps_done}")
    for (name, step), (source_name, source_step) in zip(mine[:steps_done],
                                                        source_steps[:steps_done]):
        if name != source_name or step != source_step:
            return (f"step '{name}' differs from the source run's '{source_name}' "
                    f"({step} here, {source_step} there)")
    return None


def check_train_data(start: Start, identity: dict) -> None:
    """The new run's training split must be the source's (the content hash in meta.json)."""
    want = start.record["train_data_sha256"]
    if want is None:
        raise CheckpointError(f"{start.source.meta}: records no training-data hash, so "
                              "--start-from cannot check the data is the same")
    if identity["sha256"] != want:
        raise MiaError(f"--start-from: the training split of this data ({identity['images']} "
                       f"images, {identity['people']} people) is not the one "
                       f"{start.source.path} trained on (content hash differs)")
