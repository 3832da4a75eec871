"""Search a gallery index with a description, and explain each result.

Small galleries are scored exhaustively with the exact fusion sF = sG + λ1 sR + λ2 sL.
Large ones use two stages: the ``candidates`` best images by sG from the global features
(:mod:`mia.retrieval.candidates`), then exact sF on those candidates only. Each result is
explained by the RGA I->T weights of the image's stripes for the sentence and, for each
noun phrase, its best-matching stripe under BFM (P->N).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from mia.data.loading import CaptionCorpus, collate_captions
from mia.model.embeddings import TextEmbeddings
from mia.model.similarity import paired_attention
from mia.retrieval.candidates import CandidateIndex
from mia.retrieval.index import GalleryIndex, check_fingerprint, model_fingerprint
from mia.retrieval.scoring import score_all
from mia.text.phrases import parse_caption
from mia.utils.errors import MiaError

log = logging.getLogger(__name__)

MAX_QUERY_WORDS = 120  # CUHK-PEDES captions have at most ~96 words
EXHAUSTIVE_UP_TO = 20000  # galleries this small are scored exactly without candidates


class QueryError(MiaError):
    """A query that cannot be searched (empty, or no readable words)."""


class Searcher:
    def __init__(self, index: GalleryIndex, trained, *, lambda1: float | None = None,
                 lambda2: float | None = None, candidates: int | None = None,
                 backend: str = "torch", check: bool = True):
        if check:
            check_fingerprint(index, model_fingerprint(trained))
        self.index, self.trained = index, trained
        self.lambda1 = trained.config.eval.lambda1 if lambda1 is None else lambda1
        self.lambda2 = trained.config.eval.lambda2 if lambda2 is None else lambda2
        self.candidates = candidates
        self.backend = backend
        self._stage1: CandidateIndex | None = None

    @property
    def stage1(self) -> CandidateIndex:
        if self._stage1 is None:
            self._stage1 = CandidateIndex(self.index.arrays["global"], self.backend)
        return self._stage1

    def encode(self, text: str) -> tuple[TextEmbeddings, list[list[str]], list[str]]:
        """(embedding, phrases, warnings) of a query; unusable queries raise QueryError."""
        if not text or not text.strip():
            raise QueryError("the query is empty; describe the person, e.g. 'a woman in a "
                             "red t-shirt and black trousers'")
        warnings = []
        parsed = parse_caption(text, self.trained.config.data.phrase_mode)
        if not parsed.tokens:
            raise QueryError("the query has no words the model can read (it reads English "
                             "words in Latin letters)")
        if len(parsed.tokens) > MAX_QUERY_WORDS:
            warnings.append(f"the query has {len(parsed.tokens)} words; only the first "
                            f"{MAX_QUERY_WORDS} are used")
            spans = [(a, min(b, MAX_QUERY_WORDS)) for a, b in parsed.spans
                     if a < MAX_QUERY_WORDS]
            parsed = parsed._replace(tokens=parsed.tokens[:MAX_QUERY_WORDS], spans=spans)
        vocab = self.trained.vocab
        unknown = [t for t in parsed.tokens if t not in vocab.index]
        if len(unknown) == len(parsed.tokens):
            warnings.append("none of the query's words is in the model's vocabulary; the "
                            "results are not meaningful")
        elif unknown:
            warnings.append(f"unknown words ignored by the model: {' '.join(unknown[:10])}")
        corpus = CaptionCorpus({text: parsed}, vocab)
        batch = collate_captions([corpus.encode(text)])
        with torch.no_grad():
            emb = self.trained.model.encode_texts(**batch)
        return emb, parsed.phrases, warnings

    def _candidate_ids(self, txt: TextEmbeddings, count: int | None) -> torch.Tensor | None:
        G = len(self.index)
        if count is None:
            count = self.candidates
        if count is None and G <= EXHAUSTIVE_UP_TO or count is not None and count >= G:
            return None
        t_hat = F.normalize(txt.global_.float(), dim=-1)
        return self.stage1.search(t_hat, count or 500)[1][0]

    def scores(self, txt: TextEmbeddings, ids: torch.Tensor | None,
               chunk: int = 8192) -> dict[str, torch.Tensor]:
        """sG, sR, sL, sF [1, C] for candidate ``ids`` (all images when None)."""
        parts = []
        pieces = [ids] if ids is not None else [torch.arange(s, min(s + chunk, len(self.index)))
                                                for s in range(0, len(self.index), chunk)]
        for piece in pieces:
            img = self.index.embeddings(piece.numpy())
            parts.append(score_all(img, txt, keys=("s_g", "s_r", "s_l")))
        out = {k: torch.cat([p[k] for p in parts], dim=1) for k in ("s_g", "s_r", "s_l")}
        out["s_f"] = out["s_g"] + self.lambda1 * out["s_r"] + self.lambda2 * out["s_l"]
        return out

    def search(self, text: str, top_k: int = 10, candidates: int | None = None) -> dict:
        """The JSON-ready answer for one query (schema in the README)."""
        if top_k < 1:
            raise QueryError("top must be at least 1")
        txt, phrases, warnings = self.encode(text)
        found = self.search_embedding(txt, [" ".join(p) for p in phrases], top_k, candidates)
        return {"query": text, "phrases": [" ".join(p) for p in phrases],
                "lambda1": self.lambda1, "lambda2": self.lambda2, **found,
                "gallery": len(self.index), "warnings": warnings}

    def search_embedding(self, txt: TextEmbeddings, phrases: list[str], top_k: int = 10,
                         candidates: int | None = None) -> dict:
        """Ranked, explained results for an encoded query (one caption)."""
        ids = self._candidate_ids(txt, candidates)
        scores = self.scores(txt, ids)
        k = min(top_k, scores["s_f"].shape[1])
        best = torch.topk(scores["s_f"][0], k).indices
        gallery_ids = best if ids is None else ids[best]
        img = self.index.embeddings(gallery_ids.numpy())
        att = paired_attention(img, TextEmbeddings(*(t.expand(k, *t.shape[1:])
                                                     for t in txt.state().values())))
        stripe_of_phrase = att["a"].argmax(-1).tolist()  # [k, m]
        results = []
        for rank, (col, gid) in enumerate(zip(best.tolist(), gallery_ids.tolist()), 1):
            results.append({
                "rank": rank, "image": str(self.index.images[gid]), "index": gid,
                "person_id": self.index.person_ids[gid],
                "score": round(float(scores["s_f"][0, col]), 6),
                "sG": round(float(scores["s_g"][0, col]), 6),
                "sR": round(float(scores["s_r"][0, col]), 6),
                "sL": round(float(scores["s_l"][0, col]), 6),
                "stripes": [round(float(v), 4) for v in att["v"][rank - 1]],
                "phrase_to_stripe": dict(zip(phrases, stripe_of_phrase[rank - 1])),
            })
        return {"candidates": None if ids is None else len(ids), "results": results}
