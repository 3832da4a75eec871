"""Captions to model inputs: tokenisation (:mod:`.tokenize`), noun phrases (:mod:`.phrases`)
and their cache (:mod:`.cache`), the vocabulary (:mod:`.vocab`), word vectors
(:mod:`.word_vectors`), checks of user queries (:mod:`.queries`).

Other parts import from the modules listed in ``__all__`` (docs/ARCHITECTURE.md)."""

__all__ = ["cache", "phrases", "queries", "tokenize", "vocab", "word_vectors"]
