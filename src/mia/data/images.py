"""Reading image files, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from mia.data.records import ImageRecord, PedestrianDataset
from mia.utils.errors import DatasetError


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
