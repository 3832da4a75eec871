"""Everything the figures and the report need from a trained run on one split, computed
once: embeddings, the four similarity matrices, and per-query rankings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from mia.artifacts.run import load_trained
from mia.artifacts.trained import TrainedModel
from mia.data.pipeline import RunData, load_run_data
from mia.evaluation.evaluate import EvalInputs
from mia.evaluation.run_eval import encode_split
from mia.model.embeddings import ImageEmbeddings, TextEmbeddings
from mia.model.similarity import fuse, paired_attention
from mia.scoring.exact import granularity_scores

# rankings shown side by side in Fig. 8 (granularities of one MIA model)
RANKINGS = ("GC", "GC+RGA", "MIA")


@dataclass
class Analysis:
    trained: TrainedModel
    data: RunData
    inputs: EvalInputs
    img: ImageEmbeddings
    txt: TextEmbeddings
    scores: dict[str, torch.Tensor]  # sG, sR, sL [Q, G]
    _first_hit: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @classmethod
    def from_run(cls, run: str | Path, data_dir: str | Path, split: str = "test",
                 checkpoint: str | Path | None = None, progress: bool = False) -> Analysis:
        trained = load_trained(run, checkpoint)
        data = load_run_data(trained.config.data, data_dir, vocab=trained.vocab,
                             wordpieces=trained.config.model.wordpieces, progress=progress)
        inputs, img, txt = encode_split(trained, data, split, progress=progress)
        return cls(trained, data, inputs, img, txt, granularity_scores(img, txt))

    @property
    def lambdas(self) -> tuple[float, float]:
        return self.trained.lambdas()

    def ranking_scores(self, name: str) -> torch.Tensor:
        if name == "GC":
            return self.scores["sG"]
        l1, l2 = self.lambdas
        return fuse(self.scores, l1, 0.0 if name == "GC+RGA" else l2)

    def top(self, query: int, k: int = 10, ranking: str = "MIA") -> list[int]:
        scores = self.ranking_scores(ranking)[query]
        return torch.topk(scores, min(k, len(scores))).indices.tolist()

    def is_match(self, query: int, image: int) -> bool:
        return bool(self.inputs.query_pids[query] == self.inputs.gallery_pids[image])

    def first_hit_rank(self, ranking: str = "MIA") -> torch.Tensor:
        """0-based rank of the first true image for every query [Q] (computed once per
        ranking: a query's rank is the number of images scored above its best true one)."""
        if ranking not in self._first_hit:
            scores = self.ranking_scores(ranking)
            match = self.inputs.gallery_pids[None, :] == self.inputs.query_pids[:, None]
            best_true = scores.masked_fill(~match, float("-inf")).max(1)
            above = (scores > best_true.values[:, None]).sum(1)
            # ties with the best true image rank before it when they come first (stable sort)
            position = torch.arange(scores.shape[1])[None, :]
            tied_before = ((scores == best_true.values[:, None])
                           & (position < best_true.indices[:, None])).sum(1)
            self._first_hit[ranking] = above + tied_before
        return self._first_hit[ranking]

    def attention(self, query: int, image: int) -> dict[str, torch.Tensor]:
        """RGA and BFM weights of one (caption, image) pair (see paired_attention)."""
        keep = self.txt.phrase_mask[query]
        txt = self.txt.select(slice(query, query + 1))
        txt = TextEmbeddings(txt.global_, txt.phrases[:, keep], txt.phrase_mask[:, keep],
                             txt.rga_keys[:, keep], txt.bfm_keys[:, keep])
        att = paired_attention(self.img.select(slice(image, image + 1)), txt)
        return {k: v[0] for k, v in att.items()}

    def phrases(self, query: int) -> list[str]:
        return [" ".join(p) for p in self.data.parsed[self.inputs.query_texts[query]].phrases]

    def image_path(self, image: int) -> Path:
        return self.data.dataset.image_path(self.inputs.gallery[image])
