"""Datasets: formats and readers (:mod:`.formats`, :mod:`.reader`, :mod:`.records`), image
decoding (:mod:`.images`), batching and training pairs (:mod:`.loading`), caption
augmentation (:mod:`.augment`), everything a run reads from a dataset directory
(:mod:`.pipeline`), statistics (:mod:`.stats`) and CUHK-PEDES sub-datasets (:mod:`.subsets`).

Other parts import from the modules listed in ``__all__`` (docs/ARCHITECTURE.md)."""

__all__ = ["augment", "formats", "images", "loading", "pipeline", "reader", "records", "stats",
           "subsets"]
