"""A trained model as a service: encode photos and sentences, score them exactly as
``mia evaluate`` does (Eq. 4-18), explain a match, build and search gallery indexes.

:class:`Retriever` is what :func:`mia.load` returns. Its encoders go through the one
encoding path of :mod:`mia.scoring.encode` (also used by evaluation, validation and the
index) and its scores through :func:`mia.scoring.exact.fused_scores`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from mia.artifacts.run import load_trained
from mia.artifacts.trained import TrainedModel
from mia.data.images import ImageLike, load_image, normalize, to_pixels
from mia.data.loading import CaptionCorpus, collate_captions
from mia.model.embeddings import ImageEmbeddings, TextEmbeddings
from mia.model.similarity import paired_attention
from mia.scoring.encode import encode_batches
from mia.scoring.exact import fused_scores
from mia.text.queries import UNKNOWN_WORDS, QueryError, read_query
from mia.utils.device import resolve_device
from mia.utils.errors import MiaError

if TYPE_CHECKING:
    from mia.retrieval.index import GalleryIndex

Images = ImageLike | Sequence[ImageLike]


class MiaWarning(UserWarning):
    """Results are computed but may not mean much (e.g. a text with no known word)."""


class Retriever:
    """A trained MIA model: encoders, the exact scoring of Eq. 4-18, explanations, search."""

    @classmethod
    def load(cls, model: str | Path, device: str = "auto",
             checkpoint: str | Path | None = None) -> Retriever:
        """A run directory, a checkpoint in one, or an exported file (:func:`mia.load`)."""
        dev = resolve_device(device)
        return cls(load_trained(Path(model), checkpoint, dev), dev)

    def __init__(self, trained: TrainedModel, device: torch.device = torch.device("cpu")):
        self.trained, self.device = trained, torch.device(device)
        self.model = trained.model.to(self.device).eval()
        self.config = trained.config
        self.source = f"{Path(trained.run).resolve()}::{Path(trained.checkpoint).name}"

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) every image is resized to."""
        return self.config.data.height, self.config.data.width

    @property
    def lambdas(self) -> tuple[float, float]:
        """The run's (lambda1, lambda2) of sF = sG + lambda1 sR + lambda2 sL."""
        return self.trained.lambdas()

    # --- images ---------------------------------------------------------------------------

    def preprocess(self, image: ImageLike) -> torch.Tensor:
        """One image -> the normalised tensor [3, H, W] the CNN reads."""
        return normalize(to_pixels(as_pil(image), self.image_size))

    def encode_images(self, images: Images, batch_size: int = 64) -> ImageEmbeddings:
        """Image embeddings (I, P and the visual attention keys), float32 on the CPU, in the
        order given. Reuse them: ``torch.save(emb.state(), f)``, then
        ``ImageEmbeddings(**torch.load(f))``."""
        items = _as_list(images, (str, Path, Image.Image, np.ndarray, torch.Tensor))
        if not items:
            raise MiaError("encode_images: no images given")
        _check_batch_size(batch_size)
        chunks = []
        for start in range(0, len(items), batch_size):
            pixels = torch.stack([self._preprocess_item(items[i], i)
                                  for i in range(start, min(start + batch_size, len(items)))])
            chunks.append(self.encode_pixels(pixels))
        return _tagged(ImageEmbeddings.cat(chunks), self.source)

    @torch.no_grad()
    def encode_pixels(self, pixels: torch.Tensor) -> ImageEmbeddings:
        """Preprocessed images [B, 3, H, W] (:meth:`preprocess`) -> embeddings (CPU, float32)."""
        return _tagged(encode_batches(self.model, [pixels], "images", self.device), self.source)

    def _preprocess_item(self, item: ImageLike, position: int) -> torch.Tensor:
        try:
            return self.preprocess(item)
        except MiaError as exc:
            raise MiaError(f"image {position}: {exc}") from exc

    # --- texts ----------------------------------------------------------------------------

    def read_texts(self, texts: str | Sequence[str]) -> tuple[list, list[list[str]]]:
        """(parsed captions, warnings per text); an unusable text raises QueryError naming
        its position."""
        items = _as_list(texts, (str,))
        if not items:
            raise QueryError("encode_texts: no texts given")
        parsed, notes = [], []
        for i, text in enumerate(items):
            if not isinstance(text, str):
                raise QueryError(f"text {i}: expected a string, got {type(text).__name__}")
            try:
                p, w = read_query(text, self.config.data.phrase_mode, self.trained.vocab,
                                  self.config.model.wordpieces)
            except QueryError as exc:
                raise QueryError(f"text {i} ({text[:40]!r}): {exc}") from exc
            parsed.append(p)
            notes.append(w)
        return parsed, notes

    def encode_texts(self, texts: str | Sequence[str], batch_size: int = 128) -> TextEmbeddings:
        """Text embeddings (T, the noun phrases N and the textual attention keys), float32
        on the CPU. A MiaWarning names each text none of whose words the model knows (or
        that is cut); one more counts the texts with some unknown words."""
        parsed, notes = self.read_texts(texts)
        partly = [i for i, messages in enumerate(notes)
                  if any(m.startswith(UNKNOWN_WORDS) for m in messages)]
        for i, messages in enumerate(notes):
            for message in messages:
                if not message.startswith(UNKNOWN_WORDS):
                    warnings.warn(f"text {i}: {message}", MiaWarning, stacklevel=2)
        if partly:
            warnings.warn(f"{len(partly)} of {len(parsed)} texts have words outside the "
                          f"model's vocabulary (first: text {partly[0]}, "
                          f"{notes[partly[0]][-1]})", MiaWarning, stacklevel=2)
        return self.encode_parsed(parsed, batch_size)

    @torch.no_grad()
    def encode_parsed(self, parsed: list, batch_size: int = 128) -> TextEmbeddings:
        """Text embeddings of already parsed captions (:class:`ParsedCaption`)."""
        _check_batch_size(batch_size)
        keys = [str(i) for i in range(len(parsed))]
        corpus = CaptionCorpus(dict(zip(keys, parsed)), self.trained.vocab,
                               self.config.data.max_phrases, self.config.model.wordpieces)
        batches = (collate_captions([corpus.encode(k) for k in keys[start:start + batch_size]])
                   for start in range(0, len(keys), batch_size))
        return _tagged(encode_batches(self.model, batches, "texts", self.device), self.source)

    # --- scores ---------------------------------------------------------------------------

    def score(self, image_embeddings: ImageEmbeddings, text_embeddings: TextEmbeddings,
              lambda1: float | None = None, lambda2: float | None = None,
              memory_mb: float = 1024) -> dict[str, torch.Tensor]:
        """{"sG", "sR", "sL", "sF"} as [texts, images] tensors: exactly what ``mia evaluate``
        computes (Eq. 4-18), with the run's lambdas unless given."""
        self._check_source(image_embeddings, "image")
        self._check_source(text_embeddings, "text")
        return fused_scores(image_embeddings, text_embeddings, *self._lambdas(lambda1, lambda2),
                     memory_mb=memory_mb)

    def _lambdas(self, lambda1, lambda2) -> tuple[float, float]:
        return self.trained.lambdas(lambda1, lambda2)

    def _check_source(self, emb, kind: str) -> None:
        if not isinstance(emb, ImageEmbeddings if kind == "image" else TextEmbeddings):
            raise MiaError(f"score: the {kind} embeddings must come from encode_{kind}s "
                           f"(got {type(emb).__name__})")
        dim = self.config.model.embed_dim
        if emb.global_.shape[-1] != dim:
            raise MiaError(f"score: the {kind} embeddings have dimension "
                           f"{emb.global_.shape[-1]}, this model {dim}: they come from "
                           "another model")
        if emb.source is not None and emb.source != self.source:
            raise MiaError(f"score: the {kind} embeddings come from another model "
                           f"({emb.source}), not {self.source}")

    # --- explanations and search ------------------------------------------------------------

    @torch.no_grad()
    def explain(self, image: ImageLike, text: str) -> dict:
        """Why an image matches a text: its four scores, the RGA weight of each stripe (top
        to bottom) for the sentence, and each noun phrase's best stripe under BFM: the
        numbers the search page shows."""
        img = self.encode_images([image])
        parsed, notes = self.read_texts([text])
        txt = self.encode_parsed(parsed)
        scores = self.score(img, txt)
        att = paired_attention(img, txt)
        phrases = [" ".join(p) for p in parsed[0].phrases]
        return {"text": text, "phrases": phrases,
                **{k: float(v[0, 0]) for k, v in scores.items()},
                "stripes": att["v"][0].tolist(),
                "phrase_to_stripe": dict(zip(phrases, att["a"][0].argmax(-1).tolist())),
                "warnings": notes[0]}

    def build_index(self, images: str | Path | Sequence[str], out: str | Path, *,
                    root: str | Path | None = None, person_ids: list | None = None,
                    batch_size: int = 128, dtype: str = "float16", overwrite: bool = False,
                    skip_bad: bool = False, progress: bool = False):
        """Encode a photo folder (or ``images``, paths relative to ``root``) into a
        persistent, resumable index at ``out``; returns the opened index."""
        from mia.retrieval.index import build_index, list_images

        if isinstance(images, (str, Path)):
            root, files = Path(images), list_images(images)
        else:
            root, files = Path(root or "."), [str(p) for p in images]
        return build_index(out, self, files, person_ids or [None] * len(files), root,
                           source={"images": str(Path(root).resolve())},
                           batch_size=batch_size, dtype=dtype, progress=progress,
                           overwrite=overwrite, skip_bad=skip_bad)

    def add_to_index(self, index: str | Path, images: str | Path | Sequence[str], *,
                     person_ids: list | None = None, batch_size: int = 128,
                     skip_bad: bool = False, progress: bool = False) -> dict:
        """Encode new images into an existing index (``mia index add``): a folder inside
        the index's photo folder, or paths relative to it. Images already indexed are
        skipped and reported; the change is published atomically."""
        from mia.retrieval.growth import add_images, folder_images
        from mia.retrieval.index import GalleryIndex

        if isinstance(images, (str, Path)):
            files = folder_images(GalleryIndex.open(index), images)
        else:
            files = [str(p) for p in images]
        return add_images(index, self, files, person_ids or [None] * len(files),
                          batch_size=batch_size, progress=progress, skip_bad=skip_bad)

    def search(self, index, text: str, k: int = 10, candidates: int | None = None,
               lambda1: float | None = None, lambda2: float | None = None,
               backend: str = "auto") -> dict:
        """Ranked, explained results of a description over an index (a path or an opened
        :class:`mia.retrieval.index.GalleryIndex`); the JSON of ``mia search --json``.
        ``backend``: the stage 1 (``mia search --backend``). For many queries over a large
        gallery, open one :class:`mia.retrieval.search.Searcher` and ask it each time."""
        from mia.retrieval.index import GalleryIndex
        from mia.retrieval.search import Searcher

        if not isinstance(index, GalleryIndex):
            index = GalleryIndex.open(index)
        l1, l2 = self._lambdas(lambda1, lambda2)
        return Searcher(index, self, lambda1=l1, lambda2=l2, backend=backend).search(
            text, k, candidates)


def index_retriever(index: GalleryIndex, run=None, device: str = "auto") -> Retriever:
    """The :class:`Retriever` of the run that built ``index`` (or of ``run``)."""
    model = index.manifest["model"]
    return Retriever.load(run or model["run"], device, None if run else model["checkpoint"])


score = fused_scores  # mia.api.score: the same function


def as_pil(image: ImageLike) -> Image.Image:
    """A path, PIL image, HxWx3 uint8 array or [3, H, W] tensor (uint8, or float in [0, 1])
    as an RGB PIL image; errors name what is wrong."""
    if isinstance(image, (str, Path)):
        return load_image(image)
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] not in (1, 3):
            raise MiaError(f"a tensor image must be [3, H, W] (or [1, H, W]), got "
                           f"{tuple(image.shape)}")
        if image.is_floating_point():
            if image.min() < 0 or image.max() > 1:
                raise MiaError("a float tensor image must hold values in [0, 1]")
            image = (image * 255).round().to(torch.uint8)
        image = image.expand(3, -1, -1).permute(1, 2, 0).cpu().numpy()
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise MiaError(f"an array image must be H x W x 3 uint8, got {image.shape} "
                           f"{image.dtype}")
        return Image.fromarray(np.ascontiguousarray(image), "RGB")
    raise MiaError(f"not an image: {type(image).__name__} (a path, a PIL image, an H x W x 3 "
                   "uint8 array or a [3, H, W] tensor)")


def _as_list(items, single: tuple[type, ...]) -> list:
    if isinstance(items, torch.Tensor) and items.dim() == 4:
        return list(items)
    if isinstance(items, single):
        return [items]
    return list(items)


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise MiaError(f"batch_size must be a positive integer, got {batch_size!r}")


def _tagged(emb, source: str):
    emb.source = source
    return emb
