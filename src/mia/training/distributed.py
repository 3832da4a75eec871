"""Multi-process training (``torchrun --nproc_per_node N -m mia train ...``).

Every process sees the same global batches (:class:`mia.data.loading.UniqueImageBatchSampler`
hands each rank its share), encodes its share, and gathers the embeddings of the whole
global batch with autograd-aware collectives, so the in-batch matching losses see exactly
the negatives one process would see. DistributedDataParallel then averages the gradients;
the result equals one process training on the global batch (up to floating-point order),
as long as BatchNorm layers are frozen or synchronised (SyncBatchNorm on GPUs).
Rank 0 alone logs and writes checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from mia.model.embeddings import ImageEmbeddings, TextEmbeddings
from mia.utils.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def from_environment(device_type: str) -> DistContext:
    """The context torchrun describes in the environment; starts the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DistContext()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        if world > torch.cuda.device_count():
            raise ConfigError(f"{world} processes but only {torch.cuda.device_count()} CUDA "
                              "devices: use --nproc_per_node <= the number of GPUs")
        torch.cuda.set_device(local)
    elif world > (os.cpu_count() or 1):
        raise ConfigError(f"{world} processes but only {os.cpu_count()} CPU cores")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return DistContext(rank, world, local)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _gather_rows(x: Tensor, rows: int, valid: Tensor) -> Tensor:
    """Every rank's ``x`` [b_r, ...] (padded to ``rows`` for the collective), concatenated in
    rank order [sum b_r, ...]. Float tensors keep their gradients (each rank's rows get the
    gradient of every rank's loss); others are plain data."""
    from torch.distributed.nn.functional import all_gather

    x = torch.nn.functional.pad(x, [0, 0] * (x.dim() - 1) + [0, rows - x.shape[0]])
    if x.is_floating_point():
        parts = all_gather(x)
    else:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, 0)[valid]


def _pad_phrases(txt: TextEmbeddings, m: int) -> TextEmbeddings:
    """Pad the phrase axis of every per-phrase tensor to ``m``."""
    extra = m - txt.phrases.shape[1]
    if extra == 0:
        return txt

    def pad(x: Tensor) -> Tensor:
        return torch.nn.functional.pad(x, [0, 0] * (x.dim() - 2) + [0, extra])

    return TextEmbeddings(txt.global_, pad(txt.phrases), pad(txt.phrase_mask),
                          pad(txt.rga_keys), pad(txt.bfm_keys))


def gather_batch(ctx: DistContext, img: ImageEmbeddings, txt: TextEmbeddings, labels: Tensor,
                 *per_pair: Tensor):
    """The global batch's embeddings, labels and other per-pair tensors (image ids,
    weights), identical on every rank."""
    sizes = torch.tensor([len(labels), txt.phrases.shape[1]], device=labels.device)
    all_sizes = [torch.zeros_like(sizes) for _ in range(ctx.world)]
    dist.all_gather(all_sizes, sizes)
    counts = [int(s[0]) for s in all_sizes]
    rows, m = max(counts), max(int(s[1]) for s in all_sizes)
    valid = torch.cat([torch.arange(rows, device=labels.device) < c for c in counts])
    txt = _pad_phrases(txt, m)
    img = ImageEmbeddings(*(_gather_rows(t, rows, valid) for t in img.state().values()))
    txt = TextEmbeddings(*(_gather_rows(t, rows, valid) for t in txt.state().values()))
    return (img, txt, _gather_rows(labels, rows, valid),
            *(_gather_rows(t, rows, valid) for t in per_pair))


def gather_objects(ctx: DistContext, obj):
    """A list of every rank's ``obj`` (in rank order)."""
    if not ctx.enabled:
        return [obj]
    out = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out
