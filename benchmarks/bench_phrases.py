"""Noun-phrase extraction throughput at CUHK-PEDES training scale (68,000 captions).

Captions come from the synthetic generator's caption writer (unique texts, 15-45 words).
Measures the cold run (tokenise + POS-tag + chunk every caption, in --workers processes,
then write the cache) and the warm run (load the cache).

    python benchmarks/bench_phrases.py [--captions 68000 --workers 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from mia.synth.attributes import sample_identities
from mia.synth.captions import write_caption
from mia.text.cache import load_or_parse


def make_captions(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    people = [attrs for attrs, _ in sample_identities(max(n // 8, 1), rng)]
    seen: dict[str, None] = {}
    while len(seen) < n:
        seen[write_caption(people[int(rng.integers(len(people)))], rng)] = None
    return list(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--captions", type=int, default=68000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from common import machine_line

    print(machine_line())
    texts = make_captions(args.captions)
    words = sum(len(t.split()) for t in texts)
    with tempfile.TemporaryDirectory() as tmp:
        ann = Path(tmp) / "reid_raw.json"
        ann.write_text(json.dumps([{"captions": texts[i:i + 2]}
                                   for i in range(0, len(texts), 2)]))
        start = time.perf_counter()
        parsed = load_or_parse(ann, texts, workers=args.workers)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        load_or_parse(ann, texts, workers=args.workers)
        warm = time.perf_counter() - start
    phrases = sum(len(p.phrases) for p in parsed.values())
    print(f"{len(texts)} unique captions, {words} words, {phrases} phrases "
          f"({phrases / len(texts):.2f} per caption), {args.workers} workers")
    print(f"cold (tokenise + tag + chunk + write cache): {cold:.1f} s "
          f"({len(texts) / cold:.0f} captions/s; target < 60 s)")
    print(f"warm (from cache):                           {warm:.2f} s (target < 2 s)")


if __name__ == "__main__":
    main()
