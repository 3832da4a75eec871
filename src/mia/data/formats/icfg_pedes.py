"""ICFG-PEDES (Ding et al., 2021): ``ICFG-PEDES.json`` + ``imgs/``, train and test only."""

from mia.data.formats.base import AnnotationFormat

ICFG_PEDES = AnnotationFormat(
    name="icfg-pedes",
    annotation="ICFG-PEDES.json",
    splits=("train", "test"),
)
