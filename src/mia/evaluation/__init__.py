"""The evaluation protocol: ranking metrics (:mod:`.metrics`), queries x gallery of a split
(:mod:`.evaluate`), ``mia evaluate`` as a function (:mod:`.run_eval`), fusion weights
chosen on validation (:mod:`.fusion`), test-time re-ranking (:mod:`.rerank`) and
tables (:mod:`.report`).

Other parts import from the modules listed in ``__all__`` (docs/ARCHITECTURE.md)."""

__all__ = ["evaluate", "fusion", "metrics", "report", "rerank", "run_eval"]
