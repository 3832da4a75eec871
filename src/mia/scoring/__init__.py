"""How MIA scores a gallery exactly: the one encoding path of images and captions
(:mod:`.encode`) and the all-pairs sG, sR, sL within a memory budget (:mod:`.exact`).
Training, evaluation and the gallery product all score through here.

Other parts import from the modules listed in ``__all__`` (docs/ARCHITECTURE.md)."""

__all__ = ["encode", "exact"]
