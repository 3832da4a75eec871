"""Open a dataset directory: detect its format (or take the one given) and read it."""

from __future__ import annotations

from pathlib import Path

from mia.data.formats import FORMATS, AnnotationFormat, read_dataset
from mia.data.records import PedestrianDataset
from mia.utils.errors import DatasetError


def detect_format(root: Path) -> AnnotationFormat:
    """The format whose annotation file is in ``root``; errors say what was expected."""
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset directory not found")
    found = [f for f in FORMATS.values() if (root / f.annotation).is_file()]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        names = ", ".join(f"{f.annotation} ({f.name})" for f in found)
        raise DatasetError(f"{root}: several annotation files found: {names}; choose with --format")
    hints = [hint for f in FORMATS.values() for name, hint in f.confusables.items()
             if (root / name).is_file()]
    expected = ", ".join(f"{f.annotation} ({f.name})" for f in FORMATS.values())
    raise DatasetError(f"{root}: no annotation file found; expected one of {expected}"
                       + (f". {' '.join(hints)}" if hints else ""))


def open_dataset(root: str | Path, format: str | None = None, skip_bad: bool = False,
                 check_images: bool = True) -> PedestrianDataset:
    """Read a dataset directory in CUHK-PEDES, ICFG-PEDES or RSTPReid format."""
    root = Path(root)
    if format is None:
        fmt = detect_format(root)
    elif format in FORMATS:
        fmt = FORMATS[format]
    else:
        raise DatasetError(f"unknown dataset format {format!r} (valid: {', '.join(FORMATS)})")
    return read_dataset(fmt, root, skip_bad=skip_bad, check_images=check_images)
