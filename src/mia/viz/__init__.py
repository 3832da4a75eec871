"""Figures: the paper's analyses of a run (:mod:`.analysis`, :mod:`.figures`), the HTML
report (:mod:`.report`) and the search figure (:mod:`.search_figure`).

Other parts import from the modules listed in ``__all__`` (docs/ARCHITECTURE.md)."""

__all__ = ["analysis", "figures", "report", "search_figure"]
