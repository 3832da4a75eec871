"""One training batch -> named loss terms. This is the module DistributedDataParallel
wraps, so the model itself stays free of loss logic."""

from __future__ import annotations

from torch import Tensor, nn

from mia.model.mia import MIA
from mia.training.distributed import DistContext, gather_batch
from mia.training.objectives import compute_losses

TEXT_KEYS = ("tokens", "lengths")
PHRASE_KEYS = ("phrase_tokens", "phrase_lengths", "phrase_mask")


class TrainingStep(nn.Module):
    def __init__(self, model: MIA, margin: float, ctx: DistContext):
        super().__init__()
        self.model, self.margin, self.ctx = model, margin, ctx

    def forward(self, batch: dict[str, Tensor], losses: dict[str, float],
                with_parts: bool) -> dict[str, Tensor]:
        img = self.model.encode_images(batch["images"], with_parts=with_parts)
        keys = TEXT_KEYS + (PHRASE_KEYS if with_parts else ())
        txt = self.model.encode_texts(**{k: batch[k] for k in keys})
        labels, image_index = batch["labels"], batch["image_index"]
        if self.ctx.enabled:  # every rank scores the whole global batch
            img, txt, labels, image_index = gather_batch(self.ctx, img, txt, labels,
                                                         image_index)
        return compute_losses(self.model, img, txt, labels, image_index, losses, self.margin)
