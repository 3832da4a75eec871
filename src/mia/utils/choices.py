"""Lists of names that several parts read, each written here once.

This module imports nothing, so the command line can offer these names as choices (and
print ``--help``) without importing torch; the parts that act on a name read the same
list:

- :data:`PRECISIONS`: ``train.precision`` (:mod:`mia.config`), ``mia train --precision``
  and the autocast dtypes of :mod:`mia.utils.device` (from :data:`AUTOCAST`);
- :data:`CANDIDATE_BACKENDS`: the in-process stage-1 candidate searches of
  :mod:`mia.retrieval.candidates`; :data:`SEARCH_BACKENDS`: what ``mia search`` and
  ``mia serve`` offer as ``--backend``: those, ``auto`` and the vector database ``milvus``
  (chosen by :class:`mia.retrieval.search.Searcher`).
"""

# explicit precision -> the torch dtype autocast runs in, by its name in torch (None: no
# autocast); ``auto`` resolves to one of them (mia.utils.device.resolve_precision)
AUTOCAST = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}
PRECISIONS = ("auto", *AUTOCAST)

CANDIDATE_BACKENDS = ("torch", "faiss-flat", "faiss-ivf", "faiss-ivf-sq8", "faiss-hnsw")
SEARCH_BACKENDS = ("auto", *CANDIDATE_BACKENDS, "milvus")
