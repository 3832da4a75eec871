"""MIA: Multi-granularity Image-text Alignments for description-based person retrieval.

Niu, Huang, Ouyang and Wang, "Improving Description-Based Person Re-Identification by
Multi-Granularity Image-Text Alignments", IEEE TIP 2020.

    import mia
    model = mia.load("runs/demo/mia")       # a trained run (see mia.api)
    scores = model.score(model.encode_images(["a.jpg"]), model.encode_texts(["a man ..."]))
"""

__version__ = "0.1.0"
__all__ = ["load", "Retriever", "ImageEmbeddings", "TextEmbeddings", "MiaError", "__version__"]


def __getattr__(name: str):  # the API imports torch: only when it is used
    if name in ("load", "Retriever"):
        from mia import api

        return getattr(api, name)
    if name in ("ImageEmbeddings", "TextEmbeddings"):
        from mia.model import embeddings

        return getattr(embeddings, name)
    if name == "MiaError":
        from mia.utils.errors import MiaError

        return MiaError
    raise AttributeError(f"module 'mia' has no attribute {name!r}")
