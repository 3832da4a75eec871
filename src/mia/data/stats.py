"""Per-split statistics of a dataset: what ``mia data check`` prints."""

from __future__ import annotations

from mia.data.records import PedestrianDataset
from mia.text.phrases import ParsedCaption


def split_stats(dataset: PedestrianDataset, split: str, parsed: dict[str, ParsedCaption],
                known: set[str] | None = None) -> dict:
    """Statistics of one split; ``known`` (the training split's words) adds the share of
    this split's words a model trained on it has never seen (read as <unk>)."""
    records = dataset.split(split)
    captions = [parsed[c] for r in records for c in r.captions]
    lengths = [len(p.tokens) for p in captions]
    words = [t for p in captions for t in p.tokens]
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
        "unknown_word_rate": (round(sum(t not in known for t in words) / max(len(words), 1), 4)
                              if known is not None else None),
    }


def dataset_stats(dataset: PedestrianDataset, parsed: dict[str, ParsedCaption]) -> dict:
    known = ({t for r in dataset.split("train") for c in r.captions for t in parsed[c].tokens}
             if "train" in dataset.splits else None)
    return {
        "format": dataset.format,
        "annotation_file": str(dataset.annotation_file),
        "image_root": str(dataset.image_root),
        "splits": {s: split_stats(dataset, s, parsed, known) for s in dataset.splits},
        "skipped": dict(dataset.skipped),
        "warnings": list(dataset.warnings),
    }


def _mean(values: list[int]) -> float:
    return round(sum(values) / len(values), 2) if values else 0.0
