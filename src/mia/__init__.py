"""MIA: Multi-granularity Image-text Alignments for description-based person retrieval.

Niu, Huang, Ouyang and Wang, "Improving Description-Based Person Re-Identification by
Multi-Granularity Image-Text Alignments", IEEE TIP 2020.

    import mia
    run = mia.train("demo/mia", "runs/demo/data", "runs/mia")     # see mia.api, docs/API.md
    mia.export(run, "mia.pt")                                      # one file to hand over
    model = mia.load("mia.pt")                                     # a run directory or a file
    scores = model.score(model.encode_images(photos), model.encode_texts(["a man ..."]))
"""

from mia._version import __version__

API = ("load", "export", "train", "evaluate", "create_model", "list_configs", "config", "Run",
       "Retriever")
__all__ = [*API, "ImageEmbeddings", "TextEmbeddings", "MiaError", "QueryError", "__version__"]


def __getattr__(name: str):  # the API imports torch: only when it is used
    if name in API:
        from mia import api

        return getattr(api, name)
    if name in ("ImageEmbeddings", "TextEmbeddings"):
        from mia.model import embeddings

        return getattr(embeddings, name)
    if name == "MiaError":
        from mia.utils.errors import MiaError

        return MiaError
    if name == "QueryError":
        from mia.text.queries import QueryError

        return QueryError
    raise AttributeError(f"module 'mia' has no attribute {name!r}")
