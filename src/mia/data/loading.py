"""Torch datasets, collation and batch samplers for training and evaluation.

- :class:`CaptionCorpus` turns parsed captions into token ids with a vocabulary.
- :class:`ImageStore` reads, resizes and normalises images (optionally cached in memory).
- :class:`TrainPairs` gives one (image, caption) item per caption; :class:`GalleryImages`
  one item per image and :class:`QueryCaptions` one per caption (gallery and queries are
  separate at test time, so each image is encoded once).
- :class:`UniqueImageBatchSampler` never puts one image twice in a batch (two captions of
  one image must not be each other's negatives) and can sample P identities x K images.

Randomness (sampling order, flips) is a pure function of (seed, epoch, index), so a
resumed run sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from mia.data.augment import drop_phrases
from mia.data.images import load_image, normalize, to_pixels
from mia.data.records import ImageRecord
from mia.text.phrases import ParsedCaption
from mia.text.vocab import UNK_ID, Vocabulary
from mia.utils.errors import DatasetError


@dataclass(frozen=True)
class EncodedCaption:
    """A caption as the text encoder reads it: word ids, phrases as ``[start, end)`` word
    spans, and (for the MiniLM word encoder) WordPiece ids with the word of each piece."""

    tokens: list[int]
    spans: list[tuple[int, int]]
    pieces: list[int] | None = None
    piece_words: list[int] | None = None


class CaptionCorpus:
    """Token ids of captions and of their phrases, under one vocabulary; with
    ``wordpieces=True`` also the MiniLM WordPiece ids of every caption."""

    def __init__(self, parsed: dict[str, ParsedCaption], vocab: Vocabulary,
                 max_phrases: int | None = None, wordpieces: bool = False):
        self.parsed, self.vocab, self.max_phrases = parsed, vocab, max_phrases
        self.wordpieces = wordpieces

    def encode(self, text: str) -> EncodedCaption:
        parsed = self.parsed[text]
        spans = parsed.spans[: self.max_phrases] if self.max_phrases else parsed.spans
        pieces = piece_words = None
        if self.wordpieces:
            from mia.model.minilm import wordpieces

            pieces, piece_words = wordpieces(parsed.tokens)
        return EncodedCaption(self.vocab.encode(parsed.tokens), list(spans), pieces,
                              piece_words)


def collate_captions(captions: Sequence[EncodedCaption]) -> dict[str, Tensor]:
    """Pad a list of captions: tokens [B, L], lengths [B], phrase_starts, phrase_lengths,
    phrase_mask [B, m] (m: the batch maximum), and pieces, piece_words [B, Lp] when the
    captions carry WordPieces."""
    B = len(captions)
    L = max(max(len(c.tokens) for c in captions), 1)
    m = max(max(len(c.spans) for c in captions), 1)
    tokens = torch.zeros(B, L, dtype=torch.long)
    phrase_starts = torch.zeros(B, m, dtype=torch.long)
    phrase_lengths = torch.zeros(B, m, dtype=torch.long)
    for b, cap in enumerate(captions):
        tokens[b, : len(cap.tokens)] = torch.tensor(cap.tokens, dtype=torch.long)
        for j, (start, end) in enumerate(cap.spans):
            phrase_starts[b, j], phrase_lengths[b, j] = start, end - start
    batch = {"tokens": tokens, "lengths": torch.tensor([len(c.tokens) for c in captions]),
             "phrase_starts": phrase_starts, "phrase_lengths": phrase_lengths,
             "phrase_mask": phrase_lengths > 0}
    if captions[0].pieces is not None:
        Lp = max(max(len(c.pieces) for c in captions), 1)
        batch["pieces"] = torch.zeros(B, Lp, dtype=torch.long)
        batch["piece_words"] = torch.full((B, Lp), -1, dtype=torch.long)
        for b, cap in enumerate(captions):
            batch["pieces"][b, : len(cap.pieces)] = torch.tensor(cap.pieces, dtype=torch.long)
            batch["piece_words"][b, : len(cap.pieces)] = torch.tensor(cap.piece_words)
    return batch


class ImageStore:
    """Images resized to ``size`` = (H, W), as normalised float tensors [3, H, W].

    With ``cache=True`` the resized uint8 pixels are kept in memory after the first read
    (worth it for small datasets on CPU: decoding dominates otherwise).
    """

    def __init__(self, root: Path, size: tuple[int, int], cache: bool = False):
        self.root, self.size, self.cache = Path(root), tuple(size), cache
        self._pixels: dict[str, Tensor] = {}

    def pixels(self, file_path: str) -> Tensor:
        """uint8 [3, H, W]."""
        if file_path in self._pixels:
            return self._pixels[file_path]
        tensor = to_pixels(load_image(self.root / file_path), self.size)
        if self.cache:
            self._pixels[file_path] = tensor
        return tensor

    def load(self, file_path: str, flip: bool = False) -> Tensor:
        return normalize(self.pixels(file_path), flip)


def _item_rng(*key: int) -> random.Random:
    return random.Random(hash(tuple(key)) & 0xFFFFFFFFFFFF)


class TrainPairs(Dataset):
    """One item per caption: image (randomly mirrored), caption ids (each phrase removed
    with probability ``phrase_dropout``, :mod:`mia.data.augment`; each word read as
    ``<unk>`` with probability ``word_dropout``), label, image index."""

    def __init__(self, records: list[ImageRecord], store: ImageStore, corpus: CaptionCorpus,
                 labels: dict[int, int], flip: bool = True, seed: int = 0,
                 word_dropout: float = 0.0, phrase_dropout: float = 0.0):
        self.records, self.store, self.flip, self.seed = records, store, flip, seed
        self.word_dropout, self.phrase_dropout = word_dropout, phrase_dropout
        self.items = [(i, corpus.encode(c)) for i, r in enumerate(records) for c in r.captions]
        self.labels = [labels[records[i].person_id] for i, _ in self.items]
        self.epoch_key: tuple[int, ...] = (0,)

    @property
    def image_of(self) -> list[int]:
        return [i for i, _ in self.items]

    def set_epoch(self, *key: int) -> None:
        """Key (e.g. step, epoch) that, with the seed, decides this epoch's random flips."""
        self.epoch_key = key

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        image_index, caption = self.items[index]
        rng = _item_rng(self.seed, *self.epoch_key, index)
        flip = self.flip and rng.random() < 0.5
        if self.phrase_dropout:
            caption = drop_phrases(caption, self.phrase_dropout, rng)
        if self.word_dropout:
            caption = replace(caption, tokens=[UNK_ID if rng.random() < self.word_dropout
                                               else t for t in caption.tokens])
        try:
            image = self.store.load(self.records[image_index].file_path, flip)
        except DatasetError as exc:  # reported by the main process, in one line
            return {"error": str(exc)}
        return {"image": image, "caption": caption, "label": self.labels[index],
                "image_index": image_index, "flip": flip,
                "weak": self.records[image_index].weak}


def collate_pairs(items: list[dict]) -> dict[str, Tensor]:
    """A training batch; ``{"error": message}`` when an image could not be read."""
    errors = [it["error"] for it in items if "error" in it]
    if errors:
        return {"error": errors[0]}
    batch = collate_captions([it["caption"] for it in items])
    batch["images"] = torch.stack([it["image"] for it in items])
    batch["labels"] = torch.tensor([it["label"] for it in items])
    batch["image_index"] = torch.tensor([it["image_index"] for it in items])
    batch["flips"] = torch.tensor([it["flip"] for it in items])
    batch["weak"] = torch.tensor([it.get("weak", False) for it in items])
    return batch


class GalleryImages(Dataset):
    """One item per image (evaluation and indexing)."""

    def __init__(self, records: list[ImageRecord], store: ImageStore):
        self.records, self.store = records, store

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Tensor | str:
        """The image, or the error message when it cannot be read (see :func:`stack_images`)."""
        try:
            return self.store.load(self.records[index].file_path)
        except DatasetError as exc:
            return str(exc)


def stack_images(items: list[Tensor | str]) -> Tensor:
    """Collate gallery images in the main process, raising an unreadable one's error there
    (a DataLoader worker would wrap it in its traceback)."""
    for item in items:
        if isinstance(item, str):
            raise DatasetError(item)
    return torch.stack(items)


class QueryCaptions(Dataset):
    """One item per caption text (evaluation)."""

    def __init__(self, texts: list[str], corpus: CaptionCorpus):
        self.texts, self.corpus = texts, corpus

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> EncodedCaption:
        return self.corpus.encode(self.texts[index])


class UniqueImageBatchSampler(Sampler[list[int]]):
    """Batches of caption indices in which no image appears twice.

    ``pk=(P, K)`` samples P identities x K images (one caption each) instead of shuffling
    all captions. ``rank``/``world_size`` give each process its share of every global
    batch (distributed training sees the same global batches as one process).
    """

    def __init__(self, image_of: Sequence[int], batch_size: int, seed: int = 0,
                 person_of: Sequence[int] | None = None, pk: tuple[int, int] | None = None,
                 rank: int = 0, world_size: int = 1, min_batch: int = 2):
        if pk is not None and person_of is None:
            raise ValueError("P x K sampling needs the person of every caption")
        self.image_of, self.batch_size, self.seed = list(image_of), batch_size, seed
        self.person_of = list(person_of) if person_of is not None else None
        self.pk, self.rank, self.world_size = pk, rank, world_size
        self.min_batch = max(min_batch, world_size)
        self.epoch_key: tuple[int, ...] = (0,)

    def set_epoch(self, *key: int) -> None:
        self.epoch_key = key

    def global_batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, *self.epoch_key, 7])
        if self.pk is not None:
            return self._pk_batches(rng)
        order = rng.permutation(len(self.image_of)).tolist()
        return [b for b in self._unique_batches(order, self.batch_size)
                if len(b) >= self.min_batch]

    def _unique_batches(self, order: list[int], size: int) -> Iterator[list[int]]:
        """Fill batches in ``order``; a caption whose image is already in the batch is
        deferred to the front of the next batch."""
        queue, deferred = deque(order), []
        batch: list[int] = []
        used: set[int] = set()
        while queue or deferred:
            if not queue:  # only deferred captions left (their images are in this batch)
                yield batch
                batch, used = [], set()
                queue.extend(deferred)
                deferred = []
            j = queue.popleft()
            if self.image_of[j] in used:
                deferred.append(j)
                continue
            batch.append(j)
            used.add(self.image_of[j])
            if len(batch) == size:
                yield batch
                batch, used = [], set()
                queue.extendleft(reversed(deferred))
                deferred = []
        if batch:
            yield batch

    def _pk_batches(self, rng: np.random.Generator) -> list[list[int]]:
        P, K = self.pk
        by_person: dict[int, dict[int, list[int]]] = {}
        for idx, (pid, img) in enumerate(zip(self.person_of, self.image_of)):
            by_person.setdefault(pid, {}).setdefault(img, []).append(idx)
        people = sorted(by_person)
        rng.shuffle(people)
        batches = []
        for start in range(0, len(people) - P + 1, P):
            batch = []
            for pid in people[start:start + P]:
                images = sorted(by_person[pid])
                for img in rng.permutation(images)[:K].tolist():
                    captions = by_person[pid][img]
                    batch.append(captions[int(rng.integers(len(captions)))])
            batches.append(batch)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches():
            yield batch[self.rank::self.world_size]

    def __len__(self) -> int:
        return len(self.global_batches())
