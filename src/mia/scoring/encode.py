"""Encode a gallery (each image once) and a set of captions with a trained model: the one
encoding path of evaluation, validation, the API (:class:`~mia.retrieval.retriever.Retriever`)
and gallery indexes."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from mia.data.loading import (
    CaptionCorpus,
    GalleryImages,
    ImageStore,
    QueryCaptions,
    collate_captions,
    stack_images,
)
from mia.data.records import ImageRecord
from mia.model.embeddings import ImageEmbeddings, TextEmbeddings
from mia.model.mia import MIA


@torch.no_grad()
def encode_batches(model: MIA, batches: Iterable, kind: str, device: str | torch.device = "cpu",
                   progress: bool = False, autocast_dtype: torch.dtype | None = None):
    """The one encoding loop of evaluation, validation, the API and the index: each batch
    (``kind`` "images": pixels [B, 3, H, W]; "texts": a :func:`collate_captions` dict)
    through the model in eval mode, results as float32 on the CPU, in order."""
    if kind not in ("images", "texts"):
        raise ValueError(f"kind must be 'images' or 'texts', got {kind!r}")
    model.eval()
    chunks = []
    device_type = torch.device(device).type
    desc = f"encoding {'images' if kind == 'images' else 'captions'}"
    for batch in tqdm(batches, desc=desc, unit="batch", disable=not progress, leave=False):
        with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            if kind == "images":
                emb = model.encode_images(batch.to(device))
            else:
                emb = model.encode_texts(**{k: v.to(device) for k, v in batch.items()})
        chunks.append(emb.to(device="cpu", dtype=torch.float32))
    return (ImageEmbeddings if kind == "images" else TextEmbeddings).cat(chunks)


def encode_gallery(model: MIA, records: list[ImageRecord], store: ImageStore,
                   batch_size: int = 128, device: str | torch.device = "cpu",
                   workers: int = 0, progress: bool = False,
                   autocast_dtype: torch.dtype | None = None) -> ImageEmbeddings:
    """ImageEmbeddings of ``records`` (float32, on CPU), in record order."""
    loader = DataLoader(GalleryImages(records, store), batch_size=batch_size,
                        num_workers=workers, collate_fn=stack_images)
    return encode_batches(model, loader, "images", device, progress, autocast_dtype)


def encode_captions(model: MIA, texts: list[str], corpus: CaptionCorpus,
                    batch_size: int = 256, device: str | torch.device = "cpu",
                    progress: bool = False,
                    autocast_dtype: torch.dtype | None = None) -> TextEmbeddings:
    """TextEmbeddings of ``texts`` (float32, on CPU), in order; phrase axis padded."""
    loader = DataLoader(QueryCaptions(texts, corpus), batch_size=batch_size,
                        collate_fn=collate_captions)
    return encode_batches(model, loader, "texts", device, progress, autocast_dtype)
