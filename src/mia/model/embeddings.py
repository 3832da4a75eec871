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
    """Tensors batched on dim 0, and ``source``: which model made them (set by the Python
    API, so embeddings of another model are refused)."""

    @classmethod
    def tensor_fields(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "source"]

    def __len__(self) -> int:
        return getattr(self, self.tensor_fields()[0]).shape[0]

    def _map(self, fn) -> _Batchable:
        return type(self)(**{k: fn(getattr(self, k)) for k in self.tensor_fields()},
                          source=self.source)

    def select(self, index: slice | Tensor) -> _Batchable:
        """Rows ``index`` of every tensor (a chunk of a gallery or of the queries)."""
        return self._map(lambda t: t[index])

    def to(self, *args, **kwargs) -> _Batchable:
        return self._map(lambda t: _to(t, *args, **kwargs))

    def detach(self) -> _Batchable:
        return self._map(lambda t: t.detach())

    def state(self) -> dict[str, Tensor]:
        """The tensors by field name (``type(emb)(**state)`` rebuilds the embeddings)."""
        return {k: getattr(self, k) for k in self.tensor_fields()}

    @classmethod
    def cat(cls, items: list) -> _Batchable:
        sources = {i.source for i in items}
        return cls(**{k: _cat([getattr(i, k) for i in items]) for k in cls.tensor_fields()},
                   source=sources.pop() if len(sources) == 1 else None)


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
    source: str | None = None


@dataclass
class TextEmbeddings(_Batchable):
    """Encoded captions. ``Q`` captions, up to ``m`` phrases each (``phrase_mask``)."""

    global_: Tensor  # T: sentence feature [Q, D]
    phrases: Tensor  # N_1..N_m: noun-phrase features [Q, m, D] (zeros where masked)
    phrase_mask: Tensor  # True for real phrases [Q, m]
    rga_keys: Tensor  # s_RGA unit(MLP_T_RGA(N_j)) [Q, m, D] (Eq. 9)
    bfm_keys: Tensor  # sqrt(s_BFM) unit(MLP_T_BFM(N_j)) [Q, m, D] (Eq. 13, 16)
    source: str | None = None
