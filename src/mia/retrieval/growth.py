"""A growing index: ``mia index add``, ``mia index remove`` and ``mia index sync``.

Every change is published by replacing ``manifest.json`` atomically, and the manifest is
the only truth about which images an index has:

- add: the new images are encoded into a new segment folder ``segments/seg-<first id>/``
  (a resumable build of its own), their global features are inserted into the vector
  database under their new global ids, and only then is the manifest replaced;
- remove: the manifest listing the removed ids is published first (from that instant no
  search mentions them), then they are deleted from the vector database;
- sync: the whole collection is rebuilt from the features on disk under a new name, the
  manifest is switched to it, and the old collection is dropped.

A crash at any point leaves the previous manifest or the new one, both searchable. The
database may then hold rows the manifest does not know (an add not yet published) or no
longer lists (a removal not yet deleted): searches drop such ids, and the next add,
remove or sync deletes them. One writer at a time: a lock file (``INDEX/.lock``) makes a
second writer wait, and an ``index build --overwrite`` waits for it before its swap.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mia.retrieval.index import (
    FORMAT,
    GalleryIndex,
    build_index,
    check_fingerprint,
    list_images,
    model_fingerprint,
    writer_lock,
)
from mia.retrieval.vectordb import DEFAULT_INDEX, VectorDB, VectorDBError, resolve_uri
from mia.utils.errors import MiaError
from mia.utils.io import atomic_write_json

log = logging.getLogger(__name__)


def _publish(index: GalleryIndex, manifest: dict) -> None:
    manifest = {**manifest, "format": FORMAT, "generation": index.generation + 1}
    manifest.setdefault("segments", [{"folder": ".", "start": 0, "count": manifest["count"]}])
    manifest.setdefault("next_id", sum(s["count"] for s in manifest["segments"]))
    manifest.setdefault("removed", [])
    atomic_write_json(index.path / "manifest.json", manifest)


def stage1_db(index: GalleryIndex, check: bool = True,
              reuse: VectorDB | None = None) -> VectorDB | None:
    """The index's vector database (None when it has none), checked against the disk:
    same dimension, and every image of the index present. Rows the manifest does not
    know are tolerated (an interrupted add or remove; searches drop them). ``reuse``: a
    connection to keep when it is to the same collection."""
    entry = index.manifest.get("stage1")
    if not entry:
        return None
    uri = resolve_uri(entry["uri"], index.path)
    if reuse is not None and (reuse.uri, reuse.collection) == (uri, entry["collection"]):
        db = reuse
    else:
        db = VectorDB(uri, entry["collection"])
    if not check:
        return db
    where = f"collection {entry['collection']} at {db.uri}"
    if not db.exists():
        raise VectorDBError(f"{where} not found (the index {index.path} needs it; "
                            f"rebuild it with: mia index sync {index.path})")
    db.load()
    if db.dim() != index.dim:
        raise VectorDBError(f"{where} has dimension {db.dim()}, the index {index.path} "
                            f"{index.dim}: they belong to different models")
    known = db.count(below=index.manifest.get("next_id", len(index)))
    removed = len(index.manifest.get("removed", []))
    if not len(index) <= known <= len(index) + removed:
        raise VectorDBError(f"{where} holds {known} of the images of {index.path}, which "
                            f"has {len(index)}: they disagree (rebuild the collection with: "
                            f"mia index sync {index.path})")
    return db


def _clean(db: VectorDB, index: GalleryIndex) -> None:
    """Delete rows of an interrupted add (ids >= next_id) or removal (removed ids)."""
    db.delete_from(index.manifest.get("next_id", len(index)))
    db.delete(index.manifest.get("removed", []))


def folder_images(index: GalleryIndex, folder: str | Path) -> list[str]:
    """Images under ``folder`` as paths relative to the index's photo folder (which must
    contain it: every path of an index is relative to one folder)."""
    root, folder = index.image_root.resolve(), Path(folder).resolve()
    if not folder.is_relative_to(root):
        raise MiaError(f"{folder}: not inside the index's photo folder {root} (paths in an "
                       "index are relative to it)")
    return [str(folder.relative_to(root) / f) for f in list_images(folder)]


def add_images(index_dir: str | Path, retriever, images: list[str], person_ids: list, *,
               batch_size: int = 128, progress: bool = True, skip_bad: bool = False) -> dict:
    """Encode ``images`` (paths relative to the index's photo folder) and publish them.
    Images the index already has are skipped and reported."""
    index_dir = Path(index_dir)
    with writer_lock(index_dir):
        index = GalleryIndex.open(index_dir)
        check_fingerprint(index, model_fingerprint(retriever.trained))
        known, new, pids, already = set(index.images), [], [], []
        for path, pid in zip(images, person_ids):
            if path in known:
                already.append(path)
            else:
                known.add(path)
                new.append(path)
                pids.append(pid)
        report = {"added": 0, "already_indexed": already, "skipped": [],
                  "gallery": len(index)}
        if not new:
            return report
        stage1_db(index)  # an unreachable or disagreeing database fails before encoding
        start = index.manifest.get("next_id", len(index))
        folder = f"segments/seg-{start:09d}"
        with contextlib.suppress(FileNotFoundError):  # never published: an interrupted add
            shutil.rmtree(index_dir / folder)
        build_index(index_dir / folder, retriever, new, pids, index.image_root,
                    source={"added_to": str(index_dir)}, batch_size=batch_size,
                    dtype=index.manifest["dtype"], progress=progress, skip_bad=skip_bad)
        report.update(publish_segment(index, folder))
        return report


def publish_segment(index: GalleryIndex, folder: str) -> dict:
    """Give the segment written in ``index.path / folder`` (a complete single-segment
    index, images new to ``index``) the next global ids: insert its global features into
    the vector database, then publish. The caller holds the writer lock."""
    db = stage1_db(index)
    segment = GalleryIndex.open(index.path / folder)
    start = index.manifest.get("next_id", len(index))
    count = len(segment)
    if db is not None:
        _clean(db, index)
        db.insert(np.arange(start, start + count), segment.rows("global"))
    manifest = dict(index.manifest)
    manifest["segments"] = [*manifest.get("segments", [{"folder": ".", "start": 0,
                                                       "count": manifest["count"]}]),
                            {"folder": folder, "start": start, "count": count}]
    manifest["next_id"] = start + count
    manifest["count"] = len(index) + count
    manifest["skipped"] = [*manifest.get("skipped", []), *segment.manifest.get("skipped", [])]
    _publish(index, manifest)
    return {"added": count, "skipped": segment.manifest.get("skipped", []),
            "gallery": manifest["count"]}


def remove_images(index_dir: str | Path, paths: list[str]) -> dict:
    """Remove images by path (as the index lists them, or absolute under its photo folder);
    paths the index does not have are reported, not an error."""
    index_dir = Path(index_dir)
    with writer_lock(index_dir):
        index = GalleryIndex.open(index_dir)
        root = index.image_root.resolve()
        where = {p: i for i, p in enumerate(index.images)}
        ids, missing = [], []
        for path in paths:
            p = Path(path)
            key = str(p.resolve().relative_to(root)) if p.is_absolute() and \
                p.resolve().is_relative_to(root) else path
            if key in where:
                ids.append(int(index.live[where.pop(key)]))
            else:
                missing.append(path)
        if ids:
            manifest = dict(index.manifest)
            manifest["removed"] = sorted([*manifest.get("removed", []), *ids])
            manifest["count"] = len(index) - len(ids)
            _publish(index, manifest)
            db = stage1_db(GalleryIndex.open(index_dir), check=False)
            if db is not None:
                db.delete(ids)
        return {"removed": len(ids), "not_in_index": missing}


def sync(index_dir: str | Path, uri: str | None = None, index_type: str = DEFAULT_INDEX,
         progress: bool = True) -> dict:
    """(Re)build the index's vector-database collection from its features on disk, at
    ``uri`` (default: where it is now, else ``stage1.db`` in the index folder)."""
    index_dir = Path(index_dir)
    with writer_lock(index_dir):
        index = GalleryIndex.open(index_dir)
        old = index.manifest.get("stage1")
        uri = uri or (old["uri"] if old else "stage1.db")
        name = f"mia_{index.manifest.get('uid', 'index')}_{index.generation + 1}"
        db = VectorDB(resolve_uri(uri, index_dir), name)
        db.drop()
        db.create(index.dim, index_type, rows=len(index))
        bar = tqdm(total=len(index), desc="vector database", unit="img",
                   disable=not progress)
        chunk = 50_000
        for s in range(0, len(index), chunk):
            positions = np.arange(s, min(s + chunk, len(index)))
            db.insert(index.live[positions], index.rows("global", positions),
                      progress=bar.update)
        bar.close()
        _publish(index, {**index.manifest, "stage1": {"backend": "milvus", "uri": uri,
                                                      "collection": name,
                                                      "index_type": index_type}})
        if old:
            try:
                stale = VectorDB(resolve_uri(old["uri"], index_dir), old["collection"])
                if (stale.uri, stale.collection) != (db.uri, name):
                    stale.drop()
            except VectorDBError as exc:  # the old database is gone: nothing to drop
                log.warning("could not drop the old collection: %s", exc)
        return {"uri": uri, "collection": name, "rows": len(index), "index_type": index_type}

