"""The evaluation protocol: queries = all captions of a split, gallery = all its images.

Returns R@1/5/10, Total, mAP and mINP for every granularity sG, sR, sL and the fusion sF
(Eq. 18), the lambda1 / lambda2 sweeps of Tables XI / XII computed from the same
similarity matrices, and results per CUHK-PEDES sub-dataset (Tables VIII / IX) when the
file paths reveal them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mia.data.records import ImageRecord
from mia.data.subsets import subset_of
from mia.evaluation.metrics import rank_metrics
from mia.model.similarity import fuse
from mia.utils.errors import MiaError

GRANULARITIES = ("sG", "sR", "sL")
LAMBDA1_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)
LAMBDA2_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5)


@dataclass
class EvalInputs:
    """A split laid out for evaluation: unique gallery images and one query per caption."""

    gallery: list[ImageRecord]
    query_texts: list[str]
    query_pids: Tensor  # [Q]
    gallery_pids: Tensor  # [G]
    query_subsets: list[str | None]
    query_images: list[int] | None = None  # gallery position of the image each caption describes

    @classmethod
    def from_records(cls, records: list[ImageRecord],
                     distractors: list[ImageRecord] = ()) -> EvalInputs:
        """Queries: the captions of ``records``; gallery: their images, then the images of
        ``distractors`` (other people, e.g. another split's: a larger, harder gallery)."""
        shared = {r.person_id for r in records} & {r.person_id for r in distractors}
        if shared:
            raise MiaError(f"distractor images show {len(shared)} queried people "
                             f"(e.g. id {min(shared)}); distractors must be other people")
        texts = [c for r in records for c in r.captions]
        pids = [r.person_id for r in records for _ in r.captions]
        subsets = [subset_of(r.file_path) for r in records for _ in r.captions]
        images = [i for i, r in enumerate(records) for _ in r.captions]
        gallery = list(records) + list(distractors)
        return cls(gallery, texts, torch.tensor(pids), torch.tensor([r.person_id for r in gallery]),
                   subsets, images)


def evaluate_scores(scores: dict[str, Tensor], inputs: EvalInputs, lambda1: float,
                    lambda2: float) -> dict[str, dict]:
    """Metrics of sG, sR, sL and sF = sG + lambda1 sR + lambda2 sL."""
    all_scores = {**scores, "sF": fuse(scores, lambda1, lambda2)}
    return {name: rank_metrics(s, inputs.query_pids, inputs.gallery_pids)
            for name, s in all_scores.items()}


def lambda_sweeps(scores: dict[str, Tensor], inputs: EvalInputs,
                  lambda1_grid=LAMBDA1_GRID, lambda2_grid=LAMBDA2_GRID) -> dict[str, list]:
    """Table XI (lambda1 with lambda2 = 0) and Table XII (lambda2 with lambda1 = 0)."""
    def run(l1, l2):
        return rank_metrics(fuse(scores, l1, l2), inputs.query_pids, inputs.gallery_pids)

    return {"lambda1": [{"lambda1": l, **run(l, 0.0)} for l in lambda1_grid],
            "lambda2": [{"lambda2": l, **run(0.0, l)} for l in lambda2_grid]}


def per_subset(scores: dict[str, Tensor], inputs: EvalInputs, lambda1: float,
               lambda2: float) -> dict[str, dict]:
    """Metrics for the queries of each sub-dataset, ranked against the whole gallery."""
    names = sorted({s for s in inputs.query_subsets if s})
    out = {}
    all_scores = {**scores, "sF": fuse(scores, lambda1, lambda2)}
    for name in names:
        rows = torch.tensor([s == name for s in inputs.query_subsets])
        out[name] = {g: rank_metrics(s[rows], inputs.query_pids[rows], inputs.gallery_pids)
                     for g, s in all_scores.items()}
        out[name]["images"] = sum(subset_of(r.file_path) == name for r in inputs.gallery)
    return out
