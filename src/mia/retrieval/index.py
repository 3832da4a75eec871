"""A persistent gallery index: every gallery image encoded once, stored as plain arrays.

Layout of ``INDEX/``::

    manifest.json   format, counts, dtype, and the fingerprint of the model that built it
    images.json     image paths (relative to ``image_root``) and person ids when known
    global.npy      I            [G, D]
    parts.npy       P_1..P_n     [G, n, D]
    rga_keys.npy    RGA keys s unit(MLP_V_RGA(P)) [G, n, D]
    bfm_keys.npy    BFM keys sqrt(s) unit(MLP_V_BFM(P)) [G, n, D]

Arrays are ``.npy`` files read with ``allow_pickle=False`` (memory-mapped), so opening an
index never unpickles anything. A build writes shards into ``INDEX.partial/`` (each shard
atomically), so an interrupted build resumes where it stopped; the finished index is moved
into place by one directory rename, so a half-built index never loads.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mia.model.embeddings import ImageEmbeddings
from mia.utils.errors import MiaError
from mia.utils.io import atomic_open, atomic_write_json, sha256_file

FORMAT = "mia-index-v2"  # v2: MLP outputs stored as scaled unit attention keys
ARRAYS = ("global", "parts", "rga_keys", "bfm_keys")
FIELDS = dict(zip(ARRAYS, ("global_", "parts", "rga_keys", "bfm_keys")))
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class IndexFileError(MiaError):
    """An index is missing, incomplete, corrupt or belongs to another model."""


@dataclass
class GalleryIndex:
    path: Path | None
    manifest: dict
    image_root: Path
    images: list[str]
    person_ids: list[int | None]
    arrays: dict[str, np.ndarray]  # ARRAYS -> float16/float32 arrays (maybe memory-mapped)

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def open(cls, path: str | Path, mmap: bool = True) -> GalleryIndex:
        path = Path(path)
        if not (path / "manifest.json").is_file():
            partial = path.with_name(path.name + ".partial")
            hint = (f" (an unfinished build is in {partial}; run the build again to resume)"
                    if partial.exists() else "")
            raise IndexFileError(f"{path}: not a gallery index (no manifest.json){hint}")
        try:
            manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
            listing = json.loads((path / "images.json").read_text(encoding="utf-8"))
            arrays = {name: np.load(path / f"{name}.npy", mmap_mode="r" if mmap else None,
                                    allow_pickle=False) for name in ARRAYS}
        except (OSError, ValueError, KeyError) as exc:
            raise IndexFileError(f"{path}: unreadable or corrupt index ({exc})") from exc
        if manifest.get("format") != FORMAT or not manifest.get("complete"):
            raise IndexFileError(f"{path}: not a complete {FORMAT} index")
        G = manifest["count"]
        if any(a.shape[0] != G for a in arrays.values()) or len(listing["images"]) != G:
            raise IndexFileError(f"{path}: array sizes disagree with the manifest ({G} images)")
        return cls(path, manifest, Path(manifest["image_root"]), listing["images"],
                   listing["person_ids"], arrays)

    def embeddings(self, index=None, dtype=torch.float32) -> ImageEmbeddings:
        """Rows ``index`` (default all) as ImageEmbeddings in ``dtype`` (always a copy)."""
        pick = (lambda a: a) if index is None else (lambda a: a[index])
        with warnings.catch_warnings():  # read-only memory maps: only read, then copied
            warnings.simplefilter("ignore", UserWarning)
            return ImageEmbeddings(**{field: torch.from_numpy(np.ascontiguousarray(
                pick(self.arrays[name]))).to(dtype, copy=True) for name, field in FIELDS.items()})

    def image_path(self, i: int) -> Path:
        return self.image_root / self.images[i]


def model_fingerprint(trained) -> dict:
    """What an index must agree on with the model that queries it."""
    import dataclasses

    from mia.model.mia import NON_ARCHITECTURE

    config = {k: v for k, v in dataclasses.asdict(trained.model.config).items()
              if k not in NON_ARCHITECTURE}
    return {"model_config": config, "vocab_fingerprint": trained.vocab.fingerprint,
            "checkpoint_sha256": sha256_file(trained.checkpoint),
            "image_size": [trained.config.data.height, trained.config.data.width]}


def check_fingerprint(index: GalleryIndex, fingerprint: dict) -> None:
    """Raise naming every difference between the index's model and ``fingerprint``."""
    built = index.manifest["model"]
    diffs = []
    for key, value in built["model_config"].items():
        now = fingerprint["model_config"].get(key)
        if now != value:
            diffs.append(f"model.{key}: index {value!r}, model {now!r}")
    for key, label in (("vocab_fingerprint", "vocabulary"),
                       ("checkpoint_sha256", "checkpoint weights"),
                       ("image_size", "image size")):
        if built[key] != fingerprint[key]:
            diffs.append(f"{label}: index {built[key]}, model {fingerprint[key]}")
    if diffs:
        raise IndexFileError(f"{index.path} was built by another model: " + "; ".join(diffs)
                          + " (rebuild it with mia index build)")


def list_images(folder: str | Path) -> list[str]:
    """Image files under ``folder``, recursively, as sorted relative paths."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MiaError(f"{folder}: image directory not found")
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                   if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise MiaError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def build_index(out: str | Path, trained, store, images: list[str], person_ids: list,
                image_root: Path, *, source: dict, batch_size: int = 128,
                shard_size: int = 1024, dtype: str = "float16", device="cpu",
                progress: bool = True, overwrite: bool = False) -> GalleryIndex:
    """Encode ``images`` with ``trained`` and write an index at ``out`` (resumable)."""
    from mia.evaluation.encode import encode_gallery

    out = Path(out)
    if out.exists() and not overwrite:
        raise MiaError(f"{out} already exists; use --overwrite to replace it")
    work = out.with_name(out.name + ".partial")
    fingerprint = model_fingerprint(trained)
    plan = {"images": images, "model": fingerprint, "dtype": dtype, "shard_size": shard_size}
    _start_or_resume(work, plan)
    records = [_Record(p) for p in images]
    shards = range(0, len(images), shard_size)
    bar = tqdm(total=len(images), desc="indexing", unit="img", disable=not progress)
    for start in shards:
        shard = work / f"shard-{start // shard_size:06d}.npz"
        chunk = records[start:start + shard_size]
        if not shard.is_file():
            emb = encode_gallery(trained.model, chunk, store, batch_size, device)
            with atomic_open(shard, "wb") as handle:
                np.savez(handle, **{name: getattr(emb, field).numpy().astype(dtype)
                                    for name, field in FIELDS.items()})
        bar.update(len(chunk))
    bar.close()
    _finish(work, out, plan, person_ids, image_root, source, fingerprint, trained, len(shards))
    return GalleryIndex.open(out)


@dataclass(frozen=True)
class _Record:  # what encode_gallery needs of a record
    file_path: str


def _start_or_resume(work: Path, plan: dict) -> None:
    plan_file = work / "plan.json"
    if plan_file.is_file():
        if json.loads(plan_file.read_text(encoding="utf-8")) == plan:
            return  # resume: finished shards are kept
        shutil.rmtree(work)  # another gallery or model: start over
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_json(plan_file, plan, indent=None)


def _finish(work: Path, out: Path, plan: dict, person_ids: list, image_root: Path,
            source: dict, fingerprint: dict, trained, n_shards: int) -> None:
    shards = [np.load(work / f"shard-{i:06d}.npz", allow_pickle=False) for i in range(n_shards)]
    for name in ARRAYS:
        with atomic_open(work / f"{name}.npy", "wb") as handle:
            np.save(handle, np.concatenate([s[name] for s in shards]), allow_pickle=False)
    atomic_write_json(work / "images.json", {"images": plan["images"],
                                             "person_ids": person_ids}, indent=None)
    first = shards[0]
    atomic_write_json(work / "manifest.json", {
        "format": FORMAT, "complete": True, "count": len(plan["images"]),
        "dim": int(first["global"].shape[1]), "parts": int(first["parts"].shape[1]),
        "dtype": plan["dtype"], "image_root": str(Path(image_root).resolve()),
        "source": source, "model": {**fingerprint, "run": str(Path(trained.run).resolve()),
                                    "checkpoint": str(Path(trained.checkpoint).resolve()),
                                    "lambda1": trained.config.eval.lambda1,
                                    "lambda2": trained.config.eval.lambda2}})
    for i in range(n_shards):
        os.unlink(work / f"shard-{i:06d}.npz")
    os.unlink(work / "plan.json")
    if out.exists():  # --overwrite: swap in the new index, then drop the old one
        old = out.with_name(out.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(work, out)
        shutil.rmtree(old)
    else:
        os.replace(work, out)
