"""The gallery product: :class:`~mia.retrieval.retriever.Retriever` (the Python API's model),
persistent indexes (:mod:`.index`) that grow (:mod:`.growth`), the stage-1 candidate
search (:mod:`.candidates`, :mod:`.vectordb`) and two-stage search (:mod:`.search`).

Other parts import from the modules listed in ``__all__`` (docs/ARCHITECTURE.md)."""

__all__ = ["candidates", "growth", "index", "retriever", "search", "vectordb"]
