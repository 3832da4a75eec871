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
CACHE_FORMAT = "mia-phrases-v2"


def cache_path(annotation_file: str | Path, mode: str) -> Path:
    annotation_file = Path(annotation_file)
    key = hashlib.sha256(
        f"{sha256_file(annotation_file)}|{EXTRACTOR_VERSION}|{mode}".encode()
    ).hexdigest()[:20]
    return annotation_file.parent / CACHE_DIR / f"phrases-{key}.json"


def _parse_chunk(args: tuple[list[str], str]) -> list[ParsedCaption]:
    texts, mode = args
    return [parse_caption(text, mode) for text in texts]


def _pool_context():
    """fork where available: parsing is pure Python, and fork needs no ``__main__`` guard
    in the caller's script (spawn would re-import it)."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def parse_many(texts: Sequence[str], mode: str = "noun_phrases", workers: int = 1,
               progress: bool = False, chunk: int = 500) -> list[ParsedCaption]:
    """Parse captions in order, in ``workers`` processes, with an optional progress bar."""
    chunks = [(list(texts[i:i + chunk]), mode) for i in range(0, len(texts), chunk)]
    bar = tqdm(total=len(texts), desc="noun phrases", unit="cap", disable=not progress)
    results: list[ParsedCaption] = []
    if workers > 1 and len(chunks) > 1:
        with _pool_context().Pool(workers) as pool:
            for parsed in pool.imap(_parse_chunk, chunks):
                results.extend(parsed)
                bar.update(len(parsed))
    else:
        for item in chunks:
            parsed = _parse_chunk(item)
            results.extend(parsed)
            bar.update(len(parsed))
    bar.close()
    return results


def _encode_cache(parsed: dict[str, ParsedCaption]) -> dict:
    """Compact, fast-to-read layout: tokens joined by spaces (tokens never contain
    whitespace), phrase spans as flat [start, end, start, end, ...] lists."""
    values = list(parsed.values())
    return {"format": CACHE_FORMAT, "texts": list(parsed),
            "tokens": [" ".join(p.tokens) for p in values],
            "spans": [[i for span in p.spans for i in span] for p in values],
            "fallback": [i for i, p in enumerate(values) if p.fallback]}


def _decode_cache(stored: dict) -> dict[str, ParsedCaption]:
    if stored.get("format") != CACHE_FORMAT:
        raise ValueError("unknown cache layout")
    fallback = set(stored["fallback"])
    return {text: ParsedCaption(tokens.split(" ") if tokens else [],
                                list(zip(flat[::2], flat[1::2])), i in fallback)
            for i, (text, tokens, flat) in enumerate(zip(stored["texts"], stored["tokens"],
                                                         stored["spans"]))}


def load_or_parse(annotation_file: str | Path, texts: Sequence[str], mode: str = "noun_phrases",
                  workers: int = 1, progress: bool = False,
                  use_cache: bool = True) -> dict[str, ParsedCaption]:
    """Parsed form of every distinct caption text, from the cache when it is valid."""
    unique = list(dict.fromkeys(texts))
    path = cache_path(annotation_file, mode)
    if use_cache and path.exists():
        try:
            cached = _decode_cache(json.loads(path.read_text(encoding="utf-8")))
            parsed = {text: cached[text] for text in unique}
            log.info("phrases loaded from cache %s", path)
            return parsed
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable phrase cache %s (%s); recomputing", path, exc)
    results = parse_many(unique, mode, workers=workers, progress=progress)
    parsed = dict(zip(unique, results))
    if use_cache:
        try:
            atomic_write_json(path, _encode_cache(parsed), indent=None)
        except OSError as exc:  # a read-only dataset directory is not an error
            log.warning("could not write phrase cache %s: %s", path, exc)
    return parsed
