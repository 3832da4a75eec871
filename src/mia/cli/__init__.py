"""The ``mia`` command: :mod:`.main` dispatches, one module per subcommand, shared options
in :mod:`.common`. Parsing and ``--help`` import no torch.

Other parts import from the modules listed in ``__all__`` (docs/ARCHITECTURE.md)."""

__all__ = ["common", "data_cmd", "demo_cmd", "evaluate_cmd", "export_cmd", "index_cmd", "main",
           "report_cmd", "search_cmd", "serve_cmd", "train_cmd"]
