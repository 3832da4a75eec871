"""Search a gallery index with a description, and explain each result.

Small galleries are scored exhaustively with the exact fusion sF = sG + λ1 sR + λ2 sL.
Large ones use two stages: the ``candidates`` best images by sG from the global features
(:mod:`mia.retrieval.candidates`), then exact sF on those candidates only. Each result is
explained by the RGA I->T weights of the image's stripes for the sentence and, for each
noun phrase, its best-matching stripe under BFM (P->N).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mia.model.embeddings import TextEmbeddings
from mia.model.similarity import fuse, paired_attention
from mia.retrieval.candidates import CandidateIndex
from mia.retrieval.growth import stage1_db
from mia.retrieval.index import GalleryIndex, check_fingerprint, model_fingerprint
from mia.retrieval.vectordb import VectorDB
from mia.scoring.exact import Gallery, score_all, score_prepared
from mia.text.queries import QueryError, read_query
from mia.utils.errors import MiaError
from mia.utils.io import atomic_open

log = logging.getLogger(__name__)

EXHAUSTIVE_MB = 1024  # galleries whose prepared tensors fit this are scored exhaustively
DEFAULT_CANDIDATES = 500


def _manifest_stamp(index: GalleryIndex):
    if index.path is None:
        return None
    stat = os.stat(index.path / "manifest.json")
    return stat.st_mtime_ns, stat.st_ino, stat.st_size


CACHED = ("faiss-ivf", "faiss-ivf-sq8", "faiss-hnsw")  # stage-1 backends slow to build


def _stage1_cache(index: GalleryIndex, backend: str) -> Path | None:
    """Where a FAISS stage 1 built at this version of the index is kept: ``INDEX/.stage1/``,
    named by the index's uid and generation."""
    if index.path is None or backend not in CACHED:
        return None
    return index.path / ".stage1" / f"{_cache_prefix(index, backend)}{index.generation}.faiss"


def _cache_prefix(index: GalleryIndex, backend: str) -> str:
    return f"{backend}-{index.manifest.get('uid', 'index')}-g"


def _cached_generations(index: GalleryIndex, backend: str) -> dict[int, Path]:
    """Kept stage-1 files of this index and backend, by the generation they were built at."""
    folder, prefix = index.path / ".stage1", _cache_prefix(index, backend)
    found = {}
    for file in folder.glob(f"{prefix}*.faiss") if folder.is_dir() else ():
        generation = file.name[len(prefix):-len(".faiss")]
        if generation.isdigit():
            found[int(generation)] = file
    return found


def _save_stage1(index: GalleryIndex, stage1: CandidateIndex, ids: np.ndarray) -> None:
    """Keep a freshly built ``stage1`` and the global ids of its rows, and drop the files
    of earlier generations; a read-only index folder only costs the next start the build."""
    path = _stage1_cache(index, stage1.backend)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(_ids_file(path), "wb") as handle:  # first: a crash in between
            np.save(handle, ids, allow_pickle=False)  # leaves counts that disagree
        stage1.save(path)
        for generation, old in _cached_generations(index, stage1.backend).items():
            if generation < index.generation:
                old.unlink(missing_ok=True)
                _ids_file(old).unlink(missing_ok=True)
    except OSError as exc:
        log.warning("stage 1 not cached in %s (%s): the next start builds it again",
                    path.parent, exc)


def _load_stage1(path: Path, backend: str, dim: int) -> tuple[CandidateIndex, np.ndarray]:
    stage1 = CandidateIndex.load(path, backend, dim)
    try:
        ids = np.load(_ids_file(path), allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise MiaError(f"{_ids_file(path)}: unreadable stage-1 cache ({exc})") from exc
    if ids.shape != (len(stage1),):
        raise MiaError(f"{path}: {len(stage1)} rows, {ids.shape} ids in {_ids_file(path).name}")
    return stage1, ids


def _ids_file(path: Path) -> Path:
    return path.with_name(path.stem + ".ids.npy")


STALE = 0.1  # an in-process stage 1 is rebuilt when this share of its rows was removed
REGROW = 4  # ... or when it holds this many times the images it was built (trained) with


class Searcher:
    """Answers descriptions over a gallery index with a :class:`mia.api.Retriever`."""

    def __init__(self, index: GalleryIndex, retriever, *, lambda1: float | None = None,
                 lambda2: float | None = None, candidates: int | None = None,
                 backend: str = "auto", check: bool = True):
        if check:
            check_fingerprint(index, model_fingerprint(retriever.trained))
        self.retriever = retriever
        self.lambda1, self.lambda2 = retriever.trained.lambdas(lambda1, lambda2)
        self.candidates = candidates
        if backend == "auto":
            backend = "milvus" if index.manifest.get("stage1") else "torch"
        if backend == "milvus" and not index.manifest.get("stage1"):
            raise MiaError(f"{index.path} has no vector database (mia index sync adds one)")
        self.backend = backend
        self._reload = threading.RLock()  # a reload never happens in the middle of a search
        self._use(index)

    def _use(self, index: GalleryIndex) -> None:
        previous = getattr(self, "_stage1", None)
        previous_ids = getattr(self, "_stage1_ids", None)
        previous_index = getattr(self, "index", None)
        self.index = index
        self._stage1: CandidateIndex | VectorDB | None = None
        self._stage1_ids: np.ndarray | None = None  # global id of each in-process row
        self._dead = 0  # rows of the in-process stage 1 whose images were removed
        self._gallery: Gallery | None = None  # prepared once for exhaustive search
        self._stamp = _manifest_stamp(index)
        per_image = Gallery.bytes_per_image(index.dim, index.num_parts)
        self.exhaustive_up_to = EXHAUSTIVE_MB * 2**20 // per_image
        if self.backend == "milvus":
            self._stage1 = stage1_db(index, reuse=previous if isinstance(previous, VectorDB)
                                     else None)  # checked against the disk now
        elif isinstance(previous, CandidateIndex) and previous_index is not None \
                and previous_index.manifest.get("uid") == index.manifest.get("uid") \
                and previous_index.generation <= index.generation:
            self._catch_up(previous, previous_ids)  # the same index, changed since

    def _catch_up(self, stage1: CandidateIndex, ids: np.ndarray) -> None:
        """Keep an in-process stage 1 of an earlier version of this index: it takes the
        rows of the images added since (ids above its newest) and keeps the rows of
        removed ones (searches drop them), until STALE of its rows are removed ones or it
        grew REGROW times (its IVF cells were fitted to fewer images)."""
        index = self.index
        new = np.flatnonzero(index.live > (ids.max() if len(ids) else -1))
        dead = len(ids) - (len(index) - len(new))  # its rows no longer in the index
        if not 0 <= dead <= STALE * max(len(ids), 1) \
                or len(ids) + len(new) > REGROW * max(stage1.built, 1):
            return  # built again at the next search
        if len(new):
            stage1.add(index.rows("global", new))
            ids = np.concatenate([ids, index.live[new]])
        self._stage1, self._stage1_ids, self._dead = stage1, ids, dead

    def refresh(self) -> bool:
        """Reopen the index if ``mia index add/remove/sync`` published a change since it
        was opened (one stat of its manifest); True when it did."""
        if self.index.path is None or _manifest_stamp(self.index) == self._stamp:
            return False
        with self._reload:
            if _manifest_stamp(self.index) == self._stamp:
                return False  # another thread reloaded it meanwhile
            self._use(GalleryIndex.open(self.index.path,
                                        image_root=self.index.root_override))
        log.info("index %s reloaded: generation %d, %d images", self.index.path,
                 self.index.generation, len(self.index))
        return True

    def current_index(self) -> GalleryIndex:
        """The index as of the last published change (reloaded if needed)."""
        with self._reload:
            self.refresh()
            return self.index

    @property
    def stage1(self) -> CandidateIndex | VectorDB:
        if self._stage1 is None:
            cache = _stage1_cache(self.index, self.backend)
            kept = {g: f for g, f in _cached_generations(self.index, self.backend).items()
                    if g <= self.index.generation} if cache is not None else {}
            if kept:  # the newest kept stage 1, brought up to date
                try:
                    self._catch_up(*_load_stage1(kept[max(kept)], self.backend,
                                                 self.index.dim))
                except MiaError as exc:  # built again below, and the cache replaced
                    log.warning("%s", exc)
            if self._stage1 is None:
                log.info("stage 1: building %s over %d images%s", self.backend,
                         len(self.index), f" (kept in {cache.parent})" if cache else "")
                self._stage1 = CandidateIndex(self.index.rows("global"), self.backend)
                self._stage1_ids, self._dead = self.index.live.copy(), 0
                _save_stage1(self.index, self._stage1, self._stage1_ids)
        return self._stage1

    def encode(self, text: str) -> tuple[TextEmbeddings, list[list[str]], list[str]]:
        """(embedding, phrases, warnings) of a query; unusable queries raise QueryError."""
        config = self.retriever.config
        parsed, warnings = read_query(text, config.data.phrase_mode, self.retriever.trained.vocab,
                                      config.model.wordpieces)
        return self.retriever.encode_parsed([parsed]), parsed.phrases, warnings

    def _candidate_ids(self, txt: TextEmbeddings, count: int | None) -> torch.Tensor | None:
        """Stage-1 candidates, or None to score every image exactly."""
        G = len(self.index)
        if count is None:
            count = self.candidates
        if count is None and G <= self.exhaustive_up_to or count is not None and count >= G:
            return None
        t_hat = F.normalize(txt.global_.float(), dim=-1)
        count = count or DEFAULT_CANDIDATES
        stage1 = self.stage1
        # removed images' rows may take places: ask for more (at most twice as many)
        found = stage1.search(t_hat, count + min(self._dead, count))[1][0].numpy()
        ids = found if self.backend == "milvus" else self._stage1_ids[found]
        # removed images (and a database's rows of an unpublished add) dropped
        positions = torch.from_numpy(self.index.positions(ids))
        return positions[positions >= 0][:count]

    def scores(self, txt: TextEmbeddings, ids: torch.Tensor | None,
               chunk: int = 8192) -> dict[str, torch.Tensor]:
        """sG, sR, sL, sF [1, C] for candidate ``ids`` (all images when None)."""
        keys = ("sG", "sR", "sL")
        if ids is not None:
            out = score_all(self.index.embeddings(ids.numpy()), txt, keys=keys)
        elif len(self.index) <= self.exhaustive_up_to:
            if self._gallery is None:
                self._gallery = Gallery.build(self.index.embeddings(), torch.float32)
            out = score_prepared(self._gallery, txt, keys=keys)
        else:  # exact over a gallery too large to keep prepared: stream it in chunks
            parts = [score_all(self.index.embeddings(np.arange(s, min(s + chunk, len(self.index)))),
                               txt, keys=keys) for s in range(0, len(self.index), chunk)]
            out = {k: torch.cat([p[k] for p in parts], dim=1) for k in keys}
        out["sF"] = fuse(out, self.lambda1, self.lambda2)
        return out

    def search(self, text: str, top_k: int = 10, candidates: int | None = None) -> dict:
        """The JSON-ready answer for one query (schema in the README)."""
        answer = self.search_many([text], top_k, candidates)[0]
        if isinstance(answer, QueryError):
            raise answer
        return answer

    def search_many(self, texts: list[str], top_k: int = 10, candidates: int | None = None
                    ) -> list[dict | QueryError]:
        """Answers for several queries (a QueryError in place of an unusable one). Scored
        exhaustively, they share one pass over the gallery's features."""
        if top_k < 1:
            raise QueryError("top must be at least 1")
        with self._reload:  # one consistent index for the whole answer
            self.refresh()
            return self._search_many(texts, top_k, candidates)

    def _search_many(self, texts: list[str], top_k: int, candidates: int | None
                     ) -> list[dict | QueryError]:
        answers: list[dict | QueryError | None] = [None] * len(texts)
        encoded = {}
        for i, text in enumerate(texts):
            try:
                encoded[i] = self.encode(text)
            except QueryError as exc:
                answers[i] = exc
        order = list(encoded)
        ids = {i: self._candidate_ids(encoded[i][0], candidates) for i in order}
        if order and all(v is None for v in ids.values()):
            batch = self.scores(TextEmbeddings.cat([encoded[i][0] for i in order]), None)
            rows = {i: {k: v[r:r + 1] for k, v in batch.items()} for r, i in enumerate(order)}
        else:
            rows = {i: self.scores(encoded[i][0], ids[i]) for i in order}
        for i in order:
            txt, phrases, warnings = encoded[i]
            phrases = [" ".join(p) for p in phrases]
            answers[i] = {"query": texts[i], "phrases": phrases, "lambda1": self.lambda1,
                          "lambda2": self.lambda2,
                          **self._rank(txt, phrases, rows[i], ids[i], top_k),
                          "gallery": len(self.index), "warnings": warnings}
        return answers

    def search_embedding(self, txt: TextEmbeddings, phrases: list[str], top_k: int = 10,
                         candidates: int | None = None) -> dict:
        """Ranked, explained results for an encoded query (one caption)."""
        with self._reload:
            ids = self._candidate_ids(txt, candidates)
            return self._rank(txt, phrases, self.scores(txt, ids), ids, top_k)

    def _rank(self, txt: TextEmbeddings, phrases: list[str], scores: dict,
              ids: torch.Tensor | None, top_k: int) -> dict:
        """Top results of one query's score row [1, C], with their explanations."""
        k = min(top_k, scores["sF"].shape[1])
        best = torch.topk(scores["sF"][0], k).indices
        gallery_ids = best if ids is None else ids[best]
        img = self.index.embeddings(gallery_ids.numpy())
        m = int(txt.phrase_mask[0].sum())  # drop padding a batch may have added
        one = TextEmbeddings(txt.global_, txt.phrases[:, :m], txt.phrase_mask[:, :m],
                             txt.rga_keys[:, :m], txt.bfm_keys[:, :m])
        att = paired_attention(img, TextEmbeddings(*(t.expand(k, *t.shape[1:])
                                                     for t in one.state().values())))
        stripe_of_phrase = att["a"].argmax(-1).tolist()  # [k, m]
        results = []
        for rank, (col, gid) in enumerate(zip(best.tolist(), gallery_ids.tolist()), 1):
            results.append({
                "rank": rank, "image": str(self.index.images[gid]), "index": gid,
                "id": int(self.index.live[gid]),
                "person_id": self.index.person_ids[gid],
                "score": round(float(scores["sF"][0, col]), 6),
                "sG": round(float(scores["sG"][0, col]), 6),
                "sR": round(float(scores["sR"][0, col]), 6),
                "sL": round(float(scores["sL"][0, col]), 6),
                "stripes": [round(float(v), 4) for v in att["v"][rank - 1]],
                "phrase_to_stripe": dict(zip(phrases, stripe_of_phrase[rank - 1])),
            })
        return {"candidates": None if ids is None else len(ids), "results": results}
