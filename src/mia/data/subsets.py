"""CUHK-PEDES sub-datasets (paper Table VIII), recognised from image file paths."""

from __future__ import annotations

# first path component (lower case) -> sub-dataset; SSM images are in train_query/test_query
SUBSETS = {"cuhk01": "CUHK01", "cuhk03": "CUHK03", "market": "Market", "train_query": "SSM",
           "test_query": "SSM", "viper": "VIPER"}


def subset_of(file_path: str) -> str | None:
    head = file_path.replace("\\", "/").lstrip("/").split("/", 1)[0].lower()
    return SUBSETS.get(head)
