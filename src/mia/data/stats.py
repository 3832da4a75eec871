"""Per-split statistics of a dataset: what ``mia data check`` prints."""

from __future__ import annotations

from mia.data.records import PedestrianDataset
from mia.text.phrases import ParsedCaption


def split_stats(dataset: PedestrianDataset, split: str,
                parsed: dict[str, ParsedCaption]) -> dict:
    records = dataset.split(split)
    captions = [parsed[c] for r in records for c in r.captions]
    lengths = [len(p.tokens) for p in captions]
    n_phrases = [0 if p.fallback else len(p.spans) for p in captions]
    return {
        "images": len(records),
        "ids": len({r.person_id for r in records}),
        "captions": len(captions),
        "vocabulary": len({t for p in captions for t in p.tokens}),
        "caption_length": {"mean": _mean(lengths), "max": max(lengths, default=0)},
        "noun_phrases": {"mean": _mean(n_phrases), "min": min(n_phrases, default=0),
                         "max": max(n_phrases, default=0)},
        "captions_without_noun_phrase": sum(p.fallback for p in captions),
    }


def dataset_stats(dataset: PedestrianDataset, parsed: dict[str, ParsedCaption]) -> dict:
    return {
        "format": dataset.format,
        "annotation_file": str(dataset.annotation_file),
        "image_root": str(dataset.image_root),
        "splits": {s: split_stats(dataset, s, parsed) for s in dataset.splits},
        "skipped": dict(dataset.skipped),
        "warnings": list(dataset.warnings),
    }


def _mean(values: list[int]) -> float:
    return round(sum(values) / len(values), 2) if values else 0.0
