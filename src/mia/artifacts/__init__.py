"""What training leaves and what every user of a trained model reads: the run directory
and :func:`~mia.artifacts.run.load_trained` (:mod:`.run`), checkpoints
(:mod:`.checkpoint`), the loaded model (:mod:`.trained`), reading a model file
(:mod:`.model_file`) and writing the one-file export (:mod:`.export`).

Other parts import from the modules listed in ``__all__`` (docs/ARCHITECTURE.md)."""

__all__ = ["checkpoint", "export", "model_file", "run", "trained"]
