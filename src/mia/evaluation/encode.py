"""Encode a gallery (each image once) and a set of captions with a trained model."""

from __future__ import annotations

from collections.abc import Callable

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
def _encode(model: MIA, loader: DataLoader, encode: Callable, cat: Callable, desc: str,
            device, progress: bool, autocast_dtype: torch.dtype | None):
    """Run ``encode(batch)`` over ``loader`` in eval mode; float32 CPU results, in order."""
    model.eval()
    chunks = []
    device_type = torch.device(device).type
    for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            emb = encode(batch)
        chunks.append(emb.to(device="cpu", dtype=torch.float32))
    return cat(chunks)


def encode_gallery(model: MIA, records: list[ImageRecord], store: ImageStore,
                   batch_size: int = 128, device: str | torch.device = "cpu",
                   workers: int = 0, progress: bool = False,
                   autocast_dtype: torch.dtype | None = None) -> ImageEmbeddings:
    """ImageEmbeddings of ``records`` (float32, on CPU), in record order."""
    loader = DataLoader(GalleryImages(records, store), batch_size=batch_size,
                        num_workers=workers, collate_fn=stack_images)
    return _encode(model, loader, lambda images: model.encode_images(images.to(device)),
                   ImageEmbeddings.cat, "encoding images", device, progress, autocast_dtype)


def encode_captions(model: MIA, texts: list[str], corpus: CaptionCorpus,
                    batch_size: int = 256, device: str | torch.device = "cpu",
                    progress: bool = False,
                    autocast_dtype: torch.dtype | None = None) -> TextEmbeddings:
    """TextEmbeddings of ``texts`` (float32, on CPU), in order; phrase axis padded."""
    loader = DataLoader(QueryCaptions(texts, corpus), batch_size=batch_size,
                        collate_fn=collate_captions)
    return _encode(model, loader,
                   lambda batch: model.encode_texts(**{k: v.to(device) for k, v in batch.items()}),
                   TextEmbeddings.cat, "encoding captions", device, progress, autocast_dtype)


def encode_split(trained, data, split: str, device: str | torch.device = "cpu",
                 progress: bool = False, distractors: str | None = None):
    """(EvalInputs, gallery embeddings, caption embeddings) of one split of ``data``
    (a :class:`mia.data.pipeline.RunData`) under a trained run, each image encoded once;
    the images of the split ``distractors`` join the gallery when given."""
    from mia.evaluation.evaluate import EvalInputs

    cfg = trained.config
    extra = data.dataset.split(distractors) if distractors else []
    inputs = EvalInputs.from_records(data.dataset.split(split), extra)
    img = encode_gallery(trained.model, inputs.gallery, data.store, cfg.eval.batch_size,
                         device, workers=cfg.data.workers, progress=progress)
    txt = encode_captions(trained.model, inputs.query_texts, data.corpus, cfg.eval.batch_size,
                          device, progress=progress)
    return inputs, img, txt
