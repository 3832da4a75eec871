"""``generate_dataset``: write a synthetic pedestrian set in the CUHK-PEDES format.

Layout of ``out_dir``::

    reid_raw.json        list of {"split", "captions", "file_path", "processed_tokens", "id"}
    synth_meta.json      generator version, seed, parameters, per-id attributes
    imgs/<source>/<pid:05d>_c<cam>_<k>.jpg

Randomness is split into independent streams so the output does not depend on the
number of worker processes: identities come from ``default_rng([seed, 1])``, each
identity's look and cameras from ``default_rng([seed, 2, pid])`` and each image
(drawing, then captions) from ``default_rng([seed, 3, pid, k])``.
"""

from __future__ import annotations

import json
import multiprocessing
import numbers
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .attributes import ATTRIBUTE_KEYS, FUZZY_NEIGHBOURS, HAIR_FUZZY, sample_identities
from .captions import tokenize, write_caption
from .render import SOURCES, camera_scene, render_image, sample_appearance

GENERATOR_VERSION = "1.0"
SPLITS = ("train", "val", "test")
SOURCE_WEIGHTS = {"CUHK01": 0.1, "CUHK03": 0.35, "Market": 0.3, "test_query": 0.2, "VIPER": 0.05}
JPEG_QUALITY = 90
MIN_HEIGHT, MIN_WIDTH = 32, 16


def generate_dataset(out_dir: str | Path, n_ids: int, seed: int, height: int = 384,
                     width: int = 128, images_per_id: tuple[int, int] = (2, 5),
                     captions_per_image: int = 2,
                     split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                     workers: int = 1, progress: bool = False) -> dict:
    """Generate ``n_ids`` synthetic identities and write them in the CUHK-PEDES format.

    Splits are by identity (train ids first, then val, then test; ids start at 1).
    The same arguments give byte-identical ``reid_raw.json`` and identical images,
    whatever ``workers`` is. Returns a summary with per-split counts and the speed.
    """
    params = _validate(n_ids, seed, height, width, images_per_id, captions_per_image,
                       split_fractions, workers)
    start = time.perf_counter()
    out = Path(out_dir)
    if (out / "reid_raw.json").is_file() and not (out / "synth_meta.json").is_file():
        raise ValueError(f"{out}: holds a dataset this generator did not make (reid_raw.json, "
                         "no synth_meta.json); choose another --out (nothing was overwritten)")
    for source in SOURCES:
        (out / "imgs" / source).mkdir(parents=True, exist_ok=True)
    identities = build_identities(params["n_ids"], params["seed"],
                                  tuple(params["images_per_id"]), tuple(params["split_fractions"]))
    jobs = [job for ident in identities for job in _image_jobs(ident)]
    entries = _run_jobs(jobs, out, params, workers, progress)
    _write_json_atomic(out / "reid_raw.json", entries)
    _write_json_atomic(out / "synth_meta.json", _meta(params, identities), indent=1)
    seconds = time.perf_counter() - start
    return _summary(out, entries, identities, seconds)


def _validate(n_ids, seed, height, width, images_per_id, captions_per_image,
              split_fractions, workers) -> dict:
    """Check the arguments; raise ValueError with a message naming the bad one.

    Returns the data-defining parameters (not ``workers``: it does not change the output).
    """
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise ValueError(msg)

    def is_int(v) -> bool:
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    need(is_int(n_ids) and n_ids >= 3,
         f"n_ids must be an int >= 3 (train, val and test each need an identity), got {n_ids!r}")
    need(is_int(seed) and seed >= 0, f"seed must be a non-negative int, got {seed!r}")
    need(is_int(height) and height >= MIN_HEIGHT,
         f"height must be an int >= {MIN_HEIGHT}, got {height!r}")
    need(is_int(width) and width >= MIN_WIDTH,
         f"width must be an int >= {MIN_WIDTH}, got {width!r}")
    ipi = tuple(images_per_id) if isinstance(images_per_id, (tuple, list)) else ()
    need(len(ipi) == 2 and all(is_int(v) for v in ipi) and 1 <= ipi[0] <= ipi[1],
         f"images_per_id must be (low, high) ints with 1 <= low <= high, got {images_per_id!r}")
    need(is_int(captions_per_image) and 1 <= captions_per_image <= 10,
         f"captions_per_image must be an int in [1, 10], got {captions_per_image!r}")
    fr = tuple(split_fractions) if isinstance(split_fractions, (tuple, list)) else ()
    need(len(fr) == 3 and all(isinstance(v, numbers.Real) and v > 0 for v in fr)
         and abs(sum(fr) - 1.0) < 1e-6,
         f"split_fractions must be three positive numbers (train, val, test) summing to 1, "
         f"got {split_fractions!r}")
    need(is_int(workers) and workers >= 1, f"workers must be an int >= 1, got {workers!r}")
    return {"n_ids": int(n_ids), "seed": int(seed), "height": int(height), "width": int(width),
            "images_per_id": [int(v) for v in ipi],
            "captions_per_image": int(captions_per_image),
            "split_fractions": [float(v) for v in fr]}


def split_sizes(n_ids: int, fractions: tuple[float, float, float]) -> dict[str, int]:
    """Identities per split; val and test get at least one, train keeps at least one."""
    n_val = max(1, round(n_ids * fractions[1]))
    n_test = max(1, round(n_ids * fractions[2]))
    while n_ids - n_val - n_test < 1:
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    return {"train": n_ids - n_val - n_test, "val": n_val, "test": n_test}


def build_identities(n_ids: int, seed: int, images_per_id: tuple[int, int],
                     fractions: tuple[float, float, float]) -> list[dict]:
    """Attributes, split, source, cameras and look of every identity (in pid order).

    Each split is grown from its own look-alike clusters, so the test set is as
    fine-grained as the training set; ids are shuffled within a split.
    """
    rng = np.random.default_rng([seed, 1])
    taken: set[tuple] = set()
    identities, cluster_offset = [], 0
    for split, size in split_sizes(n_ids, fractions).items():
        drawn = sample_identities(size, rng, taken)
        order = rng.permutation(size)
        for i in order:
            attrs, cluster = drawn[int(i)]
            identities.append({"split": split, "attributes": attrs,
                               "cluster": cluster + cluster_offset})
        cluster_offset += 1 + max(c for _, c in drawn)
    for pid, ident in enumerate(identities, start=1):
        ident["id"] = pid
        _assign_look(ident, seed, images_per_id)
    return identities


_CAMERAS = {"CUHK01": (1, 2), "Market": (1, 2, 3, 4, 5, 6), "VIPER": (1, 2),
            "test_query": tuple(range(1, 13))}


def _assign_look(ident: dict, seed: int, images_per_id: tuple[int, int]) -> None:
    """Source sub-dataset, number of images, camera of each image, nuisance look."""
    rng = np.random.default_rng([seed, 2, ident["id"]])
    w = np.asarray(list(SOURCE_WEIGHTS.values()))
    source = list(SOURCE_WEIGHTS)[int(rng.choice(len(w), p=w / w.sum()))]
    pair = int(rng.integers(1, 6))
    cams = _CAMERAS.get(source, (2 * pair - 1, 2 * pair))  # CUHK03: one camera pair
    n = int(rng.integers(images_per_id[0], images_per_id[1] + 1))
    first = [int(c) for c in rng.permutation(cams)[:n]]
    rest = [int(c) for c in rng.choice(cams, size=n - len(first))]
    ident.update(source=source, cameras=first + rest,
                 appearance=sample_appearance(ident["attributes"], rng))


def _image_jobs(ident: dict) -> list[dict]:
    """One job per image of an identity: everything a worker needs to write it."""
    pid = ident["id"]
    return [{"id": pid, "k": k, "cam": cam, "split": ident["split"], "source": ident["source"],
             "attributes": ident["attributes"], "appearance": ident["appearance"],
             "file_path": f"{ident['source']}/{pid:05d}_c{cam}_{k}.jpg"}
            for k, cam in enumerate(ident["cameras"])]


# ----------------------------------------------------------------------------- workers

_CFG: dict = {}


def _init_worker(cfg: dict) -> None:
    _CFG.clear()
    _CFG.update(cfg)


def make_image(job: dict) -> dict:
    """Render, save and caption one image; returns its ``reid_raw.json`` entry."""
    cfg = _CFG
    rng = np.random.default_rng([cfg["seed"], 3, job["id"], job["k"]])
    scene = camera_scene(cfg["seed"], job["source"], job["cam"])
    img = render_image(job["attributes"], job["appearance"], scene, cfg["height"],
                       cfg["width"], rng)
    img.save(Path(cfg["out"]) / "imgs" / job["file_path"], "JPEG", quality=JPEG_QUALITY)
    captions = [write_caption(job["attributes"], rng) for _ in range(cfg["captions_per_image"])]
    return {"split": job["split"], "captions": captions, "file_path": job["file_path"],
            "processed_tokens": [tokenize(c) for c in captions], "id": job["id"]}


def _run_jobs(jobs: list[dict], out: Path, params: dict, workers: int,
              progress: bool) -> list[dict]:
    """Run ``make_image`` over the jobs, in order, in this process or a spawn pool."""
    cfg = {"out": str(out), "seed": params["seed"], "height": params["height"],
           "width": params["width"], "captions_per_image": params["captions_per_image"]}
    bar = tqdm(total=len(jobs), desc="synth images", unit="img", disable=not progress)
    entries: list[dict] = []
    try:
        if workers == 1:
            _init_worker(cfg)
            for job in jobs:
                entries.append(make_image(job))
                bar.update()
        else:
            chunk = max(1, min(64, len(jobs) // (workers * 8)))
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(workers, initializer=_init_worker, initargs=(cfg,)) as pool:
                for entry in pool.imap(make_image, jobs, chunksize=chunk):
                    entries.append(entry)
                    bar.update()
    finally:
        bar.close()
    return entries


# ----------------------------------------------------------------------------- outputs


def _write_json_atomic(path: Path, obj, indent: int | None = None) -> None:
    """Write JSON to a temporary file in the same directory, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=indent)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _meta(params: dict, identities: list[dict]) -> dict:
    """Contents of ``synth_meta.json``."""
    return {
        "generator": "mia.synth", "version": GENERATOR_VERSION, "seed": params["seed"],
        "params": params, "source_weights": SOURCE_WEIGHTS,
        "attribute_keys": list(ATTRIBUTE_KEYS),
        "fuzzy_neighbours": {k: list(v) for k, v in FUZZY_NEIGHBOURS.items()},
        "hair_fuzzy_neighbours": {k: list(v) for k, v in HAIR_FUZZY.items()},
        "identities": [
            {k: ident[k] for k in ("id", "split", "source", "cluster", "cameras", "attributes",
                                   "appearance")}
            for ident in identities
        ],
    }


def _summary(out: Path, entries: list[dict], identities: list[dict], seconds: float) -> dict:
    """Counts per split plus timing."""
    splits = {s: {"ids": 0, "images": 0, "captions": 0} for s in SPLITS}
    for ident in identities:
        splits[ident["split"]]["ids"] += 1
    for e in entries:
        splits[e["split"]]["images"] += 1
        splits[e["split"]]["captions"] += len(e["captions"])
    return {"out_dir": str(out), "images": len(entries), "ids": len(identities),
            "captions": sum(len(e["captions"]) for e in entries), "splits": splits,
            "seconds": round(seconds, 3),
            "images_per_second": round(len(entries) / max(seconds, 1e-9), 1)}
