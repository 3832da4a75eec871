"""Stage 1 on a vector database: the global image features I in a Milvus collection.

The database holds one row per gallery image: its global id (the index's stable id, see
:class:`mia.retrieval.index.GalleryIndex`) and its unit global feature; it answers the
top-C images by sG = cos(I, T). Everything else (parts, MLP outputs, paths) stays in the
index folder on disk. ``uri`` is either a Milvus Lite file (``stage1.db``, embedded, run
inside this process; a relative path is relative to the index folder) or a Milvus server
or cluster (``http://host:19530``, ``https://...``), shared by every process that serves or
grows the index. pymilvus and milvus-lite are optional (``pip install pymilvus milvus-lite``)
and imported only here.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
from pathlib import Path

import numpy as np

from mia.utils.errors import MiaError

SEGMENT_ROWS = 100_000  # Milvus indexes each segment on its own (Lite: <= 100,000 rows)


def ivf_cells(rows: int) -> int:
    """Inverted lists per segment for a collection of ``rows`` vectors: about 4 sqrt(n)
    for the n rows of a segment, at least 39 rows per cell (FAISS's rule for training
    k-means)."""
    n = min(rows, SEGMENT_ROWS)
    return int(max(1, min(4 * n ** 0.5, n // 39)))


INDEX_TYPES = {  # Milvus index -> (build params for N rows, search params for C and p)
    "HNSW": (lambda n: {"M": 32, "efConstruction": 200}, lambda c, p: {"ef": max(p, 2 * c)}),
    "IVF_FLAT": (lambda n: {"nlist": ivf_cells(n)}, lambda c, p: {"nprobe": p}),
    "FLAT": (lambda n: {}, lambda c, p: {}),
}
DEFAULT_INDEX = "IVF_FLAT"
INSERT_BATCH = 5000


class VectorDBError(MiaError):
    """The vector database is unreachable, or disagrees with the index on disk."""


_LITE_LOCKS: dict[str, object] = {}  # Milvus Lite files this process holds


def _hold_lite_file(uri: str) -> None:
    """A Milvus Lite file runs inside one process: a second process gets a clear error
    instead of a second server writing the same files."""
    if "://" in uri or uri in _LITE_LOCKS:
        return
    Path(uri).parent.mkdir(parents=True, exist_ok=True)
    handle = open(uri + ".lock", "a")  # noqa: SIM115 - held for the process's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        raise VectorDBError(f"{uri} is in use by another process (a Milvus Lite file serves "
                            "one process; to grow an index while serving it, run the database "
                            "as a service: docs/SCALE.md)") from exc
    _LITE_LOCKS[uri] = handle


def _client(uri: str):
    _hold_lite_file(uri)
    logging.getLogger("milvus_lite").setLevel(logging.WARNING)  # its start/stop notices
    # Milvus Lite's in-process server lacks AllocTimestamp; pymilvus asks, gets "not
    # implemented" and carries on, but gRPC logs each refusal with a stack trace
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
    _require_extra(lite=False)
    from pymilvus import MilvusClient

    try:
        with contextlib.redirect_stderr(io.StringIO()):  # pymilvus logs its own traces
            return MilvusClient(uri=uri, timeout=10)
    except Exception as exc:  # noqa: BLE001 - pymilvus raises many types
        raise VectorDBError(f"cannot reach the vector database at {uri}: "
                            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                            ) from exc


def check_reachable(uri: str) -> None:
    """Fail before long work: a server must answer at ``uri``; a Milvus Lite file (created
    later, inside the index) needs the vectordb extra."""
    if "://" in uri:
        _client(uri).close()
    else:
        _require_extra(lite=True)


def _require_extra(lite: bool) -> None:
    """pymilvus (and milvus-lite for a Lite file), or one clear error."""
    try:
        import pymilvus  # noqa: F401
        if lite:
            import milvus_lite  # noqa: F401
    except ImportError as exc:
        raise VectorDBError("the vector-database stage 1 needs pymilvus and milvus-lite: "
                            "pip install pymilvus milvus-lite (or, in a checkout of "
                            "mia, pip install -e '.[vectordb]')") from exc


def resolve_uri(uri: str, index_dir: Path | None) -> str:
    """A server address as is; a Milvus Lite file relative to the index folder."""
    if "://" in uri:
        return uri
    path = Path(uri)
    if not path.is_absolute() and index_dir is not None:
        path = Path(index_dir) / path
    return str(path.resolve())


class VectorDB:
    """One collection of global features, addressed by global id."""

    def __init__(self, uri: str, collection: str):
        self.uri, self.collection = uri, collection
        self.client = _client(uri)
        self.params = 32  # nprobe (IVF) or the least ef (HNSW)
        self._search_params = None

    def exists(self) -> bool:
        return bool(self.client.has_collection(self.collection))

    def create(self, dim: int, index_type: str = DEFAULT_INDEX, rows: int = 100_000) -> None:
        from pymilvus import DataType

        if index_type not in INDEX_TYPES:
            raise VectorDBError(f"unknown vector index {index_type!r} "
                                f"(valid: {', '.join(INDEX_TYPES)})")
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
        params = self.client.prepare_index_params()
        params.add_index(field_name="vec", index_type=index_type, metric_type="IP",
                         params=INDEX_TYPES[index_type][0](rows))
        self.client.create_collection(self.collection, schema=schema, index_params=params)

    def load(self) -> None:
        """Make the collection searchable (a restarted server holds it released)."""
        self.client.load_collection(self.collection)

    def drop(self) -> None:
        if self.exists():
            self.client.drop_collection(self.collection)

    def insert(self, ids: np.ndarray, vectors: np.ndarray, progress=None) -> None:
        """Rows ``ids`` with unit float32 ``vectors`` (normalised here)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        for s in range(0, len(ids), INSERT_BATCH):
            self.client.insert(self.collection, [
                {"id": int(i), "vec": v} for i, v in zip(ids[s:s + INSERT_BATCH],
                                                         vectors[s:s + INSERT_BATCH])])
            if progress is not None:
                progress(min(INSERT_BATCH, len(ids) - s))
        self.client.flush(self.collection)

    def delete(self, ids) -> None:
        ids = [int(i) for i in ids]
        for s in range(0, len(ids), INSERT_BATCH):
            self.client.delete(self.collection, ids=ids[s:s + INSERT_BATCH])

    def delete_from(self, first_id: int) -> None:
        """Delete rows with id >= ``first_id`` (an add interrupted before it was published)."""
        self.client.delete(self.collection, filter=f"id >= {int(first_id)}")

    def count(self, below: int | None = None) -> int:
        rows = self.client.query(self.collection, filter="" if below is None else
                                 f"id < {int(below)}", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def dim(self) -> int:
        fields = self.client.describe_collection(self.collection)["fields"]
        return int(next(f["params"]["dim"] for f in fields if f["name"] == "vec"))

    def index_type(self) -> str:
        return self.client.describe_index(self.collection, "vec")["index_type"]

    def search(self, t_hat, count: int):
        """t_hat [B, D] unit sentence features (a tensor) -> (sG [B, C], global ids [B, C])."""
        import torch

        if self._search_params is None:
            self._search_params = INDEX_TYPES.get(self.index_type(), INDEX_TYPES["FLAT"])[1]
        search_params = self._search_params
        hits = self.client.search(self.collection, data=t_hat.float().numpy(), limit=count,
                                  output_fields=[],
                                  search_params={"params": search_params(count, self.params)})
        width = min(len(h) for h in hits) if hits else 0
        values = torch.tensor([[h["distance"] for h in row[:width]] for row in hits])
        ids = torch.tensor([[h["id"] for h in row[:width]] for row in hits], dtype=torch.long)
        return values, ids

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
