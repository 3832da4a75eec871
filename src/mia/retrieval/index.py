"""A persistent gallery index: every gallery image encoded once, stored as plain arrays.

Layout of ``INDEX/``::

    manifest.json   format, counts, dtype, and the fingerprint of the model that built it
    images.json     image paths (relative to ``image_root``) and person ids when known
    global.npy      I            [G, D]      (stage 1 reads it whole)
    features.npy    per image one contiguous record [G, 1 + 3n, D] (stage 2 reads one
                    record per candidate: one disk read):
                      I                                     (``global``, again)
                      P_1..P_n                              (``parts``)
                      RGA keys s unit(MLP_V_RGA(P))         (``rga_keys``)
                      BFM keys sqrt(s) unit(MLP_V_BFM(P))   (``bfm_keys``)

Segments of v2/v3 indexes hold ``parts.npy``, ``rga_keys.npy`` and ``bfm_keys.npy``
instead of ``features.npy``; they open, search and grow as they are (new segments are
written in the v4 layout).

Arrays are ``.npy`` files read with ``allow_pickle=False`` (memory-mapped), so opening an
index never unpickles anything. A build writes shards into ``INDEX.partial/`` (each shard
atomically), so an interrupted build resumes where it stopped; the finished index is moved
into place by one directory rename, so a half-built index never loads.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mia.model.embeddings import ImageEmbeddings
from mia.utils.errors import DatasetError, MiaError
from mia.utils.io import atomic_open, atomic_write_json, remove_stale_temporaries
from mia.utils.memory import keep_freed_memory

FORMAT = "mia-index-v4"  # v4: everything stage 2 needs of an image in one record
# v3: segments (mia index add) and removals; v2: MLP outputs as scaled unit attention keys
READABLE = ("mia-index-v2", "mia-index-v3", FORMAT)
ARRAYS = ("global", "parts", "rga_keys", "bfm_keys")
RECORD = "features"  # features.npy: ARRAYS stacked in this order along axis 1
FIELDS = dict(zip(ARRAYS, ("global_", "parts", "rga_keys", "bfm_keys")))
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

log = logging.getLogger(__name__)


class IndexFileError(MiaError):
    """An index is missing, incomplete, corrupt or belongs to another model."""


@dataclass
class Segment:
    """Images ``start .. start + count - 1`` (global ids) of an index: a folder with the
    arrays and ``images.json``. Segments are written once and never changed."""
    folder: str  # relative to the index ("." for the images of the first build)
    start: int
    arrays: dict[str, np.ndarray]  # ARRAYS -> memory-mapped [count, ...]
    images: list[str]
    person_ids: list[int | None]

    @property
    def count(self) -> int:
        return len(self.images)


class GalleryIndex:
    """An opened index: its segments and removals. Images are addressed by position
    ``0 .. len - 1`` over the images not removed (``live`` maps positions to the stable
    global ids a vector database stores)."""

    def __init__(self, path: Path | None, manifest: dict, image_root: Path,
                 segments: list[Segment], removed=()):
        self.path, self.manifest, self.image_root = path, manifest, image_root
        self.root_override = None
        self.segments = segments
        self.starts = np.array([s.start for s in segments], dtype=np.int64)
        every = np.concatenate([np.arange(s.start, s.start + s.count) for s in segments])
        kept = np.flatnonzero(~np.isin(every, np.asarray(removed, dtype=np.int64)))
        self.live = every[kept]  # sorted: segments are listed in order of their ids
        images = [p for s in segments for p in s.images]
        person_ids = [p for s in segments for p in s.person_ids]
        self.images = [images[i] for i in kept]
        self.person_ids = [person_ids[i] for i in kept]

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], images: list[str],
                    person_ids: list, image_root: Path = Path("."),
                    manifest: dict | None = None) -> GalleryIndex:
        """An in-memory index of one segment (benchmarks, tests)."""
        return cls(None, manifest or {}, Path(image_root),
                   [Segment(".", 0, arrays, list(images), list(person_ids))])

    def __len__(self) -> int:
        return len(self.live)

    @property
    def dim(self) -> int:
        return int(self.segments[0].arrays["global"].shape[1])

    @property
    def num_parts(self) -> int:
        return int(self.segments[0].arrays["parts"].shape[1])

    @property
    def generation(self) -> int:
        return int(self.manifest.get("generation", 0))

    @classmethod
    def open(cls, path: str | Path, mmap: bool = True,
             image_root: str | Path | None = None) -> GalleryIndex:
        """Open a built index. ``image_root`` overrides where the gallery's photos are (a
        moved photo folder); by default the folder recorded at build time, else the same
        place relative to the index (index and photos moved together)."""
        path = Path(path)
        if not (path / "manifest.json").is_file():
            partial = path.with_name(path.name + ".partial")
            hint = (f" (an unfinished build is in {partial}; run the build again to resume)"
                    if partial.exists() else "")
            raise IndexFileError(f"{path}: not a gallery index (no manifest.json){hint}")
        manifest = _read_json(path / "manifest.json", MANIFEST_KEYS)
        if manifest["format"] not in READABLE or not manifest["complete"]:
            raise IndexFileError(f"{path}: not a complete {FORMAT} index (format "
                                 f"{manifest['format']!r}; rebuild it with mia index build)")
        entries = manifest.get("segments") or [{"folder": ".", "start": 0,
                                                "count": manifest["count"]}]
        segments = [_open_segment(path, e, mmap) for e in entries]
        index = cls(path, manifest, _image_root(path, manifest, image_root), segments,
                    manifest.get("removed", []))
        index.root_override = image_root  # what a reload of this index is given again
        if len(index) != manifest["count"]:
            raise IndexFileError(f"{path}: {len(index)} images in its segments, "
                                 f"{manifest['count']} in the manifest")
        return index

    def rows(self, name: str, positions=None) -> np.ndarray:
        """Array ``name`` (one of ARRAYS, or ``features``: all of them stacked
        [.., 1 + 3n, D]) at ``positions`` (default all), gathered from the segments'
        memory maps: only those rows are read from disk."""
        if positions is None:
            if len(self.segments) == 1 and len(self) == self.segments[0].count \
                    and name in self.segments[0].arrays:
                return self.segments[0].arrays[name]
            positions = np.arange(len(self))
        ids = self.live[np.asarray(positions, dtype=np.int64)]
        seg = np.searchsorted(self.starts, ids, side="right") - 1
        d, n = self.dim, self.num_parts
        shape = {"global": (d,), RECORD: (1 + 3 * n, d)}.get(name, (n, d))
        out = np.empty((len(ids), *shape), dtype=self.segments[0].arrays["global"].dtype)
        for k in np.unique(seg):
            pick = np.flatnonzero(seg == k)
            local = ids[pick] - self.segments[k].start
            order = np.argsort(local, kind="stable")  # ascending offsets: sequential reads
            out[pick[order]] = _segment_rows(self.segments[k].arrays, name, local[order], n)
        return out

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """Every array over all images (copies unless the index is one untouched segment)."""
        return {name: self.rows(name) for name in ARRAYS}

    def positions(self, ids) -> np.ndarray:
        """Positions of global ``ids`` (-1 for ids removed or unknown)."""
        ids = np.asarray(ids, dtype=np.int64)
        at = np.clip(np.searchsorted(self.live, ids), 0, max(len(self.live) - 1, 0))
        found = (self.live[at] == ids) if len(self.live) else np.zeros(len(ids), bool)
        return np.where(found, at, -1)

    def embeddings(self, index=None, dtype=torch.float32) -> ImageEmbeddings:
        """Rows ``index`` (positions, default all) as ImageEmbeddings in ``dtype`` (copies)."""
        with warnings.catch_warnings():  # read-only memory maps: only read, then copied
            warnings.simplefilter("ignore", UserWarning)
            record = torch.from_numpy(self.rows(RECORD, index)).to(dtype, copy=True)
            rows = _split(record, self.num_parts)  # views of the one copy
            return ImageEmbeddings(**{field: rows[name] for name, field in FIELDS.items()})

    def image_path(self, i: int) -> Path:
        return self.image_root / self.images[i]


SPARSE = 0.05  # gathers of fewer rows than this fraction of an array read them one by one


def _gather(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``array[rows]`` for ascending ``rows``. From a memory map, a small gather is read
    with one ``pread`` per run of consecutive rows: a page fault on a map would read ahead
    (up to the device's read-ahead, 8 MB on some virtual disks) around every row."""
    mapped = _mapped_file(array)
    if mapped is None or len(rows) > SPARSE * len(array):
        return array[rows]
    fd, name, start = mapped
    out = np.empty((len(rows), *array.shape[1:]), dtype=array.dtype)
    if not len(rows):
        return out
    row_bytes = out[0].nbytes
    flat = out.reshape(len(rows), -1).view(np.uint8)
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1  # runs of consecutive rows
    runs = list(zip(np.r_[0, breaks].tolist(), np.r_[breaks, len(rows)].tolist()))

    def read(run: tuple[int, int]) -> None:
        first, last = run
        view = memoryview(flat[first:last].reshape(-1))
        at, done = start + int(rows[first]) * row_bytes, 0
        while done < len(view):  # a read may return less than asked (2 GB cap, FUSE)
            try:
                got = os.preadv(fd, [view[done:]], at + done)
            except OSError as exc:
                raise IndexFileError(f"{name}: cannot read row {rows[first]} ({exc})") from exc
            if got == 0:
                raise IndexFileError(f"{name}: truncated (row {rows[first]} is past its end)")
            done += got

    if len(runs) < 2 * READ_THREADS:
        for run in runs:
            read(run)
    else:  # several reads in flight: the disk answers some of them together
        futures = [_reader_pool().submit(read, run) for run in runs]
        wait(futures)
        for future in futures:
            future.result()
    return out


READ_THREADS = 16  # reads in flight for a large gather (cold C = 500: 93 -> 68 ms, README)
_POOL: list = []
_POOL_LOCK = threading.Lock()


def _reader_pool() -> ThreadPoolExecutor:
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(READ_THREADS, thread_name_prefix="mia-read"))
        return _POOL[0]


os.register_at_fork(after_in_child=_POOL.clear)  # a forked child starts its own threads


def _mapped_file(array: np.ndarray) -> tuple[int, str, int] | None:
    """(file descriptor, file name, offset of the first row) of a contiguous memory-mapped
    ``array`` (or a view into one) opened by :func:`_open_segment`; None otherwise. The
    descriptor was opened with the map, so it reads the same file even if the name now
    points at another one (an index rebuilt in place)."""
    root = array
    while isinstance(root, np.memmap) and isinstance(root.base, np.memmap):
        root = root.base  # a slice of a map keeps the map's offset: find the map itself
    fd = getattr(root, "_mia_fd", None)
    if fd is None or not array.flags.c_contiguous:
        return None
    data = array.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    return fd, root.filename, root.offset + data


def _load_mapped(file: Path, mmap: bool) -> np.ndarray:
    """An index array, memory-mapped with a descriptor of the same file for ``pread``."""
    array = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
    if isinstance(array, np.memmap):
        fd = os.open(file, os.O_RDONLY)
        array._mia_fd = fd
        weakref.finalize(array, os.close, fd)
    return array


def _split(record: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """ARRAYS as views of records [.., 1 + 3n, D]."""
    return {"global": record[:, 0], "parts": record[:, 1:1 + n],
            "rga_keys": record[:, 1 + n:1 + 2 * n], "bfm_keys": record[:, 1 + 2 * n:]}


def _segment_rows(arrays: dict[str, np.ndarray], name: str, rows: np.ndarray,
                  n: int) -> np.ndarray:
    """Rows (ascending) of ``name`` in one segment, whichever layout it has."""
    if name == "global" or (name == RECORD) == (RECORD in arrays):
        return _gather(arrays[name], rows)
    if name == RECORD:  # a v2/v3 segment: four reads per image
        return np.concatenate([_gather(arrays["global"], rows)[:, None],
                               *(_gather(arrays[k], rows) for k in ARRAYS[1:])], axis=1)
    return _split(_gather(arrays[RECORD], rows), n)[name]


def _open_segment(path: Path, entry: dict, mmap: bool) -> Segment:
    folder = path / entry["folder"]
    listing = _read_json(folder / "images.json", ("images", "person_ids"))
    names = ("global", RECORD) if (folder / f"{RECORD}.npy").is_file() else ARRAYS
    if names == ARRAYS and not (folder / "parts.npy").is_file():  # neither layout
        raise IndexFileError(f"{folder}/{RECORD}.npy: missing (the index is incomplete; "
                             "rebuild it)")
    try:
        arrays = {name: _load_mapped(folder / f"{name}.npy", mmap) for name in names}
    except (OSError, ValueError) as exc:
        raise IndexFileError(f"{folder}: unreadable or corrupt index array ({exc})") from exc
    count = entry["count"]
    if any(a.shape[0] != count for a in arrays.values()) or len(listing["images"]) != count:
        raise IndexFileError(f"{folder}: array sizes disagree with the manifest "
                             f"({count} images)")
    if RECORD in arrays:
        record, dim = arrays[RECORD], arrays["global"].shape[1]
        if record.ndim != 3 or record.shape[1] % 3 != 1 or record.shape[2] != dim:
            raise IndexFileError(f"{folder}/{RECORD}.npy: shape {record.shape}, expected "
                                 f"[{count}, 1 + 3 x parts, {dim}]")
        views = _split(record, record.shape[1] // 3)
        arrays.update({k: views[k] for k in ARRAYS[1:]})
    return Segment(entry["folder"], entry["start"], arrays, listing["images"],
                   listing["person_ids"])


MANIFEST_KEYS = ("format", "complete", "count", "dim", "parts", "dtype", "image_root", "model")


def _read_json(path: Path, keys: tuple[str, ...]) -> dict:
    """A JSON object with ``keys``; anything else is one clear IndexFileError."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IndexFileError(f"{path}: missing (the index is incomplete; rebuild it)") from exc
    except (OSError, ValueError) as exc:
        raise IndexFileError(f"{path}: unreadable or corrupt ({exc})") from exc
    missing = [k for k in keys if not isinstance(data, dict) or k not in data]
    if missing:
        raise IndexFileError(f"{path}: corrupt index file, missing field(s) "
                             f"{', '.join(missing)}")
    return data


def _image_root(path: Path, manifest: dict, override: str | Path | None) -> Path:
    """Where the photos are: the override, the recorded folder, or the same place relative
    to the index (the folder moved along with it)."""
    if override is not None:
        root = Path(override)
        if not root.is_dir():
            raise IndexFileError(f"{root}: image folder not found")
        return root
    recorded = Path(manifest["image_root"])
    relative = manifest.get("image_root_relative")
    if not recorded.is_dir() and relative is not None:
        moved = (path.resolve().parent / relative).resolve()
        if moved.is_dir():
            return moved
    return recorded


def model_fingerprint(trained) -> dict:
    """What an index must agree on with the model that queries it."""
    import dataclasses

    from mia.model.mia import NON_ARCHITECTURE

    config = {k: v for k, v in dataclasses.asdict(trained.model.config).items()
              if k not in NON_ARCHITECTURE}
    return {"model_config": config, "vocab_fingerprint": trained.vocab.fingerprint,
            "checkpoint_sha256": trained.weights_sha256(),
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


def build_index(out: str | Path, retriever, images: list[str], person_ids: list,
                image_root: Path, *, source: dict, batch_size: int = 128,
                shard_size: int = 1024, dtype: str = "float16", progress: bool = True,
                overwrite: bool = False, skip_bad: bool = False) -> GalleryIndex:
    """Encode ``images`` (paths relative to ``image_root``) with a :class:`mia.api.Retriever`
    and write an index at ``out`` (resumable). With ``skip_bad``, unreadable images are
    left out and listed in the manifest (``skipped``); otherwise the first one is an error
    naming it."""
    keep_freed_memory()
    out = Path(out)
    _recover_swap(out)
    if out.exists():
        if not overwrite:
            raise MiaError(f"{out} already exists; use --overwrite to replace it")
        if not (out / "manifest.json").is_file():
            raise MiaError(f"{out} is not a gallery index (no manifest.json): --overwrite "
                           "replaces an index only; choose another --out (nothing was "
                           "deleted)")
        if Path(image_root).resolve().is_relative_to(out.resolve()):
            raise MiaError(f"--image-root {image_root} is inside --out {out}: --overwrite "
                           "would delete the images; choose another --out")
    work = out.with_name(out.name + ".partial")
    fingerprint = model_fingerprint(retriever.trained)
    plan = {"images": images, "model": fingerprint, "dtype": dtype, "shard_size": shard_size,
            "skip_bad": skip_bad}
    _start_or_resume(work, plan)
    shards = range(0, len(images), shard_size)
    bar = tqdm(total=len(images), desc="indexing", unit="img", disable=not progress)
    for start in shards:
        shard = work / f"shard-{start // shard_size:06d}.npz"
        if not shard.is_file():
            _write_shard(shard, retriever, images, start, shard_size, Path(image_root),
                         batch_size, dtype, skip_bad)
        bar.update(min(shard_size, len(images) - start))
    bar.close()
    _finish(work, out, plan, person_ids, image_root, source, fingerprint, retriever.trained,
            len(shards))
    return GalleryIndex.open(out)


def _write_shard(shard: Path, retriever, images: list[str], start: int, size: int, root: Path,
                 batch_size: int, dtype: str, skip_bad: bool) -> None:
    """Encode images ``start .. start + size - 1`` into one shard file (with the positions
    kept and the reasons of the ones skipped)."""
    kept, pixels, skipped = [], [], []
    for i in range(start, min(start + size, len(images))):
        try:
            pixels.append(retriever.preprocess(root / images[i]))
            kept.append(i)
        except DatasetError as exc:
            if not skip_bad:
                raise DatasetError(f"{exc} (use --skip-bad to leave such images out)") from exc
            skipped.append(f"{images[i]}: {exc}")
    arrays = {name: [] for name in ARRAYS}
    for b in range(0, len(pixels), batch_size):
        emb = retriever.encode_pixels(torch.stack(pixels[b:b + batch_size]))
        for name, field in FIELDS.items():
            arrays[name].append(getattr(emb, field).numpy().astype(dtype))
    d, n = retriever.config.model.embed_dim, retriever.config.model.num_parts
    empty = {"global": (0, d), "parts": (0, n, d), "rga_keys": (0, n, d), "bfm_keys": (0, n, d)}
    with atomic_open(shard, "wb") as handle:
        np.savez(handle, kept=np.array(kept, dtype=np.int64),
                 skipped=np.array(skipped, dtype=str),
                 **{name: np.concatenate(parts) if parts else np.zeros(empty[name], dtype)
                    for name, parts in arrays.items()})


@contextlib.contextmanager
def writer_lock(index_dir: Path) -> Iterator[None]:
    """One writer at a time: an exclusive lock on ``INDEX/.lock`` (add, remove, sync, and
    the swap of an ``--overwrite`` build). A writer that waited on the lock file of an index
    swapped out meanwhile finds another file at ``INDEX/.lock`` and locks that one. Not
    re-entrant: a holder must not take it again (a second open of the file waits)."""
    index_dir = Path(index_dir)
    lock, old = index_dir / ".lock", index_dir.with_name(index_dir.name + ".old")
    while True:
        for _ in range(50):  # the instant of a swap: INDEX.old is there, INDEX not yet
            if (index_dir / "manifest.json").is_file() or not old.is_dir():
                break
            time.sleep(0.1)
        if not (index_dir / "manifest.json").is_file():
            GalleryIndex.open(index_dir)  # raises the one-line error naming what is wrong
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                if _is_file_at(handle, lock):
                    yield
                    return
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _is_file_at(handle, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
    except FileNotFoundError:
        return False


def _recover_swap(out: Path) -> None:
    """A build stopped between moving the old index aside and moving the new one in left
    ``OUT.old`` and no ``OUT``: put the old index back (the new one is built again)."""
    old = out.with_name(out.name + ".old")
    if old.is_dir() and not out.exists():
        os.replace(old, out)
        log.warning("%s: restored from %s (an earlier --overwrite build was stopped)", out, old)


def _start_or_resume(work: Path, plan: dict) -> None:
    plan_file = work / "plan.json"
    if plan_file.is_file():
        if json.loads(plan_file.read_text(encoding="utf-8")) == plan:
            remove_stale_temporaries(work / "*")  # of a shard being written when stopped
            return  # resume: finished shards are kept
        shutil.rmtree(work)  # another gallery or model: start over
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_json(plan_file, plan, indent=None)


def _finish(work: Path, out: Path, plan: dict, person_ids: list, image_root: Path,
            source: dict, fingerprint: dict, trained, n_shards: int) -> None:
    shards = [np.load(work / f"shard-{i:06d}.npz", allow_pickle=False) for i in range(n_shards)]
    kept = np.concatenate([s["kept"] for s in shards]).tolist()
    skipped = [str(x) for s in shards for x in s["skipped"]]
    if not kept:
        raise DatasetError(f"no readable image to index ({len(skipped)} skipped; first: "
                           f"{skipped[0] if skipped else '-'})")
    with atomic_open(work / "global.npy", "wb") as handle:
        np.save(handle, np.concatenate([s["global"] for s in shards]), allow_pickle=False)
    with atomic_open(work / f"{RECORD}.npy", "wb") as handle:  # [G, 1 + 3n, D]
        np.save(handle, np.concatenate([np.concatenate([s["global"][:, None],
                                                        *(s[k] for k in ARRAYS[1:])], axis=1)
                                        for s in shards]), allow_pickle=False)
    atomic_write_json(work / "images.json", {"images": [plan["images"][i] for i in kept],
                                             "person_ids": [person_ids[i] for i in kept]},
                      indent=None)
    first = shards[0]
    root = Path(image_root).resolve()
    atomic_write_json(work / "manifest.json", {
        "format": FORMAT, "complete": True, "count": len(kept), "uid": uuid.uuid4().hex,
        "generation": 0, "next_id": len(kept),
        "segments": [{"folder": ".", "start": 0, "count": len(kept)}], "removed": [],
        "dim": int(first["global"].shape[1]), "parts": int(first["parts"].shape[1]),
        "dtype": plan["dtype"], "image_root": str(root),
        "image_root_relative": os.path.relpath(root, out.resolve().parent),
        "skipped": skipped, "source": source,
        "model": {**fingerprint, "run": str(Path(trained.run).resolve()),
                  "checkpoint": str(Path(trained.checkpoint).resolve()),
                  **dict(zip(("lambda1", "lambda2"), trained.lambdas()))}})
    old = out.with_name(out.name + ".old")
    replacing = out.exists()  # --overwrite: swap in the new index, then drop the old one
    # under the lock, no add, remove or sync runs on the index being replaced; the shards
    # are kept until the swap, so a build stopped while it waits resumes with them
    with writer_lock(out) if replacing else contextlib.nullcontext():
        for i in range(n_shards):
            os.unlink(work / f"shard-{i:06d}.npz")
        os.unlink(work / "plan.json")
        if replacing:
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
        os.replace(work, out)
    if replacing:
        shutil.rmtree(old)
