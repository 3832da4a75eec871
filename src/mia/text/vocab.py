"""Word vocabulary built from the training split, saved with every run."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from mia.utils.errors import CheckpointError
from mia.utils.io import atomic_write_json, sha256_json

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1


class Vocabulary:
    """Maps words to ids; id 0 is padding, id 1 the unknown word."""

    def __init__(self, words: list[str]):
        if words[:2] != [PAD, UNK]:
            raise ValueError("a vocabulary starts with the padding and unknown tokens")
        self.words = list(words)
        self.index = {word: i for i, word in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError("duplicate words in vocabulary")

    @classmethod
    def build(cls, token_lists: Iterable[list[str]], min_count: int = 1) -> Vocabulary:
        """Words seen at least ``min_count`` times, most frequent first (ties alphabetical)."""
        counts = Counter(token for tokens in token_lists for token in tokens)
        kept = sorted((w for w, c in counts.items() if c >= min_count and w not in (PAD, UNK)),
                      key=lambda w: (-counts[w], w))
        return cls([PAD, UNK, *kept])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, tokens: list[str]) -> list[int]:
        return [self.index.get(token, UNK_ID) for token in tokens]

    def unknown_fraction(self, tokens: list[str]) -> float:
        return sum(t not in self.index for t in tokens) / max(len(tokens), 1)

    @property
    def fingerprint(self) -> str:
        return sha256_json(self.words)[:16]

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, {"words": self.words}, indent=None)

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        try:
            words = json.loads(Path(path).read_text(encoding="utf-8"))["words"]
        except FileNotFoundError as exc:
            raise CheckpointError(f"{path}: vocabulary file not found") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{path}: not a vocabulary file ({exc})") from exc
        return cls(words)
