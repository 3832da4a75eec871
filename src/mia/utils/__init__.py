"""Helpers every part may use: one-line errors (:mod:`.errors`), crash-safe writes and
hashes (:mod:`.io`), device and precision choice (:mod:`.device`), the allocator
(:mod:`.memory`).

Other parts import from the modules listed in ``__all__`` (docs/ARCHITECTURE.md)."""

__all__ = ["device", "errors", "io", "memory"]
