"""Phrases of a whole dataset, computed once and cached on disk next to the data.

The cache file is ``<dataset>/.mia_cache/phrases-<key>.json`` where the key hashes the
annotation file's bytes, the extractor version and the phrase mode: editing the annotation
file (or upgrading the extractor) makes a new key, so a stale cache is never read. Writes
are atomic. Extraction runs in ``workers`` processes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from mia.text.phrases import EXTRACTOR_VERSION, ParsedCaption, parse_caption
from mia.utils.io import atomic_write_json, sha256_file

log = logging.getLogger(__name__)
CACHE_DIR = ".mia_cache"


def cache_path(annotation_file: str | Path, mode: str) -> Path:
    annotation_file = Path(annotation_file)
    key = hashlib.sha256(
        f"{sha256_file(annotation_file)}|{EXTRACTOR_VERSION}|{mode}".encode()
    ).hexdigest()[:20]
    return annotation_file.parent / CACHE_DIR / f"phrases-{key}.json"


def _parse_chunk(args: tuple[list[str], str]) -> list[dict]:
    texts, mode = args
    return [parse_caption(text, mode).to_json() for text in texts]


def parse_many(texts: Sequence[str], mode: str = "noun_phrases", workers: int = 1,
               progress: bool = False, chunk: int = 500) -> list[ParsedCaption]:
    """Parse captions in order, in ``workers`` processes, with an optional progress bar."""
    chunks = [(list(texts[i:i + chunk]), mode) for i in range(0, len(texts), chunk)]
    bar = tqdm(total=len(texts), desc="noun phrases", unit="cap", disable=not progress)
    results: list[ParsedCaption] = []
    if workers > 1 and len(chunks) > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for parsed in pool.imap(_parse_chunk, chunks):
                results.extend(ParsedCaption.from_json(p) for p in parsed)
                bar.update(len(parsed))
    else:
        for item in chunks:
            parsed = _parse_chunk(item)
            results.extend(ParsedCaption.from_json(p) for p in parsed)
            bar.update(len(parsed))
    bar.close()
    return results


def load_or_parse(annotation_file: str | Path, texts: Sequence[str], mode: str = "noun_phrases",
                  workers: int = 1, progress: bool = False,
                  use_cache: bool = True) -> dict[str, ParsedCaption]:
    """Parsed form of every distinct caption text, from the cache when it is valid."""
    unique = list(dict.fromkeys(texts))
    path = cache_path(annotation_file, mode)
    if use_cache and path.exists():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            parsed = {text: ParsedCaption.from_json(stored[text]) for text in unique}
            log.info("phrases loaded from cache %s", path)
            return parsed
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable phrase cache %s (%s); recomputing", path, exc)
    results = parse_many(unique, mode, workers=workers, progress=progress)
    parsed = dict(zip(unique, results))
    if use_cache:
        try:
            atomic_write_json(path, {t: p.to_json() for t, p in parsed.items()}, indent=None)
        except OSError as exc:  # a read-only dataset directory is not an error
            log.warning("could not write phrase cache %s: %s", path, exc)
    return parsed
