"""Helpers every part may use: one-line errors (:mod:`.errors`), crash-safe writes and
hashes (:mod:`.io`), device and precision choice (:mod:`.device`), the allocator
(:mod:`.memory`), and the torch-free lists of choices the command line offers
(:mod:`.choices`).

Other parts import from the modules listed in ``__all__`` (docs/ARCHITECTURE.md)."""

__all__ = ["choices", "device", "errors", "io", "memory"]
