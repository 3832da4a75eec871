"""Reading and validating an annotation file of any supported format.

A format is a small declarative :class:`AnnotationFormat`; this module does everything
else once: JSON loading, per-entry field checks, duplicate and missing-image detection,
and the ``skip_bad`` policy. Every error names the file, the entry (index and id) and the
field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mia.data.records import ImageRecord, PedestrianDataset
from mia.utils.errors import DatasetError

MAX_LISTED = 5
# A split every format accepts: images of other people, never trained on and never queried,
# that join another split's gallery (``mia evaluate --distractors distractors``,
# ``eval.distractors``): a validation gallery as large as a test split's
DISTRACTORS = "distractors"


@dataclass(frozen=True)
class AnnotationFormat:
    name: str
    annotation: str  # annotation file name inside the dataset directory
    splits: tuple[str, ...]
    path_field: str = "file_path"
    id_field: str = "id"
    captions_field: str = "captions"
    split_field: str = "split"
    image_dir: str = "imgs"
    confusables: dict[str, str] = field(default_factory=dict)  # other file name -> hint

    @property
    def all_splits(self) -> tuple[str, ...]:
        """The format's own splits, then ``distractors``."""
        return (*self.splits, DISTRACTORS)

    def image_root(self, root: Path) -> Path:
        """``<root>/<image_dir>`` when it exists, else the dataset directory itself."""
        candidate = root / self.image_dir
        return candidate if candidate.is_dir() else root


class _Problems:
    """Collects entry-level problems; raises at once when strict, counts them when not."""

    def __init__(self, file: Path, skip_bad: bool):
        self.file, self.skip_bad, self.counts = file, skip_bad, {}

    def report(self, index: int, pid: Any, reason: str, detail: str) -> None:
        where = f"{self.file}: entry {index} (id {pid})"
        if not self.skip_bad:
            raise DatasetError(f"{where}: {detail} (use --skip-bad to drop bad entries)")
        self.counts[reason] = self.counts.get(reason, 0) + 1


def load_json(path: Path) -> Any:
    if not path.is_file():
        raise DatasetError(f"{path}: annotation file not found")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc})") from exc


def _check_entry(fmt: AnnotationFormat, entry: Any) -> tuple[str, str] | None:
    """(reason, detail) of the first problem with one entry's fields, or None."""
    if not isinstance(entry, dict):
        return "not an object", f"expected a JSON object, got {type(entry).__name__}"
    for name in (fmt.id_field, fmt.path_field, fmt.captions_field, fmt.split_field):
        if name not in entry:
            return f"missing field '{name}'", f"missing field '{name}'"
    pid = entry[fmt.id_field]
    if isinstance(pid, bool) or not isinstance(pid, int):
        return f"bad field '{fmt.id_field}'", (
            f"field '{fmt.id_field}': expected an integer, got {type(pid).__name__} {pid!r}")
    path = entry[fmt.path_field]
    if not isinstance(path, str) or not path.strip():
        return f"bad field '{fmt.path_field}'", (
            f"field '{fmt.path_field}': expected a non-empty string, got {path!r}")
    caps = entry[fmt.captions_field]
    if not isinstance(caps, list) or not caps:
        return f"bad field '{fmt.captions_field}'", (
            f"field '{fmt.captions_field}': expected a non-empty list of strings, "
            f"got {type(caps).__name__}")
    for k, cap in enumerate(caps):
        if not isinstance(cap, str) or not cap.strip():
            return f"bad field '{fmt.captions_field}'", (
                f"field '{fmt.captions_field}'[{k}]: expected a non-empty string, got {cap!r}")
    if not isinstance(entry.get("weak", False), bool):
        return "bad field 'weak'", (f"field 'weak': expected true or false, got "
                                    f"{entry['weak']!r}")
    split = entry[fmt.split_field]
    if split not in fmt.all_splits:
        return "unknown split", (
            f"field '{fmt.split_field}': unknown split {split!r} "
            f"(valid for {fmt.name}: {', '.join(fmt.all_splits)})")
    return None


def read_dataset(fmt: AnnotationFormat, root: Path, skip_bad: bool = False,
                 check_images: bool = True) -> PedestrianDataset:
    """Load, validate and return the records of a dataset directory in format ``fmt``."""
    file = root / fmt.annotation
    data = load_json(file)
    if not isinstance(data, list):
        raise DatasetError(f"{file}: expected a JSON list of entries, got {type(data).__name__}")
    problems = _Problems(file, skip_bad)
    records: list[ImageRecord] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(data):
        pid = entry.get(fmt.id_field, "?") if isinstance(entry, dict) else "?"
        problem = _check_entry(fmt, entry)
        if problem:
            problems.report(index, pid, *problem)
            continue
        path = entry[fmt.path_field]
        if path in seen:
            problems.report(index, pid, "duplicate image entry",
                            f"field '{fmt.path_field}': duplicate image entry {path!r} "
                            f"(first listed at entry {seen[path]})")
            continue
        seen[path] = index
        records.append(ImageRecord(path, pid, tuple(entry[fmt.captions_field]),
                                   entry[fmt.split_field], index, entry.get("weak", False)))
    records = _drop_split_leaks(fmt, records, problems)
    dataset = PedestrianDataset(fmt.name, file, fmt.image_root(root), records)
    if check_images:
        _drop_missing_images(dataset, skip_bad, problems.counts)
    dataset.skipped = problems.counts
    if not dataset.records:
        raise DatasetError(f"{file}: no valid entries")
    return dataset


def missing_images(dataset: PedestrianDataset) -> list[ImageRecord]:
    """Records whose image file is not on disk."""
    return [r for r in dataset.records if not dataset.image_path(r).is_file()]


def _drop_missing_images(dataset: PedestrianDataset, skip_bad: bool, counts: dict) -> None:
    missing = missing_images(dataset)
    if not missing:
        return
    listed = ", ".join(r.file_path for r in missing[:MAX_LISTED])
    if not skip_bad:
        raise DatasetError(
            f"{dataset.annotation_file}: {len(missing)} of {len(dataset.records)} listed images "
            f"are missing under {dataset.image_root} (first: {listed}; "
            f"first entry {missing[0].entry}, id {missing[0].person_id}); "
            "use --skip-bad to drop them"
        )
    counts["image missing"] = len(missing)
    gone = set(id(r) for r in missing)
    dataset.records = [r for r in dataset.records if id(r) not in gone]


def _drop_split_leaks(fmt: AnnotationFormat, records: list[ImageRecord],
                      problems: _Problems) -> list[ImageRecord]:
    """A person in two splits (say train and val) makes the later split's numbers those of
    a seen person: an error naming the entry, or with ``skip_bad`` that person's entries in
    every split after the first one (in the format's split order) are dropped, counted."""
    first: dict[int, tuple[str, int]] = {}
    order = {s: i for i, s in enumerate(fmt.all_splits)}
    for r in sorted(records, key=lambda r: (order[r.split], r.entry)):
        first.setdefault(r.person_id, (r.split, r.entry))
    kept = []
    for r in records:
        split, entry = first[r.person_id]
        if r.split == split:
            kept.append(r)
            continue
        problems.report(r.entry, r.person_id, "person in more than one split",
                        f"field '{fmt.id_field}': person {r.person_id} is in split "
                        f"'{r.split}' and in '{split}' (entry {entry}): a person must be in "
                        "one split only")
    return kept
