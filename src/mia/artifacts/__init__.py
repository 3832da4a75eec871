"""What training leaves and what every user of a trained model reads: the run directory
(:mod:`.run`), its checkpoints (:mod:`.checkpoint`) and the one-file export
(:mod:`.export`); :func:`mia.artifacts.run.load_trained` loads any of them."""
