"""Encoded images and captions: the cacheable inputs of every similarity.

Everything that depends on one modality only is computed once at encoding time, including
the outputs of the four MLPs as attention keys (unit length times the attention scale, see
:func:`mia.model.mia.attention_keys`), so a gallery image is encoded once and scored against any
number of captions by :mod:`mia.model.similarity` without touching the network again.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor


@dataclass
class _Batchable:
    def __len__(self) -> int:
        return getattr(self, fields(self)[0].name).shape[0]

    def select(self, index: slice | Tensor) -> _Batchable:
        """Rows ``index`` of every tensor (a chunk of a gallery or of the queries)."""
        return type(self)(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def to(self, *args, **kwargs) -> _Batchable:
        return type(self)(**{f.name: _to(getattr(self, f.name), *args, **kwargs)
                             for f in fields(self)})

    def detach(self) -> _Batchable:
        return type(self)(**{f.name: getattr(self, f.name).detach() for f in fields(self)})

    def state(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def cat(cls, items: list) -> _Batchable:
        return cls(**{f.name: _cat([getattr(i, f.name) for i in items]) for f in fields(cls)})


def _to(t: Tensor, *args, **kwargs) -> Tensor:
    return t.to(*args, **kwargs) if t.is_floating_point() else t.to(kwargs.get("device", t.device))


def _cat(tensors: list[Tensor]) -> Tensor:
    """Concatenate on dim 0, padding dim 1 (the phrase axis) to the longest."""
    if tensors[0].dim() >= 2 and len({t.shape[1] for t in tensors}) > 1:
        width = max(t.shape[1] for t in tensors)
        tensors = [torch.nn.functional.pad(t, (0, 0) * (t.dim() - 2) + (0, width - t.shape[1]))
                   for t in tensors]
    return torch.cat(tensors, 0)


@dataclass
class ImageEmbeddings(_Batchable):
    """Encoded images. ``G`` images, ``n`` parts (stripes), ``D`` joint dimension."""

    global_: Tensor  # I: global visual context [G, D]
    parts: Tensor  # P_1..P_n: stripe features [G, n, D]
    rga_keys: Tensor  # s_RGA unit(MLP_V_RGA(P_i)) [G, n, D] (Eq. 6)
    bfm_keys: Tensor  # sqrt(s_BFM) unit(MLP_V_BFM(P_k)) [G, n, D] (Eq. 13, 16)


@dataclass
class TextEmbeddings(_Batchable):
    """Encoded captions. ``Q`` captions, up to ``m`` phrases each (``phrase_mask``)."""

    global_: Tensor  # T: sentence feature [Q, D]
    phrases: Tensor  # N_1..N_m: noun-phrase features [Q, m, D] (zeros where masked)
    phrase_mask: Tensor  # True for real phrases [Q, m]
    rga_keys: Tensor  # s_RGA unit(MLP_T_RGA(N_j)) [Q, m, D] (Eq. 9)
    bfm_keys: Tensor  # sqrt(s_BFM) unit(MLP_T_BFM(N_j)) [Q, m, D] (Eq. 13, 16)
