"""Fusion weights chosen on a validation split (``mia evaluate --choose-lambdas``,
``eval.choose_lambdas``): the (lambda1, lambda2) of sF = sG + lambda1 sR + lambda2 sL
(Eq. 18) that rank best over a grid, from one encoding of the split.

The paper reports lambda1 = 1, lambda2 = 0.5 and its sweeps (Tables XI, XII) peak near 1.5
and 0.7; a model trained otherwise (other data, other schedule) may want others: on
cuhk-weak, sR alone ranked above sF at (1, 0.5). The grid reaches weights large enough that
sF orders images as sR or sL alone would (100: sG and the other term only break ties), so
the chosen sF is at least every single granularity on the split it was chosen on, up to
those ties. The choice is stored as RUN/fusion.json with the checkpoint it was made for;
loading that checkpoint (or an export of it) scores with it.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from torch import Tensor

from mia.artifacts.run import RunDir
from mia.evaluation.evaluate import EvalInputs
from mia.evaluation.metrics import rank_metrics
from mia.model.similarity import fuse
from mia.utils.io import atomic_write_json

FUSION_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0, 100.0)


def choose_lambdas(scores: dict[str, Tensor], inputs: EvalInputs, metric: str = "R1",
                   default: tuple[float, float] = (1.0, 0.5),
                   grid: tuple[float, ...] = FUSION_GRID) -> dict:
    """The grid point with the highest sF ``metric`` (ties: higher mAP, then the point
    nearest ``default``), with the metric at every point and at ``default``. A weight that
    ``default`` sets to 0 stays 0: the ablation it belongs to (GC: both; GC + RGA: lambda2)
    leaves that granularity out of sF."""
    def at(l1: float, l2: float) -> dict:
        return rank_metrics(fuse(scores, l1, l2), inputs.query_pids, inputs.gallery_pids)

    grid1, grid2 = ((grid if w > 0 else (0.0,)) for w in default)
    points = [(l1, l2, at(l1, l2)) for l1 in grid1 for l2 in grid2]

    def rank(point):
        l1, l2, m = point
        return m[metric], m["mAP"], -abs(l1 - default[0]) - abs(l2 - default[1])

    l1, l2, best = max(points, key=rank)
    return {"lambda1": l1, "lambda2": l2, "metric": f"sF.{metric}", "value": best[metric],
            "sF": best, "default": {"lambda1": default[0], "lambda2": default[1],
                                    "sF": at(*default)},
            "grid": [[a, b, m[metric], m["mAP"]] for a, b, m in points]}


def save_fusion(run: Path, choice: dict, checkpoint: Path, checkpoint_sha256: str,
                chosen_on: dict) -> Path:
    """Write RUN/fusion.json (atomically): the choice, the checkpoint it belongs to, where it
    was chosen."""
    path = RunDir(Path(run)).fusion
    atomic_write_json(path, {
        **{k: choice[k] for k in ("lambda1", "lambda2", "metric", "value")},
        "checkpoint": Path(checkpoint).name, "checkpoint_sha256": checkpoint_sha256,
        "chosen_on": chosen_on, "default": choice["default"],
        "chosen": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "grid": choice["grid"]})
    return path
