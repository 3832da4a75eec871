"""Training-time caption augmentation (not in the paper; off by default).

Phrase cutout (``data.phrase_dropout``): each noun phrase of a training caption is removed,
its words and its span, with probability ``p``; at least one phrase always stays, and the
words outside phrases ("wearing", "and", "carrying") stay. A caption of ``m`` phrases so
yields up to ``2^m - 1`` partial descriptions, as human queries mention only some of a
person's attributes; it is aimed at people with one caption (a weak caption is otherwise
read identically in every epoch). This is the train-time form of the "Cutout" half of
CutMixOut (Fawakherji et al., "TextAug", 2023), at the granularity MIA aligns: phrases.
"""

from __future__ import annotations

import random
from dataclasses import replace


def drop_phrases(caption, p: float, rng: random.Random):
    """An :class:`~mia.data.loading.EncodedCaption` with each phrase removed with probability
    ``p`` (at least one kept); spans and (for MiniLM captions) the WordPiece word indices are
    renumbered."""
    if p <= 0 or len(caption.spans) < 2:
        return caption
    keep = [rng.random() >= p for _ in caption.spans]
    if not any(keep):
        keep[rng.randrange(len(keep))] = True
    if all(keep):
        return caption
    removed = {w for (a, b), k in zip(caption.spans, keep) if not k for w in range(a, b)}
    new_index, n = [], 0  # new position of each kept word
    for w in range(len(caption.tokens)):
        new_index.append(n)
        n += w not in removed
    tokens = [t for w, t in enumerate(caption.tokens) if w not in removed]
    spans = [(new_index[a], new_index[a] + (b - a))
             for (a, b), k in zip(caption.spans, keep) if k]
    pieces, piece_words = caption.pieces, caption.piece_words
    if pieces is not None:
        kept = [(pc, w) for pc, w in zip(pieces, piece_words) if w not in removed]
        pieces = [pc for pc, _ in kept]
        piece_words = [new_index[w] if w >= 0 else -1 for _, w in kept]
    return replace(caption, tokens=tokens, spans=spans, pieces=pieces, piece_words=piece_words)
