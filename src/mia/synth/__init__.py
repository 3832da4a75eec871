"""The synthetic pedestrian set's generator (not a dataset reader): identities in look-alike
clusters (:mod:`.attributes`), drawn images (:mod:`.render`), incomplete captions
(:mod:`.captions`), written in the CUHK-PEDES layout by
:func:`mia.synth.generate.generate_dataset`.

Other parts import from the modules listed in ``__all__`` (docs/ARCHITECTURE.md)."""

__all__ = ["attributes", "captions", "generate", "render"]
