"""Encode a gallery (each image once) and a set of captions with a trained model."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from mia.data.loading import (
    CaptionCorpus,
    GalleryImages,
    ImageStore,
    QueryCaptions,
    collate_captions,
)
from mia.data.records import ImageRecord
from mia.model.embeddings import ImageEmbeddings, TextEmbeddings
from mia.model.mia import MIA


@torch.no_grad()
def encode_gallery(model: MIA, records: list[ImageRecord], store: ImageStore,
                   batch_size: int = 128, device: str | torch.device = "cpu",
                   workers: int = 0, progress: bool = False,
                   autocast_dtype: torch.dtype | None = None) -> ImageEmbeddings:
    """ImageEmbeddings of ``records`` (float32, on CPU), in record order."""
    loader = DataLoader(GalleryImages(records, store), batch_size=batch_size,
                        num_workers=workers)
    model.eval()
    chunks = []
    for images in tqdm(loader, desc="encoding images", unit="batch", disable=not progress,
                       leave=False):
        with _autocast(device, autocast_dtype):
            emb = model.encode_images(images.to(device))
        chunks.append(emb.to(device="cpu", dtype=torch.float32))
    return ImageEmbeddings.cat(chunks)


@torch.no_grad()
def encode_captions(model: MIA, texts: list[str], corpus: CaptionCorpus,
                    batch_size: int = 256, device: str | torch.device = "cpu",
                    progress: bool = False,
                    autocast_dtype: torch.dtype | None = None) -> TextEmbeddings:
    """TextEmbeddings of ``texts`` (float32, on CPU), in order; phrase axis padded."""
    loader = DataLoader(QueryCaptions(texts, corpus), batch_size=batch_size,
                        collate_fn=collate_captions)
    model.eval()
    chunks = []
    for batch in tqdm(loader, desc="encoding captions", unit="batch", disable=not progress,
                      leave=False):
        batch = {k: v.to(device) for k, v in batch.items()}
        with _autocast(device, autocast_dtype):
            emb = model.encode_texts(**batch)
        chunks.append(emb.to(device="cpu", dtype=torch.float32))
    return TextEmbeddings.cat(chunks)


def _autocast(device, dtype):
    device_type = torch.device(device).type
    return torch.autocast(device_type, dtype=dtype, enabled=dtype is not None)
