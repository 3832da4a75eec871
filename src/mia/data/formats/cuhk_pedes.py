"""CUHK-PEDES (Li et al., CVPR 2017): ``reid_raw.json`` + ``imgs/``."""

from mia.data.formats.base import AnnotationFormat

CUHK_PEDES = AnnotationFormat(
    name="cuhk-pedes",
    annotation="reid_raw.json",
    splits=("train", "val", "test"),
    confusables={
        "caption_all.json": "caption_all.json is the raw CUHK-PEDES release without splits; "
        "use reid_raw.json, which has the train/val/test split of each entry",
    },
)
