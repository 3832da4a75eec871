"""Dataset formats: one small declarative file each, read by :mod:`mia.data.formats.base`.

:data:`FORMATS` is the one list of format names: the readers look formats up in it and the
command line offers its keys as ``--format`` choices, so this package stays torch-free (it
is imported before torch; tests/test_names.py checks it)."""

from mia.data.formats.base import DISTRACTORS, AnnotationFormat, read_dataset
from mia.data.formats.cuhk_pedes import CUHK_PEDES
from mia.data.formats.icfg_pedes import ICFG_PEDES
from mia.data.formats.rstpreid import RSTPREID

FORMATS: dict[str, AnnotationFormat] = {f.name: f for f in (CUHK_PEDES, ICFG_PEDES, RSTPREID)}

__all__ = ["DISTRACTORS", "FORMATS", "AnnotationFormat", "read_dataset"]
