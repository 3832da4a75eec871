"""RSTPReid (Zhu et al., 2021): ``data_captions.json`` with ``img_path`` + ``imgs/``."""

from mia.data.formats.base import AnnotationFormat

RSTPREID = AnnotationFormat(
    name="rstpreid",
    annotation="data_captions.json",
    splits=("train", "val", "test"),
    path_field="img_path",
)
