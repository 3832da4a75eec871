"""Reading image files, with errors that name the file, and the one preprocessing every
image goes through (training, evaluation, indexing, the Python API)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from mia.data.records import ImageRecord, PedestrianDataset
from mia.utils.errors import DatasetError

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
                      progress: bool = False) -> list[tuple[ImageRecord, str]]:
    """(record, message) for every image that exists but cannot be decoded."""
    bad = []
    records = dataset.records if records is None else records
    for record in tqdm(records, desc="decoding images", unit="img", disable=not progress):
        path = dataset.image_path(record)
        if not path.is_file():
            continue
        try:
            load_image(path)
        except DatasetError as exc:
            bad.append((record, str(exc)))
    return bad
