"""Step training: objectives (:mod:`.objectives`), one step's optimisation (:mod:`.step`),
the frozen-feature caches and their file in RUN/cache/ (:mod:`.feature_cache`), the
trainer and its hooks (:mod:`.trainer`, :mod:`.hooks`), starting from another run's step
(:mod:`.branch`), several processes (:mod:`.distributed`) and ``mia train`` as a function
(:mod:`.launch`).

Other parts import from the modules listed in ``__all__`` (docs/ARCHITECTURE.md)."""

__all__ = ["branch", "distributed", "feature_cache", "hooks", "launch", "objectives", "step",
           "trainer"]
