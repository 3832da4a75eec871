"""``mia serve``: the search page and its JSON API over an index (:mod:`.app`).

Other parts import from the modules listed in ``__all__`` (docs/ARCHITECTURE.md)."""

__all__ = ["app"]
