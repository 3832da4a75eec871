"""Stage 1 of large-gallery search: candidate images from the global features alone.

Backends: ``torch`` (exact inner products over unit global features, float16 or float32,
no extra dependency), ``faiss-flat`` (exact, FAISS), ``faiss-ivf`` (inverted lists over
k-means cells, approximate, fast to build), ``faiss-ivf-sq8`` (the same lists holding 8-bit
features: a quarter of the memory, for galleries of millions) and ``faiss-hnsw`` (graph
search, approximate, slow to build). FAISS is optional (``pip install faiss-cpu``) and
imported only when asked for. Features are normalised a chunk at a time, so building one
never holds a float32 copy of the gallery.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np
import torch

from mia.utils.choices import CANDIDATE_BACKENDS
from mia.utils.errors import MiaError

BACKENDS = CANDIDATE_BACKENDS  # the names are mia.utils.choices' (the CLI offers them)
# cells probed by default: faiss-ivf-sq8 at 128 found 99% of the exhaustive top-10 over
# 1,000,000 synthetic images (README "Benchmarks"), 32 found 98.2%
NPROBE = {"faiss-ivf": 32, "faiss-ivf-sq8": 128}


def _faiss():
    try:
        import faiss
    except ImportError as exc:
        raise MiaError("FAISS is not installed: pip install faiss-cpu (or, in a checkout of mia, "
                       "pip install -e '.[faiss]'); "
                       "or use the pure-torch candidate search (--backend torch)") from exc
    return faiss


class CandidateIndex:
    """Top-C images by sG = cos(I, T) for one or more unit sentence features."""

    def __init__(self, global_features: np.ndarray | torch.Tensor, backend: str = "torch",
                 dtype: torch.dtype = torch.float16, hnsw_m: int = 32, ef_search: int = 128,
                 nprobe: int | None = None, cells: int | None = None):
        if backend not in BACKENDS:
            raise MiaError(f"unknown candidate backend {backend!r} (valid: {', '.join(BACKENDS)})")
        nprobe = nprobe or NPROBE.get(backend, 32)
        self.backend, self.ef_search, self.nprobe = backend, ef_search, nprobe
        count, dim = global_features.shape[0], global_features.shape[1]
        self.built = count  # images it was built with (IVF cells fitted to them)
        if backend == "torch":  # normalised chunk by chunk: no float32 copy of the gallery
            self.features = torch.empty(0, dim, dtype=dtype)
            self.add(global_features)
            return
        faiss = _faiss()
        if backend == "faiss-flat":
            self.index = faiss.IndexFlatIP(dim)
        elif backend in ("faiss-ivf", "faiss-ivf-sq8"):
            cells = cells or max(1, min(int(4 * count ** 0.5), count // 39))
            self.quantizer = faiss.IndexFlatIP(dim)
            if backend == "faiss-ivf":
                self.index = faiss.IndexIVFFlat(self.quantizer, dim, cells,
                                                faiss.METRIC_INNER_PRODUCT)
            else:  # 1 byte per dimension: a quarter of the memory of IVF-Flat
                self.index = faiss.IndexIVFScalarQuantizer(
                    self.quantizer, dim, cells, faiss.ScalarQuantizer.QT_8bit,
                    faiss.METRIC_INNER_PRODUCT)
            sample = np.sort(np.random.default_rng(0).permutation(count)[:cells * TRAIN_PER_CELL])
            self.index.train(_unit(np.asarray(global_features[sample], dtype=np.float32)))
            self.index.nprobe = min(nprobe, cells)
        else:
            self.index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efSearch = ef_search
        self.add(global_features)

    def save(self, path: Path) -> None:
        """Write a FAISS backend's index to ``path`` atomically (a cache: building one over
        a million images takes minutes, reading it seconds)."""
        faiss = _faiss()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            faiss.write_index(self.index, str(tmp))
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)  # on disk before it takes the name
            finally:
                os.close(fd)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path, backend: str, dim: int, nprobe: int | None = None,
             ef_search: int = 128) -> CandidateIndex:
        """A FAISS backend saved by :meth:`save`; MiaError unless its features have
        ``dim`` dimensions."""
        faiss = _faiss()
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise MiaError(f"{path}: unreadable stage-1 cache ({str(exc).splitlines()[0]})"
                           ) from exc
        if index.d != dim:
            raise MiaError(f"{path}: features of {index.d} dimensions, the index has {dim}")
        self = cls.__new__(cls)
        self.backend, self.index, self.ef_search = backend, index, ef_search
        self.built = int(index.ntotal)
        self.nprobe = nprobe or NPROBE.get(backend, 32)
        if backend != "faiss-flat":
            self.set_effort(ef_search if backend == "faiss-hnsw" else self.nprobe)
        return self

    def set_effort(self, value: int) -> None:
        """Cells probed (IVF) or the least beam width (HNSW) of a FAISS backend."""
        if self.backend == "faiss-hnsw":
            self.ef_search = value
        elif self.backend != "faiss-flat":
            self.nprobe = self.index.nprobe = min(value, self.index.nlist)

    def __len__(self) -> int:
        return len(self.features) if self.backend == "torch" else int(self.index.ntotal)

    def add(self, global_features) -> None:
        """Append images (positions ``len(self) ..``): an index grown by ``mia index add``
        without re-building what is already in."""
        if self.backend == "torch":
            more = torch.empty(len(global_features), self.features.shape[1],
                               dtype=self.features.dtype)
            for s, unit in _unit_chunks(global_features):
                more[s:s + len(unit)] = torch.from_numpy(unit).to(more.dtype)
            self.features = torch.cat([self.features, more])
            return
        for _, unit in _unit_chunks(global_features):
            self.index.add(unit)

    def search(self, t_hat: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """t_hat [B, D] unit sentence features -> (sG [B, C], image indices [B, C])."""
        if self.backend == "torch":
            scores = t_hat.to(self.features.dtype) @ self.features.T
            top = torch.topk(scores.float(), min(count, scores.shape[1]), dim=1)
            return top.values, top.indices
        if self.backend == "faiss-hnsw":  # the beam must be at least as wide as the answer
            self.index.hnsw.efSearch = max(self.ef_search, 2 * count)
        values, indices = self.index.search(np.ascontiguousarray(t_hat.float().numpy()), count)
        values, indices = torch.from_numpy(values), torch.from_numpy(indices).long()
        found = indices[0] >= 0  # FAISS pads with -1 when it finds fewer than count
        return values[:, found], indices[:, found]


TRAIN_PER_CELL = 64  # k-means sample of the IVF backends: this many images per cell
CHUNK = 65536  # images normalised at a time (a float32 copy of this many rows at most)


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def _unit_chunks(features):
    """(start, unit float32 rows) over ``features`` (array, memory map or tensor)."""
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    mapped = getattr(features, "_mmap", None)  # a memory map (GalleryIndex.rows)
    for s in range(0, len(features), CHUNK):
        yield s, np.ascontiguousarray(_unit(features[s:s + CHUNK]))
        if mapped is not None:  # unmap the pages read (they stay in the page cache): the
            mapped.madvise(mmap.MADV_DONTNEED)  # process's resident memory stays its own
