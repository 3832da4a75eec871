"""The record model shared by every dataset format, and the one place ids become labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mia.utils.errors import DatasetError


@dataclass(frozen=True)
class ImageRecord:
    """One annotated image: where it is, whose it is, what people wrote about it."""

    file_path: str  # as written in the annotation file, relative to the image root
    person_id: int
    captions: tuple[str, ...]
    split: str
    entry: int  # index of the entry in the annotation file, for error messages
    # captions machine-written or otherwise unreliable (an entry's optional "weak": true);
    # train.weak_weight scales the losses of their pairs
    weak: bool = False


@dataclass
class PedestrianDataset:
    """All records of one annotation file, plus where their images live."""

    format: str
    annotation_file: Path
    image_root: Path
    records: list[ImageRecord]
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count (--skip-bad)
    warnings: list[str] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.annotation_file.parent

    @property
    def splits(self) -> list[str]:
        return list(dict.fromkeys(r.split for r in self.records))

    def split(self, name: str) -> list[ImageRecord]:
        """Records of one split; an unknown or empty split is an error that lists the others."""
        records = [r for r in self.records if r.split == name]
        if not records:
            raise DatasetError(
                f"{self.annotation_file}: split {name!r} is empty or absent "
                f"(splits present: {', '.join(self.splits) or 'none'})"
            )
        return records

    def image_path(self, record: ImageRecord) -> Path:
        return self.image_root / record.file_path

    def captions(self, split: str | None = None) -> list[str]:
        records = self.records if split is None else self.split(split)
        return [c for r in records for c in r.captions]


def label_map(records: list[ImageRecord]) -> dict[int, int]:
    """Person ids -> contiguous training labels 0..K-1, in increasing id order."""
    return {pid: label for label, pid in enumerate(sorted({r.person_id for r in records}))}
