"""Synthetic pedestrian generator writing the CUHK-PEDES format (see ``generate``)."""

from .generate import generate_dataset

__all__ = ["generate_dataset"]
