"""Reading image files, with errors that name the file, and the one preprocessing every
image goes through (training, evaluation, indexing, the Python API)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from mia.data.records import ImageRecord, PedestrianDataset
from mia.utils.errors import DatasetError
from mia.utils.io import atomic_write_json

log = logging.getLogger(__name__)

# What the Python API accepts as an image (see mia.api.as_pil)
ImageLike = str | Path | Image.Image | np.ndarray | torch.Tensor
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def to_pixels(img: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """An RGB image resized (bilinear) to ``size`` = (H, W): uint8 [3, H, W]."""
    h, w = size
    if img.size != (w, h):
        img = img.resize((w, h), resample=Image.BILINEAR)
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def normalize(pixels: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """uint8 [3, H, W] -> float [3, H, W] with the ImageNet mean and deviation (mirrored
    left-right with ``flip``)."""
    x = pixels.float().div_(255)
    if flip:
        x = x.flip(-1)
    return (x - _MEAN) / _STD


def load_image(path: str | Path) -> Image.Image:
    """An RGB image, fully decoded; an unreadable file raises DatasetError naming it."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: image file not found") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable image file ({exc})") from exc


def unreadable_images(dataset: PedestrianDataset, records: list[ImageRecord] | None = None,
                      progress: bool = False, workers: int | None = None,
                      remember: bool = True) -> list[tuple[ImageRecord, str]]:
    """(record, message) for every image that exists but cannot be decoded.

    Images are decoded in ``workers`` threads (Pillow decodes outside the GIL). With
    ``remember`` the verdict is kept in ``<dataset>/.mia_cache/images-<key>.json``, the key
    hashing every checked file's path, size and modification time, so a second run over the
    same files decodes nothing."""
    records = dataset.records if records is None else records
    paths = [dataset.image_path(r) for r in records]
    present = [(r, p, p.stat()) for r, p in zip(records, paths) if p.is_file()]
    key = hashlib.sha256(json.dumps([[str(p), s.st_size, s.st_mtime_ns]
                                     for _, p, s in present]).encode()).hexdigest()[:20]
    cache = dataset.root / ".mia_cache" / f"images-{key}.json"
    if remember and cache.is_file():
        try:
            bad = dict(json.loads(cache.read_text(encoding="utf-8"))["unreadable"])
            return [(r, bad[str(p)]) for r, p, _ in present if str(p) in bad]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache is only recomputed
    bar = tqdm(total=len(present), desc="decoding images", unit="img", disable=not progress)

    def check(item) -> str | None:
        try:
            load_image(item[1])
            return None
        except DatasetError as exc:
            return str(exc)
        finally:
            bar.update(1)

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        verdicts = list(pool.map(check, present))
    bar.close()
    bad = [(r, message) for (r, _, _), message in zip(present, verdicts) if message]
    if remember:
        try:
            atomic_write_json(cache, {"unreadable": [[str(dataset.image_path(r)), m]
                                                     for r, m in bad]}, indent=None)
        except OSError as exc:  # a read-only dataset: check again next time
            log.info("could not remember the image check in %s (%s)", cache, exc)
    return bad


def drop_unreadable(dataset: PedestrianDataset, skip_bad: bool, progress: bool = True) -> None:
    """Decode-check every image of ``dataset`` before any training work: an unreadable one is
    an error naming its entry and file, or with ``skip_bad`` its entry is dropped and
    counted in ``dataset.skipped``."""
    bad = unreadable_images(dataset, progress=progress)
    if not bad:
        return
    if not skip_bad:
        record, message = bad[0]
        raise DatasetError(f"{dataset.annotation_file}: entry {record.entry} (id "
                           f"{record.person_id}): {message}"
                           + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
                           + "; use --skip-bad to leave such images out")
    dropped = {id(r) for r, _ in bad}
    dataset.records = [r for r in dataset.records if id(r) not in dropped]
    dataset.skipped["image unreadable"] = dataset.skipped.get("image unreadable", 0) + len(bad)
